"""Argument checks the Python layers share: they run before any C call, so a
bad argument is a TypeError or ValueError and never reaches C."""

from __future__ import annotations

from typing import Tuple

U32_MAX = 0xFFFFFFFF
INT_MAX = 0x7FFFFFFF


def check_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]`` (bool refused, as socket refuses it)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def check_address(address: object) -> Tuple[int, int]:
    """A ``(cid, port)`` destination, both unsigned 32-bit as in ``sockaddr_vm``."""
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError(f"address must be a (cid, port) tuple, not {type(address).__name__}")
    return check_int("cid", address[0], 0, U32_MAX), check_int("port", address[1], 0, U32_MAX)
