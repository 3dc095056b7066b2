"""The Pythonic layer, ``cando.Server`` / ``cando.Client``.

Datagram tests run *in-process* under vsock_wrapper: the module-level ``w_*``
functions execute inside the ``wrapped_worker`` process and return what they
observed; the tests assert on that. Argument checking and the missing-transport
error are checked in the pytest process itself, which has no wrapper.
"""

from __future__ import annotations

import array
import errno
import fcntl
import gc
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import warnings
from functools import partial
from typing import Any, Callable

import pytest
from wrapper_helpers import sockname

import cando
import cando.vsock_udp
from cando import VMADDR_CID_ANY, VMADDR_CID_HOST, Client, Server

_LIB: Any = cando._cando.lib  # the real C functions, for the spy to wrap
WAIT = 5.0  # seconds a datagram may take to arrive, at most
MAX_DGRAM = 69608


# -- helpers (run in the worker) -------------------------------------------------------


def _wait_readable(fd: int) -> None:
    """Fail, rather than hang, if no datagram arrives on ``fd``."""
    if not select.select([fd], [], [], WAIT)[0]:
        raise TimeoutError(f"no datagram on fd {fd} within {WAIT} s")


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return False
    return True


def _error(fn: Callable[[], object]) -> tuple[str, int | None, str | None]:
    """Call ``fn``, which must raise ``OSError``; report its type, errno and message."""
    try:
        fn()
    except OSError as exc:
        return type(exc).__name__, exc.errno, exc.strerror
    raise AssertionError(f"{fn} did not raise")


# -- worker functions --------------------------------------------------------------------


def w_lifetime() -> dict[str, Any]:
    out: dict[str, Any] = {}
    srv = Server(VMADDR_CID_ANY, -1)
    with srv as entered_srv:
        fd = srv.fileno()
        out["server_enter_is_self"] = entered_srv is srv
        out["server_fd"] = fd
        out["server_fd_open"] = _fd_is_open(fd)
        out["server_closed_inside"] = srv.closed
    out["server_closed_after"] = srv.closed
    out["server_fileno_after"] = srv.fileno()
    out["server_fd_open_after"] = _fd_is_open(fd)

    cli = Client(VMADDR_CID_HOST, 1234)
    with cli as entered:
        out["client_enter_is_self"] = entered is cli
        cfd = cli.fileno()
        out["client_fd_open"] = _fd_is_open(cfd)
        out["client_cid"], out["client_port"] = cli.cid, cli.port
        probe = socket.socket(fileno=os.dup(cfd))
        out["client_family_type"] = (probe.family, probe.type)
        probe.close()
    out["client_closed_after"] = cli.closed
    out["client_fileno_after"] = cli.fileno()
    out["client_fd_open_after"] = _fd_is_open(cfd)

    # The context manager closes on an exception too, and lets it through.
    try:
        with Server(VMADDR_CID_ANY, -1) as srv2:
            fd2 = srv2.fileno()
            raise KeyError("inside")
    except KeyError:
        out["exception_propagated"] = True
    out["closed_on_exception"] = srv2.closed and not _fd_is_open(fd2)
    return out


def w_port_any() -> dict[str, Any]:
    with Server(VMADDR_CID_ANY, -1) as any_srv, Server(VMADDR_CID_HOST, -1) as host_srv:
        probe = socket.socket(fileno=os.dup(any_srv.fileno()))
        try:
            family_type = (int(probe.family), int(probe.type))
        finally:
            probe.close()
        return {
            "any_port": any_srv.port, "any_name": sockname(any_srv.fileno()),
            "any_cid": any_srv.cid,
            "host_port": host_srv.port, "host_name": sockname(host_srv.fileno()),
            "host_cid": host_srv.cid,
            "family_type": family_type,
        }


def w_explicit_port() -> dict[str, Any]:
    with Server(VMADDR_CID_ANY, -1) as probe:
        port = probe.port + 100  # free: ports are handed out upwards from 1024
    with Server(VMADDR_CID_ANY, port) as srv:
        out = {"wanted": port, "port": srv.port, "name": sockname(srv.fileno())}
        out["again"] = _error(lambda: Server(VMADDR_CID_ANY, port))
        out["again_host_cid"] = _error(lambda: Server(VMADDR_CID_HOST, port))
    return out


def w_exchange() -> dict[str, Any]:
    """Client -> Server with recvfrom, Server -> Client with sendto, senders checked."""
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        out["srv_port"] = srv.port
        out["sent"] = cli.send(b"ping")
        out["cli_name"] = sockname(cli.fileno())  # auto-bound by the first send
        _wait_readable(srv.fileno())
        out["srv_got"] = srv.recvfrom(100)
        data, sender = out["srv_got"]
        out["replied"] = srv.sendto(data.upper(), sender)
        _wait_readable(cli.fileno())
        out["cli_got"] = cli.recvfrom(100)
    return out


