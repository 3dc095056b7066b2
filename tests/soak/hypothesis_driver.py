"""Random arguments through the whole cando API, in a process under vsock_wrapper.

Run by tests/test_hypothesis.py (``python3 hypothesis_driver.py EXAMPLES``) with
``VSOCK_WRAPPER_FULL=drop`` so that no send ever blocks; every receive passes
``MSG_DONTWAIT``.  Every failure must be a documented exception (``OSError``
subclasses, ``TypeError``, ``ValueError``); raw ``cando._cando.lib`` calls must
return the documented value with ``errno`` matching.  The interpreter must not
crash: the parent checks the exit status and the final ``done`` line.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cando
from cando._cando import ffi, lib

DOCUMENTED = (OSError, TypeError, ValueError)
DONTWAIT = socket.MSG_DONTWAIT
U32 = 0xFFFFFFFF

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=8), st.binary(max_size=8), st.tuples(st.integers(), st.integers()),
    st.lists(st.integers(), max_size=3),
)
ints = st.one_of(st.integers(-(2**33), 2**33), st.sampled_from([-1, 0, 1, 2, U32, U32 - 1]))
c_int = st.integers(-(2**31), 2**31 - 1)
c_uint = st.integers(0, U32)
buffers = st.one_of(
    st.binary(max_size=300), st.builds(bytearray, st.binary(max_size=300)),
    st.builds(lambda b: memoryview(b)[::2], st.binary(max_size=64)), anything,
)
SETTINGS = settings(max_examples=int(sys.argv[1]) if len(sys.argv) > 1 else 200,
                    deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))

# One live pair the methods are thrown at; recreated if a case closes it.
state: dict[str, Any] = {}


def pair() -> tuple[cando.Server, cando.Client]:
    srv = state.get("srv")
    if srv is None or srv.closed:
        srv = state["srv"] = cando.Server(port=-1)
        state["cli"] = cando.Client(2, srv.port)
    cli = state["cli"]
    if cli.closed:
        cli = state["cli"] = cando.Client(2, srv.port)
    return srv, cli


def attempt(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except DOCUMENTED as exc:
        return exc


@SETTINGS
@given(cid=st.one_of(ints, anything), port=st.one_of(ints, anything), server=st.booleans())
def constructors(cid: Any, port: Any, server: bool) -> None:
    obj = attempt(cando.Server if server else cando.Client, cid, port)
    if isinstance(obj, (cando.Server, cando.Client)):
        assert obj.fileno() >= 0
        obj.close()
        obj.close()
        assert obj.fileno() == -1
        assert isinstance(attempt(lambda: obj.port), OSError)


@SETTINGS
@given(method=st.sampled_from(["recv", "recvfrom", "recv_into", "recvfrom_into", "sendto",
                               "send", "accept", "connect", "server_recvfrom_into"]),
       a=st.one_of(ints, buffers), b=st.one_of(ints, anything, st.tuples(ints, ints)),
       flags=st.one_of(c_int, anything), close_first=st.integers(0, 20))
def methods(method: str, a: Any, b: Any, flags: Any, close_first: int) -> None:
    srv, cli = pair()
    if close_first == 0:
        (srv if method.startswith(("recv", "server", "accept")) else cli).close()
    if isinstance(flags, int) and not isinstance(flags, bool):
        flags |= DONTWAIT
    calls = {
        "recv": lambda: cli.recv(a, flags),
        "recvfrom": lambda: srv.recvfrom(a, flags),
        "recv_into": lambda: cli.recv_into(a, b if isinstance(b, int) else 0, flags),
        "recvfrom_into": lambda: _VsockRecvfromInto(cli, a, b, flags),
        "server_recvfrom_into": lambda: srv.recvfrom_into(a, b if isinstance(b, int) else 0,
                                                          flags),
        "sendto": lambda: cli.sendto(a, b, flags),
        "send": lambda: cli.send(a, flags),
        "accept": lambda: srv.accept(b),
        "connect": lambda: cli.connect(),
    }
    out = attempt(calls[method])
    if method == "accept" and isinstance(out, int):
        os.close(out)


def _VsockRecvfromInto(obj: Any, buf: Any, n: Any, flags: Any) -> Any:
    return obj.recvfrom_into(buf, n if isinstance(n, int) else 0, flags)


@SETTINGS
@given(fd=st.one_of(c_int, st.sampled_from(["srv", "cli", "closed", "devnull"])),
       size=st.integers(0, 256), cap=st.integers(0, 256), cid=c_uint, port=c_uint,
       family=st.integers(0, 65535), flags=c_int, send=st.booleans(),
       null_data=st.booleans(), null_addr=st.booleans())
def raw_io(fd: Any, size: int, cap: int, cid: int, port: int, family: int, flags: int,
           send: bool, null_data: bool, null_addr: bool) -> None:
    srv, cli = pair()
    extra = -1
    if fd == "srv":
        fd = srv.fileno()
    elif fd == "cli":
        fd = cli.fileno()
    elif fd == "closed":
        extra = os.open(os.devnull, os.O_RDONLY)
        os.close(extra)
        fd, extra = extra, -1
    elif fd == "devnull":
        fd = extra = os.open(os.devnull, os.O_RDWR)
    elif fd in (0, 1, 2) or fd > 2:
        # Never send into or read from the interpreter's own fds: a random int
        # that is open is replaced by one that is certainly closed.
        fd = 100000 + abs(fd) % 1000
    size = min(size, cap)  # "valid but random": never larger than the buffer
    buf = ffi.NULL if null_data else ffi.new("char[]", max(cap, 1))
    addr = ffi.NULL if null_addr else ffi.new("struct sockaddr_vm *")
    if addr != ffi.NULL:
        addr.svm_family, addr.svm_cid, addr.svm_port = family, cid, port
    info = ffi.new("int *", flags | DONTWAIT)
    ffi.errno = 0
    if send:
        ret = lib.udo_vsock_udp_send_data(fd, buf, size, addr, info)
    else:
        ret = lib.udo_vsock_udp_recv_data(fd, buf, size, addr, info)
    if extra >= 0:
        os.close(extra)
    if fd < 0 or null_data or size == 0:
        assert ret == -errno.EINVAL, ret
    if ret < 0:
        assert ffi.errno == -ret, (ret, ffi.errno)
    else:
        assert ret <= size


@SETTINGS
@given(vcid=c_uint, port=c_int, server=st.booleans(), caller=st.booleans(),
       null_info=st.booleans())
def raw_create(vcid: int, port: int, server: bool, caller: bool, null_info: bool) -> None:
    kind = "server" if server else "client"
    info = ffi.NULL if null_info else ffi.new(f"struct udo_vsock_udp_{kind}_create_info *",
                                              {"vcid": vcid, "port": port})
    mem = ffi.new("char[]", lib.udo_vsock_udp_get_sizeof()) if caller else None
    inst_in = ffi.cast("struct udo_vsock_udp *", mem) if mem is not None else ffi.NULL
    create = lib.udo_vsock_udp_server_create if server else lib.udo_vsock_udp_client_create
    ffi.errno = 0
    inst = create(inst_in, info)
    if inst == ffi.NULL:
        assert ffi.errno != 0
        if null_info or port < -1:
            assert ffi.errno == errno.EINVAL
        if mem is not None:
            assert lib.udo_vsock_udp_get_fd(inst_in) == -1
            assert lib.udo_log_get_error_code(inst_in) == ffi.errno
        return
    assert lib.udo_vsock_udp_get_fd(inst) >= 0
    assert lib.udo_vsock_udp_get_vcid(inst) == vcid
    lib.udo_vsock_udp_destroy(inst)
    if mem is not None:
        lib.udo_vsock_udp_destroy(inst)  # harmless on caller memory


def nulls() -> None:
    assert lib.udo_vsock_udp_get_fd(ffi.NULL) == -1
    assert lib.udo_vsock_udp_get_port(ffi.NULL) == -1
    assert lib.udo_vsock_udp_get_vcid(ffi.NULL) == U32
    lib.udo_vsock_udp_destroy(ffi.NULL)
    assert lib.udo_vsock_udp_client_connect(ffi.NULL) == -1
    assert lib.udo_vsock_udp_server_accept(ffi.NULL, ffi.NULL) == -1
    assert lib.udo_vsock_udp_server_recv_data(ffi.NULL, ffi.NULL, 0, ffi.NULL,
                                              ffi.NULL) == -errno.EINVAL
    assert lib.udo_vsock_udp_client_send_data(ffi.NULL, ffi.NULL, 0, ffi.NULL) == -errno.EINVAL


def main() -> int:
    start = len(os.listdir("/proc/self/fd"))
    nulls()
    for test in (constructors, methods, raw_io, raw_create):
        test()
        print(f"{test.__name__}: ok", flush=True)
    for key in ("cli", "srv"):
        if key in state:
            state[key].close()
    print(f"done: fds_start={start} fds_end={len(os.listdir('/proc/self/fd'))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
