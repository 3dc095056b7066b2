"""``cando.aio``: awaitable I/O and the datagram transport/protocol pair.

Every scenario runs an event loop in the ``wrapped_worker`` process (under
vsock_wrapper) and returns what it observed.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from typing import Any, Callable, Coroutine

import pytest

import cando
from cando import VMADDR_CID_ANY, VMADDR_CID_HOST, Client, Connection, Server, aio

WAIT = 10.0


def _run(main: Callable[[], Coroutine[Any, Any, dict[str, Any]]]) -> dict[str, Any]:
    """Run ``main`` on a fresh loop; record the threads and executor it used."""
    threads = threading.active_count()
    loop = asyncio.new_event_loop()
    try:
        out = loop.run_until_complete(asyncio.wait_for(main(), WAIT))
        out["threads_added"] = threading.active_count() - threads
        out["executor_used"] = getattr(loop, "_default_executor", None) is not None
    finally:
        loop.close()
    return out


class Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.senders: set[tuple[int, int]] = set()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[int, int]) -> None:
        self.senders.add(addr)
        self.transport.sendto(b"echo:" + data, addr)

    def error_received(self, exc: Exception) -> None:
        self.events.append(f"error {exc.errno}")  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(f"lost {exc!r}")
        if not self.lost.done():
            self.lost.set_result(exc)


class Collect(asyncio.DatagramProtocol):
    def __init__(self, expected: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self.got: list[tuple[bytes, tuple[int, int]]] = []
        self.errors: list[int | None] = []
        self.events: list[str] = []
        self.expected = expected
        self.done: asyncio.Future[None] = loop.create_future()
        self.error: asyncio.Future[OSError] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.append("made")

    def datagram_received(self, data: bytes, addr: tuple[int, int]) -> None:
        self.got.append((data, addr))
        if len(self.got) == self.expected and not self.done.done():
            self.done.set_result(None)

    def error_received(self, exc: Exception) -> None:
        assert isinstance(exc, OSError)
        self.errors.append(exc.errno)
        if not self.error.done():
            self.error.set_result(exc)

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


# -- worker scenarios ------------------------------------------------------------------


def w_concurrent_clients() -> dict[str, Any]:
    clients, per_client = 8, 25

    async def main() -> dict[str, Any]:
        st, server = await aio.create_datagram_endpoint(Echo, local_addr=(VMADDR_CID_ANY, -1))
        sockname = st.get_extra_info("sockname")

        async def client(i: int) -> dict[str, Any]:
            ct, proto = await aio.create_datagram_endpoint(
                lambda: Collect(per_client), remote_addr=(VMADDR_CID_HOST, sockname[1]))
            for j in range(per_client):
                ct.sendto(b"%d-%d" % (i, j))
            await proto.done
            info = {"got": proto.got, "sockname": ct.get_extra_info("sockname"),
                    "peername": ct.get_extra_info("peername")}
            ct.close()
            await proto.lost
            return info

        results = await asyncio.gather(*(client(i) for i in range(clients)))
        st.close()
        lost = await server.lost
        return {"results": results, "sockname": sockname, "senders": server.senders,
                "server_events": server.events, "lost": lost, "clients": clients,
                "per_client": per_client}

    return _run(main)


def w_sock_functions() -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
            out["blocking_refused"] = type(await _raises(aio.sock_recv(srv, 10))).__name__
            srv.setblocking(False)
            cli.setblocking(False)
            # Three tasks wait on one socket at once; each gets one datagram, in order.
            waiters = [asyncio.ensure_future(aio.sock_recvfrom(srv, 100)) for _ in range(3)]
            await asyncio.sleep(0)  # let them queue (no datagram yet: all must wait)
            out["all_waiting"] = not any(w.done() for w in waiters)
            for i in range(3):
                await aio.sock_send(cli, b"msg%d" % i)
            got = await asyncio.gather(*waiters)
            out["waiters_got"] = [data for data, _ in got]
            out["sender_port"] = got[0][1][1]
            out["cli_port"] = cli.getsockname()[1]
            # Data already queued: answered without waiting.
            await aio.sock_sendto(cli, b"direct", (VMADDR_CID_HOST, srv.port))
            buf = bytearray(16)
            n = await aio.sock_recv_into(srv, buf)
            out["recv_into"] = bytes(buf[:n])
            await aio.sock_sendto(srv, b"back", (VMADDR_CID_HOST, out["cli_port"]))
            out["cli_recv"] = await aio.sock_recv(cli, 100)
            await aio.sock_send(cli, b"into-from")
            out["recvfrom_into"] = (await aio.sock_recvfrom_into(srv, buf), bytes(buf[:9]))
            # A cancelled waiter leaves no reader behind.
            pending = asyncio.ensure_future(aio.sock_recv(srv, 10))
            await asyncio.sleep(0)
            pending.cancel()
            out["cancelled"] = (await _raises(pending)).__class__.__name__
            out["reader_left"] = loop.remove_reader(srv.fileno())
            # Errors reach the awaiting task.
            out["bad_arg"] = type(await _raises(aio.sock_recv(srv, -1))).__name__
            with Client(VMADDR_CID_HOST, 9) as nobody:
                nobody.setblocking(False)
                exc = await _raises(aio.sock_send(nobody, b"x"))
                out["send_error"] = (type(exc).__name__, getattr(exc, "errno", None))
            not_a_socket: Any = object()
            out["not_a_socket"] = type(await _raises(aio.sock_recv(not_a_socket, 1))).__name__
            # AsyncSocket wraps the same calls and sets non-blocking itself.
            with Server(VMADDR_CID_ANY, -1) as s2:
                async with aio.AsyncSocket(s2) as a2:
                    out["async_socket_blocking"] = s2.getblocking()
                    task = asyncio.ensure_future(a2.recvfrom(100))
                    await asyncio.sleep(0)
                    await aio.sock_sendto(cli, b"to async", (VMADDR_CID_HOST, s2.port))
                    out["async_socket_got"] = (await task)[0]
                out["async_socket_closed"] = s2.closed
        return out

    return _run(main)


async def _raises(awaitable: Any) -> BaseException:
    try:
        await awaitable
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def w_transport_api() -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        st, sp = await aio.create_datagram_endpoint(Collect, local_addr=(VMADDR_CID_ANY, -1))
        sock = st.get_extra_info("socket")
        out["socket"] = (type(sock).__name__, sock.getblocking())
        out["sockname"] = st.get_extra_info("sockname")
        out["peername"] = st.get_extra_info("peername", "none")
        out["other"] = st.get_extra_info("nothing", 42)
        out["is_transport"] = isinstance(st, asyncio.DatagramTransport)
        out["events"] = list(sp.events)
        out["closing"] = st.is_closing()
        out["limits"] = st.get_write_buffer_limits()
        out["buffer"] = st.get_write_buffer_size()
        port = out["sockname"][1]

        errors: dict[str, str] = {}
        any_st: Any = st  # wrong types on purpose
        checks: dict[str, Callable[[], object]] = {
            "str": lambda: any_st.sendto("text", (VMADDR_CID_HOST, port)),
            "no address": lambda: st.sendto(b"x"),
            "bad address": lambda: st.sendto(b"x", (2, -1)),
            "bad limits": lambda: st.set_write_buffer_limits(high=1, low=2),
        }
        for name, fn in checks.items():
            try:
                fn()
                errors[name] = "no exception"
            except Exception as exc:
                errors[name] = type(exc).__name__
        out["errors"] = errors

        # error_received: nobody listens on that port.
        with Server(VMADDR_CID_ANY, -1) as probe:
            nobody = probe.port
        st.sendto(b"lost", (VMADDR_CID_HOST, nobody))
        out["error_received"] = (await sp.error).errno

        # A connected endpoint refuses another destination; empty datagrams are skipped.
        ct, cp = await aio.create_datagram_endpoint(lambda: Collect(1),
                                                    remote_addr=(VMADDR_CID_HOST, port))
        try:
            ct.sendto(b"x", (VMADDR_CID_HOST, port + 1))
            out["wrong_remote"] = "no exception"
        except ValueError:
            out["wrong_remote"] = "ValueError"
        sp.expected = 2
        ct.sendto(b"")
        ct.sendto(b"one")
        ct.sendto(b"two", (VMADDR_CID_HOST, port))
        await sp.done
        out["server_got"] = [data for data, _ in sp.got]
        out["client_peername"] = ct.get_extra_info("peername")

        ct.close()
        out["client_closing"] = ct.is_closing()
        ct.close()  # idempotent
        await cp.lost
        out["client_events"] = cp.events
        out["client_socket_closed"] = ct.get_extra_info("socket").closed
        ct.sendto(b"after close")  # ignored, as asyncio does
        st.abort()
        out["abort_lost"] = await sp.lost
        out["server_events"] = sp.events
        out["server_socket_closed"] = sock.closed

        # Endpoint argument errors.
        arg_errors = []
        for kwargs in ({}, {"local_addr": (VMADDR_CID_ANY, -1),
                            "remote_addr": (VMADDR_CID_HOST, 1)},
                       {"local_addr": [1, 2]}, {"remote_addr": (2, -5)},
                       {"sock": object()}):
            failure = await _raises(aio.create_datagram_endpoint(Collect, **kwargs))
            arg_errors.append(type(failure).__name__)
        out["arg_errors"] = arg_errors
        return out

    return _run(main)


def w_flow_control() -> dict[str, Any]:
    """A receiver that lags: sends buffer, the protocol is paused, then resumed."""
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        count = 60
        with Server(VMADDR_CID_ANY, -1) as srv:
            srv.setblocking(False)
            ct, cp = await aio.create_datagram_endpoint(
                Collect, remote_addr=(VMADDR_CID_HOST, srv.port))
            ct.set_write_buffer_limits(high=200, low=50)
            out["limits"] = ct.get_write_buffer_limits()
            for i in range(count):
                ct.sendto(b"datagram %03d" % i)
            out["buffered"] = ct.get_write_buffer_size()
            out["events_full"] = list(cp.events)
            got = [await aio.sock_recv(srv, 100) for _ in range(count)]
            out["in_order"] = got == [b"datagram %03d" % i for i in range(count)]
            out["buffer_after"] = ct.get_write_buffer_size()
            out["events"] = list(cp.events)
            ct.close()
            await cp.lost
        return out

    return _run(main)


def w_connection_endpoint() -> dict[str, Any]:
    import socket

    async def main() -> dict[str, Any]:
        a = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        for s in (a, b):
            s.bind((VMADDR_CID_ANY, cando.VMADDR_PORT_ANY))
        a.connect((VMADDR_CID_HOST, b.getsockname()[1]))
        b.connect((VMADDR_CID_HOST, a.getsockname()[1]))
        b.setblocking(False)
        conn = Connection(a.detach())
        t, p = await aio.create_datagram_endpoint(lambda: Collect(1), sock=conn)
        t.sendto(b"via connection")
        loop = asyncio.get_running_loop()
        got = await loop.sock_recv(b, 100)
        b.send(b"answer")
        await p.done
        out = {"b_got": got, "proto_got": p.got[0][0], "peer": t.get_extra_info("peername"),
               "expected_peer": (VMADDR_CID_HOST, b.getsockname()[1])}
        t.close()
        await p.lost
        out["closed"] = conn.closed
        b.close()
        return out

    return _run(main)


# -- tests -----------------------------------------------------------------------------


def test_concurrent_clients_against_one_async_server(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_concurrent_clients, timeout=60)
    server_addr = (VMADDR_CID_HOST, out["sockname"][1])
    assert out["sockname"][0] == VMADDR_CID_ANY
    ports = set()
    for i, result in enumerate(out["results"]):
        expected = [(b"echo:%d-%d" % (i, j), server_addr) for j in range(out["per_client"])]
        assert sorted(result["got"]) == sorted(expected), i
        assert result["peername"] == server_addr
        ports.add(result["sockname"][1])
    assert len(ports) == out["clients"]
    assert {port for _, port in out["senders"]} == ports
    assert out["server_events"] == ["made", "lost None"]
    assert out["lost"] is None
    assert out["threads_added"] == 0 and out["executor_used"] is False


def test_awaitable_socket_functions(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_sock_functions)
    assert out["blocking_refused"] == "ValueError"
    assert out["all_waiting"] is True
    assert out["waiters_got"] == [b"msg0", b"msg1", b"msg2"]
    assert out["sender_port"] == out["cli_port"]
    assert out["recv_into"] == b"direct"
    assert out["cli_recv"] == b"back"
    assert out["recvfrom_into"] == ((9, (VMADDR_CID_HOST, out["cli_port"])), b"into-from")
    assert out["cancelled"] == "CancelledError"
    assert out["reader_left"] is False
    assert out["bad_arg"] == "ValueError"
    assert out["send_error"] == ("OSError", errno.EHOSTUNREACH)
    assert out["not_a_socket"] == "TypeError"
    assert out["async_socket_blocking"] is False
    assert out["async_socket_got"] == b"to async"
    assert out["async_socket_closed"] is True
    assert out["threads_added"] == 0 and out["executor_used"] is False


def test_transport_and_protocol_api(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_transport_api)
    assert out["socket"] == ("Server", False)
    assert out["sockname"][0] == VMADDR_CID_ANY and out["sockname"][1] >= 1024
    assert out["peername"] == "none" and out["other"] == 42
    assert out["is_transport"] is True
    assert out["events"] == ["made"]
    assert out["closing"] is False
    assert out["limits"] == (16 * 1024, 64 * 1024) and out["buffer"] == 0
    assert out["errors"] == {"str": "TypeError", "no address": "ValueError",
                             "bad address": "ValueError", "bad limits": "ValueError"}
    assert out["error_received"] == errno.EHOSTUNREACH
    assert out["wrong_remote"] == "ValueError"
    assert out["server_got"] == [b"one", b"two"]
    assert out["client_peername"] == (VMADDR_CID_HOST, out["sockname"][1])
    assert out["client_closing"] is True
    assert out["client_events"] == ["made", "lost"]
    assert out["client_socket_closed"] is True
    assert out["abort_lost"] is None
    assert out["server_events"] == ["made", "lost"]
    assert out["server_socket_closed"] is True
    assert out["arg_errors"] == ["ValueError", "ValueError", "TypeError", "ValueError",
                                 "TypeError"]


def test_flow_control_pauses_and_resumes(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_flow_control)
    assert out["limits"] == (50, 200)
    assert out["buffered"] > 200  # the receiver's queue filled, the rest waited here
    assert out["events_full"] == ["made", "pause"]
    assert out["in_order"] is True
    assert out["buffer_after"] == 0
    assert out["events"] == ["made", "pause", "resume"]


def test_endpoint_over_a_connection(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_connection_endpoint)
    assert out["b_got"] == b"via connection"
    assert out["proto_got"] == b"answer"
    assert out["peer"] == out["expected_peer"]
    assert out["closed"] is True


def test_endpoint_needs_a_running_loop() -> None:
    coro = aio.create_datagram_endpoint(asyncio.DatagramProtocol,
                                        local_addr=(VMADDR_CID_ANY, -1))
    with pytest.raises(RuntimeError):
        coro.send(None)
    coro.close()
