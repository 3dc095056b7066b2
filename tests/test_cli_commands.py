"""``cando-vsock send/recv/echo/ping``, ``--json`` and exit codes, end to end.

Every process runs the installed console script under ``cando-vsock run``
(vsock_wrapper) in this test's own namespace, with a timeout. Servers are
synchronised on their own output: ``echo`` prints its bound port as its first
line, ``recv`` reports ``bound to`` on stderr (``--json``: a ``bound`` event);
no test sleeps.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_cli import SCRIPT, TIMEOUT, cli, plain_env
from wrapper_helpers import finish, next_line

from cando import cli as cando_cli

VMADDR_CID_ANY = 0xFFFFFFFF


def wrapped(namespace: str, *args: str, cid: int | None = None) -> list[str]:
    """argv: the console script under ``cando-vsock run`` in ``namespace``."""
    return [SCRIPT, "run", "--namespace", namespace,
            *([] if cid is None else ["--cid", str(cid)]), "--", SCRIPT, *args]


def run(namespace: str, *args: str, stdin: str | None = None,
        cid: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(wrapped(namespace, *args, cid=cid), env=plain_env(), input=stdin,
                          capture_output=True, text=True, timeout=TIMEOUT)


def start(namespace: str, *args: str, cid: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(wrapped(namespace, *args, cid=cid), env=plain_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stderr_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    assert select.select([proc.stderr], [], [], TIMEOUT)[0], f"{proc.args!r}: no stderr"
    line = proc.stderr.readline()
    assert line, f"{proc.args!r} ended: {proc.communicate(timeout=TIMEOUT)}"
    return line.rstrip("\n")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def start_echo(namespace: str, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = start(namespace, "echo", *extra)
    try:
        line = next_line(proc)
        if "--json" in extra:
            bound = json.loads(line)
            assert (bound["event"], bound["cid"]) == ("bound", VMADDR_CID_ANY)
            return proc, int(bound["port"])
        return proc, int(line)
    except BaseException:
        finish_killed(proc)
        raise


def start_recv(namespace: str, *extra: str) -> subprocess.Popen[str]:
    """A receiver, once its socket is bound (it said so on stderr)."""
    proc = start(namespace, "recv", *extra)
    try:
        assert stderr_line(proc).startswith("cando-vsock recv: bound to ")
    except BaseException:
        finish_killed(proc)
        raise
    return proc


def finish_killed(proc: subprocess.Popen[str]) -> None:
    """A server the test gives up on: stopped and reaped, never left behind."""
    proc.kill()
    proc.communicate(timeout=TIMEOUT)


# -- echo and ping ------------------------------------------------------------------------


def test_echo_prints_its_port_first_and_ping_reports_round_trips(namespace: str) -> None:
    echo, port = start_echo(namespace, "--count", "4")
    try:
        assert 1024 <= port < VMADDR_CID_ANY
        ping = run(namespace, "ping", "--count", "4", "--interval", "0", "--size", "100",
                   "2", str(port))
    finally:
        status, out, err = finish(echo)
    assert ping.returncode == 0, ping.stderr
    lines = ping.stdout.splitlines()
    assert lines[0] == f"PING 2:{port}: 4 datagrams of 100 bytes"
    for seq, line in enumerate(lines[1:5], 1):
        assert line.startswith(f"100 bytes from 2:{port}: seq={seq} time="), line
        assert line.endswith(" ms")
    assert lines[5] == f"--- 2:{port} ping statistics ---"
    assert lines[6] == "4 sent, 4 received, 0% loss"
    low, avg, high = (float(x) for x in lines[7].split(" = ")[1].split()[0].split("/"))
    assert 0 < low <= avg <= high
    assert len(lines) == 8
    assert ping.stderr == ""  # no progress line: stderr is not a terminal
    # The echo server answered the four datagrams, then stopped on its own (--count).
    assert status == 0, err
    echoed = out.splitlines()
    assert len(echoed) == 4 and len(set(echoed)) == 1
    assert echoed[0].startswith("echoed 100 bytes to 2:")


def test_ping_json(namespace: str) -> None:
    echo, port = start_echo(namespace, "--count", "3", "--json")
    try:
        ping = run(namespace, "--json", "ping", "-c", "3", "-i", "0", "2", str(port))
    finally:
        status, out, err = finish(echo)
    assert ping.returncode == 0, ping.stderr
    events = json_lines(ping.stdout)
    assert [e["event"] for e in events] == ["start", "reply", "reply", "reply", "summary"]
    assert [e["seq"] for e in events[1:4]] == [1, 2, 3]
    assert all(e["rtt_ms"] > 0 and e["size"] == 56 and (e["cid"], e["port"]) == (2, port)
               for e in events[1:4])
    summary = events[-1]
    assert {k: summary[k] for k in ("sent", "received", "lost", "loss_percent")} == \
        {"sent": 3, "received": 3, "lost": 0, "loss_percent": 0.0}
    assert summary["min_ms"] <= summary["avg_ms"] <= summary["max_ms"]
    assert status == 0, err
    echo_events = json_lines(out)
    # The first line (already read) was the bound event; then one per datagram.
    assert [e["event"] for e in echo_events] == ["echoed"] * 3


def test_ping_reports_loss_with_exit_4(namespace: str) -> None:
    """An echo server that answers only two datagrams: the rest are lost."""
    echo, port = start_echo(namespace, "--count", "2")
    ping = run(namespace, "--json", "ping", "-c", "3", "-i", "0", "--timeout", "0.3",
               "2", str(port))
    status, _, err = finish(echo)
    assert status == 0, err
    assert ping.returncode == cando_cli.EXIT_TIMEOUT == 4, ping.stderr
    events = json_lines(ping.stdout)
    assert [e["event"] for e in events] == ["start", "reply", "reply", "lost", "summary"]
    assert events[-1]["received"] == 2 and events[-1]["loss_percent"] == pytest.approx(33.3)


def test_ping_quiet_and_progress_on_a_terminal(namespace: str) -> None:
    echo, port = start_echo(namespace, "--count", "3")
    main, sub = pty.openpty()  # ping's stderr is a terminal: the progress line appears
    try:
        proc = subprocess.run(wrapped(namespace, "ping", "-q", "-c", "3", "-i", "0",
                                      "2", str(port)),
                              env=plain_env(), stdout=subprocess.PIPE, stderr=sub, text=True,
                              timeout=TIMEOUT)
        os.close(sub)
        seen = b""
        while select.select([main], [], [], 1)[0]:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        status, _, err = finish(echo)
    assert proc.returncode == 0 and status == 0, err
    assert proc.stdout.splitlines()[1:] [:2] == [f"--- 2:{port} ping statistics ---",
                                                 "3 sent, 3 received, 0% loss"]
    assert "bytes from" not in proc.stdout  # -q: no line per reply
    text = seen.decode()
    assert f"ping 2:{port}: 3/3 sent, 3 received, 0 lost" in text
    assert text.endswith("\r\x1b[K")  # the progress line is cleared at the end


def test_ping_nobody_there(namespace: str) -> None:
    proc = run(namespace, "ping", "-c", "1", "2", "4321")
    assert proc.returncode == 1
    assert "EHOSTUNREACH" in proc.stderr or "nobody is bound" in proc.stderr


def test_ping_itself_is_not_an_echo(namespace: str) -> None:
    """In a fresh world, the client's auto-bind takes 1024, the destination: not a reply."""
    proc = run(namespace, "ping", "-c", "2", "-i", "0", "2", "1024")
    assert proc.returncode == 1
    assert "nobody is bound at 2:1024" in proc.stderr
    assert "bytes from" not in proc.stdout


