"""cando: AF_VSOCK datagram sockets for C and Python.

    from cando import Client, Server

    with Server(port=-1) as srv, Client(2, srv.port) as cli:
        cli.send(b"hello")
        data, (cid, port) = srv.recvfrom(64)

:mod:`cando.aio` has the asyncio side, :mod:`cando.log` the C library's log
settings, :mod:`cando.errors` the exceptions.
"""

from __future__ import annotations

from . import errors, log
from ._paths import get_include, get_library_dir, get_pkgconfig_dir, wrapper_path
from .buffer import Buffer
from .errors import TransportUnavailableError
from .vsock_udp import (
    VMADDR_CID_ANY,
    VMADDR_CID_HOST,
    VMADDR_CID_HYPERVISOR,
    VMADDR_CID_LOCAL,
    VMADDR_PORT_ANY,
    Address,
    Client,
    Connection,
    Server,
    VsockSocket,
    instance_size,
    local_cid,
)

__version__ = "0.1.0"

__all__ = [
    "VMADDR_CID_ANY",
    "VMADDR_CID_HOST",
    "VMADDR_CID_HYPERVISOR",
    "VMADDR_CID_LOCAL",
    "VMADDR_PORT_ANY",
    "Address",
    "Buffer",
    "Client",
    "Connection",
    "Server",
    "TransportUnavailableError",
    "VsockSocket",
    "errors",
    "get_include",
    "get_library_dir",
    "get_pkgconfig_dir",
    "instance_size",
    "local_cid",
    "log",
    "wrapper_path",
]
