"""``cando.vsock_udp`` as a datagram ``socket``: timeouts, blocking, addresses, accept's
:class:`cando.Connection`, the allocation-free hot path, and the C coverage of the layer.

Datagram tests run in-process under vsock_wrapper (the ``w_*`` functions run in the
``wrapped_worker`` process and return what they saw); the rest runs in pytest's process.
"""

from __future__ import annotations

import errno
import gc
import inspect
import os
import select
import signal
import socket
import threading
import time
import warnings
from functools import partial
from typing import Any, Callable

import pytest

import cando
import cando.log
import cando.vsock_udp
from cando import VMADDR_CID_ANY, VMADDR_CID_HOST, Client, Connection, Server

WAIT = 5.0


def _wait_readable(fd: int) -> None:
    if not select.select([fd], [], [], WAIT)[0]:
        raise TimeoutError(f"no datagram on fd {fd} within {WAIT} s")


def _outcome(fn: Callable[[], object]) -> tuple[str, int | None]:
    try:
        fn()
    except Exception as exc:
        return type(exc).__name__, getattr(exc, "errno", None)
    return "no exception", None


def _vsock_pair() -> tuple[socket.socket, socket.socket]:
    """Two plain AF_VSOCK datagram sockets, bound and connected to each other."""
    a = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
    a.connect((VMADDR_CID_HOST, b.getsockname()[1]))
    b.connect((VMADDR_CID_HOST, a.getsockname()[1]))
    return a, b


# -- worker functions ------------------------------------------------------------------


def w_timeouts() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        fd = srv.fileno()
        out["default"] = (srv.gettimeout(), srv.getblocking(), os.get_blocking(fd))
        srv.settimeout(0.05)
        out["timed"] = (srv.gettimeout(), srv.getblocking(), os.get_blocking(fd))
        elapsed = {}
        calls: dict[str, Callable[[], object]] = {
            "recv": lambda: srv.recv(10), "recvfrom": lambda: srv.recvfrom(10),
            "recv_into": lambda: srv.recv_into(bytearray(4)),
            "recvfrom_into": lambda: srv.recvfrom_into(bytearray(4)),
            "cli_recvfrom": lambda: cli.recvfrom(10),
        }
        cli.settimeout(0.05)
        for name, fn in calls.items():
            start = time.monotonic()
            out[f"timeout_{name}"] = _outcome(fn)
            elapsed[name] = time.monotonic() - start
        out["elapsed"] = elapsed
        cli.send(b"in time")
        out["in_time"] = srv.recvfrom(100)  # data ready: no wait, no error
        srv.setblocking(False)
        out["nonblocking"] = (srv.gettimeout(), srv.getblocking(), os.get_blocking(fd))
        out["would_block"] = _outcome(lambda: srv.recv(10))
        out["would_block_into"] = _outcome(lambda: srv.recvfrom_into(bytearray(4)))
        srv.settimeout(0)
        out["zero_is_nonblocking"] = (srv.gettimeout(), srv.getblocking())
        srv.setblocking(True)
        out["blocking_again"] = (srv.gettimeout(), srv.getblocking(), os.get_blocking(fd))
        srv.settimeout(2)
        out["int_timeout"] = srv.gettimeout()
        srv.settimeout(None)
        out["none"] = (srv.gettimeout(), os.get_blocking(fd))
        # MSG_DONTWAIT on a blocking socket: BlockingIOError, as socket does.
        out["dontwait"] = _outcome(lambda: srv.recv(10, socket.MSG_DONTWAIT))
    return out


def w_send_timeout() -> dict[str, Any]:
    """A receiver that never reads: the wrapper's queue fills and a timed send gives up."""
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        cli.settimeout(0.05)
        sent = 0
        result = ("no exception", None)
        start = time.monotonic()
        for _ in range(100000):
            try:
                cli.send(b"fill")
            except Exception as exc:
                result = (type(exc).__name__, getattr(exc, "errno", None))
                break
            sent += 1
        out["elapsed"] = time.monotonic() - start
        out["sent"], out["result"] = sent, result
        cli.setblocking(False)
        out["nonblocking_send"] = _outcome(lambda: cli.send(b"more"))
        out["nonblocking_sendto"] = _outcome(lambda: cli.sendto(b"more", (2, srv.port)))
        srv.setblocking(False)
        drained = 0
        while True:
            try:
                srv.recv(10)
            except BlockingIOError:
                break
            drained += 1
        out["drained"] = drained
        out["send_after_drain"] = cli.send(b"room again")
    return out


