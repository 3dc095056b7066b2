"""tests/c/bad_input.c: every exported function x every kind of bad argument.

At least 150 cases, one line each, each the documented negative result with
``errno`` set (contract.md), run natively (no transport: every create fails),
under vsock_wrapper and on the real kernel (the sanitizer and valgrind runs are in
``test_sanitizers.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "soak"))
import reliability as rel

MIN_CASES = 150


def _run(wrapped: bool) -> rel.Run:
    try:
        return rel.run("native", "bad_input", wrapped=wrapped, timeout=60)
    except rel.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


def _check(run: rel.Run, mode: str) -> None:
    results = rel.results(run.stdout)
    assert len(results) >= MIN_CASES, run.describe()
    assert f"done: {len(results)} cases" in run.stdout, run.describe()
    assert f"({mode})" in run.stdout, run.describe()
    failing = {k: v for k, v in results.items() if v != "ok"}
    assert not failing, "\n".join(f"{k}: {v}" for k, v in failing.items()) + "\n" + run.describe()
    assert run.returncode == 0, run.describe()


def test_bad_input_native() -> None:
    _check(_run(wrapped=False), "native")


def test_bad_input_wrapped() -> None:
    # recv_data/server_recv_data with size SIZE_MAX: the kernel's recvfrom clamps
    # the length (MAX_RW_COUNT) and answers EAGAIN; the wrapper passes SIZE_MAX
    # on as an iovec length and gets EINVAL.  See docs/reliability.md.
    _check(_run(wrapped=True), "live")


def test_bad_input_cases_are_distinct() -> None:
    run = _run(wrapped=False)
    names = [ln.split(":", 1)[0] for ln in run.stdout.splitlines()
             if rel.RESULT.match(ln)]
    assert len(names) == len(set(names)) >= MIN_CASES
