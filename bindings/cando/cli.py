"""cando-vsock: try, inspect and emulate AF_VSOCK datagrams from the shell.

Every command accepts ``--json`` (before or after its name): its output on
standard output becomes JSON, one object per line, each with an ``"event"``
key for the streaming commands. Exit codes are listed in :data:`EXIT_CODES`
and in ``cando-vsock --help``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import socket
import struct
import sys
import time
from typing import IO, Any, Callable, Iterator, Sequence, TypeVar

from . import _paths
from ._paths import wrapper_path
from .vsock_udp import (
    VMADDR_CID_ANY,
    VMADDR_CID_HOST,
    VMADDR_CID_HYPERVISOR,
    VMADDR_CID_LOCAL,
    Client,
    Server,
    local_cid,
)

# -- exit codes -------------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILURE = 1  # an operation failed (a send, a receive, bad input data, ...)
EXIT_USAGE = 2  # the command line is wrong (argparse uses 2 as well)
EXIT_NO_TRANSPORT = 3  # no AF_VSOCK datagram transport (ENODEV) where one is needed
EXIT_TIMEOUT = 4  # nothing arrived in time: recv/echo --timeout, ping lost datagrams
EXIT_CANNOT_EXECUTE = 126  # run: the program exists but cannot be executed
EXIT_NOT_FOUND = 127  # run: the program was not found
EXIT_INTERRUPTED = 130  # interrupted (SIGINT, Ctrl-C)
EXIT_BROKEN_PIPE = 141  # standard output closed early (128 + SIGPIPE), e.g. `| head -1`

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "operational failure (send/receive error, bad input data, no local CID)",
    EXIT_USAGE: "usage error (bad command line)",
    EXIT_NO_TRANSPORT: "no AF_VSOCK datagram transport (ENODEV): use cando-vsock run -- ...",
    EXIT_TIMEOUT: "timeout: nothing arrived in time (recv, echo), ping lost datagrams",
    EXIT_CANNOT_EXECUTE: "run: the program cannot be executed",
    EXIT_NOT_FOUND: "run: the program was not found",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "standard output was closed early",
}

# Modules that provide AF_VSOCK transports; only VMCI carries datagrams.
_TRANSPORTS = {
    "vsock": "the AF_VSOCK core",
    "vmw_vsock_vmci_transport": "VMware VMCI (streams and datagrams)",
    "vmw_vsock_virtio_transport": "virtio guest (streams, seqpacket)",
    "vhost_vsock": "vhost host side (streams, seqpacket)",
    "vsock_loopback": "loopback (streams, seqpacket)",
    "hv_sock": "Hyper-V (streams)",
}

_CID_NAMES = {
    "any": VMADDR_CID_ANY,
    "hypervisor": VMADDR_CID_HYPERVISOR,
    "local": VMADDR_CID_LOCAL,
    "host": VMADDR_CID_HOST,
}

_DEMO_TIMEOUT = 5.0
_DEMO_REEXEC = "CANDO_VSOCK_DEMO_REEXEC"  # set in the environment of demo's re-exec
_BUFSIZE = 1 << 17  # larger than any transport's datagram (VMCI: 69608 bytes)
_U32_MAX = 0xFFFFFFFF
_INT_MAX = 0x7FFFFFFF
_PING_HEADER = struct.Struct("!II")  # sequence number, this run's tag


class CommandError(Exception):
    """A failure the command reports in one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields


# -- output -----------------------------------------------------------------------------


class StdoutClosed(Exception):
    """Standard output went away (``| head -1``). Not an OSError on purpose:
    the commands' socket error handling must not take it for a network failure."""


class Output:
    """Where a command reports: text lines, or JSON lines with ``--json``."""

    def __init__(self, json_mode: bool, stream: IO[str] | None = None) -> None:
        self.json = json_mode
        self.stream = stream if stream is not None else sys.stdout

    def _write(self, line: str) -> None:
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            raise StdoutClosed from None

    def text(self, line: str) -> None:
        """A line only for the text output."""
        if not self.json:
            self._write(line)

    def event(self, event: str | None, line: str | None = None, /, **fields: Any) -> None:
        """One JSON object (``{"event": ..., **fields}``) or one line of text."""
        if self.json:
            obj = fields if event is None else {"event": event, **fields}
            self._write(json.dumps(obj))
        elif line is not None:
            self._write(line)


def _say(command: str, message: str) -> None:
    print(f"cando-vsock {command}: {message}", file=sys.stderr, flush=True)


