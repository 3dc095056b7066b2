"""cando interoperates with vsock datagram code we did not write.

Python's own ``socket`` module (``socket.AF_VSOCK``, ``socket.SOCK_DGRAM``) and
socat, both under vsock_wrapper, exchange datagrams with cando in both
directions, in one process and across processes with different CIDs.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
from wrapper_helpers import finish, next_line

from cando import VMADDR_CID_ANY, VMADDR_CID_HOST, Client, Server

WAIT = 5.0
TIMEOUT = 60
SCRIPT = str(Path(sys.executable).parent / "cando-vsock")


def _wait_readable(fd: int) -> None:
    if not select.select([fd], [], [], WAIT)[0]:
        raise TimeoutError(f"no datagram on fd {fd} within {WAIT} s")


# -- one process (the wrapped worker) ---------------------------------------------------


def w_socket_to_cando_server() -> dict[str, Any]:
    """A plain socket sends to a cando Server, which replies to the reported sender."""
    with Server(VMADDR_CID_ANY, -1) as srv, \
            socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM) as sock:
        sent = sock.sendto(b"from socket", (VMADDR_CID_HOST, srv.port))
        sock_port = sock.getsockname()[1]
        _wait_readable(srv.fileno())
        data, sender = srv.recvfrom(100)
        srv.sendto(data.upper(), sender)
        sock.settimeout(WAIT)
        reply = sock.recvfrom(100)
        return {"sent": sent, "sock_port": sock_port, "srv_port": srv.port,
                "srv_got": (data, sender), "sock_got": (reply[0], tuple(reply[1]))}


def w_cando_client_to_socket_server() -> dict[str, Any]:
    """A cando Client sends to a plain socket server, which replies to the sender."""
    with socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM) as sock:
        sock.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
        sock.settimeout(WAIT)
        sock_port = sock.getsockname()[1]
        with Client(VMADDR_CID_HOST, sock_port) as cli:
            sent = cli.send(b"from cando")
            cli_name = socket.socket(fileno=os.dup(cli.fileno()))
            cli_port = cli_name.getsockname()[1]
            cli_name.close()
            data, sender = sock.recvfrom(100)
            sock.sendto(data.upper(), sender)
            _wait_readable(cli.fileno())
            reply = cli.recvfrom(100)
            # And a connected cando client, sending without an address.
            cli.connect()
            cli.send(b"connected")
            again = sock.recvfrom(100)
        return {"sent": sent, "sock_port": sock_port, "cli_port": cli_port,
                "sock_got": (data, tuple(sender)), "cli_got": reply,
                "again": (again[0], tuple(again[1]))}


def test_plain_socket_to_cando_server_in_one_process(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_socket_to_cando_server)
    assert out["sent"] == len(b"from socket")
    assert out["sock_port"] >= 1024
    assert out["srv_got"] == (b"from socket", (VMADDR_CID_HOST, out["sock_port"]))
    assert out["sock_got"] == (b"FROM SOCKET", (VMADDR_CID_HOST, out["srv_port"]))


def test_cando_client_to_plain_socket_server_in_one_process(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_cando_client_to_socket_server)
    assert out["sent"] == len(b"from cando")
    assert out["cli_port"] >= 1024 and out["cli_port"] != out["sock_port"]
    assert out["sock_got"] == (b"from cando", (VMADDR_CID_HOST, out["cli_port"]))
    assert out["cli_got"] == (b"FROM CANDO", (VMADDR_CID_HOST, out["sock_port"]))
    assert out["again"] == (b"connected", (VMADDR_CID_HOST, out["cli_port"]))


# -- two processes, two CIDs -----------------------------------------------------------------

# Echo servers: print the bound port, take one datagram, print it (without a final
# newline) and its sender,
# reply with it upper-cased, exit. They give up on their own after 20 s.
SERVERS = {
    "socket": textwrap.dedent("""
        import select, socket, sys
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        s.bind((socket.VMADDR_CID_ANY, int(sys.argv[1])))
        print(s.getsockname()[1], flush=True)
        if not select.select([s], [], [], 20)[0]:
            sys.exit("server: nothing arrived")
        data, (cid, port) = s.recvfrom(100)
        print(data.decode().rstrip("\\n"), cid, port, flush=True)
        s.sendto(data.upper(), (cid, port))
    """),
    "cando": textwrap.dedent("""
        import select, sys
        from cando import Server, VMADDR_CID_ANY
        with Server(VMADDR_CID_ANY, int(sys.argv[1])) as s:
            print(s.port, flush=True)
            if not select.select([s], [], [], 20)[0]:
                sys.exit("server: nothing arrived")
            data, (cid, port) = s.recvfrom(100)
            print(data.decode().rstrip("\\n"), cid, port, flush=True)
            s.sendto(data.upper(), (cid, port))
    """),
}

# Clients: send argv[3] to (argv[1], argv[2]); print own port, then the reply and its sender.
CLIENTS = {
    "socket": textwrap.dedent("""
        import socket, sys
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        s.sendto(sys.argv[3].encode(), (int(sys.argv[1]), int(sys.argv[2])))
        print(s.getsockname()[1], flush=True)
        s.settimeout(20)
        data, (cid, port) = s.recvfrom(100)
        print(data.decode(), cid, port, flush=True)
    """),
    "cando": textwrap.dedent("""
        import os, select, socket, sys
        from cando import Client
        with Client(int(sys.argv[1]), int(sys.argv[2])) as c:
            c.send(sys.argv[3].encode())
            with socket.socket(fileno=os.dup(c.fileno())) as name:
                print(name.getsockname()[1], flush=True)
            if not select.select([c], [], [], 20)[0]:
                sys.exit("client: no reply")
            data, (cid, port) = c.recvfrom(100)
            print(data.decode(), cid, port, flush=True)
    """),
}


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


PAIRS = [
    # (server kind, server CID, client kind, client CID)
    ("socket", 3, "cando", 2),
    ("cando", 3, "socket", 2),
    ("socket", 2, "cando", 3),
    ("cando", 2, "socket", 3),
]


@pytest.mark.parametrize(("server_kind", "server_cid", "client_kind", "client_cid"), PAIRS,
                         ids=[f"{s}@{sc}<-{c}@{cc}" for s, sc, c, cc in PAIRS])
def test_two_processes_two_cids(wrapped_env: Callable[..., dict[str, str]], server_kind: str,
                                server_cid: int, client_kind: str, client_cid: int) -> None:
    server = start([sys.executable, "-c", SERVERS[server_kind], "-1"], wrapped_env(server_cid))
    try:
        port = int(next_line(server))
        assert port >= 1024
        client = subprocess.run(
            [sys.executable, "-c", CLIENTS[client_kind], str(server_cid), str(port), "hi there"],
            env=wrapped_env(client_cid), capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        status, server_out, server_err = finish(server)
    assert client.returncode == 0, client.stderr
    assert status == 0, server_err
    client_port, reply = client.stdout.splitlines()
    # (The port line was read already.) The server saw the client's CID and port.
    assert server_out.splitlines() == [f"hi there {client_cid} {client_port}"]
    assert reply == f"HI THERE {server_cid} {port}"


# -- the acceptance line -----------------------------------------------------------------

ACCEPTANCE_CLIENT = textwrap.dedent("""
    import socket
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    s.settimeout(20)
    s.sendto(b"hello from plain socket", (2, PORT))
    data, addr = s.recvfrom(1024)
    print(data.decode(), addr)
