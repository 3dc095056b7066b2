"""vsock_wrapper with unmodified programs: Python's own socket module, several
processes and CIDs, namespaces, fd bookkeeping, fork, threads, the full-queue
modes, configuration, and families it must leave alone.

Every process runs in a world of its own (a fresh VSOCK_WRAPPER_NAMESPACE).
Processes synchronise through pipes and blocking receives with timeouts,
never through sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from wrapper_helpers import compiler, find_wrapper, run_py, unique_namespace, wrapped_env


@pytest.fixture(scope="module")
def vsw_lib() -> str:
    return find_wrapper()


@pytest.fixture
def ns() -> str:
    return unique_namespace()


PRELUDE = textwrap.dedent("""
    import errno, os, socket, sys, threading
    V = socket.AF_VSOCK
    D = socket.SOCK_DGRAM
    ANY = socket.VMADDR_CID_ANY
    def vs(port=None, timeout=10):
        s = socket.socket(V, D)
        if port is not None:
            s.bind((ANY, port))
        s.settimeout(timeout)
        return s
""")


def _server(lib: str, ns: str, code: str, cid: int = 2, **extra: str) -> subprocess.Popen[str]:
    """A Python process under the wrapper that prints 'ready' once set up."""
    return subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                            env=wrapped_env(lib, ns, cid, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("ready"), (line, proc.stderr.read() if proc.stderr else "")
    return line


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    return out


def test_python_socket_module_both_ways(vsw_lib: str, ns: str) -> None:
    server = _server(vsw_lib, ns, """
        s = vs(6000)
        assert s.family == V and s.type == D, (s.family, s.type)
        print("ready", flush=True)
        data, peer = s.recvfrom(100)
        s.sendto(data.upper(), peer)
        print("peer", peer[0], peer[1], flush=True)
    """)
    _wait_ready(server)
    client = run_py(PRELUDE + textwrap.dedent("""
        c = vs()
        c.sendto(b"ping", (2, 6000))
        data, src = c.recvfrom(100)
        print(data.decode(), src[0], src[1], c.getsockname()[1])
    """), wrapped_env(vsw_lib, ns))
    data, cid, port, myport = client.stdout.split()
    assert (data, cid, port) == ("PING", "2", "6000")
    assert _finish(server).split() == ["peer", "2", myport]


def test_python_settimeout_and_fileno(vsw_lib: str, ns: str) -> None:
    out = run_py(PRELUDE + textwrap.dedent("""
        s = vs(6001, timeout=0.2)
        try:
            s.recv(10)
            print("no timeout")
        except socket.timeout:
            print("timeout")
        t = socket.socket(fileno=os.dup(s.fileno()))
        print(t.family == V, t.type == D, t.proto, t.getsockname())
        s.setblocking(False)
        try:
            s.recv(10)
        except BlockingIOError:
            print("eagain")
    """), wrapped_env(vsw_lib, ns)).stdout.split("\n")
    assert out[0] == "timeout"
    assert out[1] == "True True 0 (4294967295, 6001)"
    assert out[2] == "eagain"


def test_two_cids_talk_as_guest_and_host(vsw_lib: str, ns: str) -> None:
    host = _server(vsw_lib, ns, """
        s = vs(6100)
        print("ready", flush=True)
        data, peer = s.recvfrom(100)
        print("from", peer[0], peer[1], flush=True)
        s.sendto(b"hi guest", peer)
    """, cid=2)
    _wait_ready(host)
    guest = run_py(PRELUDE + textwrap.dedent("""
        g = vs(7000)
        g.sendto(b"hi host", (2, 6100))
        data, src = g.recvfrom(100)
        print(data.decode(), src)
        with open("/dev/vsock") as dev:
            import fcntl, struct
            raw = fcntl.ioctl(dev, socket.IOCTL_VM_SOCKETS_GET_LOCAL_CID, b"\\0" * 4)
            print(struct.unpack("I", raw)[0])
    """), wrapped_env(vsw_lib, ns, cid=42)).stdout.splitlines()
    assert guest == ["hi guest (2, 6100)", "42"]
    assert _finish(host).split() == ["from", "42", "7000"]


def test_namespaces_are_isolated(vsw_lib: str) -> None:
    ns_a, ns_b = unique_namespace("a"), unique_namespace("b")
    server = _server(vsw_lib, ns_a, """
        s = vs(6200)
        print("ready", flush=True)
        print(s.recv(100).decode(), flush=True)
    """)
    _wait_ready(server)
    send = PRELUDE + "vs().sendto(b'same world', (2, 6200)); print('sent')"
    other = run_py(send, wrapped_env(vsw_lib, ns_b), check=False)
    assert other.returncode != 0 and "EHOSTUNREACH" not in other.stdout
    assert "No route to host" in other.stderr
    assert run_py(send, wrapped_env(vsw_lib, ns_a)).stdout.strip() == "sent"
    assert _finish(server).strip() == "same world"


def test_dup_close_and_fd_reuse(vsw_lib: str, ns: str) -> None:
    out = run_py(PRELUDE + textwrap.dedent("""
        s = vs(6300)
        fd = s.fileno()
        d = os.dup(fd)
        s.close()
        t = socket.socket(fileno=d)
        print(t.family == V, t.getsockname())
        t.close()
        # The freed numbers go to a pipe and a UNIX socket: they must act natively.
        r, w = os.pipe()
        os.write(w, b"pipe ok")
        print(os.read(r, 10).decode(), r in (fd, d))
        os.close(r); os.close(w)
        u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        print(u.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_UNIX,
              u.fileno() == min(fd, d))
        r, w = os.pipe()
        # dup2 onto an emulated fd turns it into the source's file.
        a = vs(6301)
        os.dup2(r, a.fileno())
        os.write(w, b"x")
        print(os.read(a.fileno(), 1).decode())
        b = vs(6302)
        print(b.getsockname()[1])
    """), wrapped_env(vsw_lib, ns)).stdout.splitlines()
    assert out == ["True (4294967295, 6300)", "pipe ok True", "True True", "x", "6302"]


def test_fork_child_autobinds_fresh_port(vsw_lib: str, ns: str) -> None:
    out = run_py(PRELUDE + textwrap.dedent("""
        rx = vs(6400)
        me = vs()
        me.sendto(b"parent", (2, 6400))
        parent_port = me.getsockname()[1]
        fresh = socket.socket(V, D)
        pid = os.fork()
        if pid == 0:
            fresh.sendto(b"child", (2, 6400))
            os._exit(0)
        os.waitpid(pid, 0)
        got = sorted(rx.recvfrom(10) for _ in range(2))
        print(got[0][0].decode(), got[0][1][0], got[0][1][1] != parent_port, got[0][1][1] >= 1024)
        print(got[1][0].decode(), got[1][1] == (2, parent_port))
    """), wrapped_env(vsw_lib, ns)).stdout.splitlines()
    assert out == ["child 2 True True", "parent True"]


def test_vfork_child_leaves_the_parents_table_alone(vsw_lib: str, ns: str) -> None:
    """subprocess starts children with vfork: they share the parent's memory, and
    their close_range()/dup2() before exec must not make it forget its sockets."""
    out = run_py(PRELUDE + textwrap.dedent("""
        import subprocess
        rx = vs(6450)
        tx = vs()
        tx.sendto(b"before", (2, 6450))
        print(rx.recvfrom(10))
        for _ in range(3):  # close_fds=True (the default): close_range in the child
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        tx.sendto(b"after", (2, 6450))
        data, sender = rx.recvfrom(10)
        print(data, sender == (2, tx.getsockname()[1]), tx.getsockopt(socket.SOL_SOCKET, 39))
    """), wrapped_env(vsw_lib, ns)).stdout.splitlines()
    assert out[0].startswith("(b'before', (2, ")
    assert out[1:] == ["b'after' True 40"]


def test_threads_send_and_receive_concurrently(vsw_lib: str, ns: str) -> None:
    out = run_py(PRELUDE + textwrap.dedent("""
        N, T = 200, 4
        echo = vs(6500)
        def echo_loop():
            for _ in range(N * T):
                data, peer = echo.recvfrom(100)
                echo.sendto(data, peer)
        threading.Thread(target=echo_loop, daemon=True).start()
        results = {}
        def worker(i):
            s = vs()
            ok = 0
            for j in range(N):
                msg = f"{i}:{j}".encode()
                s.sendto(msg, (2, 6500))
                data, src = s.recvfrom(100)
                ok += data == msg and src == (2, 6500)
            results[i] = ok
            s.close()
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(T)]
        for t in ts: t.start()
        for t in ts: t.join()
        print(sorted(results.values()))
    """), wrapped_env(vsw_lib, ns)).stdout.strip()
    assert out == "[200, 200, 200, 200]"


FLOOD = """
    rx = vs(6600)
    tx = vs()
    sent = errs = 0
    for i in range(300):
        try:
            sent += tx.sendto(b"0123456789abcdef", (2, 6600)) == 16
        except BlockingIOError:
            errs += 1
    got = 0
    rx.setblocking(False)
    try:
        while True:
            rx.recv(100); got += 1
    except BlockingIOError:
        pass
    print(sent, errs, got)
