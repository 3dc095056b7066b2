"""Pythonic vsock datagram sockets over libcando.

Each :class:`Server` / :class:`Client` owns one libcando instance, kept in
memory this object allocates (``udo_vsock_udp_get_sizeof()`` bytes) and
releases in :meth:`close`. Addresses are ``(cid, port)`` tuples, as in
Python's :mod:`socket`. Failures raise :class:`OSError` subclasses carrying
``errno`` and the library's message.
"""

from __future__ import annotations

import errno as _errno
import warnings
from typing import Any, Callable, Tuple, TypeVar

from ._cando import ffi, lib
from ._errors import error_from_errno

Address = Tuple[int, int]
_Self = TypeVar("_Self", bound="_VsockUDP")

VMADDR_CID_ANY: int = lib.VMADDR_CID_ANY
VMADDR_CID_HYPERVISOR: int = lib.VMADDR_CID_HYPERVISOR
VMADDR_CID_LOCAL: int = lib.VMADDR_CID_LOCAL
VMADDR_CID_HOST: int = lib.VMADDR_CID_HOST
VMADDR_PORT_ANY: int = lib.VMADDR_PORT_ANY

_U32_MAX = 0xFFFFFFFF
_INT_MAX = 0x7FFFFFFF


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _check_flags(flags: object) -> int:
    return _check_int("flags", flags, -_INT_MAX - 1, _INT_MAX)


def _check_address(address: object) -> Address:
    """A ``(cid, port)`` destination, both unsigned 32-bit as in ``sockaddr_vm``."""
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError("address must be a (cid, port) tuple")
    cid = _check_int("cid", address[0], 0, _U32_MAX)
    port = _check_int("port", address[1], 0, _U32_MAX)
    return cid, port


def _buffer(obj: Any, name: str, writable: bool = False) -> Any:
    """``ffi.from_buffer``, with a bad object reported as ``TypeError`` (not ``BufferError``)."""
    try:
        return ffi.from_buffer(obj, require_writable=writable)
    except BufferError as exc:  # read-only or non-contiguous buffer
        kind = "a writable, contiguous" if writable else "a contiguous"
        raise TypeError(f"{name} must be {kind} bytes-like object: {exc}") from None


def _payload(data: Any) -> Any:
    view = _buffer(data, "data")
    if len(view) == 0:
        raise ValueError("data is empty: the C API sends no 0-byte datagrams (size 0 is -EINVAL)")
    return view


def _sockaddr(address: Address) -> Any:
    addr = ffi.new("struct sockaddr_vm *")
    addr.svm_family = lib.AF_VSOCK
    addr.svm_cid, addr.svm_port = address
    return addr


def _raise(err: int, instance: Any = None) -> None:
    """Raise for a failure whose cause is ``err``; the instance may say more."""
    message = None
    if instance is not None and lib.udo_log_get_error_code(instance) == err:
        message = ffi.string(lib.udo_log_get_error(instance)).decode(errors="replace")
    raise error_from_errno(err, message)


def _io(call: Callable[[], int], instance: Any = None) -> int:
    """Run one C I/O call; retry on EINTR once Python's signal handlers ran (PEP 475)."""
    while True:
        ret = call()
        if ret >= 0:
            return ret
        if ret != -_errno.EINTR:
            _raise(-ret, instance)
        # A handler that raises ends the retry: cffi runs pending signal
        # handlers when the call returns, before this loop goes on.


