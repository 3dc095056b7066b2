"""The ``cando-vsock`` command line, end to end, in subprocesses.

Every test runs the installed console script (next to ``sys.executable``) or
``python -m cando``, with a timeout, and checks its output and exit status.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest
from wrapper_helpers import finish, next_line

import cando

SCRIPT = str(Path(sys.executable).parent / "cando-vsock")
INVOCATIONS = {"script": [SCRIPT], "module": [sys.executable, "-m", "cando"]}
TIMEOUT = 60
IOCTL_VM_SOCKETS_GET_LOCAL_CID = 0x7B9  # _IO(7, 0xb9)

# Modules that can provide AF_VSOCK (or a transport for it) in Linux.
VSOCK_MODULES = ["vsock", "vmw_vsock_vmci_transport", "vmw_vsock_virtio_transport",
                 "vhost_vsock", "vsock_loopback", "hv_sock"]


def plain_env(**extra: str) -> dict[str, str]:
    """This environment without the wrapper or its settings."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith(("VSOCK_WRAPPER_", "CANDO_VSOCK_"))}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None, how: str = "script",
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INVOCATIONS[how], *args], env=plain_env() if env is None else env,
                          capture_output=True, text=True, timeout=timeout)


def kernel_datagram_error() -> OSError | None:
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM).close()
    except OSError as exc:
        return exc
    return None


@pytest.fixture
def no_kernel_datagrams() -> None:
    if kernel_datagram_error() is None:
        pytest.skip("this kernel has an AF_VSOCK datagram transport: demo would not re-run")


def ioctl_local_cid() -> int:
    """The local CID straight from the kernel, as the CLI should report it natively."""
    fd = os.open("/dev/vsock", os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, b"\0\0\0\0")
    finally:
        os.close(fd)
    return int(struct.unpack("I", buf)[0])


DEMO_LINES = [
    r"server: bound to \(VMADDR_CID_ANY, (?P<port>\d+)\), fd \d+",
    r"client: sends to \(2, (?P=port)\)",
]


def check_demo_exchange(lines: list[str], count: int) -> None:
    """The demo's exchange: who binds where, each datagram each way, the verdict."""
    assert len(lines) == 2 + 2 * count + 1, lines
    head = re.fullmatch(DEMO_LINES[0], lines[0])
    assert head, lines[0]
    port = head["port"]
    assert lines[1] == f"client: sends to (2, {port})"
    for i in range(1, count + 1):
        got = re.fullmatch(rf"server: received b'hello {i}' from \(2, (\d+)\)",
                           lines[2 * i])
        assert got, lines[2 * i]
        assert got[1] != port
        assert lines[2 * i + 1] == f"client: received b'HELLO {i}' from (2, {port})"
    assert lines[-1] == f"demo: {count} datagrams each way, all delivered intact"


# -- demo ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", INVOCATIONS)
def test_demo_reruns_itself_under_the_wrapper(no_kernel_datagrams: None, wrapper_lib: str,
                                              how: str) -> None:
    proc = cli("demo", how=how)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    notice = lines[0]
    assert notice.startswith("cando-vsock demo: this kernel has no AF_VSOCK datagram transport")
    assert f"re-running under vsock_wrapper ({wrapper_lib})" in notice
    assert sum("re-running" in line for line in lines) == 1  # once, no loop
    check_demo_exchange(lines[1:], 3)
    assert proc.stderr == ""


def test_demo_count(no_kernel_datagrams: None, wrapper_lib: str) -> None:
    proc = cli("demo", "--count", "5")
    assert proc.returncode == 0, proc.stderr
    check_demo_exchange(proc.stdout.splitlines()[1:], 5)


def test_demo_under_the_wrapper_runs_directly(wrapped_env: Callable[..., dict[str, str]]) -> None:
    proc = cli("demo", "--count", "2", env=wrapped_env())
    assert proc.returncode == 0, proc.stderr
    assert "re-running" not in proc.stdout
    check_demo_exchange(proc.stdout.splitlines(), 2)


def test_demo_under_run_runs_directly(namespace: str, wrapper_lib: str) -> None:
    proc = cli("run", "--namespace", namespace, "--", SCRIPT, "demo", "--count", "1")
    assert proc.returncode == 0, proc.stderr
    assert "re-running" not in proc.stdout
    check_demo_exchange(proc.stdout.splitlines(), 1)


# -- wrapper-path, local-cid -----------------------------------------------------------


