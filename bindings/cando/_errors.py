"""The one place where C failures become Python exceptions."""

from __future__ import annotations

import errno as _errno
import os


class TransportUnavailableError(OSError):
    """The kernel has no AF_VSOCK datagram transport (``ENODEV``).

    Only VMware's VMCI transport carries vsock datagrams in Linux; on KVM,
    Firecracker, cloud VMs and most hosts ``socket(AF_VSOCK, SOCK_DGRAM)``
    fails. Run the program under vsock_wrapper instead:
    ``cando-vsock run -- python3 your_program.py``.
    """


_HINT = "; run the program under the emulated transport: cando-vsock run -- PROGRAM"


def error_from_errno(err: int, message: str | None = None) -> OSError:
    """An ``OSError`` (or the subclass Python maps ``err`` to) with the library's message."""
    text = message or os.strerror(err)
    if err == _errno.ENODEV:
        if "datagram transport" not in text:
            text += " (this kernel has no AF_VSOCK datagram transport)"
        return TransportUnavailableError(err, text + _HINT)
    # OSError(errno, ...) picks the builtin subclass: BlockingIOError for
    # EAGAIN, InterruptedError for EINTR, ConnectionRefusedError, ...
    return OSError(err, text)
