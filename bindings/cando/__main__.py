"""``python -m cando``: the cando-vsock command line."""

import sys

from .cli import main

sys.exit(main())
