/* SPDX-License-Identifier: MIT */
/*
 * bench_c: libcando against raw system calls, side by side, in one run.
 *
 * Every variant moves datagrams from a sender socket to a receiver socket in
 * this one thread: send, then receive (a batch variant sends B, then
 * receives B), so a datagram's cost is one send plus one receive, with no
 * scheduler in between. Rounds interleave the variants; each figure is the
 * median of the rounds, and each ratio the median of the per-round ratios
 * (a pair measured back to back).
 *
 *   unix_raw     AF_UNIX dgram, sendto + recvfrom (raw syscalls, bypassing
 *                any LD_PRELOAD)
 *   unix_mmsg    AF_UNIX dgram, sendmmsg + recvmmsg, B per call (raw syscalls)
 *   vsock_raw    AF_VSOCK dgram, sendto + recvfrom (libc, so: the wrapper
 *                when it is preloaded)
 *   vsock_lib    udo_vsock_udp_send_data + udo_vsock_udp_recv_data
 *   vsock_mmsg   AF_VSOCK, sendmmsg + recvmmsg, B per call
 *   vsock_batch  udo_vsock_udp_send_batch + udo_vsock_udp_recv_batch, B per call
 *
 * Usage: bench_c [--sizes 0,64,...] [--rounds N] [--min-ms MS] [--batch B]
 *                [--variants A,B,...] [--only VARIANT --iters N] [--json FILE]
 * --only + --iters run one variant a fixed number of times, unmeasured: for
 * valgrind --tool=callgrind (see callgrind.sh).
 * JSON goes to stdout (or --json FILE); a table goes to stderr.
 */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cando/vsock-udp.h>
#include <cando/vsock-udp-batch.h>

#define MAX_SIZES 32
#define MAX_ROUNDS 101
#define MAX_BATCH 64
#define MAX_PAYLOAD 65536

enum variant { UNIX_RAW, UNIX_MMSG, VSOCK_RAW, VSOCK_LIB, VSOCK_MMSG, VSOCK_BATCH, NVARIANTS };

static const char *const variant_names[NVARIANTS] = {
	"unix_raw", "unix_mmsg", "vsock_raw", "vsock_lib", "vsock_mmsg", "vsock_batch",
};

struct ctx {
	int utx, urx;                 /* AF_UNIX pair */
	struct sockaddr_un urx_addr;
	socklen_t urx_len;
	int vtx, vrx;                 /* AF_VSOCK pair, -1 without a transport */
	struct sockaddr_vm vrx_addr;
	unsigned int batch;
	char *sbuf, *rbuf[MAX_BATCH];
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void check(ssize_t got, ssize_t want, const char *what)
{
	if (got != want) {
		fprintf(stderr, "bench_c: %s returned %zd, expected %zd (%s)\n", what, got, want,
		        got < 0 ? strerror(got == -1 ? errno : (int) -got) : "short");
		exit(1);
	}
}

static void set_sndbuf(int fd)
{
	int size = 1 << 20;

	/* Room for a batch of 64 KiB datagrams in flight (the kernel doubles it). */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0)
		die("setsockopt(SO_SNDBUF)");
}

