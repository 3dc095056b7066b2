"""``cando._hot``: the sockets' per-datagram methods and the batch loops in C (``bindings/hot/``).

The C methods take the common call themselves and hand everything else to the
Python paths; these tests hold the two to the same results, check what only
the C side does (its receive scratch, the buffer it borrows, references it
takes and drops), and run it under valgrind. Datagram cases run in the
``wrapped_worker`` process (functions ``w_*``) and return what they saw.
"""

from __future__ import annotations

import errno
import gc
import inspect
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from wrapper_helpers import PROC_TIMEOUT

import cando
from cando import Buffer, Client, Connection, Server, _hot

WAIT = 10.0  # seconds: a regression fails, it does not hang
HOT = ("send", "sendto", "recv", "recv_into", "recvfrom", "recvfrom_into")


def test_the_hot_methods_are_c_methods_with_signatures() -> None:
    for cls in (Server, Client, Connection):
        for name in HOT:
            method = getattr(cls, name)
            assert type(method).__name__ == "method_descriptor", (cls, name)
            assert method is getattr(_hot.Core, name)
    assert list(inspect.signature(Server.recv_into).parameters) == [
        "self", "buffer", "nbytes", "flags"]
    assert "udo_vsock_udp_recv_data" in (Server.recv.__doc__ or "")


def _as_buffer(data: bytes) -> Buffer:
    buf = Buffer(len(data))
    buf.view[:] = data
    return buf


def w_both_paths() -> dict[str, Any]:
    """Each method called the C way (positional, no flags) and the Python way
    (keywords, explicit flags), on datagrams of sizes around the hand-over size."""
    out: dict[str, Any] = {}
    with Server(port=-1) as srv, Client(2, srv.port) as cli:
        srv.settimeout(WAIT)
        cli.send(b"!")
        me = srv.recvfrom(1)[1]
        dest = (2, srv.port)
        for size in (1, 63, 8191, 8192, 8193, 65536):
            data = os.urandom(size)
            got = []
            receives: list[Callable[[int], bytes]] = [
                lambda n: srv.recv(65536), lambda n: srv.recv(bufsize=65536),
                lambda n: srv.recv(65536, 0), lambda n: srv.recv(n),
                lambda n: srv.recvfrom(65536)[0], lambda n: srv.recvfrom(65536, flags=0)[0]]
            for recv in receives:
                cli.send(data)
                got.append(recv(size) == data)
            sends: list[Callable[[bytes], int]] = [
                lambda d: cli.send(d, 0), lambda d: cli.send(data=d),
                lambda d: cli.send(bytearray(d)), lambda d: cli.send(memoryview(d)),
                lambda d: cli.sendto(d, dest), lambda d: cli.sendto(d, dest, 0),
                lambda d: cli.sendto(d, address=dest),
                lambda d: cli.sendto(d, tuple([2, srv.port])),
                lambda d: cli.send(_as_buffer(d)), lambda d: cli.send(_as_buffer(d), flags=0)]
            for send in sends:
                assert send(data) == size
                buf = bytearray(size + 5)
                got.append(srv.recv_into(buf) == size and buf[:size] == data)
            for into in (lambda b: srv.recvfrom_into(b), lambda b: srv.recvfrom_into(b, 0, 0),
                         lambda b: srv.recvfrom_into(buffer=b)):
                cli.send(data)
                buf = bytearray(size + 5)
                got.append(into(buf) == (size, me) and buf[:size] == data)
            cli.send(data)
            into = Buffer(65536)
            got.append(srv.recv_into(into) == size and into[:size] == data)
            cli.send(data)
            got.append(srv.recv_into(into, 0, 0) == size and into[:size] == data)
            out[size] = got
        cli.send(b"abcdef")
        out["recv_short"] = srv.recv(3)  # the rest is discarded
        cli.send(b"abcdef")
        out["recv_short_checked"] = srv.recv(3, flags=0)
        cli.send(b"abcdef")
        buf = bytearray(10)
        out["nbytes"] = (srv.recv_into(buf, 2), bytes(buf[:3]))
        cli.send(b"abcdef")
        out["into_short"] = (srv.recv_into(memoryview(buf)[:4]), bytes(buf[:5]))
        cli.send(b"who")
        out["sender"] = srv.recvfrom(16) == (b"who", me)
        cli.send(b"who")
        out["sender_checked"] = srv.recvfrom(16, flags=0) == (b"who", me)
    return out


def test_c_and_python_paths_agree(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_both_paths)
    for size in (1, 63, 8191, 8192, 8193, 65536):
        assert out[size] == [True] * 21, size
    assert out["recv_short"] == out["recv_short_checked"] == b"abc"
    assert out["nbytes"] == (2, b"ab\0")
    assert out["into_short"] == (4, b"abcd\0")
    assert out["sender"] and out["sender_checked"]


BAD_CALLS: list[tuple[str, Callable[[Any, Any], object], type[Exception], str]] = [
    ("recv_zero", lambda s, c: s.recv(0), ValueError, "bufsize"),
    ("recv_negative", lambda s, c: s.recv(-1), ValueError, "bufsize"),
    ("recv_huge", lambda s, c: s.recv(1 << 70), ValueError, "bufsize"),
    ("recv_bool", lambda s, c: s.recv(True), TypeError, "bufsize"),
    ("recv_str", lambda s, c: s.recv("8"), TypeError, "bufsize"),
    ("recv_flags_str", lambda s, c: s.recv(8, "0"), TypeError, "flags"),
    ("recv_keyword", lambda s, c: s.recv(8, nbytes=1), TypeError, "nbytes"),
    ("recv_missing", lambda s, c: s.recv(), TypeError, "bufsize"),
    ("recv_too_many", lambda s, c: s.recv(8, 0, 0, 0, 0, 0, 0, 0, 0), TypeError, "argument"),
    ("recvfrom_zero", lambda s, c: s.recvfrom(0), ValueError, "bufsize"),
    ("recv_into_bytes", lambda s, c: s.recv_into(b"read-only"), TypeError, "writable"),
    ("recv_into_empty", lambda s, c: s.recv_into(bytearray()), ValueError, "empty"),
    ("recv_into_str", lambda s, c: s.recv_into("abc"), TypeError, "writable"),
    ("recv_into_strided", lambda s, c: s.recv_into(memoryview(bytearray(8))[::2]),
     TypeError, "contiguous"),
    ("recv_into_nbytes", lambda s, c: s.recv_into(bytearray(4), 5), ValueError, "nbytes"),
    ("send_empty", lambda s, c: c.send(b""), ValueError, "empty"),
    ("send_str", lambda s, c: c.send("text"), TypeError, "bytes-like"),
    ("send_none", lambda s, c: c.send(None), TypeError, "bytes-like"),
    ("send_strided", lambda s, c: c.send(memoryview(b"abcd")[::2]), TypeError, "contiguous"),
    ("send_flags", lambda s, c: c.send(b"x", 1.5), TypeError, "flags"),
    ("sendto_list", lambda s, c: c.sendto(b"x", [2, 5]), TypeError, "address"),
    ("sendto_bool", lambda s, c: c.sendto(b"x", (2, True)), TypeError, "port"),
    ("sendto_huge", lambda s, c: c.sendto(b"x", (2, 1 << 32)), ValueError, "port"),
    ("sendto_negative", lambda s, c: c.sendto(b"x", (-1, 5)), ValueError, "cid"),
    ("sendto_short", lambda s, c: c.sendto(b"x", (2,)), TypeError, "address"),
    ("sendto_missing", lambda s, c: c.sendto(b"x"), TypeError, "address"),
    ("sendto_empty", lambda s, c: c.sendto(b"", (2, 5)), ValueError, "empty"),
    ("recvfrom_into_ro", lambda s, c: s.recvfrom_into(b"ro"), TypeError, "writable"),
    ("recvfrom_into_nbytes", lambda s, c: s.recvfrom_into(bytearray(4), 9), ValueError,
     "nbytes"),
]


def w_bad_calls() -> dict[str, Any]:
    """Every refused call, then the datagram queued before them: nothing lost."""
    out: dict[str, Any] = {}
    with Server(port=-1) as srv, Client(2, srv.port) as cli:
        srv.settimeout(WAIT)
        cli.send(b"kept")
        for name, call, _, _ in BAD_CALLS:
            try:
                call(srv, cli)
                out[name] = "accepted"
            except Exception as exc:
                out[name] = (type(exc).__name__, str(exc))
        out["kept"] = srv.recv(16)
    return out


def test_bad_arguments_are_refused_and_lose_nothing(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_bad_calls)
    for name, _, exc, word in BAD_CALLS:
        assert out[name][0] == exc.__name__ and word in out[name][1], (name, out[name])
    assert out["kept"] == b"kept"


def w_closed() -> list[Any]:
    srv = Server(port=-1)
    cli = Client(2, srv.port)
    srv.close()
    cli.close()
    got = []
    for call in (lambda: srv.recv(8), lambda: srv.recvfrom(8),
                 lambda: srv.recv_into(bytearray(8)), lambda: cli.send(b"x"),
                 lambda: srv.send(b"x"), lambda: cli.sendto(b"x", (2, 5)),
                 lambda: srv.recvfrom_into(bytearray(8))):
        try:
            call()
            got.append("accepted")
        except OSError as exc:
            got.append((exc.errno, str(exc)))
    return got


def test_closed_sockets_raise_ebadf(wrapped_worker: Any) -> None:
    for err, text in wrapped_worker.call(w_closed):
        assert err == errno.EBADF and "closed" in text


def w_failures() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Server(port=-1) as srv, Client(2, 1) as nobody:
        srv.setblocking(False)
        for name, call in (("recv", lambda: srv.recv(8)), ("recvfrom", lambda: srv.recvfrom(8)),
                           ("recv_into", lambda: srv.recv_into(bytearray(8)))):
            try:
                call()
            except BlockingIOError as exc:
                out[name] = exc.errno
        srv.settimeout(0.01)
        try:
            srv.recv(8)
        except TimeoutError as exc:
            out["timeout"] = str(exc)
        try:
            nobody.send(b"to no one")  # port 1: nobody bound it
        except ConnectionResetError as exc:
            out["refused"] = (exc.errno, str(exc))
        except OSError as exc:
            out["refused"] = (exc.errno, str(exc))
    return out


def test_failures_raise_what_the_python_paths_raise(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_failures)
    assert out["recv"] == out["recvfrom"] == out["recv_into"] == errno.EAGAIN
    assert out["timeout"] == "timed out"
    # The instance's own error record names the failing call (Client.send is an
    # instance call): the message came through cando.errors, not strerror alone.
    err, text = out["refused"]
    assert err in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EHOSTUNREACH), out
    assert "send" in text, out


def w_blocks_held() -> dict[str, int]:
    """Python blocks still allocated after 2,000 rounds of every path, success and failure."""
    payload, long_payload = b"p" * 300, b"L" * 9000  # lengths > 256: no cached ints
    with Server(port=-1) as srv, Client(2, srv.port) as cli:
        srv.settimeout(WAIT)
        buf, into = bytearray(65536), Buffer(65536)

        def round_trip() -> None:
            cli.send(payload)
            srv.recv(65536)
            cli.send(long_payload)
            srv.recv(65536)  # handed over, a new scratch made next time
            cli.send(bytearray(payload))
            srv.recvfrom(65536)
            cli.send(memoryview(payload))
            srv.recv_into(buf)
            cli.send(payload)
            srv.recv_into(into)
            cli.sendto(payload, (2, srv.port))
            srv.recvfrom_into(buf)
            cli.send_many([payload, long_payload, bytearray(payload)])
            srv.recv_many(4, 65536)
            cli.send_many([payload, payload], (2, srv.port))
            srv.recv_many_into(into, 300)

        def failing() -> None:
            for call in (lambda: srv.recv(0), lambda: srv.recv_into(b"x"),
                         lambda: cli.send(b""), lambda: srv.recvfrom(65536),
                         lambda: cli.send_many([payload, b""]),
                         lambda: cli.send_many([payload, "text"]),
                         lambda: srv.recv_many(4, 64)):
                try:
                    call()
                except (ValueError, TypeError, BlockingIOError):
                    pass

        held = {}
        for name, step in (("round_trip", round_trip), ("failing", failing)):
            if name == "failing":
                srv.setblocking(False)
            for _ in range(50):
                step()
            gc.collect()
            before = sys.getallocatedblocks()
            for _ in range(2000):
                step()
            gc.collect()
            held[name] = sys.getallocatedblocks() - before
    return held


def test_no_references_leak(wrapped_worker: Any) -> None:
    """One object kept per call would be thousands of blocks: allow a little noise."""
    held = wrapped_worker.call(w_blocks_held)
    assert all(blocks < 200 for blocks in held.values()), held


def w_threads() -> dict[str, Any]:
    """Four threads receive from one socket (scratch taken and given back
    concurrently, long and short datagrams mixed); each datagram names its sender."""
    count, senders = 400, 4
    with Server(port=-1) as srv:
        srv.settimeout(WAIT)
        clients = [Client(2, srv.port) for _ in range(senders)]
        ports = {}
        for i, cli in enumerate(clients):
            cli.send(b"hello")
            ports[i] = srv.recvfrom(16)[1]
        bad: list[Any] = []
        got = [0] * senders

        def receive(k: int) -> None:
            for _ in range(count):
                data, sender = srv.recvfrom(65536)
                who = data[0] - ord("a")
                size = 9000 if data[1:2] == b"L" else 20
                if ports[who] != sender or len(data) != size or len(set(data[1:])) != 1:
                    bad.append((who, sender, len(data)))
                got[k] += 1

        def send(i: int, cli: Client) -> None:
            for j in range(count):
                body = b"L" * 8999 if j % 3 == 0 else b"s" * 19
                while True:
                    try:
                        cli.send(bytes([ord("a") + i]) + body)
                        break
                    except BlockingIOError:  # the emulated queue is short: wait for room
                        threading.Event().wait(0.0005)

        threads = [threading.Thread(target=receive, args=(k,)) for k in range(senders)]
        threads += [threading.Thread(target=send, args=(i, c)) for i, c in enumerate(clients)]
        for c in clients:
            c.setblocking(False)
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 6)
        for c in clients:
            c.close()
    return {"bad": bad, "got": got}


def test_threads_receiving_on_one_socket(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_threads)
    assert out["bad"] == [] and out["got"] == [400] * 4, out


def test_private_c_entry_points_refuse_bad_use() -> None:
    """Nothing of _hot takes a raw address: wrong calls raise, none crashes."""
    core = _hot.Core()
    assert core._fd == -1
    with pytest.raises(AttributeError, match="_after"):  # no Python half to ask
        core.recv(8)
    with pytest.raises(AttributeError, match="_recv_into_checked"):
        core.recv_into(b"x")
    for kind in (0, 3, -1):
        with pytest.raises(ValueError, match="_new_instance"):
            core._new_instance(kind)
    assert core._new_instance(1) > 0
    with pytest.raises(ValueError, match="once"):
        core._new_instance(2)
    buf = Buffer(4)
    with pytest.raises(AttributeError):
        buf.view = memoryview(bytearray(3))  # type: ignore[misc]
    with pytest.raises(TypeError):
        _hot._set_buffer_type(42)  # type: ignore[arg-type]
    batch = _hot.Batch()
    assert batch.nbytes == 0
    for args, exc in [((-1, 8, 0, 1), None), ((0, 0, 0, 1), ValueError),
                      ((0, 8, 0, 0), ValueError), ((0, 8, 0, (1 << 20) + 1), ValueError),
                      ((0, 8, 1 << 40, 1), OverflowError), (("0", 8, 0, 1), TypeError)]:
        if exc is None:
            assert batch.recv(*args) == -errno.EINVAL  # the library refuses fd -1
        else:
            with pytest.raises(exc):
                batch.recv(*args)
    assert batch.recv_into(-1, 8, 0, bytearray(7)) is None  # not one slot
    assert batch.recv_into(-1, 8, 0, b"read-only bytes") is None
    assert batch.recv_into(-1, 8, 0, bytearray(64)) == -errno.EINVAL  # the library refuses fd -1
    assert _hot._send_batch(-1, (b"x",), None, 0) == -errno.EINVAL  # the library refuses fd -1
    assert _hot._send_batch(-1, (b"x", b""), (2, 5), 0) is None
    with pytest.raises(TypeError):
        _hot._send_batch(0, [b"x"], None, 0)
    for dest in ([2, 5], ("a", 5), (2, -1), (2, 1 << 32), (True, 5)):
        with pytest.raises(ValueError, match="dest"):
            _hot._send_batch(0, (b"x",), dest, 0)

    class Fd:  # an argument whose conversion runs Python: after a failed one, none may
        calls = 0

        def __index__(self) -> int:
            Fd.calls += 1
            return 5

    for args in [(0, "x", 0, 1), (0, 8, 0, "x"), (Fd(), "x", 0, 1)]:
        with pytest.raises(TypeError):
            batch.recv(*args)  # a SystemError if an exception were left pending
    assert Fd.calls == 1