@pytest.mark.parametrize("how", INVOCATIONS)
def test_wrapper_path(how: str, wrapper_lib: str) -> None:
    proc = cli("wrapper-path", how=how)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.rstrip("\n")
    assert proc.stdout == path + "\n"  # exactly one line
    assert os.path.isabs(path) and os.path.isfile(path)
    assert path == cando.wrapper_path() == wrapper_lib


@pytest.mark.parametrize("how", INVOCATIONS)
def test_local_cid_native_is_the_ioctl_answer(how: str) -> None:
    expected = ioctl_local_cid()  # 3 on this host
    proc = cli("local-cid", how=how)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{expected}\n"


def test_local_cid_under_run(namespace: str, wrapper_lib: str) -> None:
    proc = cli("run", "--namespace", namespace, "--", SCRIPT, "local-cid")
    assert (proc.returncode, proc.stdout) == (0, "2\n"), proc.stderr
    proc = cli("run", "--cid", "5", "--namespace", namespace, "--", SCRIPT, "local-cid")
    assert (proc.returncode, proc.stdout) == (0, "5\n"), proc.stderr


SEES_CID = textwrap.dedent("""
    import errno, fcntl, os, socket, struct
    fd = os.open("/dev/vsock", os.O_RDONLY)
    cid = struct.unpack("I", fcntl.ioctl(fd, 0x7B9, b"\\0" * 4))[0]
    os.close(fd)
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    s.bind((cid, socket.VMADDR_PORT_ANY))
    print(cid, s.getsockname()[0])
    t = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    try:
        t.bind((2 if cid != 2 else 3, socket.VMADDR_PORT_ANY))
    except OSError as exc:
        print(errno.errorcode[exc.errno])
""")


def test_run_cid_5_seen_by_plain_python(namespace: str, wrapper_lib: str) -> None:
    proc = cli("run", "--cid", "5", "--namespace", namespace, "--",
               sys.executable, "-c", SEES_CID)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["5", "5", "EADDRNOTAVAIL"]


def test_run_default_cid_is_2(namespace: str, wrapper_lib: str) -> None:
    proc = cli("run", "--namespace", namespace, "--", sys.executable, "-c", SEES_CID)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "2", "EADDRNOTAVAIL"]


def test_run_passes_arguments_and_exit_status(namespace: str, wrapper_lib: str) -> None:
    code = "import sys; print(sys.argv[1:]); sys.exit(7)"
    proc = cli("run", "--namespace", namespace, "--", sys.executable, "-c", code,
               "a b", "--cid", "-x")
    assert proc.returncode == 7
    assert proc.stdout == "['a b', '--cid', '-x']\n"


# -- run --namespace isolates ------------------------------------------------------------

RECEIVER = textwrap.dedent("""
    import select, socket, sys
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    s.bind((socket.VMADDR_CID_ANY, int(sys.argv[1])))
    print(s.getsockname()[1], flush=True)
    if not select.select([s], [], [], 20)[0]:
        sys.exit("receiver: nothing arrived")
    data, sender = s.recvfrom(100)
    print(data.decode(), sender[0], flush=True)
""")

SENDER = textwrap.dedent("""
    import errno, socket, sys
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_DGRAM)
    try:
        s.sendto(sys.argv[2].encode(), (2, int(sys.argv[1])))
    except OSError as exc:
        print(errno.errorcode[exc.errno])
    else:
        print("sent")
""")


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_run_namespace_isolates(namespace: str, wrapper_lib: str) -> None:
    here, elsewhere = namespace, namespace + "-elsewhere"
    # Not an automatic port: the sender's own auto-bind takes 1024 in its fresh world.
    receiver = start([SCRIPT, "run", "--namespace", here, "--", sys.executable, "-c", RECEIVER,
                      "4242"], plain_env())
    try:
        port = next_line(receiver)
        assert port == "4242"
        other = cli("run", "--namespace", elsewhere, "--", sys.executable, "-c", SENDER,
                    port, "lost")
        assert (other.returncode, other.stdout) == (0, "EHOSTUNREACH\n"), other.stderr
        same = cli("run", "--namespace", here, "--", sys.executable, "-c", SENDER,
                   port, "found")
        assert (same.returncode, same.stdout) == (0, "sent\n"), same.stderr
    finally:
        status, out, err = finish(receiver)
    assert status == 0, err
    assert out == "found 2\n"  # only the datagram from its own world arrived


