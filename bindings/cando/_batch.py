"""Batched vsock datagrams: many per system call (sendmmsg/recvmmsg).

Thin functions over ``udo_vsock_udp_send_batch`` / ``udo_vsock_udp_recv_batch``
(``<cando/vsock-udp-batch.h>``), working on a socket's fd. The cffi arrays a
batch needs are allocated once per thread and shape and reused, so a call
allocates only what it returns:

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
from array import array as _array
from typing import Any, Dict, Iterable, List, Literal, Sequence, Tuple

from ._args import INT_MAX as _INT_MAX
from ._args import check_address, sockaddr
from ._args import check_int as _check_int
from ._args import flags_ptr as _flags_ptr
from ._cando import ffi, lib
from .buffer import release_view, writable_view
from .errors import error_from_errno

__all__ = ["BATCH_MAX", "recv_many", "recv_many_into", "send_many"]

Address = Tuple[int, int]

#: Datagrams per sendmmsg/recvmmsg call inside the library (larger batches take several).
BATCH_MAX: int = lib.UDO_VSOCK_UDP_BATCH_MAX
MSG_WAITFORONE: int = lib.MSG_WAITFORONE
_MSG_TRUNC: int = lib.MSG_TRUNC

_MAX_COUNT = 1 << 20
_MAX_BUFSIZE = 1 << 30
# Datagrams that small are copied into one block (one b"".join) rather than
# pinned one by one (ffi.from_buffer each): cheaper below this average size.
_JOIN_BELOW = 2048
_CHARS: Any = ffi.typeof("char[]")
_alloc_uninit: Any = ffi.new_allocator(should_clear_after_alloc=False)

# Views of the C arrays as machine words, to read results without a cffi
# attribute access per field. struct udo_vsock_udp_dgram: `len` is a size_t;
# struct sockaddr_vm: svm_port and svm_cid are 32-bit words.
_DGRAM_WORDS, _rem = divmod(ffi.sizeof("struct udo_vsock_udp_dgram"), ffi.sizeof("size_t"))
assert _rem == 0 and ffi.offsetof("struct udo_vsock_udp_dgram", "len") % ffi.sizeof("size_t") == 0
_LEN_WORD = ffi.offsetof("struct udo_vsock_udp_dgram", "len") // ffi.sizeof("size_t")
_DATA_WORD = ffi.offsetof("struct udo_vsock_udp_dgram", "data") // ffi.sizeof("size_t")
_SIZE_WORD = ffi.offsetof("struct udo_vsock_udp_dgram", "size") // ffi.sizeof("size_t")
_SIZE_T: Literal["I", "Q"] = "Q" if ffi.sizeof("size_t") == 8 else "I"
_ADDR_WORDS, _rem = divmod(ffi.sizeof("struct sockaddr_vm"), 4)
assert _rem == 0
_PORT_WORD = ffi.offsetof("struct sockaddr_vm", "svm_port") // 4
_CID_WORD = ffi.offsetof("struct sockaddr_vm", "svm_cid") // 4
assert _ADDR_WORDS == 4 and _CID_WORD == _PORT_WORD + 1  # the 64-bit keys of _Arrays
del _rem


class _Arrays:
    """One batch shape's C arrays, with word views for reading results."""

    __slots__ = ("addrs", "data", "dgrams", "keys", "lens", "ports", "size", "view")

    def __init__(self, count: int, with_addrs: bool = True) -> None:
        self.size = count
        self.dgrams = ffi.new("struct udo_vsock_udp_dgram[]", count)
        self.lens = memoryview(ffi.buffer(self.dgrams)).cast(_SIZE_T)
        self.addrs: Any = ffi.new("struct sockaddr_vm[]", count) if with_addrs else ffi.NULL
        self.ports: memoryview | None = None
        self.keys: memoryview | None = None
        if with_addrs:
            self.ports = ports = memoryview(ffi.buffer(self.addrs)).cast("I")
            # Every other 64-bit word here holds one entry's svm_port and svm_cid.
            self.keys = ports[_PORT_WORD:len(ports) - 1].cast("B").cast("Q")
        for i in range(count if with_addrs else 0):
            self.dgrams[i].addr = self.addrs + i
        self.data: Any = None  # the receive buffer these entries point into
        self.view: Any = None  # its ffi.buffer


