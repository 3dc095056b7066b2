#!/usr/bin/env python3
"""bench_py: cando's Python API against Python's socket module, side by side.

Every variant moves datagrams from a sender to a receiver in this one thread
(send, then receive; a batch variant sends B, then receives B), over the same
transport: AF_VSOCK datagrams, under vsock_wrapper when the kernel has none
(the script then re-runs itself under it). Rounds interleave the variants;
each figure is the median of the rounds, each ratio the median of per-round
ratios (pairs measured back to back).

    socket           socket.sendto + socket.recvfrom          (the stdlib)
    socket_into      socket.sendto + socket.recv_into         (the stdlib, no copy)
    cando            Client.send + Server.recv
    cando_recvfrom   Client.send + Server.recvfrom
    cando_sendto     Client.sendto + Server.recvfrom          (the stdlib's two calls)
    cando_into       Client.send + Server.recv_into(bytearray) (zero-copy)
    cando_buffer     Client.send + Server.recv_into(cando.Buffer) (zero-copy,
                     no object made per call)
    batch            _batch.send_many + _batch.recv_many      (B per call)
    batch_into       _batch.send_many + _batch.recv_many_into (B per call, zero-copy)
    cffi_bare        the C calls cando's send + recv_into make, straight from
                     cando._cando.lib on prepared cdata: no Python layer (the
                     ceiling of any cffi binding)
    batch_bare       the same for the batch calls (send_batch + recv_batch)
    c_raw            bench_c's vsock_raw: C sendto + recvfrom (--bench-c; a
                     subprocess per round on the same transport)

Usage: bench_py.py [--sizes 0,64,...] [--rounds N] [--min-ms MS] [--batch B]
                   [--bench-c PATH] [--json FILE] [--no-alloc-check]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any, Callable, Dict, List

import cando
from cando import _batch
from cando._cando import ffi, lib

SIZES = [0, 64, 256, 1024, 4096, 16384, 65536]
MAX_PAYLOAD = 65536
VARIANTS = ["socket", "socket_into", "cando", "cando_recvfrom", "cando_sendto", "cando_into",
            "cando_buffer", "batch", "batch_into", "cffi_bare", "batch_bare"]
# (name, numerator, denominator): a throughput ratio is den_time / num_time.
RATIOS = [
    ("cando_vs_socket", "cando", "socket"),                   # target >= 1.0
    ("cando_recvfrom_vs_socket", "cando_recvfrom", "socket"),
    ("cando_sendto_vs_socket", "cando_sendto", "socket"),     # the same two calls
    ("cando_into_vs_socket", "cando_into", "socket"),         # target >= 1.15
    ("cando_into_vs_socket_into", "cando_into", "socket_into"),
    ("cando_buffer_vs_socket", "cando_buffer", "socket"),           # target >= 1.15
    ("cando_buffer_vs_socket_into", "cando_buffer", "socket_into"),
    ("batch_vs_socket", "batch", "socket"),                   # target >= 1.5
    ("batch_into_vs_socket", "batch_into", "socket"),
    ("cffi_bare_vs_socket", "cffi_bare", "socket"),            # the ceiling, per datagram
    ("batch_bare_vs_socket", "batch_bare", "socket"),          # the ceiling, batched
    ("batch_vs_c_raw", "batch", "c_raw"),                     # target: time <= 1.2x
    ("batch_into_vs_c_raw", "batch_into", "c_raw"),
]

Loop = Callable[[int], None]


def _transport_ok() -> bool:
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM).close()
        return True
    except OSError:
        return False


def need_transport(prog: str) -> bool:
    """True when this process has AF_VSOCK datagrams. Without them it re-runs
    itself under vsock_wrapper (no return); already preloaded, it says so and
    returns False."""
    if _transport_ok():
        return True
    if "LD_PRELOAD" in os.environ:
        print(f"{prog}: no AF_VSOCK datagram transport, even preloaded", file=sys.stderr)
        return False
    env = dict(os.environ)
    env["LD_PRELOAD"] = cando.wrapper_path()
    env.setdefault("VSOCK_WRAPPER_NAMESPACE", f"bench-{os.getpid()}")
    print(f"{prog}: no AF_VSOCK datagram transport; re-running under vsock_wrapper",
          file=sys.stderr)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def interleaved(loops: Dict[str, Loop], rounds: int, count: int) -> Dict[str, List[float]]:
    """ns per datagram of each loop, ``count`` datagrams a round, the loops
    taking turns within every round (after one warm-up run each)."""
    for run in loops.values():
        run(max(count // 10, 1))
    ns: Dict[str, List[float]] = {k: [] for k in loops}
    for _ in range(rounds):
        for k, run in loops.items():
            ns[k].append(_time(run, count))
    return ns


class Bench:
    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.srv = cando.Server(port=-1)
        self.dest = (_local_cid(), self.srv.port)
        self.cli = cando.Client(*self.dest)
        self.stx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        self.srx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        self.srx.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
        self.sdest = (self.dest[0], self.srx.getsockname()[1])
        self.btx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        self.brx = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
        self.brx.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY))
        self.bdest = (self.dest[0], self.brx.getsockname()[1])
        for s in (self.stx, self.btx):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self.buf = bytearray(MAX_PAYLOAD)
        self.cbuf = cando.Buffer(MAX_PAYLOAD)
        self.bbuf = bytearray(MAX_PAYLOAD * batch)

    def close(self) -> None:
        for s in (self.stx, self.srx, self.btx, self.brx):
            s.close()
        self.cli.close()
        self.srv.close()

    def applies(self, variant: str, size: int) -> bool:
        # The C API sends no 0-byte datagrams (-EINVAL, documented).
        return size > 0 or variant.startswith("socket")

    def loop(self, variant: str, size: int) -> Loop:
        payload = b"x" * size
        bufsize = MAX_PAYLOAD
        b = self.batch
        if variant == "socket":
            tx, rx, dest = self.stx, self.srx, self.sdest

            def run(n: int) -> None:
                sendto, recvfrom = tx.sendto, rx.recvfrom
                for _ in range(n):
                    sendto(payload, dest)
                    recvfrom(bufsize)
        elif variant == "socket_into":
            tx, rx, dest, buf = self.stx, self.srx, self.sdest, self.buf

            def run(n: int) -> None:
                sendto, recv_into = tx.sendto, rx.recv_into
                for _ in range(n):
                    sendto(payload, dest)
                    recv_into(buf)
        elif variant == "cando_sendto":
            sendto, recvfrom, dest = self.cli.sendto, self.srv.recvfrom, self.dest

            def run(n: int) -> None:
                for _ in range(n):
                    sendto(payload, dest)
                    recvfrom(bufsize)
        elif variant in ("cando", "cando_recvfrom", "cando_into", "cando_buffer"):
            send = self.cli.send
            recv_fn: Callable[[Any], Any] = {
                "cando": self.srv.recv, "cando_recvfrom": self.srv.recvfrom,
                "cando_into": self.srv.recv_into, "cando_buffer": self.srv.recv_into}[variant]
            arg: Any = {"cando_into": self.buf, "cando_buffer": self.cbuf}.get(variant, bufsize)

            def run(n: int) -> None:
                for _ in range(n):
                    send(payload)
                    recv_fn(arg)
        elif variant in ("batch", "batch_into"):
            fd_tx, fd_rx, dest = self.btx.fileno(), self.brx.fileno(), self.bdest
            dgrams = [payload] * b
            send_many = _batch.send_many
            if variant == "batch":
                recv_many = _batch.recv_many

                def run(n: int) -> None:
                    for _ in range(n // b):
                        send_many(fd_tx, dgrams, dest)
                        recv_many(fd_rx, b, bufsize)
            else:
                into, bbuf = _batch.recv_many_into, self.bbuf

                def run(n: int) -> None:
                    for _ in range(n // b):
                        send_many(fd_tx, dgrams, dest)
                        into(fd_rx, bbuf, bufsize)
        elif variant == "cffi_bare":
            run = self._cffi_bare(payload, bufsize)
        elif variant == "batch_bare":
            run = self._batch_bare(payload, bufsize)
        else:
            raise ValueError(variant)
        return run

    def _cffi_bare(self, payload: bytes, bufsize: int) -> Loop:
        send, recv = lib.udo_vsock_udp_client_send_data, lib.udo_vsock_udp_recv_data
        inst, fd, buf, size = self.cli._instance, self.srv.fileno(), self.cbuf._cdata, len(payload)
        NULL = ffi.NULL
        assert send(inst, payload, size, NULL) == size
        assert recv(fd, buf, bufsize, NULL, NULL) == size

        def run(n: int) -> None:
            for _ in range(n):
                send(inst, payload, size, NULL)
                recv(fd, buf, bufsize, NULL, NULL)
        return run

    def _batch_bare(self, payload: bytes, bufsize: int) -> Loop:
        return bare_batch_loop(self.btx.fileno(), self.brx.fileno(), self.bdest, self.batch,
                               payload, bufsize)


class BareBatch:
    """Arrays for send_batch + recv_batch of ``b`` datagrams straight from
    ``lib`` (no Python layer): what the batch variants cost at best."""

    def __init__(self, b: int, payload: bytes, bufsize: int, dest: tuple[int, int]) -> None:
        self.b, self.payload = b, payload
        self.tx = ffi.new("struct udo_vsock_udp_dgram[]", b)
        self.rx = ffi.new("struct udo_vsock_udp_dgram[]", b)
        self.data = ffi.new("char[]", b * bufsize)
        self.addrs = ffi.new("struct sockaddr_vm[]", b)
        for i in range(b):
            self.tx[i].data, self.tx[i].size = ffi.from_buffer(payload), len(payload)
            self.rx[i].data = self.data + i * bufsize
            self.rx[i].size, self.rx[i].addr = bufsize, self.addrs + i
        self.dest = ffi.new("struct sockaddr_vm *")
        self.dest.svm_family, (self.dest.svm_cid, self.dest.svm_port) = lib.AF_VSOCK, dest
        self.wait = ffi.new("int *", lib.MSG_WAITFORONE)

    def send(self, fd: int) -> None:
        lib.udo_vsock_udp_send_batch(fd, self.tx, self.b, self.dest, ffi.NULL)

    def recv(self, fd: int) -> None:
        lib.udo_vsock_udp_recv_batch(fd, self.rx, self.b, self.wait)


def bare_batch_loop(fd_tx: int, fd_rx: int, dest_addr: tuple[int, int], b: int,
                    payload: bytes, bufsize: int) -> Loop:
    """The ``batch_bare`` variant: :class:`BareBatch` sends, then receives."""
    arrays = BareBatch(b, payload, bufsize, dest_addr)
    send, recv = lib.udo_vsock_udp_send_batch, lib.udo_vsock_udp_recv_batch
    tx, rx, dest, wait = arrays.tx, arrays.rx, arrays.dest, arrays.wait

    def run(n: int) -> None:
        assert arrays
        for _ in range(n // b):
            send(fd_tx, tx, b, dest, ffi.NULL)
            recv(fd_rx, rx, b, wait)
    return run


def _local_cid() -> int:
    try:
        return cando.local_cid()
    except OSError:
        return socket.VMADDR_CID_HOST


def _time(run: Loop, n: int) -> float:
    t = time.perf_counter_ns()
    run(n)
    return (time.perf_counter_ns() - t) / n


def _c_raw(bench_c: str, sizes: List[int], min_ms: int) -> Dict[int, float]:
    """One round of bench_c's vsock_raw, in a subprocess on this transport."""
    out = subprocess.run(
        [bench_c, "--rounds", "1", "--min-ms", str(min_ms), "--variants", "vsock_raw",
         "--sizes", ",".join(str(s) for s in sizes)],
        check=True, capture_output=True, text=True).stdout
    return {r["size"]: r["ns_per_dgram"] for r in json.loads(out)["results"]}


