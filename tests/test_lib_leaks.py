"""No libcando path leaks an fd or memory: 10,000 create/destroy cycles, failures included.

Descriptors are counted in ``/proc/self/fd``; memory is the resident set from
``/proc/self/statm``, measured after a warm-up so that allocator and interpreter
caches are already in place. A leak of one instance (548 bytes) per cycle would
be over 5 MiB; the bound is 1 MiB.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from cando._cando import ffi, lib

CYCLES = 10_000
WARMUP = 1_000
RSS_BOUND = 1 << 20
ANY = 0xFFFFFFFF


def fd_set() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _infos() -> dict[str, Any]:
    infos: dict[str, Any] = {}
    for kind in ("server", "client"):
        for name, vcid, port in (("ok", 2, -1), ("any", ANY, 1234), ("bad_port", 2, -7)):
            info = ffi.new(f"struct udo_vsock_udp_{kind}_create_info *")
            info.vcid, info.port = vcid, port
            infos[f"{kind}_{name}"] = info
    return infos


def _measure(cycle: Any, n: int) -> tuple[list[str], list[str], int, int]:
    for _ in range(WARMUP):
        cycle()
    fds_before, rss_before = fd_set(), rss()
    for _ in range(n):
        cycle()
    return fds_before, fd_set(), rss_before, rss()


# --- in the pytest process: the real kernel (ENODEV) and argument errors -------------------


def test_failing_creates_leak_nothing() -> None:
    infos = _infos()
    size = lib.udo_vsock_udp_get_sizeof()
    caller = ffi.new("char[]", size)
    mem = ffi.cast("struct udo_vsock_udp *", caller)
    server_create, client_create = lib.udo_vsock_udp_server_create, lib.udo_vsock_udp_client_create
    destroy = lib.udo_vsock_udp_destroy
    kernel_has_dgram = True
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM).close()
    except OSError:
        kernel_has_dgram = False
    peer = ffi.new("struct sockaddr_vm *")
    peer.svm_family, peer.svm_cid, peer.svm_port = socket.AF_VSOCK, 3, 1234
    results: set[Any] = set()

    def cycle() -> None:
        for create, kind in ((server_create, "server"), (client_create, "client")):
            for name in (f"{kind}_ok", f"{kind}_any"):
                v = create(ffi.NULL, infos[name])
                results.add((name, "lib", v == ffi.NULL, ffi.errno))
                destroy(v)
                v = create(mem, infos[name])
                results.add((name, "caller", v == ffi.NULL, ffi.errno))
                destroy(mem)
        for create, name in ((server_create, "server_bad_port"), (client_create,
                                                                   "client_bad_port")):
            results.add((name, "lib", create(ffi.NULL, infos[name]) == ffi.NULL, ffi.errno))
            results.add((name, "caller", create(mem, infos[name]) == ffi.NULL, ffi.errno))
            results.add(("null_info", "lib", create(ffi.NULL, ffi.NULL) == ffi.NULL, ffi.errno))
            results.add(("null_info", "caller", create(mem, ffi.NULL) == ffi.NULL, ffi.errno))
        lib.udo_vsock_udp_server_accept(mem, ffi.NULL)
        results.add(("accept", "caller", lib.udo_vsock_udp_server_accept(mem, peer) == -1,
                     ffi.errno))
        lib.udo_vsock_udp_get_local_vcid()

    fds_before, fds_after, rss_before, rss_after = _measure(cycle, CYCLES)
    assert fds_after == fds_before
    assert rss_after - rss_before < RSS_BOUND, (rss_before, rss_after)
    for name, mode, failed, err in results:
        # accept on an instance whose create failed: it has no socket, EINVAL.
        if name.endswith("bad_port") or name in ("null_info", "accept"):
            assert (failed, err) == (True, errno.EINVAL), (name, mode)
        elif not kernel_has_dgram:
            assert (failed, err) == (True, errno.ENODEV), (name, mode)


# --- under the wrapper: successful sockets, failing binds, server_accept ------------------


def w_cycles(n: int, warmup: int) -> dict[str, Any]:
    size = lib.udo_vsock_udp_get_sizeof()
    caller = ffi.new("char[]", size)
    mem = ffi.cast("struct udo_vsock_udp *", caller)
    any_port = ffi.new("struct udo_vsock_udp_server_create_info *")
    any_port.vcid, any_port.port = ANY, -1
    anchor = lib.udo_vsock_udp_server_create(ffi.NULL, any_port)
    assert anchor != ffi.NULL
    taken = ffi.new("struct udo_vsock_udp_server_create_info *")
    taken.vcid, taken.port = 2, lib.udo_vsock_udp_get_port(anchor)
    foreign = ffi.new("struct udo_vsock_udp_server_create_info *")
    foreign.vcid, foreign.port = 7, -1
    dest = ffi.new("struct udo_vsock_udp_client_create_info *")
    dest.vcid, dest.port = 2, lib.udo_vsock_udp_get_port(anchor)
    peer = ffi.new("struct sockaddr_vm *")
    peer.svm_family, peer.svm_cid, peer.svm_port = socket.AF_VSOCK, 2, 4242
    buf = ffi.new("char[]", 8)
    server_create, client_create = lib.udo_vsock_udp_server_create, lib.udo_vsock_udp_client_create
    destroy = lib.udo_vsock_udp_destroy
    outcomes: set[Any] = set()

    def cycle() -> None:
        v = server_create(ffi.NULL, any_port)
        outcomes.add(("server_lib", v != ffi.NULL))
        outcomes.add(("accept", lib.udo_vsock_udp_server_accept(v, peer), ffi.errno))
        destroy(v)
        outcomes.add(("server_caller", server_create(mem, any_port) != ffi.NULL))
        destroy(mem)
        v = client_create(ffi.NULL, dest)
        outcomes.add(("client_lib", v != ffi.NULL))
        outcomes.add(("send", lib.udo_vsock_udp_client_send_data(v, b"x", 1, ffi.NULL)))
        destroy(v)
        outcomes.add(("client_caller", client_create(mem, dest) != ffi.NULL))
        destroy(mem)
        outcomes.add(("taken_lib", server_create(ffi.NULL, taken) == ffi.NULL, ffi.errno))
        outcomes.add(("taken_caller", server_create(mem, taken) == ffi.NULL, ffi.errno))
        outcomes.add(("foreign_lib", server_create(ffi.NULL, foreign) == ffi.NULL, ffi.errno))
        outcomes.add(("foreign_caller", server_create(mem, foreign) == ffi.NULL, ffi.errno))
        # Keep the anchor's queue empty (the wrapper blocks a sender on a full queue).
        lib.udo_vsock_udp_server_recv_data(anchor, buf, 8, ffi.NULL, ffi.NULL)

    try:
        for _ in range(warmup):
            cycle()
        fds_before, rss_before = fd_set(), rss()
        for _ in range(n):
            cycle()
        fds_after, rss_after = fd_set(), rss()
    finally:
        destroy(anchor)
    return {"fds": (fds_before, fds_after), "rss": (rss_before, rss_after),
            "outcomes": sorted(outcomes, key=repr)}


def test_wrapped_cycles_leak_nothing(wrapped_worker: Any) -> None:
    obs = wrapped_worker.call(w_cycles, CYCLES, WARMUP, timeout=300)
    fds_before, fds_after = obs["fds"]
    assert fds_after == fds_before
    rss_before, rss_after = obs["rss"]
    assert rss_after - rss_before < RSS_BOUND, (rss_before, rss_after)
    outcomes = set(obs["outcomes"])
    assert outcomes == {
        ("server_lib", True), ("server_caller", True),
        ("client_lib", True), ("client_caller", True),
        ("send", 1),
        ("accept", -1, errno.EADDRINUSE),
        ("taken_lib", True, errno.EADDRINUSE), ("taken_caller", True, errno.EADDRINUSE),
        ("foreign_lib", True, errno.EADDRNOTAVAIL),
        ("foreign_caller", True, errno.EADDRNOTAVAIL),
    }