def w_buffers() -> dict[str, Any]:
    """recv, recv_into and recvfrom_into with every kind of buffer, on both classes."""
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        cli.send(b"first")
        cli_port = sockname(cli.fileno())[1]
        out["cli_port"] = cli_port
        out["srv_port"] = srv.port

        def to_server(payload: bytes) -> None:
            cli.send(payload)
            _wait_readable(srv.fileno())

        def to_client(payload: bytes) -> None:
            srv.sendto(payload, (VMADDR_CID_HOST, cli_port))
            _wait_readable(cli.fileno())

        _wait_readable(srv.fileno())
        out["recv"] = srv.recv(100)

        ba = bytearray(10)
        to_server(b"bytearray")
        n = srv.recv_into(ba)
        out["recv_into_bytearray"] = (n, bytes(ba))

        backing = bytearray(b"..........")
        to_server(b"mv")
        n = srv.recv_into(memoryview(backing)[3:])  # lands at offset 3
        out["recv_into_memoryview"] = (n, bytes(backing))

        arr = array.array("B", bytes(8))
        to_server(b"array")
        n = srv.recv_into(arr)
        out["recv_into_array"] = (n, arr.tobytes())

        wide = array.array("I", [0, 0])  # 8 bytes, item size 4
        to_server(b"\x01\x00\x00\x00\x02\x00\x00\x00")
        n = srv.recv_into(wide)
        out["recv_into_array_I"] = (n, list(wide))

        ba = bytearray(16)
        to_server(b"from-into")
        out["srv_recvfrom_into_bytearray"] = (srv.recvfrom_into(ba), bytes(ba[:9]))

        mv = memoryview(bytearray(16))
        to_server(b"mv-from")
        out["srv_recvfrom_into_memoryview"] = (srv.recvfrom_into(mv), bytes(mv[:7]))

        arr = array.array("b", bytes(16))
        to_server(b"arr-from")
        out["srv_recvfrom_into_array"] = (srv.recvfrom_into(arr), arr.tobytes()[:8])

        # nbytes limits the read; the rest of the datagram is discarded.
        ba = bytearray(16)
        to_server(b"0123456789")
        out["recv_into_nbytes"] = (srv.recv_into(ba, 4), bytes(ba))
        out["after_truncation"] = _error(lambda: srv.recv(100, socket.MSG_DONTWAIT))

        # The client side (the base class' recvfrom_into / recv_into).
        ba = bytearray(16)
        to_client(b"c-bytearray")
        out["cli_recvfrom_into_bytearray"] = (cli.recvfrom_into(ba), bytes(ba[:11]))
        mv = memoryview(bytearray(16))
        to_client(b"c-mv")
        out["cli_recvfrom_into_memoryview"] = (cli.recvfrom_into(mv), bytes(mv[:4]))
        arr = array.array("B", bytes(16))
        to_client(b"c-array")
        out["cli_recvfrom_into_array"] = (cli.recvfrom_into(arr), arr.tobytes()[:7])
        ba = bytearray(16)
        to_client(b"c-recv-into")
        out["cli_recv_into"] = (cli.recv_into(ba), bytes(ba[:11]))
        to_client(b"c-recv")
        out["cli_recv"] = cli.recv(3)  # truncated to the buffer size
        to_client(b"c-recvfrom")
        out["cli_recvfrom"] = cli.recvfrom(100)

        # sendto accepts any bytes-like payload.
        for payload in (bytearray(b"ba"), memoryview(b"mv"), array.array("B", b"ar")):
            srv.sendto(payload, (VMADDR_CID_HOST, cli_port))
            _wait_readable(cli.fileno())
            out.setdefault("sendto_kinds", []).append(cli.recv(10))
    return out


def w_flags() -> dict[str, Any]:
    """MSG_* flags pass through unchanged: MSG_PEEK, MSG_DONTWAIT."""
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        out["empty_recv"] = _error(lambda: srv.recv(10, socket.MSG_DONTWAIT))
        out["empty_recvfrom"] = _error(lambda: srv.recvfrom(10, socket.MSG_DONTWAIT))
        out["empty_recv_into"] = _error(
            lambda: srv.recv_into(bytearray(4), 0, socket.MSG_DONTWAIT))
        out["empty_cli_recvfrom"] = _error(lambda: cli.recvfrom(10, socket.MSG_DONTWAIT))
        cli.send(b"peekaboo", 0)
        _wait_readable(srv.fileno())
        out["peek"] = srv.recvfrom(100, socket.MSG_PEEK)
        out["after_peek"] = srv.recvfrom(100, socket.MSG_DONTWAIT)
        out["empty_again"] = _error(lambda: srv.recv(10, socket.MSG_DONTWAIT))
        # vsock (unlike UDP): MSG_TRUNC changes nothing, the copied length comes back.
        cli.send(b"0123456789")
        _wait_readable(srv.fileno())
        out["trunc_recv"] = srv.recv(3, socket.MSG_TRUNC)
        cli.send(b"0123456789")
        _wait_readable(srv.fileno())
        buf = bytearray(8)
        out["trunc_recv_into"] = (srv.recv_into(buf, 3, socket.MSG_TRUNC), bytes(buf))
    return out


