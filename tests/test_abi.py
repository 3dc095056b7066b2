"""libcando's ABI: exactly the documented functions are exported, and the meson install.

``nm -D --defined-only`` must list the 14 ``udo_vsock_udp_*`` functions of the
spec, the two batch extensions of <cando/vsock-udp-batch.h> and the
``udo_log_*`` functions of contract.md, nothing else: both on the
libcando.so of the installed Python package and on one that ``meson install``
puts in a destdir, which must also carry the headers, the static library and a
pkg-config file that a C program can build with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

import cando
from cando._cando import lib

VSOCK_UDP = frozenset({
    "udo_vsock_udp_server_create",
    "udo_vsock_udp_server_accept",
    "udo_vsock_udp_server_recv_data",
    "udo_vsock_udp_client_create",
    "udo_vsock_udp_client_connect",
    "udo_vsock_udp_client_send_data",
    "udo_vsock_udp_get_fd",
    "udo_vsock_udp_get_vcid",
    "udo_vsock_udp_get_port",
    "udo_vsock_udp_destroy",
    "udo_vsock_udp_get_sizeof",
    "udo_vsock_udp_get_local_vcid",
    "udo_vsock_udp_recv_data",
    "udo_vsock_udp_send_data",
})
LOG = frozenset({
    "udo_log_set_level",
    "udo_log_set_write_fd",
    "udo_log_remove_colors",
    "udo_log_reset_colors",
    "udo_log_get_error",
    "udo_log_get_error_code",
    "udo_log_set_error_struct",
    "udo_log_time",
    "udo_log_notime",
})
# Beyond the spec (issue 5): batched datagrams over sendmmsg/recvmmsg, declared
# in their own header, <cando/vsock-udp-batch.h>; vsock-udp.h stays the spec's.
BATCH = frozenset({
    "udo_vsock_udp_send_batch",
    "udo_vsock_udp_recv_batch",
})
EXPORTS = VSOCK_UDP | BATCH | LOG
C_DIR = Path(__file__).resolve().parent / "c"


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 300,
        cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd, check=False)
    assert proc.returncode == 0, f"{argv!r} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def dynamic_symbols(lib: Path) -> dict[str, str]:
    """name -> nm type letter, for every defined dynamic symbol."""
    symbols: dict[str, str] = {}
    for line in run(["nm", "-D", "--defined-only", str(lib)]).splitlines():
        fields = line.split()
        assert len(fields) == 3, line
        _, kind, name = fields
        symbols[name.split("@")[0]] = kind
    return symbols


def check_exports(lib: Path) -> None:
    symbols = dynamic_symbols(lib)
    assert len(VSOCK_UDP) == 14
    assert set(symbols) == EXPORTS, (
        f"missing {sorted(EXPORTS - set(symbols))}, extra {sorted(set(symbols) - EXPORTS)}")
    assert set(symbols.values()) == {"T"}, symbols
    undefined = run(["nm", "-D", "--undefined-only", str(lib)]).split()
    for sync in ("fsync", "fdatasync", "sync_file_range", "syncfs"):
        assert not any(s.split("@")[0] == sync for s in undefined), f"log must not {sync}"


def installed_library() -> Path:
    path = Path(cando.get_library_dir()) / "libcando.so"
    assert path.is_file(), path
    return path


def test_installed_package_exports_exactly_the_api() -> None:
    check_exports(installed_library())


def test_installed_package_headers() -> None:
    include = Path(cando.get_include()) / "cando"
    assert {"log.h", "macros.h", "vsock-udp.h"} <= {p.name for p in include.glob("*.h")}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not on PATH"
    return path


@pytest.fixture(scope="module")
def meson_destdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``meson setup`` + ``meson install --destdir`` of the repo: (destdir, prefix)."""
    meson = _tool("meson")
    base = tmp_path_factory.mktemp("meson")
    build, dest, prefix = base / "build", base / "dest", base / "prefix"
    run([meson, "setup", str(build), str(REPO), "-Dwrapper=false", f"--prefix={prefix}",
         "--libdir=lib", "--includedir=include"])
    run([meson, "compile", "-C", str(build)])
    run([meson, "install", "-C", str(build), "--destdir", str(dest), "--no-rebuild"])
    return dest, prefix


def _root(meson_destdir: tuple[Path, Path]) -> Path:
    dest, prefix = meson_destdir
    return dest / prefix.relative_to(prefix.anchor)


def test_meson_install_layout(meson_destdir: tuple[Path, Path]) -> None:
    root = _root(meson_destdir)
    headers = sorted(p.name for p in (root / "include" / "cando").iterdir())
    assert {"log.h", "macros.h", "vsock-udp.h"} <= set(headers)
    libdir = root / "lib"
    shared = sorted(p.name for p in libdir.glob("libcando.so*"))
    assert "libcando.so" in shared
    assert any(name.startswith("libcando.so.") for name in shared), shared
    assert (libdir / "libcando.a").is_file()
    assert (libdir / "pkgconfig" / "cando.pc").is_file()
    # The installed headers are the package's headers.
    for name in headers:
        assert (root / "include" / "cando" / name).read_bytes() == (
            Path(cando.get_include()) / "cando" / name).read_bytes()


def test_meson_install_exports(meson_destdir: tuple[Path, Path]) -> None:
    libdir = _root(meson_destdir) / "lib"
    check_exports((libdir / "libcando.so").resolve())
    archive = run(["nm", "--defined-only", str(libdir / "libcando.a")]).split()
    assert EXPORTS <= set(archive)


def test_meson_install_pkg_config(meson_destdir: tuple[Path, Path], cc: str,
                                  tmp_path: Path) -> None:
    pkg_config = _tool("pkg-config")
    root = _root(meson_destdir)
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = str(root / "lib" / "pkgconfig")
    env.pop("PKG_CONFIG_SYSROOT_DIR", None)
    env.pop("LD_PRELOAD", None)
    flags = run([pkg_config, f"--define-variable=prefix={root}", "--cflags", "--libs", "cando"],
                env=env).split()
    assert f"-I{root}/include" in flags
    assert f"-L{root}/lib" in flags
    assert "-lcando" in flags
    src = tmp_path / "pc.c"
    src.write_text(
        "#include <stdio.h>\n"
        "#include <cando/vsock-udp.h>\n"
        "int main(void)\n{\n"
        "\tprintf(\"%d %d\\n\", udo_vsock_udp_get_sizeof(), udo_vsock_udp_get_fd(NULL));\n"
        "\treturn 0;\n}\n")
    exe = tmp_path / "pc"
    run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", str(src), "-o", str(exe), *flags,
         f"-Wl,-rpath,{root}/lib"], env=env)
    out = run([str(exe)], env=env)
    assert out == f"{lib.udo_vsock_udp_get_sizeof()} -1\n"
    linked = run(["ldd", str(exe)], env=env)
    assert str(root / "lib") in linked


def test_header_prototypes_match_spec(cc: str, tmp_path: Path) -> None:
    """The spec's prototypes, redeclared after the installed header, compile cleanly."""
    run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I", cando.get_include(), "-c",
         str(C_DIR / "spec_prototypes.c"), "-o", str(tmp_path / "spec.o")])


def test_instance_struct_is_opaque(cc: str, tmp_path: Path) -> None:
    proc = subprocess.run([cc, "-std=gnu11", "-I", cando.get_include(), "-c",
                           str(C_DIR / "opaque.c"), "-o", str(tmp_path / "opaque.o")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "incomplete type" in proc.stderr
