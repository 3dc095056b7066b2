"""libcando's log: which levels it prints, where, and in colour or not.

The library prints nothing by default (:attr:`Level.NONE`). Settings are
process-wide and live in the C library, so they also govern C code linked
into the process::

    from cando import log
    log.set_level(log.Level.ERROR | log.Level.WARNING)
    log.set_write_fd(sys.stderr)       # an fd, or anything with fileno()
    log.set_colors(False)

The C library writes to the fd directly with one ``write(2)`` per line: a
Python file object given to :func:`set_write_fd` is not flushed first, and is
kept referenced here (so its fd stays open) until another target replaces it.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, Tuple

from ._cando import ffi, lib
from .errors import closed_error

__all__ = [
    "Level",
    "get_error",
    "remove_colors",
    "reset_colors",
    "set_colors",
    "set_error",
    "set_level",
    "set_write_fd",
    "write",
]

_U32_MAX = 0xFFFFFFFF


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


class Level(enum.IntFlag):
    """``enum udo_log_level_type``: the ``UDO_LOG_*`` levels, combinable with ``|``."""

    NONE = 0x00000000
    SUCCESS = 0x00000001
    ERROR = 0x00000002
    INFO = 0x00000004
    WARNING = 0x00000008
    RESET = 0x00000010
    ALL = 0xFFFFFFFF


_target: object | None = None  # the object whose fd the library writes to


def _level(value: object, name: str = "level") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be a cando.log.Level or an int, not {type(value).__name__}")
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"{name} must be in [0, {_U32_MAX:#x}], got {value}")
    return int(value)


def set_level(level: Level | int) -> None:
    """Print the levels in ``level`` (a :class:`Level` mask) from now on.

    Calls ``udo_log_set_level``. ``Level.NONE`` (the default) silences the
    library; ``Level.ALL`` prints everything.
    """
    lib.udo_log_set_level(_level(level))


def set_write_fd(target: int | _HasFileno) -> None:
    """Write log lines to ``target``: an fd, or an object with ``fileno()`` (a file, a socket).

    Calls ``udo_log_set_write_fd``. The default is stdout (fd 1).
    """
    global _target
    if isinstance(target, int) and not isinstance(target, bool):
        fd = target
    elif callable(getattr(target, "fileno", None)):
        fd = target.fileno()  # type: ignore[union-attr]
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise TypeError(f"{type(target).__name__}.fileno() returned "
                            f"{type(fd).__name__}, not int")
    else:
        raise TypeError(f"target must be an fd or have fileno(), not {type(target).__name__}")
    if not 0 <= fd <= 0x7FFFFFFF:
        raise ValueError(f"fd must be >= 0, got {fd}")
    lib.udo_log_set_write_fd(fd)
    _target = target


def remove_colors() -> None:
    """Plain text: no ANSI colour escapes (``udo_log_remove_colors``)."""
    lib.udo_log_remove_colors()


def reset_colors() -> None:
    """Colour each level with ANSI escapes again, the default (``udo_log_reset_colors``)."""
    lib.udo_log_reset_colors()


def set_colors(enabled: bool) -> None:
    """Colours on (``udo_log_reset_colors``) or off (``udo_log_remove_colors``)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, not {type(enabled).__name__}")
    if enabled:
        reset_colors()
    else:
        remove_colors()


def _text(message: object) -> Any:
    if isinstance(message, str):
        data = message.encode()
    elif isinstance(message, bytes):
        data = message
    else:
        raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
    if b"\0" in data:
        raise ValueError("message contains a NUL byte")
    return ffi.new("char[]", data)


def write(level: Level | int, message: str | bytes, *, timestamp: bool = True) -> None:
    """Log ``message`` at ``level`` through the library, if ``level`` is enabled.

    Calls ``udo_log_time`` (with a ``[HH:MM:SS]`` stamp) or, with
    ``timestamp=False``, ``udo_log_notime``. ``Level.ALL`` always prints
    unless the level is ``NONE`` (as ``udo_log_print``).
    """
    value = _level(level)
    if not isinstance(timestamp, bool):
        raise TypeError(f"timestamp must be a bool, not {type(timestamp).__name__}")
    text = _text(message)
    call = lib.udo_log_time if timestamp else lib.udo_log_notime
    call(value, b"%s", text)


def _instance(sock: object) -> Any:
    from .vsock_udp import _Instance

    if not isinstance(sock, _Instance):
        raise TypeError(f"sock must be a cando.Server or cando.Client, not {type(sock).__name__}")
    if sock.closed:
        raise closed_error()
    return sock._instance


def get_error(sock: object) -> Tuple[int, str]:
    """A :class:`~cando.Server`/:class:`~cando.Client`'s error record ``(code, message)``.

    Calls ``udo_log_get_error_code`` and ``udo_log_get_error`` (the same as
    ``sock.last_error``).
    """
    inst = _instance(sock)
    message = ffi.string(lib.udo_log_get_error(inst)).decode(errors="replace")
    return int(lib.udo_log_get_error_code(inst)), message


def set_error(sock: object, code: int, message: str | bytes) -> None:
    """Overwrite a socket's error record (``udo_log_set_error_struct``).

    The message is cut to the record's 511 bytes, as the C library does.
    """
    code = _level(code, "code")
    text = _text(message)
    lib.udo_log_set_error_struct(_instance(sock), code, b"%s", text)