ZEROED_INSTANCE = r"""
import os, socket
from cando import _hot
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
os.dup2(a.fileno(), 0)  # fd 0 is what zeroed instance memory names
b.setblocking(False)
b.send(b"for fd 0")
out = []
for kind, call in ((1, lambda c: c.send(b"to fd 0?")), (2, lambda c: c.recvfrom(64))):
    core = _hot.Core()
    core._new_instance(kind)  # memory, but no instance created in it: fd stays -1
    try:
        call(core)
        out.append("used fd 0")
    except AttributeError:  # the fd path, with -1, asked the missing Python half
        out.append("refused")
try:
    out.append(b.recv(64))
except BlockingIOError:
    out.append("nothing")
print(out, a.recv(64))
"""


def test_instance_memory_before_create_is_not_fd_0() -> None:
    """_new_instance memory is zeroed (its fd field reads 0) until a create runs:
    the C methods go by the socket's own fd (-1), never by that field."""
    proc = subprocess.run([sys.executable, "-c", ZEROED_INSTANCE], capture_output=True,
                          text=True, timeout=PROC_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['refused', 'refused', 'nothing'] b'for fd 0'"


def w_batch_reentered() -> dict[str, Any]:
    """A Batch used again while its results are being made (from a gc callback,
    as another thread or a __del__ could): refused, and the first results intact."""
    out: dict[str, Any] = {}
    with Server(port=-1) as srv, Client(2, srv.port) as cli:
        for i in range(8):
            cli.send(bytes([65 + i]) * 40)
        batch = _hot.Batch()
        state = {"armed": True}

        def callback(phase: str, info: dict[str, Any]) -> None:
            if phase == "start" and state["armed"]:
                state["armed"] = False
                try:
                    batch.recv_into(srv.fileno(), 64, socket.MSG_DONTWAIT, bytearray(1024))
                    out["nested"] = "ran"
                except RuntimeError as exc:
                    out["nested"] = str(exc)

        keep = [(i, -i) for i in range(5000)]  # no free 2-tuples: the results allocate
        gc.callbacks.append(callback)
        threshold = gc.get_threshold()
        gc.set_threshold(1)
        try:
            got = batch.recv(srv.fileno(), 64, socket.MSG_DONTWAIT, 8)
        finally:
            gc.set_threshold(*threshold)
            gc.callbacks.remove(callback)
        del keep
        out["got"] = [data for data, _ in got]
        out["fired"] = not state["armed"]
    return out


def test_a_batch_cannot_be_reused_while_its_results_are_made(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_batch_reentered)
    assert out["fired"], out  # the collector did run while the results were made
    assert out["nested"] == "this Batch is in use by another call"
    assert out["got"] == [bytes([65 + i]) * 40 for i in range(8)]


VALGRIND_SCRIPT = r"""
import cando, socket
with cando.Server(port=-1) as srv, cando.Client(2, srv.port) as cli:
    srv.settimeout(5)
    buf, into = bytearray(65536), cando.Buffer(65536)
    for i in range(100):
        cli.send(b"x" * 64); srv.recv(1024)
        cli.send(b"y" * 9000); srv.recvfrom(65536)
        cli.send(bytearray(b"z" * 10)); srv.recv_into(buf)
        cli.send(memoryview(b"w" * 10)); srv.recv_into(into)
        cli.send(b"f", 0); srv.recv(8, socket.MSG_TRUNC)
        cli.sendto(b"t" * 100, (2, srv.port)); srv.recvfrom_into(buf)
        cli.send_many([b"a" * 64, bytearray(9000), memoryview(b"m")]); srv.recv_many(4, 65536)
        cli.send_many([b"b"] * 70, (2, srv.port), socket.MSG_DONTWAIT)
        srv.recv_many_into(into, 1024)
    srv.setblocking(False)
    while True:
        try:
            srv.recv_many(64, 64)
        except BlockingIOError:
            break
    for bad in (lambda: srv.recv(0), lambda: srv.recv_into(b"ro"), lambda: cli.send("s"),
                lambda: cli.send_many([b"x", b""]), lambda: cli.send_many([b"x"] * 70 + [1])):
        try:
            bad()
        except (TypeError, ValueError):
            pass
    for call in (lambda: srv.recv(8), lambda: srv.recvfrom(8), lambda: srv.recv_into(buf)):
        try:
            call()
        except BlockingIOError:
            pass
print("done")
"""


def test_hot_paths_under_valgrind(wrapped_env: Any) -> None:
    """memcheck over the C methods: no error and no definite leak in a frame of
    _hot or libcando (CPython's own start-up reports are not ours to judge)."""
    env = wrapped_env()
    env["PYTHONMALLOC"] = "malloc"  # every object a malloc valgrind can follow
    proc = subprocess.run(
        ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
         sys.executable, "-c", VALGRIND_SCRIPT],
        env=env, capture_output=True, text=True, timeout=PROC_TIMEOUT * 3)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-3000:]
    assert "ERROR SUMMARY" in proc.stderr
    reports = proc.stderr.split("== \n")
    ours = [r for r in reports if "_hot.cpython" in r or "libcando.so" in r]
    assert ours == [], "\n".join(ours)[-4000:]


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_hot_c_has_no_warnings(compiler: str) -> None:
    """bindings/hot/*.c under both compilers with the project's flags (the wheel build used one)."""
    hot = Path(__file__).resolve().parent.parent / "bindings" / "hot"
    proc = subprocess.run(
        [compiler, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-O2",
         "-fsyntax-only", "-I" + sysconfig.get_paths()["include"], "-I" + cando.get_include(),
         *map(str, sorted(hot.glob("*.c")))], capture_output=True, text=True,
        timeout=PROC_TIMEOUT)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_hot_paths_under_asan_and_ubsan(tmp_path: Path, wrapped_env: Any) -> None:
    """The same paths with bindings/hot built under AddressSanitizer and
    UndefinedBehaviorSanitizer (gcc, halting on the first report), in a copy of
    the installed package, the ASan runtime preloaded before the wrapper."""
    pkg = Path(cando.__file__).resolve().parent
    copy = tmp_path / "cando"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
    hot = Path(__file__).resolve().parent.parent / "bindings" / "hot"
    (target,) = copy.glob("_hot.*.so")
    subprocess.run(
        ["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-O1", "-g",
         "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-shared", "-fPIC", "-I" + sysconfig.get_paths()["include"], "-I" + cando.get_include(),
         *map(str, sorted(hot.glob("*.c"))), "-L" + str(copy), "-Wl,-rpath," + str(copy),
         "-lcando", "-o", str(target)], check=True, timeout=PROC_TIMEOUT)
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                          text=True, check=True).stdout.strip()
    env = wrapped_env()
    env.update(PYTHONPATH=str(tmp_path), LD_PRELOAD=f"{asan} {env['LD_PRELOAD']}",
               ASAN_OPTIONS="detect_leaks=0",  # the interpreter keeps its own at exit
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    probe = ("import ctypes, cando._hot as h\n"
             f"assert h.__file__.startswith({str(tmp_path)!r}), h.__file__\n"
             "assert hasattr(ctypes.CDLL(None), '__asan_init')\n")
    proc = subprocess.run([sys.executable, "-c", probe + VALGRIND_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=PROC_TIMEOUT * 3)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-4000:]
    assert "runtime error" not in proc.stderr and "AddressSanitizer" not in proc.stderr