""")


def test_cando_vsock_run_lets_plain_socket_code_talk_to_cando(namespace: str,
                                                              wrapper_lib: str) -> None:
    """``cando-vsock run -- python3 -c '...'``: plain socket code gets a cando server's reply."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith("VSOCK_WRAPPER_")}
    python3 = shutil.which("python3") or sys.executable  # the stdlib is all it needs
    server = start([SCRIPT, "run", "--namespace", namespace, "--", sys.executable, "-c",
                    SERVERS["cando"], "-1"], env)
    try:
        port = int(next_line(server))
        client = subprocess.run(
            [SCRIPT, "run", "--namespace", namespace, "--", python3, "-c",
             ACCEPTANCE_CLIENT.replace("PORT", str(port))],
            env=env, capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        status, server_out, server_err = finish(server)
    assert client.returncode == 0, client.stderr
    assert status == 0, server_err
    assert client.stdout == f"HELLO FROM PLAIN SOCKET (2, {port})\n"
    [line] = server_out.splitlines()  # after the port line, read already
    got, cid, sender_port = line.rsplit(" ", 2)
    assert (got, cid) == ("hello from plain socket", "2")
    assert int(sender_port) >= 1024 and int(sender_port) != port


# -- socat -----------------------------------------------------------------------------------------


def socat_address(cid: int, port: int) -> str:
    """socat's generic form of a ``struct sockaddr_vm``: the bytes after ``svm_family``."""
    # svm_reserved1 (u16), svm_port (u32), svm_cid (u32), svm_flags + svm_zero[3]
    return "x" + struct.pack("=HII4x", 0, port, cid).hex()


@pytest.fixture(scope="module")
def socat() -> str:
    path = shutil.which("socat")
    if path is None:
        pytest.skip("socat is not installed")
    usage = subprocess.run([path, "-h"], capture_output=True, text=True, timeout=TIMEOUT).stdout
    # socat has no vsock datagram address of its own (vsock-connect/-listen are streams),
    # but its generic socket addresses carry any family, AF_VSOCK (40) included.
    if "socket-datagram:" not in usage or "socket-recvfrom:" not in usage:
        pytest.skip("this socat has no generic socket-datagram/socket-recvfrom addresses")
    return path


def test_socat_sends_to_cando_server_and_gets_the_reply(
        socat: str, wrapped_env: Callable[..., dict[str, str]]) -> None:
    server = start([sys.executable, "-c", SERVERS["cando"], "-1"], wrapped_env())
    peer = None
    try:
        port = int(next_line(server))
        peer = subprocess.Popen(
            [socat, "-T", "20", "STDIO",
             f"SOCKET-DATAGRAM:40:{socket.SOCK_DGRAM}:0:{socat_address(2, port)}"],
            env=wrapped_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        assert peer.stdin is not None
        peer.stdin.write("hello socat\n")
        peer.stdin.flush()
        reply = next_line(peer)
    finally:
        status, server_out, server_err = finish(server)
        if peer is not None:
            finish(peer, kill=True)
    assert status == 0, server_err
    assert reply == "HELLO SOCAT"
    # recvfrom named socat's (cid, port): the host CID and the port socat's send auto-bound.
    [line] = server_out.splitlines()  # after the port line, read already
    got, cid, sender_port = line.rsplit(" ", 2)
    assert (got, cid) == ("hello socat", "2")
    assert int(sender_port) >= 1024 and int(sender_port) != port


def test_cando_client_to_socat_server(socat: str,
                                      wrapped_env: Callable[..., dict[str, str]]) -> None:
    port = 4242  # fixed: the world is this test's own
    # socat receives one datagram, pipes it through cat and sends cat's output back.
    peer = start([socat, "-d", "-d", "-T", "20",
                  f"SOCKET-RECVFROM:40:{socket.SOCK_DGRAM}:0:{socat_address(VMADDR_CID_ANY, port)}",
                  "EXEC:cat"], wrapped_env())
    try:
        # socat logs "receiving on AF=40 ..." once its socket is bound: then it is ready.
        for _ in range(50):
            line = next_line(peer, "stderr")
            if "receiving on" in line:
                break
        else:
            raise AssertionError("socat never said it was receiving")
        client = subprocess.run(
            [sys.executable, "-c", CLIENTS["cando"], "2", str(port), "echo me"],
            env=wrapped_env(), capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        finish(peer, kill=True)
    assert client.returncode == 0, client.stderr
    client_port, reply = client.stdout.splitlines()
    assert int(client_port) >= 1024
    assert reply == f"echo me 2 {port}"  # cat echoes it unchanged; the sender is socat's port