class _Alarm(Exception):
    pass


def w_eintr() -> dict[str, Any]:
    """A signal during a blocking receive: retried (PEP 475), or the handler's exception."""
    out: dict[str, Any] = {}
    saved = signal.getsignal(signal.SIGALRM)
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        # A bound on every wait below, should a retry never end: SO_RCVTIMEO 10 s.
        # (Python's socket refuses a bytes option on an AF_VSOCK socket: claim AF_UNIX.)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM, fileno=os.dup(srv.fileno())) as same:
            same.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                            struct.pack("ll", 10, 0))
        handled: list[int] = []

        def deliver(signum: int, frame: object) -> None:
            handled.append(signum)
            cli.send(b"sent by the handler")

        def interrupt(signum: int, frame: object) -> None:
            raise _Alarm("from the handler")

        try:
            signal.signal(signal.SIGALRM, deliver)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            out["retried"] = srv.recvfrom(100)  # EINTR, handler runs, retry gets its datagram
            out["handled"] = handled
            signal.signal(signal.SIGALRM, interrupt)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            try:
                srv.recv(100)
            except _Alarm as exc:
                out["raised"] = str(exc)
            out["usable_after"] = _error(lambda: srv.recv(10, socket.MSG_DONTWAIT))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, saved)
        out["cli_port"] = sockname(cli.fileno())[1]
    return out


def w_local_cid() -> int:
    return cando.local_cid()


def w_connect() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        out["srv_port"] = srv.port
        connect: Any = cli.connect
        out["connect"] = connect()  # None
        probe = socket.socket(fileno=os.dup(cli.fileno()))
        try:
            out["peer"] = tuple(probe.getpeername())
            out["name"] = tuple(probe.getsockname())
            # connect(2) done: send(2) with no address works on the fd as well.
            out["plain_send"] = probe.send(b"plain")
        finally:
            probe.close()
        _wait_readable(srv.fileno())
        out["got_plain"] = srv.recvfrom(100)
        out["sent"] = cli.send(memoryview(b"connected"))
        _wait_readable(srv.fileno())
        out["got"] = srv.recvfrom(100)
        out["max"] = cli.send(b"m" * MAX_DGRAM)
        _wait_readable(srv.fileno())
        out["got_max"] = len(srv.recv(MAX_DGRAM + 10))
        out["too_big"] = _error(lambda: cli.send(b"m" * (MAX_DGRAM + 1)))
    return out


def w_accept() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        cli.send(b"before")
        peer = sockname(cli.fileno())
        _wait_readable(srv.fileno())
        srv.recv(100)
        before = _open_fds()
        out["accept"] = _error(lambda: srv.accept((VMADDR_CID_HOST, peer[1])))
        out["leaked"] = sorted(_open_fds() - before)
        # The server socket is undisturbed: same fd, same port, still receiving.
        out["port_same"] = srv.port == sockname(srv.fileno())[1]
        cli.send(b"after")
        _wait_readable(srv.fileno())
        out["after"] = srv.recvfrom(100)
        out["peer"] = peer
    return out


def w_after_close() -> dict[str, Any]:
    srv = Server(VMADDR_CID_ANY, -1)
    cli = Client(VMADDR_CID_HOST, srv.port)
    fds = (srv.fileno(), cli.fileno())
    srv.close()
    cli.close()
    again: list[Any] = [srv.close, cli.close]  # each returns None, and must not raise
    via_exit: list[Any] = [srv.__exit__, cli.__exit__]
    out: dict[str, Any] = {
        "fds_open": [_fd_is_open(fd) for fd in fds],
        "second_close": tuple(fn() for fn in again),
        "third_close_via_exit": tuple(fn(None, None, None) for fn in via_exit),
        "fileno": (srv.fileno(), cli.fileno()),
        "closed": (srv.closed, cli.closed),
        "repr": (repr(srv), repr(cli)),
    }
    calls: dict[str, Callable[[], object]] = {
        "srv.recv": lambda: srv.recv(10),
        "srv.recvfrom": lambda: srv.recvfrom(10),
        "srv.recv_into": lambda: srv.recv_into(bytearray(4)),
        "srv.recvfrom_into": lambda: srv.recvfrom_into(bytearray(4)),
        "srv.sendto": lambda: srv.sendto(b"x", (2, 1024)),
        "srv.accept": lambda: srv.accept((2, 1024)),
        "srv.port": lambda: srv.port,
        "srv.cid": lambda: srv.cid,
        "cli.send": lambda: cli.send(b"x"),
        "cli.connect": lambda: cli.connect(),
        "cli.sendto": lambda: cli.sendto(b"x", (2, 1024)),
        "cli.recv": lambda: cli.recv(10),
        "cli.recvfrom": lambda: cli.recvfrom(10),
        "cli.recv_into": lambda: cli.recv_into(bytearray(4)),
        "cli.recvfrom_into": lambda: cli.recvfrom_into(bytearray(4)),
        "cli.port": lambda: cli.port,
        "cli.cid": lambda: cli.cid,
    }
    out["errors"] = {name: _error(fn) for name, fn in calls.items()}
    return out