"""


def test_full_drop_loses_silently(vsw_lib: str, ns: str) -> None:
    sent, errs, got = map(int, run_py(PRELUDE + textwrap.dedent(FLOOD),
                                      wrapped_env(vsw_lib, ns, VSOCK_WRAPPER_FULL="drop"),
                                      timeout=30).stdout.split())
    assert (sent, errs) == (300, 0)
    assert 0 < got < 300


def test_full_block_nonblocking_send_gets_eagain(vsw_lib: str, ns: str) -> None:
    code = PRELUDE + textwrap.dedent(FLOOD).replace("tx = vs()", "tx = vs(); tx.setblocking(False)")
    sent, errs, got = map(int, run_py(code, wrapped_env(vsw_lib, ns), timeout=30).stdout.split())
    assert errs > 0 and sent + errs == 300
    assert got == sent  # nothing lost: whatever was accepted was delivered


def test_full_block_waits_and_loses_nothing(vsw_lib: str, ns: str) -> None:
    out = run_py(PRELUDE + textwrap.dedent("""
        rx = vs(6700)
        done = threading.Event()
        def flood():
            tx = vs()
            for i in range(500):
                tx.sendto(str(i).encode(), (2, 6700))
            done.set()
        t = threading.Thread(target=flood)
        t.start()
        got = [int(rx.recv(10)) for _ in range(500)]
        t.join(30)
        print(got == list(range(500)), done.is_set())
    """), wrapped_env(vsw_lib, ns, VSOCK_WRAPPER_FULL="block"), timeout=60).stdout.strip()
    assert out == "True True"


def test_other_families_untouched(vsw_lib: str, ns: str) -> None:
    out = run_py(PRELUDE + textwrap.dedent("""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.send(b"unix"); print(b.recv(10).decode())
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v.settimeout(5)
        v.sendto(b"udp", u.getsockname())
        print(u.recvfrom(10)[0].decode(), u.getsockname()[0])
        try:
            socket.socket(V, socket.SOCK_STREAM).close()
            print("stream passes to libc")
        except OSError as e:
            print("stream passes to libc", e.errno)
        try:
            socket.socket(V, D, 17)
        except OSError as e:
            print(errno.errorcode[e.errno])
    """), wrapped_env(vsw_lib, ns)).stdout.splitlines()
    assert out[:2] == ["unix", "udp 127.0.0.1"]
    assert out[2].startswith("stream passes to libc")
    assert out[3] == "EPROTONOSUPPORT"


def test_max_dgram_setting(vsw_lib: str, ns: str) -> None:
    out = run_py(PRELUDE + textwrap.dedent("""
        rx = vs(6800)
        tx = vs()
        print(tx.sendto(b"x" * 100, (2, 6800)))
        try:
            tx.sendto(b"x" * 101, (2, 6800))
        except OSError as e:
            print(errno.errorcode[e.errno])
    """), wrapped_env(vsw_lib, ns, VSOCK_WRAPPER_MAX_DGRAM="100")).stdout.split()
    assert out == ["100", "EMSGSIZE"]


@pytest.mark.parametrize("var,value", [("VSOCK_WRAPPER_CID", "abc"), ("VSOCK_WRAPPER_CID", "1"),
                                       ("VSOCK_WRAPPER_FULL", "sometimes"),
                                       ("VSOCK_WRAPPER_MAX_DGRAM", "-5")])
def test_bad_config_warns_and_falls_back(vsw_lib: str, ns: str, var: str, value: str) -> None:
    proc = run_py(PRELUDE + textwrap.dedent("""
        rx = vs(6900); tx = vs()
        tx.sendto(b"x" * 69608, (2, 6900))
        data, src = rx.recvfrom(70000)
        print(len(data), src[0])
    """), wrapped_env(vsw_lib, ns, **{var: value}))
    assert proc.stdout.split() == ["69608", "2"]
    assert f'vsock_wrapper: {var}="{value}"' in proc.stderr


def test_debug_traces_emulated_calls_only(vsw_lib: str, ns: str) -> None:
    proc = run_py(PRELUDE + textwrap.dedent("""
        r, w = os.pipe(); os.write(w, b"x")
        s = vs(7100); s.sendto(b"hi", (2, 7100)); s.recv(10)
    """), wrapped_env(vsw_lib, ns, VSOCK_WRAPPER_DEBUG="1"))
    lines = proc.stderr.splitlines()
    assert any("bind(fd" in line and ":7100" in line for line in lines)
    assert any("sendto(fd" in line and "2 bytes to 2:7100) = 2" in line for line in lines)
    assert all(line.startswith("vsock_wrapper[") for line in lines)
    assert not any(line.split(": ", 1)[1].startswith("write(") for line in lines)


def test_long_namespace_is_one_world(vsw_lib: str) -> None:
    long_ns = unique_namespace("n" * 100)
    server = _server(vsw_lib, long_ns, """
        s = vs(7200)
        print("ready", flush=True)
        print(s.recv(10).decode(), flush=True)
    """)
    _wait_ready(server)
    run_py(PRELUDE + "vs().sendto(b'long', (2, 7200))", wrapped_env(vsw_lib, long_ns))
    assert _finish(server).strip() == "long"


@pytest.mark.parametrize("length", [71, 100])
def test_bound_name_carries_the_whole_prefix(vsw_lib: str, length: int) -> None:
    """The AF_UNIX name is "\\0vsock_wrapper/<namespace>/<cid>/<port>" in full, for the
    longest namespace kept as it is (71 bytes) and for a folded one."""
    ns = unique_namespace("x")
    ns += "y" * (length - len(ns))
    out = run_py(PRELUDE + textwrap.dedent("""
        s = vs(4294967294)
        with open("/proc/net/unix") as f:
            names = [line.split()[-1] for line in f if "vsock_wrapper/" in line]
        import json
        mine = [n for n in names if n.endswith("/2/4294967294") and sys.argv[1][:50] in n]
        print(json.dumps(mine))
    """), wrapped_env(vsw_lib, ns), args=[ns]).stdout.strip()
    names = json.loads(out)
    assert len(names) == 1, out
    name = names[0]
    expected_ns = ns if length <= 71 else ns[:50] + "#"
    assert name.startswith("@vsock_wrapper/" + expected_ns), name
    assert len(name) <= 108, name


REGRESS_CASES = ["close_range_race", "stale_fd_not_bound", "so_peername", "raw_fork_child",
                 "sendmmsg_negative_namelen", "readv_null_iov", "recvmmsg_time_left"]


@pytest.fixture(scope="module")
def regress_output(vsw_lib: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """tests/c/wrapper_regress.c (review findings), built and run once under the wrapper."""
    exe = tmp_path_factory.mktemp("regress") / "wrapper_regress"
    src = Path(__file__).resolve().parent / "c" / "wrapper_regress.c"
    subprocess.run([compiler(), "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread",
                    "-o", str(exe), str(src)], check=True, capture_output=True, text=True)
    proc = subprocess.run([str(exe)], env=wrapped_env(vsw_lib, unique_namespace()),
                          capture_output=True, text=True, timeout=120)
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert set(lines) == set(REGRESS_CASES), proc.stdout + proc.stderr
    return lines


@pytest.mark.parametrize("case", REGRESS_CASES)
def test_review_regression(case: str, regress_output: dict[str, str]) -> None:
    assert regress_output[case] == "ok", regress_output[case]
