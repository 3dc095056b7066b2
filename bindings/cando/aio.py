"""asyncio for cando sockets: awaitable I/O and datagram endpoints, on the running loop.

Everything here waits with the loop's readiness callbacks
(``loop.add_reader``/``loop.add_writer``): no threads, no executor. It needs
a loop that implements them (the default selector loop on Linux, uvloop).

Awaitable calls on a non-blocking cando socket, like ``loop.sock_*``::

    srv = cando.Server(cando.VMADDR_CID_ANY, -1)
    srv.setblocking(False)
    data, (cid, port) = await aio.sock_recvfrom(srv, 4096)
    await aio.sock_sendto(srv, data, (cid, port))

Several tasks may wait on one socket at once: they are served in order.

Or a standard transport/protocol pair::

    transport, protocol = await aio.create_datagram_endpoint(
        MyProtocol, local_addr=(cando.VMADDR_CID_ANY, 5000))

where ``MyProtocol`` is an :class:`asyncio.DatagramProtocol` whose
``datagram_received(data, (cid, port))`` gets every datagram.
"""

from __future__ import annotations

import asyncio
import collections
import warnings
import weakref
from typing import Any, Callable, Deque, Tuple, TypeVar

from ._args import check_address as _check_address
from .errors import closed_error
from .vsock_udp import Address, Client, Server, VsockSocket

__all__ = [
    "AsyncSocket",
    "VsockDatagramTransport",
    "create_datagram_endpoint",
    "sock_recv",
    "sock_recv_into",
    "sock_recvfrom",
    "sock_recvfrom_into",
    "sock_send",
    "sock_sendto",
]

_T = TypeVar("_T")
_P = TypeVar("_P", bound=asyncio.DatagramProtocol)

#: The largest datagram a transport receives (more than any vsock transport carries).
MAX_DATAGRAM = 256 * 1024


# -- awaitable calls -----------------------------------------------------------------------


class _Queue:
    """The tasks waiting for one direction (read or write) of one socket, in order."""

    def __init__(self, sock: VsockSocket, writing: bool) -> None:
        # Weak: _queues holds this queue under the socket as a weak key, and a
        # strong reference back would keep the socket (and its fd) forever.
        self.sock = weakref.ref(sock)
        self.writing = writing
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fd = -1
        self.waiters: Deque[Tuple[asyncio.Future[Any], Callable[[], Any]]] = collections.deque()

    async def run(self, op: Callable[[], _T]) -> _T:
        if not self.waiters:  # nobody queued ahead: try at once
            try:
                return op()
            except (BlockingIOError, InterruptedError):
                pass
        loop = asyncio.get_running_loop()
        if self.waiters and self.loop is not loop:
            raise RuntimeError("this socket is being awaited on another event loop")
        fut: asyncio.Future[_T] = loop.create_future()
        entry = (fut, op)
        self.waiters.append(entry)
        if len(self.waiters) == 1:
            self.loop = loop
            sock = self.sock()
            self.fd = sock.fileno() if sock is not None else -1
            if self.fd < 0:
                self.waiters.clear()
                raise closed_error()
            if self.writing:
                loop.add_writer(self.fd, self._ready)
            else:
                loop.add_reader(self.fd, self._ready)
        try:
            return await fut
        finally:
            if not fut.done() or fut.cancelled():
                try:
                    self.waiters.remove(entry)
                except ValueError:
                    pass
                self._maybe_unregister()

    def _maybe_unregister(self) -> None:
        if self.waiters or self.loop is None:
            return
        if self.writing:
            self.loop.remove_writer(self.fd)
        else:
            self.loop.remove_reader(self.fd)
        self.loop = None

    def _ready(self) -> None:
        waiters = self.waiters
        while waiters:
            fut, op = waiters[0]
            if fut.done():
                waiters.popleft()
                continue
            try:
                result = op()
            except (BlockingIOError, InterruptedError):
                return  # stay registered: the next readiness serves it
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                waiters.popleft()
                fut.set_exception(exc)
            else:
                waiters.popleft()
                fut.set_result(result)
        self._maybe_unregister()


