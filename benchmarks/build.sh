#!/bin/sh
# Build bench_c against the installed cando package (pip install .):
#   benchmarks/build.sh [OUTPUT] [PYTHON]
# CC (default cc) and CFLAGS (default -O2) are honoured.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/bench_c}
py=${2:-python3}
inc=$("$py" -c 'import cando; print(cando.get_include())')
libdir=$("$py" -c 'import cando; print(cando.get_library_dir())')
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror ${CFLAGS:--O2 -g} -I"$inc" \
	-o "$out" "$here/bench_c.c" -L"$libdir" -lcando -Wl,-rpath,"$libdir"
echo "$out"
