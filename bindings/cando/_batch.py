"""Batched vsock datagrams: many per system call (sendmmsg/recvmmsg).

Thin functions over ``udo_vsock_udp_send_batch`` / ``udo_vsock_udp_recv_batch``
(``<cando/vsock-udp-batch.h>``), working on a socket's fd. What runs per
datagram is C (``cando._hot``): sends borrow each datagram where it is; the
receive arrays are pooled per shape and reused, and the results are built
from them in C, so a call allocates only what it returns:

- :func:`send_many` sends every datagram of a sequence and returns how many
  went (as ``sendmmsg``: fewer when the socket stops accepting part-way).
- :func:`recv_many` returns up to ``count`` ``(data, (cid, port))`` pairs: it
  waits for the first datagram, then takes what is queued (``MSG_WAITFORONE``).
- :func:`recv_many_into` receives into one caller buffer cut into
  ``bufsize`` slots, and returns ``(nbytes, (cid, port))`` per datagram: no
  copy of the data, nothing allocated but the returned list.

Failures raise :class:`OSError` subclasses, as the rest of cando does; a bad
argument raises ``TypeError``/``ValueError`` before any C call.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, List, Sequence, Tuple

from ._args import INT_MAX as _INT_MAX
from ._args import check_address
from ._args import check_flags as _check_flags
from ._args import check_int as _check_int
from ._cando import lib
from ._hot import Batch, _send_batch
from .buffer import Buffer, release_view, writable_view
from .errors import error_from_errno

__all__ = ["BATCH_MAX", "recv_many", "recv_many_into", "send_many"]

Address = Tuple[int, int]

#: Datagrams per sendmmsg/recvmmsg call inside the library (larger batches take several).
BATCH_MAX: int = lib.UDO_VSOCK_UDP_BATCH_MAX
MSG_WAITFORONE: int = lib.MSG_WAITFORONE

_MAX_COUNT = 1 << 20
_MAX_BUFSIZE = 1 << 30


# Batch objects (the C arrays of a receive) are taken out of this pool for
# the length of one call and given back after it (list.pop/append are
# atomic): concurrent calls, and a signal handler that batches while a call
# waits in EINTR, never share one. A few are kept, holding little memory.
_POOL: List[Batch] = []
_POOL_KEEP = 4
_POOL_KEEP_BYTES = 1 << 22

# The last destination tuple and its checked value: replaced whole, never mutated.
_LAST_DEST: Tuple[object, Address | None] = (object(), None)


def _fail(ret: int) -> None:
    raise error_from_errno(-ret, None)


def _received(ret: Any) -> bool:
    """After a Batch call: True for results; False to retry after EINTR (once
    Python's signal handlers ran, PEP 475); else raise for the errno."""
    if type(ret) is list:
        return True
    if ret != -_errno.EINTR:
        _fail(ret)
    return False


def _dest(address: Address | None) -> Address | None:
    """The destination of one call, checked (the very tuple of the last call
    was checked then: a tuple cannot change)."""
    global _LAST_DEST
    if address is None:
        return None
    last = _LAST_DEST
    if address is last[0]:
        return last[1]
    checked = check_address(address)  # (2.0, 1) == (2, 1): no cache by equality
    if type(address) is tuple:
        _LAST_DEST = (address, checked)
    return checked


def _take() -> Batch:
    try:
        return _POOL.pop()
    except IndexError:
        return Batch()


def _give(batch: Batch) -> None:
    if len(_POOL) < _POOL_KEEP and batch.nbytes <= _POOL_KEEP_BYTES:
        _POOL.append(batch)


def send_many(fd: int, datagrams: Sequence[Any], address: Address | None = None,
              flags: int = 0) -> int:
    """Send each bytes-like object of ``datagrams`` as one datagram on ``fd``.

    ``address`` is the ``(cid, port)`` destination, or ``None`` on a connected
    socket. Returns the number of datagrams sent: all of them, or fewer when
    the socket stopped accepting part-way (the rest were not sent). An empty
    sequence sends nothing and returns 0; an empty datagram is a ``ValueError``
    (the C API sends no 0-byte datagrams).
    """
    if type(fd) is not int or not 0 <= fd <= _INT_MAX:
        _check_int("fd", fd, 0, _INT_MAX)
    try:
        items = tuple(datagrams)  # one snapshot: what is counted is what is sent
    except TypeError:
        raise TypeError("datagrams must be a sequence of bytes-like objects") from None
    if not items:
        return 0
    dest = _dest(address)
    flags = _check_flags(flags)
    while True:
        # In C: every datagram borrowed where it is (none can change size
        # meanwhile), laid out in an array, sent (udo_vsock_udp_send_batch).
        ret = _send_batch(fd, items, dest, flags)
        if ret is None:
            _refuse(items)
        elif ret >= 0:
            return ret
        elif ret != -_errno.EINTR:
            _fail(ret)


def _refuse(items: Tuple[Any, ...]) -> None:
    """Raise for the first datagram _send_batch would not take."""
    for d in items:
        try:
            view = memoryview(d.view if type(d) is Buffer else d)
        except TypeError:
            raise TypeError("datagrams must be contiguous bytes-like objects") from None
        with view:
            if not view.contiguous:
                raise TypeError("datagrams must be contiguous bytes-like objects")
            if not view.nbytes:
                raise ValueError("an empty datagram: the C API sends no 0-byte datagrams")
    raise ValueError("a datagram changed while being sent")


def recv_many(fd: int, count: int, bufsize: int,
              flags: int = MSG_WAITFORONE) -> List[Tuple[bytes, Address]]:
    """Receive up to ``count`` datagrams of at most ``bufsize`` bytes on ``fd``.

    By default (``MSG_WAITFORONE``) it waits for the first datagram, then
    takes what is already queued; add ``MSG_DONTWAIT`` not to wait at all
    (``BlockingIOError`` when nothing is queued). Longer datagrams are
    truncated to ``bufsize``, as ``recvfrom`` does. Returns
    ``[(data, (cid, port)), ...]`` in arrival order.
    """
    # Checked inline, cheapest first; _check_int raises the error that says why.
    if type(fd) is not int or not 0 <= fd <= _INT_MAX:
        _check_int("fd", fd, 0, _INT_MAX)
    if type(count) is not int or not 0 < count <= _MAX_COUNT:
        _check_int("count", count, 1, _MAX_COUNT)
    if type(bufsize) is not int or not 0 < bufsize <= _MAX_BUFSIZE:
        _check_int("bufsize", bufsize, 1, _MAX_BUFSIZE)
    flags = _check_flags(flags)
    batch = _take()
    try:
        # In C: a bytes object per datagram (cut to its slot: with MSG_TRUNC
        # some sockets report the untruncated length) and its sender.
        while True:
            got = batch.recv(fd, bufsize, flags, count)
            if _received(got):
                return got  # type: ignore[no-any-return]
    finally:
        _give(batch)


def recv_many_into(fd: int, buffer: Any, bufsize: int,
                   flags: int = MSG_WAITFORONE) -> List[Tuple[int, Address]]:
    """Receive datagrams straight into ``buffer``, one per ``bufsize`` slot.

    ``buffer`` (writable, contiguous, at least ``bufsize`` bytes) holds
    ``len(buffer) // bufsize`` slots; datagram ``i`` lands at offset
    ``i * bufsize``. Returns ``[(nbytes, (cid, port)), ...]``. Flags as
    :func:`recv_many`; with ``MSG_TRUNC`` a socket that reports a datagram's
    untruncated length (AF_UNIX does, vsock does not) reports it here too, as
    ``recv_into`` does. The buffer is borrowed for the call; nothing is copied.
    """
    _check_int("fd", fd, 0, _INT_MAX)
    _check_int("bufsize", bufsize, 1, _MAX_BUFSIZE)
    flags = _check_flags(flags)
    batch = _take()
    try:
        while True:
            got = batch.recv_into(fd, bufsize, flags, buffer)  # borrowed for the call
            if got is None:
                _refuse_into(buffer, bufsize)
            if _received(got):
                return got  # type: ignore[no-any-return]
    finally:
        _give(batch)


def _refuse_into(buffer: Any, bufsize: int) -> None:
    """Raise for a buffer Batch.recv_into would not take."""
    view = writable_view(buffer)  # the TypeError that says why
    try:
        size = len(view)
    finally:
        release_view(view)
    raise ValueError(f"buffer ({size} bytes) is smaller than bufsize ({bufsize})")