_queues: weakref.WeakKeyDictionary[VsockSocket, Tuple[_Queue, _Queue]] = \
    weakref.WeakKeyDictionary()


def _queue(sock: VsockSocket, writing: bool) -> _Queue:
    if not isinstance(sock, VsockSocket):
        raise TypeError(f"sock must be a cando socket, not {type(sock).__name__}")
    if sock.gettimeout() != 0.0:
        raise ValueError("the socket must be non-blocking: call sock.setblocking(False)")
    pair = _queues.get(sock)
    if pair is None:
        pair = (_Queue(sock, False), _Queue(sock, True))
        _queues[sock] = pair
    return pair[1] if writing else pair[0]


async def sock_recv(sock: VsockSocket, bufsize: int, flags: int = 0) -> bytes:
    """Await one datagram of at most ``bufsize`` bytes (``sock.recv``)."""
    return await _queue(sock, False).run(lambda: sock.recv(bufsize, flags))


async def sock_recv_into(sock: VsockSocket, buffer: Any, nbytes: int = 0,
                         flags: int = 0) -> int:
    """Await one datagram into ``buffer``; its size (``sock.recv_into``)."""
    return await _queue(sock, False).run(lambda: sock.recv_into(buffer, nbytes, flags))


async def sock_recvfrom(sock: VsockSocket, bufsize: int,
                        flags: int = 0) -> Tuple[bytes, Address]:
    """Await one datagram and its sender ``(cid, port)`` (``sock.recvfrom``)."""
    return await _queue(sock, False).run(lambda: sock.recvfrom(bufsize, flags))


async def sock_recvfrom_into(sock: VsockSocket, buffer: Any, nbytes: int = 0,
                             flags: int = 0) -> Tuple[int, Address]:
    """Await one datagram into ``buffer``; its size and sender (``sock.recvfrom_into``)."""
    return await _queue(sock, False).run(lambda: sock.recvfrom_into(buffer, nbytes, flags))


async def sock_send(sock: VsockSocket, data: Any, flags: int = 0) -> int:
    """Send one datagram, waiting while the socket cannot (``sock.send``)."""
    return await _queue(sock, True).run(lambda: sock.send(data, flags))


async def sock_sendto(sock: VsockSocket, data: Any, address: Address, flags: int = 0) -> int:
    """Send one datagram to ``(cid, port)``, waiting while the socket cannot (``sock.sendto``)."""
    return await _queue(sock, True).run(lambda: sock.sendto(data, address, flags))


class AsyncSocket:
    """A cando socket with awaitable methods; it makes the socket non-blocking.

    ``async with AsyncSocket(cando.Server()) as s: data, addr = await s.recvfrom(n)``.
    Closing it closes the socket.
    """

    def __init__(self, sock: VsockSocket) -> None:
        if not isinstance(sock, VsockSocket):
            raise TypeError(f"sock must be a cando socket, not {type(sock).__name__}")
        sock.setblocking(False)
        self.socket = sock

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return await sock_recv(self.socket, bufsize, flags)

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return await sock_recv_into(self.socket, buffer, nbytes, flags)

    async def recvfrom(self, bufsize: int, flags: int = 0) -> Tuple[bytes, Address]:
        return await sock_recvfrom(self.socket, bufsize, flags)

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0,
                            flags: int = 0) -> Tuple[int, Address]:
        return await sock_recvfrom_into(self.socket, buffer, nbytes, flags)

    async def send(self, data: Any, flags: int = 0) -> int:
        return await sock_send(self.socket, data, flags)

    async def sendto(self, data: Any, address: Address, flags: int = 0) -> int:
        return await sock_sendto(self.socket, data, address, flags)

    def fileno(self) -> int:
        return self.socket.fileno()

    def close(self) -> None:
        self.socket.close()

    async def __aenter__(self) -> AsyncSocket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


# -- transport and protocol ------------------------------------------------------------------


