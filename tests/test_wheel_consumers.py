"""C programs built against the installed wheel, the way its users would.

Three routes to the same flags: ``python -m cando --cflags --libs``,
``pkg-config`` with ``PKG_CONFIG_PATH=$(python -m cando --pkgconfigdir)``, and a
meson project that says ``dependency('cando')``. Each program sends a datagram
and receives it, under vsock_wrapper. Everything must point into the installed
package, never the source or build tree.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from conftest import REPO

import cando

PACKAGE = Path(cando.__file__).resolve().parent
SOURCE_DIRS = ("include", "lib", "bindings", "wrapper", "build")
TIMEOUT = 120

PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <cando/vsock-udp.h>

int main(void)
{
	struct udo_vsock_udp_server_create_info sinfo = { .vcid = VMADDR_CID_ANY, .port = -1 };
	struct udo_vsock_udp *server = udo_vsock_udp_server_create(NULL, &sinfo);
	if (!server) {
		perror("server_create");
		return 1;
	}
	struct udo_vsock_udp_client_create_info cinfo = {
		.vcid = VMADDR_CID_HOST, .port = udo_vsock_udp_get_port(server) };
	struct udo_vsock_udp *client = udo_vsock_udp_client_create(NULL, &cinfo);
	if (!client) {
		perror("client_create");
		return 1;
	}
	const char *msg = "from a wheel consumer";
	char buf[64] = { 0 };
	struct sockaddr_vm from;
	ssize_t sent = udo_vsock_udp_client_send_data(client, msg, strlen(msg), NULL);
	ssize_t got = udo_vsock_udp_server_recv_data(server, buf, sizeof(buf) - 1, &from, NULL);
	printf("sent %zd got %zd '%s' from %u port %d\n", sent, got, buf, from.svm_cid,
		udo_vsock_udp_get_port(server));
	udo_vsock_udp_destroy(client);
	udo_vsock_udp_destroy(server);
	return got == (ssize_t)strlen(msg) ? 0 : 1;
}
"""

MESON_BUILD = """
project('wheel-consumer', 'c', default_options : ['c_std=gnu11', 'warning_level=2',
                                                   'werror=true'])
cando = dependency('cando', method : 'pkg-config')
executable('consumer', 'consumer.c', dependencies : cando)
"""


def module(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "cando", *args], capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1, proc.stdout  # one line, numpy-config style
    return proc.stdout.strip()


def pkg_config_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = module("--pkgconfigdir")
    env.pop("PKG_CONFIG_LIBDIR", None)
    return env


def pkg_config(*args: str) -> str:
    tool = shutil.which("pkg-config") or shutil.which("pkgconf")
    assert tool, "pkg-config is missing (.ci/install-deps installs it)"
    proc = subprocess.run([tool, *args, "cando"], env=pkg_config_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def paths_in(flags: list[str]) -> list[Path]:
    """The directories named by -I, -L and -Wl,-rpath, resolved."""
    found = []
    for flag in flags:
        for prefix in ("-I", "-L", "-Wl,-rpath,"):
            if flag.startswith(prefix):
                found.append(Path(flag[len(prefix):]).resolve())
                break
    return found


def assert_installed(flags: list[str]) -> None:
    paths = paths_in(flags)
    assert len(paths) == 3, flags
    for path in paths:
        assert path.is_dir(), path
        assert path.is_relative_to(PACKAGE), f"{path} is not in the installed package"
        # The venv may live inside the clone (.venv, as in CI): what matters is
        # that no flag points at the source or build folders.
        assert not any(path.is_relative_to(REPO / d) for d in SOURCE_DIRS), (
            f"{path} is in the source tree")
    assert "-lcando" in flags


def check_run(run_wrapped: Callable[..., subprocess.CompletedProcess[str]],
              exe: Path) -> None:
    proc = run_wrapped([str(exe)])
    got = re.fullmatch(r"sent 21 got 21 'from a wheel consumer' from 2 port (\d+)\n",
                       proc.stdout)
    assert got and int(got[1]) >= 1024, proc.stdout
    # The loader took libcando.so from the installed package (the rpath).
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, timeout=TIMEOUT)
    line = next(x for x in ldd.stdout.splitlines() if "libcando.so" in x)
    assert str(PACKAGE / "libcando.so") in {str(Path(w).resolve()) for w in line.split()
                                             if w.startswith("/")}, line


def test_module_flags_match_the_package() -> None:
    assert module("--pkgconfigdir") == cando.get_pkgconfig_dir()
    assert Path(cando.get_pkgconfig_dir(), "cando.pc").is_file()
    assert_installed(shlex.split(module("--cflags", "--libs")))
    assert module("--cflags") == f"-I{cando.get_include()}"
    # The console script takes the same flags.
    script = Path(sys.executable).parent / "cando-vsock"
    proc = subprocess.run([str(script), "--libs"], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.stdout.strip() == module("--libs")


def test_module_flags_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "cando", "--cflags", "--bogus"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2 and "--bogus" in proc.stderr and proc.stdout == ""


def test_pkg_config_agrees_with_the_module() -> None:
    assert pkg_config("--modversion") == cando.__version__
    flags = shlex.split(pkg_config("--cflags", "--libs"))
    assert_installed(flags)
    ours = shlex.split(module("--cflags", "--libs"))
    assert paths_in(flags) == paths_in(ours)
    pc = Path(cando.get_pkgconfig_dir(), "cando.pc").read_text()
    assert "prefix=${pcfiledir}/.." in pc and str(REPO) not in pc  # relocatable


def test_c_program_with_module_flags(cc: str, tmp_path: Path,
                                     run_wrapped: Callable[...,
                                                           subprocess.CompletedProcess[str]]
                                     ) -> None:
    src = tmp_path / "consumer.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "consumer"
    cflags = shlex.split(module("--cflags"))
    libs = shlex.split(module("--libs"))
    proc = subprocess.run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", *cflags,
                           str(src), "-o", str(exe), *libs],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    check_run(run_wrapped, exe)


def test_c_program_with_pkg_config(cc: str, tmp_path: Path,
                                   run_wrapped: Callable[..., subprocess.CompletedProcess[str]]
                                   ) -> None:
    src = tmp_path / "consumer.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "consumer"
    flags = shlex.split(pkg_config("--cflags", "--libs"))
    proc = subprocess.run([cc, "-std=gnu11", str(src), "-o", str(exe), *flags],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    check_run(run_wrapped, exe)


def test_meson_project_finds_cando(tmp_path: Path,
                                   run_wrapped: Callable[..., subprocess.CompletedProcess[str]]
                                   ) -> None:
    bindir = Path(sys.executable).parent
    meson = shutil.which("meson", path=str(bindir)) or shutil.which("meson")
    if meson is None:
        pytest.fail("meson is missing: it is in the test extra (pip install '.[test]')")
    project = tmp_path / "project"
    project.mkdir()
    (project / "meson.build").write_text(MESON_BUILD)
    (project / "consumer.c").write_text(PROGRAM)
    env = pkg_config_env()
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"  # ninja from the test extra
    build = tmp_path / "build"
    for argv in ([meson, "setup", str(build), str(project)], [meson, "compile", "-C", str(build)]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    log = (build / "meson-logs" / "meson-log.txt").read_text()
    assert "Run-time dependency cando found: YES 0.1.0" in log
    check_run(run_wrapped, build / "consumer")
