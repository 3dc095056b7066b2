"""Static checks of the Python code, in the test suite so CI runs them: ruff on
everything Python in the repository, mypy --strict on the package (the
configuration is pyproject.toml's)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_ruff() -> None:
    proc = _run("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = _run("mypy", "--strict", "bindings/cando")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout
