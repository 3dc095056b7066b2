"""The batch extension: udo_vsock_udp_send_batch/recv_batch (C), cando._batch
(Python), and vsock_wrapper's one-pass sendmmsg/recvmmsg, on the emulated transport."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import WrappedEnv, WrappedWorker, consumer_flags

from cando._batch import BATCH_MAX

C_PROGRAM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cando/vsock-udp.h>
#include <cando/vsock-udp-batch.h>

#define CHECK(cond) do { if (!(cond)) { \
	printf("FAIL %d %s\n", __LINE__, #cond); return 1; } } while (0)

int main(void)
{
	struct udo_vsock_udp_server_create_info si = { VMADDR_CID_ANY, -1 };
	struct udo_vsock_udp *srv = udo_vsock_udp_server_create(NULL, &si);
	struct udo_vsock_udp_client_create_info ci;
	struct udo_vsock_udp *cli;
	struct udo_vsock_udp_dgram out[5], in[6];
	struct sockaddr_vm to, from[6], nobody;
	char payload[5][16], bufs[6][8];
	const int dontwait = MSG_DONTWAIT, waitforone = MSG_WAITFORONE;
	int i, rx, tx;

	CHECK(srv);
	ci.vcid = 2;
	ci.port = udo_vsock_udp_get_port(srv);
	cli = udo_vsock_udp_client_create(NULL, &ci);
	CHECK(cli);
	rx = udo_vsock_udp_get_fd(srv);
	tx = udo_vsock_udp_get_fd(cli);
	memset(&to, 0, sizeof(to));
	to.svm_family = AF_VSOCK;
	to.svm_cid = 2;
	to.svm_port = (unsigned int) ci.port;

	/* Bad arguments: -EINVAL with errno, before any I/O. */
	memset(out, 0, sizeof(out));
	for (i = 0; i < 5; i++) {
		snprintf(payload[i], sizeof(payload[i]), "dgram-%d%s", i, i == 4 ? "-long" : "");
		out[i].data = payload[i];
		out[i].size = strlen(payload[i]);
	}
	errno = 0;
	CHECK(udo_vsock_udp_send_batch(-1, out, 5, &to, NULL) == -EINVAL && errno == EINVAL);
	CHECK(udo_vsock_udp_send_batch(tx, NULL, 5, &to, NULL) == -EINVAL);
	CHECK(udo_vsock_udp_send_batch(tx, out, 0, &to, NULL) == -EINVAL);
	out[2].size = 0;
	CHECK(udo_vsock_udp_send_batch(tx, out, 5, &to, NULL) == -EINVAL);
	out[2].size = strlen(payload[2]);
	out[3].data = NULL;
	CHECK(udo_vsock_udp_send_batch(tx, out, 5, &to, NULL) == -EINVAL);
	out[3].data = payload[3];
	CHECK(udo_vsock_udp_recv_batch(rx, NULL, 1, NULL) == -EINVAL);
	CHECK(udo_vsock_udp_recv_batch(-5, in, 1, NULL) == -EINVAL);

	/* Nothing queued, not waiting: -EAGAIN. */
	memset(in, 0, sizeof(in));
	for (i = 0; i < 6; i++) {
		in[i].data = bufs[i];
		in[i].size = sizeof(bufs[i]);
		in[i].addr = &from[i];
	}
	CHECK(udo_vsock_udp_recv_batch(rx, in, 6, &dontwait) == -EAGAIN);

	/* Five out (one per-entry address, the others the batch's), five in. */
	out[1].addr = &to;
	CHECK(udo_vsock_udp_send_batch(tx, out, 5, &to, NULL) == 5);
	for (i = 0; i < 5; i++)
		CHECK(out[i].len == strlen(payload[i]));
	CHECK(udo_vsock_udp_recv_batch(rx, in, 6, &waitforone) == 5);
	for (i = 0; i < 4; i++) {
		CHECK(in[i].len == strlen(payload[i]) && !memcmp(bufs[i], payload[i], in[i].len));
		CHECK(!(in[i].flags & MSG_TRUNC));
		CHECK(from[i].svm_cid == 2 && from[i].svm_port != VMADDR_PORT_ANY);
	}
	/* dgram-4-long does not fit 8 bytes: truncated, and said so. */
	CHECK(in[4].len == 8 && (in[4].flags & MSG_TRUNC) && !memcmp(bufs[4], "dgram-4-", 8));

	/* Nobody there: the first datagram fails, so the batch does. */
	nobody = to;
	nobody.svm_port = 1;
	CHECK(udo_vsock_udp_send_batch(tx, out, 2, &nobody, NULL) == -EHOSTUNREACH);
	CHECK(errno == EHOSTUNREACH);
	/* The second fails: one sent, as sendmmsg reports. */
	out[0].addr = &to;
	out[1].addr = NULL;
	CHECK(udo_vsock_udp_send_batch(tx, out, 2, &nobody, NULL) == 1);
	CHECK(udo_vsock_udp_recv_batch(rx, in, 6, &waitforone) == 1);

	/* A connected client needs no address. */
	CHECK(udo_vsock_udp_client_connect(cli) == 0);
	out[0].addr = NULL;
	CHECK(udo_vsock_udp_send_batch(tx, out, 3, NULL, NULL) == 3);
	CHECK(udo_vsock_udp_recv_batch(rx, in, 3, NULL) == 3);

	udo_vsock_udp_destroy(cli);
	udo_vsock_udp_destroy(srv);
	printf("ok\n");
	return 0;
}
"""