def w_resource_warning() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls, args in ((Server, (VMADDR_CID_ANY, -1)), (Client, (VMADDR_CID_HOST, 1234))):
        obj = cls(*args)
        fd = obj.fileno()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del obj
            gc.collect()
        out[cls.__name__] = {
            "warnings": [(w.category.__name__, str(w.message)) for w in caught],
            "fd_open": _fd_is_open(fd),
        }
    # A closed object warns about nothing.
    closed = Server(VMADDR_CID_ANY, -1)
    closed.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del closed
        gc.collect()
    out["closed"] = [str(w.message) for w in caught]
    return out


def w_errors() -> dict[str, Any]:
    out: dict[str, Any] = {}
    before = _open_fds()
    out["bind_cid_7"] = _error(lambda: Server(7, -1))
    out["leaked"] = sorted(_open_fds() - before)

    with Server(VMADDR_CID_ANY, -1) as probe:
        nobody = probe.port  # free again once closed
    with Client(VMADDR_CID_HOST, nobody) as cli:
        out["send_nobody"] = _error(lambda: cli.send(b"x"))
        out["sendto_nobody"] = _error(lambda: cli.sendto(b"x", (VMADDR_CID_HOST, nobody)))
    with Client(VMADDR_CID_HOST, -1) as cli:
        out["send_port_any"] = _error(lambda: cli.send(b"x"))
    with Client(cando.VMADDR_CID_LOCAL, 1234) as cli:
        out["send_cid_local"] = _error(lambda: cli.send(b"x"))
    out["is_transport_error"] = isinstance(
        _raises(lambda: Server(7, -1)), cando.TransportUnavailableError)
    return out


