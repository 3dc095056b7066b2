"""libcando's data path under vsock_wrapper (the emulated AF_VSOCK datagram transport).

The ``w_*`` functions run *inside* the wrapped worker process (``wrapped_worker``
fixture) and return what they observed; the tests assert on it. Every scenario
runs in both allocation modes: library memory (``create(NULL, info)``) and caller
memory (``udo_vsock_udp_get_sizeof()`` bytes). The cross-process test runs a
server (CID 2) and a client (CID 3) as separate wrapped processes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import textwrap
from typing import Any, Callable

import pytest
from conftest import captured_log, priv
from wrapper_helpers import sockname

from cando._cando import ffi, lib

MODES = ("library", "caller")
ANY = 0xFFFFFFFF
MAX_DGRAM = 69608
LOCAL_CID = 2


# --- helpers used inside the worker -----------------------------------------------------

def _layout(ptr: Any) -> tuple[bool, int, int, int, tuple[int, int, int]]:
    """(free, fd, vcid, port, (addr family, cid, port)) read through the private layout."""
    view = priv(ptr)
    return (bool(view.free), int(view.fd), int(view.vcid), int(view.port),
            (int(view.addr.svm_family), int(view.addr.svm_cid), int(view.addr.svm_port)))



class Vsock:
    """One libcando instance made by server_create / client_create, in either memory mode."""

    def __init__(self, kind: str, mode: str, vcid: int, port: int) -> None:
        self.kind = kind
        self.raw: Any = None
        mem: Any = ffi.NULL
        if mode == "caller":
            size = lib.udo_vsock_udp_get_sizeof()
            self.raw = ffi.new("char[]", size)
            ffi.memmove(self.raw, b"\x5a" * size, size)
            mem = ffi.cast("struct udo_vsock_udp *", self.raw)
        self.mem = mem
        info = ffi.new(f"struct udo_vsock_udp_{kind}_create_info *")
        info.vcid, info.port = vcid, port
        create = (lib.udo_vsock_udp_server_create if kind == "server"
                  else lib.udo_vsock_udp_client_create)
        ffi.errno = 0
        self.ptr = create(mem, info)
        self.errno = ffi.errno
        if mode == "caller" and self.ptr != ffi.NULL:
            assert self.ptr == mem, "create(buf, info) must return buf"

    @property
    def ok(self) -> bool:
        return bool(self.ptr != ffi.NULL)

    @property
    def fd(self) -> int:
        return int(lib.udo_vsock_udp_get_fd(self.ptr))

    @property
    def port(self) -> int:
        return int(lib.udo_vsock_udp_get_port(self.ptr))

    @property
    def vcid(self) -> int:
        return int(lib.udo_vsock_udp_get_vcid(self.ptr))

    def error(self) -> tuple[int, str]:
        """The error recorded in the instance (caller memory survives a failed create)."""
        target = self.ptr if self.ok else self.mem
        return (int(lib.udo_log_get_error_code(target)),
                ffi.string(lib.udo_log_get_error(target)).decode())

    def close(self) -> None:
        if self.ok:
            lib.udo_vsock_udp_destroy(self.ptr)
            self.ptr = ffi.NULL


def _server(mode: str, vcid: int = ANY, port: int = -1) -> Vsock:
    srv = Vsock("server", mode, vcid, port)
    assert srv.ok, (srv.errno, srv.error())
    return srv


def _client(mode: str, port: int, vcid: int = LOCAL_CID) -> Vsock:
    cli = Vsock("client", mode, vcid, port)
    assert cli.ok, (cli.errno, cli.error())
    return cli


def _wait_readable(fd: int, timeout: float = 10.0) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


def _flags(value: int) -> Any:
    return ffi.new("int *", value)


def _recv(fd: int, size: int = 256, flags: int = 0,
          with_addr: bool = True) -> tuple[int, bytes, tuple[int, int, int] | None, int]:
    """recv_data on fd after waiting (bounded) for a datagram; (ret, data, addr, errno)."""
    if not flags & socket.MSG_DONTWAIT:
        assert _wait_readable(fd), "no datagram arrived within 10 s"
    buf = ffi.new("char[]", size)
    addr = ffi.new("struct sockaddr_vm *") if with_addr else ffi.NULL
    ffi.errno = 0
    info = _flags(flags) if flags else ffi.NULL
    ret = int(lib.udo_vsock_udp_recv_data(fd, buf, size, addr, info))
    err = ffi.errno
    data = ffi.buffer(buf, ret)[:] if ret > 0 else b""
    where = (int(addr.svm_family), int(addr.svm_cid), int(addr.svm_port)) if with_addr else None
    return ret, data, where, err


def _server_recv(srv: Vsock, size: int = 256, flags: int = 0,
                 with_addr: bool = True) -> tuple[int, bytes, tuple[int, int, int] | None, int]:
    if not flags & socket.MSG_DONTWAIT:
        assert _wait_readable(srv.fd), "no datagram arrived within 10 s"
    buf = ffi.new("char[]", size)
    addr = ffi.new("struct sockaddr_vm *") if with_addr else ffi.NULL
    ffi.errno = 0
    ret = int(lib.udo_vsock_udp_server_recv_data(srv.ptr, buf, size, addr,
                                                 _flags(flags) if flags else ffi.NULL))
    err = ffi.errno
    data = ffi.buffer(buf, ret)[:] if ret > 0 else b""
    where = (int(addr.svm_family), int(addr.svm_cid), int(addr.svm_port)) if with_addr else None
    return ret, data, where, err


def _client_send(cli: Vsock, payload: bytes, flags: int = 0) -> tuple[int, int]:
    ffi.errno = 0
    ret = int(lib.udo_vsock_udp_client_send_data(cli.ptr, payload, len(payload),
                                                 _flags(flags) if flags else ffi.NULL))
    return ret, ffi.errno


def _nothing_queued(fd: int) -> bool:
    ret, _, _, err = _recv(fd, flags=socket.MSG_DONTWAIT)
    return ret == -errno.EAGAIN and err == errno.EAGAIN


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- worker scenarios ---------------------------------------------------------------------


def w_roundtrip(mode: str) -> dict[str, Any]:
    srv = _server(mode)
    cli = _client(mode, srv.port)
    try:
        obs: dict[str, Any] = {"server_port": srv.port, "server_vcid": srv.vcid,
                               "client_port": cli.port, "client_vcid": cli.vcid}
        sock = socket.socket(fileno=os.dup(srv.fd))
        try:
            obs["so_type"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
            obs["so_domain"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
        finally:
            sock.close()
        obs["cloexec"] = {
            name: bool(fcntl.fcntl(v.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
            for name, v in (("server", srv), ("client", cli))}
        obs["server_sockname"] = sockname(srv.fd)
        obs["layout"] = (_layout(srv.ptr), _layout(cli.ptr), srv.fd, cli.fd)
        obs["client_sockname_before_send"] = sockname(cli.fd)
        obs["send"] = _client_send(cli, b"ping")
        obs["client_sockname"] = sockname(cli.fd)
        ret, data, addr, _ = _server_recv(srv)
        obs["recv"] = (ret, data, addr)
        obs["server_extra"] = not _nothing_queued(srv.fd)
        reply = ffi.new("struct sockaddr_vm *")
        assert addr is not None
        reply.svm_family, reply.svm_cid, reply.svm_port = addr
        ffi.errno = 0
        obs["reply_send"] = int(lib.udo_vsock_udp_send_data(srv.fd, b"pong!", 5, reply,
                                                            ffi.NULL))
        ret, data, addr, _ = _recv(cli.fd)
        obs["reply_recv"] = (ret, data, addr)
        obs["client_extra"] = not _nothing_queued(cli.fd)
        obs["errors"] = (srv.error(), cli.error())
    finally:
        srv.close()
        cli.close()
    if mode == "caller":
        obs["fd_after_destroy"] = (int(lib.udo_vsock_udp_get_fd(srv.mem)),
                                   int(lib.udo_vsock_udp_get_fd(cli.mem)))
    return obs


def test_roundtrip(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_roundtrip, mode)
    port = obs["server_port"]
    assert 1024 <= port < ANY
    assert obs["server_vcid"] == ANY
    assert (obs["client_vcid"], obs["client_port"]) == (LOCAL_CID, port)
    assert obs["so_type"] == socket.SOCK_DGRAM
    assert obs["so_domain"] == socket.AF_VSOCK
    assert obs["cloexec"] == {"server": True, "client": True}
    assert obs["server_sockname"] == (ANY, port)
    # The documented private members, in order, on live instances.
    server_layout, client_layout, server_fd, client_fd = obs["layout"]
    owned = mode == "library"
    assert server_layout == (owned, server_fd, ANY, port, (socket.AF_VSOCK, ANY, port))
    assert client_layout == (owned, client_fd, LOCAL_CID, port,
                             (socket.AF_VSOCK, LOCAL_CID, port))
    # client_create does not bind: the socket is unbound until the first send.
    assert obs["client_sockname_before_send"] == (ANY, ANY)
    assert obs["send"] == (4, 0)
    client_port = obs["client_sockname"][1]
    assert client_port not in (ANY, port)
    assert obs["recv"] == (4, b"ping", (socket.AF_VSOCK, LOCAL_CID, client_port))
    assert obs["server_extra"] is False
    assert obs["reply_send"] == 5
    assert obs["reply_recv"] == (5, b"pong!", (socket.AF_VSOCK, LOCAL_CID, port))
    assert obs["client_extra"] is False
    assert obs["errors"] == ((0, ""), (0, ""))
    if mode == "caller":
        assert obs["fd_after_destroy"] == (-1, -1)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def w_connected(mode: str) -> dict[str, Any]:
    srv = _server(mode)
    cli = _client(mode, srv.port)
    obs: dict[str, Any] = {"port": srv.port}
    try:
        ffi.errno = 0
        obs["connect"] = (int(lib.udo_vsock_udp_client_connect(cli.ptr)), ffi.errno)
        peer = socket.socket(fileno=os.dup(cli.fd))
        try:
            obs["peer"] = tuple(peer.getpeername())
        finally:
            peer.close()
        ffi.errno = 0
        obs["send_no_addr"] = int(lib.udo_vsock_udp_send_data(cli.fd, b"connected", 9,
                                                              ffi.NULL, ffi.NULL))
        obs["recv_no_addr"] = _recv(srv.fd, with_addr=False)[:2]
        obs["client_send"] = _client_send(cli, b"again")
        obs["server_recv_no_addr"] = _server_recv(srv, with_addr=False)[:2]
        obs["extra"] = not _nothing_queued(srv.fd)
        obs["errors"] = (srv.error(), cli.error())
    finally:
        srv.close()
        cli.close()
    return obs


def test_client_connect_and_no_address(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_connected, mode)
    assert obs["connect"] == (0, 0)
    assert obs["peer"] == (LOCAL_CID, obs["port"])
    assert obs["send_no_addr"] == 9
    assert obs["recv_no_addr"] == (9, b"connected")
    assert obs["client_send"] == (5, 0)
    assert obs["server_recv_no_addr"] == (5, b"again")
    assert obs["extra"] is False
    assert obs["errors"] == ((0, ""), (0, ""))


def w_flags(mode: str) -> dict[str, Any]:
    srv = _server(mode)
    cli = _client(mode, srv.port)
    obs: dict[str, Any] = {}
    try:
        with captured_log(lib.UDO_LOG_ALL) as r:
            ret, _, _, err = _server_recv(srv, flags=socket.MSG_DONTWAIT)
            obs["dontwait_server"] = (ret, err)
            ret, _, _, err = _recv(srv.fd, flags=socket.MSG_DONTWAIT)
            obs["dontwait_plain"] = (ret, err)
            obs["error_after_eagain"] = srv.error()
            try:
                obs["log_after_eagain"] = os.read(r, 4096)
            except BlockingIOError:
                obs["log_after_eagain"] = b""

            _client_send(cli, b"abc")
            obs["peek"] = _server_recv(srv, flags=socket.MSG_PEEK)[:2]
            obs["after_peek"] = _server_recv(srv)[:2]
            obs["empty_after_peek"] = _nothing_queued(srv.fd)

            _client_send(cli, bytes(range(100)))
            obs["truncated"] = _server_recv(srv, size=10)[:2]
            obs["rest_discarded"] = _nothing_queued(srv.fd)
            _client_send(cli, bytes(range(100)))
            obs["truncated_plain"] = _recv(srv.fd, size=10)[:2]
            obs["plain_rest_discarded"] = _nothing_queued(srv.fd)

            _client_send(cli, b"z")
            ret, _, _, err = _server_recv(srv, flags=socket.MSG_OOB)
            obs["oob_recv"] = (ret, err, srv.error())
            _server_recv(srv)
            obs["oob_send"] = (*_client_send(cli, b"z", socket.MSG_OOB), cli.error())
            obs["oob_nothing_sent"] = _nothing_queued(srv.fd)
            try:
                obs["log_after_oob"] = os.read(r, 65536).decode()
            except BlockingIOError:
                obs["log_after_oob"] = ""
    finally:
        srv.close()
        cli.close()
    return obs


def test_flags(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_flags, mode)
    # MSG_DONTWAIT on an empty socket: -EAGAIN, errno EAGAIN, not recorded, not logged.
    assert obs["dontwait_server"] == (-errno.EAGAIN, errno.EAGAIN)
    assert obs["dontwait_plain"] == (-errno.EAGAIN, errno.EAGAIN)
    assert obs["error_after_eagain"] == (0, "")
    assert obs["log_after_eagain"] == b""
    assert obs["peek"] == (3, b"abc")
    assert obs["after_peek"] == (3, b"abc")
    assert obs["empty_after_peek"] is True
    assert obs["truncated"] == (10, bytes(range(10)))
    assert obs["rest_discarded"] is True
    assert obs["truncated_plain"] == (10, bytes(range(10)))
    assert obs["plain_rest_discarded"] is True
    eop = errno.EOPNOTSUPP
    ret, err, (code, text) = obs["oob_recv"]
    assert (ret, err, code) == (-eop, eop, eop)
    assert text.startswith("recvfrom: " + os.strerror(eop))
    ret, err, (code, text) = obs["oob_send"]
    assert (ret, err, code) == (-eop, eop, eop)
    assert text.startswith("sendto: " + os.strerror(eop))
    assert obs["oob_nothing_sent"] is True
    assert "udo_vsock_udp_server_recv_data" in obs["log_after_oob"]
    assert "udo_vsock_udp_client_send_data" in obs["log_after_oob"]


def w_zero_byte(mode: str) -> dict[str, Any]:
    srv = _server(mode)
    cli = _client(mode, srv.port)
    raw = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    obs: dict[str, Any] = {}
    try:
        obs["refused"] = (*_client_send(cli, b""), cli.error())
        ffi.errno = 0
        obs["refused_plain"] = (int(lib.udo_vsock_udp_send_data(cli.fd, b"x", 0, ffi.NULL,
                                                                ffi.NULL)), ffi.errno)
        obs["nothing_sent"] = _nothing_queued(srv.fd)
        obs["raw_sent"] = raw.sendto(b"", (LOCAL_CID, srv.port))
        obs["raw_port"] = raw.getsockname()[1]
        obs["server_recv"] = _server_recv(srv)[:3]
        raw.sendto(b"", (LOCAL_CID, srv.port))
        obs["plain_recv"] = _recv(srv.fd, with_addr=False)[:2]
    finally:
        raw.close()
        srv.close()
        cli.close()
    return obs


def test_zero_byte_datagram(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_zero_byte, mode)
    ret, err, (code, text) = obs["refused"]
    assert (ret, err, code) == (-errno.EINVAL, errno.EINVAL, errno.EINVAL)
    assert "size" in text
    assert obs["refused_plain"] == (-errno.EINVAL, errno.EINVAL)
    assert obs["nothing_sent"] is True
    assert obs["raw_sent"] == 0
    assert obs["server_recv"] == (0, b"", (socket.AF_VSOCK, LOCAL_CID, obs["raw_port"]))
    assert obs["plain_recv"] == (0, b"")


def w_sizes(mode: str) -> dict[str, Any]:
    srv = _server(mode)
    cli = _client(mode, srv.port)
    obs: dict[str, Any] = {}
    big = bytes(i % 251 for i in range(MAX_DGRAM))
    try:
        obs["max_send"] = _client_send(cli, big)
        ret, data, _, _ = _server_recv(srv, size=MAX_DGRAM + 100)
        obs["max_recv"] = (ret, data == big)
        obs["over_send"] = (*_client_send(cli, big + b"!"), cli.error())
        dest = ffi.new("struct sockaddr_vm *")
        dest.svm_family, dest.svm_cid, dest.svm_port = socket.AF_VSOCK, LOCAL_CID, srv.port
        over = big + b"!"
        ffi.errno = 0
        obs["over_plain"] = (int(lib.udo_vsock_udp_send_data(cli.fd, over, len(over), dest,
                                                             ffi.NULL)), ffi.errno)
        obs["nothing_sent"] = _nothing_queued(srv.fd)
        ffi.errno = 0
        obs["max_plain"] = int(lib.udo_vsock_udp_send_data(cli.fd, big, len(big), dest,
                                                           ffi.NULL))
        ret, data, _, _ = _recv(srv.fd, size=MAX_DGRAM)
        obs["max_plain_recv"] = (ret, data == big)
    finally:
        srv.close()
        cli.close()
    return obs


def test_datagram_size_limit(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_sizes, mode)
    assert obs["max_send"] == (MAX_DGRAM, 0)
    assert obs["max_recv"] == (MAX_DGRAM, True)
    ret, err, (code, text) = obs["over_send"]
    emsg = errno.EMSGSIZE
    assert (ret, err, code) == (-emsg, emsg, emsg)
    assert text.startswith("sendto: " + os.strerror(emsg))
    assert obs["over_plain"] == (-emsg, emsg)
    assert obs["nothing_sent"] is True
    assert obs["max_plain"] == MAX_DGRAM
    assert obs["max_plain_recv"] == (MAX_DGRAM, True)


def w_accept(mode: str) -> dict[str, Any]:
    srv = _server(mode)
    cli = _client(mode, srv.port)
    obs: dict[str, Any] = {}
    try:
        _client_send(cli, b"hello")
        buf = ffi.new("char[]", 16)
        addr = ffi.new("struct sockaddr_vm *")
        assert _wait_readable(srv.fd)
        assert lib.udo_vsock_udp_server_recv_data(srv.ptr, buf, 16, addr, ffi.NULL) == 5
        fd_before, fds_before = srv.fd, sorted(os.listdir("/proc/self/fd"))
        name_before = sockname(srv.fd)
        ffi.errno = 0
        obs["accept"] = (int(lib.udo_vsock_udp_server_accept(srv.ptr, addr)), ffi.errno,
                         srv.error())
        obs["fds_same"] = sorted(os.listdir("/proc/self/fd")) == fds_before
        obs["server_same"] = (srv.fd == fd_before, sockname(srv.fd) == name_before)
        ffi.errno = 0
        obs["accept_null"] = (int(lib.udo_vsock_udp_server_accept(srv.ptr, ffi.NULL)),
                              ffi.errno, srv.error())
        obs["send_after"] = _client_send(cli, b"still here")
        obs["recv_after"] = _server_recv(srv)[:2]
    finally:
        srv.close()
        cli.close()
    return obs


def test_server_accept_fails_eaddrinuse(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_accept, mode)
    ret, err, (code, text) = obs["accept"]
    inuse = errno.EADDRINUSE
    assert (ret, err, code) == (-1, inuse, inuse)
    assert text.startswith("bind: " + os.strerror(inuse)), text
    assert "two sockets" in text and "address" in text
    assert obs["fds_same"] is True
    assert obs["server_same"] == (True, True)
    ret, err, (code, text) = obs["accept_null"]
    assert (ret, err, code) == (-1, errno.EINVAL, errno.EINVAL)
    assert "addr" in text
    assert obs["send_after"] == (10, 0)
    assert obs["recv_after"] == (10, b"still here")


def w_bind(mode: str, vcid: int) -> dict[str, Any]:
    probe = _server(mode)
    port = probe.port
    probe.close()
    srv = _server(mode, vcid, port)
    cli = _client(mode, port)
    obs: dict[str, Any] = {"port": port}
    try:
        obs["getters"] = (srv.vcid, srv.port)
        obs["sockname"] = sockname(srv.fd)
        obs["send"] = _client_send(cli, b"bound")
        obs["recv"] = _server_recv(srv)[:2]
        fds = _fd_count()
        dup = Vsock("server", mode, vcid, port)
        obs["dup_bind"] = (dup.ok, dup.errno, dup.error() if mode == "caller" else None,
                           dup.fd if mode == "caller" else None)
        dup.close()
        obs["fds_same"] = _fd_count() == fds
    finally:
        srv.close()
        cli.close()
    return obs


@pytest.mark.parametrize("vcid", [LOCAL_CID, ANY], ids=["local-cid", "cid-any"])
def test_bind_cid_and_port(wrapped_worker: Any, mode: str, vcid: int) -> None:
    obs = wrapped_worker.call(w_bind, mode, vcid)
    port = obs["port"]
    assert obs["getters"] == (vcid, port)
    assert obs["sockname"] == (vcid, port)
    assert obs["send"] == (5, 0)
    assert obs["recv"] == (5, b"bound")
    ok, err, recorded, fd = obs["dup_bind"]
    assert (ok, err) == (False, errno.EADDRINUSE)
    if mode == "caller":
        assert recorded == (errno.EADDRINUSE, "bind: " + os.strerror(errno.EADDRINUSE))
        assert fd == -1
    assert obs["fds_same"] is True


def w_bad_cid(mode: str, vcid: int) -> dict[str, Any]:
    fds = sorted(os.listdir("/proc/self/fd"))
    bad = Vsock("server", mode, vcid, -1)
    obs = {"ok": bad.ok, "errno": bad.errno,
           "error": bad.error() if mode == "caller" else None,
           "fd": bad.fd if mode == "caller" and not bad.ok else None}
    bad.close()
    if mode == "caller":
        lib.udo_vsock_udp_destroy(bad.mem)
    obs["fds_same"] = sorted(os.listdir("/proc/self/fd")) == fds
    return obs


@pytest.mark.parametrize("vcid", [7, 3, lib.VMADDR_CID_HYPERVISOR])
def test_bind_foreign_cid(wrapped_worker: Any, mode: str, vcid: int) -> None:
    obs = wrapped_worker.call(w_bad_cid, mode, vcid)
    assert obs["ok"] is False
    assert obs["errno"] == errno.EADDRNOTAVAIL
    if mode == "caller":
        assert obs["error"] == (
            errno.EADDRNOTAVAIL,
            "bind: Cannot assign requested address "
            "(the CID is neither VMADDR_CID_ANY nor the local CID)")
        assert obs["fd"] == -1
    assert obs["fds_same"] is True


def w_port_any(mode: str) -> dict[str, Any]:
    servers = [_server(mode) for _ in range(3)]
    try:
        return {"ports": [s.port for s in servers],
                "socknames": [sockname(s.fd) for s in servers]}
    finally:
        for s in servers:
            s.close()


def test_port_any_reports_assigned_port(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_port_any, mode)
    ports = obs["ports"]
    assert len(set(ports)) == 3
    assert len(obs["socknames"]) == 3
    for i, port in enumerate(ports):
        cid, real = obs["socknames"][i]
        assert port == real
        assert cid == ANY
        assert 1024 <= port < ANY


def w_interop(mode: str) -> dict[str, Any]:
    """Plain AF_VSOCK datagram sockets (Python's socket module) talk to libcando both ways."""
    obs: dict[str, Any] = {}
    raw_srv = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    raw_cli = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    raw_srv.bind((ANY, ANY))
    raw_port = raw_srv.getsockname()[1]
    srv = _server(mode)
    cli = _client(mode, raw_port)
    try:
        obs["cando_to_raw"] = _client_send(cli, b"to raw")
        assert _wait_readable(raw_srv.fileno())
        data, (cid, port) = raw_srv.recvfrom(256)
        obs["raw_got"] = (data, cid, port, sockname(cli.fd)[1])
        raw_srv.setblocking(False)
        try:
            raw_srv.recvfrom(256)
            obs["raw_extra"] = True
        except BlockingIOError:
            obs["raw_extra"] = False
        raw_cli.sendto(b"to cando", (LOCAL_CID, srv.port))
        raw_cli_port = raw_cli.getsockname()[1]
        ret, data, addr, _ = _server_recv(srv)
        obs["cando_got"] = (ret, data, addr, raw_cli_port)
        obs["cando_extra"] = not _nothing_queued(srv.fd)
        assert addr is not None
        dest = ffi.new("struct sockaddr_vm *")
        dest.svm_family, dest.svm_cid, dest.svm_port = addr
        obs["reply"] = int(lib.udo_vsock_udp_send_data(srv.fd, b"reply", 5, dest, ffi.NULL))
        assert _wait_readable(raw_cli.fileno())
        obs["raw_reply"] = raw_cli.recvfrom(256)
        obs["raw_port"] = srv.port
    finally:
        raw_srv.close()
        raw_cli.close()
        srv.close()
        cli.close()
    return obs


def test_interop_with_plain_sockets(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_interop, mode)
    assert obs["cando_to_raw"] == (6, 0)
    data, cid, port, client_port = obs["raw_got"]
    assert (data, cid, port) == (b"to raw", LOCAL_CID, client_port)
    assert obs["raw_extra"] is False
    ret, data, addr, raw_cli_port = obs["cando_got"]
    assert (ret, data, addr) == (8, b"to cando", (socket.AF_VSOCK, LOCAL_CID, raw_cli_port))
    assert obs["cando_extra"] is False
    assert obs["reply"] == 5
    assert obs["raw_reply"] == (b"reply", (LOCAL_CID, obs["raw_port"]))


def w_unreachable(mode: str) -> dict[str, Any]:
    probe = _server(mode)
    port = probe.port
    probe.close()
    cli = _client(mode, port)
    try:
        return {"send": (*_client_send(cli, b"anyone?"), cli.error())}
    finally:
        cli.close()


def test_send_to_nobody(wrapped_worker: Any, mode: str) -> None:
    ret, err, (code, text) = wrapped_worker.call(w_unreachable, mode)["send"]
    unreach = errno.EHOSTUNREACH
    assert (ret, err, code) == (-unreach, unreach, unreach)
    assert text.startswith("sendto: " + os.strerror(unreach))


def w_local_vcid() -> int:
    return int(lib.udo_vsock_udp_get_local_vcid())


def test_local_vcid_under_wrapper(wrapped_worker: Any) -> None:
    assert wrapped_worker.call(w_local_vcid) == LOCAL_CID


# --- two processes: server CID 2, client CID 3 -----------------------------------------------


SERVER = textwrap.dedent(
    """
    import select, sys
    from cando._cando import ffi, lib
    mode = sys.argv[1]
    raw = ffi.new("char[]", lib.udo_vsock_udp_get_sizeof()) if mode == "caller" else None
    mem = ffi.cast("struct udo_vsock_udp *", raw) if raw is not None else ffi.NULL
    info = ffi.new("struct udo_vsock_udp_server_create_info *")
    info.vcid, info.port = lib.VMADDR_CID_ANY, -1
    srv = lib.udo_vsock_udp_server_create(mem, info)
    assert srv != ffi.NULL, ffi.string(lib.udo_log_get_error(mem))
    print("PORT", lib.udo_vsock_udp_get_port(srv), lib.udo_vsock_udp_get_local_vcid(),
          flush=True)
    fd = lib.udo_vsock_udp_get_fd(srv)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(20000), "no datagram within 20 s"
    buf = ffi.new("char[]", 256)
    addr = ffi.new("struct sockaddr_vm *")
    n = lib.udo_vsock_udp_server_recv_data(srv, buf, 256, addr, ffi.NULL)
    print("GOT", n, ffi.buffer(buf, max(n, 0))[:].decode(), addr.svm_cid, addr.svm_port,
          flush=True)
    n = lib.udo_vsock_udp_send_data(fd, b"hello guest", 11, addr, ffi.NULL)
    print("SENT", n, flush=True)
    lib.udo_vsock_udp_destroy(srv)
    """
)

CLIENT = textwrap.dedent(
    """
    import select, socket, sys
    from cando._cando import ffi, lib
    mode, port = sys.argv[1], int(sys.argv[2])
    raw = ffi.new("char[]", lib.udo_vsock_udp_get_sizeof()) if mode == "caller" else None
    mem = ffi.cast("struct udo_vsock_udp *", raw) if raw is not None else ffi.NULL
    info = ffi.new("struct udo_vsock_udp_client_create_info *")
    info.vcid, info.port = 2, port
    cli = lib.udo_vsock_udp_client_create(mem, info)
    assert cli != ffi.NULL, ffi.string(lib.udo_log_get_error(mem))
    n = lib.udo_vsock_udp_client_send_data(cli, b"hello host", 10, ffi.NULL)
    fd = lib.udo_vsock_udp_get_fd(cli)
    s = socket.socket(fileno=fd)
    own_port = s.getsockname()[1]
    s.detach()
    print("SENT", n, own_port, lib.udo_vsock_udp_get_local_vcid(), flush=True)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(20000), "no reply within 20 s"
    buf = ffi.new("char[]", 256)
    addr = ffi.new("struct sockaddr_vm *")
    n = lib.udo_vsock_udp_recv_data(fd, buf, 256, addr, ffi.NULL)
    print("GOT", n, ffi.buffer(buf, max(n, 0))[:].decode(), addr.svm_cid, addr.svm_port,
          flush=True)
    lib.udo_vsock_udp_destroy(cli)
    """
)


def test_cross_process_guest_and_host(wrapped_env: Callable[..., dict[str, str]],
                                      run_wrapped: Callable[..., Any], mode: str) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER, mode], env=wrapped_env(2),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = server.stdout.readline().split()
        assert first[:1] == ["PORT"], (first, server.stderr.read() if server.stderr else "")
        port, server_cid = int(first[1]), int(first[2])
        client = run_wrapped([sys.executable, "-c", CLIENT, mode, str(port)], cid=3)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err
    assert server_cid == 2
    sent, got = (line.split() for line in client.stdout.splitlines())
    assert sent[0] == "SENT" and int(sent[1]) == 10
    client_port, client_cid = int(sent[2]), int(sent[3])
    assert client_cid == 3
    assert 1024 <= client_port < ANY
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["GOT", "10", "hello", "host", "3", str(client_port)]
    assert lines[1] == ["SENT", "11"]
    assert got == ["GOT", "11", "hello", "guest", "2", str(port)]