def test_c_batch_api(cc: str, tmp_path: Path, wrapped_env: WrappedEnv) -> None:
    src = tmp_path / "batch.c"
    src.write_text(C_PROGRAM)
    exe = tmp_path / "batch"
    for flags in (["-std=gnu11", "-Wall", "-Wextra", "-Werror"],):
        subprocess.run([cc, *flags, str(src), "-o", str(exe), *consumer_flags()], check=True,
                       capture_output=True, text=True, timeout=120)
    proc = subprocess.run([str(exe)], env=wrapped_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_batch_header_is_separate_and_self_contained(cc: str, tmp_path: Path) -> None:
    import cando

    header = Path(cando.get_include()) / "cando" / "vsock-udp-batch.h"
    assert header.is_file()
    assert "batch" not in (header.parent / "vsock-udp.h").read_text()
    src = tmp_path / "only.c"
    src.write_text("#include <cando/vsock-udp-batch.h>\nint main(void) { return 0; }\n")
    subprocess.run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-c", str(src), "-o",
                    str(tmp_path / "only.o"), "-I", cando.get_include()], check=True,
                   capture_output=True, text=True, timeout=60)


# ---- Python, in the wrapped worker ----

def _pair() -> tuple[socket.socket, socket.socket, tuple[int, int]]:
    rx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    rx.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
    tx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    return tx, rx, (2, rx.getsockname()[1])


def _roundtrip() -> list[Any]:
    from cando import _batch

    tx, rx, dest = _pair()
    try:
        small = [b"a", bytearray(b"bb"), memoryview(b"ccc"), b"d" * 100]
        assert _batch.send_many(tx.fileno(), small, dest) == 4
        got = _batch.recv_many(rx.fileno(), 8, 64)
        large = [b"L" * 5000, b"M" * 6000]
        assert _batch.send_many(tx.fileno(), large, dest) == 2
        got_large = _batch.recv_many(rx.fileno(), 2, 70000)
        buf = bytearray(3 * 16)
        assert _batch.send_many(tx.fileno(), [b"x1", b"y22", b"z" * 20], dest) == 3
        into = _batch.recv_many_into(rx.fileno(), buf, 16)
        tx.connect(dest)
        assert _batch.send_many(tx.fileno(), [b"conn"], None) == 1
        conn = _batch.recv_many(rx.fileno(), 1, 16)
        sender = tx.getsockname()
        return [got, [(len(d), a) for d, a in got_large], into, bytes(buf), conn, sender]
    finally:
        tx.close()
        rx.close()


def test_python_send_recv_many(wrapped_worker: WrappedWorker) -> None:
    got, large, into, buf, conn, sender = wrapped_worker.call(_roundtrip)
    src = (2, sender[1])
    assert got == [(b"a", src), (b"bb", src), (b"ccc", src), (b"d" * 64, src)]
    assert large == [(5000, src), (6000, src)]
    assert into == [(2, src), (3, src), (16, src)]
    assert buf[:2] == b"x1" and buf[16:19] == b"y22" and buf[32:48] == b"z" * 16
    assert conn == [(b"conn", src)]


def _errors() -> list[str]:
    from cando import _batch
    from cando._cando import lib

    tx, rx, dest = _pair()
    seen = []
    calls: list[Callable[[], Any]] = [
        lambda: _batch.send_many(tx.fileno(), [b"x", b""], dest),
        lambda: _batch.send_many(tx.fileno(), [b"x", 5], dest),  # type: ignore[list-item]
        lambda: _batch.send_many(tx.fileno(), [b"x"], (2,)),  # type: ignore[arg-type]
        lambda: _batch.send_many(-1, [b"x"], dest),
        lambda: _batch.send_many("3", [b"x"], dest),  # type: ignore[arg-type]
        lambda: _batch.recv_many(rx.fileno(), 0, 10),
        lambda: _batch.recv_many(rx.fileno(), 1, 0),
        lambda: _batch.recv_many_into(rx.fileno(), b"readonly", 4),
        lambda: _batch.recv_many_into(rx.fileno(), bytearray(3), 4),
        lambda: _batch.recv_many(rx.fileno(), 4, 10, lib.MSG_DONTWAIT),
        lambda: _batch.send_many(tx.fileno(), [b"x"], (2, 1)),
    ]
    try:
        for call in calls:
            try:
                call()
                seen.append("no error")
            except OSError as exc:
                seen.append(f"{type(exc).__name__}:{errno.errorcode.get(exc.errno or 0)}")
            except (TypeError, ValueError) as exc:
                seen.append(type(exc).__name__)
        seen.append(str(_batch.send_many(tx.fileno(), [], dest)))
    finally:
        tx.close()
        rx.close()
    return seen


def test_python_errors(wrapped_worker: WrappedWorker) -> None:
    assert wrapped_worker.call(_errors) == [
        "ValueError", "TypeError", "TypeError", "ValueError", "TypeError", "ValueError",
        "ValueError", "TypeError", "ValueError", "BlockingIOError:EAGAIN",
        "OSError:EHOSTUNREACH", "0",
    ]


def _many_chunks(n: int, use_lib: bool) -> list[int]:
    """n datagrams in one call (more than one 64-datagram chunk), a thread receiving."""
    from cando import _batch

    tx, rx, dest = _pair()
    got: list[int] = []

    def receive() -> None:
        while len(got) < n:
            if use_lib:
                got.extend(int(d.decode()) for d, _ in _batch.recv_many(rx.fileno(), 100, 16))
            else:
                got.append(int(rx.recv(16).decode()))

    t = threading.Thread(target=receive)
    t.start()
    try:
        sent = _batch.send_many(tx.fileno(), [str(i).encode() for i in range(n)], dest)
        t.join(30)
        assert sent == n and not t.is_alive()
        return got
    finally:
        tx.close()
        rx.close()


@pytest.mark.parametrize("use_lib", [True, False])
def test_batches_larger_than_a_chunk(wrapped_worker: WrappedWorker, use_lib: bool) -> None:
    assert wrapped_worker.call(_many_chunks, 300, use_lib) == list(range(300))


def _stale_fd() -> list[Any]:
    """An emulated fd closed behind the wrapper's back and reused by a pipe
    and by a foreign AF_UNIX datagram socket: I/O answers natively."""
    libc = ctypes.CDLL(None, use_errno=True)
    sys_close = 3  # x86_64 and others: SYS_close; checked by the reuse below
    out: list[Any] = []
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    fd = s.detach()
    assert libc.syscall(sys_close, fd) == 0
    r, w = os.pipe()
    out.append(fd in (r, w))
    os.write(w, b"pipe")
    out.append(os.read(r, 10))
    os.close(r)
    os.close(w)
    # A foreign AF_UNIX datagram pair on the number: recvfrom gives AF_UNIX names.
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    fd = s.detach()
    assert libc.syscall(sys_close, fd) == 0
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    out.append(fd in (a.fileno(), b.fileno()))
    a.send(b"unix")
    data, addr = b.recvfrom(10)
    out.append((data, addr))
    a.close()
    b.close()
    # The same, on fds the wrapper never knew: what the answer must be.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.send(b"unix")
    out.append(b.recvfrom(10))
    a.close()
    b.close()
    return out


