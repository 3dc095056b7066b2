"""Where the installed package keeps its C pieces."""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_include() -> str:
    """Directory to add with ``-I`` to compile against ``<cando/vsock-udp.h>``."""
    return os.path.join(_HERE, "include")


def get_library_dir() -> str:
    """Directory holding ``libcando.so`` (add with ``-L`` and as an rpath)."""
    return _HERE


def wrapper_path() -> str:
    """Absolute path of ``libvsock_wrapper.so``, the LD_PRELOAD vsock datagram transport."""
    return os.path.join(_HERE, "libvsock_wrapper.so")
