"""tests/c/threads.c under the wrapper: shared instances across 8+8 threads, the
wrapper's fd table under concurrent socket/close/dup, fork while threads hold its
lock (a deadlocked child would be killed by its alarm, and the whole run has a
timeout).  ASan and TSan runs are in test_sanitizers.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "soak"))
import reliability as rel


@pytest.fixture(scope="module")
def threads_run() -> rel.Run:
    try:
        return rel.run("native", "threads", ["per-thread=2000", "churn=1000", "forks=200"],
                       env={"VSOCK_WRAPPER_FULL": "block"}, timeout=90)
    except rel.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.parametrize("case", ["shared_instances", "fdtab_churn", "fork_under_lock"])
def test_threads(threads_run: rel.Run, case: str) -> None:
    assert "timed out" not in threads_run.stderr, threads_run.describe()
    assert rel.results(threads_run.stdout).get(case) == "ok", threads_run.describe()


def test_threads_figures(threads_run: rel.Run) -> None:
    figs = {ln.split()[1]: rel.figures(ln) for ln in threads_run.stdout.splitlines()
            if ln.startswith("figures:")}
    shared = figs["shared_instances"]
    assert shared["received"] == shared["datagrams"] == 16000, threads_run.describe()
    assert shared["corrupted"] == shared["duplicated"] == shared["missing"] == 0
    assert figs["fork_under_lock"]["forks"] == 200 and figs["fork_under_lock"]["hung"] == 0
    assert figs["fdtab_churn"]["fds_after"] == figs["fdtab_churn"]["fds_before"]
