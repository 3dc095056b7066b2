"""The one place where C failures become Python exceptions.

libcando reports a failure as an ``errno`` value (a negative return, or
``errno`` itself) and, where an instance exists, a message naming the failing
call (``"bind: Address already in use"``). :func:`error_from_errno` turns the
pair into the :class:`OSError` subclass Python's own :mod:`socket` would raise
for that ``errno``, so ``except BlockingIOError`` or ``except
ConnectionRefusedError`` work as they do with sockets, plus
:class:`TransportUnavailableError` for a kernel without vsock datagrams.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Dict, Type

__all__ = [
    "ERRNO_CLASSES",
    "TransportUnavailableError",
    "closed_error",
    "error_from_errno",
    "timeout_error",
]


class TransportUnavailableError(OSError):
    """The kernel has no AF_VSOCK datagram transport (``ENODEV``).

    Only VMware's VMCI transport carries vsock datagrams in Linux; on KVM,
    Firecracker, cloud VMs and most hosts ``socket(AF_VSOCK, SOCK_DGRAM)``
    fails. Run the program under vsock_wrapper instead:
    ``cando-vsock run -- python3 your_program.py`` (or set ``LD_PRELOAD`` to
    ``cando-vsock wrapper-path``).
    """


_HINT = (
    "; only VMware's VMCI transport carries vsock datagrams. Run the program under the"
    " emulated transport: cando-vsock run -- PROGRAM"
    " (or LD_PRELOAD=$(cando-vsock wrapper-path))"
)

#: ``errno`` -> the exception class raised for it. Anything absent is a plain
#: ``OSError``. The builtin subclasses are the ones ``OSError(errno, ...)``
#: itself picks (PEP 3151), listed here so the mapping is explicit and complete.
ERRNO_CLASSES: Dict[int, Type[OSError]] = {
    _errno.ENODEV: TransportUnavailableError,
    _errno.EAGAIN: BlockingIOError,
    _errno.EWOULDBLOCK: BlockingIOError,
    _errno.EALREADY: BlockingIOError,
    _errno.EINPROGRESS: BlockingIOError,
    _errno.EINTR: InterruptedError,
    _errno.ETIMEDOUT: TimeoutError,
    _errno.ECONNREFUSED: ConnectionRefusedError,
    _errno.ECONNRESET: ConnectionResetError,
    _errno.ECONNABORTED: ConnectionAbortedError,
    _errno.EPIPE: BrokenPipeError,
    _errno.ESHUTDOWN: BrokenPipeError,
    _errno.EACCES: PermissionError,
    _errno.EPERM: PermissionError,
    _errno.ENOENT: FileNotFoundError,
    _errno.ECHILD: ChildProcessError,
    _errno.EEXIST: FileExistsError,
}


def error_from_errno(err: int, message: str | None = None) -> OSError:
    """The exception for ``err``, with the library's ``message`` (else ``strerror``)."""
    text = message or os.strerror(err)
    cls = ERRNO_CLASSES.get(err, OSError)
    if cls is TransportUnavailableError:
        if "datagram transport" not in text:
            text += " (this kernel has no AF_VSOCK datagram transport)"
        text += _HINT
    return cls(err, text)


def closed_error() -> OSError:
    """What every operation on a closed cando socket raises (``EBADF``), as ``socket`` does."""
    return OSError(_errno.EBADF, "the vsock socket is closed")


def timeout_error() -> TimeoutError:
    """What an operation raises when the socket's timeout expires (as ``socket.timeout``)."""
    return TimeoutError("timed out")