def _errname(err: int | None) -> str:
    return errno.errorcode.get(err or 0, str(err))


def _cid_str(cid: int) -> str:
    names = {VMADDR_CID_ANY: "VMADDR_CID_ANY"}
    return names.get(cid, str(cid))


def _addr_str(cid: int, port: int) -> str:
    return f"{_cid_str(cid)}:{port}"


def _printable(data: bytes) -> str:
    """The datagram as one line of text: UTF-8, other bytes and control characters escaped."""
    parts = []
    for ch in data.decode("utf-8", "surrogateescape"):
        if 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that is not UTF-8
            parts.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch == "\\":
            parts.append("\\\\")
        elif ch.isprintable():
            parts.append(ch)
        else:
            parts.append(repr(ch)[1:-1])
    return "".join(parts)


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- argument types ---------------------------------------------------------------------

_N = TypeVar("_N", int, float)


def _int_any_base(text: str) -> int:
    return int(text, 0)  # 0x.., 0o.., 0b.. too


def _parse(text: str, parse: Callable[[str], _N], invalid: str) -> _N:
    """``parse(text)``; a ValueError becomes the argparse error ``invalid``."""
    try:
        return parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(invalid) from None


def _cid(text: str) -> int:
    if text.lower() in _CID_NAMES:
        return _CID_NAMES[text.lower()]
    value = _parse(text, _int_any_base,
                   f"invalid CID {text!r}: a number or one of {', '.join(_CID_NAMES)}")
    if not 0 <= value <= _U32_MAX:
        raise argparse.ArgumentTypeError(f"CID {value} is out of range [0, {_U32_MAX}]")
    return value


def _dest_port(text: str) -> int:
    value = _parse(text, _int_any_base, f"invalid port {text!r}")
    if not 0 <= value <= _U32_MAX:
        raise argparse.ArgumentTypeError(f"port {value} is out of range [0, {_U32_MAX}]")
    return value


def _bind_port(text: str) -> int:
    if text.lower() == "any":
        return -1
    value = _parse(text, _int_any_base, f"invalid port {text!r}")
    if not -1 <= value <= _INT_MAX:
        raise argparse.ArgumentTypeError(
            f"port {value} is out of range [-1, {_INT_MAX}] (-1: the kernel chooses)")
    return value