# -- run: errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["run"], ["run", "--"], ["run", "--cid", "3"],
                                  ["run", "--namespace", "x", "--"]])
def test_run_without_a_command(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "no command given" in proc.stderr and "cando-vsock run -- PROGRAM" in proc.stderr


def test_run_a_missing_program() -> None:
    proc = cli("run", "--", "cando-no-such-program-xyz", "arg")
    assert proc.returncode == 127
    assert proc.stdout == ""
    assert "cando-no-such-program-xyz" in proc.stderr
    assert os.strerror(errno.ENOENT) in proc.stderr


def test_run_bad_cid_is_a_usage_error() -> None:
    proc = cli("run", "--cid", "three", "--", "true")
    assert proc.returncode == 2
    assert "--cid" in proc.stderr and "invalid int value" in proc.stderr


# -- check ---------------------------------------------------------------------------------


def check_lines(stdout: str) -> dict[str, str]:
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
            for line in stdout.splitlines() if ":" in line and not line.startswith("  ")}


@pytest.mark.parametrize("how", INVOCATIONS)
def test_check_natively(how: str) -> None:
    why = kernel_datagram_error()
    proc = cli("check", how=how)
    fields = check_lines(proc.stdout)
    assert fields["/dev/vsock"] == ("present" if os.path.exists("/dev/vsock") else "absent")
    loaded = [name for name in VSOCK_MODULES if os.path.isdir(f"/sys/module/{name}")]
    assert fields["vsock modules loaded"] == (", ".join(loaded) if loaded else "none")
    # Every vsock module the kernel has loaded is listed, each with its own line.
    in_sys = sorted(name for name in os.listdir("/sys/module")
                    if ("vsock" in name or name == "hv_sock")
                    and not name.endswith(("_common", "_diag")))  # helpers, not transports
    assert sorted(loaded) == in_sys
    for name in loaded:
        assert re.search(rf"^  {name}: \S", proc.stdout, re.MULTILINE), name
    try:
        assert fields["local CID"] == str(ioctl_local_cid())
    except OSError:
        assert fields["local CID"].startswith("none")
    assert "not loaded" in fields["vsock_wrapper"]
    assert cando.wrapper_path() in fields["vsock_wrapper"]
    if why is None:  # a VMCI machine
        assert (proc.returncode, fields["AF_VSOCK datagram socket"]) == (0, "yes")
    else:
        assert proc.returncode == 3, proc.stderr  # EXIT_NO_TRANSPORT
        verdict = fields["AF_VSOCK datagram socket"]
        assert verdict.startswith(f"no: {errno.errorcode[why.errno or 0]} ({why.strerror})")
        assert "only VMware's VMCI transport carries vsock datagrams" in verdict
    if why is not None and why.errno == errno.ENODEV:  # this host
        assert "no: ENODEV (No such device)" in proc.stdout


