# The compiled cffi API-mode module: its names are only known at run time.
from typing import Any

ffi: Any
lib: Any