def _raises(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError(f"{fn} did not raise")


class _NoCCalls:
    """Stands in for ``cando.vsock_udp.lib``: calling any function of it fails.

    Constants (``AF_VSOCK``, ...) come from the real ``lib``; functions are
    recorded in :attr:`called` and raise instead of running.
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        if not callable(value):
            return value

        def refuse(*args: object) -> Any:
            self.called.append(name)
            raise AssertionError(f"C call lib.{name} before the arguments were checked")

        return refuse


def _spy_targets(module: Any) -> dict[str, str]:
    """``lib`` and every module global bound to one of its functions (the hot
    paths bind ``lib.udo_*`` once): attribute name -> C function name."""
    functions = {id(getattr(_LIB, n)): n for n in dir(_LIB) if callable(getattr(_LIB, n))}
    targets = {"lib": ""}
    for attr, value in vars(module).items():
        if id(value) in functions:
            targets[attr] = functions[id(value)]
    return targets


def _install_spy(module: Any, spy: _NoCCalls, setattr_: Any = setattr) -> dict[str, Any]:
    """Put ``spy`` in place of ``lib`` and of its bound functions; returns what it replaced."""
    saved = {}
    for attr, fname in _spy_targets(module).items():
        saved[attr] = getattr(module, attr)
        setattr_(module, attr, spy if not fname else getattr(spy, fname))
    return saved


def _bad_method_calls(srv: Server, cli: Client) -> dict[str, Callable[[], object]]:
    good = (VMADDR_CID_HOST, srv.port)
    objs: dict[str, Server | Client] = {"srv": srv, "cli": cli}
    cases: dict[str, Callable[[], object]] = {}
    bad_addresses: list[Any] = [
        [2, 1024], (2,), (2, 1024, 0), "2:1024", None, ("2", 1024), (2, "1024"), (2.0, 1024),
        (2, None), (-1, 1024), (2**32, 1024), (2, -1), (2, 2**32), (True, 1024), (2, False),
    ]
    for i, address in enumerate(bad_addresses):
        cases[f"sendto address {i} {address!r}"] = partial(srv.sendto, b"x", address)
        cases[f"accept address {i} {address!r}"] = partial(srv.accept, address)
    bad_payloads: list[Any] = [
        b"", bytearray(), memoryview(b""), array.array("B"), "text", None, 5, [1, 2], object(),
        memoryview(bytearray(10))[::2],
    ]
    for i, payload in enumerate(bad_payloads):
        cases[f"sendto payload {i}"] = partial(srv.sendto, payload, good)
        cases[f"send payload {i}"] = partial(cli.send, payload)
    bad_flags: list[Any] = ["0", 1.5, None, 2**31, -(2**31) - 1, True, b"\x00"]
    for i, flags in enumerate(bad_flags):
        cases[f"sendto flags {i}"] = partial(srv.sendto, b"x", good, flags)
        cases[f"send flags {i}"] = partial(cli.send, b"x", flags)
        cases[f"recv flags {i}"] = partial(srv.recv, 10, flags)
        cases[f"recvfrom flags {i}"] = partial(srv.recvfrom, 10, flags)
        cases[f"recv_into flags {i}"] = partial(srv.recv_into, bytearray(4), 0, flags)
        for name, obj in objs.items():
            cases[f"{name} recvfrom_into flags {i}"] = partial(
                obj.recvfrom_into, bytearray(4), 0, flags)
    bad_sizes: list[Any] = [-1, 0, -(2**40), 2**31, "10", 1.5, None, True]
    for i, size in enumerate(bad_sizes):
        for name, obj in objs.items():
            cases[f"{name} recv bufsize {i}"] = partial(obj.recv, size)
            cases[f"{name} recvfrom bufsize {i}"] = partial(obj.recvfrom, size)
    bad_buffers: list[Any] = [
        b"read-only", bytearray(), memoryview(bytearray()), "text", None, 7, (1, 2),
        memoryview(b"read-only"), memoryview(bytearray(10))[::2], array.array("B"),
    ]
    for i, buf in enumerate(bad_buffers):
        for name, obj in objs.items():
            cases[f"{name} recv_into buffer {i}"] = partial(obj.recv_into, buf)
            cases[f"{name} recvfrom_into buffer {i}"] = partial(obj.recvfrom_into, buf)
    bad_nbytes: list[Any] = [-1, 5, 2**40, "2", 1.0, None]  # the buffer holds 4 bytes
    for i, nbytes in enumerate(bad_nbytes):
        for name, obj in objs.items():
            cases[f"{name} recv_into nbytes {i}"] = partial(obj.recv_into, bytearray(4), nbytes)
            cases[f"{name} recvfrom_into nbytes {i}"] = partial(
                obj.recvfrom_into, bytearray(4), nbytes)
    return cases


def w_bad_arguments_no_c_call() -> dict[str, Any]:
    """Every bad argument to a live object's method: its exception, and C calls made."""
    results: dict[str, Any] = {}
    with Server(VMADDR_CID_ANY, -1) as srv, Client(VMADDR_CID_HOST, srv.port) as cli:
        cases = _bad_method_calls(srv, cli)
        module: Any = cando.vsock_udp
        spy = _NoCCalls(module.lib)
        saved = _install_spy(module, spy)
        assert len(saved) > 1, "the hot paths' bound C functions are spied on too"
        try:
            for name, fn in cases.items():
                spy.called.clear()
                try:
                    fn()
                except Exception as exc:
                    results[name] = (type(exc).__name__, list(spy.called))
                else:
                    results[name] = ("no exception", list(spy.called))
        finally:
            for attr, value in saved.items():
                setattr(module, attr, value)
        # The objects still work after all that.
        cli.send(b"still fine")
        _wait_readable(srv.fileno())
        results["still works"] = srv.recv(100)
    return results


# -- tests: in-process under the wrapper ----------------------------------------------------


def test_context_managers_and_fileno(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_lifetime)
    assert out["server_enter_is_self"] is True
    assert out["server_fd"] >= 0 and out["server_fd_open"]
    assert out["server_closed_inside"] is False
    assert out["server_closed_after"] is True
    assert out["server_fileno_after"] == -1
    assert out["server_fd_open_after"] is False
    assert out["client_enter_is_self"] is True
    assert out["client_fd_open"] is True
    assert (out["client_cid"], out["client_port"]) == (VMADDR_CID_HOST, 1234)
    assert out["client_family_type"] == (socket.AF_VSOCK, socket.SOCK_DGRAM)
    assert out["client_closed_after"] is True
    assert out["client_fileno_after"] == -1
    assert out["client_fd_open_after"] is False
    assert out["exception_propagated"] is True
    assert out["closed_on_exception"] is True


def test_port_any_is_what_getsockname_says(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_port_any)
    assert out["family_type"] == (socket.AF_VSOCK, socket.SOCK_DGRAM)
    assert out["any_port"] >= 1024 and out["host_port"] >= 1024
    assert out["any_port"] != out["host_port"]
    assert out["any_name"] == (VMADDR_CID_ANY, out["any_port"])  # ANY stays ANY
    assert out["host_name"] == (VMADDR_CID_HOST, out["host_port"])
    assert out["any_cid"] == VMADDR_CID_ANY
    assert out["host_cid"] == VMADDR_CID_HOST


def test_explicit_port_and_address_in_use(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_explicit_port)
    assert out["port"] == out["wanted"]
    assert out["name"] == (VMADDR_CID_ANY, out["wanted"])
    for key in ("again", "again_host_cid"):
        kind, err, message = out[key]
        assert kind == "OSError" and err == errno.EADDRINUSE, out[key]
        assert message.startswith("bind: ") and os.strerror(errno.EADDRINUSE) in message


def test_sendto_recvfrom_report_cid_port(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_exchange)
    cli_port = out["cli_name"][1]
    assert cli_port >= 1024 and cli_port != out["srv_port"]
    assert out["sent"] == 4
    data, sender = out["srv_got"]
    assert data == b"ping"
    assert isinstance(sender, tuple) and sender == (VMADDR_CID_HOST, cli_port)
    assert out["replied"] == 4
    assert out["cli_got"] == (b"PING", (VMADDR_CID_HOST, out["srv_port"]))


def test_receive_into_every_buffer_kind(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_buffers)
    host_cli = (VMADDR_CID_HOST, out["cli_port"])
    host_srv = (VMADDR_CID_HOST, out["srv_port"])
    assert out["recv"] == b"first"
    assert out["recv_into_bytearray"] == (9, b"bytearray\x00")
    assert out["recv_into_memoryview"] == (2, b"...mv.....")
    assert out["recv_into_array"] == (5, b"array\x00\x00\x00")
    assert out["recv_into_array_I"] == (8, [1, 2])
    assert out["srv_recvfrom_into_bytearray"] == ((9, host_cli), b"from-into")
    assert out["srv_recvfrom_into_memoryview"] == ((7, host_cli), b"mv-from")
    assert out["srv_recvfrom_into_array"] == ((8, host_cli), b"arr-from")
    assert out["recv_into_nbytes"] == (4, b"0123" + bytes(12))
    assert out["after_truncation"][:2] == ("BlockingIOError", errno.EAGAIN)
    assert out["cli_recvfrom_into_bytearray"] == ((11, host_srv), b"c-bytearray")
    assert out["cli_recvfrom_into_memoryview"] == ((4, host_srv), b"c-mv")
    assert out["cli_recvfrom_into_array"] == ((7, host_srv), b"c-array")
    assert out["cli_recv_into"] == (11, b"c-recv-into")
    assert out["cli_recv"] == b"c-r"
    assert out["cli_recvfrom"] == (b"c-recvfrom", host_srv)
    assert out["sendto_kinds"] == [b"ba", b"mv", b"ar"]


def test_flags_pass_through(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_flags)
    for key in ("empty_recv", "empty_recvfrom", "empty_recv_into", "empty_cli_recvfrom",
                "empty_again"):
        kind, err, message = out[key]
        assert (kind, err) == ("BlockingIOError", errno.EAGAIN), (key, out[key])
        assert message
    data, _sender = out["peek"]
    assert data == b"peekaboo"
    assert out["after_peek"] == out["peek"]  # MSG_PEEK left it queued
    assert out["trunc_recv"] == b"012"
    assert out["trunc_recv_into"] == (3, b"012" + bytes(5))


def test_signal_during_receive(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_eintr)
    assert out["handled"] == [signal.SIGALRM]
    assert out["retried"] == (b"sent by the handler", (VMADDR_CID_HOST, out["cli_port"]))
    assert out["raised"] == "from the handler"
    assert out["usable_after"][:2] == ("BlockingIOError", errno.EAGAIN)


def _ioctl_local_cid() -> int:
    fd = os.open("/dev/vsock", os.O_RDONLY)
    try:
        return int(struct.unpack("I", fcntl.ioctl(fd, 0x7B9, b"\0" * 4))[0])
    finally:
        os.close(fd)


def test_local_cid_native_and_wrapped(wrapped_worker: Any) -> None:
    assert cando.local_cid() == _ioctl_local_cid()  # 3 on this host
    assert wrapped_worker.call(w_local_cid) == 2


def test_client_connect_and_send(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_connect)
    assert out["connect"] is None
    assert out["peer"] == (VMADDR_CID_HOST, out["srv_port"])
    name_port = out["name"][1]
    assert name_port >= 1024  # connect auto-binds
    assert out["plain_send"] == 5
    assert out["got_plain"] == (b"plain", (VMADDR_CID_HOST, name_port))
    assert out["sent"] == 9
    assert out["got"] == (b"connected", (VMADDR_CID_HOST, name_port))
    assert out["max"] == MAX_DGRAM and out["got_max"] == MAX_DGRAM
    assert out["too_big"][:2] == ("OSError", errno.EMSGSIZE)
    assert out["too_big"][2].startswith("sendto: ")


def test_accept_raises_eaddrinuse_with_the_library_message(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_accept)
    kind, err, message = out["accept"]
    assert kind == "OSError" and err == errno.EADDRINUSE
    assert message.startswith("bind: " + os.strerror(errno.EADDRINUSE))
    assert "no AF_VSOCK transport in Linux lets two sockets bind one address" in message
    assert out["leaked"] == []
    assert out["port_same"] is True
    assert out["after"] == (b"after", (VMADDR_CID_HOST, out["peer"][1]))


def test_close_is_idempotent_and_methods_after_close_raise_ebadf(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_after_close)
    assert out["fds_open"] == [False, False]
    assert out["second_close"] == (None, None)
    assert out["third_close_via_exit"] == (None, None)
    assert out["fileno"] == (-1, -1)
    assert out["closed"] == (True, True)
    assert out["repr"] == ("<cando.Server closed>", "<cando.Client closed>")
    for name, (kind, err, message) in out["errors"].items():
        assert (kind, err) == ("OSError", errno.EBADF), name
        assert "closed" in message, name


def test_unclosed_object_gives_resource_warning(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_resource_warning)
    for cls in ("Server", "Client"):
        caught = out[cls]["warnings"]
        assert len(caught) == 1, caught
        category, message = caught[0]
        assert category == "ResourceWarning"
        assert "unclosed" in message and cls in message
        assert out[cls]["fd_open"] is False  # the finaliser closed it anyway
    assert out["closed"] == []


def test_failures_are_oserrors_with_errno_and_library_message(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_errors)
    kind, err, message = out["bind_cid_7"]
    assert (kind, err) == ("OSError", errno.EADDRNOTAVAIL)
    assert message == (f"bind: {os.strerror(errno.EADDRNOTAVAIL)}"
                       " (the CID is neither VMADDR_CID_ANY nor the local CID)")
    assert out["leaked"] == []
    assert out["is_transport_error"] is False

    kind, err, message = out["send_nobody"]
    assert (kind, err) == ("OSError", errno.EHOSTUNREACH)
    assert message == f"sendto: {os.strerror(errno.EHOSTUNREACH)}"
    kind, err, message = out["sendto_nobody"]
    assert (kind, err) == ("OSError", errno.EHOSTUNREACH)
    assert os.strerror(errno.EHOSTUNREACH) in message

    for key in ("send_port_any", "send_cid_local"):
        kind, err, message = out[key]
        assert (kind, err) == ("OSError", errno.EINVAL), (key, out[key])
        assert message.startswith("sendto: ")


def test_bad_method_arguments_raise_before_any_c_call(wrapped_worker: Any) -> None:
    results = wrapped_worker.call(w_bad_arguments_no_c_call)
    assert results.pop("still works") == b"still fine"
    assert len(results) > 150
    wrong = {name: result for name, result in results.items()
             if result[0] not in ("TypeError", "ValueError") or result[1]}
    assert wrong == {}


# -- tests: the pytest process, no wrapper ------------------------------------------------------


def _kernel_datagram_errno() -> int | None:
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM).close()
    except OSError as exc:
        return exc.errno
    return None


