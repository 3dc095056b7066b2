"""hypothesis drives random arguments through the whole Python API (Server, Client,
their methods, raw ``cando._cando.lib`` calls) in a subprocess under the wrapper:
the interpreter never crashes, every failure is a documented exception.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

DRIVER = Path(__file__).resolve().parent / "soak" / "hypothesis_driver.py"
EXAMPLES = 500


def test_hypothesis_whole_api(wrapped_env: Callable[..., dict[str, str]]) -> None:
    pytest.importorskip("hypothesis", reason="pip install '.[test]' (hypothesis)")
    env = wrapped_env(VSOCK_WRAPPER_FULL="drop", PYTHONFAULTHANDLER="1")
    proc = subprocess.run([sys.executable, str(DRIVER), str(EXAMPLES)], env=env,
                          capture_output=True, text=True, timeout=150, check=False)
    shown = f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr[-8000:]}"
    assert proc.returncode == 0, shown  # a crash is a negative status (a signal)
    lines = proc.stdout.splitlines()
    for name in ("constructors", "methods", "raw_io", "raw_create"):
        assert f"{name}: ok" in lines, shown
    assert lines[-1].startswith("done: "), shown
    start, end = (int(f.split("=")[1]) for f in lines[-1].split()[1:])
    assert start == end, "fds leaked by the random calls\n" + shown
