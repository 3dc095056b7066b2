"""Where the installed package keeps its C pieces, and the flags to use them.

The wheel holds ``libcando.so``, the headers (``include/cando/*.h``),
``libvsock_wrapper.so`` and a relocatable ``pkgconfig/cando.pc``, all inside
the ``cando`` package directory. ``python -m cando --cflags --libs`` prints the
same flags as ``pkg-config --cflags --libs cando`` with
``PKG_CONFIG_PATH=$(python -m cando --pkgconfigdir)``.
"""

from __future__ import annotations

import os
import shlex

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_include() -> str:
    """Directory to add with ``-I`` to compile against ``<cando/vsock-udp.h>``."""
    return os.path.join(_HERE, "include")


def get_library_dir() -> str:
    """Directory holding ``libcando.so`` (add with ``-L`` and as an rpath)."""
    return _HERE


def get_pkgconfig_dir() -> str:
    """Directory holding ``cando.pc``, for ``PKG_CONFIG_PATH``.

    Its paths are relative to ``${pcfiledir}``, so they are right wherever
    the package is installed; ``Libs`` carries an rpath to the package, since
    ``libcando.so`` is not on the dynamic loader's search path.
    """
    return os.path.join(_HERE, "pkgconfig")


def get_cflags() -> str:
    """Compiler flags for ``<cando/vsock-udp.h>``, as one shell-quoted string."""
    return f"-I{shlex.quote(get_include())}"


def get_libs() -> str:
    """Linker flags for libcando (``-L``, an rpath, ``-lcando``), one shell-quoted string."""
    libdir = shlex.quote(get_library_dir())
    return f"-L{libdir} -Wl,-rpath,{libdir} -lcando"


def wrapper_path() -> str:
    """Absolute path of ``libvsock_wrapper.so``, the LD_PRELOAD vsock datagram transport."""
    return os.path.join(_HERE, "libvsock_wrapper.so")
