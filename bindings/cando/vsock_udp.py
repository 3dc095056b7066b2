"""Pythonic vsock datagram sockets over libcando, shaped like :mod:`socket`.

:class:`Server` and :class:`Client` each own one libcando instance, kept in
memory this object allocates (``udo_vsock_udp_get_sizeof()`` bytes) and
releases in :meth:`~VsockSocket.close`. :class:`Connection` is the
socket-like object :meth:`Server.accept` returns for the new fd (and can wrap
any AF_VSOCK datagram fd). Addresses are ``(cid, port)`` tuples, as in
Python's :mod:`socket`.

All three behave like a datagram :class:`socket.socket`: context managers,
:meth:`~VsockSocket.fileno`, ``recv``/``recvfrom``/``recv_into``/
``recvfrom_into``/``send``/``sendto`` with ``MSG_*`` flags,
``settimeout``/``gettimeout``/``setblocking``/``getblocking`` with socket's
semantics (``TimeoutError`` when a timeout expires, ``BlockingIOError`` when
non-blocking; a timeout makes the fd ``O_NONBLOCK`` and waits with
``poll``, as CPython does), ``EINTR`` retried per PEP 475, a
``ResourceWarning`` for an object never closed. Failures raise the
:class:`OSError` subclass :mod:`cando.errors` maps the ``errno`` to, carrying
the library's message. A bad argument raises ``TypeError``/``ValueError``
before any C call.

The per-datagram methods (``send``, ``sendto``, ``recv``, ``recv_into``,
``recvfrom``, ``recvfrom_into``) are C methods of the base class,
:class:`cando._hot.Core` (``bindings/hot/core.c``), for the common call:
positional arguments, no flags. Every other call comes back to the
``_*_checked`` methods here, and every failed call to :meth:`~VsockSocket._after`:
argument checks, retries, timeouts and exceptions are this module's and
:mod:`cando.errors`'.

Thread safety: as with :class:`socket.socket`, one object may be used from
several threads (say one receiving, one sending). What is cached for the
calls is either never written once shared (flags) or taken by one call at a
time (recv's receive buffer, in C), so concurrent calls cannot clobber each
other.

A failed call of the Python paths releases the cffi view it made of the caller's buffer before
its exception leaves: a traceback keeps frames, and a live view of a
``memoryview`` collected in a cycle with it crashes the interpreter (see
:func:`cando.buffer.release_view`).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import math
import os
import select
import socket as _socket
import time
import warnings
from typing import Any, Callable, List, Sequence, Tuple, TypeVar

from . import _batch
from ._args import INT_MAX as _INT_MAX
from ._args import U32_MAX as _U32_MAX
from ._args import check_address as _check_address
from ._args import check_int as _check_int
from ._args import flags_ptr as _flags_ptr
from ._args import sockaddr as _sockaddr
from ._cando import ffi, lib
from ._hot import Core as _Core
from ._hot import _set_buffer_type
from .buffer import Buffer, release_view, writable_view
from .errors import closed_error, error_from_errno, timeout_error

__all__ = [
    "VMADDR_CID_ANY",
    "VMADDR_CID_HOST",
    "VMADDR_CID_HYPERVISOR",
    "VMADDR_CID_LOCAL",
    "VMADDR_PORT_ANY",
    "Address",
    "Client",
    "Connection",
    "Server",
    "VsockSocket",
    "instance_size",
    "local_cid",
]

Address = Tuple[int, int]
_Self = TypeVar("_Self", bound="VsockSocket")


VMADDR_CID_ANY: int = lib.VMADDR_CID_ANY
VMADDR_CID_HYPERVISOR: int = lib.VMADDR_CID_HYPERVISOR
VMADDR_CID_LOCAL: int = lib.VMADDR_CID_LOCAL
VMADDR_CID_HOST: int = lib.VMADDR_CID_HOST
VMADDR_PORT_ANY: int = lib.VMADDR_PORT_ANY

_MAX_BUFSIZE = 1 << 30
# Timeouts as socket.settimeout takes them (its limit: nanoseconds in an
# int64), waited out in poll() slices.
_MAX_TIMEOUT = float((1 << 63) - 1) / 1e9
_POLL_MAX_MS = (1 << 31) - 1
_EINTR = _errno.EINTR
_EAGAIN = _errno.EAGAIN
_NULL: Any = ffi.NULL
_AF_VSOCK: int = lib.AF_VSOCK
_SOCKADDR_VM_SIZE: int = ffi.sizeof("struct sockaddr_vm")
# Receive buffers of the Python paths: no memset of bytes about to be overwritten.
_alloc_uninit: Callable[..., Any] = ffi.new_allocator(should_clear_after_alloc=False)

_from_buffer: Callable[..., Any] = ffi.from_buffer
_CHARS: Any = ffi.typeof("char[]")
_recv_data: Callable[..., int] = lib.udo_vsock_udp_recv_data
_send_data: Callable[..., int] = lib.udo_vsock_udp_send_data
_client_send_data: Callable[..., int] = lib.udo_vsock_udp_client_send_data
_server_recv_data: Callable[..., int] = lib.udo_vsock_udp_server_recv_data


# -- argument checks (pure Python: they run before any C call) ------------------------


def _rbuffer(obj: object) -> Any:
    """A payload the C API takes: ``bytes`` as they are (cffi passes them as
    ``const void *`` without a copy), other buffers through ``ffi.from_buffer``;
    size 0 is refused, as the C API refuses it."""
    if type(obj) is bytes:
        if obj:
            return obj
        raise ValueError("data is empty: the C API sends no 0-byte datagrams (size 0 is -EINVAL)")
    if type(obj) is Buffer:
        return obj._cdata  # never empty
    try:
        view = _from_buffer(_CHARS, obj, False)
    except (BufferError, TypeError) as exc:
        raise TypeError(
            f"data must be a contiguous bytes-like object, not {type(obj).__name__}: {exc}"
        ) from None
    if not len(view):
        release_view(view)
        raise ValueError("data is empty: the C API sends no 0-byte datagrams (size 0 is -EINVAL)")
    return view


def _receive_size(view: Any, nbytes: object) -> int:
    size: int = len(view)
    if type(nbytes) is not int or nbytes:
        size = _check_int("nbytes", nbytes, 0, size) or size
    if not size:
        raise ValueError("buffer is empty")
    return size


def _bufsize(bufsize: object) -> int:
    return _check_int("bufsize", bufsize, 1, _MAX_BUFSIZE)


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)):
        raise TypeError(f"timeout must be a number or None, not {type(value).__name__}")
    timeout = float(value)
    if math.isnan(timeout) or timeout < 0:
        raise ValueError("timeout value out of range (must be >= 0 or None)")
    if timeout > _MAX_TIMEOUT:  # inf included, as socket.settimeout refuses it
        raise OverflowError("timestamp out of range for platform time_t")
    return timeout


def _error(err: int, instance: Any = None) -> OSError:
    """The exception for a failure whose cause is ``err``; the instance may say more."""
    message = None
    if instance is not None and lib.udo_log_get_error_code(instance) == err:
        message = ffi.string(lib.udo_log_get_error(instance)).decode(errors="replace")
    return error_from_errno(err, message)


# -- getsockname(2)/getpeername(2): libcando has no call for them --------------------

_libc: Any = None


def _name(fd: int, peer: bool) -> Address:
    """The socket's (or its peer's) address, asked of the kernel (or of the wrapper)."""
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)  # LD_PRELOAD wrappers come first
        for fn in (libc.getsockname, libc.getpeername):
            fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
            fn.restype = ctypes.c_int
        _libc = libc
    addr = ffi.new("struct sockaddr_vm *")
    size = ctypes.c_uint32(_SOCKADDR_VM_SIZE)
    call = _libc.getpeername if peer else _libc.getsockname
    if call(fd, int(ffi.cast("uintptr_t", addr)), ctypes.byref(size)) < 0:
        err = ctypes.get_errno()
        raise error_from_errno(err, f"{'getpeername' if peer else 'getsockname'}: "
                                    f"{os.strerror(err)}")
    if addr.svm_family != _AF_VSOCK:
        raise OSError(_errno.EAFNOSUPPORT, f"fd {fd} is not an AF_VSOCK socket")
    return int(addr.svm_cid), int(addr.svm_port)


_set_buffer_type(Buffer)  # _hot receives into a Buffer through its view
_CLIENT = 1  # the instance kinds of _Core._new_instance: client_send_data for send(),
_SERVER = 2  # server_recv_data for recvfrom()


class VsockSocket(_Core):
    """What every cando datagram socket shares: fd, timeouts, receive and send.

    Not instantiated directly: see :class:`Server`, :class:`Client` and
    :class:`Connection`.
    """

    family: int = _socket.AF_VSOCK
    type: int = _socket.SOCK_DGRAM
    proto: int = 0

    # _fd, the fd (-1 once closed, and until __init__ has one), is a field of
    # _Core, which reads it without a dictionary lookup.
    _timeout: float | None = None

    def _init_fd(self, fd: int, timeout: float | None) -> None:
        self._fd = fd
        if timeout is not None:
            self.settimeout(timeout)

    # -- lifetime ---------------------------------------------------------
    def _release(self, fd: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the socket; calling it again does nothing."""
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            self._release(fd)
            self._drop_scratch()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._fd < 0

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._fd >= 0:
            try:
                warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
            finally:
                self.close()

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._fd < 0:
            return f"<cando.{name} closed>"
        return f"<cando.{name} fd={self._fd}, {self._describe()}>"

    def _describe(self) -> str:
        return ""

    def _live_fd(self) -> int:
        fd = self._fd
        if fd < 0:
            raise closed_error()
        return fd

    def fileno(self) -> int:
        """The socket's fd; -1 once closed."""
        return self._fd

    # -- addresses --------------------------------------------------------
    def getsockname(self) -> Address:
        """The local ``(cid, port)``, as ``getsockname(2)`` reports it.

        A socket that has not sent yet may be unbound:
        ``(VMADDR_CID_ANY, VMADDR_PORT_ANY)``.
        """
        return _name(self._live_fd(), peer=False)

    def getpeername(self) -> Address:
        """The connected peer's ``(cid, port)`` (``getpeername(2)``); ``ENOTCONN`` if none."""
        return _name(self._live_fd(), peer=True)

    @property
    def local_address(self) -> Address:
        """The local ``(cid, port)``: :meth:`getsockname`."""
        return self.getsockname()

    # -- timeouts, as socket.socket --------------------------------------
    def settimeout(self, value: float | None) -> None:
        """``None``: blocking; ``0``: non-blocking; ``> 0``: wait at most that many seconds.

        As in CPython, any timeout makes the fd ``O_NONBLOCK``; waits are
        ``poll(2)`` for the time left. An expired wait raises
        ``TimeoutError("timed out")``, a non-blocking call that would wait
        ``BlockingIOError``.
        """
        timeout = _check_timeout(value)
        os.set_blocking(self._live_fd(), timeout is None)
        self._timeout = timeout
        self._blocking = timeout is None  # read by the C methods

    def gettimeout(self) -> float | None:
        """The timeout in seconds, ``0.0`` when non-blocking, ``None`` when blocking."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """``setblocking(True)`` is ``settimeout(None)``, ``False`` is ``settimeout(0.0)``."""
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        """False when non-blocking (timeout 0.0); True otherwise, as ``socket.getblocking``."""
        return self._timeout != 0.0

    def _retry(self, ret: int, writing: bool, deadline: float, instance: Any = None) -> float:
        """After a failed call: return the deadline to retry with, or raise.

        A closed socket (the C call saw fd -1) raises ``EBADF``. ``EINTR``:
        retry (PEP 475; a signal handler that raises has already propagated
        by the time this frame starts). ``EAGAIN`` with a timeout: ``poll``
        for the time left, then retry. Anything else raises, with the
        instance's message if it names this failure.
        """
        if self._fd < 0:
            raise closed_error()
        err = -ret
        if err == _EINTR:
            return deadline
        timeout = self._timeout
        if err == _EAGAIN and timeout:
            now = time.monotonic()
            if not deadline:
                deadline = now + timeout
            remaining = deadline - now
            if remaining <= 0:
                raise timeout_error()
            poller = select.poll()
            poller.register(self._live_fd(), select.POLLOUT if writing else select.POLLIN)
            # poll() itself retries EINTR with the time left (PEP 475). It takes
            # an int of ms: a longer wait is polled out in slices.
            ready = poller.poll(min(math.ceil(remaining * 1000), _POLL_MAX_MS))
            if not ready and time.monotonic() >= deadline:
                raise timeout_error()
            return deadline
        raise _error(err, instance)

    def _after(self, n: int, writing: bool, deadline: float, with_instance: bool) -> float:
        """What the C methods of :class:`cando._hot.Core` call when their call gave ``n`` < 0:
        :meth:`_retry`, told the instance when the call was one of the instance's."""
        instance = self._instance if with_instance else None  # type: ignore[attr-defined]
        return self._retry(n, writing, deadline, instance)

    def _io(self, writing: bool, instance: Any, call: Callable[..., int], *args: Any) -> int:
        """``call(*args)``, a libcando I/O call, retried as :meth:`_retry` says."""
        deadline = 0.0
        while True:
            n = call(*args)
            if n >= 0:
                return n
            deadline = self._retry(n, writing, deadline, instance)

    # -- receive ----------------------------------------------------------
    def _recv_into_checked(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """:meth:`recv_into` with nbytes, flags, keywords, or arguments to check."""
        view = writable_view(buffer)
        try:  # costs nothing until something raises: see release_view
            size = _receive_size(view, nbytes)
            return self._receive(view, size, _NULL, _flags_ptr(flags))
        except BaseException:
            release_view(view)
            raise

    def _recvfrom_into_checked(self, buffer: Any, nbytes: int = 0,
                               flags: int = 0) -> Tuple[int, Address]:
        """:meth:`recvfrom_into` with nbytes, flags, keywords, or arguments to check."""
        view = writable_view(buffer)
        try:
            size = _receive_size(view, nbytes)
            info = _flags_ptr(flags)
            addr = ffi.new("struct sockaddr_vm *")
            n = self._recvfrom_raw(view, size, addr, info)
            return n, (int(addr.svm_cid), int(addr.svm_port))
        except BaseException:
            release_view(view)
            raise

    def _recvfrom_checked(self, bufsize: object, flags: object = 0) -> Tuple[bytes, Address]:
        """:meth:`recvfrom` with flags, a huge bufsize, or arguments to check."""
        size = _bufsize(bufsize)
        info = _flags_ptr(flags)
        buf = _alloc_uninit(_CHARS, size)  # only received bytes are read
        addr = ffi.new("struct sockaddr_vm *")
        n = self._recvfrom_raw(buf, size, addr, info)
        return ffi.buffer(buf, min(n, size))[:], (int(addr.svm_cid), int(addr.svm_port))

    def _receive(self, buf: Any, size: int, addr: Any, info: Any) -> int:
        """One receive (``udo_vsock_udp_recv_data``), the sender into ``addr`` unless NULL."""
        return self._io(False, None, _recv_data, self._fd, buf, size, addr, info)

    _recvfrom_raw = _receive  # a Server's goes through its instance

    def _recv_checked(self, bufsize: object, flags: object = 0) -> bytes:
        """:meth:`recv` with flags, a huge bufsize, or arguments to check."""
        size = _bufsize(bufsize)
        info = _flags_ptr(flags)
        buf = _alloc_uninit(_CHARS, size)
        n = self._receive(buf, size, _NULL, info)
        data: bytes = ffi.buffer(buf, min(n, size))[:]  # MSG_TRUNC may report more
        return data

    # -- send -------------------------------------------------------------
    def _sendto_checked(self, data: Any, address: Address, flags: int = 0) -> int:
        """:meth:`sendto` with flags, keywords, or arguments to check."""
        return self._send(data, _sockaddr(_check_address(address)), flags)

    def _send_checked(self, data: Any, flags: int = 0) -> int:
        """:meth:`send` with flags, keywords, or data to check."""
        return self._send(data, _NULL, flags)

    def _send(self, data: Any, addr: Any, flags: object) -> int:
        """``udo_vsock_udp_send_data`` to ``addr`` (a sockaddr_vm, or NULL: the peer)."""
        info = _flags_ptr(flags)
        view = _rbuffer(data)
        try:
            return self._io(True, None, _send_data, self._fd, view, len(view), addr, info)
        except BaseException:
            release_view(view)
            raise

    # -- batches (beyond the spec: <cando/vsock-udp-batch.h>) ----------------
    # They follow the fd's blocking mode: with a timeout set they do not wait
    # (BlockingIOError), since one sendmmsg/recvmmsg has no deadline to share.
    def send_many(self, datagrams: Sequence[Any], address: Address | None = None,
                  flags: int = 0) -> int:
        """Send each bytes-like object of ``datagrams`` as one datagram, in one system call.

        ``address`` is the ``(cid, port)`` destination, or ``None`` on a
        connected socket. Returns how many were sent. Calls
        ``udo_vsock_udp_send_batch`` (``sendmmsg``).
        """
        return _batch.send_many(self._live_fd(), datagrams, address, flags)

    def recv_many(self, count: int, bufsize: int,
                  flags: int = _batch.MSG_WAITFORONE) -> List[Tuple[bytes, Address]]:
        """Up to ``count`` datagrams of at most ``bufsize`` bytes, with their senders.

        Waits for the first, then takes what is queued (``MSG_WAITFORONE``).
        Calls ``udo_vsock_udp_recv_batch`` (``recvmmsg``).
        """
        return _batch.recv_many(self._live_fd(), count, bufsize, flags)

    def recv_many_into(self, buffer: Any, bufsize: int,
                       flags: int = _batch.MSG_WAITFORONE) -> List[Tuple[int, Address]]:
        """Datagrams straight into ``buffer``, one per ``bufsize`` slot: ``[(nbytes, sender)]``.

        Calls ``udo_vsock_udp_recv_batch`` (``recvmmsg``); nothing is copied.
        """
        return _batch.recv_many_into(self._live_fd(), buffer, bufsize, flags)


class _Instance(VsockSocket):
    """A socket that is a libcando instance, in memory this object owns."""

    def __init__(self, create: Callable[[Any, Any], Any], info_type: str, kind: int,
                 cid: object, port: object) -> None:
        cid = _check_int("cid", cid, 0, _U32_MAX)
        port = _check_int("port", port, -1, _INT_MAX)
        timeout = _socket.getdefaulttimeout()
        info = ffi.new(info_type, {"vcid": cid, "port": port})
        # udo_vsock_udp_get_sizeof() bytes the object owns (in its C half,
        # whose methods use the instance), freed with it.
        self._instance: Any = ffi.cast("struct udo_vsock_udp *", self._new_instance(kind))
        if create(self._instance, info) == _NULL:
            # Caller memory keeps the error record after a failed create.
            raise _error(ffi.errno, self._instance)
        self._init_fd(int(lib.udo_vsock_udp_get_fd(self._instance)), timeout)

    def _release(self, fd: int) -> None:
        """``udo_vsock_udp_destroy``: closes the fd, leaves the memory inert."""
        lib.udo_vsock_udp_destroy(self._instance)

    def close(self) -> None:
        """Close the socket (``udo_vsock_udp_destroy``); calling it again does nothing."""
        super().close()

    def fileno(self) -> int:
        """The socket's fd (``udo_vsock_udp_get_fd``); -1 once closed."""
        return -1 if self._fd < 0 else int(lib.udo_vsock_udp_get_fd(self._instance))

    def _describe(self) -> str:
        return f"cid={self.cid}, port={self.port}"

    def _live(self) -> Any:
        if self._fd < 0:
            raise closed_error()
        return self._instance

    @property
    def cid(self) -> int:
        """The CID given at creation (``udo_vsock_udp_get_vcid``)."""
        return int(lib.udo_vsock_udp_get_vcid(self._live()))

    @property
    def port(self) -> int:
        """The port: bound (servers, the kernel's choice for -1) or destination (clients).

        Calls ``udo_vsock_udp_get_port``.
        """
        return int(lib.udo_vsock_udp_get_port(self._live()))

    @property
    def last_error(self) -> Tuple[int, str]:
        """The instance's error record ``(code, message)`` of its last failure.

        Calls ``udo_log_get_error_code`` and ``udo_log_get_error``; ``(0, "")``
        before any failure. The code is an ``errno`` value or a
        ``UDO_LOG_ERR_*`` code.
        """
        inst = self._live()
        message = ffi.string(lib.udo_log_get_error(inst)).decode(errors="replace")
        return int(lib.udo_log_get_error_code(inst)), message


class Server(_Instance):
    """A datagram socket bound to ``(cid, port)`` (``udo_vsock_udp_server_create``).

    ``cid`` is ``VMADDR_CID_ANY`` or the local CID; ``port`` -1 lets the
    kernel choose (read it back from :attr:`port`). New sockets take
    :func:`socket.getdefaulttimeout`, as :class:`socket.socket` does.
    """

    def __init__(self, cid: int = VMADDR_CID_ANY, port: int = -1) -> None:
        super().__init__(lib.udo_vsock_udp_server_create,
                         "struct udo_vsock_udp_server_create_info *", _SERVER, cid, port)

    def _recvfrom_raw(self, buf: Any, size: int, addr: Any, info: Any) -> int:
        inst = self._instance
        return self._io(False, inst, _server_recv_data, inst, buf, size, addr, info)

    def getsockname(self) -> Address:
        """The bound ``(cid, port)`` (``udo_vsock_udp_get_vcid``, ``udo_vsock_udp_get_port``)."""
        inst = self._live()
        return int(lib.udo_vsock_udp_get_vcid(inst)), int(lib.udo_vsock_udp_get_port(inst))

    def accept(self, address: Address) -> Connection:
        """A new socket bound to this server's address and connected to ``address``.

        Calls ``udo_vsock_udp_server_accept`` and wraps the new fd in a
        :class:`Connection` (which owns and closes it). No Linux AF_VSOCK
        transport lets two sockets bind one address, so there it raises
        ``OSError`` with ``EADDRINUSE``.
        """
        checked = _check_address(address)
        inst = self._live()
        addr = _sockaddr(checked)
        fd = int(lib.udo_vsock_udp_server_accept(inst, addr))
        if fd < 0:
            raise _error(ffi.errno, inst)
        try:
            return Connection(fd, peer=checked)
        except BaseException:
            os.close(fd)  # the Connection never owned it
            raise


class Client(_Instance):
    """A datagram socket that sends to ``(cid, port)`` (``udo_vsock_udp_client_create``).

    The socket is not bound until it first sends (or :meth:`connect`\\s).
    :attr:`cid` and :attr:`port` are the destination.
    """

    def __init__(self, cid: int, port: int) -> None:
        super().__init__(lib.udo_vsock_udp_client_create,
                         "struct udo_vsock_udp_client_create_info *", _CLIENT, cid, port)

    @property
    def destination(self) -> Address:
        """The ``(cid, port)`` :meth:`send` sends to (``udo_vsock_udp_get_vcid``/``_port``)."""
        return self.cid, self.port

    def send_many(self, datagrams: Sequence[Any], address: Address | None = None,
                  flags: int = 0) -> int:
        """Send each datagram to ``address``, by default the destination, in one system call.

        Calls ``udo_vsock_udp_send_batch`` (``sendmmsg``).
        """
        return super().send_many(datagrams, self.destination if address is None else address,
                                 flags)

    def connect(self) -> None:
        """Make the destination the socket's peer (``udo_vsock_udp_client_connect``).

        After it, :meth:`getpeername` reports the destination and only its
        datagrams are meant for this socket.
        """
        inst = self._live()
        if lib.udo_vsock_udp_client_connect(inst) < 0:
            raise _error(ffi.errno, inst)

    def _send_checked(self, data: Any, flags: int = 0) -> int:
        """:meth:`send` with flags, keywords, or data to check."""
        info = _flags_ptr(flags)
        view = _rbuffer(data)
        inst = self._instance
        try:
            return self._io(True, inst, _client_send_data, inst, view, len(view), info)
        except BaseException:
            release_view(view)
            raise


class Connection(VsockSocket):
    """A socket-like object over an AF_VSOCK datagram fd (what :meth:`Server.accept` returns).

    It owns ``fd`` and closes it in :meth:`close`. ``peer``, if given, is
    the address the fd is connected to (:meth:`Server.accept` knows it); else
    it is asked of the kernel. An fd already ``O_NONBLOCK`` starts
    non-blocking (timeout 0.0); otherwise :func:`socket.getdefaulttimeout`
    applies. Sends without an address go to the peer
    (``udo_vsock_udp_send_data``); receives use ``udo_vsock_udp_recv_data``.
    """

    def __init__(self, fd: int, *, peer: Address | None = None) -> None:
        fd = _check_int("fd", fd, 0, _INT_MAX)
        if peer is not None:
            peer = _check_address(peer)
        _name(fd, peer=False)  # an AF_VSOCK socket, or OSError (the fd stays the caller's)
        self._peer = peer
        nonblocking = not os.get_blocking(fd)
        self._init_fd(fd, 0.0 if nonblocking else _socket.getdefaulttimeout())

    def _release(self, fd: int) -> None:
        os.close(fd)

    def close(self) -> None:
        """Close the fd (``close(2)``); calling it again does nothing."""
        super().close()

    def detach(self) -> int:
        """Give up the fd without closing it; return it (-1 if already closed)."""
        fd = self._fd
        self._fd = -1
        return fd

    def getpeername(self) -> Address:
        """The peer ``(cid, port)``: the one :meth:`Server.accept` was given, else the kernel's."""
        self._live_fd()
        if self._peer is not None:
            return self._peer
        return super().getpeername()

    @property
    def cid(self) -> int:
        """The local CID (from :meth:`getsockname`)."""
        return self.getsockname()[0]

    @property
    def port(self) -> int:
        """The local port (from :meth:`getsockname`)."""
        return self.getsockname()[1]

    def _describe(self) -> str:
        try:
            return f"local={self.getsockname()}"
        except OSError:
            return ""


def instance_size() -> int:
    """Bytes a libcando instance needs (``udo_vsock_udp_get_sizeof``)."""
    return int(lib.udo_vsock_udp_get_sizeof())


def local_cid() -> int:
    """The local CID (``udo_vsock_udp_get_local_vcid``); raises ``OSError`` if there is none."""
    cid = int(lib.udo_vsock_udp_get_local_vcid())
    if cid == _U32_MAX:
        raise _error(ffi.errno)
    return cid