def w_default_timeout() -> dict[str, Any]:
    saved = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.25)
    try:
        with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
            return {"srv": (srv.gettimeout(), os.get_blocking(srv.fileno())),
                    "cli": (cli.gettimeout(), os.get_blocking(cli.fileno())),
                    "recv": _outcome(lambda: srv.recv(10))}
    finally:
        socket.setdefaulttimeout(saved)


class _Stop(Exception):
    pass


def w_eintr_in_timed_wait() -> dict[str, Any]:
    out: dict[str, Any] = {}
    saved = signal.getsignal(signal.SIGALRM)
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        srv.settimeout(WAIT)
        try:
            signal.signal(signal.SIGALRM, lambda s, f: cli.send(b"from handler"))
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            out["delivered"] = srv.recv(100)  # EINTR in poll: handler sends, wait goes on

            def stop(signum: int, frame: object) -> None:
                raise _Stop("handler raised")

            signal.signal(signal.SIGALRM, stop)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            try:
                srv.recv(100)
            except _Stop as exc:
                out["raised"] = str(exc)

            # A signal every 20 ms while waiting 0.3 s: each EINTR must resume the wait
            # with the time *left*, or the wait would never end.
            ticks: list[int] = []
            signal.signal(signal.SIGALRM, lambda s, f: ticks.append(s))
            srv.settimeout(0.3)
            signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
            start = time.monotonic()
            out["repeated"] = _outcome(lambda: srv.recv(100))
            out["repeated_elapsed"] = time.monotonic() - start
            signal.setitimer(signal.ITIMER_REAL, 0)
            out["ticks"] = len(ticks)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, saved)
    return out


def w_bad_timeouts() -> dict[str, Any]:
    with Server(VMADDR_CID_ANY, -1) as srv:
        srv.settimeout(1.5)
        any_srv: Any = srv  # wrong types on purpose
        results: dict[str, Any] = {
            repr(v): _outcome(partial(any_srv.settimeout, v))
            for v in ("1", b"1", [], object(), -1, -0.001, float("nan"), complex(1))}
        results["unchanged"] = (srv.gettimeout(), os.get_blocking(srv.fileno()))
        results["setblocking_kept_int"] = _outcome(partial(any_srv.setblocking, 1))
    return results


