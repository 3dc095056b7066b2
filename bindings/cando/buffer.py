"""Receive memory that cando owns.

The receive methods borrow any writable bytes-like object for the call, with
nothing allocated per datagram. A :class:`Buffer` is such memory owned by
cando: zeroed C memory of a fixed size, read as ``bytes`` slices or through a
``memoryview``, a bytes-like object itself on Python 3.12+. The C methods
(``cando._hot``) borrow it through its ``view``; the Python paths pass its
cdata to cffi as it is.

Also here: the helpers the Python paths use to hand a caller's buffer to cffi
(:func:`writable_view`) and to let go of it when a call fails
(:func:`release_view`).
"""

from __future__ import annotations

from typing import Any, overload

from ._args import check_int
from ._cando import ffi

__all__ = ["Buffer", "release_view", "writable_view"]

_MAX_SIZE = 1 << 30
_CHARS: Any = ffi.typeof("char[]")
_VIEW: Any = type(ffi.from_buffer(b"\0"))  # what ffi.from_buffer returns


class Buffer:
    """``size`` bytes of zeroed C memory to receive datagrams into.

    ``buf[i]`` is an int and ``buf[i:j]`` a ``bytes`` copy, as for
    ``bytes``; :attr:`view` is a writable :class:`memoryview` of the memory
    itself (no copy; the next receive overwrites it). On Python 3.12+ a
    ``Buffer`` is itself a bytes-like object (``memoryview(buf)``, and
    ``socket.recv_into`` accepts it). The memory lives as long as the
    ``Buffer`` or a view of it.
    """

    __slots__ = ("__weakref__", "_cdata", "_size", "_view")

    def __init__(self, size: int) -> None:
        self._size: int = check_int("size", size, 1, _MAX_SIZE)
        self._cdata: Any = ffi.new("char[]", self._size)
        # What the C methods borrow (cando._hot reads _view); the cffi paths
        # pass _cdata. The same memory: view is read-only so they cannot part.
        self._view: memoryview = memoryview(ffi.buffer(self._cdata))

    @property
    def view(self) -> memoryview:
        """A writable :class:`memoryview` of the memory itself (no copy)."""
        return self._view

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The receive methods recognise a Buffer by its exact type (one
        # comparison on the hot path); a subclass would silently lose that.
        raise TypeError("cando.Buffer cannot be subclassed")

    def __len__(self) -> int:
        return self._size

    def __copy__(self) -> Buffer:
        """A new Buffer with a copy of the bytes (not a second handle on this memory)."""
        other = Buffer(self._size)
        other._view[:] = self._view
        return other

    def __deepcopy__(self, memo: dict[int, Any]) -> Buffer:
        return self.__copy__()

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> bytes: ...

    def __getitem__(self, index: int | slice) -> int | bytes:
        if isinstance(index, slice):
            return self._view[index].tobytes()
        return int(self._view[index])

    def __bytes__(self) -> bytes:
        return self._view.tobytes()

    def __buffer__(self, flags: int) -> memoryview:  # PEP 688 (Python 3.12+)
        return self._view

    def __repr__(self) -> str:
        return f"<cando.Buffer size={self._size}>"


def writable_view(obj: object) -> Any:
    """What C receives into: a :class:`Buffer`'s own memory as it is, else a
    ``from_buffer`` view of ``obj`` (made for the call, released with it);
    anything else is a ``TypeError`` that says why."""
    if type(obj) is Buffer:
        return obj._cdata
    try:
        return ffi.from_buffer(_CHARS, obj, True)
    except (BufferError, TypeError) as exc:  # read-only, non-contiguous, not a buffer
        raise TypeError(
            f"buffer must be a writable, contiguous bytes-like object, not "
            f"{type(obj).__name__}: {exc}") from None


def release_view(view: object) -> None:
    """Drop a ``from_buffer`` view's hold on the caller's object, on the way
    out of a call that raised.

    A traceback keeps the frames' locals, the view among them. If the
    exception ends up in cyclic garbage (kept by an object it refers to,
    as asyncio does) with a ``memoryview`` the view holds, the collector
    clears the memoryview first, which cannot drop the export the view
    still holds, and the interpreter crashes when the view lets go of it.
    Released, the view holds nothing. ``bytes`` and a :class:`Buffer`'s
    memory are passed as they are and are no views: left alone.
    """
    if type(view) is _VIEW:
        ffi.release(view)
