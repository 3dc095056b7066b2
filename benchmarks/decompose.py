#!/usr/bin/env python3
"""decompose: what each side of cando's Python layer adds over the bare C calls.

One side at a time goes through the Python layer while the other makes the
bare cffi call (``cando._cando.lib`` on prepared cdata), so the difference to
the all-bare loop is that side's Python cost, per datagram. Same transport and
interleaving as bench_py (it re-runs itself under vsock_wrapper when needed);
64-byte datagrams, ``--batch`` per batch call (64 needs a queue that holds 64:
see README.md, *Batches of 64*).

Usage: decompose.py [--batch B] [--rounds N] [--count DATAGRAMS_PER_ROUND]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
from typing import Callable, Dict

import cando
from cando import _batch
from cando._cando import ffi, lib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_py import BareBatch, bare_batch_loop, interleaved, need_transport

PAYLOAD = b"x" * 64
NULL = ffi.NULL
BUFSIZE = 65536


def per_datagram() -> Dict[str, Callable[[int], None]]:
    srv = cando.Server(port=-1)
    cli = cando.Client(cando.local_cid(), srv.port)
    buf = cando.Buffer(BUFSIZE)
    inst, fd, cbuf, size = cli._instance, srv.fileno(), buf._cdata, len(PAYLOAD)
    bare_send, bare_recv = lib.udo_vsock_udp_client_send_data, lib.udo_vsock_udp_recv_data
    send, recv, recv_into = cli.send, srv.recv, srv.recv_into

    def bare(n: int) -> None:
        for _ in range(n):
            bare_send(inst, PAYLOAD, size, NULL)
            bare_recv(fd, cbuf, BUFSIZE, NULL, NULL)

    def py_send(n: int) -> None:
        for _ in range(n):
            send(PAYLOAD)
            bare_recv(fd, cbuf, BUFSIZE, NULL, NULL)

    def py_recv(n: int) -> None:
        for _ in range(n):
            bare_send(inst, PAYLOAD, size, NULL)
            recv(BUFSIZE)

    def py_recv_into_buffer(n: int) -> None:
        for _ in range(n):
            bare_send(inst, PAYLOAD, size, NULL)
            recv_into(buf)

    return {"bare": bare, "send": py_send, "recv": py_recv,
            "recv_into(Buffer)": py_recv_into_buffer}


def batched(b: int) -> Dict[str, Callable[[int], None]]:
    tx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    rx.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
    dest = (cando.local_cid(), rx.getsockname()[1])
    fd_tx, fd_rx = tx.fileno(), rx.fileno()
    bare = BareBatch(b, PAYLOAD, BUFSIZE, dest)
    dgrams, into = [PAYLOAD] * b, cando.Buffer(b * BUFSIZE)
    keep = (tx, rx)

    def py_send(n: int) -> None:
        for _ in range(n // b):
            _batch.send_many(fd_tx, dgrams, dest)
            bare.recv(fd_rx)

    def py_recv(n: int) -> None:
        for _ in range(n // b):
            bare.send(fd_tx)
            _batch.recv_many(fd_rx, b, BUFSIZE)

    def py_recv_into(n: int) -> None:
        assert keep
        for _ in range(n // b):
            bare.send(fd_tx)
            _batch.recv_many_into(fd_rx, into, BUFSIZE)

    return {"bare": bare_batch_loop(fd_tx, fd_rx, dest, b, PAYLOAD, BUFSIZE),
            "send_many": py_send, "recv_many": py_recv, "recv_many_into(Buffer)": py_recv_into}


def measure(name: str, loops: Dict[str, Callable[[int], None]], rounds: int, count: int) -> None:
    ns = interleaved(loops, rounds, count)
    base = statistics.median(ns["bare"])
    print(f"{name}: ns per datagram (median of {rounds}); + over the all-bare loop")
    for k, samples in ns.items():
        m = statistics.median(samples)
        print(f"  {k:<24} {m:8.0f}  {m - base:+6.0f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--count", type=int, default=19200)
    args = ap.parse_args()
    if not 1 <= args.batch <= 64 or args.count < args.batch:
        ap.error("batch in [1, 64], count >= batch")
    if not need_transport("decompose"):
        return 1
    measure("per datagram", per_datagram(), args.rounds, args.count)
    measure(f"batches of {args.batch}", batched(args.batch), args.rounds, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