class _VsockUDP:
    """What servers and clients share: the instance, its fd, receive and send."""

    _closed = True  # until __init__ has an instance

    def __init__(self, create: Callable[[Any, Any], Any], info_type: str,
                 cid: object, port: object) -> None:
        cid = _check_int("cid", cid, 0, _U32_MAX)
        port = _check_int("port", port, -1, _INT_MAX)
        info = ffi.new(info_type, {"vcid": cid, "port": port})
        self._memory = ffi.new("char[]", lib.udo_vsock_udp_get_sizeof())
        self._instance = ffi.cast("struct udo_vsock_udp *", self._memory)
        if create(self._instance, info) == ffi.NULL:
            # Caller memory keeps the error record after a failed create.
            _raise(ffi.errno, self._instance)
        self._closed = False

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Close the socket (``udo_vsock_udp_destroy``); calling it again does nothing."""
        if not self._closed:
            self._closed = True
            lib.udo_vsock_udp_destroy(self._instance)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._closed:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            self.close()

    def __repr__(self) -> str:
        if self._closed:
            return f"<cando.{type(self).__name__} closed>"
        state = f"fd={self.fileno()}, cid={self.cid}, port={self.port}"
        return f"<cando.{type(self).__name__} {state}>"

    def _live(self) -> Any:
        if self._closed:
            raise OSError(_errno.EBADF, "the vsock socket is closed")
        return self._instance

    # -- properties -------------------------------------------------------
    def fileno(self) -> int:
        """The socket's fd (``udo_vsock_udp_get_fd``); -1 once closed."""
        return -1 if self._closed else int(lib.udo_vsock_udp_get_fd(self._instance))

    @property
    def closed(self) -> bool:
        return self._closed

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

    # -- receive ----------------------------------------------------------
    def _recv(self, data: Any, size: int, addr: Any, flags: int) -> int:
        fd = lib.udo_vsock_udp_get_fd(self._live())
        info = ffi.new("int *", flags)
        return _io(lambda: lib.udo_vsock_udp_recv_data(fd, data, size, addr, info))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive one datagram into ``buffer``, return its size (``udo_vsock_udp_recv_data``)."""
        flags = _check_flags(flags)
        view = _buffer(buffer, "buffer", writable=True)
        nbytes = _check_int("nbytes", nbytes, 0, len(view)) or len(view)
        if nbytes == 0:
            raise ValueError("buffer is empty")
        return self._recv(view, nbytes, ffi.NULL, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Address]:
        """Like :meth:`recv_into`, also returning the sender's ``(cid, port)``."""
        flags = _check_flags(flags)
        view = _buffer(buffer, "buffer", writable=True)
        nbytes = _check_int("nbytes", nbytes, 0, len(view)) or len(view)
        if nbytes == 0:
            raise ValueError("buffer is empty")
        addr = ffi.new("struct sockaddr_vm *")
        n = self._recv(view, nbytes, addr, flags)
        return n, (int(addr.svm_cid), int(addr.svm_port))

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Address]:
        """Receive one datagram of at most ``bufsize`` bytes and its sender ``(cid, port)``.

        Calls ``udo_vsock_udp_recv_data``.
        """
        flags = _check_flags(flags)  # before allocating up to bufsize bytes
        buf = ffi.new("char[]", _check_int("bufsize", bufsize, 1, 1 << 30))
        n, address = self.recvfrom_into(ffi.buffer(buf), 0, flags)
        return ffi.buffer(buf, n)[:], address

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive one datagram of at most ``bufsize`` bytes (``udo_vsock_udp_recv_data``)."""
        flags = _check_flags(flags)  # before allocating up to bufsize bytes
        buf = ffi.new("char[]", _check_int("bufsize", bufsize, 1, 1 << 30))
        n = self.recv_into(ffi.buffer(buf), 0, flags)
        data: bytes = ffi.buffer(buf, n)[:]
        return data

    # -- send -------------------------------------------------------------
    def sendto(self, data: Any, address: Address, flags: int = 0) -> int:
        """Send one datagram to ``(cid, port)`` (``udo_vsock_udp_send_data``)."""
        addr = _sockaddr(_check_address(address))
        flags = _check_flags(flags)
        view = _payload(data)  # every argument is checked before the first C call
        fd = lib.udo_vsock_udp_get_fd(self._live())
        info = ffi.new("int *", flags)
        return _io(lambda: lib.udo_vsock_udp_send_data(fd, view, len(view), addr, info))


class Server(_VsockUDP):
    """A datagram socket bound to ``(cid, port)`` (``udo_vsock_udp_server_create``).

    ``cid`` is ``VMADDR_CID_ANY`` or the local CID; ``port`` -1 lets the
    kernel choose (read it back from :attr:`port`).
    """

    def __init__(self, cid: int = VMADDR_CID_ANY, port: int = -1) -> None:
        super().__init__(lib.udo_vsock_udp_server_create,
                         "struct udo_vsock_udp_server_create_info *", cid, port)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Address]:
        """Receive into ``buffer`` with the sender (``udo_vsock_udp_server_recv_data``)."""
        flags = _check_flags(flags)
        view = _buffer(buffer, "buffer", writable=True)
        nbytes = _check_int("nbytes", nbytes, 0, len(view)) or len(view)
        if nbytes == 0:
            raise ValueError("buffer is empty")
        inst = self._live()
        addr = ffi.new("struct sockaddr_vm *")
        info = ffi.new("int *", flags)
        n = _io(lambda: lib.udo_vsock_udp_server_recv_data(inst, view, nbytes, addr, info), inst)
        return n, (int(addr.svm_cid), int(addr.svm_port))

    def accept(self, address: Address) -> int:
        """A new fd bound to this server's address and connected to ``address``.

        Calls ``udo_vsock_udp_server_accept``. No Linux AF_VSOCK transport
        lets two sockets bind one address, so there it raises ``OSError``
        with ``EADDRINUSE``. The caller owns the returned fd.
        """
        addr = _sockaddr(_check_address(address))
        inst = self._live()
        fd = int(lib.udo_vsock_udp_server_accept(inst, addr))
        if fd < 0:
            _raise(ffi.errno, inst)
        return fd


class Client(_VsockUDP):
    """A datagram socket that sends to ``(cid, port)`` (``udo_vsock_udp_client_create``)."""

    def __init__(self, cid: int, port: int) -> None:
        super().__init__(lib.udo_vsock_udp_client_create,
                         "struct udo_vsock_udp_client_create_info *", cid, port)

    def connect(self) -> None:
        """Make the destination the socket's default peer (``udo_vsock_udp_client_connect``)."""
        inst = self._live()
        if lib.udo_vsock_udp_client_connect(inst) < 0:
            _raise(ffi.errno, inst)

    def send(self, data: Any, flags: int = 0) -> int:
        """Send one datagram to the destination (``udo_vsock_udp_client_send_data``)."""
        flags = _check_flags(flags)
        inst = self._live()
        view = _payload(data)
        info = ffi.new("int *", flags)
        return _io(lambda: lib.udo_vsock_udp_client_send_data(inst, view, len(view), info), inst)


def local_cid() -> int:
    """The local CID (``udo_vsock_udp_get_local_vcid``); raises ``OSError`` if there is none."""
    cid = int(lib.udo_vsock_udp_get_local_vcid())
    if cid == _U32_MAX:
        _raise(ffi.errno)
    return cid
