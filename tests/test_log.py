"""``cando.log``: the C library's log level, target fd, colours, and error records.

The settings are process-wide in libcando: each test restores the defaults
(level NONE, stdout, colours on) when it ends.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any, Iterator

import pytest

import cando
from cando import VMADDR_CID_ANY, VMADDR_CID_HOST, Client, Server, log

LIB: Any = cando._cando.lib
ANYLOG: Any = log  # for calls with wrong types on purpose
STAMP = r"\[\d\d:\d\d:\d\d\] "


def _restore_defaults() -> None:
    log.set_level(log.Level.NONE)
    log.set_write_fd(1)
    log.reset_colors()


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        yield r, w
    finally:
        _restore_defaults()
        os.close(r)
        os.close(w)


def _read(fd: int) -> str:
    try:
        return os.read(fd, 65536).decode()
    except BlockingIOError:
        return ""


def test_level_mirrors_the_c_enum() -> None:
    members = log.Level.__members__
    assert list(members) == ["NONE", "SUCCESS", "ERROR", "INFO", "WARNING", "RESET", "ALL"]
    for name, member in members.items():
        assert member.value == getattr(LIB, f"UDO_LOG_{name}"), name
    both = log.Level.ERROR | log.Level.WARNING
    assert isinstance(both, log.Level) and int(both) == 0x0A
    assert log.Level.ERROR in log.Level.ALL


def test_level_filters_and_colours(pipe: tuple[int, int]) -> None:
    r, w = pipe
    log.set_write_fd(w)
    log.write(log.Level.INFO, "silent by default")
    assert _read(r) == ""  # the default level is NONE
    log.set_level(log.Level.INFO | log.Level.ERROR)
    log.write(log.Level.INFO, "an info line")
    log.write(log.Level.WARNING, "a filtered warning")
    log.write(log.Level.ERROR, b"an error line", timestamp=False)
    text = _read(r)
    lines = text.splitlines()
    assert len(lines) == 2, text
    assert re.fullmatch(STAMP + "\x1b\\[34man info line\x1b\\[0m", lines[0])
    assert lines[1] == "\x1b[31man error line\x1b[0m"
    log.set_colors(False)
    log.write(log.Level.INFO, "plain")
    assert re.fullmatch(STAMP + "plain\n", _read(r))
    log.remove_colors()
    log.write(log.Level.ERROR, "still plain", timestamp=False)
    assert _read(r) == "still plain\n"
    log.set_colors(True)
    log.write(log.Level.ERROR, "red again", timestamp=False)
    assert _read(r) == "\x1b[31mred again\x1b[0m\n"
    log.set_level(log.Level.NONE)
    log.write(log.Level.ERROR, "off")
    assert _read(r) == ""
    log.set_level(0xFFFFFFFF)
    log.write(log.Level.ALL, "%s %d are not formats", timestamp=False)
    assert _read(r) == "%s %d are not formats\n"


def test_write_fd_accepts_an_object_with_fileno(pipe: tuple[int, int]) -> None:
    r, w = pipe
    target = os.fdopen(os.dup(w), "wb", buffering=0)
    log.set_write_fd(target)
    log.set_level(log.Level.ALL)
    log.remove_colors()
    log.write(log.Level.SUCCESS, "through the file", timestamp=False)
    assert _read(r) == "through the file\n"
    log.set_write_fd(1)  # releases the file object
    target.close()


def test_library_errors_are_logged_natively(pipe: tuple[int, int]) -> None:
    """Without the wrapper (no vsock datagrams here), the failing socket() is logged."""
    r, w = pipe
    log.set_write_fd(w)
    log.set_level(log.Level.ERROR)
    log.remove_colors()
    try:
        Server(VMADDR_CID_ANY, -1).close()
    except OSError as exc:
        text = _read(r)
        assert re.fullmatch(STAMP + r"udo_vsock_udp_server_create: socket: .+\n", text), text
        assert exc.strerror is not None and exc.strerror.split(";")[0] in text
    else:
        pytest.skip("this kernel carries vsock datagrams: nothing fails")


@pytest.mark.parametrize(("call", "kind"), [
    (lambda: ANYLOG.set_level("ERROR"), TypeError),
    (lambda: ANYLOG.set_level(None), TypeError),
    (lambda: ANYLOG.set_level(True), TypeError),
    (lambda: ANYLOG.set_level(-1), ValueError),
    (lambda: ANYLOG.set_level(2**32), ValueError),
    (lambda: ANYLOG.set_write_fd(None), TypeError),
    (lambda: ANYLOG.set_write_fd("1"), TypeError),
    (lambda: ANYLOG.set_write_fd(-1), ValueError),
    (lambda: ANYLOG.set_write_fd(object()), TypeError),
    (lambda: ANYLOG.set_colors(1), TypeError),
    (lambda: ANYLOG.write(log.Level.INFO, 5), TypeError),
    (lambda: ANYLOG.write(log.Level.INFO, "nul\0byte"), ValueError),
    (lambda: ANYLOG.write(log.Level.INFO, "x", timestamp=None), TypeError),
    (lambda: ANYLOG.get_error(object()), TypeError),
    (lambda: ANYLOG.set_error(object(), 1, "x"), TypeError),
])
def test_bad_arguments_raise_before_any_c_call(monkeypatch: pytest.MonkeyPatch,
                                               call: Any, kind: type) -> None:
    called: list[str] = []

    class Spy:
        def __getattr__(self, name: str) -> Any:
            def refuse(*args: object) -> Any:
                called.append(name)
                raise AssertionError(f"C call lib.{name}")
            return refuse

    monkeypatch.setattr(log, "lib", Spy())
    with pytest.raises(kind):
        call()
    assert called == []


def w_error_records() -> dict[str, Any]:
    out: dict[str, Any] = {}
    r, w = os.pipe()
    try:
        log.set_write_fd(w)
        log.set_level(log.Level.ERROR)
        log.remove_colors()
        try:
            Server(7, -1)
        except OSError as exc:
            out["exc"] = (exc.errno, exc.strerror)
        log.set_level(log.Level.NONE)
        os.write(w, b"END")
        out["logged"] = os.read(r, 65536).decode()
    finally:
        _restore_defaults()
        os.close(r)
        os.close(w)
    with Client(VMADDR_CID_HOST, 9) as cli:
        out["fresh"] = log.get_error(cli)
        try:
            cli.send(b"x")
        except OSError:
            pass
        out["after_send"] = log.get_error(cli)
        out["same_as_property"] = cli.last_error == out["after_send"]
        log.set_error(cli, 0x1001, "caller's own record")
        out["set"] = cli.last_error
        log.set_error(cli, 5, "y" * 600)
        out["long"] = cli.last_error
    out["closed"] = type(_raises(lambda: log.get_error(cli))).__name__
    return out


def _raises(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def test_error_records_and_logged_failures(wrapped_worker: Any) -> None:
    out = wrapped_worker.call(w_error_records)
    err, message = out["exc"]
    assert err == errno.EADDRNOTAVAIL
    assert out["logged"].endswith("END")
    line = out["logged"][:-3]
    assert re.fullmatch(STAMP + "udo_vsock_udp_server_create: bind: .+\n", line), line
    assert message in line
    assert out["fresh"] == (0, "")
    assert out["after_send"] == (errno.EHOSTUNREACH, f"sendto: {os.strerror(errno.EHOSTUNREACH)}")
    assert out["same_as_property"] is True
    assert out["set"] == (LIB.UDO_LOG_ERR_INCORRECT_DATA, "caller's own record")
    assert out["long"] == (5, "y" * (LIB.UDO_LOG_ERROR_BUFFER_SIZE - 1))
    assert out["closed"] == "OSError"
