/* SPDX-License-Identifier: MIT */
/*
 * Configuration, libc symbol resolution and debug tracing.
 *
 * Everything is set up once, under pthread_once, either by the constructor or by
 * the first interposed call (another library's constructor may call socket()
 * before ours runs).  The environment is read at that point only.
 *
 * Bad values are reported on stderr, once, and replaced by the default: a test
 * run should not die from a typo, but it must not be silent either.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vsw.h"

struct vsw_config vsw_cfg;
struct vsw_real vsw_real;

static pthread_once_t p_once = PTHREAD_ONCE_INIT;

void vsw_fdtab_init(void);	/* fdtab.c */

static void p_warn(const char *var, const char *val, const char *why, const char *fallback)
{
	char line[512];
	int n = snprintf(line, sizeof(line),
			 "vsock_wrapper: %s=\"%s\" %s; using %s\n", var, val, why, fallback);

	if (n > 0 && vsw_real.write)
		(void)!vsw_real.write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* A decimal number in [lo, hi], all of the string, or false. */
static bool p_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* FNV-1a, to fold an over-long namespace into a name that still fits sun_path. */
static uint64_t p_fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static void p_config(void)
{
	const char *v;
	uint64_t n;
	char ns[72];
	int len;

	vsw_cfg.cid = VMADDR_CID_HOST;
	vsw_cfg.max_dgram = VSW_DEFAULT_MAX_DGRAM;

	v = getenv("VSOCK_WRAPPER_CID");
	if (v && *v) {
		/* 0 (hypervisor), 1 (loopback) and ANY are never a machine's own CID. */
		if (p_parse_u64(v, 2, VMADDR_CID_ANY - 1, &n))
			vsw_cfg.cid = (uint32_t)n;
		else
			p_warn("VSOCK_WRAPPER_CID", v, "is not a CID in [2, 4294967294]", "2");
	}

	v = getenv("VSOCK_WRAPPER_MAX_DGRAM");
	if (v && *v) {
		/* AF_UNIX carries at most about 2 * wmem_max; 1 MiB is a safe ceiling. */
		if (p_parse_u64(v, 0, 1u << 20, &n))
			vsw_cfg.max_dgram = (size_t)n;
		else
			p_warn("VSOCK_WRAPPER_MAX_DGRAM", v, "is not a size in [0, 1048576]", "69608");
	}

	v = getenv("VSOCK_WRAPPER_FULL");
	if (v && *v) {
		if (!strcmp(v, "drop"))
			vsw_cfg.drop = true;
		else if (strcmp(v, "block"))
			p_warn("VSOCK_WRAPPER_FULL", v, "is neither \"block\" nor \"drop\"", "block");
	}

	v = getenv("VSOCK_WRAPPER_DEBUG");
	vsw_cfg.debug = v && *v && strcmp(v, "0");

	v = getenv("VSOCK_WRAPPER_NAMESPACE");
	if (!v || !*v)
		v = "default";
	/* The longest name, "\0vsock_wrapper/NS/4294967294/4294967294", must fit
	 * sun_path (108 bytes): NS gets 71.  A longer one is folded, the same way in
	 * every process, so it still names one world. */
	if (strlen(v) <= 71)
		len = snprintf(ns, sizeof(ns), "%s", v);
	else
		len = snprintf(ns, sizeof(ns), "%.50s#%016" PRIx64, v, p_fnv1a(v));
	(void)len;
	vsw_cfg.prefix[0] = '\0';
	len = snprintf(vsw_cfg.prefix + 1, sizeof(vsw_cfg.prefix) - 1, "vsock_wrapper/%s/", ns);
	vsw_cfg.prefix_len = 1 + (size_t)len;
}

#define P_SYM(field, name) \
	(*(void **)&vsw_real.field = dlsym(RTLD_NEXT, name))

static void p_resolve(void)
{
	P_SYM(socket, "socket");
	P_SYM(socketpair, "socketpair");
	P_SYM(bind, "bind");
	P_SYM(connect, "connect");
	P_SYM(getsockname, "getsockname");
	P_SYM(getpeername, "getpeername");
	P_SYM(getsockopt, "getsockopt");
	P_SYM(setsockopt, "setsockopt");
	P_SYM(shutdown, "shutdown");
	P_SYM(send, "send");
	P_SYM(sendto, "sendto");
	P_SYM(sendmsg, "sendmsg");
	P_SYM(sendmmsg, "sendmmsg");
	P_SYM(recv, "recv");
	P_SYM(recvfrom, "recvfrom");
	P_SYM(recvmsg, "recvmsg");
	P_SYM(recvmmsg, "recvmmsg");
	P_SYM(read, "read");
	P_SYM(write, "write");
	P_SYM(readv, "readv");
	P_SYM(writev, "writev");
	P_SYM(recv_chk, "__recv_chk");
	P_SYM(recvfrom_chk, "__recvfrom_chk");
	P_SYM(read_chk, "__read_chk");
	P_SYM(close, "close");
	P_SYM(close_range, "close_range");
	P_SYM(closefrom, "closefrom");
	P_SYM(dup, "dup");
	P_SYM(dup2, "dup2");
	P_SYM(dup3, "dup3");
	P_SYM(fcntl, "fcntl");
	P_SYM(fcntl64, "fcntl64");
	P_SYM(ioctl, "ioctl");
	P_SYM(open, "open");
	P_SYM(open64, "open64");
	P_SYM(openat, "openat");
	P_SYM(openat64, "openat64");
	P_SYM(open_2, "__open_2");
	P_SYM(open64_2, "__open64_2");
	P_SYM(openat_2, "__openat_2");
	P_SYM(openat64_2, "__openat64_2");
	/* An old libc may lack the 64-bit aliases: they are the same call here. */
	if (!vsw_real.fcntl64)
		vsw_real.fcntl64 = vsw_real.fcntl;
	if (!vsw_real.open64)
		vsw_real.open64 = vsw_real.open;
	if (!vsw_real.openat64)
		vsw_real.openat64 = vsw_real.openat;
}

static void p_init_once(void)
{
	int saved = errno;

	p_resolve();
	p_config();
	vsw_fdtab_init();
	errno = saved;
}

void vsw_init(void)
{
	pthread_once(&p_once, p_init_once);
}

__attribute__((constructor)) static void p_ctor(void)
{
	vsw_init();
}

void vsw_trace(const char *call, int fd, long ret, const char *fmt, ...)
{
	char line[512];
	size_t n;
	int saved = errno;
	va_list ap;

	if (!vsw_cfg.debug)
		return;
	n = (size_t)snprintf(line, sizeof(line), "vsock_wrapper[%d]: %s(fd %d", (int)getpid(),
			     call, fd);
	if (fmt && n < sizeof(line)) {
		va_start(ap, fmt);
		n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
	}
	if (n < sizeof(line)) {
		if (ret < 0)
			n += (size_t)snprintf(line + n, sizeof(line) - n, ") = -1 %s\n",
					      strerrorname_np(saved) ? strerrorname_np(saved) : "?");
		else
			n += (size_t)snprintf(line + n, sizeof(line) - n, ") = %ld\n", ret);
	}
	if (n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	(void)!vsw_real.write(2, line, n);
	errno = saved;
}
