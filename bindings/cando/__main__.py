"""``python -m cando``: the cando-vsock command line.

``python -m cando --cflags``, ``--libs`` and ``--pkgconfigdir`` print the flags
and the pkg-config directory of the installed libcando (as numpy-config does);
they are handled before any subcommand (see :func:`cando.cli.main`).
"""

import sys

from .cli import main

sys.exit(main())
