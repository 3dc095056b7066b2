"""Argument checks the Python layers share: they run before any C call, so a
bad argument is a TypeError or ValueError and never reaches C."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from ._cando import ffi, lib

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
    # Plain ints: an IntEnum member is accepted and passed on as its value.
    return (int(check_int("cid", address[0], 0, U32_MAX)),
            int(check_int("port", address[1], 0, U32_MAX)))


def check_flags(flags: object) -> int:
    """``MSG_*`` flags: an int (an ``IntFlag`` too) that fits a C ``int``."""
    return check_int("flags", flags, -INT_MAX - 1, INT_MAX)


# MSG_* flags as the C API takes them: a pointer to an int. One immutable cdata
# per flags value, shared by every socket and thread (never written after
# creation); flags 0 is NULL, which the library reads as 0.
_FLAGS: Dict[int, Any] = {}
_FLAGS_CACHE_MAX = 256


def flags_ptr(flags: object) -> Any:
    """The ``vsock_info`` argument for ``flags``: ``NULL`` for 0, else a cached ``int *``."""
    if isinstance(flags, int) and type(flags) is not bool:  # socket.MsgFlag too
        ptr = _FLAGS.get(flags)
        if ptr is not None:
            return ptr
    value = check_flags(flags)
    if value == 0:
        return ffi.NULL
    ptr = ffi.new("int *", value)
    if len(_FLAGS) < _FLAGS_CACHE_MAX:
        _FLAGS[int(value)] = ptr
    return ptr


def sockaddr(address: Tuple[int, int]) -> Any:
    """A new ``struct sockaddr_vm`` for a checked ``(cid, port)``."""
    addr = ffi.new("struct sockaddr_vm *")
    addr.svm_family = lib.AF_VSOCK
    addr.svm_cid, addr.svm_port = address
    return addr
