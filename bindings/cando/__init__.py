"""cando: AF_VSOCK datagram sockets for C and Python.

    from cando import Client, Server

    with Server(port=-1) as srv, Client(2, srv.port) as cli:
        cli.send(b"hello")
        data, (cid, port) = srv.recvfrom(64)
"""

from __future__ import annotations

from ._errors import TransportUnavailableError
from ._paths import get_include, get_library_dir, wrapper_path
from .vsock_udp import (
    VMADDR_CID_ANY,
    VMADDR_CID_HOST,
    VMADDR_CID_HYPERVISOR,
    VMADDR_CID_LOCAL,
    VMADDR_PORT_ANY,
    Address,
    Client,
    Server,
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
    "Client",
    "Server",
    "TransportUnavailableError",
    "get_include",
    "get_library_dir",
    "local_cid",
    "wrapper_path",
]
