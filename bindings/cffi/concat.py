"""Join the cdef pieces into one file: concat.py OUTPUT INPUT..."""

import sys

with open(sys.argv[1], "w", encoding="utf-8") as out:
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as src:
            out.write(src.read())
            out.write("\n")
