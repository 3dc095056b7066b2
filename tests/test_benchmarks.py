"""The benchmarks run and write valid JSON (smallest size, few iterations: not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, WrappedEnv

BENCH = REPO / "benchmarks"


def _check(doc: dict[str, Any], variants: set[str]) -> None:
    assert {r["variant"] for r in doc["results"]} >= variants
    for r in doc["results"]:
        assert r["ns_per_dgram"] > 0 and r["dgrams_per_s"] > 0 and r["samples_ns"]
    assert doc["ratios"]


@pytest.fixture(scope="module")
def bench_c(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("bench") / "bench_c"
    subprocess.run(["sh", str(BENCH / "build.sh"), str(out), sys.executable], check=True,
                   capture_output=True, text=True, timeout=120)
    return str(out)


def test_bench_c_runs(bench_c: str, wrapped_env: WrappedEnv) -> None:
    proc = subprocess.run([bench_c, "--sizes", "0,64", "--rounds", "1", "--min-ms", "1"],
                          env=wrapped_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["transport"] == "vsock_wrapper"
    _check(doc, {"unix_raw", "vsock_raw", "vsock_lib", "vsock_batch", "vsock_mmsg"})
    # The library refuses 0-byte datagrams, so its variants skip size 0.
    assert not any(r["variant"] == "vsock_lib" and r["size"] == 0 for r in doc["results"])


def test_bench_c_callgrind_mode(bench_c: str, wrapped_env: WrappedEnv) -> None:
    proc = subprocess.run([bench_c, "--only", "vsock_batch", "--iters", "64", "--sizes", "64"],
                          env=wrapped_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_bench_py_runs_and_plots(bench_c: str, wrapped_env: WrappedEnv, tmp_path: Path) -> None:
    out = tmp_path / "py.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_py.py"), "--sizes", "64", "--rounds", "1",
         "--min-ms", "1", "--bench-c", bench_c, "--json", str(out)],
        env=wrapped_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    _check(doc, {"socket", "cando", "cando_into", "cando_buffer", "batch", "batch_into",
                 "cffi_bare", "batch_bare", "c_raw"})
    allocations = doc["allocations"]
    assert set(allocations) >= {"harness", "cando_recv_into", "cando_recv_into_buffer",
                                "batch_recv_many_into"}
    assert allocations["cando_recv_into_buffer"]["net_peak_bytes"] == 0
    png = tmp_path / "plot.png"
    subprocess.run([sys.executable, str(BENCH / "plot.py"), str(png), str(out)], check=True,
                   capture_output=True, timeout=120)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _table_names(script: str, env: dict[str, str]) -> list[str]:
    """Run a table-printing benchmark with tiny counts; the first column of its rows."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--rounds", "1", "--count", "64"],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]


def test_decompose_runs(wrapped_env: WrappedEnv) -> None:
    assert _table_names("decompose.py", wrapped_env()) == [
        "bare", "send", "recv", "recv_into(Buffer)",
        "bare", "send_many", "recv_many", "recv_many_into(Buffer)"]