# Arrays are taken out of these pools for the length of one call and given
# back after its results are read (list.pop/append are atomic): concurrent
# calls, and a signal handler that batches while a call waits in EINTR, never
# share one. Receive arrays are kept per shape, a few shapes and bytes at most.
_SEND_POOL: List[_Arrays] = []
_RECV_POOL: Dict[Tuple[int, int], List[_Arrays]] = {}
_INTO_POOL: Dict[Tuple[int, int, int], List[_Arrays]] = {}
_POOL_SHAPES = 8
_POOL_KEEP_BYTES = 1 << 22

# One sockaddr_vm per destination: read by C, never written once shared.
_DESTS: Dict[Address, Any] = {}
_LAST_DEST: Tuple[object, Any] = (object(), None)  # replaced whole, never mutated


def _fail(ret: int) -> None:
    raise error_from_errno(-ret, None)


def _call(fn: Any, *args: Any) -> int:
    """One batch call; retried on EINTR once Python's signal handlers ran (PEP 475)."""
    while True:
        ret: int = fn(*args)
        if ret >= 0:
            return ret
        if ret != -_errno.EINTR:
            _fail(ret)


def _dest(address: Address | None) -> Any:
    """The destination of one call, checked: a sockaddr_vm, cached per address
    (C only reads it; ~500 ns a call to build)."""
    global _LAST_DEST
    if address is None:
        return ffi.NULL
    last = _LAST_DEST
    if address is last[0]:  # the very tuple of the last call: checked then
        return last[1]
    checked = check_address(address)  # first: (2.0, 1) == (2, 1) must not hit the cache
    dest = _DESTS.get(checked)
    if dest is None:
        dest = sockaddr(checked)
        if len(_DESTS) >= 64:
            _DESTS.clear()
        _DESTS[checked] = dest
    if type(address) is tuple:  # immutable: the same object is the same address
        _LAST_DEST = (address, dest)
    return dest


def _give(pools: Dict[Any, List[_Arrays]], key: Any, arr: _Arrays, nbytes: int) -> None:
    """Keep arr for the next call of its shape, within the pools' bounds."""
    pool = pools.get(key)
    if pool is None:
        if len(pools) >= _POOL_SHAPES or nbytes > _POOL_KEEP_BYTES:
            return
        pool = pools.setdefault(key, [])
    if len(pool) < 4:
        pool.append(arr)


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
    count = len(items)
    if count == 0:
        return 0
    dest = _dest(address)
    info = _flags_ptr(flags)
    views: List[Any] = []  # from_buffer views this call made: released if it raises
    try:
        try:
            # len() is the byte size of everything but multi-byte memoryviews
            # (and arrays), which join() shows: their len() undercounts.
            lens = list(map(len, items))
            total = sum(lens)
            if total < _JOIN_BELOW * count:
                # Small datagrams: one copy into one block, laid out in C.
                joined = b"".join(items)
                if len(joined) != total:
                    lens = [memoryview(d).nbytes for d in items]
                    if sum(lens) != len(joined):  # C reads len(joined) bytes, no more
                        raise ValueError("a datagram changed size while being sent")
            else:
                # Large ones: pinned where they are (no copy); sizes from the pins.
                for d in items:
                    views.append(ffi.from_buffer(_CHARS, d))
                lens = list(map(len, views))
        except (TypeError, BufferError):
            raise TypeError("datagrams must be contiguous bytes-like objects") from None
        if not min(lens):
            raise ValueError("an empty datagram: the C API sends no 0-byte datagrams")
        try:
            arr = _SEND_POOL.pop()  # pooled arrays hold BATCH_MAX entries
        except IndexError:
            arr = _Arrays(BATCH_MAX, with_addrs=False)
        if count > arr.size:
            _SEND_POOL.append(arr)
            arr = _Arrays(count, with_addrs=False)  # for this call alone
        try:
            if not views:
                # cffi passes the list of sizes as a size_t array of its own.
                return _call(lib.cando_send_joined, fd, arr.dgrams, joined, lens, count,
                             dest, info)
            words, dw, end = arr.lens, _DGRAM_WORDS, count * _DGRAM_WORDS
            words[_DATA_WORD:end:dw] = _array(_SIZE_T,
                                              [int(ffi.cast("uintptr_t", v)) for v in views])
            words[_SIZE_WORD:end:dw] = _array(_SIZE_T, lens)
            return _call(lib.udo_vsock_udp_send_batch, fd, arr.dgrams, count, dest, info)
        finally:
            if len(_SEND_POOL) < 4 and arr.size == BATCH_MAX:
                _SEND_POOL.append(arr)
    except BaseException:
        for view in views:
            release_view(view)
        raise


