"""cando-vsock: try, inspect and emulate AF_VSOCK datagrams from the shell."""

from __future__ import annotations

import argparse
import errno
import os
import select
import socket
import sys
from typing import Sequence

from ._paths import wrapper_path
from .vsock_udp import VMADDR_CID_ANY, VMADDR_CID_HOST, Client, Server, local_cid

# Modules that provide AF_VSOCK transports; only VMCI carries datagrams.
_TRANSPORTS = {
    "vsock": "the AF_VSOCK core",
    "vmw_vsock_vmci_transport": "VMware VMCI (streams and datagrams)",
    "vmw_vsock_virtio_transport": "virtio guest (streams, seqpacket)",
    "vhost_vsock": "vhost host side (streams, seqpacket)",
    "vsock_loopback": "loopback (streams, seqpacket)",
    "hv_sock": "Hyper-V (streams)",
}

_DEMO_TIMEOUT = 5.0
_DEMO_REEXEC = "CANDO_VSOCK_DEMO_REEXEC"  # set in the environment of demo's re-exec


def _datagram_error() -> OSError | None:
    """Why this process cannot make an AF_VSOCK datagram socket, or None if it can."""
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM).close()
    except OSError as exc:
        return exc
    return None


def _wrapper_loaded() -> bool:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return any("libvsock_wrapper" in line for line in maps)


def _wrapped_env(cid: int | None = None, namespace: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = wrapper_path() + (" " + preload if preload else "")
    if cid is not None:
        env["VSOCK_WRAPPER_CID"] = str(cid)
    if namespace is not None:
        env["VSOCK_WRAPPER_NAMESPACE"] = namespace
    return env


def _wait_readable(fd: int) -> None:
    if not select.select([fd], [], [], _DEMO_TIMEOUT)[0]:
        raise TimeoutError(errno.ETIMEDOUT, f"no datagram within {_DEMO_TIMEOUT:g} s")


def _demo_exchange(count: int) -> None:
    try:
        dest_cid = local_cid()
    except OSError:
        dest_cid = VMADDR_CID_HOST  # a VMCI host with no VMs owns no CID but delivers to 2
    with Server(VMADDR_CID_ANY, -1) as server, Client(dest_cid, server.port) as client:
        print(f"server: bound to (VMADDR_CID_ANY, {server.port}), fd {server.fileno()}")
        print(f"client: sends to ({dest_cid}, {server.port})")
        for i in range(1, count + 1):
            message = f"hello {i}".encode()
            client.send(message)
            _wait_readable(server.fileno())
            data, sender = server.recvfrom(65536)
            print(f"server: received {data!r} from {sender}")
            server.sendto(data.upper(), sender)
            _wait_readable(client.fileno())
            reply, origin = client.recvfrom(65536)
            print(f"client: received {reply!r} from {origin}")
            if data != message or reply != message.upper():
                raise RuntimeError(f"datagram {i} was not delivered intact")
        print(f"demo: {count} datagrams each way, all delivered intact")


def cmd_demo(args: argparse.Namespace) -> int:
    why = _datagram_error()
    if why is not None:
        # The marker stops an endless re-exec if the preload did not take effect.
        if _wrapper_loaded() or os.environ.get(_DEMO_REEXEC):
            print(f"cando-vsock demo: even vsock_wrapper gives no datagram socket: {why}",
                  file=sys.stderr)
            return 1
        if not os.path.isfile(wrapper_path()):
            print(f"cando-vsock demo: no AF_VSOCK datagram transport ({why.strerror}) and"
                  f" vsock_wrapper is not installed ({wrapper_path()} is missing)",
                  file=sys.stderr)
            return 1
        print(f"cando-vsock demo: this kernel has no AF_VSOCK datagram transport ({why.strerror});"
              f" re-running under vsock_wrapper ({wrapper_path()})", flush=True)
        env = _wrapped_env(namespace=f"cando-demo-{os.getpid()}")
        env[_DEMO_REEXEC] = "1"
        argv = [sys.executable, "-m", "cando", "demo", "--count", str(args.count)]
        os.execve(sys.executable, argv, env)
    _demo_exchange(args.count)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("cando-vsock run: no command given (cando-vsock run -- PROGRAM ARGS)",
              file=sys.stderr)
        return 2
    env = _wrapped_env(args.cid, args.namespace)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"cando-vsock run: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaced this process


def cmd_wrapper_path(args: argparse.Namespace) -> int:
    print(wrapper_path())
    return 0


def cmd_local_cid(args: argparse.Namespace) -> int:
    try:
        print(local_cid())
    except OSError as exc:
        print(f"cando-vsock local-cid: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    dev = "/dev/vsock"
    print(f"{dev}: {'present' if os.path.exists(dev) else 'absent'}")
    loaded = [name for name in _TRANSPORTS if os.path.isdir(f"/sys/module/{name}")]
    print("vsock modules loaded: " + (", ".join(loaded) if loaded else "none"))
    for name in loaded:
        print(f"  {name}: {_TRANSPORTS[name]}")
    try:
        print(f"local CID: {local_cid()}")
    except OSError as exc:
        print(f"local CID: none ({exc.strerror})")
    why = _datagram_error()
    if why is None:
        print("AF_VSOCK datagram socket: yes")
    else:
        print(f"AF_VSOCK datagram socket: no: {errno.errorcode.get(why.errno or 0, '?')}"
              f" ({why.strerror}); only VMware's VMCI transport carries vsock datagrams")
    print(f"vsock_wrapper: {wrapper_path()}"
          f" ({'loaded in this process' if _wrapper_loaded() else 'not loaded'});"
          " run programs under it with: cando-vsock run -- PROGRAM")
    return 0 if why is None else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cando-vsock",
        description="AF_VSOCK datagram sockets: a demo, the emulated transport, and checks.",
        epilog="examples:\n"
               "  cando-vsock demo\n"
               "  cando-vsock check\n"
               "  cando-vsock run --cid 3 -- python3 my_guest.py\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command_name", required=True)

    demo = sub.add_parser("demo", help="a server and a client exchange datagrams")
    demo.add_argument("--count", type=int, default=3, help="datagrams each way (default 3)")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run a program under vsock_wrapper")
    run.add_argument("--cid", type=int, help="local CID of the program (default 2)")
    run.add_argument("--namespace", help="isolated world of the emulated transport")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS")
    run.set_defaults(func=cmd_run)

    sub.add_parser("wrapper-path", help="path of the LD_PRELOAD library").set_defaults(
        func=cmd_wrapper_path)
    sub.add_parser("local-cid", help="this machine's CID from /dev/vsock").set_defaults(
        func=cmd_local_cid)
    sub.add_parser("check", help="what this machine offers for vsock datagrams").set_defaults(
        func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))