static void setup(struct ctx *c)
{
	struct sockaddr_un tx_addr = { .sun_family = AF_UNIX };
	struct sockaddr_vm any = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
	                           .svm_port = VMADDR_PORT_ANY };
	socklen_t len = sizeof(c->vrx_addr);
	unsigned int cid;
	int i, n;

	/* AF_UNIX: both ends bound, as the wrapper's sockets are, so recvfrom names the sender. */
	c->utx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	c->urx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->utx < 0 || c->urx < 0)
		die("socket(AF_UNIX)");
	c->urx_addr.sun_family = AF_UNIX;
	n = snprintf(c->urx_addr.sun_path + 1, sizeof(c->urx_addr.sun_path) - 1,
	             "cando-bench/%d/rx", (int) getpid());
	c->urx_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + (size_t) n);
	n = snprintf(tx_addr.sun_path + 1, sizeof(tx_addr.sun_path) - 1, "cando-bench/%d/tx",
	             (int) getpid());
	if (bind(c->urx, (struct sockaddr *) &c->urx_addr, c->urx_len) < 0 ||
	    bind(c->utx, (struct sockaddr *) &tx_addr,
	         (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + (size_t) n)) < 0)
		die("bind(AF_UNIX)");
	set_sndbuf(c->utx);

	c->vtx = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	c->vrx = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->vtx < 0 || c->vrx < 0) {
		fprintf(stderr, "bench_c: no AF_VSOCK datagram transport (%s): run under "
		        "vsock_wrapper; measuring AF_UNIX only\n", strerror(errno));
		c->vtx = c->vrx = -1;
	} else {
		if (bind(c->vrx, (struct sockaddr *) &any, sizeof(any)) < 0 ||
		    getsockname(c->vrx, (struct sockaddr *) &c->vrx_addr, &len) < 0)
			die("bind(AF_VSOCK)");
		cid = udo_vsock_udp_get_local_vcid();
		c->vrx_addr.svm_cid = cid == UINT32_MAX ? VMADDR_CID_HOST : cid;
		set_sndbuf(c->vtx);
	}
	c->sbuf = calloc(1, MAX_PAYLOAD);
	for (i = 0; i < MAX_BATCH; i++)
		c->rbuf[i] = calloc(1, MAX_PAYLOAD);
	if (!c->sbuf)
		die("calloc");
	memset(c->sbuf, 'x', MAX_PAYLOAD);
}

