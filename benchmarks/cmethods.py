#!/usr/bin/env python3
"""cmethods: what C-level methods would give, against cando's and the stdlib's.

Builds ``cmethods.c`` (a throwaway CPython extension calling libcando) against
the installed wheel into a temporary directory, then times, interleaved in one
process on the same transport (under vsock_wrapper when the kernel has none):

    socket          socket.sendto + socket.recvfrom        (the stdlib)
    cando           Client.send + Server.recv
    cando_buffer    Client.send + Server.recv_into(cando.Buffer)
    c_recv          cmethods.send + cmethods.recv           (C-level, bytes result)
    c_recv_into     cmethods.send + cmethods.recv_into      (C-level, into a bytearray)

Not product code: it answers "what would a hand-written extension type buy".

Usage: cmethods.py [--rounds N] [--count DATAGRAMS_PER_ROUND]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from typing import Any, Callable, Dict

import cando
from cando._cando import ffi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_py import interleaved, need_transport

PAYLOAD = b"x" * 64
BUFSIZE = 65536


def build(outdir: str) -> Any:
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cmethods.c")
    out = os.path.join(outdir, "cmethods" + sysconfig.get_config_var("EXT_SUFFIX"))
    libdir = cando.get_library_dir()
    subprocess.run([os.environ.get("CC", "cc"), "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                    "-O2", "-shared", "-fPIC",
                    "-I" + sysconfig.get_paths()["include"], "-I" + cando.get_include(),
                    src, "-L" + libdir, "-Wl,-rpath," + libdir, "-lcando", "-o", out],
                   check=True)
    spec = importlib.util.spec_from_file_location("cmethods", out)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loops(cm: Any) -> Dict[str, Callable[[int], None]]:
    srv = cando.Server(port=-1)
    cid = cando.local_cid()
    cli = cando.Client(cid, srv.port)
    tx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    rx.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
    dest = (cid, rx.getsockname()[1])
    inst, fd = int(ffi.cast("uintptr_t", cli._instance)), srv.fileno()
    buf, array = cando.Buffer(BUFSIZE), bytearray(BUFSIZE)
    keep = (srv, cli, tx, rx)

    def stdlib(n: int) -> None:
        send, recv = tx.sendto, rx.recvfrom
        for _ in range(n):
            send(PAYLOAD, dest)
            recv(BUFSIZE)

    def cando_recv(n: int) -> None:
        send, recv = cli.send, srv.recv
        for _ in range(n):
            send(PAYLOAD)
            recv(BUFSIZE)

    def cando_buffer(n: int) -> None:
        send, recv_into = cli.send, srv.recv_into
        for _ in range(n):
            send(PAYLOAD)
            recv_into(buf)

    def c_recv(n: int) -> None:
        assert keep
        send, recv = cm.send, cm.recv
        for _ in range(n):
            send(inst, PAYLOAD)
            recv(fd, BUFSIZE)

    def c_recv_into(n: int) -> None:
        send, recv_into = cm.send, cm.recv_into
        for _ in range(n):
            send(inst, PAYLOAD)
            recv_into(fd, array)

    return {"socket": stdlib, "cando": cando_recv, "cando_buffer": cando_buffer,
            "c_recv": c_recv, "c_recv_into": c_recv_into}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--count", type=int, default=20000)
    args = ap.parse_args()
    if not need_transport("cmethods"):
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        runs = loops(build(tmp))
    ns = interleaved(runs, args.rounds, args.count)
    print(f"64 B send + receive, ns per datagram (median of {args.rounds}); "
          "throughput vs socket (median of per-round ratios)")
    for k, samples in ns.items():
        ratio = statistics.median(a / b for a, b in zip(ns["socket"], samples, strict=True))
        print(f"  {k:<14} {statistics.median(samples):7.0f}  {ratio:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