def test_echo_survives_a_sender_that_left(namespace: str) -> None:
    """send exits at once: the echo fails (EHOSTUNREACH), the server carries on."""
    echo, port = start_echo(namespace, "--count", "2", "--json")
    try:
        gone = run(namespace, "send", "2", str(port), "bye")
        assert gone.returncode == 0, gone.stderr
        ping = run(namespace, "ping", "-c", "1", "2", str(port))
    finally:
        status, out, err = finish(echo)
    assert ping.returncode == 0, ping.stderr
    assert status == 0, err
    events = json_lines(out)
    assert [e["event"] for e in events] in (["echo_failed", "echoed"], ["echoed", "echoed"])
    assert events[0]["size"] == 3 and events[1]["size"] == 56


def test_echo_timeout_exit_4(namespace: str) -> None:
    proc = run(namespace, "echo", "--timeout", "0.2")
    assert proc.returncode == 4
    assert int(proc.stdout.splitlines()[0]) >= 1024
    assert "no datagram within 0.2 s (0 received)" in proc.stderr


# -- send and recv --------------------------------------------------------------------------


def test_send_arguments_recv_text(namespace: str) -> None:
    recv = start_recv(namespace, "--count", "3", "5000")
    sent = run(namespace, "send", "2", "5000", "hello", "wörld", "tab\there\\")
    status, out, err = finish(recv)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == "sent 5 bytes to 2:5000\nsent 6 bytes to 2:5000\nsent 9 bytes to 2:5000\n"
    assert status == 0, err
    lines = out.splitlines()
    sender = lines[0].split()[0]
    assert sender.startswith("2:") and sender != "2:5000"
    assert lines == [f"{sender} 5 hello", f"{sender} 6 wörld", f"{sender} 9 tab\\there\\\\"]