def alloc_check(bench: Bench, windows: int = 50, per_window: int = 8) -> Dict[str, Any]:
    """What the zero-copy receive paths allocate, by tracemalloc.

    Datagrams are queued with tracing off, then received with tracing on:
    ``peak_bytes`` is the most allocated at once beyond what was live before
    (any allocation per call, even freed at once, shows here), and
    ``retained_bytes`` what stayed allocated; both are maxima over the windows.
    """
    payload = b"x" * 64
    cases: Dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "harness": (lambda: None, lambda: None),
        "cando_recv_into": (lambda: bench.cli.send(payload),
                            lambda: bench.srv.recv_into(bench.buf)),
        "cando_recv_into_buffer": (lambda: bench.cli.send(payload),
                                   lambda: bench.srv.recv_into(bench.cbuf)),
        "socket_recv_into": (lambda: bench.stx.sendto(payload, bench.sdest),
                             lambda: bench.srx.recv_into(bench.buf)),
        "batch_recv_many_into": (
            lambda: _batch.send_many(bench.btx.fileno(), [payload] * per_window, bench.bdest),
            lambda: _batch.recv_many_into(bench.brx.fileno(), bench.bbuf, MAX_PAYLOAD)),
    }
    out: Dict[str, Any] = {}
    for name, (send, recv) in cases.items():
        batched = name.startswith("batch")
        peak_max = retained_max = 0
        for w in range(windows + 2):  # two to warm caches
            for _ in range(1 if batched else per_window):
                send()
            tracemalloc.start()
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            for _ in range(1 if batched else per_window):
                recv()
            cur, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            if w >= 2:
                peak_max = max(peak_max, peak - base)
                retained_max = max(retained_max, cur - base)
        out[name] = {"datagrams_per_window": per_window, "windows": windows,
                     "peak_bytes": peak_max, "retained_bytes": retained_max}
    # What the receives themselves allocate: beyond what the same loop with
    # a receive that does nothing shows (its range iterator, ...).
    for case in out.values():
        case["net_peak_bytes"] = case["peak_bytes"] - out["harness"]["peak_bytes"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-ms", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bench-c", help="bench_c binary, for the c_raw reference")
    ap.add_argument("--json", help="write the JSON here (default: stdout)")
    ap.add_argument("--no-alloc-check", action="store_true")
    args = ap.parse_args()
    if not need_transport("bench_py"):
        return 1
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if any(not 0 <= s <= MAX_PAYLOAD for s in sizes) or not 1 <= args.batch <= 64:
        ap.error(f"sizes in [0, {MAX_PAYLOAD}], batch in [1, 64]")
    bench = Bench(args.batch)
    b = args.batch
    ns: Dict[tuple[int, str], List[float]] = {}
    loops: Dict[tuple[int, str], tuple[Loop, int]] = {}
    for size in sizes:
        for v in VARIANTS:
            if not bench.applies(v, size):
                continue
            run = bench.loop(v, size)
            run(4 * b)  # warm up
            per = _time(run, 16 * b)
            n = max(b, int(args.min_ms * 1e6 / per) // b * b)
            loops[size, v] = (run, n)
    for _ in range(args.rounds):
        for size in sizes:
            for v in VARIANTS:
                if (size, v) in loops:
                    run, n = loops[size, v]
                    ns.setdefault((size, v), []).append(_time(run, n))
            if args.bench_c:
                ns.setdefault((size, "c_raw"), []).append(
                    _c_raw(args.bench_c, [size], args.min_ms)[size])
    results = []
    for (size, v), samples in sorted(ns.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        m = statistics.median(samples)
        results.append({"variant": v, "size": size, "ns_per_dgram": round(m, 1),
                        "dgrams_per_s": round(1e9 / m), "mb_per_s": round(1e3 * size / m, 2),
                        "samples_ns": [round(x, 1) for x in samples]})
    ratios = []
    for size in sizes:
        for name, num, den in RATIOS:
            if (size, num) in ns and (size, den) in ns:
                per_round = [d / n for n, d in zip(ns[size, num], ns[size, den], strict=True)]
                ratios.append({"ratio": name, "size": size,
                               "throughput_ratio": round(statistics.median(per_round), 4)})
    doc: Dict[str, Any] = {
        "benchmark": "bench_py",
        "transport": "vsock_wrapper" if "LD_PRELOAD" in os.environ else "kernel",
        "python": sys.version.split()[0], "rounds": args.rounds, "batch": b,
        "results": results, "ratios": ratios,
    }
    if not args.no_alloc_check:
        doc["allocations"] = alloc_check(bench)
    bench.close()
    for r in results:
        print(f"{r['size']:>8} {r['variant']:<16} {r['ns_per_dgram']:>10.1f} ns "
              f"{r['dgrams_per_s']:>9} dgrams/s {r['mb_per_s']:>10.2f} MB/s", file=sys.stderr)
    for q in ratios:
        print(f"{q['size']:>8} {q['ratio']:<28} {q['throughput_ratio']:.3f}x throughput",
              file=sys.stderr)
    if "allocations" in doc:
        print(f"allocations: {doc['allocations']}", file=sys.stderr)
    text = json.dumps(doc, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
