"""Load: client processes x datagrams of random size (each with a checksum) into one
server driven by epoll over ``udo_vsock_udp_server_recv_data`` (tests/c/load.c).

* ``VSOCK_WRAPPER_FULL=block``: every datagram delivered, intact.
* ``VSOCK_WRAPPER_FULL=drop``: none corrupted or duplicated; loss counted and reported.
* The real-kernel lane (QEMU, VMCI): a smaller static run, none corrupted; the same
  boot runs ``bad_input`` and ``faults`` on the kernel.

Full size (16 x 20,000): ``python3 tests/soak/reliability.py load [--full drop]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "soak"))
sys.path.insert(0, str(HERE / "kernel"))
import reliability as rel  # noqa: E402  (tests/soak/reliability.py)
import vm  # noqa: E402  (tests/kernel/vm.py)

CLIENTS, COUNT = 16, 400


def _load(full: str, mode: str) -> tuple[rel.Run, dict[str, float]]:
    try:
        run = rel.run("native", "load", [f"clients={CLIENTS}", f"count={COUNT}", mode],
                      env={"VSOCK_WRAPPER_FULL": full}, timeout=120)
    except rel.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    return run, rel.figures(run.stdout)


def test_load_block_all_delivered_intact() -> None:
    run, fig = _load("block", "expect-all")
    assert run.returncode == 0 and "load: ok" in run.stdout, run.describe()
    assert fig["sent"] == fig["received"] == fig["intact"] == CLIENTS * COUNT, run.describe()
    assert fig["corrupted"] == fig["duplicated"] == fig["lost"] == 0, run.describe()
    assert fig["failed_clients"] == 0, run.describe()


def test_load_drop_none_corrupted_loss_counted() -> None:
    run, fig = _load("drop", "count-loss")
    assert run.returncode == 0 and "load: ok" in run.stdout, run.describe()
    assert fig["corrupted"] == fig["duplicated"] == 0, run.describe()
    assert fig["sent"] == CLIENTS * COUNT, run.describe()  # drop reports dropped as sent
    assert fig["intact"] + fig["lost"] == fig["sent"], run.describe()
    assert fig["intact"] == fig["received"] > 0, run.describe()


# ------------------------------------------------------------------ real kernel


@pytest.fixture(scope="module")
def kernel_boot() -> vm.BootResult:
    ok, why = vm.qemu_available()
    if not ok:
        pytest.skip(f"QEMU cannot run here: {why}")
    try:
        programs = [
            vm.Program(rel.program("load", "native", static=True),
                       ("clients=4", "count=300", "count-loss")),
            vm.Program(rel.program("bad_input", "native", static=True)),
            vm.Program(rel.program("faults", "native", static=True)),
        ]
        boot = vm.run_programs(programs, timeout=300, program_timeout=120)
    except (rel.BuildError, vm.VMError) as exc:
        pytest.fail(str(exc), pytrace=False)
    if not boot.ok:
        pytest.fail(boot.describe_failure(), pytrace=False)
    return boot


def test_kernel_load_none_corrupted(kernel_boot: vm.BootResult) -> None:
    prog = kernel_boot["load-static"]
    fig = rel.figures(prog.output)
    assert prog.status == 0 and "load: ok" in prog.output, prog.output
    # VMCI may refuse a send outright under load (counted as not sent, reported on
    # stderr): that is loss, like a drop; what arrives must be intact.
    assert 0 < fig["received"] <= fig["sent"] <= 1200, prog.output
    assert fig["intact"] == fig["received"], prog.output
    assert fig["corrupted"] == fig["duplicated"] == 0, prog.output


def test_kernel_bad_input(kernel_boot: vm.BootResult) -> None:
    prog = kernel_boot["bad_input-static"]
    results = rel.results(prog.output)
    failing = {k: v for k, v in results.items() if v != "ok"}
    assert len(results) >= 150 and "(live)" in prog.output, prog.output
    assert not failing and prog.status == 0, prog.output


def test_kernel_faults(kernel_boot: vm.BootResult) -> None:
    prog = kernel_boot["faults-static"]
    assert rel.results(prog.output) == {
        "peer_killed": "ok", "receiver_closed": "ok", "eintr": "ok", "emfile": "ok"
    }, prog.output
