"""Shared fixtures: the installed package, vsock_wrapper worlds, C compilation.

Tests run against the *installed* cando (``pip install .``), never the
source tree: what they prove is what users get.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cffi
import pytest
from wrapper_helpers import compiler, unique_namespace
from wrapper_helpers import wrapped_env as env_for

import cando

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@pytest.fixture(scope="session")
def wrapper_lib() -> str:
    path = cando.wrapper_path()
    assert os.path.isfile(path), f"vsock_wrapper missing from the installed package: {path}"
    return path


@pytest.fixture
def namespace() -> str:
    return unique_namespace()


WrappedEnv = Callable[..., "dict[str, str]"]


@pytest.fixture
def wrapped_env(wrapper_lib: str, namespace: str) -> WrappedEnv:
    """Factory: the environment of a process under the wrapper in this test's world."""

    def make(cid: int = 2, **extra: str) -> dict[str, str]:
        return env_for(wrapper_lib, namespace, cid, **extra)

    return make


@pytest.fixture
def run_wrapped(wrapped_env: WrappedEnv) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command (a list) or Python code (a str) under the wrapper; capture its output."""

    def run(cmd: str | Sequence[str], cid: int = 2, timeout: float = 60,
            check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", cmd] if isinstance(cmd, str) else list(cmd)
        proc = subprocess.run(argv, env=wrapped_env(cid, **extra), capture_output=True,
                              text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, (
                f"{argv!r} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    return run


class WrappedWorker:
    """One Python process under the wrapper, reused by the tests of a session.

    Functions given to :meth:`call` run *in that process*, so they exercise
    cando in-process on the emulated transport. They must be module-level
    (picklable) and should return what they observed, for the test to assert.
    """

    def __init__(self, wrapper: str, namespace: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        saved = dict(os.environ)
        os.environ.update(LD_PRELOAD=wrapper, VSOCK_WRAPPER_NAMESPACE=namespace,
                          VSOCK_WRAPPER_CID="2")
        try:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx)
            # Start the worker now, while the environment carries LD_PRELOAD.
            assert self._pool.submit(os.getpid).result(timeout=60) != os.getpid()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.namespace = namespace

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 60) -> Any:
        return self._pool.submit(fn, *args).result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="session")
def wrapped_worker(wrapper_lib: str) -> Iterator[WrappedWorker]:
    worker = WrappedWorker(wrapper_lib, unique_namespace("worker"))
    yield worker
    worker.close()


@pytest.fixture(scope="session")
def cc() -> str:
    return compiler()


@pytest.fixture(scope="session")
def cxx() -> str:
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert compiler, "no C++ compiler (c++/g++) on PATH"
    return compiler


def consumer_flags() -> list[str]:
    """Compile and link flags for a C program using the installed cando."""
    libdir = cando.get_library_dir()
    return ["-I", cando.get_include(), "-L", libdir, "-lcando", f"-Wl,-rpath,{libdir}"]


@contextlib.contextmanager
def captured_log(level: int | None = None) -> Iterator[int]:
    """libcando logs to a non-blocking pipe (at ``level``, if given); yields its
    read end. The global log state is restored after: level NONE, fd 1, colours."""
    lib = cando._cando.lib
    r, w = os.pipe()
    os.set_blocking(r, False)
    lib.udo_log_set_write_fd(w)
    try:
        if level is not None:
            lib.udo_log_set_level(level)
        yield r
    finally:
        lib.udo_log_set_level(lib.UDO_LOG_NONE)
        lib.udo_log_set_write_fd(1)
        lib.udo_log_reset_colors()
        os.close(r)
        os.close(w)


# The private layout of struct udo_vsock_udp, as contract.md documents it.
PRIVATE_LAYOUT = cffi.FFI()
PRIVATE_LAYOUT.cdef(
    """
    struct mirror_sockaddr_vm {
        unsigned short svm_family;
        unsigned short svm_reserved1;
        unsigned int svm_port;
        unsigned int svm_cid;
        unsigned char svm_flags;
        unsigned char svm_zero[3];
    };
    struct mirror_error { unsigned int code; char buffer[512]; };
    struct mirror_vsock {
        struct mirror_error err;
        _Bool free;
        int fd;
        unsigned int vcid;
        int port;
        struct mirror_sockaddr_vm addr;
    };
    """
)


def priv(buf: Any) -> Any:
    """View caller memory through the documented private layout."""
    return PRIVATE_LAYOUT.cast("struct mirror_vsock *",
                               int(cando._cando.ffi.cast("uintptr_t", buf)))