def test_wrapper_stale_fd_answers_natively(wrapped_worker: WrappedWorker) -> None:
    pipe_reused, piped, unix_reused, got, native = wrapped_worker.call(_stale_fd)
    assert (pipe_reused, piped, unix_reused) == (True, b"pipe", True)
    assert got == native


def _methods() -> dict[str, Any]:
    """send_many/recv_many/recv_many_into as methods of cando's sockets."""
    import cando

    out: dict[str, Any] = {}
    with cando.Server(port=-1) as srv, cando.Client(2, srv.port) as cli:
        out["sent"] = cli.send_many([b"one", bytearray(b"two"), memoryview(b"three")])
        got = srv.recv_many(8, 64)
        out["data"] = [d for d, _ in got]
        out["senders"] = {s for _, s in got}
        out["cli_port"] = cli.getsockname()[1]
        # The server answers all three at once, to the client's address.
        out["replied"] = srv.send_many([d.upper() for d, _ in got], got[0][1])
        buf = bytearray(3 * 16)
        into = cli.recv_many_into(buf, 16)
        out["into"] = [bytes(buf[i * 16:i * 16 + n]) for i, (n, _) in enumerate(into)]
        out["into_senders"] = {s for _, s in into}
        out["srv_port"] = srv.port
        # Items whose len() is not their byte size (4-byte array items), small
        # and large: sizes come from the bytes.
        from array import array
        small, large = array("I", [1, 2, 3]), array("I", range(1024))
        out["wide_sent"] = cli.send_many([small, b"z", large])
        out["wide"] = [len(d) for d, _ in srv.recv_many(8, 8192)]
    try:
        cli.send_many([b"x"])
    except OSError as exc:
        out["closed"] = exc.errno
    return out


def test_socket_methods(wrapped_worker: WrappedWorker) -> None:
    out = wrapped_worker.call(_methods)
    assert out["sent"] == 3
    assert out["data"] == [b"one", b"two", b"three"]
    assert out["senders"] == {(2, out["cli_port"])}
    assert out["replied"] == 3
    assert out["into"] == [b"ONE", b"TWO", b"THREE"]
    assert out["into_senders"] == {(2, out["srv_port"])}
    assert out["closed"] == errno.EBADF
    assert out["wide_sent"] == 3
    assert out["wide"] == [12, 1, 4096]


def test_recv_many_clips_what_msg_trunc_reports() -> None:
    """With MSG_TRUNC some sockets report a datagram's full length (AF_UNIX
    does; vsock does not): recv_many still returns at most bufsize bytes."""
    from cando import _batch

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.send(b"e" * 100)
        b.send(b"f")
        got = _batch.recv_many(a.fileno(), 8, 64, socket.MSG_TRUNC | socket.MSG_DONTWAIT)
    assert [d for d, _ in got] == [b"e" * 64, b"f"]


def _pools_after() -> dict[str, int]:
    """Pooled receive arrays survive failed receives; a send_many of more than
    BATCH_MAX (arrays of its own in C) sends what the queue takes."""
    from cando import _batch

    tx, rx, dest = _pair()
    try:
        # MSG_DONTWAIT: the emulated queue holds 10; what does not fit is not sent.
        out = {"big_send": _batch.send_many(tx.fileno(), [b"y"] * (_batch.BATCH_MAX + 6), dest,
                                            socket.MSG_DONTWAIT)}
        while True:  # drain
            try:
                _batch.recv_many(rx.fileno(), 16, 8, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        out["pool_before"] = len(_batch._POOL)
        for _ in range(3):
            try:
                _batch.recv_many(rx.fileno(), 16, 8, socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
        out["pool_after"] = len(_batch._POOL)
        return out
    finally:
        tx.close()
        rx.close()


def test_pools_survive_big_sends_and_failed_receives(wrapped_worker: WrappedWorker) -> None:
    out = wrapped_worker.call(_pools_after)
    assert 0 < out["big_send"] < BATCH_MAX + 6, out
    assert out["pool_before"] >= 1 and out["pool_after"] == out["pool_before"], out