class _CountingFFI:
    """Stands in for ``cando.vsock_udp.ffi``, counting the cdata allocations."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.allocations: list[str] = []

    def new(self, *args: Any) -> Any:
        self.allocations.append(f"new{args[:1]}")
        return self._real.new(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def w_hot_path_allocations() -> dict[str, Any]:
    out: dict[str, Any] = {}
    module: Any = cando.vsock_udp
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        srv.setblocking(False)
        dest = (VMADDR_CID_HOST, srv.port)
        buf = bytearray(64)
        cli.sendto(b"warm", dest)
        cli.sendto(b"warm", dest, socket.MSG_DONTWAIT)
        cli.send(b"warm", socket.MSG_DONTWAIT)
        srv.recv_into(buf, 0, socket.MSG_DONTWAIT)
        srv.recv_into(buf)
        srv.recv_into(buf)
        real = module.ffi
        counting = _CountingFFI(real)
        module.ffi = counting
        try:
            got = []
            for i in range(50):
                cli.send(b"s%d" % i)
                cli.sendto(b"t%d" % i, dest)  # the same tuple object
                cli.sendto(b"u%d" % i, (VMADDR_CID_HOST, srv.port))  # an equal new tuple
                cli.sendto(memoryview(b"v%d" % i), dest, socket.MSG_DONTWAIT)
                for flags in (0, socket.MSG_DONTWAIT, 0, 0):
                    n = srv.recv_into(buf, 0, flags)
                    got.append(bytes(buf[:n]))
            out["sent_order"] = got[:8]
            out["count"] = len(got)
        finally:
            module.ffi = real
        out["allocations"] = counting.allocations
        # A new destination does allocate (once), and goes to the right place.
        with Server(VMADDR_CID_ANY, -1) as other:
            cli.sendto(b"elsewhere", (VMADDR_CID_HOST, other.port))
            _wait_readable(other.fileno())
            out["elsewhere"] = other.recv(100)
            cli.sendto(b"back", dest)
            _wait_readable(srv.fileno())
            out["back"] = srv.recv(100)
    return out


def w_sendto_threads() -> dict[str, Any]:
    """Two threads share one socket's sendto cache, each to its own destination."""
    count = 300
    with Server(VMADDR_CID_ANY, -1) as s1, Server(VMADDR_CID_ANY, -1) as s2, \
            Client(VMADDR_CID_HOST, s1.port) as cli:
        received: dict[str, list[bytes]] = {"s1": [], "s2": []}

        def receive(name: str, srv: Server) -> None:
            srv.settimeout(WAIT)
            for _ in range(count):
                received[name].append(srv.recv(100))

        def send(tag: bytes, port: int) -> None:
            for i in range(count):
                cli.sendto(tag + b"%d" % i, (VMADDR_CID_HOST, port))

        threads = [threading.Thread(target=receive, args=("s1", s1)),
                   threading.Thread(target=receive, args=("s2", s2)),
                   threading.Thread(target=send, args=(b"one-", s1.port)),
                   threading.Thread(target=send, args=(b"two-", s2.port))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return {"s1": received["s1"], "s2": received["s2"], "count": count,
                "alive": [t.is_alive() for t in threads]}


def w_addresses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Server(VMADDR_CID_HOST, -1) as host, \
            Client(VMADDR_CID_HOST, srv.port) as cli:
        out["srv"] = (srv.getsockname(), srv.local_address, srv.cid, srv.port)
        out["host"] = (host.getsockname(), host.cid, host.port)
        out["cli_before"] = cli.getsockname()
        out["cli_peer_before"] = _outcome(cli.getpeername)
        cli.send(b"bind me")
        out["cli_after"] = cli.getsockname()
        _wait_readable(srv.fileno())
        out["sender"] = srv.recvfrom(100)[1]
        cli.connect()
        out["cli_peer"] = cli.getpeername()
        out["destination"] = cli.destination
        out["attrs"] = [(s.family, s.type, s.proto) for s in (srv, cli)]
        out["repr"] = repr(srv)
        out["srv_send_unconnected"] = _outcome(lambda: srv.send(b"x"))
        out["last_error_initial"] = host.last_error
    with Client(VMADDR_CID_HOST, 9) as nobody:
        failure = _outcome(lambda: nobody.send(b"x"))
        out["last_error"] = (failure, nobody.last_error)
    out["instance_size"] = cando.instance_size()
    return out


def w_connection() -> dict[str, Any]:
    out: dict[str, Any] = {}
    a, b = _vsock_pair()
    a_name, b_name = a.getsockname(), b.getsockname()
    fd = a.detach()
    conn = Connection(fd)
    out["fd_kept"] = conn.fileno() == fd
    out["names"] = (conn.getsockname(), conn.getpeername(), conn.cid, conn.port)
    out["expected"] = (a_name, (VMADDR_CID_HOST, b_name[1]))
    out["timeout"] = (conn.gettimeout(), conn.getblocking())
    out["sent"] = conn.send(b"to b")
    out["b_got"] = b.recvfrom(100)
    b.send(b"to conn")
    _wait_readable(fd)
    out["recvfrom"] = conn.recvfrom(100)
    b.send(b"into")
    buf = bytearray(8)
    _wait_readable(fd)
    out["recv_into"] = (conn.recv_into(buf), bytes(buf))
    b.send(b"from-into")
    _wait_readable(fd)
    out["recvfrom_into"] = conn.recvfrom_into(buf, 4)
    b.send(b"plain")
    _wait_readable(fd)
    out["recv"] = conn.recv(100)
    out["sendto"] = conn.sendto(b"addressed", (VMADDR_CID_HOST, b_name[1]))
    out["b_got2"] = b.recv(100)
    conn.settimeout(0.05)
    out["timed_out"] = _outcome(lambda: conn.recv(10))
    conn.setblocking(False)
    out["would_block"] = _outcome(lambda: conn.recv(10))
    with conn as entered:
        out["enter_is_self"] = entered is conn
    out["closed"] = (conn.closed, conn.fileno(), repr(conn))
    try:
        os.fstat(fd)
        out["fd_closed"] = False
    except OSError as exc:
        out["fd_closed"] = exc.errno == errno.EBADF
    out["after_close"] = {name: _outcome(fn) for name, fn in {
        "recv": lambda: conn.recv(1), "send": lambda: conn.send(b"x"),
        "getsockname": conn.getsockname, "getpeername": conn.getpeername,
        "settimeout": lambda: conn.settimeout(1)}.items()}
    conn.close()  # idempotent
    b.close()

    # A non-blocking fd starts non-blocking; detach gives the fd back unclosed.
    c, d = _vsock_pair()
    c.setblocking(False)
    conn2 = Connection(c.detach(), peer=(VMADDR_CID_HOST, d.getsockname()[1]))
    out["nonblocking_fd"] = (conn2.gettimeout(), conn2.getblocking())
    raw = conn2.detach()
    out["detached"] = (conn2.closed, os.get_blocking(raw))
    os.close(raw)
    d.close()

    # Not a vsock socket: refused, and the caller keeps the fd.
    r, w = os.pipe()
    out["pipe"] = _outcome(lambda: Connection(r))
    out["pipe_still_open"] = os.fstat(r) is not None
    os.close(r)
    os.close(w)
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    out["unix"] = _outcome(lambda: Connection(u.fileno()))
    u.close()
    make: Any = Connection  # wrong types on purpose
    out["bad_fd"] = [_outcome(partial(make, v)) for v in (-1, "3", 3.0, None, True, 2**40)]
    out["bad_peer"] = [_outcome(partial(make, 0, peer=v))
                       for v in ((2,), [2, 1], (2, -1), ("2", 1))]
    out["closed_fd"] = _outcome(lambda: Connection(999))

    # Unclosed: a ResourceWarning, and the fd is closed anyway.
    e, f = _vsock_pair()
    efd = e.detach()
    leaked = Connection(efd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del leaked
        gc.collect()
    out["warnings"] = [(w.category.__name__, str(w.message)) for w in caught]
    try:
        os.fstat(efd)
        out["leaked_fd_closed"] = False
    except OSError:
        out["leaked_fd_closed"] = True
    f.close()
    return out


class _AcceptingLib:
    """``cando.vsock_udp.lib`` with a server_accept that succeeds, as on a transport
    that lets two sockets bind one address: it hands out a connected socket's fd."""

    def __init__(self, real: Any, fd: int) -> None:
        self._real = real
        self._fd = fd
        self.accepted: list[tuple[int, int]] = []

    def udo_vsock_udp_server_accept(self, inst: Any, addr: Any) -> int:
        self.accepted.append((int(addr.svm_cid), int(addr.svm_port)))
        return self._fd

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def w_accept_returns_connection() -> dict[str, Any]:
    out: dict[str, Any] = {}
    module: Any = cando.vsock_udp
    a, b = _vsock_pair()
    peer = (VMADDR_CID_HOST, b.getsockname()[1])
    with Server(VMADDR_CID_ANY, -1) as srv:
        out["real"] = _outcome(lambda: srv.accept(peer))  # Linux: EADDRINUSE
        fake = _AcceptingLib(module.lib, a.detach())
        module.lib = fake
        try:
            conn = srv.accept(peer)
        finally:
            module.lib = fake._real
        with conn:
            out["type"] = type(conn).__name__
            out["accepted"] = fake.accepted
            out["peer"] = conn.getpeername() == peer
            conn.send(b"accepted")
            out["b_got"] = b.recvfrom(100)[0]
            b.send(b"reply")
            _wait_readable(conn.fileno())
            out["reply"] = conn.recv(100)
    b.close()
    return out


# -- tests -----------------------------------------------------------------------------


def test_timeouts_and_blocking_follow_socket(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_timeouts)
    assert out["default"] == (None, True, True)
    assert out["timed"] == (0.05, True, False)  # a timeout: O_NONBLOCK + poll
    for name, elapsed in out["elapsed"].items():
        assert out[f"timeout_{name}"] == ("TimeoutError", None), name
        assert 0.045 <= elapsed < 2, (name, elapsed)
    assert out["in_time"][0] == b"in time"
    assert out["nonblocking"] == (0.0, False, False)
    assert out["would_block"] == ("BlockingIOError", errno.EAGAIN)
    assert out["would_block_into"] == ("BlockingIOError", errno.EAGAIN)
    assert out["zero_is_nonblocking"] == (0.0, False)
    assert out["blocking_again"] == (None, True, True)
    assert out["int_timeout"] == 2.0 and isinstance(out["int_timeout"], float)
    assert out["none"] == (None, True)
    assert out["dontwait"] == ("BlockingIOError", errno.EAGAIN)


def test_send_timeout_and_nonblocking_send(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_send_timeout)
    assert out["result"] == ("TimeoutError", None)
    assert out["sent"] >= 1 and out["drained"] == out["sent"]
    assert out["elapsed"] >= 0.045
    assert out["nonblocking_send"] == ("BlockingIOError", errno.EAGAIN)
    assert out["nonblocking_sendto"] == ("BlockingIOError", errno.EAGAIN)
    assert out["send_after_drain"] == len(b"room again")


def test_default_timeout_applies_to_new_sockets(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_default_timeout)
    assert out["srv"] == (0.25, False)
    assert out["cli"] == (0.25, False)
    assert out["recv"] == ("TimeoutError", None)


def test_eintr_during_a_timed_wait(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_eintr_in_timed_wait)
    assert out["delivered"] == b"from handler"
    assert out["raised"] == "handler raised"
    assert out["repeated"] == ("TimeoutError", None)
    assert out["ticks"] >= 3  # interrupted several times...
    assert 0.29 <= out["repeated_elapsed"] < 3  # ...and still one 0.3 s budget


def test_bad_timeouts_are_refused_and_change_nothing(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_bad_timeouts)
    assert out.pop("unchanged") == (1.5, False)
    assert out.pop("setblocking_kept_int") == ("no exception", None)
    expected = {"'1'": "TypeError", "b'1'": "TypeError", "[]": "TypeError",
                "(1+0j)": "TypeError", "-1": "ValueError", "-0.001": "ValueError",
                "nan": "ValueError"}
    for key, kind in expected.items():
        assert out.pop(key)[0] == kind, key
    [(_key, other)] = out.items()  # the object() entry
    assert other[0] == "TypeError"


def test_recv_into_send_sendto_allocate_no_cdata(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_hot_path_allocations)
    assert out["allocations"] == []
    assert out["count"] == 200
    assert out["sent_order"] == [b"s0", b"t0", b"u0", b"v0", b"s1", b"t1", b"u1", b"v1"]
    assert out["elsewhere"] == b"elsewhere"
    assert out["back"] == b"back"


def test_sendto_cache_is_thread_safe(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_sendto_threads)
    assert out["alive"] == [False] * 4
    count = out["count"]
    assert out["s1"] == [b"one-%d" % i for i in range(count)]
    assert out["s2"] == [b"two-%d" % i for i in range(count)]


def test_local_and_peer_addresses(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_addresses)
    srv_name, local, cid, port = out["srv"]
    assert srv_name == local == (VMADDR_CID_ANY, port) and cid == VMADDR_CID_ANY
    host_name, host_cid, host_port = out["host"]
    assert host_name == (VMADDR_CID_HOST, host_port) and host_cid == VMADDR_CID_HOST
    assert out["cli_before"] == (VMADDR_CID_ANY, cando.VMADDR_PORT_ANY)  # not bound yet
    assert out["cli_peer_before"] == ("OSError", errno.ENOTCONN)
    assert out["cli_after"][1] == out["sender"][1] >= 1024
    assert out["cli_peer"] == out["destination"] == (VMADDR_CID_HOST, port)
    assert out["attrs"] == [(socket.AF_VSOCK, socket.SOCK_DGRAM, 0)] * 2
    assert out["repr"] == f"<cando.Server fd={out['repr'].split('fd=')[1].split(',')[0]}, " \
                          f"cid={VMADDR_CID_ANY}, port={port}>"
    assert out["srv_send_unconnected"] == ("OSError", errno.EINVAL)  # as the kernel
    assert out["last_error_initial"] == (0, "")
    failure, (code, message) = out["last_error"]
    assert failure == ("OSError", errno.EHOSTUNREACH)
    assert code == errno.EHOSTUNREACH and message.startswith("sendto: ")
    assert out["instance_size"] >= 512 + 4


def test_connection_over_a_plain_fd(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_connection)
    assert out["fd_kept"] is True
    a_name, b_addr = out["expected"]
    sockname, peername, cid, port = out["names"]
    assert sockname == a_name and (cid, port) == a_name
    assert peername == b_addr
    assert out["timeout"] == (None, True)
    assert out["sent"] == 4
    assert out["b_got"] == (b"to b", (VMADDR_CID_HOST, a_name[1]))
    assert out["recvfrom"] == (b"to conn", b_addr)
    assert out["recv_into"] == (4, b"into\x00\x00\x00\x00")
    assert out["recvfrom_into"] == (4, b_addr)
    assert out["recv"] == b"plain"
    assert out["sendto"] == 9 and out["b_got2"] == b"addressed"
    assert out["timed_out"] == ("TimeoutError", None)
    assert out["would_block"] == ("BlockingIOError", errno.EAGAIN)
    assert out["enter_is_self"] is True
    assert out["closed"] == (True, -1, "<cando.Connection closed>")
    assert out["fd_closed"] is True
    assert out["after_close"] == {name: ("OSError", errno.EBADF) for name in out["after_close"]}
    assert out["nonblocking_fd"] == (0.0, False)
    assert out["detached"] == (True, False)
    assert out["pipe"] == ("OSError", errno.ENOTSOCK)
    assert out["pipe_still_open"] is True
    assert out["unix"] == ("OSError", errno.EAFNOSUPPORT)
    assert [kind for kind, _ in out["bad_fd"]] == ["ValueError", "TypeError", "TypeError",
                                                   "TypeError", "TypeError", "ValueError"]
    assert [kind for kind, _ in out["bad_peer"]] == ["TypeError", "TypeError", "ValueError",
                                                     "TypeError"]
    assert out["closed_fd"] == ("OSError", errno.EBADF)
    [(category, message)] = out["warnings"]
    assert category == "ResourceWarning" and "unclosed" in message and "Connection" in message
    assert out["leaked_fd_closed"] is True


def test_accept_wraps_the_new_fd_in_a_connection(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_accept_returns_connection)
    assert out["real"] == ("OSError", errno.EADDRINUSE)
    assert out["type"] == "Connection"
    assert len(out["accepted"]) == 1 and out["peer"] is True
    assert out["b_got"] == b"accepted"
    assert out["reply"] == b"reply"


# -- the pytest process ----------------------------------------------------------------

C_FUNCTIONS = [
    "udo_vsock_udp_server_create", "udo_vsock_udp_server_accept",
    "udo_vsock_udp_server_recv_data", "udo_vsock_udp_client_create",
    "udo_vsock_udp_client_connect", "udo_vsock_udp_client_send_data",
    "udo_vsock_udp_get_fd", "udo_vsock_udp_get_vcid", "udo_vsock_udp_get_port",
    "udo_vsock_udp_destroy", "udo_vsock_udp_get_sizeof", "udo_vsock_udp_get_local_vcid",
    "udo_vsock_udp_recv_data", "udo_vsock_udp_send_data",
    "udo_log_set_level", "udo_log_set_write_fd", "udo_log_remove_colors",
    "udo_log_reset_colors", "udo_log_get_error", "udo_log_get_error_code",
    "udo_log_set_error_struct", "udo_log_time", "udo_log_notime",
]


def _public_docstrings() -> dict[str, str]:
    docs: dict[str, str] = {}
    for module in (cando.vsock_udp, cando.log):
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj):
                docs[f"{name}"] = inspect.getdoc(obj) or ""
                for attr in dir(obj):
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    docs[f"{name}.{attr}"] = inspect.getdoc(getattr(obj, attr)) or ""
            elif inspect.isfunction(obj):
                docs[name] = inspect.getdoc(obj) or ""
    return docs


def test_every_c_function_is_reachable_and_named_in_a_docstring() -> None:
    docs = _public_docstrings()
    text = "\n".join(docs.values())
    missing = [fn for fn in C_FUNCTIONS if fn not in text]
    assert missing == []
    lib: Any = cando._cando.lib
    assert all(callable(getattr(lib, fn)) for fn in C_FUNCTIONS)
    # The methods that call libcando say which function (aliases of base ones included).
    for method in ("recv", "recv_into", "recvfrom", "recvfrom_into", "send", "sendto"):
        for cls in ("Server", "Client", "Connection"):
            assert "udo_" in docs[f"{cls}.{method}"], (cls, method)
    for name in ("Server.accept", "Client.connect", "Server.close", "Client.fileno",
                 "Server.port", "Server.cid", "local_cid", "instance_size"):
        assert "udo_vsock_udp_" in docs[name], name


def test_module_exports() -> None:
    for name in ("Server", "Client", "Connection", "VsockSocket", "local_cid",
                 "VMADDR_CID_ANY", "VMADDR_CID_HOST", "TransportUnavailableError", "errors",
                 "log", "instance_size"):
        assert hasattr(cando, name), name
    assert issubclass(Connection, cando.VsockSocket) and issubclass(Server, cando.VsockSocket)
    from cando.cli import main  # the CLI's imports still resolve
    assert callable(main)


def _no_c(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    called: list[str] = []
    real: Any = cando._cando.lib

    class Spy:
        def __getattr__(self, name: str) -> Any:
            value = getattr(real, name)
            if callable(value):
                def refuse(*args: object) -> Any:
                    called.append(name)
                    raise AssertionError(f"C call lib.{name}")
                return refuse
            return value

    monkeypatch.setattr(cando.vsock_udp, "lib", Spy())
    return called


_ANY_CONNECTION: Any = Connection  # wrong types on purpose


@pytest.mark.parametrize("make", [
    lambda: _ANY_CONNECTION(-1), lambda: _ANY_CONNECTION("0"),
    lambda: _ANY_CONNECTION(0, peer=(1,)), lambda: _ANY_CONNECTION(0, peer=(2**32, 1)),
])
def test_connection_argument_errors_before_any_c_call(
        monkeypatch: pytest.MonkeyPatch, make: Callable[[], object]) -> None:
    called = _no_c(monkeypatch)
    with pytest.raises((TypeError, ValueError)):
        make()
    assert called == []


def test_errno_classes_in_one_place() -> None:
    from cando.errors import ERRNO_CLASSES, error_from_errno
    for err, cls in ERRNO_CLASSES.items():
        exc = error_from_errno(err, "call: text")
        assert type(exc) is cls and exc.errno == err
    assert type(error_from_errno(errno.EADDRINUSE)) is OSError
    assert error_from_errno(errno.EADDRINUSE).strerror == os.strerror(errno.EADDRINUSE)
    enodev = error_from_errno(errno.ENODEV, "socket: No such device")
    assert isinstance(enodev, cando.TransportUnavailableError)
    assert enodev.strerror is not None
    assert "this kernel has no AF_VSOCK datagram transport" in enodev.strerror
    assert "cando-vsock run -- PROGRAM" in enodev.strerror
    assert "LD_PRELOAD" in enodev.strerror
    # Python's own choice for the same errno agrees (PEP 3151).
    for err, cls in ERRNO_CLASSES.items():
        if cls is not cando.TransportUnavailableError:
            assert type(OSError(err, "x")) is cls


# -- review findings ------------------------------------------------------------------


def _timeouts_out_of_range() -> list[str]:
    got = []
    with Server(port=-1) as srv:
        for value in (float("inf"), 1e300, 1e12):
            try:
                srv.settimeout(value)
                got.append("accepted")
            except OverflowError:
                got.append("OverflowError")
        srv.settimeout(3e6)  # longer than one poll() can wait: accepted, polled in slices
        got.append(str(srv.gettimeout()))
    return got


def test_settimeout_refuses_what_socket_refuses(wrapped_worker: Any) -> None:
    assert wrapped_worker.call(_timeouts_out_of_range) == [
        "OverflowError", "OverflowError", "OverflowError", "3000000.0"]
    for value in (float("inf"), 1e300, 1e12):
        with pytest.raises(OverflowError):
            socket.socket().settimeout(value)


def _send_many_checks() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Server(port=-1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        class Liar(list):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return 6

        out["liar_sent"] = cli.send_many(Liar([b"hello"]))
        out["liar_got"] = [d for d, _ in srv.recv_many(8, 64)]
        cli.send_many([b"ok"], (VMADDR_CID_HOST, srv.port))
        srv.recv_many(8, 64)
        try:  # the same address as floats: refused, even right after a valid call
            cli.send_many([b"x"], (float(VMADDR_CID_HOST), srv.port))
            out["float_cid"] = "accepted"
        except TypeError:
            out["float_cid"] = "TypeError"
    return out


def test_send_many_sends_what_it_iterates_and_checks_every_address(
        wrapped_worker: Any) -> None:
    out = wrapped_worker.call(_send_many_checks)
    assert out["liar_sent"] == 1 and out["liar_got"] == [b"hello"]
    assert out["float_cid"] == "TypeError"