def test_send_stdin_lines_recv_json(namespace: str) -> None:
    # Counts all three: a receiver that left after two would make the third send
    # fail (EHOSTUNREACH), which a loaded machine shows.
    recv = start(namespace, "recv", "--json", "--count", "3")  # the kernel picks the port
    try:
        bound = json.loads(next_line(recv))
    except BaseException:
        finish_killed(recv)
        raise
    assert bound["event"] == "bound" and bound["cid"] == VMADDR_CID_ANY
    port = bound["port"]
    sent = run(namespace, "send", "--json", "2", str(port), stdin="first\n\n  \nsecond\n")
    status, out, err = finish(recv)
    assert sent.returncode == 0, sent.stderr
    # The blank line sends nothing; a line of spaces is a datagram.
    assert [e["size"] for e in json_lines(sent.stdout)] == [5, 2, 6]
    assert status == 0, err
    got = json_lines(out)
    assert [(e["event"], e["text"], e["hex"], e["size"]) for e in got] == [
        ("datagram", "first", b"first".hex(), 5), ("datagram", "  ", "2020", 2),
        ("datagram", "second", b"second".hex(), 6)]
    assert got[0]["cid"] == 2 and got[0]["port"] != port


def test_send_hex_file_recv_hex_and_raw(namespace: str, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4
    path = tmp_path / "blob.hex"
    path.write_text(blob.hex(" ", 16))  # with spaces: allowed
    recv = start_recv(namespace, "--count", "2", "--format", "hex", "5001")
    sent = run(namespace, "send", "--hex", "--file", str(path), "2", "5001")
    assert sent.returncode == 0, sent.stderr
    sent = run(namespace, "send", "--hex", "2", "5001", "00ff 10")
    assert sent.returncode == 0, sent.stderr
    status, out, err = finish(recv)
    assert status == 0, err
    first, second = out.splitlines()
    assert first.split()[1:] == ["1024", blob.hex()]
    assert second.split()[1:] == ["3", "00ff10"]

    raw = subprocess.Popen(wrapped(namespace, "recv", "--count", "1", "--format", "raw",
                                   "5002"), env=plain_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        assert raw.stderr is not None and raw.stdout is not None
        assert select.select([raw.stderr], [], [], TIMEOUT)[0]
        assert raw.stderr.readline().startswith(b"cando-vsock recv: bound to")
        binary = tmp_path / "blob.bin"
        binary.write_bytes(blob)
        sent = run(namespace, "send", "-q", "-f", str(binary), "2", "5002")
        assert (sent.returncode, sent.stdout) == (0, ""), sent.stderr
        out_b, err_b = raw.communicate(timeout=TIMEOUT)
    finally:
        if raw.poll() is None:
            raw.kill()
            raw.communicate(timeout=TIMEOUT)
    assert raw.returncode == 0, err_b
    assert out_b == blob  # the bytes, exactly, nothing else


def test_recv_timeout_exit_4(namespace: str) -> None:
    proc = run(namespace, "--json", "recv", "--timeout", "0.2")
    assert proc.returncode == 4
    events = json_lines(proc.stdout)
    assert [e["event"] for e in events] == ["bound", "error"]
    assert events[1]["exit_code"] == 4 and events[1]["received"] == 0


def test_recv_binds_the_given_cid(namespace: str) -> None:
    proc = run(namespace, "recv", "--cid", "7", "--timeout", "0", cid=5)
    assert proc.returncode == 1
    assert "bind 7:" in proc.stderr and "EADDRNOTAVAIL" in proc.stderr
    proc = run(namespace, "--json", "recv", "--cid", "5", "--timeout", "0", cid=5)
    assert proc.returncode == 4
    assert json_lines(proc.stdout)[0]["cid"] == 5


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--hex", "2", "5000", "zz"], None, "message 1: not hexadecimal"),
    (["2", "5000", ""], None, "message 1 is empty"),
    (["2", "5000"], "\n\n", "nothing to send"),
    (["--hex", "2", "5000"], "abc\n", "standard input, line 1: not hexadecimal"),
    (["--file", "/nonexistent/x", "2", "5000"], None, "/nonexistent/x: No such file"),
])
def test_send_bad_input(namespace: str, args: list[str], stdin: str | None,
                        message: str) -> None:
    proc = run(namespace, "send", *args, stdin=stdin)
    assert proc.returncode in (1, 2)
    assert message in proc.stderr
    assert proc.stdout == ""


