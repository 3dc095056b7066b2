"""Faults: a peer killed mid-stream, the receiver closed, signals during a blocking
receive, a low RLIMIT_NOFILE.  C (tests/c/faults.c) and Python, under the wrapper.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "soak"))
import reliability as rel

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def faults_run() -> rel.Run:
    try:
        return rel.run("native", "faults", timeout=60)
    except rel.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.parametrize("case", ["peer_killed", "receiver_closed", "eintr", "emfile"])
def test_faults_c(faults_run: rel.Run, case: str) -> None:
    assert rel.results(faults_run.stdout).get(case) == "ok", faults_run.describe()


PY_EINTR_RETRY = r"""
import signal, cando
srv = cando.Server(port=-1)
cli = cando.Client(2, srv.port)
count = 0
def handler(sig, frame):
    global count
    count += 1
    if count == 3:
        cli.send(b"wake")  # the retried receive gets it
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
data, addr = srv.recvfrom(64)
signal.setitimer(signal.ITIMER_REAL, 0)
print(count, data.decode())
srv.close(); cli.close()
"""

PY_EINTR_RAISE = r"""
import signal, cando
class Stop(Exception):
    pass
def handler(sig, frame):
    raise Stop()
signal.signal(signal.SIGALRM, handler)
srv = cando.Server(port=-1)
signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
try:
    srv.recvfrom(64)
except Stop:
    print("raised")
finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
    srv.close()
"""

PY_RECEIVER_CLOSED = r"""
import errno, cando
srv = cando.Server(port=-1)
cli = cando.Client(2, srv.port)
cli.send(b"one"); assert srv.recvfrom(8)[0] == b"one"
srv.close()
try:
    cli.send(b"two")
except OSError as exc:
    print(errno.errorcode[exc.errno], "sendto" in str(exc))
cli.close()
"""

PY_EMFILE = r"""
import errno, os, resource, cando
fds = lambda: len(os.listdir("/proc/self/fd"))
before = fds()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (before + 3, hard))
made, err = [], None
try:
    for _ in range(10):
        made.append(cando.Server(port=-1))
except OSError as exc:
    err = errno.errorcode[exc.errno]
for s in made:
    s.close()
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
with cando.Server(port=-1):
    pass
print(err, len(made) > 0, fds() == before)
"""


def test_python_eintr_retried(run_wrapped: Runner) -> None:
    out = run_wrapped(PY_EINTR_RETRY, timeout=30).stdout.split()
    assert int(out[0]) >= 3 and out[1] == "wake"


def test_python_eintr_handler_raises(run_wrapped: Runner) -> None:
    assert run_wrapped(PY_EINTR_RAISE, timeout=30).stdout.strip() == "raised"


def test_python_receiver_closed(run_wrapped: Runner) -> None:
    out = run_wrapped(PY_RECEIVER_CLOSED, timeout=30).stdout.split()
    assert out == ["EHOSTUNREACH", "True"]


def test_python_emfile(run_wrapped: Runner) -> None:
    out = run_wrapped(PY_EMFILE, timeout=30).stdout.split()
    assert out == ["EMFILE", "True", "True"]
