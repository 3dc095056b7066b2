"""C and C++ programs built against the installed headers and libcando.so.

``tests/c/consumer.c`` and ``tests/c/consumer.cpp`` are compiled with
``-Wall -Wextra -Werror`` (C: ``-std=gnu11``) using ``cando.get_include()`` and
``cando.get_library_dir()`` (``consumer_flags()``), then run under vsock_wrapper:
one datagram each way, checked from their output. Each public header must also
compile on its own, in C and in C++.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import consumer_flags

import cando
from cando._cando import lib

C_DIR = Path(__file__).resolve().parent / "c"
HEADERS = ("macros.h", "log.h", "vsock-udp.h")
C_FLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror"]
CXX_FLAGS = ["-Wall", "-Wextra", "-Werror"]


def compile_program(compiler: str, flags: list[str], src: Path, out: Path) -> Path:
    proc = subprocess.run([compiler, *flags, str(src), "-o", str(out), *consumer_flags()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{compiler} failed:\n{proc.stderr}"
    return out


def parse(stdout: str) -> dict[str, str]:
    seen: dict[str, str] = {}
    for line in stdout.splitlines():
        key, _, value = line.partition(" ")
        assert key not in seen, f"duplicate line {key!r}"
        seen[key] = value
    return seen


def test_c_consumer(cc: str, tmp_path: Path,
                    run_wrapped: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    exe = compile_program(cc, C_FLAGS, C_DIR / "consumer.c", tmp_path / "consumer")
    proc = run_wrapped([str(exe)])
    lines = proc.stdout.splitlines()
    assert lines[-1].endswith("printed by udo_log_print"), lines
    out = parse("\n".join(lines[:-1]))
    assert int(out["sizeof"]) == lib.udo_vsock_udp_get_sizeof()
    assert out["local_cid"] == "2"
    port = int(out["server_port"])
    client_port = int(out["client_port"])
    assert 1024 <= port < 0xFFFFFFFF and client_port != port
    assert out["client_sent"] == "12"
    assert out["server_got"] == f"12 hello from C|2 {client_port}"
    assert out["server_sent"] == "7"
    assert out["client_got"] == f"7 hi back|2 {port}"
    assert out["client_fd_after_destroy"] == "-1"
    assert out["bad_cid"] == (
        f"{errno.EADDRNOTAVAIL} bind: Cannot assign requested address "
        "(the CID is neither VMADDR_CID_ANY nor the local CID)")
    assert out["own_error"] == "4097 own error 42"


def test_cxx_consumer(cxx: str, tmp_path: Path,
                      run_wrapped: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    exe = compile_program(cxx, CXX_FLAGS, C_DIR / "consumer.cpp", tmp_path / "consumer_cxx")
    # C linkage: the program refers to the unmangled C symbols.
    undefined = subprocess.run(["nm", "-u", str(exe)], capture_output=True, text=True,
                               check=True, timeout=60).stdout
    assert "udo_vsock_udp_server_create" in undefined.split()
    proc = run_wrapped([str(exe)])
    out = parse(proc.stdout)
    port = int(out["server_port"])
    client_port = int(out["client_port"])
    assert out["client_sent"] == "14"
    assert out["server_got"] == f"14 hello from C++|2 {client_port}"
    assert out["server_again"] == f"{-errno.EAGAIN} {errno.EAGAIN}"
    assert out["server_sent"] == "7"
    assert out["client_got"] == f"7 hi back|2 {port}"


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("lang", ["c", "c++"])
def test_header_compiles_alone(header: str, lang: str, cc: str, cxx: str,
                               tmp_path: Path) -> None:
    suffix = ".c" if lang == "c" else ".cpp"
    src = tmp_path / f"alone{suffix}"
    src.write_text(f"#include <cando/{header}>\nint main(void) {{ return 0; }}\n"
                   if lang == "c" else
                   f"#include <cando/{header}>\nint main() {{ return 0; }}\n")
    compiler, flags = (cc, C_FLAGS) if lang == "c" else (cxx, CXX_FLAGS)
    include = cando.get_include()
    assert os.path.isfile(os.path.join(include, "cando", header))
    proc = subprocess.run([compiler, *flags, "-I", include, "-c", str(src), "-o",
                           str(tmp_path / "alone.o")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("lang", ["c", "c++"])
def test_every_installed_header_compiles_alone(lang: str, cc: str, cxx: str,
                                               tmp_path: Path) -> None:
    """Also any header installed beyond the three documented ones."""
    include = Path(cando.get_include())
    headers = sorted(p.name for p in (include / "cando").glob("*.h"))
    assert set(HEADERS) <= set(headers)
    compiler, flags = (cc, C_FLAGS) if lang == "c" else (cxx, CXX_FLAGS)
    for header in headers:
        src = tmp_path / ("alone.c" if lang == "c" else "alone.cpp")
        src.write_text(f"#include <cando/{header}>\nint main() {{ return 0; }}\n")
        proc = subprocess.run([compiler, *flags, "-I", str(include), "-c", str(src), "-o",
                               str(tmp_path / "alone.o")],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, f"<cando/{header}>:\n{proc.stderr}"


def test_cxx_sees_c_linkage(cxx: str, tmp_path: Path) -> None:
    """Declarations carry extern "C" in C++: every reference is to an unmangled symbol."""
    src = tmp_path / "link.cpp"
    src.write_text(
        "#include <cando/vsock-udp.h>\n"
        "int main() {\n"
        "  udo_log_set_level(UDO_LOG_NONE);\n"
        "  return udo_vsock_udp_get_sizeof() > 0 ? 0 : 1;\n"
        "}\n")
    obj = tmp_path / "link.o"
    subprocess.run([cxx, *CXX_FLAGS, "-I", cando.get_include(), "-c", str(src), "-o", str(obj)],
                   check=True, timeout=120)
    names: list[Any] = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True,
                                      check=True, timeout=60).stdout.split()
    assert "udo_vsock_udp_get_sizeof" in names
    assert "udo_log_set_level" in names