def test_send_nobody_there(namespace: str) -> None:
    proc = run(namespace, "send", "2", "4999", "x")
    assert proc.returncode == 1
    assert "EHOSTUNREACH" in proc.stderr


# -- exit codes, usage, transport ---------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["send", "2"], ["send", "two", "5000", "x"], ["send", "2", "-5", "x"],
    ["recv", "--count", "0"], ["recv", "--timeout", "-1"], ["echo", "--format", "hex"],
    ["ping", "2", "5000", "--size", "4"], ["ping", "2"], ["recv", "x"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: cando-vsock")


@pytest.mark.parametrize("args", [["send", "2", "5000", "x"], ["recv", "5000"],
                                  ["echo"], ["ping", "2", "5000"]])
def test_no_transport_exit_3(args: list[str]) -> None:
    from test_cli import kernel_datagram_error

    if kernel_datagram_error() is None:
        pytest.skip("this kernel has a datagram transport")
    proc = cli(*args)
    assert proc.returncode == 3, proc.stderr
    assert "no AF_VSOCK datagram transport (ENODEV)" in proc.stderr
    assert f"cando-vsock run -- cando-vsock {' '.join(args)}" in proc.stderr
    proc = cli("--json", *args)
    assert proc.returncode == 3
    error = json_lines(proc.stdout)[-1]
    assert (error["event"], error["error"], error["exit_code"]) == ("error", "ENODEV", 3)


def test_named_cids(namespace: str) -> None:
    echo, port = start_echo(namespace, "--count", "1", "--cid", "host")
    ping = run(namespace, "ping", "-c", "1", "host", str(port))
    status, _, err = finish(echo)
    assert ping.returncode == 0, ping.stderr
    assert status == 0, err


def test_help_lists_exit_codes_and_examples() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for code in ("0", "1", "2", "3", "4", "126", "127", "130"):
        assert any(line.split()[:1] == [code] for line in proc.stdout.splitlines()), code
    for sub in ("send", "recv", "echo", "ping", "demo", "check", "local-cid",
                "wrapper-path", "run"):
        help_ = cli(sub, "--help")
        assert help_.returncode == 0
        assert "examples:\n  " in help_.stdout and f"cando-vsock {sub}" in help_.stdout
        assert "--json" in help_.stdout



@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_closed_stdout_exits_141_quietly(namespace: str, json_flag: list[str]) -> None:
    """A reader that goes away (`| head -1`) is no network failure: exit 141, no traceback."""
    echo, port = start_echo(namespace)
    try:
        ping = subprocess.Popen(wrapped(namespace, *json_flag, "ping", "-c", "2000", "-i", "0",
                                        "2", str(port)),
                                env=plain_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert ping.stdout is not None and ping.stderr is not None
        assert ping.stdout.readline()  # one line read, then the reader is gone
        ping.stdout.close()
        stderr = ping.stderr.read()
        assert ping.wait(timeout=TIMEOUT) == cando_cli.EXIT_BROKEN_PIPE, stderr
        assert "Traceback" not in stderr and "EPIPE" not in stderr, stderr
    finally:
        finish_killed(echo)