@pytest.fixture
def no_transport() -> None:
    """This process has no vsock datagrams: the kernel lacks them, no wrapper is loaded."""
    assert "vsock_wrapper" not in os.environ.get("LD_PRELOAD", ""), "run pytest unwrapped"
    if _kernel_datagram_errno() is None:
        pytest.skip("this kernel has an AF_VSOCK datagram transport (VMCI): nothing is missing")


@pytest.mark.parametrize("make", [lambda: Server(), lambda: Server(VMADDR_CID_ANY, 5000),
                                  lambda: Client(VMADDR_CID_HOST, 1234)],
                         ids=["Server()", "Server(ANY, 5000)", "Client(2, 1234)"])
def test_no_transport_raises_transport_unavailable(no_transport: None,
                                                   make: Callable[[], object]) -> None:
    before = _open_fds()
    with pytest.raises(cando.TransportUnavailableError) as info:
        make()
    assert _open_fds() - before == set()
    exc = info.value
    assert isinstance(exc, OSError)
    assert exc.errno == errno.ENODEV
    assert exc.strerror is not None
    assert exc.strerror.startswith("socket: " + os.strerror(errno.ENODEV))
    assert "this kernel has no AF_VSOCK datagram transport" in exc.strerror
    assert "cando-vsock run -- PROGRAM" in exc.strerror
    # Caught as plain OSError too, as callers of a socket API expect.
    with pytest.raises(OSError):
        make()