def w_send_pressure(mode: str) -> dict[str, Any]:
    """A full receiver (the wrapper's default VSOCK_WRAPPER_FULL=block): EAGAIN and EINTR
    from a send are returned as such, not recorded, not logged."""
    srv = _server(mode)
    cli = _client(mode, srv.port)
    hits: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: hits.append(signum))
    obs: dict[str, Any] = {}
    try:
        with captured_log(lib.UDO_LOG_ALL) as r:
            # Bound a blocking send that a retried EINTR would leave hanging (Python's
            # setsockopt takes only ints on AF_VSOCK sockets: go through libc).
            timeout = struct.pack("ll", 1, 0)
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.setsockopt(cli.fd, socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout,
                                   len(timeout)) == 0, os.strerror(ctypes.get_errno())
            sent = 0
            while sent < 1_000_000:
                ret, err = _client_send(cli, b"f" * 64, socket.MSG_DONTWAIT)
                if ret < 0:
                    break
                sent += 1
            obs["dontwait"] = (ret, err, sent > 0)
            # One-shot timer (a repeating one would keep a send that restarts on EINTR
            # looping); a few tries in case the signal landed before the send blocked.
            for _ in range(3):
                signal.setitimer(signal.ITIMER_REAL, 0.1)
                try:
                    obs["blocking"] = _client_send(cli, b"f" * 64)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if obs["blocking"][0] != -errno.EAGAIN:
                    break
            obs["signalled"] = bool(hits)
            obs["error"] = cli.error()
            try:
                obs["log"] = os.read(r, 4096)
            except BlockingIOError:
                obs["log"] = b""
            received = 0
            while _recv(srv.fd, flags=socket.MSG_DONTWAIT)[0] >= 0:
                received += 1
            obs["received_all"] = received == sent
    finally:
        signal.signal(signal.SIGALRM, old)
        srv.close()
        cli.close()
    return obs


def test_send_eagain_and_eintr_not_errors(wrapped_worker: Any, mode: str) -> None:
    obs = wrapped_worker.call(w_send_pressure, mode)
    assert obs["dontwait"] == (-errno.EAGAIN, errno.EAGAIN, True)
    assert obs["signalled"] is True
    assert obs["blocking"] == (-errno.EINTR, errno.EINTR)
    assert obs["error"] == (0, "")
    assert obs["log"] == b""
    assert obs["received_all"] is True
