"""The C programs under ASan+UBSan (gcc and clang), TSan and valgrind memcheck.

libcando and vsock_wrapper are built with meson ``-Db_sanitize=...`` into
``build/sanitizers/<flavour>/`` (once per session; ``tests/soak/reliability.py``),
the programs compiled the same way, and each run under the (instrumented) wrapper
with the sanitizer runtime first in ``LD_PRELOAD``.  valgrind runs the plain build
with ``--error-exitcode --leak-check=full --errors-for-leak-kinds=definite,indirect
--track-fds=yes``.  Every run must be clean: no report, no leak, no fd left open,
and no case may fail that passes in the plain run under the wrapper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "soak"))
import reliability as rel

# program -> (arguments, extra environment); sizes reduced to keep the suite fast.
PROGRAMS: dict[str, tuple[list[str], dict[str, str]]] = {
    "bad_input": ([], {}),
    "lib_kernel": (["local-cid=2"], {}),
    "vsock_conformance": ([], {"VSOCK_WRAPPER_FULL": "drop"}),
    "threads": (["per-thread=300", "churn=200", "forks=30"], {}),
    "faults": ([], {}),
    "soak": (["cycles=400", "datagrams=800", "rss-slack-kb=1000000"], {}),
    "load": (["clients=4", "count=60", "expect-all"], {}),
}
# valgrind: fork() in a threaded process leaves the child with other threads'
# half-made state (not leaks of the code under test), and it virtualises
# RLIMIT_NOFILE; those two cases run under the sanitizers only.  Its serialised
# threads make the fd-table churn slow: fewer rounds there.
VALGRIND_ARGS = {
    "threads": ["per-thread=300", "churn=60", "only=shared_instances,fdtab_churn"],
    "faults": ["skip=emfile"],
}
FLAVOURS = ["asan-gcc", "asan-clang", "valgrind"]


def _run(flavour: str, program: str, args: list[str], env: dict[str, str]) -> rel.Run:
    try:
        return rel.run(flavour, program, args, env=env, timeout=120)
    except rel.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


_native: dict[str, rel.Run] = {}


def native(program: str) -> rel.Run:
    """The plain build's run under the wrapper: the reference for the case results."""
    if program not in _native:
        args, env = PROGRAMS[program]
        _native[program] = _run("native", program, args, env)
    return _native[program]


def _failing(run: rel.Run) -> set[str]:
    return {name for name, res in rel.results(run.stdout).items() if res != "ok"}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("program", list(PROGRAMS))
def test_clean(flavour: str, program: str) -> None:
    args, env = PROGRAMS[program]
    if flavour == "valgrind":
        args = VALGRIND_ARGS.get(program, args)
    run = _run(flavour, program, args, env)
    assert not run.reports(), "sanitizer/memcheck reports:\n" + run.describe()
    assert not run.leaked_fds(), f"fds open at exit: {run.leaked_fds()}\n" + run.describe()
    assert run.returncode not in (96, 97, 98, 99), run.describe()  # the tools' exit codes
    ref = native(program)
    if program == "vsock_conformance":
        # Same observable behaviour as the plain build, line for line.
        assert run.returncode == ref.returncode == 0, run.describe()
        assert run.stdout.splitlines() == ref.stdout.splitlines(), run.describe()
        return
    results = rel.results(run.stdout)
    assert results, "no case results\n" + run.describe()
    # Known failures of the plain build (see test_bad_input.py) may fail here too;
    # nothing else may.
    new = _failing(run) - _failing(ref)
    assert not new, f"cases failing only under {flavour}: {sorted(new)}\n" + run.describe()
    if not _failing(ref):
        assert run.returncode == 0, run.describe()


def test_tsan_threads() -> None:
    """The concurrent program under ThreadSanitizer: no data race, no lock-order report."""
    run = _run("tsan", "threads", ["per-thread=300", "churn=200", "forks=20"], {})
    assert not run.reports(), "ThreadSanitizer reports:\n" + run.describe()
    assert run.returncode == 0, run.describe()
    assert rel.results(run.stdout) == {
        "shared_instances": "ok", "fdtab_churn": "ok", "fork_under_lock": "ok"}, run.describe()


def test_sanitizers_detect() -> None:
    """The harness would see a report: ASan flags a heap overflow made through libcando."""
    run = _run("asan-gcc", "bad_input", [], {"CANDO_BAD_INPUT_SELFTEST": "overflow"})
    assert run.reports() and run.returncode == 98, run.describe()