/* Move @count datagrams of @size bytes with variant @v; @count is a multiple of the batch. */
static void run(struct ctx *c, enum variant v, size_t size, unsigned long count)
{
	const unsigned int b = c->batch;
	struct sockaddr_un sun;
	struct sockaddr_vm from;
	struct mmsghdr smm[MAX_BATCH], rmm[MAX_BATCH];
	struct iovec siov[MAX_BATCH], riov[MAX_BATCH];
	struct sockaddr_vm vfrom[MAX_BATCH];
	struct sockaddr_un ufrom[MAX_BATCH];
	struct udo_vsock_udp_dgram sd[MAX_BATCH], rd[MAX_BATCH];
	socklen_t len;
	unsigned long i;
	unsigned int j;
	bool unix_mm = v == UNIX_MMSG;

	if (v == UNIX_MMSG || v == VSOCK_MMSG) {
		for (j = 0; j < b; j++) {
			siov[j] = (struct iovec) { c->sbuf, size };
			riov[j] = (struct iovec) { c->rbuf[j], MAX_PAYLOAD };
		}
	}
	if (v == VSOCK_BATCH) {
		for (j = 0; j < b; j++) {
			sd[j] = (struct udo_vsock_udp_dgram) { .data = c->sbuf, .size = size };
			rd[j] = (struct udo_vsock_udp_dgram) { .data = c->rbuf[j], .size = MAX_PAYLOAD,
			                                        .addr = &vfrom[j] };
		}
	}

	switch (v) {
	case UNIX_RAW:
		for (i = 0; i < count; i++) {
			check(syscall(SYS_sendto, c->utx, c->sbuf, size, 0, &c->urx_addr, c->urx_len),
			      (ssize_t) size, "sendto(AF_UNIX)");
			len = sizeof(sun);
			check(syscall(SYS_recvfrom, c->urx, c->rbuf[0], MAX_PAYLOAD, 0, &sun, &len),
			      (ssize_t) size, "recvfrom(AF_UNIX)");
		}
		break;
	case VSOCK_RAW:
		for (i = 0; i < count; i++) {
			check(sendto(c->vtx, c->sbuf, size, 0, (struct sockaddr *) &c->vrx_addr,
			             sizeof(c->vrx_addr)), (ssize_t) size, "sendto(AF_VSOCK)");
			len = sizeof(from);
			check(recvfrom(c->vrx, c->rbuf[0], MAX_PAYLOAD, 0, (struct sockaddr *) &from,
			               &len), (ssize_t) size, "recvfrom(AF_VSOCK)");
		}
		break;
	case VSOCK_LIB:
		for (i = 0; i < count; i++) {
			check(udo_vsock_udp_send_data(c->vtx, c->sbuf, size, &c->vrx_addr, NULL),
			      (ssize_t) size, "udo_vsock_udp_send_data");
			check(udo_vsock_udp_recv_data(c->vrx, c->rbuf[0], MAX_PAYLOAD, &from, NULL),
			      (ssize_t) size, "udo_vsock_udp_recv_data");
		}
		break;
	case UNIX_MMSG:
	case VSOCK_MMSG:
		for (i = 0; i < count; i += b) {
			for (j = 0; j < b; j++) {
				smm[j].msg_hdr = (struct msghdr) {
					.msg_name = unix_mm ? (void *) &c->urx_addr : (void *) &c->vrx_addr,
					.msg_namelen = unix_mm ? c->urx_len : sizeof(c->vrx_addr),
					.msg_iov = &siov[j], .msg_iovlen = 1 };
				rmm[j].msg_hdr = (struct msghdr) {
					.msg_name = unix_mm ? (void *) &ufrom[j] : (void *) &vfrom[j],
					.msg_namelen = unix_mm ? sizeof(ufrom[j]) : sizeof(vfrom[j]),
					.msg_iov = &riov[j], .msg_iovlen = 1 };
			}
			if (unix_mm) {
				check(syscall(SYS_sendmmsg, c->utx, smm, b, 0), b, "sendmmsg(AF_UNIX)");
				check(syscall(SYS_recvmmsg, c->urx, rmm, b, MSG_WAITFORONE, NULL), b,
				      "recvmmsg(AF_UNIX)");
			} else {
				check(sendmmsg(c->vtx, smm, b, 0), b, "sendmmsg(AF_VSOCK)");
				check(recvmmsg(c->vrx, rmm, b, MSG_WAITFORONE, NULL), b,
				      "recvmmsg(AF_VSOCK)");
			}
			if (rmm[b - 1].msg_len != size)
				check(rmm[b - 1].msg_len, (ssize_t) size, "recvmmsg length");
		}
		break;
	case VSOCK_BATCH: {
		const int waitforone = MSG_WAITFORONE;

		for (i = 0; i < count; i += b) {
			check(udo_vsock_udp_send_batch(c->vtx, sd, b, &c->vrx_addr, NULL), b,
			      "udo_vsock_udp_send_batch");
			check(udo_vsock_udp_recv_batch(c->vrx, rd, b, &waitforone), b,
			      "udo_vsock_udp_recv_batch");
			if (rd[b - 1].len != size)
				check((ssize_t) rd[b - 1].len, (ssize_t) size, "recv_batch length");
		}
		break;
	}
	case NVARIANTS:
		break;
	}
}

