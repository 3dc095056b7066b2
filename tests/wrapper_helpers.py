"""Helpers for the vsock_wrapper tests: find (or build) the preload library,
make environments for processes under it, run Python code there.

The library is found, in order: ``$CANDO_WRAPPER``; the installed package
(``cando.wrapper_path()``); else it is built with meson into
``<repo>/build/wrapper-tests``.
"""

from __future__ import annotations

import os
import shutil
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
