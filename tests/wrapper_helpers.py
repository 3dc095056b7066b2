"""Helpers the tests share: find (or build) the vsock_wrapper preload library,
make environments for processes under it, run Python code there, follow
processes a test started.

The library is found, in order: ``$CANDO_WRAPPER``; the installed package
(``cando.wrapper_path()``); else it is built with meson into
``<repo>/build/wrapper-tests``.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Sequence

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CONFORMANCE = TESTS / "conformance"


def find_wrapper() -> str:
    env = os.environ.get("CANDO_WRAPPER")
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(f"CANDO_WRAPPER={env} does not exist")
        return os.path.abspath(env)
    try:
        import cando  # type: ignore[import-not-found]

        path = cando.wrapper_path()
        if os.path.isfile(path):
            return path
    except Exception:  # not installed (yet): build it
        pass
    build = REPO / "build" / "wrapper-tests"
    if not (build / "build.ninja").exists():
        subprocess.run(["meson", "setup", str(build), "-Dwrapper=true"], cwd=REPO,
                       check=True, capture_output=True, text=True)
    subprocess.run(["meson", "compile", "-C", str(build), "vsock_wrapper"], check=True,
                   capture_output=True, text=True)
    return str(build / "wrapper" / "libvsock_wrapper.so")


def unique_namespace(tag: str = "w") -> str:
    """A world nobody else (no other test, no concurrent run) uses."""
    return f"{tag}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def wrapped_env(lib: str, namespace: str, cid: int = 2, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSOCK_WRAPPER_")}
    env.update(LD_PRELOAD=lib, VSOCK_WRAPPER_NAMESPACE=namespace, VSOCK_WRAPPER_CID=str(cid))
    env.update(extra)
    return env


def run_py(code: str, env: dict[str, str], args: Sequence[str] = (), timeout: float = 60,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler on PATH"
    return cc


PROC_TIMEOUT = 60  # seconds a process a test started may take to answer or end


def finish(proc: subprocess.Popen[str], kill: bool = False) -> tuple[int, str, str]:
    """Wait for (or, with ``kill``, end) a process this test started; its status and output."""
    if kill and proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=PROC_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=PROC_TIMEOUT)
    return proc.returncode, out, err


def next_line(proc: subprocess.Popen[str], stream: str = "stdout",
              timeout: float = PROC_TIMEOUT) -> str:
    """The next line ``proc`` writes to ``stream``; fails rather than hangs."""
    pipe = getattr(proc, stream)
    ready = select.select([pipe], [], [], timeout)[0]
    assert ready, f"no output from {proc.args!r} within {timeout} s"
    line = pipe.readline()
    assert line, f"{proc.args!r} ended early: {finish(proc)}"
    return str(line).rstrip("\n")


def sockname(fd: int) -> tuple[int, int]:
    """``getsockname`` of ``fd`` as Python's socket module reports it."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        cid, port = sock.getsockname()
        return int(cid), int(port)
    finally:
        sock.close()
