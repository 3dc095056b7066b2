"""libcando on the real kernel, without the wrapper, in the pytest process.

Most Linux kernels (virtio/vhost/loopback vsock) have no AF_VSOCK datagram
transport: ``socket(AF_VSOCK, SOCK_DGRAM)`` fails ``ENODEV``. The library must
say so, in errno and in the instance's message. ``get_local_vcid`` must agree
with the ioctl on ``/dev/vsock``; its failure paths are driven through a small
LD_PRELOAD shim (``tests/c/devvsock_shim.c``) in a subprocess.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import captured_log

from cando._cando import ffi, lib

UINT32_MAX = 0xFFFFFFFF
ENODEV_MESSAGE = "socket: No such device (this kernel has no AF_VSOCK datagram transport)"
C_DIR = Path(__file__).resolve().parent / "c"


def _dgram_probe() -> int | None:
    """errno of socket(AF_VSOCK, SOCK_DGRAM) on this kernel, None if it works."""
    try:
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    except OSError as exc:
        return exc.errno
    sock.close()
    return None


@pytest.fixture(scope="module")
def no_dgram_transport() -> None:
    err = _dgram_probe()
    if err is None:
        pytest.skip("this kernel has an AF_VSOCK datagram transport: no ENODEV to check")
    assert err == errno.ENODEV, f"socket(AF_VSOCK, SOCK_DGRAM) failed {errno.errorcode[err]}"


def _info(kind: str, vcid: int, port: int) -> Any:
    info = ffi.new(f"struct udo_vsock_udp_{kind}_create_info *")
    info.vcid, info.port = vcid, port
    return info


def _create(kind: str) -> Any:
    return lib.udo_vsock_udp_server_create if kind == "server" else lib.udo_vsock_udp_client_create


CASES = [("server", lib.VMADDR_CID_ANY, -1), ("server", 2, 5000), ("server", 3, 0),
         ("client", 2, 1234), ("client", lib.VMADDR_CID_ANY, 0xFFFF)]


@pytest.mark.usefixtures("no_dgram_transport")
@pytest.mark.parametrize(("kind", "vcid", "port"), CASES)
def test_create_enodev_library_memory(kind: str, vcid: int, port: int) -> None:
    ffi.errno = 0
    assert _create(kind)(ffi.NULL, _info(kind, vcid, port)) == ffi.NULL
    assert ffi.errno == errno.ENODEV


@pytest.mark.usefixtures("no_dgram_transport")
@pytest.mark.parametrize(("kind", "vcid", "port"), CASES)
def test_create_enodev_caller_memory(kind: str, vcid: int, port: int) -> None:
    size = lib.udo_vsock_udp_get_sizeof()
    raw = ffi.new("char[]", size)
    ffi.memmove(raw, b"\xee" * size, size)
    inst = ffi.cast("struct udo_vsock_udp *", raw)
    ffi.errno = 0
    assert _create(kind)(inst, _info(kind, vcid, port)) == ffi.NULL
    assert ffi.errno == errno.ENODEV
    assert lib.udo_vsock_udp_get_fd(inst) == -1
    assert lib.udo_log_get_error_code(inst) == errno.ENODEV
    assert ffi.string(lib.udo_log_get_error(inst)).decode() == ENODEV_MESSAGE
    lib.udo_vsock_udp_destroy(inst)
    assert lib.udo_vsock_udp_get_fd(inst) == -1
    lib.udo_vsock_udp_destroy(inst)


@pytest.mark.usefixtures("no_dgram_transport")
def test_server_accept_on_a_failed_server() -> None:
    """Here every server create fails (ENODEV): accept on that instance is refused (it has
    no socket to share an address with), recorded, nothing leaked."""
    size = lib.udo_vsock_udp_get_sizeof()
    raw = ffi.new("char[]", size)
    inst = ffi.cast("struct udo_vsock_udp *", raw)
    assert lib.udo_vsock_udp_server_create(inst, _info("server", 2, 5000)) == ffi.NULL
    peer = ffi.new("struct sockaddr_vm *")
    peer.svm_family, peer.svm_cid, peer.svm_port = socket.AF_VSOCK, 3, 1234
    fds = sorted(os.listdir("/proc/self/fd"))
    ffi.errno = 0
    assert lib.udo_vsock_udp_server_accept(inst, peer) == -1
    assert ffi.errno == errno.EINVAL
    assert lib.udo_log_get_error_code(inst) == errno.EINVAL
    assert ffi.string(lib.udo_log_get_error(inst)).decode() == (
        "udo_vsock_udp_server_accept: Invalid argument (the instance has no socket)")
    assert sorted(os.listdir("/proc/self/fd")) == fds


@pytest.mark.usefixtures("no_dgram_transport")
def test_enodev_is_logged() -> None:
    with captured_log(lib.UDO_LOG_ERROR) as r:
        lib.udo_log_remove_colors()
        assert lib.udo_vsock_udp_server_create(ffi.NULL, _info("server", 2, -1)) == ffi.NULL
        assert ffi.errno == errno.ENODEV
        line = os.read(r, 4096).decode()
    assert line.endswith(ENODEV_MESSAGE + "\n")
    assert "udo_vsock_udp_server_create" in line


def test_get_local_vcid_matches_ioctl() -> None:
    if not os.path.exists("/dev/vsock"):
        pytest.skip("no /dev/vsock on this machine")
    try:
        fd = os.open("/dev/vsock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        ffi.errno = 0
        assert lib.udo_vsock_udp_get_local_vcid() == UINT32_MAX
        assert ffi.errno == exc.errno
        return
    try:
        raw = fcntl.ioctl(fd, lib.IOCTL_VM_SOCKETS_GET_LOCAL_CID, b"\0" * 4)
    finally:
        os.close(fd)
    (cid,) = struct.unpack("I", raw)
    ffi.errno = 0
    got = lib.udo_vsock_udp_get_local_vcid()
    if cid == lib.VMADDR_CID_ANY:
        assert got == UINT32_MAX
        assert ffi.errno == errno.EADDRNOTAVAIL
    else:
        assert got == cid


# --- get_local_vcid's failure paths, through the shim -------------------------------------


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("shim") / "devvsock_shim.so"
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                    str(C_DIR / "devvsock_shim.c"), "-ldl"], check=True, timeout=120)
    return str(out)


PROBE = textwrap.dedent(
    """
    import json, os
    from cando._cando import ffi, lib
    before = sorted(os.listdir("/proc/self/fd"))
    results = []
    for _ in range(50):
        ffi.errno = 0
        cid = lib.udo_vsock_udp_get_local_vcid()
        results.append((cid, ffi.errno))
    after = sorted(os.listdir("/proc/self/fd"))
    print(json.dumps({"results": results, "before": before, "after": after}))
    """
)


@pytest.mark.parametrize(("mode", "expected_cid", "expected_errno"), [
    (f"errno:{errno.ENOENT}", UINT32_MAX, errno.ENOENT),
    (f"errno:{errno.EACCES}", UINT32_MAX, errno.EACCES),
    ("notty", UINT32_MAX, errno.ENOTTY),
    (f"cid:{0xFFFFFFFF}", UINT32_MAX, errno.EADDRNOTAVAIL),
    ("cid:3", 3, None),
    ("cid:1234567", 1234567, None),
])
def test_get_local_vcid_paths(shim: str, mode: str, expected_cid: int,
                              expected_errno: int | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["LD_PRELOAD"] = shim
    env["CANDO_DEVVSOCK_SHIM"] = mode
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    for cid, err in seen["results"]:
        assert cid == expected_cid
        if expected_errno is not None:
            assert err == expected_errno
    assert seen["before"] == seen["after"], "get_local_vcid leaked an fd"
