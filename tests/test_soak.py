"""Leaks, reduced: create/destroy cycles (half failing) and datagrams; fds and RSS flat.

The full run (100,000 cycles, 1,000,000 datagrams) is
``python3 tests/soak/reliability.py soak``; figures in docs/reliability.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "soak"))
import reliability as rel


def test_soak_flat() -> None:
    try:
        run = rel.run("native", "soak", ["cycles=10000", "datagrams=100000"], timeout=120)
    except rel.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert run.returncode == 0 and "soak: ok" in run.stdout, run.describe()
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("figures:")]
    assert len(lines) == 2, run.describe()
    cycles, dgrams = (rel.figures(ln) for ln in lines)
    assert cycles["cycles"] == 10000 and cycles["failing"] == 5000, run.describe()
    assert dgrams["datagrams"] == 100000, run.describe()
    for fig in (cycles, dgrams):
        assert fig["errors"] == 0, run.describe()
        assert fig["fds_end"] == fig["fds_at_10pct"], run.describe()
        assert fig["rss_kb_end"] - fig["rss_kb_at_10pct"] <= 512, run.describe()