def _recv_arrays(count: int, bufsize: int) -> _Arrays:
    arr = _Arrays(count)
    arr.data = _alloc_uninit("char[]", count * bufsize)  # only received bytes are read
    arr.view = ffi.buffer(arr.data)
    for i in range(count):
        d = arr.dgrams[i]
        d.data = arr.data + i * bufsize
        d.size = bufsize
    return arr


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
    info = _flags_ptr(flags)
    key = (count, bufsize)
    try:
        arr = _RECV_POOL[key].pop()
    except (KeyError, IndexError):
        arr = _recv_arrays(count, bufsize)
    try:
        n = _call(lib.udo_vsock_udp_recv_batch, fd, arr.dgrams, count, info)
    except BaseException:
        _give(_RECV_POOL, key, arr, count * bufsize)  # BlockingIOError is routine
        raise
    # Slot i is buf[i * bufsize:][:len]. Lengths and senders come out as
    # whole columns; a comprehension of plain slices beats map() over
    # __getitem__ here (140 vs 250 ns per datagram, timeit, 64 x 64 B).
    buf, lens = arr.view, _lens(arr, n)
    if flags & _MSG_TRUNC:  # then some sockets report the untruncated length
        lens = [min(length, bufsize) for length in lens]
    datas = [buf[start:start + length]
             for start, length in zip(range(0, n * bufsize, bufsize), lens, strict=True)]
    got = list(zip(datas, _senders(arr, n), strict=True))
    _give(_RECV_POOL, key, arr, count * bufsize)
    return got


def _lens(arr: _Arrays, n: int) -> List[int]:
    """The ``len`` column of the first ``n`` entries."""
    lens: List[int] = arr.lens[_LEN_WORD:n * _DGRAM_WORDS:_DGRAM_WORDS].tolist()
    return lens


def _senders(arr: _Arrays, n: int) -> Iterable[Address]:
    """The ``(cid, port)`` of the first ``n`` entries, from two strided columns.

    A batch from one sender (the common case) shares one tuple.
    """
    words, keys, end = arr.ports, arr.keys, n * _ADDR_WORDS
    assert words is not None and keys is not None
    first = keys[0] if n else 0
    if keys[0:2 * n:2].tolist().count(first) == n:
        return [(words[_CID_WORD], words[_PORT_WORD])] * n
    return zip(words[_CID_WORD:end:_ADDR_WORDS].tolist(),
               words[_PORT_WORD:end:_ADDR_WORDS].tolist(), strict=True)


def recv_many_into(fd: int, buffer: Any, bufsize: int,
                   flags: int = MSG_WAITFORONE) -> List[Tuple[int, Address]]:
    """Receive datagrams straight into ``buffer``, one per ``bufsize`` slot.

    ``buffer`` (writable, contiguous, at least ``bufsize`` bytes) holds
    ``len(buffer) // bufsize`` slots; datagram ``i`` lands at offset
    ``i * bufsize``. Returns ``[(nbytes, (cid, port)), ...]``. Flags as
    :func:`recv_many`; with ``MSG_TRUNC`` a socket that reports a datagram's
    untruncated length (AF_UNIX does, vsock does not) reports it here too, as
    ``recv_into`` does. The arrays are reused while the same buffer comes back.
    """
    _check_int("fd", fd, 0, _INT_MAX)
    _check_int("bufsize", bufsize, 1, _MAX_BUFSIZE)
    view = writable_view(buffer)
    try:
        count = len(view) // bufsize
        if count < 1:
            raise ValueError(f"buffer ({len(view)} bytes) is smaller than bufsize ({bufsize})")
        count = min(count, _MAX_COUNT)
        info = _flags_ptr(flags)
        key = (int(ffi.cast("uintptr_t", view)), count, bufsize)
        try:
            arr = _INTO_POOL.get(key, []).pop()  # entries into this very buffer, these slots
        except IndexError:
            arr = _Arrays(count)
            for i in range(count):
                d = arr.dgrams[i]
                d.data = view + i * bufsize
                d.size = bufsize
        try:
            n = _call(lib.udo_vsock_udp_recv_batch, fd, arr.dgrams, count, info)
        except BaseException:
            _give(_INTO_POOL, key, arr, 0)  # BlockingIOError is routine
            raise
    except BaseException:
        release_view(view)  # a traceback must not keep it: see release_view
        raise
    del view
    # Whole columns at C speed (strided views, zip): no bytecode per datagram.
    got = list(zip(_lens(arr, n), _senders(arr, n), strict=True))
    _give(_INTO_POOL, key, arr, 0)
    return got