class VsockDatagramTransport(asyncio.DatagramTransport):
    """An :class:`asyncio.DatagramTransport` over a cando socket.

    Made by :func:`create_datagram_endpoint`. Reads with ``add_reader``;
    sends at once, buffering (and pausing the protocol above the high-water
    mark) only while the socket would block. Empty datagrams are not sent
    (the C API refuses them), as asyncio's own transport did up to 3.12.
    """

    _RECV_BATCH = 32  # datagrams read per readiness callback, at most

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: VsockSocket,
                 protocol: asyncio.DatagramProtocol, address: Address | None,
                 waiter: asyncio.Future[None]) -> None:
        super().__init__({"socket": sock})
        sock.setblocking(False)
        self._loop = loop
        self._sock: VsockSocket | None = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._address = address
        self._closing = False
        self._conn_lost = False
        self._buffer: Deque[Tuple[bytes, Address | None]] = collections.deque()
        self._buffer_size = 0
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        self._recv_buf = bytearray(MAX_DATAGRAM)
        self._recv_view = memoryview(self._recv_buf)
        try:
            self._sockname: Address | None = sock.getsockname()
        except OSError:
            self._sockname = None
        loop.call_soon(self._start, waiter)

    def _start(self, waiter: asyncio.Future[None]) -> None:
        # As asyncio's own transports: the endpoint is made even if
        # connection_made raises (the loop's exception handler reports that).
        try:
            self._protocol.connection_made(self)
            if not self._closing:
                self._loop.add_reader(self._fd, self._read_ready)
        finally:
            if not waiter.done():
                waiter.set_result(None)

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else ("closing" if self._closing else "open")
        return f"<{type(self).__name__} fd={self._fd} {state}>"

    # -- extra info, protocol -------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``'socket'``, ``'sockname'`` (local ``(cid, port)``), ``'peername'``."""
        if name == "sockname":
            sock = self._sock
            if sock is not None and not sock.closed:
                try:
                    self._sockname = sock.getsockname()  # may change at the first send
                except OSError:
                    pass
            return self._sockname if self._sockname is not None else default
        if name == "peername":
            return self._address if self._address is not None else default
        return super().get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.DatagramProtocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    # -- receive --------------------------------------------------------
    def _read_ready(self) -> None:
        sock = self._sock
        if sock is None:
            return
        buf, view = self._recv_buf, self._recv_view
        for _ in range(self._RECV_BATCH):
            if self._closing:
                return
            try:
                n, addr = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except Exception as exc:
                self._fatal_error(exc, "Fatal read error on cando datagram transport")
                return
            self._protocol.datagram_received(view[:n].tobytes(), addr)

    # -- send -----------------------------------------------------------
    def sendto(self, data: Any, addr: object = None) -> None:
        """Send ``data`` to ``addr`` (or the remote address the endpoint was made with)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        dest: Address | None = None
        if addr is not None:
            dest = _check_address(addr)
            if self._address is not None and dest != self._address:
                raise ValueError(f"Invalid address: must be None or {self._address}")
        elif self._address is None:
            raise ValueError("no address: this endpoint has no remote_addr")
        if not data or self._conn_lost or self._closing:
            return
        sock = self._sock
        assert sock is not None
        if not self._buffer:
            try:
                self._send(sock, data, dest)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except Exception as exc:
                self._fatal_error(exc, "Fatal write error on cando datagram transport")
                return
        self._buffer.append((bytes(data), dest))
        self._buffer_size += len(data)
        self._maybe_pause_protocol()

    def _send(self, sock: VsockSocket, data: Any, addr: Address | None) -> None:
        if addr is None:
            sock.send(data)
        elif self._address is not None and isinstance(sock, Client):
            sock.send(data)  # udo_vsock_udp_client_send_data: to the destination
        else:
            sock.sendto(data, addr)

    def _write_ready(self) -> None:
        sock = self._sock
        while self._buffer and sock is not None:
            data, addr = self._buffer[0]
            try:
                self._send(sock, data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._buffer.popleft()
                self._buffer_size -= len(data)
                self._protocol.error_received(exc)
                continue
            except Exception as exc:
                self._fatal_error(exc, "Fatal write error on cando datagram transport")
                return
            self._buffer.popleft()
            self._buffer_size -= len(data)
        self._maybe_resume_protocol()
        if not self._buffer:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._call_connection_lost(None)

    # -- flow control -----------------------------------------------------
    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size > self._high_water and not self._protocol_paused:
            self._protocol_paused = True
            self._tell_protocol("pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._buffer_size <= self._low_water:
            self._protocol_paused = False
            self._tell_protocol("resume_writing")

    def _tell_protocol(self, method: str) -> None:
        """Call the protocol's flow-control ``method``; what it raises goes to the
        loop's exception handler, as asyncio's own transports do."""
        try:
            getattr(self._protocol, method)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{method}() failed",
                "exception": exc, "transport": self, "protocol": self._protocol})

    def set_write_buffer_limits(self, high: int | None = None,
                                low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return self._low_water, self._high_water

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    # -- closing ----------------------------------------------------------
    def close(self) -> None:
        """Stop receiving; send what is buffered, then ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._conn_lost = True
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Close now, dropping buffered datagrams; then ``connection_lost(None)``."""
        self._force_close(None)

    def _fatal_error(self, exc: Exception, message: str) -> None:
        self._loop.call_exception_handler({
            "message": message, "exception": exc, "transport": self,
            "protocol": self._protocol})
        self._force_close(exc)

    def _force_close(self, exc: Exception | None) -> None:
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._conn_lost = True
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        self._conn_lost = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None and not sock.closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()


async def create_datagram_endpoint(
        protocol_factory: Callable[[], _P], local_addr: Address | None = None,
        remote_addr: Address | None = None, *,
        sock: VsockSocket | None = None) -> Tuple[VsockDatagramTransport, _P]:
    """A datagram transport over a new cando socket, and the protocol it feeds.

    Give exactly one of:

    - ``local_addr=(cid, port)``: a :class:`~cando.Server` bound there (port
      -1 lets the kernel choose: ``get_extra_info('sockname')``). ``sendto``
      needs an address.
    - ``remote_addr=(cid, port)``: a :class:`~cando.Client` connected there;
      ``sendto(data)`` sends to it (an explicit address must be that one).
    - ``sock=``: an existing cando socket (made non-blocking, owned by the
      transport from now on), e.g. a :class:`~cando.Connection`.

    Both ``local_addr`` and ``remote_addr`` at once are refused: libcando
    binds servers and connects clients, never both on one socket
    (``Server.accept`` is the C API's way, and fails on Linux).
    """
    loop = asyncio.get_running_loop()
    given = sum(x is not None for x in (local_addr, remote_addr, sock))
    if given != 1:
        raise ValueError("give exactly one of local_addr, remote_addr and sock")
    address: Address | None = None
    if sock is not None:
        if not isinstance(sock, VsockSocket):
            raise TypeError(f"sock must be a cando socket, not {type(sock).__name__}")
        if sock.closed:
            raise closed_error()
        try:
            address = sock.getpeername()
        except OSError:
            address = None
        endpoint: VsockSocket = sock
    elif local_addr is not None:
        cid, port = _local(local_addr)
        endpoint = Server(cid, port)
    else:
        assert remote_addr is not None
        address = _check_address(remote_addr)
        client = Client(*address)
        try:
            client.connect()
        except BaseException:
            client.close()
            raise
        endpoint = client
    try:
        protocol = protocol_factory()
        waiter: asyncio.Future[None] = loop.create_future()
        transport = VsockDatagramTransport(loop, endpoint, protocol, address, waiter)
    except BaseException:
        endpoint.close()
        raise
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


def _local(address: object) -> Tuple[Any, Any]:
    """``local_addr``: a CID and a port, where port -1 (``VMADDR_PORT_ANY``) is allowed."""
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError(f"local_addr must be a (cid, port) tuple, not {type(address).__name__}")
    cid, port = address
    if isinstance(port, int) and not isinstance(port, bool) and port == 0xFFFFFFFF:
        port = -1
    return cid, port

