"""``cando.Buffer``: receive memory cando owns, passed to C with no object per call.

Datagram cases run in the ``wrapped_worker`` process (functions ``w_*``) and
return what they saw; argument checks run here, with no transport.
"""

from __future__ import annotations

import copy
import sys
import tracemalloc
from typing import Any

import pytest

import cando
from cando import Buffer


def test_buffer_is_zeroed_memory_of_its_size() -> None:
    buf = Buffer(16)
    assert len(buf) == 16
    assert bytes(buf) == bytes(16)
    assert buf[3] == 0 and buf[2:5] == b"\0\0\0" and isinstance(buf[2:5], bytes)
    buf.view[0:3] = b"abc"
    assert buf[0:3] == b"abc" and buf[0] == ord("a") and buf[-16] == ord("a")
    assert buf.view.readonly is False and buf.view.nbytes == 16
    assert repr(buf) == "<cando.Buffer size=16>"
    with pytest.raises(IndexError):
        buf[16]


@pytest.mark.parametrize("size, exc", [(0, ValueError), (-1, ValueError),
                                       ((1 << 30) + 1, ValueError), (True, TypeError),
                                       (1.0, TypeError), ("8", TypeError), (None, TypeError)])
def test_buffer_refuses_bad_sizes(size: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="size"):
        Buffer(size)


def test_buffer_is_bytes_like_where_python_allows() -> None:
    """PEP 688 (Python 3.12+) lets a class be a buffer; before it, ``view`` is the way."""
    buf = Buffer(8)
    buf.view[:2] = b"hi"
    if sys.version_info >= (3, 12):
        assert memoryview(buf).tobytes()[:2] == b"hi"  # type: ignore[arg-type]
    else:
        with pytest.raises(TypeError):
            memoryview(buf)  # type: ignore[arg-type]
    assert buf.__buffer__(0).tobytes()[:2] == b"hi"


def w_receive_into_buffer() -> dict[str, Any]:
    with cando.Server(port=-1) as srv, cando.Client(2, srv.port) as cli:
        buf = Buffer(64)
        out: dict[str, Any] = {}
        cli.send(b"first datagram")
        n = srv.recv_into(buf)
        out["recv_into"] = (n, buf[:n])
        cli.send(b"0123456789")
        n = srv.recv_into(buf, 4)
        out["nbytes"] = (n, buf[:n])
        cli.send(b"with sender")
        n, sender = srv.recvfrom_into(buf)
        out["recvfrom_into"] = (n, buf[:n], sender, cli.getsockname()[1])
        for word in (b"one", b"two", b"three"):
            cli.send(word)
        got = srv.recv_many_into(Buffer(3 * 16), 16)
        out["recv_many_into"] = [(n, s[1] == cli.getsockname()[1]) for n, s in got]
        return out


def test_receives_into_a_buffer(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_receive_into_buffer)
    assert out["recv_into"] == (14, b"first datagram")
    assert out["nbytes"] == (4, b"0123")
    n, data, sender, cli_port = out["recvfrom_into"]
    assert (n, data) == (11, b"with sender") and sender == (2, cli_port)
    assert out["recv_many_into"] == [(3, True), (3, True), (5, True)]


def w_allocations() -> dict[str, int]:
    """Peak bytes tracemalloc sees over 7 receives of queued datagrams."""
    peaks = {}
    with cando.Server(port=-1) as srv, cando.Client(2, srv.port) as cli:
        for name, buf in (("buffer", Buffer(1024)), ("bytearray", bytearray(1024)),
                          ("memoryview", memoryview(bytearray(1024))), ("recv", 1024)):
            # recv(1024) is the control: it makes a bytes object per call.
            receive = srv.recv if name == "recv" else srv.recv_into
            for _ in range(8):
                cli.send(b"x" * 64)
            receive(buf)  # the first call may fill caches
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            # Unrolled: a loop's iterator would be an allocation of its own.
            receive(buf)
            receive(buf)
            receive(buf)
            receive(buf)
            receive(buf)
            receive(buf)
            receive(buf)
            peaks[name] = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
    return peaks


def test_recv_into_allocates_nothing(wrapped_worker: Any) -> None:
    """recv_into borrows the caller's buffer (a Buffer, or any writable bytes-like
    object) for the call: no Python object is made per datagram."""
    peaks = wrapped_worker.call(w_allocations)
    assert (peaks["buffer"], peaks["bytearray"], peaks["memoryview"]) == (0, 0, 0), peaks
    # The probe sees the bytes object recv() returns (so the 0s above are no blind spot).
    assert peaks["recv"] >= 64


def test_buffer_copies_its_bytes_and_cannot_be_subclassed() -> None:
    buf = Buffer(4)
    buf.view[:] = b"abcd"
    other = copy.copy(buf)
    deep = copy.deepcopy(buf)
    buf.view[0:1] = b"X"
    assert bytes(other) == bytes(deep) == b"abcd" and bytes(buf) == b"Xbcd"
    with pytest.raises(TypeError, match="subclassed"):
        type("Sub", (Buffer,), {})