def _positive_int(text: str) -> int:
    value = _parse(text, int, f"invalid count {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = _parse(text, float, f"invalid number of seconds {text!r}")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _ping_size(text: str) -> int:
    value = _parse(text, int, f"invalid size {text!r}")
    if not _PING_HEADER.size <= value <= _BUFSIZE:
        raise argparse.ArgumentTypeError(
            f"size must be in [{_PING_HEADER.size}, {_BUFSIZE}], got {value}")
    return value


# -- shared helpers ---------------------------------------------------------------------


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


def _readable(fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` has a datagram; False if ``timeout`` seconds passed first."""
    return bool(select.select([fd], [], [], timeout)[0])


def _own_address(fd: int) -> tuple[int, int] | None:
    """The address the socket ``fd`` is bound to (its auto-bind after a first send)."""
    try:
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM, fileno=os.dup(fd))
    except OSError:
        return None
    try:
        cid, port = sock.getsockname()
        return int(cid), int(port)
    except OSError:
        return None
    finally:
        sock.close()


def _sent_to_itself(fd: int, cid: int, port: int) -> bool:
    """Whether ``(cid, port)`` is the sender's own address: nobody else was bound there.

    A client auto-binds on its first send; where no one holds the destination
    port, the transport may give it that very port (vsock_wrapper takes the
    lowest free one), and the datagram comes back to the sender.
    """
    own = _own_address(fd)
    if own is None or own[1] != port:
        return False
    if cid in (own[0], VMADDR_CID_LOCAL):
        return True
    try:
        return cid == local_cid()
    except OSError:
        return cid == VMADDR_CID_HOST  # a VMCI host without a CID delivers 2 to itself


def _os_failure(exc: OSError, what: str) -> CommandError:
    """The command's failure for ``exc``; ENODEV gets its own exit code and the way out."""
    name = _errname(exc.errno)
    if exc.errno == errno.ENODEV:
        argv = " ".join(["cando-vsock", *sys.argv[1:]])
        return CommandError(
            f"{what}: this kernel has no AF_VSOCK datagram transport (ENODEV);"
            f" run it under vsock_wrapper: cando-vsock run -- {argv}",
            EXIT_NO_TRANSPORT, errno=exc.errno, error=name)
    return CommandError(f"{what}: {name} ({exc.strerror or exc})", EXIT_FAILURE,
                        errno=exc.errno, error=name)


# -- demo -------------------------------------------------------------------------------


def _demo_exchange(count: int, out: Output) -> None:
    try:
        dest_cid = local_cid()
    except OSError:
        dest_cid = VMADDR_CID_HOST  # a VMCI host with no VMs owns no CID but delivers to 2
    with Server(VMADDR_CID_ANY, -1) as server, Client(dest_cid, server.port) as client:
        out.event("bound", f"server: bound to (VMADDR_CID_ANY, {server.port}),"
                  f" fd {server.fileno()}", cid=VMADDR_CID_ANY, port=server.port)
        out.event("client", f"client: sends to ({dest_cid}, {server.port})",
                  cid=dest_cid, port=server.port)
        for i in range(1, count + 1):
            message = f"hello {i}".encode()
            client.send(message)
            if not _readable(server.fileno(), _DEMO_TIMEOUT):
                raise TimeoutError(errno.ETIMEDOUT, f"no datagram within {_DEMO_TIMEOUT:g} s")
            data, sender = server.recvfrom(65536)
            out.event("server_received", f"server: received {data!r} from {sender}",
                      data=data.decode(errors="replace"), cid=sender[0], port=sender[1])
            server.sendto(data.upper(), sender)
            if not _readable(client.fileno(), _DEMO_TIMEOUT):
                raise TimeoutError(errno.ETIMEDOUT, f"no datagram within {_DEMO_TIMEOUT:g} s")
            reply, origin = client.recvfrom(65536)
            out.event("client_received", f"client: received {reply!r} from {origin}",
                      data=reply.decode(errors="replace"), cid=origin[0], port=origin[1])
            if data != message or reply != message.upper():
                raise CommandError(f"datagram {i} was not delivered intact")
        out.event("done", f"demo: {count} datagrams each way, all delivered intact",
                  count=count, intact=True)


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    why = _datagram_error()
    if why is not None:
        # The marker stops an endless re-exec if the preload did not take effect.
        if _wrapper_loaded() or os.environ.get(_DEMO_REEXEC):
            raise CommandError(f"even vsock_wrapper gives no datagram socket: {why}",
                               EXIT_NO_TRANSPORT, error=_errname(why.errno))
        if not os.path.isfile(wrapper_path()):
            raise CommandError(f"no AF_VSOCK datagram transport ({why.strerror}) and"
                               f" vsock_wrapper is not installed ({wrapper_path()} is missing)",
                               EXIT_NO_TRANSPORT, error=_errname(why.errno))
        out.event("reexec",
                  f"cando-vsock demo: this kernel has no AF_VSOCK datagram transport"
                  f" ({why.strerror}); re-running under vsock_wrapper ({wrapper_path()})",
                  reason=_errname(why.errno), wrapper=wrapper_path())
        env = _wrapped_env(namespace=f"cando-demo-{os.getpid()}")
        env[_DEMO_REEXEC] = "1"
        argv = [sys.executable, "-m", "cando", "demo", "--count", str(args.count)]
        if out.json:
            argv.append("--json")
        sys.stdout.flush()
        os.execve(sys.executable, argv, env)
    try:
        _demo_exchange(args.count, out)
    except OSError as exc:
        raise _os_failure(exc, "exchange") from None
    return EXIT_OK


# -- run, wrapper-path, local-cid, check ------------------------------------------------


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CommandError("no command given (cando-vsock run -- PROGRAM ARGS)", EXIT_USAGE)
    env = _wrapped_env(args.cid, args.namespace)
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        code = EXIT_NOT_FOUND if exc.errno in (errno.ENOENT, errno.ENOTDIR) else \
            EXIT_CANNOT_EXECUTE
        raise CommandError(f"{command[0]}: {exc.strerror}", code,
                           error=_errname(exc.errno), program=command[0]) from None
    return EXIT_OK  # not reached: exec replaced this process


def cmd_wrapper_path(args: argparse.Namespace, out: Output) -> int:
    path = wrapper_path()
    out.event(None, path, wrapper_path=path, exists=os.path.isfile(path))
    return EXIT_OK


def cmd_local_cid(args: argparse.Namespace, out: Output) -> int:
    try:
        cid = local_cid()
    except OSError as exc:
        raise CommandError(str(exc.strerror), EXIT_FAILURE, error=_errname(exc.errno),
                           local_cid=None) from None
    out.event(None, str(cid), local_cid=cid)
    return EXIT_OK


def cmd_check(args: argparse.Namespace, out: Output) -> int:
    dev = "/dev/vsock"
    present = os.path.exists(dev)
    out.text(f"{dev}: {'present' if present else 'absent'}")
    loaded = [name for name in _TRANSPORTS if os.path.isdir(f"/sys/module/{name}")]
    out.text("vsock modules loaded: " + (", ".join(loaded) if loaded else "none"))
    for name in loaded:
        out.text(f"  {name}: {_TRANSPORTS[name]}")
    cid: int | None
    try:
        cid = local_cid()
        out.text(f"local CID: {cid}")
        cid_error = None
    except OSError as exc:
        cid, cid_error = None, _errname(exc.errno)
        out.text(f"local CID: none ({exc.strerror})")
    why = _datagram_error()
    if why is None:
        out.text("AF_VSOCK datagram socket: yes")
    else:
        out.text(f"AF_VSOCK datagram socket: no: {_errname(why.errno)}"
                 f" ({why.strerror}); only VMware's VMCI transport carries vsock datagrams")
    loaded_here = _wrapper_loaded()
    out.text(f"vsock_wrapper: {wrapper_path()}"
             f" ({'loaded in this process' if loaded_here else 'not loaded'});"
             " run programs under it with: cando-vsock run -- PROGRAM")
    out.event(None, None,
              dev_vsock=present,
              modules={name: _TRANSPORTS[name] for name in loaded},
              local_cid=cid, local_cid_error=cid_error,
              datagram_socket=why is None,
              datagram_error=None if why is None else {
                  "errno": why.errno, "error": _errname(why.errno), "message": why.strerror},
              wrapper={"path": wrapper_path(), "installed": os.path.isfile(wrapper_path()),
                       "loaded": loaded_here})
    return EXIT_OK if why is None else EXIT_NO_TRANSPORT


# -- send -------------------------------------------------------------------------------


def _decode(chunk: bytes, hex_input: bool, where: str) -> bytes:
    if not hex_input:
        return chunk
    try:
        return bytes.fromhex(chunk.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CommandError(f"{where}: not hexadecimal: {_printable(chunk[:40])}") from None


def _payloads(args: argparse.Namespace) -> Iterator[bytes]:
    """The datagrams to send, in order: arguments, a file, or standard input lines."""
    if args.message:
        for i, message in enumerate(args.message, 1):
            data = _decode(os.fsencode(message), args.hex, f"message {i}")
            if not data:
                raise CommandError(f"message {i} is empty: there are no 0-byte datagrams",
                                   EXIT_USAGE)
            yield data
    elif args.file is not None:
        try:
            if args.file == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as f:
                    raw = f.read()
        except OSError as exc:
            raise CommandError(f"{args.file}: {exc.strerror}") from None
        data = _decode(raw, args.hex, args.file)
        if not data:
            raise CommandError(f"{args.file} is empty: there are no 0-byte datagrams")
        yield data
    else:
        for number, line in enumerate(sys.stdin.buffer, 1):
            line = line.rstrip(b"\r\n")
            if line.strip() if args.hex else line:  # blank lines send nothing
                yield _decode(line, args.hex, f"standard input, line {number}")


def cmd_send(args: argparse.Namespace, out: Output) -> int:
    if args.message and args.file is not None:
        raise CommandError("give messages or --file, not both", EXIT_USAGE)
    dest = _addr_str(args.cid, args.port)
    payloads = _payloads(args)
    first = next(payloads, None)  # bad input fails before the socket exists
    if first is None:
        raise CommandError("nothing to send (standard input had no non-blank line)")
    sent = 0
    try:
        with Client(args.cid, args.port) as client:
            data: bytes | None = first
            while data is not None:
                n = client.send(data)
                if sent == 0 and _sent_to_itself(client.fileno(), args.cid, args.port):
                    raise CommandError(f"send to {dest}: nobody is bound there (the datagram"
                                       " came back to this socket, bound to that address)",
                                       errno=errno.EHOSTUNREACH, error="EHOSTUNREACH")
                sent += 1
                out.event("sent", None if args.quiet else f"sent {n} bytes to {dest}",
                          cid=args.cid, port=args.port, size=n)
                data = next(payloads, None)
    except OSError as exc:
        raise _os_failure(exc, f"send to {dest}") from None
    return EXIT_OK


# -- recv, echo -------------------------------------------------------------------------


def _datagram_fields(data: bytes, sender: tuple[int, int]) -> dict[str, Any]:
    return {"cid": sender[0], "port": sender[1], "size": len(data),
            "text": _utf8_or_none(data), "hex": data.hex()}


def _serve(args: argparse.Namespace, out: Output, command: str, echo: bool) -> int:
    try:
        server = Server(args.cid, args.port)
    except OSError as exc:
        raise _os_failure(exc, f"bind {_addr_str(args.cid, args.port)}") from None
    with server:
        port = server.port
        if echo:
            out.event("bound", str(port), cid=args.cid, port=port)
        else:
            out.event("bound", None, cid=args.cid, port=port)
        _say(command, f"bound to {_addr_str(args.cid, port)}"
             + (f", {args.count} datagram(s)" if args.count else "")
             + (f", timeout {args.timeout:g} s" if args.timeout is not None else ""))
        received = 0
        while args.count is None or received < args.count:
            if not _readable(server.fileno(), args.timeout):
                raise CommandError(f"no datagram within {args.timeout:g} s"
                                   f" ({received} received)", EXIT_TIMEOUT,
                                   received=received)
            try:
                data, sender = server.recvfrom(_BUFSIZE)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise _os_failure(exc, "receive") from None
            received += 1
            who = _addr_str(*sender)
            if echo:
                try:
                    server.sendto(data, sender)
                except OSError as exc:
                    if exc.errno == errno.ENODEV:
                        raise _os_failure(exc, f"echo to {who}") from None
                    # The sender may be gone (EHOSTUNREACH): a server carries on.
                    _say(command, f"echo to {who} failed: {_errname(exc.errno)}"
                         f" ({exc.strerror})")
                    out.event("echo_failed", None, cid=sender[0], port=sender[1],
                              size=len(data), errno=exc.errno, error=_errname(exc.errno))
                else:
                    out.event("echoed", f"echoed {len(data)} bytes to {who}",
                              cid=sender[0], port=sender[1], size=len(data))
            elif out.json:
                out.event("datagram", **_datagram_fields(data, sender))
            elif args.format == "raw":
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            elif args.format == "hex":
                out.text(f"{who} {len(data)} {data.hex()}")
            else:
                out.text(f"{who} {len(data)} {_printable(data)}")
    return EXIT_OK


def cmd_recv(args: argparse.Namespace, out: Output) -> int:
    return _serve(args, out, "recv", echo=False)


def cmd_echo(args: argparse.Namespace, out: Output) -> int:
    return _serve(args, out, "echo", echo=True)


# -- ping -------------------------------------------------------------------------------


class _Progress:
    """One status line on standard error, rewritten in place (for a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def show(self, line: str) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def _ping_payload(seq: int, tag: int, size: int) -> bytes:
    head = _PING_HEADER.pack(seq, tag)
    filler = bytes((i & 0xFF) for i in range(size - len(head)))
    return head + filler


def _await_reply(client: Client, expected: bytes, deadline: float) -> tuple[int, int] | None:
    """Wait until ``deadline`` for the echo of ``expected``; its sender, or None."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not _readable(client.fileno(), remaining):
            return None
        try:
            reply, origin = client.recvfrom(_BUFSIZE)
        except (BlockingIOError, InterruptedError):
            continue
        if reply == expected:
            return origin
        # A late echo of an earlier datagram, or a stranger's: not this one.


def cmd_ping(args: argparse.Namespace, out: Output) -> int:
    dest = _addr_str(args.cid, args.port)
    tag = (os.getpid() ^ time.monotonic_ns()) & 0xFFFFFFFF
    rtts: list[float] = []
    send_errors: list[OSError] = []
    progress = _Progress(sys.stderr.isatty() if args.progress is None else args.progress)
    out.event("start", f"PING {dest}: {args.count} datagrams of {args.size} bytes",
              cid=args.cid, port=args.port, count=args.count, size=args.size)
    try:
        with Client(args.cid, args.port) as client:
            for seq in range(1, args.count + 1):
                payload = _ping_payload(seq, tag, args.size)
                sent_at = time.monotonic()
                try:
                    client.send(payload)
                except OSError as exc:
                    if exc.errno == errno.ENODEV:
                        raise _os_failure(exc, f"send to {dest}") from None
                    # The server went away (EHOSTUNREACH), a full queue, ...: a loss.
                    send_errors.append(exc)
                    out.event("lost", f"seq={seq}: send to {dest}: {_errname(exc.errno)}"
                              f" ({exc.strerror})", seq=seq, error=_errname(exc.errno))
                    sent_ok = False
                else:
                    sent_ok = True
                if sent_ok:
                    if seq == 1 and _sent_to_itself(client.fileno(), args.cid, args.port):
                        raise CommandError(f"nobody is bound at {dest} (ping's own socket"
                                           " was given that address)",
                                           errno=errno.EHOSTUNREACH, error="EHOSTUNREACH")
                    origin = _await_reply(client, payload, sent_at + args.timeout)
                    if origin is None:
                        out.event("lost", f"no reply from {dest}: seq={seq}"
                                  f" (timeout {args.timeout:g} s)", seq=seq)
                    else:
                        rtt = (time.monotonic() - sent_at) * 1000.0
                        rtts.append(rtt)
                        if not args.quiet:
                            out.event("reply", f"{args.size} bytes from {_addr_str(*origin)}:"
                                      f" seq={seq} time={rtt:.3f} ms",
                                      seq=seq, cid=origin[0], port=origin[1], size=args.size,
                                      rtt_ms=round(rtt, 3))
                progress.show(f"ping {dest}: {seq}/{args.count} sent, {len(rtts)} received,"
                              f" {seq - len(rtts)} lost")
                if seq < args.count:
                    pause = sent_at + args.interval - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)  # pacing between datagrams, not synchronisation
    except OSError as exc:
        raise _os_failure(exc, f"ping {dest}") from None
    finally:
        progress.clear()
    if len(send_errors) == args.count:  # nothing ever left: not a loss, a failure
        raise _os_failure(send_errors[-1], f"send to {dest}")
    sent, received = args.count, len(rtts)
    loss = 100.0 * (sent - received) / sent
    stats: dict[str, Any] = {"cid": args.cid, "port": args.port, "sent": sent,
                             "received": received, "lost": sent - received,
                             "loss_percent": round(loss, 1)}
    if rtts:
        stats.update(min_ms=round(min(rtts), 3), avg_ms=round(sum(rtts) / len(rtts), 3),
                     max_ms=round(max(rtts), 3))
    else:
        stats.update(min_ms=None, avg_ms=None, max_ms=None)
    out.text(f"--- {dest} ping statistics ---")
    out.text(f"{sent} sent, {received} received, {loss:g}% loss")
    if rtts:
        out.text(f"rtt min/avg/max = {stats['min_ms']:.3f}/{stats['avg_ms']:.3f}/"
                 f"{stats['max_ms']:.3f} ms")
    out.event("summary", None, **stats)
    return EXIT_OK if received == sent else EXIT_TIMEOUT


# -- the parser -------------------------------------------------------------------------

_EXIT_HELP = "exit status:\n" + "".join(
    f"  {code:<4} {meaning}\n" for code, meaning in EXIT_CODES.items())

_MAIN_EPILOG = f"""\
examples:
  cando-vsock check                                   what this machine offers
  cando-vsock demo                                    a server and a client, here
  cando-vsock run -- cando-vsock echo --count 3       an echo server, emulated transport
  cando-vsock run -- cando-vsock ping 2 PORT          round trips to it
  cando-vsock run --cid 3 -- python3 my_guest.py      any program, as CID 3
  cando-vsock --json check                            machine-readable output

C flags for the installed libcando (like numpy-config):
  cando-vsock --cflags --libs    (also python -m cando --cflags, --libs, --pkgconfigdir)
  PKG_CONFIG_PATH=$(python -m cando --pkgconfigdir) pkg-config --cflags --libs cando

CIDs: a number, or any (VMADDR_CID_ANY), hypervisor (0), local (1), host (2).
Without a kernel datagram transport (ENODEV, exit 3), run commands under
vsock_wrapper: cando-vsock run [--cid N] [--namespace NAME] -- COMMAND.

{_EXIT_HELP}"""

_SUB_HELP: dict[str, tuple[str, str, str]] = {
    # name: (one-line help, description, examples)
    "demo": ("a server and a client exchange datagrams",
             "A server and a client in this process exchange datagrams. Without a kernel\n"
             "datagram transport, demo re-runs itself once under vsock_wrapper.",
             "  cando-vsock demo\n  cando-vsock demo --count 5 --json\n"),
    "run": ("run a program under vsock_wrapper",
            "Run PROGRAM with vsock_wrapper preloaded (LD_PRELOAD): it gets AF_VSOCK\n"
            "datagram sockets carried over AF_UNIX, with the kernel's semantics.\n"
            "Exit status: the program's; 126/127 if it cannot be executed/found.",
            "  cando-vsock run -- python3 my_program.py\n"
            "  cando-vsock run --cid 3 --namespace test1 -- ./my_guest_program\n"),
    "wrapper-path": ("path of the LD_PRELOAD library",
                     "Print the absolute path of libvsock_wrapper.so.",
                     "  LD_PRELOAD=$(cando-vsock wrapper-path) ./my_program\n"
                     "  cando-vsock wrapper-path --json\n"),
    "local-cid": ("this machine's CID from /dev/vsock",
                  "Print the local CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID); exit 1 if there\n"
                  "is none.",
                  "  cando-vsock local-cid\n  cando-vsock run --cid 5 -- cando-vsock local-cid\n"),
    "check": ("what this machine offers for vsock datagrams",
              "Report /dev/vsock, the vsock modules loaded, the local CID, whether an\n"
              "AF_VSOCK datagram socket can be made, and vsock_wrapper. Exit 0 if it can,\n"
              "3 if there is no datagram transport.",
              "  cando-vsock check\n  cando-vsock --json check\n"),
    "send": ("send datagrams to CID PORT",
             "Send datagrams to (CID, PORT): one per MESSAGE argument, or the whole of\n"
             "--file as one datagram, or else one per non-blank line of standard input.\n"
             "With --hex every datagram is given in hexadecimal (spaces allowed).",
             "  cando-vsock send 2 5000 hello world            two datagrams\n"
             "  printf 'a\\nb\\n' | cando-vsock send 2 5000      one per line\n"
             "  cando-vsock send --file msg.bin 2 5000          one datagram\n"
             "  cando-vsock send --hex 2 5000 'de ad be ef'\n"),
    "recv": ("receive and print datagrams",
             "Bind (--cid, PORT) and print each datagram with its sender and size:\n"
             "  text: CID:PORT SIZE TEXT (control characters escaped)\n"
             "  hex:  CID:PORT SIZE HEX\n"
             "  raw:  the bytes only, as received\n"
             "  json: {\"event\": \"datagram\", \"cid\", \"port\", \"size\", \"text\", \"hex\"}\n"
             "   (after {\"event\": \"bound\", \"cid\", \"port\"} as the first line).\n"
             "A line 'cando-vsock recv: bound to CID:PORT' goes to standard error once the\n"
             "socket is bound. Exit 4 if --timeout passes without a datagram.",
             "  cando-vsock recv 5000\n"
             "  cando-vsock recv --count 1 --timeout 5 --format raw 5000 > datagram.bin\n"
             "  cando-vsock recv --json --cid any\n"),
    "echo": ("an echo server: send every datagram back",
             "Bind (--cid, PORT) and send every datagram back to its sender. The first\n"
             "line of standard output is the bound port (with --json: {\"event\":\n"
             "\"bound\", \"cid\", \"port\"}), then one line per datagram echoed.",
             "  cando-vsock echo 5000\n"
             "  cando-vsock echo --count 10 | { read port; cando-vsock ping 2 $port; }\n"),
    "ping": ("round trips to an echo server",
             "Send --count datagrams of --size bytes to an echo server at (CID, PORT),\n"
             "one every --interval seconds, wait up to --timeout for each echo, and\n"
             "report min/avg/max round-trip times and the loss. A progress line is\n"
             "shown on standard error when it is a terminal. Exit 0 if every datagram\n"
             "came back, 4 if some were lost.",
             "  cando-vsock ping 2 5000\n"
             "  cando-vsock ping --count 100 --interval 0 --size 4096 2 5000\n"
             "  cando-vsock ping --json --quiet 2 5000\n"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cando-vsock",
        description="AF_VSOCK datagram sockets from the shell: send, receive, echo, ping,\n"
                    "a demo, checks, and vsock_wrapper, the emulated transport.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true",
                        help="JSON output (one object per line) for any command")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="JSON output, one object per line")
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    def add(name: str) -> argparse.ArgumentParser:
        short, description, examples = _SUB_HELP[name]
        return sub.add_parser(name, parents=[common], help=short, description=description,
                              epilog="examples:\n" + examples,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    demo = add("demo")
    demo.add_argument("--count", type=_positive_int, default=3,
                      help="datagrams each way (default 3)")
    demo.set_defaults(func=cmd_demo)

    run = add("run")
    run.add_argument("--cid", type=int, help="local CID of the program (default 2)")
    run.add_argument("--namespace", help="isolated world of the emulated transport")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS")
    run.set_defaults(func=cmd_run)

    add("wrapper-path").set_defaults(func=cmd_wrapper_path)
    add("local-cid").set_defaults(func=cmd_local_cid)
    add("check").set_defaults(func=cmd_check)

    send = add("send")
    send.add_argument("cid", type=_cid, metavar="CID", help="destination CID")
    send.add_argument("port", type=_dest_port, metavar="PORT", help="destination port")
    send.add_argument("message", nargs="*", metavar="MESSAGE", help="one datagram each")
    send.add_argument("--file", "-f", metavar="PATH",
                      help="send the file's content as one datagram ('-': standard input)")
    send.add_argument("--hex", action="store_true", help="the input is hexadecimal")
    send.add_argument("--quiet", "-q", action="store_true", help="print nothing (text mode)")
    send.set_defaults(func=cmd_send)

    for name in ("recv", "echo"):
        server = add(name)
        server.add_argument("port", type=_bind_port, nargs="?", default=-1, metavar="PORT",
                            help="port to bind (default: any, the kernel chooses)")
        server.add_argument("--cid", type=_cid, default=VMADDR_CID_ANY,
                            help="CID to bind: any (default) or the local CID")
        server.add_argument("--count", "-c", type=_positive_int,
                            help="stop after N datagrams (default: never)")
        server.add_argument("--timeout", "-t", type=_seconds,
                            help="exit 4 when no datagram arrives for S seconds")
        if name == "recv":
            server.add_argument("--format", choices=("text", "hex", "raw", "json"),
                                default="text", help="how to print datagrams (default text)")
        server.set_defaults(func=cmd_recv if name == "recv" else cmd_echo)

    ping = add("ping")
    ping.add_argument("cid", type=_cid, metavar="CID", help="the echo server's CID")
    ping.add_argument("port", type=_dest_port, metavar="PORT", help="the echo server's port")
    ping.add_argument("--count", "-c", type=_positive_int, default=5,
                      help="datagrams to send (default 5)")
    ping.add_argument("--size", "-s", type=_ping_size, default=56,
                      help="bytes per datagram (default 56)")
    ping.add_argument("--interval", "-i", type=_seconds, default=0.2,
                      help="seconds between sends (default 0.2)")
    ping.add_argument("--timeout", "-W", type=_seconds, default=1.0,
                      help="seconds to wait for each echo (default 1)")
    ping.add_argument("--quiet", "-q", action="store_true",
                      help="only the summary, no line per reply")
    ping.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="progress line on standard error (default: if it is a terminal)")
    ping.set_defaults(func=cmd_ping)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


# -- config flags (numpy-config style) --------------------------------------------------

_CONFIG_FLAGS = {
    "--cflags": _paths.get_cflags,
    "--libs": _paths.get_libs,
    "--pkgconfigdir": _paths.get_pkgconfig_dir,
}


def _config(argv: Sequence[str]) -> int | None:
    """``--cflags``/``--libs``/``--pkgconfigdir``: one line, before any subcommand."""
    if not argv or argv[0] not in _CONFIG_FLAGS:
        return None
    unknown = [arg for arg in argv if arg not in _CONFIG_FLAGS]
    if unknown:
        print(f"usage: cando-vsock [--cflags] [--libs] [--pkgconfigdir]\n"
              f"cando-vsock: error: unrecognized arguments: {' '.join(unknown)}",
              file=sys.stderr)
        return EXIT_USAGE
    print(" ".join(_CONFIG_FLAGS[arg]() for arg in argv))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    code = _config(argv)
    if code is not None:
        return code
    args = _parser().parse_args(argv)
    out = Output(bool(args.json))
    try:
        try:
            return int(args.func(args, out))
        except CommandError as exc:
            if out.json:
                out.event("error", None, command=args.command_name, message=str(exc),
                          exit_code=exc.code, **exc.fields)
            _say(args.command_name, str(exc))
            return exc.code
        except TimeoutError as exc:
            _say(args.command_name, exc.strerror or str(exc))
            return EXIT_TIMEOUT
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    except (StdoutClosed, BrokenPipeError):
        # Quiet exit when a reader such as `head` went away; no flush error at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