def test_transport_unavailable_is_exported_and_documented() -> None:
    assert cando.TransportUnavailableError is cando.errors.TransportUnavailableError
    assert cando.errors.ERRNO_CLASSES[errno.ENODEV] is cando.TransportUnavailableError
    assert issubclass(cando.TransportUnavailableError, OSError)
    doc = cando.TransportUnavailableError.__doc__ or ""
    assert "cando-vsock run" in doc and "VMCI" in doc


BAD_CONSTRUCTOR_ARGS: list[tuple[type, tuple[object, ...], type]] = [
    (Server, ("2", 1024), TypeError),
    (Server, (2.0, 1024), TypeError),
    (Server, (None, 1024), TypeError),
    (Server, (True, 1024), TypeError),
    (Server, (-1, 1024), ValueError),
    (Server, (2**32, 1024), ValueError),
    (Server, (VMADDR_CID_ANY, "1024"), TypeError),
    (Server, (VMADDR_CID_ANY, 1024.0), TypeError),
    (Server, (VMADDR_CID_ANY, None), TypeError),
    (Server, (VMADDR_CID_ANY, False), TypeError),
    (Server, (VMADDR_CID_ANY, -2), ValueError),
    (Server, (VMADDR_CID_ANY, -(2**40)), ValueError),
    (Server, (VMADDR_CID_ANY, 2**31), ValueError),
    (Client, ("2", 1024), TypeError),
    (Client, (b"\x02", 1024), TypeError),
    (Client, ((2, 1024), 1024), TypeError),
    (Client, (-5, 1024), ValueError),
    (Client, (2**64, 1024), ValueError),
    (Client, (2, "x"), TypeError),
    (Client, (2, [1024]), TypeError),
    (Client, (2, -2), ValueError),
    (Client, (2, 2**32), ValueError),
]