static bool applies(const struct ctx *c, enum variant v, size_t size)
{
	if (v >= VSOCK_RAW && c->vtx < 0)
		return false;
	/* The library refuses empty datagrams (-EINVAL, as documented). */
	if ((v == VSOCK_LIB || v == VSOCK_BATCH) && size == 0)
		return false;
	return true;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double tmp[MAX_ROUNDS];

	memcpy(tmp, v, (size_t) n * sizeof(*v));
	qsort(tmp, (size_t) n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static size_t parse_sizes(const char *s, size_t *sizes)
{
	size_t n = 0;
	char *end;

	while (*s && n < MAX_SIZES) {
		sizes[n] = strtoul(s, &end, 0);
		if (end == s || sizes[n] > MAX_PAYLOAD) {
			fprintf(stderr, "bench_c: bad --sizes (0..%d)\n", MAX_PAYLOAD);
			exit(2);
		}
		n++;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

struct ratio_def {
	const char *name;
	enum variant num, den;
};

static const struct ratio_def ratio_defs[] = {
	{ "lib_vs_raw", VSOCK_LIB, VSOCK_RAW },        /* target <= 1.03 */
	{ "wrapper_vs_unix", VSOCK_RAW, UNIX_RAW },    /* target <= 1.3 */
	{ "batch_vs_mmsg", VSOCK_BATCH, VSOCK_MMSG },
	{ "batch_vs_raw", VSOCK_BATCH, VSOCK_RAW },
	{ "wrapper_mmsg_vs_unix_mmsg", VSOCK_MMSG, UNIX_MMSG },
};

int main(int argc, char **argv)
{
	static double ns[MAX_SIZES][NVARIANTS][MAX_ROUNDS];
	size_t sizes[MAX_SIZES] = { 0, 64, 256, 1024, 4096, 16384, 65536 };
	size_t nsizes = 7, s;
	unsigned long iters[MAX_SIZES][NVARIANTS];
	int rounds = 7, min_ms = 20, only = -1, r, v, a;
	bool wanted[NVARIANTS] = { true, true, true, true, true, true };
	unsigned long fixed_iters = 0;
	const char *json_path = NULL;
	FILE *out = stdout;
	struct ctx c = { .batch = 8 };

	for (a = 1; a < argc; a++) {
		const char *arg = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;

		if (!val) {
			fprintf(stderr, "bench_c: %s needs a value\n", arg);
			return 2;
		}
		a++;
		if (!strcmp(arg, "--sizes"))
			nsizes = parse_sizes(val, sizes);
		else if (!strcmp(arg, "--rounds"))
			rounds = atoi(val);
		else if (!strcmp(arg, "--min-ms"))
			min_ms = atoi(val);
		else if (!strcmp(arg, "--batch"))
			c.batch = (unsigned int) atoi(val);
		else if (!strcmp(arg, "--iters"))
			fixed_iters = strtoul(val, NULL, 0);
		else if (!strcmp(arg, "--variants")) {
			for (v = 0; v < NVARIANTS; v++) {
				const char *hit = strstr(val, variant_names[v]);
				size_t n = strlen(variant_names[v]);

				wanted[v] = hit && (hit == val || hit[-1] == ',') &&
				            (hit[n] == ',' || hit[n] == '\0');
			}
		} else if (!strcmp(arg, "--json"))
			json_path = val;
		else if (!strcmp(arg, "--only")) {
			for (v = 0; v < NVARIANTS && strcmp(val, variant_names[v]); v++)
				;
			if (v == NVARIANTS) {
				fprintf(stderr, "bench_c: unknown variant %s\n", val);
				return 2;
			}
			only = v;
		} else {
			fprintf(stderr, "usage: bench_c [--sizes 0,64,...] [--rounds N] [--min-ms MS] "
			        "[--batch B] [--variants A,B] [--only VARIANT --iters N] [--json FILE]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAX_ROUNDS || c.batch < 1 || c.batch > MAX_BATCH || !nsizes) {
		fprintf(stderr, "bench_c: --rounds 1..%d, --batch 1..%d\n", MAX_ROUNDS, MAX_BATCH);
		return 2;
	}
	setup(&c);

	if (only >= 0) {
		/* Fixed work for callgrind: a warm-up of one batch, then --iters datagrams. */
		unsigned long n = fixed_iters ? fixed_iters : 10000;

		n = (n + c.batch - 1) / c.batch * c.batch;
		for (s = 0; s < nsizes; s++) {
			if (!applies(&c, (enum variant) only, sizes[s]))
				continue;
			run(&c, (enum variant) only, sizes[s], c.batch);
			run(&c, (enum variant) only, sizes[s], n);
		}
		return 0;
	}

	/* Calibrate: enough datagrams per measurement for --min-ms. */
	for (s = 0; s < nsizes; s++) {
		for (v = 0; v < NVARIANTS; v++) {
			unsigned long n = c.batch * 16;
			uint64_t t;

			iters[s][v] = 0;
			if (!wanted[v] || !applies(&c, (enum variant) v, sizes[s]))
				continue;
			run(&c, (enum variant) v, sizes[s], n);	/* warm up */
			t = now_ns();
			run(&c, (enum variant) v, sizes[s], n);
			t = now_ns() - t;
			n = (unsigned long) ((double) min_ms * 1e6 / ((double) t / (double) n + 1));
			iters[s][v] = (n < c.batch ? c.batch : n) / c.batch * c.batch;
		}
	}
	/* Rounds, interleaved: every variant at every size once per round. */
	for (r = 0; r < rounds; r++) {
		for (s = 0; s < nsizes; s++) {
			for (v = 0; v < NVARIANTS; v++) {
				uint64_t t;

				if (!iters[s][v])
					continue;
				t = now_ns();
				run(&c, (enum variant) v, sizes[s], iters[s][v]);
				ns[s][v][r] = (double) (now_ns() - t) / (double) iters[s][v];
			}
		}
	}

	if (json_path && !(out = fopen(json_path, "w")))
		die(json_path);
	fprintf(out, "{\n  \"benchmark\": \"bench_c\",\n  \"transport\": \"%s\",\n"
	        "  \"rounds\": %d,\n  \"batch\": %u,\n  \"results\": [",
	        c.vtx < 0 ? "none" : getenv("LD_PRELOAD") ? "vsock_wrapper" : "kernel",
	        rounds, c.batch);
	fprintf(stderr, "%8s %-12s %12s %12s %10s\n", "size", "variant", "ns/dgram", "dgrams/s", "MB/s");
	a = 0;
	for (s = 0; s < nsizes; s++) {
		for (v = 0; v < NVARIANTS; v++) {
			double m, dps;

			if (!iters[s][v])
				continue;
			m = median(ns[s][v], rounds);
			dps = 1e9 / m;
			fprintf(out, "%s\n    {\"variant\": \"%s\", \"size\": %zu, \"iterations\": %lu, "
			        "\"ns_per_dgram\": %.1f, \"dgrams_per_s\": %.0f, \"mb_per_s\": %.2f, "
			        "\"samples_ns\": [", a++ ? "," : "", variant_names[v], sizes[s],
			        iters[s][v], m, dps, dps * (double) sizes[s] / 1e6);
			for (r = 0; r < rounds; r++)
				fprintf(out, "%s%.1f", r ? ", " : "", ns[s][v][r]);
			fprintf(out, "]}");
			fprintf(stderr, "%8zu %-12s %12.1f %12.0f %10.2f\n", sizes[s], variant_names[v],
			        m, dps, dps * (double) sizes[s] / 1e6);
		}
	}
	fprintf(out, "\n  ],\n  \"ratios\": [");
	a = 0;
	for (s = 0; s < nsizes; s++) {
		for (v = 0; v < (int) UDO_ARRAY_LEN(ratio_defs); v++) {
			const struct ratio_def *d = &ratio_defs[v];
			double per_round[MAX_ROUNDS], m;

			if (!iters[s][d->num] || !iters[s][d->den])
				continue;
			for (r = 0; r < rounds; r++)
				per_round[r] = ns[s][d->num][r] / ns[s][d->den][r];
			m = median(per_round, rounds);
			fprintf(out, "%s\n    {\"ratio\": \"%s\", \"size\": %zu, \"time_ratio\": %.4f}",
			        a++ ? "," : "", d->name, sizes[s], m);
			fprintf(stderr, "%8zu %-28s %.3fx time\n", sizes[s], d->name, m);
		}
	}
	fprintf(out, "\n  ]\n}\n");
	if (out != stdout)
		fclose(out);
	return 0;
}
