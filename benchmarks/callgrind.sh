#!/bin/sh
# Instructions libcando adds per call, by callgrind: inclusive cost of
# udo_vsock_udp_{send,recv}_data minus that of the sendto/recvfrom they call,
# over N datagrams of 64 bytes (under vsock_wrapper when the kernel has none).
#   benchmarks/callgrind.sh BENCH_C [N] [PYTHON]
set -eu
bench=$1
n=${2:-20000}
py=${3:-python3}
out=$(mktemp -d)
if [ -z "${LD_PRELOAD:-}" ]; then
	LD_PRELOAD=$("$py" -c 'import cando; print(cando.wrapper_path())')
	VSOCK_WRAPPER_NAMESPACE=callgrind-$$
	export LD_PRELOAD VSOCK_WRAPPER_NAMESPACE
fi
valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bench" --only vsock_lib \
	--iters "$n" --sizes 64 >/dev/null 2>&1
callgrind_annotate --inclusive=yes "$out/cg" 2>/dev/null | awk -v n="$n" '
	/:udo_vsock_udp_send_data \[/ { gsub(",", "", $1); send = $1 }
	/:udo_vsock_udp_recv_data \[/ { gsub(",", "", $1); recv = $1 }
	/\?\?\?:sendto \[/ { gsub(",", "", $1); sendto = $1 }
	/\?\?\?:recvfrom \[/ { gsub(",", "", $1); recvfrom = $1 }
	END {
		calls = n + 8	# bench_c warms up with one batch of 8
		printf "{\"calls\": %d, \"send_data_added_instructions\": %.1f, \"recv_data_added_instructions\": %.1f}\n",
			calls, (send - sendto) / calls, (recv - recvfrom) / calls
	}'
rm -rf "$out"