def test_check_under_the_wrapper(namespace: str, wrapper_lib: str) -> None:
    proc = cli("run", "--cid", "4", "--namespace", namespace, "--", SCRIPT, "check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fields = check_lines(proc.stdout)
    assert fields["AF_VSOCK datagram socket"] == "yes"
    assert fields["local CID"] == "4"
    assert fields["vsock_wrapper"].startswith(f"{wrapper_lib} (loaded in this process)")


# -- help and usage ----------------------------------------------------------------------------


ALL_COMMANDS = ["demo", "run", "wrapper-path", "local-cid", "check", "send", "recv", "echo",
                "ping"]


@pytest.mark.parametrize("sub", [None, *ALL_COMMANDS])
@pytest.mark.parametrize("how", INVOCATIONS)
def test_help(sub: str | None, how: str) -> None:
    args = ["--help"] if sub is None else [sub, "--help"]
    proc = cli(*args, how=how)
    assert proc.returncode == 0, proc.stderr
    usage = "usage: cando-vsock" + ("" if sub is None else f" {sub}")
    assert proc.stdout.startswith(usage), proc.stdout
    if sub is None:
        for name in ALL_COMMANDS:
            assert name in proc.stdout
        assert "exit status:" in proc.stdout
    if sub == "run":
        assert "--cid" in proc.stdout and "--namespace" in proc.stdout
    if sub == "demo":
        assert "--count" in proc.stdout


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["demo", "--count", "x"]])
def test_usage_errors(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: cando-vsock")


def test_console_script_is_installed() -> None:
    assert os.access(SCRIPT, os.X_OK), SCRIPT


def test_demo_never_re_runs_twice(no_kernel_datagrams: None) -> None:
    """If the re-run still has no datagram socket (preload ignored), demo stops, not loops."""
    proc = cli("demo", env=plain_env(CANDO_VSOCK_DEMO_REEXEC="1"))
    assert proc.returncode == 3  # EXIT_NO_TRANSPORT
    assert "re-running" not in proc.stdout
    assert "even vsock_wrapper gives no datagram socket" in proc.stderr


# -- --json on the existing commands ------------------------------------------------------


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("where", ["before", "after"])
def test_wrapper_path_json(where: str, wrapper_lib: str) -> None:
    args = ["--json", "wrapper-path"] if where == "before" else ["wrapper-path", "--json"]
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert json_lines(proc.stdout) == [{"wrapper_path": wrapper_lib, "exists": True}]


def test_local_cid_json(namespace: str) -> None:
    proc = cli("run", "--cid", "6", "--namespace", namespace, "--", SCRIPT, "local-cid",
               "--json")
    assert (proc.returncode, json_lines(proc.stdout)) == (0, [{"local_cid": 6}]), proc.stderr
    proc = cli("--json", "local-cid")
    assert proc.returncode == 0
    assert json_lines(proc.stdout) == [{"local_cid": ioctl_local_cid()}]


def test_check_json_natively_and_under_run(namespace: str, wrapper_lib: str) -> None:
    why = kernel_datagram_error()
    proc = cli("--json", "check")
    (report,) = json_lines(proc.stdout)
    assert report["dev_vsock"] == os.path.exists("/dev/vsock")
    assert report["wrapper"] == {"path": wrapper_lib, "installed": True, "loaded": False}
    assert report["datagram_socket"] is (why is None)
    if why is not None:
        assert proc.returncode == 3
        assert report["datagram_error"] == {"errno": why.errno,
                                            "error": errno.errorcode[why.errno or 0],
                                            "message": why.strerror}
    proc = cli("run", "--cid", "4", "--namespace", namespace, "--", SCRIPT, "check", "--json")
    assert proc.returncode == 0, proc.stderr
    (report,) = json_lines(proc.stdout)
    assert (report["datagram_socket"], report["datagram_error"], report["local_cid"]) == \
        (True, None, 4)
    assert report["wrapper"] == {"path": wrapper_lib, "installed": True, "loaded": True}


def test_demo_json_reexec(no_kernel_datagrams: None, wrapper_lib: str) -> None:
    proc = cli("demo", "--json", "--count", "2")
    assert proc.returncode == 0, proc.stderr
    events = json_lines(proc.stdout)
    assert [e["event"] for e in events] == [
        "reexec", "bound", "client", "server_received", "client_received",
        "server_received", "client_received", "done"]
    assert events[0] == {"event": "reexec", "reason": "ENODEV", "wrapper": wrapper_lib}
    port = events[1]["port"]
    assert events[2] == {"event": "client", "cid": 2, "port": port}
    assert events[3]["data"] == "hello 1" and events[4] == {
        "event": "client_received", "data": "HELLO 1", "cid": 2, "port": port}
    assert events[-1] == {"event": "done", "count": 2, "intact": True}


def test_run_json_errors() -> None:
    proc = cli("run", "--json", "--", "cando-no-such-program-xyz")
    assert proc.returncode == 127
    (error,) = json_lines(proc.stdout)
    assert error == {"event": "error", "command": "run", "exit_code": 127, "error": "ENOENT",
                     "program": "cando-no-such-program-xyz",
                     "message": "cando-no-such-program-xyz: No such file or directory"}


def test_run_a_program_that_cannot_execute(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    proc = cli("run", "--", str(script))
    assert proc.returncode == 126
    assert os.strerror(errno.EACCES) in proc.stderr


def test_version() -> None:
    proc = cli("--version")
    assert (proc.returncode, proc.stdout) == (0, f"cando-vsock {cando.__version__}\n")


def test_closed_stdout_is_quiet(namespace: str) -> None:
    """A reader that goes away (``| head``) ends the command with 141, no traceback."""
    code = ("import subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE,"
            " stderr=subprocess.PIPE); p.stdout.close(); print(p.wait()); "
            "sys.stderr.write(p.stderr.read().decode())")
    proc = cli("run", "--namespace", namespace, "--", sys.executable, "-c", code,
               SCRIPT, "--json", "check")
    assert proc.returncode == 0
    assert proc.stdout == "141\n"
    assert "Traceback" not in proc.stderr
