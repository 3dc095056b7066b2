"""libcando's contract where no vsock transport is needed: arguments, errors, logging.

Everything here runs in the pytest process against the installed library
(``cando._cando``). The I/O functions are one ``sendto(2)`` / ``recvfrom(2)``
on any fd, so their data path and flag pass-through are checked on an
``AF_UNIX`` datagram socketpair. For the instance functions, a socketpair fd
is planted in caller memory through the private layout that contract.md
documents (``err``, ``free``, ``fd``, ``vcid``, ``port``, ``addr``, in order).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from conftest import PRIVATE_LAYOUT as LAYOUT
from conftest import captured_log, priv

from cando._cando import ffi, lib

MODES = ("library", "caller")
CREATES = ("server", "client")
UINT32_MAX = 0xFFFFFFFF

def new_buffer(fill: int = 0xA5) -> Any:
    """Caller memory for one instance, pre-filled with garbage the library must overwrite."""
    size = lib.udo_vsock_udp_get_sizeof()
    raw = ffi.new("char[]", size)
    ffi.memmove(raw, bytes([fill]) * size, size)
    return ffi.cast("struct udo_vsock_udp *", raw), raw


def create_fn(kind: str) -> Any:
    return lib.udo_vsock_udp_server_create if kind == "server" else lib.udo_vsock_udp_client_create


def create_info(kind: str, vcid: int, port: int) -> Any:
    info = ffi.new(f"struct udo_vsock_udp_{kind}_create_info *")
    info.vcid = vcid
    info.port = port
    return info


def message(instance: Any) -> str:
    return str(ffi.string(lib.udo_log_get_error(instance)).decode())


def flags_ptr(flags: int) -> Any:
    return ffi.new("int *", flags)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    # Blocking sockets: a Python timeout would make the fds O_NONBLOCK under the library.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def log_pipe() -> Iterator[int]:
    """A non-blocking pipe the library logs to; the global log state is restored after."""
    with captured_log() as r:
        yield r


def drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


# --- sizes and layout ----------------------------------------------------------------------


def test_get_sizeof_is_the_private_struct() -> None:
    assert ffi.sizeof("struct sockaddr_vm") == LAYOUT.sizeof("struct mirror_sockaddr_vm") == 16
    assert ffi.sizeof("struct udo_log_error_struct") == LAYOUT.sizeof("struct mirror_error")
    size = lib.udo_vsock_udp_get_sizeof()
    assert size == LAYOUT.sizeof("struct mirror_vsock")
    assert size >= 512 + 4 + 1 + 4 + 4 + 4 + 16


def test_documented_member_order() -> None:
    """get_fd/get_vcid/get_port read fd, vcid, port; err is the first member."""
    inst, raw = new_buffer(0)
    view = priv(raw)
    view.fd, view.vcid, view.port = 4242, 77, 5151
    assert lib.udo_vsock_udp_get_fd(inst) == 4242
    assert lib.udo_vsock_udp_get_vcid(inst) == 77
    assert lib.udo_vsock_udp_get_port(inst) == 5151
    lib.udo_log_set_error_struct(inst, 1234, b"%s", ffi.new("char[]", b"first member"))
    assert view.err.code == 1234
    assert LAYOUT.string(view.err.buffer) == b"first member"
    assert lib.udo_log_get_error_code(inst) == 1234
    assert message(inst) == "first member"
    view.fd = -1  # inert again; nothing to destroy


def test_create_info_structs_are_public() -> None:
    for kind in CREATES:
        assert ffi.sizeof(f"struct udo_vsock_udp_{kind}_create_info") == 8
        assert ffi.offsetof(f"struct udo_vsock_udp_{kind}_create_info", "vcid") == 0
        assert ffi.offsetof(f"struct udo_vsock_udp_{kind}_create_info", "port") == 4
        info = create_info(kind, UINT32_MAX, -1)
        assert (info.vcid, info.port) == (UINT32_MAX, -1)


def test_constants() -> None:
    assert lib.AF_VSOCK == int(socket.AF_VSOCK) == 40
    assert lib.VMADDR_CID_ANY == UINT32_MAX
    assert lib.VMADDR_PORT_ANY == UINT32_MAX
    assert (lib.VMADDR_CID_HYPERVISOR, lib.VMADDR_CID_LOCAL, lib.VMADDR_CID_HOST) == (0, 1, 2)
    assert lib.IOCTL_VM_SOCKETS_GET_LOCAL_CID == socket.IOCTL_VM_SOCKETS_GET_LOCAL_CID
    assert lib.UDO_LOG_ERROR_BUFFER_SIZE == 512
    assert ffi.sizeof(ffi.typeof(ffi.new("struct udo_log_error_struct *")).item) == 516
    levels = (lib.UDO_LOG_NONE, lib.UDO_LOG_SUCCESS, lib.UDO_LOG_ERROR, lib.UDO_LOG_INFO,
              lib.UDO_LOG_WARNING, lib.UDO_LOG_RESET, lib.UDO_LOG_ALL)
    assert levels == (0, 1, 2, 4, 8, 0x10, 0xFFFFFFFF)
    assert (lib.UDO_LOG_ERR_UNCOMMON, lib.UDO_LOG_ERR_INCORRECT_DATA) == (0x1000, 0x1001)


# --- create: argument errors ---------------------------------------------------------------


@pytest.mark.parametrize("kind", CREATES)
def test_create_null_info_library_memory(kind: str) -> None:
    ffi.errno = 0
    assert create_fn(kind)(ffi.NULL, ffi.NULL) == ffi.NULL
    assert ffi.errno == errno.EINVAL


@pytest.mark.parametrize("kind", CREATES)
def test_create_null_info_caller_memory(kind: str) -> None:
    inst, raw = new_buffer()
    ffi.errno = 0
    assert create_fn(kind)(inst, ffi.NULL) == ffi.NULL
    assert ffi.errno == errno.EINVAL
    assert lib.udo_vsock_udp_get_fd(inst) == -1
    assert lib.udo_log_get_error_code(inst) == errno.EINVAL
    text = message(inst)
    assert f"udo_vsock_udp_{kind}_create" in text
    assert "vsock_info" in text and os.strerror(errno.EINVAL) in text
    assert priv(raw).free is False
    lib.udo_vsock_udp_destroy(inst)
    lib.udo_vsock_udp_destroy(inst)
    assert lib.udo_vsock_udp_get_fd(inst) == -1


@pytest.mark.parametrize("kind", CREATES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("port", [-2, -1000, -(2**31)])
def test_create_port_below_minus_one(kind: str, mode: str, port: int) -> None:
    info = create_info(kind, lib.VMADDR_CID_ANY, port)
    inst, raw = new_buffer() if mode == "caller" else (ffi.NULL, None)
    ffi.errno = 0
    assert create_fn(kind)(inst, info) == ffi.NULL
    assert ffi.errno == errno.EINVAL
    if mode == "caller":
        assert raw is not None
        assert lib.udo_vsock_udp_get_fd(inst) == -1
        assert lib.udo_log_get_error_code(inst) == errno.EINVAL
        text = message(inst)
        assert f"udo_vsock_udp_{kind}_create" in text and "port" in text
        lib.udo_vsock_udp_destroy(inst)


# --- NULL instance -------------------------------------------------------------------------


def test_null_instance_everywhere() -> None:
    data = ffi.new("char[]", 16)
    addr = ffi.new("struct sockaddr_vm *")

    ffi.errno = 0
    assert lib.udo_vsock_udp_server_accept(ffi.NULL, addr) == -1
    assert ffi.errno == errno.EINVAL

    ffi.errno = 0
    assert lib.udo_vsock_udp_server_recv_data(ffi.NULL, data, 16, addr, ffi.NULL) == -errno.EINVAL
    assert ffi.errno == errno.EINVAL

    ffi.errno = 0
    assert lib.udo_vsock_udp_client_connect(ffi.NULL) == -1
    assert ffi.errno == errno.EINVAL

    ffi.errno = 0
    assert lib.udo_vsock_udp_client_send_data(ffi.NULL, data, 16, ffi.NULL) == -errno.EINVAL
    assert ffi.errno == errno.EINVAL

    assert lib.udo_vsock_udp_get_fd(ffi.NULL) == -1
    assert lib.udo_vsock_udp_get_port(ffi.NULL) == -1
    assert lib.udo_vsock_udp_get_vcid(ffi.NULL) == UINT32_MAX

    ffi.errno = errno.ENOENT
    lib.udo_vsock_udp_destroy(ffi.NULL)
    assert ffi.errno == errno.ENOENT

    assert ffi.string(lib.udo_log_get_error(ffi.NULL)) == b""
    assert lib.udo_log_get_error_code(ffi.NULL) == 0
    lib.udo_log_set_error_struct(ffi.NULL, 1, b"%s", ffi.new("char[]", b"ignored"))


def test_server_accept_null_addr_is_recorded() -> None:
    inst, raw = new_buffer(0)
    priv(raw).fd = -1
    ffi.errno = 0
    assert lib.udo_vsock_udp_server_accept(inst, ffi.NULL) == -1
    assert ffi.errno == errno.EINVAL
    assert lib.udo_log_get_error_code(inst) == errno.EINVAL
    assert "addr" in message(inst)


def test_instance_with_no_fd_rejects_io() -> None:
    """An instance whose create failed (fd -1) refuses I/O with -EINVAL, recorded."""
    inst, _ = new_buffer()
    assert lib.udo_vsock_udp_server_create(inst, ffi.NULL) == ffi.NULL
    data = ffi.new("char[]", 8)

    ffi.errno = 0
    assert lib.udo_vsock_udp_server_recv_data(inst, data, 8, ffi.NULL, ffi.NULL) == -errno.EINVAL
    assert ffi.errno == errno.EINVAL
    assert lib.udo_log_get_error_code(inst) == errno.EINVAL
    # A bad argument names the library function: no system call was made.
    assert message(inst) == "udo_vsock_udp_server_recv_data: Invalid argument (the fd is negative)"

    ffi.errno = 0
    assert lib.udo_vsock_udp_client_send_data(inst, data, 8, ffi.NULL) == -errno.EINVAL
    assert ffi.errno == errno.EINVAL
    assert message(inst) == "udo_vsock_udp_client_send_data: Invalid argument (the fd is negative)"

    ffi.errno = 0
    assert lib.udo_vsock_udp_client_connect(inst) == -1
    assert ffi.errno != 0
    assert lib.udo_log_get_error_code(inst) == ffi.errno
    assert "connect" in message(inst)
    lib.udo_vsock_udp_destroy(inst)


# --- destroy -------------------------------------------------------------------------------


def test_destroy_caller_memory_closes_zeroes_and_is_idempotent(
        pair: tuple[socket.socket, socket.socket]) -> None:
    planted = os.dup(pair[0].fileno())
    inst, raw = new_buffer(0)
    view = priv(raw)
    view.fd, view.vcid, view.port = planted, 9, 99
    lib.udo_log_set_error_struct(inst, 5, b"%s", ffi.new("char[]", b"stale"))
    ffi.errno = errno.ENOENT
    lib.udo_vsock_udp_destroy(inst)
    assert ffi.errno == errno.ENOENT
    with pytest.raises(OSError) as exc:
        os.fstat(planted)
    assert exc.value.errno == errno.EBADF
    assert view.fd == -1
    assert (view.vcid, view.port, view.err.code, view.free) == (0, 0, 0, False)
    size = lib.udo_vsock_udp_get_sizeof()
    fd_offset = LAYOUT.offsetof("struct mirror_vsock", "fd")
    blob = bytes(ffi.buffer(raw, size))
    assert blob[:fd_offset] == bytes(fd_offset)
    assert blob[fd_offset + 4:] == bytes(size - fd_offset - 4)
    # A second destroy must not close whatever now has that fd number.
    reuse = os.dup(pair[1].fileno())  # most likely the number `planted` had
    try:
        lib.udo_vsock_udp_destroy(inst)
        os.fstat(reuse)
        assert view.fd == -1
    finally:
        os.close(reuse)


# --- send_data / recv_data on any datagram fd ----------------------------------------------


@pytest.mark.parametrize("fn", ["send", "recv"])
def test_io_bad_arguments(fn: str, pair: tuple[socket.socket, socket.socket]) -> None:
    data = ffi.new("char[]", 8)
    fd = pair[0].fileno()

    def call(sock_fd: int, buf: Any, size: int) -> int:
        if fn == "send":
            return int(lib.udo_vsock_udp_send_data(sock_fd, buf, size, ffi.NULL, ffi.NULL))
        return int(lib.udo_vsock_udp_recv_data(sock_fd, buf, size, ffi.NULL, ffi.NULL))

    for args in ((-1, data, 8), (-42, data, 8), (fd, ffi.NULL, 8), (fd, data, 0)):
        ffi.errno = 0
        assert call(*args) == -errno.EINVAL, args
        assert ffi.errno == errno.EINVAL, args

    closed = os.dup(fd)
    os.close(closed)
    ffi.errno = 0
    assert call(closed, data, 8) == -errno.EBADF
    assert ffi.errno == errno.EBADF


def test_send_recv_plain_unix_dgram(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    payload = b"hello, datagram"
    ffi.errno = 0
    n = lib.udo_vsock_udp_send_data(a.fileno(), payload, len(payload), ffi.NULL, ffi.NULL)
    assert n == len(payload)
    assert b.recv(64) == payload

    b.send(b"from python")
    buf = ffi.new("char[]", 64)
    assert lib.udo_vsock_udp_recv_data(a.fileno(), buf, 64, ffi.NULL, ffi.NULL) == 11
    assert ffi.buffer(buf, 11)[:] == b"from python"

    # One call, one datagram: nothing extra was sent or consumed.
    b.send(b"x")
    b.send(b"y")
    assert lib.udo_vsock_udp_recv_data(a.fileno(), buf, 64, ffi.NULL, ffi.NULL) == 1
    assert buf[0] == b"x"
    assert a.recv(64, socket.MSG_DONTWAIT) == b"y"
    with pytest.raises(BlockingIOError):
        b.recv(64, socket.MSG_DONTWAIT)


def test_recv_flags_pass_through(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    buf = ffi.new("char[]", 64)

    ffi.errno = 0
    ret = lib.udo_vsock_udp_recv_data(a.fileno(), buf, 64, ffi.NULL,
                                      flags_ptr(socket.MSG_DONTWAIT))
    assert ret == -errno.EAGAIN
    assert ffi.errno == errno.EAGAIN

    b.send(b"peekaboo")
    ret = lib.udo_vsock_udp_recv_data(a.fileno(), buf, 64, ffi.NULL, flags_ptr(socket.MSG_PEEK))
    assert ret == 8 and ffi.buffer(buf, 8)[:] == b"peekaboo"
    ffi.memmove(buf, bytes(64), 64)
    ret = lib.udo_vsock_udp_recv_data(a.fileno(), buf, 64, ffi.NULL, ffi.NULL)
    assert ret == 8 and ffi.buffer(buf, 8)[:] == b"peekaboo"

    # Truncation: the copied length, the rest discarded.
    b.send(b"0123456789")
    assert lib.udo_vsock_udp_recv_data(a.fileno(), buf, 4, ffi.NULL, ffi.NULL) == 4
    assert ffi.buffer(buf, 4)[:] == b"0123"
    with pytest.raises(BlockingIOError):
        a.recv(64, socket.MSG_DONTWAIT)

    # MSG_TRUNC reaches the kernel unchanged: AF_UNIX then reports the real length.
    b.send(b"0123456789")
    assert lib.udo_vsock_udp_recv_data(a.fileno(), buf, 4, ffi.NULL,
                                       flags_ptr(socket.MSG_TRUNC)) == 10

    # MSG_OOB: the kernel's answer, the same as Python's direct recv gets.
    b.send(b"z")
    with pytest.raises(OSError) as exc:
        a.recv(8, socket.MSG_OOB)
    expected = exc.value.errno
    assert expected is not None
    ffi.errno = 0
    ret = lib.udo_vsock_udp_recv_data(a.fileno(), buf, 8, ffi.NULL, flags_ptr(socket.MSG_OOB))
    assert ret == -expected
    assert ffi.errno == expected
    assert a.recv(8) == b"z"


def test_send_flags_pass_through(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with pytest.raises(OSError) as exc:
        a.send(b"oob", socket.MSG_OOB)
    expected = exc.value.errno
    assert expected is not None
    ffi.errno = 0
    ret = lib.udo_vsock_udp_send_data(a.fileno(), b"oob", 3, ffi.NULL, flags_ptr(socket.MSG_OOB))
    assert ret == -expected
    assert ffi.errno == expected

    # A full peer with MSG_DONTWAIT: -EAGAIN, never retried.
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    chunk = b"\0" * 1024
    sent = 0
    while True:
        ffi.errno = 0
        ret = lib.udo_vsock_udp_send_data(a.fileno(), chunk, len(chunk), ffi.NULL,
                                          flags_ptr(socket.MSG_DONTWAIT))
        if ret < 0:
            break
        assert ret == len(chunk)
        sent += 1
        assert sent < 100_000
    assert ret == -errno.EAGAIN
    assert ffi.errno == errno.EAGAIN
    received = 0
    while True:
        try:
            b.recv(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        received += 1
    assert received == sent


def test_absurd_flags_reach_the_kernel(pair: tuple[socket.socket, socket.socket]) -> None:
    """Unknown flag bits: whatever the kernel answers a direct call, the library answers."""
    a, b = pair
    absurd = 0x7FFF0000 & ~socket.MSG_CMSG_CLOEXEC
    buf = ffi.new("char[]", 8)
    for flags in (absurd, -1):
        b.send(b"q")
        b.send(b"q")
        try:
            expected: int = len(a.recv(8, flags))
        except OSError as exc:
            assert exc.errno is not None
            expected = -exc.errno
        ret = lib.udo_vsock_udp_recv_data(a.fileno(), buf, 8, ffi.NULL, flags_ptr(flags))
        assert ret == expected, flags
        while True:
            try:
                a.recv(8, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break


# --- instance I/O on a planted fd ----------------------------------------------------------


@pytest.fixture
def planted(pair: tuple[socket.socket, socket.socket]) -> Iterator[tuple[Any, socket.socket]]:
    """Caller memory whose fd is one end of the socketpair; the peer stays in Python."""
    inst, raw = new_buffer(0)
    priv(raw).fd = os.dup(pair[0].fileno())
    priv(raw).free = False
    try:
        yield inst, pair[1]
    finally:
        lib.udo_vsock_udp_destroy(inst)


def test_server_recv_data_on_planted_fd(planted: tuple[Any, socket.socket],
                                        log_pipe: int) -> None:
    inst, peer = planted
    lib.udo_log_set_level(lib.UDO_LOG_ALL)
    buf = ffi.new("char[]", 32)

    peer.send(b"abc")
    assert lib.udo_vsock_udp_server_recv_data(inst, buf, 32, ffi.NULL, ffi.NULL) == 3
    assert ffi.buffer(buf, 3)[:] == b"abc"

    peer.send(b"peek")
    assert lib.udo_vsock_udp_server_recv_data(inst, buf, 32, ffi.NULL,
                                              flags_ptr(socket.MSG_PEEK)) == 4
    assert lib.udo_vsock_udp_server_recv_data(inst, buf, 32, ffi.NULL, ffi.NULL) == 4

    # -EAGAIN is returned as such and is not an error: nothing recorded, nothing logged.
    ffi.errno = 0
    ret = lib.udo_vsock_udp_server_recv_data(inst, buf, 32, ffi.NULL,
                                             flags_ptr(socket.MSG_DONTWAIT))
    assert ret == -errno.EAGAIN
    assert ffi.errno == errno.EAGAIN
    assert lib.udo_log_get_error_code(inst) == 0
    assert message(inst) == ""
    assert drain(log_pipe) == b""

    # A kernel error is returned, recorded and logged.
    peer.send(b"z")
    ffi.errno = 0
    ret = lib.udo_vsock_udp_server_recv_data(inst, buf, 32, ffi.NULL,
                                             flags_ptr(socket.MSG_OOB))
    assert ret == -errno.EOPNOTSUPP
    assert ffi.errno == errno.EOPNOTSUPP
    assert lib.udo_log_get_error_code(inst) == errno.EOPNOTSUPP
    assert message(inst).startswith("recvfrom: " + os.strerror(errno.EOPNOTSUPP))
    logged = drain(log_pipe).decode()
    assert "udo_vsock_udp_server_recv_data" in logged and "recvfrom" in logged

    # Bad arguments on a live instance: -EINVAL, recorded with the reason.
    for data, size, why in ((ffi.NULL, 32, "data"), (buf, 0, "size")):
        ffi.errno = 0
        assert lib.udo_vsock_udp_server_recv_data(inst, data, size, ffi.NULL,
                                                  ffi.NULL) == -errno.EINVAL
        assert ffi.errno == errno.EINVAL
        assert lib.udo_log_get_error_code(inst) == errno.EINVAL
        assert why in message(inst)


def test_client_send_data_bad_arguments_on_planted_fd(planted: tuple[Any, socket.socket]) -> None:
    inst, _ = planted
    buf = ffi.new("char[]", 8)
    for data, size, why in ((ffi.NULL, 8, "data"), (buf, 0, "size")):
        ffi.errno = 0
        assert lib.udo_vsock_udp_client_send_data(inst, data, size, ffi.NULL) == -errno.EINVAL
        assert ffi.errno == errno.EINVAL
        assert lib.udo_log_get_error_code(inst) == errno.EINVAL
        assert why in message(inst)


def interrupted(call: Callable[[], int]) -> tuple[int, int]:
    """Run a blocking call that a one-shot SIGALRM (Python handler: syscalls are not
    restarted) should interrupt. The fd must carry a 1 s SO_*TIMEO: a call that swallowed
    the EINTR and restarted returns -EAGAIN then. One-shot, because a repeating timer
    would keep a restarting call looping forever. Three tries, in case a signal landed
    before the call blocked."""
    ret, err = 0, 0
    for _ in range(3):
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        try:
            ffi.errno = 0
            ret = call()
            err = ffi.errno
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if ret != -errno.EAGAIN:
            break
    return ret, err


def test_eintr_is_returned_not_retried(planted: tuple[Any, socket.socket],
                                       pair: tuple[socket.socket, socket.socket],
                                       log_pipe: int) -> None:
    inst, _ = planted
    lib.udo_log_set_level(lib.UDO_LOG_ALL)
    pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 1, 0))
    pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 1, 0))
    hits: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: hits.append(signum))
    buf = ffi.new("char[]", 8)
    fd = pair[0].fileno()
    try:
        got = interrupted(lambda: int(lib.udo_vsock_udp_server_recv_data(
            inst, buf, 8, ffi.NULL, ffi.NULL)))
        assert got == (-errno.EINTR, errno.EINTR)
        got = interrupted(lambda: int(lib.udo_vsock_udp_recv_data(fd, buf, 8, ffi.NULL,
                                                                   ffi.NULL)))
        assert got == (-errno.EINTR, errno.EINTR)
        # A blocking send to a full peer.
        pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        while True:
            try:
                pair[0].send(b"\0" * 512, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        got = interrupted(lambda: int(lib.udo_vsock_udp_send_data(fd, buf, 8, ffi.NULL,
                                                                   ffi.NULL)))
        assert got == (-errno.EINTR, errno.EINTR)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert hits
    assert lib.udo_log_get_error_code(inst) == 0
    assert drain(log_pipe) == b""


# --- errors recorded by hand ---------------------------------------------------------------


def test_error_struct_functions() -> None:
    err = ffi.new("struct udo_log_error_struct *")
    ctx = ffi.cast("void *", err)
    assert lib.udo_log_get_error_code(ctx) == 0
    assert ffi.string(lib.udo_log_get_error(ctx)) == b""
    lib.udo_log_set_error_struct(ctx, lib.UDO_LOG_ERR_INCORRECT_DATA, b"%s=%d",
                                 ffi.new("char[]", b"answer"), ffi.cast("int", 42))
    assert err.code == lib.UDO_LOG_ERR_INCORRECT_DATA
    assert lib.udo_log_get_error_code(ctx) == 0x1001
    assert ffi.string(lib.udo_log_get_error(ctx)) == b"answer=42"
    assert ffi.string(err.buffer) == b"answer=42"

    ffi.errno = errno.ENOSPC
    lib.udo_log_set_error_struct(ctx, errno.EIO, b"%s", ffi.new("char[]", b"io"))
    assert ffi.errno == errno.ENOSPC
    assert lib.udo_log_get_error_code(ctx) == errno.EIO


def test_error_struct_truncates_within_its_buffer() -> None:
    size = ffi.sizeof("struct udo_log_error_struct")
    raw = ffi.new("char[]", size + 64)
    ffi.memmove(raw, b"\x5a" * (size + 64), size + 64)
    ctx = ffi.cast("void *", raw)
    lib.udo_log_set_error_struct(ctx, 7, b"%s", ffi.new("char[]", b"m" * 2000))
    text = ffi.string(lib.udo_log_get_error(ctx))
    assert text == b"m" * 511
    assert ffi.buffer(raw + size, 64)[:] == b"\x5a" * 64


# --- logging -------------------------------------------------------------------------------


TIME_PREFIX = r"\[\d\d:\d\d:\d\d\] "


def test_failing_create_logs_a_line_naming_the_call(log_pipe: int) -> None:
    lib.udo_log_set_level(lib.UDO_LOG_ERROR)
    lib.udo_log_remove_colors()
    assert lib.udo_vsock_udp_client_create(ffi.NULL, ffi.NULL) == ffi.NULL
    out = drain(log_pipe).decode()
    assert re.fullmatch(TIME_PREFIX + r"[^\n\x1b]*udo_vsock_udp_client_create[^\n\x1b]*\n", out)
    assert "vsock_info" in out and os.strerror(errno.EINVAL) in out


def test_log_levels_mask(log_pipe: int) -> None:
    lib.udo_log_remove_colors()
    lib.udo_log_set_level(lib.UDO_LOG_INFO | lib.UDO_LOG_WARNING)
    assert lib.udo_vsock_udp_server_create(ffi.NULL, ffi.NULL) == ffi.NULL
    assert drain(log_pipe) == b""
    lib.udo_log_time(lib.UDO_LOG_INFO, b"info %d", ffi.cast("int", 1))
    lib.udo_log_time(lib.UDO_LOG_ERROR, b"error %d", ffi.cast("int", 2))
    lib.udo_log_time(lib.UDO_LOG_WARNING, b"warning %d", ffi.cast("int", 3))
    lib.udo_log_time(lib.UDO_LOG_SUCCESS, b"success %d", ffi.cast("int", 4))
    lines = drain(log_pipe).decode().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(TIME_PREFIX + "info 1", lines[0])
    assert re.fullmatch(TIME_PREFIX + "warning 3", lines[1])

    lib.udo_log_set_level(lib.UDO_LOG_NONE)
    lib.udo_log_time(lib.UDO_LOG_ERROR, b"%s", ffi.new("char[]", b"silent"))
    lib.udo_log_notime(lib.UDO_LOG_ALL, b"%s", ffi.new("char[]", b"silent"))
    assert drain(log_pipe) == b""

    lib.udo_log_set_level(lib.UDO_LOG_ALL)
    lib.udo_log_notime(lib.UDO_LOG_ALL, b"plain %s", ffi.new("char[]", b"line"))
    assert drain(log_pipe) == b"plain line\n"


def test_log_colors_on_and_off(log_pipe: int) -> None:
    lib.udo_log_set_level(lib.UDO_LOG_ALL)
    lib.udo_log_reset_colors()
    lib.udo_log_notime(lib.UDO_LOG_ERROR, b"%s", ffi.new("char[]", b"red"))
    colored = drain(log_pipe)
    assert b"\x1b[" in colored and b"red" in colored and colored.endswith(b"\n")
    lib.udo_log_remove_colors()
    lib.udo_log_notime(lib.UDO_LOG_ERROR, b"%s", ffi.new("char[]", b"red"))
    assert drain(log_pipe) == b"red\n"
    lib.udo_log_reset_colors()
    lib.udo_log_notime(lib.UDO_LOG_ERROR, b"%s", ffi.new("char[]", b"red"))
    assert drain(log_pipe) == colored


def test_log_keeps_errno(log_pipe: int) -> None:
    lib.udo_log_set_level(lib.UDO_LOG_ALL)
    ffi.errno = errno.ERANGE
    lib.udo_log_time(lib.UDO_LOG_ERROR, b"%s", ffi.new("char[]", b"x"))
    assert ffi.errno == errno.ERANGE
    assert drain(log_pipe).endswith(b"x\x1b[0m\n")


def test_log_defaults_in_a_fresh_process() -> None:
    """Default level NONE prints nothing; default fd is stdout; colours on by default."""
    code = textwrap.dedent(
        """
        import sys
        from cando._cando import ffi, lib
        assert lib.udo_vsock_udp_server_create(ffi.NULL, ffi.NULL) == ffi.NULL
        sys.stdout.write("MARK\\n")
        sys.stdout.flush()
        lib.udo_log_set_level(lib.UDO_LOG_ERROR)
        assert lib.udo_vsock_udp_server_create(ffi.NULL, ffi.NULL) == ffi.NULL
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.startswith("MARK\n"), out
    rest = out[len("MARK\n"):]
    assert re.fullmatch(TIME_PREFIX + r"\x1b\[31m[^\n]*udo_vsock_udp_server_create[^\n]*"
                        r"\x1b\[0m\n", rest), rest
    assert proc.stderr == b""