@pytest.mark.parametrize(("cls", "args", "expected"), BAD_CONSTRUCTOR_ARGS)
def test_bad_constructor_arguments_raise_before_any_c_call(
        monkeypatch: pytest.MonkeyPatch, cls: type, args: tuple[object, ...],
        expected: type) -> None:
    spy = _NoCCalls(_LIB)
    _install_spy(cando.vsock_udp, spy, monkeypatch.setattr)
    before = _open_fds()
    with pytest.raises(expected):
        cls(*args)
    assert spy.called == []
    assert _open_fds() - before == set()


def test_bad_constructor_arguments_without_spy_are_not_oserrors() -> None:
    """With the real library: a C call would have failed ENODEV/EINVAL, not TypeError."""
    for cls, args, expected in BAD_CONSTRUCTOR_ARGS:
        with pytest.raises(expected):
            cls(*args)


def test_spy_would_catch_a_c_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spy is sound: good arguments reach the C library (and trip the spy)."""
    spy = _NoCCalls(_LIB)
    _install_spy(cando.vsock_udp, spy, monkeypatch.setattr)
    with pytest.raises(AssertionError, match="C call"):
        Server(VMADDR_CID_ANY, -1)
    assert spy.called


FUZZ = textwrap.dedent("""
    import array, itertools, os, socket, sys
    import cando
    from cando import Client, Server

    values = [None, -1, 0, 1, 2, 3, 1023, 1024, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**64,
              -2**63, 1.5, float("nan"), float("inf"), "", "x", "2", b"", b"x", bytearray(),
              bytearray(8), memoryview(b"ro"), memoryview(bytearray(9))[::3], array.array("d"),
              array.array("I", [1]), object(), [], [2, 1024], (), (2,), (2, 1024),
              (2, 1024, 0), ("a", "b"), (2**40, 1), (1, -1), True, False, {1: 2}, sys,
              type, Server, Exception("x")]
    wrapped = "vsock_wrapper" in os.environ.get("LD_PRELOAD", "")
    calls = 0

    def attempt(fn, *args, **kwargs):
        global calls
        calls += 1
        try:
            result = fn(*args, **kwargs)
        except Exception:
            return
        if isinstance(result, (Server, Client)):
            result.close()

    for cls in (Server, Client):
        for a, b in itertools.product(values, repeat=2):
            attempt(cls, a, b)
        for a in values:
            attempt(cls, a)
            attempt(cls, cid=a)
    attempt(cando.local_cid)

    if wrapped:
        srv = Server(cando.VMADDR_CID_ANY, -1)
        cli = Client(2, srv.port)
        os.set_blocking(srv.fileno(), False)
        os.set_blocking(cli.fileno(), False)
        for obj in (srv, cli):
            for name in ("recv", "recvfrom", "recv_into", "recvfrom_into", "sendto",
                         "send", "accept", "connect"):
                method = getattr(obj, name, None)
                if method is None:
                    continue
                attempt(method)
                for a in values:
                    attempt(method, a)
                    for b in values:
                        attempt(method, a, b)
                        attempt(method, b"x", a, b)
                        attempt(method, bytearray(4), a, b)
        srv.close()
        cli.close()
        for obj in (srv, cli):
            for name in ("recv", "recvfrom", "recv_into", "recvfrom_into", "sendto",
                         "send", "accept", "connect", "close", "fileno"):
                method = getattr(obj, name, None)
                if method is not None:
                    for a in values:
                        attempt(method, a)
    print("survived", calls, "calls", "wrapped" if wrapped else "native", flush=True)
""")


def test_fuzz_bad_values_never_crash_native() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    proc = subprocess.run([sys.executable, "-X", "dev", "-c", FUZZ], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("survived") and proc.stdout.split()[-1] == "native"


def test_fuzz_bad_values_never_crash_wrapped(wrapped_env: Any) -> None:
    env = wrapped_env(VSOCK_WRAPPER_FULL="drop")  # sends never block, whatever they are
    proc = subprocess.run([sys.executable, "-X", "dev", "-c", FUZZ], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("survived") and proc.stdout.split()[-1] == "wrapped"
    assert int(proc.stdout.split()[1]) > 10000
