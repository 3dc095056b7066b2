/* SPDX-License-Identifier: MIT */
/*
 * lib_kernel: every udo_vsock_udp_* function of libcando on a real AF_VSOCK
 * datagram transport (Debian's kernel with VMCI, booted by tests/kernel/vm.py).
 *
 * Output: one line per case, "name: ok" or "name: FAIL <details>", in the order of
 * the cases[] table below (tests/test_kernel_lane.py reads the names from that
 * table), "info: ..." lines for facts worth seeing, then "done: N cases, M failed".
 * Exit status: the number of failed cases.
 *
 * Every receive that is not about blocking passes MSG_DONTWAIT: datagrams between
 * sockets of one kernel context are queued before sendto() returns, so nothing here
 * waits or sleeps, and a missing datagram is a failure, not a hang.
 *
 * Arguments (all optional):
 *   local-cid=any    the kernel lane: /dev/vsock reports VMADDR_CID_ANY, so
 *                    get_local_vcid() gives UINT32_MAX/EADDRNOTAVAIL and no CID
 *                    but VMADDR_CID_ANY can be bound (default)
 *   local-cid=N      a world whose local CID is N (e.g. vsock_wrapper's default 2)
 *   port-base=P      first port the cases bind (default 20000)
 *
 * Build: gcc -std=gnu11 -static -Iinclude lib_kernel.c build/lib/libcando.a
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <cando/log.h>
#include <cando/vsock-udp.h>

#include "../c/testutil.h"

#define MAX_DGRAM 69608
#define MAX_TRACKED 16

/* ------------------------------------------------------------------ harness */

static unsigned int local_cid = VMADDR_CID_ANY; /* VMADDR_CID_ANY: none */
static int next_port = 20000;

/* Instances and raw fds made by the running case, released after it. */
static struct udo_vsock_udp *tracked[MAX_TRACKED];
static int ntracked;
static int tracked_fds[MAX_TRACKED];
static int ntracked_fds;

static int port(void)
{
	return next_port++;
}

/* Record the failure and return from the case. */
#define REQUIRE(cond, ...)                     \
	do {                                   \
		if (!(cond))                   \
			return fail(__VA_ARGS__); \
	} while (0)

static struct udo_vsock_udp *track(struct udo_vsock_udp *vsock)
{
	if (vsock && ntracked < MAX_TRACKED)
		tracked[ntracked++] = vsock;
	return vsock;
}

static int track_fd(int fd)
{
	if (fd >= 0 && ntracked_fds < MAX_TRACKED)
		tracked_fds[ntracked_fds++] = fd;
	return fd;
}

static void release_tracked(void)
{
	while (ntracked > 0)
		udo_vsock_udp_destroy(tracked[--ntracked]);
	while (ntracked_fds > 0)
		close(tracked_fds[--ntracked_fds]);
}

static const char *err_name(int err)
{
	switch (err) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case EAGAIN: return "EAGAIN";
	case EMSGSIZE: return "EMSGSIZE";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENODEV: return "ENODEV";
	case ENOTCONN: return "ENOTCONN";
	case EBADF: return "EBADF";
	case EACCES: return "EACCES";
	default: return strerror(err);
	}
}

/* "-EAGAIN" or "12" for an I/O result. */
static const char *res_name(ssize_t ret)
{
	static char buf[4][64];
	static int slot;
	char *s = buf[slot++ % 4];

	if (ret < 0)
		snprintf(s, 64, "-%s", err_name((int) -ret));
	else
		snprintf(s, 64, "%zd", ret);
	return s;
}

static void fill(unsigned char *buf, size_t size, unsigned int seed)
{
	for (size_t i = 0; i < size; i++)
		buf[i] = (unsigned char) ((i * 31u + seed) & 0xff);
}

static bool check_fill(const unsigned char *buf, size_t size, unsigned int seed)
{
	for (size_t i = 0; i < size; i++)
		if (buf[i] != (unsigned char) ((i * 31u + seed) & 0xff))
			return false;
	return true;
}

static bool fd_is_open(int fd)
{
	return fd >= 0 && fcntl(fd, F_GETFD) != -1;
}

static struct sockaddr_vm vm_addr(unsigned int cid, unsigned int vport)
{
	struct sockaddr_vm a;

	memset(&a, 0, sizeof(a));
	a.svm_family = AF_VSOCK;
	a.svm_cid = cid;
	a.svm_port = vport;
	return a;
}

static int sock_name(int fd, struct sockaddr_vm *a)
{
	socklen_t len = sizeof(*a);

	memset(a, 0, sizeof(*a));
	return getsockname(fd, (struct sockaddr *) a, &len);
}

/* A server on (VMADDR_CID_ANY, p), library-allocated and tracked. */
static struct udo_vsock_udp *server_on(int p)
{
	return track(udo_vsock_udp_server_create(NULL,
		&(struct udo_vsock_udp_server_create_info){ .vcid = VMADDR_CID_ANY, .port = p }));
}

/* A client sending to (cid, p), library-allocated and tracked. */
static struct udo_vsock_udp *client_to(unsigned int cid, int p)
{
	return track(udo_vsock_udp_client_create(NULL,
		&(struct udo_vsock_udp_client_create_info){ .vcid = cid, .port = p }));
}

static const int dontwait = MSG_DONTWAIT;

/* The datagram the sender's CID should carry: the local CID, VMCI's host (2) here. */
static unsigned int sender_cid(void)
{
	return local_cid == VMADDR_CID_ANY ? VMADDR_CID_HOST : local_cid;
}

/* -------------------------------------------------------------------- cases */

static int case_get_sizeof(void)
{
	int size = udo_vsock_udp_get_sizeof();

	/* err + free + fd + vcid + port + sockaddr_vm, at least */
	REQUIRE(size >= (int) (sizeof(struct udo_log_error_struct) + sizeof(struct sockaddr_vm) + 12),
	        "get_sizeof() = %d, too small for the documented members", size);
	printf("info: udo_vsock_udp_get_sizeof() = %d\n", size);
	return 0;
}

static int case_get_local_vcid(void)
{
	unsigned int cid;

	errno = 0;
	cid = udo_vsock_udp_get_local_vcid();
	printf("info: udo_vsock_udp_get_local_vcid() = %u (errno %s)\n", cid, err_name(errno));
	if (local_cid == VMADDR_CID_ANY)
		REQUIRE(cid == UINT32_MAX && errno == EADDRNOTAVAIL,
		        "got %u errno %s, want UINT32_MAX/EADDRNOTAVAIL (kernel says VMADDR_CID_ANY)",
		        cid, err_name(errno));
	else
		REQUIRE(cid == local_cid, "got %u errno %s, want %u", cid, err_name(errno), local_cid);
	return 0;
}

static int case_null_getters(void)
{
	REQUIRE(udo_vsock_udp_get_fd(NULL) == -1, "get_fd(NULL) = %d", udo_vsock_udp_get_fd(NULL));
	REQUIRE(udo_vsock_udp_get_port(NULL) == -1, "get_port(NULL) = %d",
	        udo_vsock_udp_get_port(NULL));
	REQUIRE(udo_vsock_udp_get_vcid(NULL) == UINT32_MAX, "get_vcid(NULL) = %u",
	        udo_vsock_udp_get_vcid(NULL));
	udo_vsock_udp_destroy(NULL);
	return 0;
}

static int case_create_null_info(void)
{
	struct udo_vsock_udp *v;

	errno = 0;
	v = udo_vsock_udp_server_create(NULL, NULL);
	REQUIRE(!v && errno == EINVAL, "server_create(NULL, NULL) = %p errno %s", (void *) v,
	        err_name(errno));
	errno = 0;
	v = udo_vsock_udp_client_create(NULL, NULL);
	REQUIRE(!v && errno == EINVAL, "client_create(NULL, NULL) = %p errno %s", (void *) v,
	        err_name(errno));
	return 0;
}

static int case_server_create_alloc(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct sockaddr_vm a;

	REQUIRE(s, "server_create(NULL, {ANY, %d}): NULL errno %s", p, err_name(errno));
	REQUIRE(udo_vsock_udp_get_fd(s) >= 0, "get_fd = %d", udo_vsock_udp_get_fd(s));
	REQUIRE(udo_vsock_udp_get_vcid(s) == VMADDR_CID_ANY, "get_vcid = %u",
	        udo_vsock_udp_get_vcid(s));
	REQUIRE(udo_vsock_udp_get_port(s) == p, "get_port = %d, want %d",
	        udo_vsock_udp_get_port(s), p);
	REQUIRE(sock_name(udo_vsock_udp_get_fd(s), &a) == 0, "getsockname: %s", strerror(errno));
	REQUIRE(a.svm_cid == VMADDR_CID_ANY && a.svm_port == (unsigned int) p,
	        "bound to (%u, %u), want (ANY, %d)", a.svm_cid, a.svm_port, p);
	int type = 0;
	socklen_t len = sizeof(type);
	REQUIRE(getsockopt(udo_vsock_udp_get_fd(s), SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	        type == SOCK_DGRAM, "SO_TYPE = %d", type);
	REQUIRE(fcntl(udo_vsock_udp_get_fd(s), F_GETFD) & FD_CLOEXEC, "fd lacks FD_CLOEXEC");
	return 0;
}

static int case_server_create_port_any(void)
{
	struct udo_vsock_udp *s = server_on(-1);
	struct udo_vsock_udp *s2 = server_on(-1);
	struct sockaddr_vm a;

	REQUIRE(s && s2, "server_create(NULL, {ANY, -1}): NULL errno %s", err_name(errno));
	REQUIRE(sock_name(udo_vsock_udp_get_fd(s), &a) == 0, "getsockname: %s", strerror(errno));
	printf("info: VMADDR_PORT_ANY servers got ports %d and %d\n", udo_vsock_udp_get_port(s),
	       udo_vsock_udp_get_port(s2));
	REQUIRE(udo_vsock_udp_get_port(s) == (int) a.svm_port,
	        "get_port = %d, kernel bound %u", udo_vsock_udp_get_port(s), a.svm_port);
	REQUIRE(a.svm_port >= 1024 && a.svm_port != VMADDR_PORT_ANY, "kernel port %u", a.svm_port);
	REQUIRE(udo_vsock_udp_get_port(s2) > 1023 &&
	        udo_vsock_udp_get_port(s2) != udo_vsock_udp_get_port(s),
	        "second server port %d (first %d)", udo_vsock_udp_get_port(s2),
	        udo_vsock_udp_get_port(s));
	return 0;
}

/*
 * Caller memory: static storage, so a library that wrongly free()d it would crash
 * the program (and the case) instead of passing silently.
 */
static _Alignas(max_align_t) unsigned char caller_mem[2][4096];

static struct udo_vsock_udp *caller_buffer(int which)
{
	if (udo_vsock_udp_get_sizeof() > (int) sizeof(caller_mem[which]))
		return NULL;
	memset(caller_mem[which], 0xa5, sizeof(caller_mem[which]));
	return (struct udo_vsock_udp *) caller_mem[which];
}

static int case_server_create_caller_memory(void)
{
	int p = port();
	struct udo_vsock_udp *buf = caller_buffer(0);
	struct udo_vsock_udp *s;
	int fd, got_port, after;

	REQUIRE(buf, "get_sizeof() = %d exceeds the test's buffer", udo_vsock_udp_get_sizeof());
	s = udo_vsock_udp_server_create(buf,
		&(struct udo_vsock_udp_server_create_info){ .vcid = VMADDR_CID_ANY, .port = p });
	REQUIRE(s == buf, "server_create(buf) = %p, want %p, errno %s", (void *) s, (void *) buf,
	        err_name(errno));
	fd = udo_vsock_udp_get_fd(s);
	got_port = udo_vsock_udp_get_port(s);
	udo_vsock_udp_destroy(s);
	after = udo_vsock_udp_get_fd(buf);
	udo_vsock_udp_destroy(buf); /* a second destroy on caller memory is harmless */
	REQUIRE(fd >= 0 && got_port == p, "get_fd = %d get_port = %d", fd, got_port);
	REQUIRE(!fd_is_open(fd), "destroy left fd %d open", fd);
	REQUIRE(after == -1, "get_fd after destroy = %d, want -1", after);
	return 0;
}

static int case_client_create_caller_memory(void)
{
	struct udo_vsock_udp *buf = caller_buffer(1);
	struct udo_vsock_udp *c;
	int fd, after;

	REQUIRE(buf, "get_sizeof() = %d exceeds the test's buffer", udo_vsock_udp_get_sizeof());
	c = udo_vsock_udp_client_create(buf,
		&(struct udo_vsock_udp_client_create_info){ .vcid = VMADDR_CID_HOST, .port = 9 });
	REQUIRE(c == buf, "client_create(buf) = %p, want %p, errno %s", (void *) c, (void *) buf,
	        err_name(errno));
	fd = udo_vsock_udp_get_fd(c);
	udo_vsock_udp_destroy(c);
	after = udo_vsock_udp_get_fd(buf);
	udo_vsock_udp_destroy(buf);
	REQUIRE(fd >= 0 && !fd_is_open(fd), "fd %d still open after destroy", fd);
	REQUIRE(after == -1, "get_fd after destroy = %d", after);
	return 0;
}

static int case_server_create_bad_cid(void)
{
	static const unsigned int cids[] = { VMADDR_CID_LOCAL, VMADDR_CID_HOST, 3 };
	struct udo_vsock_udp *buf = caller_buffer(0);

	REQUIRE(buf, "get_sizeof() = %d exceeds the test's buffer", udo_vsock_udp_get_sizeof());
	for (size_t i = 0; i < UDO_ARRAY_LEN(cids); i++) {
		int p = port();
		struct udo_vsock_udp *s;

		if (cids[i] == local_cid)
			continue;
		errno = 0;
		s = udo_vsock_udp_server_create(buf,
			&(struct udo_vsock_udp_server_create_info){ .vcid = cids[i], .port = p });
		int err = errno;
		const char *msg = udo_log_get_error(buf);
		if (i == 1)
			printf("info: server_create({2, %d}) error message: %s\n", p, msg ? msg : "(null)");
		if (s || err != EADDRNOTAVAIL || udo_vsock_udp_get_fd(buf) != -1 || !msg || !*msg ||
		    udo_log_get_error_code(buf) != EADDRNOTAVAIL) {
			udo_vsock_udp_destroy(s);
			return fail("cid %u: ret %p errno %s fd %d code %u message '%s'", cids[i],
			            (void *) s, err_name(err), udo_vsock_udp_get_fd(buf),
			            udo_log_get_error_code(buf), msg ? msg : "(null)");
		}
	}
	return 0;
}

static int case_server_create_port_in_use(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *s2;

	REQUIRE(s, "first server_create: errno %s", err_name(errno));
	errno = 0;
	s2 = server_on(p);
	REQUIRE(!s2 && errno == EADDRINUSE, "second server on port %d: %p errno %s", p,
	        (void *) s2, err_name(errno));
	return 0;
}

static int case_server_create_bad_port(void)
{
	struct udo_vsock_udp *s;

	errno = 0;
	s = server_on(-2);
	REQUIRE(!s && errno == EINVAL, "port -2: %p errno %s", (void *) s, err_name(errno));
	return 0;
}

static int case_client_create(void)
{
	int p = port();
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	struct sockaddr_vm a;

	REQUIRE(c, "client_create: NULL errno %s", err_name(errno));
	REQUIRE(udo_vsock_udp_get_fd(c) >= 0, "get_fd = %d", udo_vsock_udp_get_fd(c));
	REQUIRE(udo_vsock_udp_get_vcid(c) == VMADDR_CID_HOST, "get_vcid = %u",
	        udo_vsock_udp_get_vcid(c));
	REQUIRE(udo_vsock_udp_get_port(c) == p, "get_port = %d", udo_vsock_udp_get_port(c));
	REQUIRE(sock_name(udo_vsock_udp_get_fd(c), &a) == 0, "getsockname: %s", strerror(errno));
	REQUIRE(a.svm_cid == VMADDR_CID_ANY && a.svm_port == VMADDR_PORT_ANY,
	        "client is bound to (%u, %u); it must not bind", a.svm_cid, a.svm_port);
	return 0;
}

/* client_send_data -> server_recv_data, sender address reported. */
static int case_client_to_server(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	unsigned char out[100], in[200];
	struct sockaddr_vm from, cname;
	ssize_t n;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	fill(out, sizeof(out), 1);
	n = udo_vsock_udp_client_send_data(c, out, sizeof(out), NULL);
	REQUIRE(n == (ssize_t) sizeof(out), "client_send_data = %s", res_name(n));
	memset(&from, 0xff, sizeof(from));
	n = udo_vsock_udp_server_recv_data(s, in, sizeof(in), &from, &dontwait);
	REQUIRE(n == (ssize_t) sizeof(out) && check_fill(in, sizeof(out), 1),
	        "server_recv_data = %s (or bad payload)", res_name(n));
	REQUIRE(sock_name(udo_vsock_udp_get_fd(c), &cname) == 0, "getsockname: %s",
	        strerror(errno));
	printf("info: client auto-bound to port %u; server saw sender (%u, %u)\n", cname.svm_port,
	       from.svm_cid, from.svm_port);
	REQUIRE(from.svm_family == AF_VSOCK && from.svm_cid == sender_cid() &&
	        from.svm_port == cname.svm_port,
	        "sender (%u, %u) family %u, want (%u, %u)", from.svm_cid, from.svm_port,
	        from.svm_family, sender_cid(), cname.svm_port);
	return 0;
}

/* The server answers with send_data(addr); the client reads with recv_data(addr). */
static int case_server_to_client(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	unsigned char buf[64];
	struct sockaddr_vm from, back;
	ssize_t n;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	n = udo_vsock_udp_client_send_data(c, "ping", 4, NULL);
	REQUIRE(n == 4, "client_send_data = %s", res_name(n));
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), &from, &dontwait);
	REQUIRE(n == 4, "server_recv_data = %s", res_name(n));
	fill(buf, 33, 7);
	n = udo_vsock_udp_send_data(udo_vsock_udp_get_fd(s), buf, 33, &from, NULL);
	REQUIRE(n == 33, "send_data(server fd, sender) = %s", res_name(n));
	memset(buf, 0, sizeof(buf));
	n = udo_vsock_udp_recv_data(udo_vsock_udp_get_fd(c), buf, sizeof(buf), &back, &dontwait);
	REQUIRE(n == 33 && check_fill(buf, 33, 7), "recv_data(client fd) = %s (or bad payload)",
	        res_name(n));
	REQUIRE(back.svm_cid == sender_cid() && back.svm_port == (unsigned int) p,
	        "reply came from (%u, %u), want (%u, %d)", back.svm_cid, back.svm_port,
	        sender_cid(), p);
	return 0;
}

/* client_create(VMADDR_CID_ANY, p): the kernel delivers to the local context. */
static int case_client_to_cid_any(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_ANY, p);
	char buf[8];
	struct sockaddr_vm from;
	ssize_t n;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	n = udo_vsock_udp_client_send_data(c, "any", 3, NULL);
	REQUIRE(n == 3, "client_send_data to (ANY, %d) = %s", p, res_name(n));
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), &from, &dontwait);
	REQUIRE(n == 3 && !memcmp(buf, "any", 3), "server_recv_data = %s", res_name(n));
	REQUIRE(from.svm_cid == sender_cid(), "sender CID %u", from.svm_cid);
	return 0;
}

static int case_client_connect(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	struct sockaddr_vm peer;
	socklen_t len = sizeof(peer);
	char buf[16];
	ssize_t n;
	int r;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	r = udo_vsock_udp_client_connect(c);
	REQUIRE(r == 0, "client_connect = %d errno %s", r, err_name(errno));
	REQUIRE(getpeername(udo_vsock_udp_get_fd(c), (struct sockaddr *) &peer, &len) == 0,
	        "getpeername: %s", strerror(errno));
	REQUIRE(peer.svm_cid == VMADDR_CID_HOST && peer.svm_port == (unsigned int) p,
	        "peer (%u, %u)", peer.svm_cid, peer.svm_port);
	/* Connected: send_data without an address. */
	n = udo_vsock_udp_send_data(udo_vsock_udp_get_fd(c), "conn1", 5, NULL, NULL);
	REQUIRE(n == 5, "send_data(addr NULL) after connect = %s", res_name(n));
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == 5 && !memcmp(buf, "conn1", 5), "server_recv_data = %s", res_name(n));
	/* client_send_data still works after connect. */
	n = udo_vsock_udp_client_send_data(c, "conn2", 5, NULL);
	REQUIRE(n == 5, "client_send_data after connect = %s", res_name(n));
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == 5 && !memcmp(buf, "conn2", 5), "server_recv_data = %s", res_name(n));
	r = udo_vsock_udp_client_connect(NULL);
	REQUIRE(r == -1, "client_connect(NULL) = %d", r);
	return 0;
}

static int case_send_data_unconnected_no_addr(void)
{
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, port());
	ssize_t n;

	REQUIRE(c, "create: errno %s", err_name(errno));
	n = udo_vsock_udp_send_data(udo_vsock_udp_get_fd(c), "x", 1, NULL, NULL);
	REQUIRE(n == -EINVAL, "send_data(addr NULL) on an unconnected socket = %s, want -EINVAL",
	        res_name(n));
	return 0;
}

static int case_recv_addr_null(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	char buf[16];
	ssize_t n;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	REQUIRE(udo_vsock_udp_client_send_data(c, "a", 1, NULL) == 1, "send a");
	REQUIRE(udo_vsock_udp_client_send_data(c, "bb", 2, NULL) == 2, "send bb");
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == 1 && buf[0] == 'a', "server_recv_data(addr NULL) = %s", res_name(n));
	n = udo_vsock_udp_recv_data(udo_vsock_udp_get_fd(s), buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == 2 && !memcmp(buf, "bb", 2), "recv_data(addr NULL) = %s", res_name(n));
	return 0;
}

/* Flags NULL: a blocking receive of a datagram that is already queued. */
static int case_recv_flags_null(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	char buf[16];
	ssize_t n;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	REQUIRE(udo_vsock_udp_client_send_data(c, "q", 1, NULL) == 1, "send");
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, NULL);
	REQUIRE(n == 1 && buf[0] == 'q', "server_recv_data(flags NULL) = %s", res_name(n));
	return 0;
}

static int case_dontwait_empty(void)
{
	struct udo_vsock_udp *s = server_on(port());
	char buf[16];
	ssize_t n;

	REQUIRE(s, "create: errno %s", err_name(errno));
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == -EAGAIN, "server_recv_data(MSG_DONTWAIT) on empty = %s", res_name(n));
	n = udo_vsock_udp_recv_data(udo_vsock_udp_get_fd(s), buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == -EAGAIN, "recv_data(MSG_DONTWAIT) on empty = %s", res_name(n));
	/* -EAGAIN is not an error: nothing recorded. */
	REQUIRE(udo_log_get_error_code(s) == 0, "EAGAIN recorded as an error: %u '%s'",
	        udo_log_get_error_code(s), udo_log_get_error(s));
	return 0;
}

static int case_msg_peek(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	const int peek = MSG_PEEK | MSG_DONTWAIT;
	char buf[16];
	struct sockaddr_vm from;
	ssize_t n;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	REQUIRE(udo_vsock_udp_client_send_data(c, "peek", 4, NULL) == 4, "send");
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), &from, &peek);
	REQUIRE(n == 4 && !memcmp(buf, "peek", 4), "MSG_PEEK = %s", res_name(n));
	REQUIRE(from.svm_cid == sender_cid(), "peek sender CID %u", from.svm_cid);
	n = udo_vsock_udp_recv_data(udo_vsock_udp_get_fd(s), buf, sizeof(buf), NULL, &peek);
	REQUIRE(n == 4, "second MSG_PEEK = %s", res_name(n));
	memset(buf, 0, sizeof(buf));
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == 4 && !memcmp(buf, "peek", 4), "receive after peek = %s", res_name(n));
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == -EAGAIN, "queue after receive = %s, want -EAGAIN", res_name(n));
	return 0;
}

static int case_truncation(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	const int trunc = MSG_TRUNC | MSG_DONTWAIT;
	unsigned char out[100], in[100];
	ssize_t n;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	fill(out, sizeof(out), 3);
	REQUIRE(udo_vsock_udp_client_send_data(c, out, sizeof(out), NULL) == 100, "send 1");
	REQUIRE(udo_vsock_udp_client_send_data(c, out, sizeof(out), NULL) == 100, "send 2");
	n = udo_vsock_udp_server_recv_data(s, in, 10, NULL, &dontwait);
	REQUIRE(n == 10 && check_fill(in, 10, 3), "recv 10 of 100 = %s", res_name(n));
	/* The rest of the first datagram is gone: the next read is the second one. */
	n = udo_vsock_udp_server_recv_data(s, in, 10, NULL, &trunc);
	printf("info: recv with MSG_TRUNC into 10 bytes of a 100-byte datagram = %s\n",
	       res_name(n));
	REQUIRE(n == 10 && check_fill(in, 10, 3), "recv 10 of 100 with MSG_TRUNC = %s", res_name(n));
	n = udo_vsock_udp_server_recv_data(s, in, sizeof(in), NULL, &dontwait);
	REQUIRE(n == -EAGAIN, "after two truncated reads = %s, want -EAGAIN", res_name(n));
	return 0;
}

static int case_max_size(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	unsigned char *out = malloc(MAX_DGRAM + 1), *in = malloc(MAX_DGRAM + 16);
	ssize_t n1, n2, n3 = 0;
	bool same = false;

	if (!out || !in || !s || !c) {
		free(out);
		free(in);
		return fail("setup: errno %s", err_name(errno));
	}
	fill(out, MAX_DGRAM + 1, 5);
	n1 = udo_vsock_udp_client_send_data(c, out, MAX_DGRAM, NULL);
	if (n1 == MAX_DGRAM) {
		n3 = udo_vsock_udp_server_recv_data(s, in, MAX_DGRAM + 16, NULL, &dontwait);
		same = n3 == MAX_DGRAM && check_fill(in, MAX_DGRAM, 5);
	}
	n2 = udo_vsock_udp_client_send_data(c, out, MAX_DGRAM + 1, NULL);
	free(out);
	free(in);
	REQUIRE(n1 == MAX_DGRAM, "send %d = %s", MAX_DGRAM, res_name(n1));
	REQUIRE(same, "receive %d = %s (or bad payload)", MAX_DGRAM, res_name(n3));
	REQUIRE(n2 == -EMSGSIZE, "send %d = %s, want -EMSGSIZE", MAX_DGRAM + 1, res_name(n2));
	REQUIRE(errno == EMSGSIZE, "errno %s after -EMSGSIZE", err_name(errno));
	return 0;
}

static int case_send_errors(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct sockaddr_vm to;
	ssize_t n;
	int fd, oob = MSG_OOB;

	REQUIRE(s, "create: errno %s", err_name(errno));
	fd = udo_vsock_udp_get_fd(s);
	to = vm_addr(VMADDR_CID_HOST, (unsigned int) port()); /* nobody bound there */
	n = udo_vsock_udp_send_data(fd, "x", 1, &to, NULL);
	REQUIRE(n == -EHOSTUNREACH, "to an unbound port = %s, want -EHOSTUNREACH", res_name(n));
	to = vm_addr(VMADDR_CID_LOCAL, (unsigned int) p);
	n = udo_vsock_udp_send_data(fd, "x", 1, &to, NULL);
	REQUIRE(n == -EINVAL, "to CID 1 = %s, want -EINVAL", res_name(n));
	to = vm_addr(3, (unsigned int) p);
	n = udo_vsock_udp_send_data(fd, "x", 1, &to, NULL);
	REQUIRE(n == -EINVAL, "to CID 3 = %s, want -EINVAL", res_name(n));
	to = vm_addr(VMADDR_CID_HOST, (unsigned int) p);
	n = udo_vsock_udp_send_data(fd, "x", 1, &to, &oob);
	REQUIRE(n == -EOPNOTSUPP, "MSG_OOB = %s, want -EOPNOTSUPP", res_name(n));
	REQUIRE(udo_log_get_error_code(s) == 0,
	        "send_data(fd) wrote into the instance: %u '%s'", udo_log_get_error_code(s),
	        udo_log_get_error(s));
	return 0;
}

static int case_bad_arguments(void)
{
	struct udo_vsock_udp *s = server_on(port());
	struct sockaddr_vm to = vm_addr(VMADDR_CID_HOST, 1);
	char buf[4] = "abc";
	ssize_t r[10];
	int fd;

	REQUIRE(s, "create: errno %s", err_name(errno));
	fd = udo_vsock_udp_get_fd(s);
	r[0] = udo_vsock_udp_send_data(-1, buf, 1, &to, NULL);
	r[1] = udo_vsock_udp_send_data(fd, NULL, 1, &to, NULL);
	r[2] = udo_vsock_udp_send_data(fd, buf, 0, &to, NULL);
	r[3] = udo_vsock_udp_recv_data(-1, buf, 1, NULL, &dontwait);
	r[4] = udo_vsock_udp_recv_data(fd, NULL, 1, NULL, &dontwait);
	r[5] = udo_vsock_udp_recv_data(fd, buf, 0, NULL, &dontwait);
	r[6] = udo_vsock_udp_server_recv_data(NULL, buf, 1, NULL, &dontwait);
	r[7] = udo_vsock_udp_server_recv_data(s, NULL, 1, NULL, &dontwait);
	r[8] = udo_vsock_udp_client_send_data(NULL, buf, 1, NULL);
	r[9] = udo_vsock_udp_client_send_data(s, buf, 0, NULL);
	for (size_t i = 0; i < UDO_ARRAY_LEN(r); i++)
		REQUIRE(r[i] == -EINVAL, "call %zu = %s, want -EINVAL", i, res_name(r[i]));
	return 0;
}

static int case_server_accept(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	struct udo_vsock_udp *c = client_to(VMADDR_CID_HOST, p);
	struct sockaddr_vm from, before, after;
	char buf[16];
	ssize_t n;
	int fds, fd, err;

	REQUIRE(s && c, "create: errno %s", err_name(errno));
	REQUIRE(udo_vsock_udp_client_send_data(c, "hi", 2, NULL) == 2, "send");
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), &from, &dontwait);
	REQUIRE(n == 2, "server_recv_data = %s", res_name(n));
	REQUIRE(sock_name(udo_vsock_udp_get_fd(s), &before) == 0, "getsockname");
	fds = count_fds();
	errno = 0;
	fd = track_fd(udo_vsock_udp_server_accept(s, &from));
	err = errno;
	const char *msg = udo_log_get_error(s);
	printf("info: server_accept = %d errno %s, error message: %s\n", fd, err_name(err),
	       msg ? msg : "(null)");
	REQUIRE(fd == -1 && err == EADDRINUSE, "server_accept = %d errno %s, want -1/EADDRINUSE",
	        fd, err_name(err));
	REQUIRE(msg && *msg && udo_log_get_error_code(s) == EADDRINUSE,
	        "server error record: code %u message '%s'", udo_log_get_error_code(s),
	        msg ? msg : "(null)");
	REQUIRE(count_fds() == fds, "fd count %d -> %d: the half-made socket leaked", fds,
	        count_fds());
	/* The server socket is undisturbed. */
	REQUIRE(sock_name(udo_vsock_udp_get_fd(s), &after) == 0 &&
	        !memcmp(&before, &after, sizeof(after)), "server address changed");
	REQUIRE(udo_vsock_udp_client_send_data(c, "again", 5, NULL) == 5, "send again");
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), NULL, &dontwait);
	REQUIRE(n == 5 && !memcmp(buf, "again", 5), "server after accept: recv = %s", res_name(n));
	errno = 0;
	fd = track_fd(udo_vsock_udp_server_accept(NULL, &from));
	REQUIRE(fd == -1, "server_accept(NULL, addr) = %d", fd);
	fd = track_fd(udo_vsock_udp_server_accept(s, NULL));
	REQUIRE(fd == -1, "server_accept(vsock, NULL) = %d", fd);
	return 0;
}

/* A plain AF_VSOCK socket talks to the library both ways: no hidden protocol. */
static int case_plain_socket_interop(void)
{
	int p = port();
	struct udo_vsock_udp *s = server_on(p);
	int raw = track_fd(socket(AF_VSOCK, SOCK_DGRAM, 0));
	struct sockaddr_vm to = vm_addr(VMADDR_CID_HOST, (unsigned int) p), me, from;
	socklen_t len = sizeof(from);
	char buf[16];
	ssize_t n;

	REQUIRE(s && raw >= 0, "setup: errno %s", err_name(errno));
	n = sendto(raw, "raw", 3, 0, (struct sockaddr *) &to, sizeof(to));
	REQUIRE(n == 3, "sendto: %s", strerror(errno));
	REQUIRE(sock_name(raw, &me) == 0, "getsockname");
	n = udo_vsock_udp_server_recv_data(s, buf, sizeof(buf), &from, &dontwait);
	REQUIRE(n == 3 && !memcmp(buf, "raw", 3) && from.svm_port == me.svm_port,
	        "server_recv_data = %s from port %u (raw socket is %u)", res_name(n),
	        from.svm_port, me.svm_port);
	n = udo_vsock_udp_send_data(udo_vsock_udp_get_fd(s), "back", 4, &from, NULL);
	REQUIRE(n == 4, "send_data = %s", res_name(n));
	n = recvfrom(raw, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *) &from, &len);
	REQUIRE(n == 4 && !memcmp(buf, "back", 4), "raw recvfrom = %zd (%s)", n, strerror(errno));
	n = recvfrom(raw, buf, sizeof(buf), MSG_DONTWAIT, NULL, NULL);
	REQUIRE(n < 0 && errno == EAGAIN, "an extra datagram arrived (%zd)", n);
	return 0;
}

static int case_destroy_closes(void)
{
	struct udo_vsock_udp *s = udo_vsock_udp_server_create(NULL,
		&(struct udo_vsock_udp_server_create_info){ .vcid = VMADDR_CID_ANY, .port = port() });
	struct udo_vsock_udp *c = udo_vsock_udp_client_create(NULL,
		&(struct udo_vsock_udp_client_create_info){ .vcid = VMADDR_CID_HOST, .port = 1 });
	int sfd = udo_vsock_udp_get_fd(s), cfd = udo_vsock_udp_get_fd(c);

	udo_vsock_udp_destroy(s);
	udo_vsock_udp_destroy(c);
	REQUIRE(sfd >= 0 && cfd >= 0, "create: fds %d %d", sfd, cfd);
	REQUIRE(!fd_is_open(sfd) && !fd_is_open(cfd), "destroy left an fd open");
	return 0;
}

/* Port reuse after destroy: the kernel released the binding. */
static int case_rebind_after_destroy(void)
{
	int p = port();
	struct udo_vsock_udp *s = udo_vsock_udp_server_create(NULL,
		&(struct udo_vsock_udp_server_create_info){ .vcid = VMADDR_CID_ANY, .port = p });

	REQUIRE(s, "create: errno %s", err_name(errno));
	udo_vsock_udp_destroy(s);
	s = server_on(p);
	REQUIRE(s, "bind port %d again after destroy: errno %s", p, err_name(errno));
	return 0;
}

/* Must stay last: nothing leaked over the whole run. */
static int start_fds = -1;
static int case_no_fd_leak(void)
{
	int now = count_fds();

	REQUIRE(now == start_fds, "open fds %d at start, %d at end", start_fds, now);
	return 0;
}

#define CASE(name) { #name, case_##name }
static const struct {
	const char *name;
	int (*run)(void);
} cases[] = {
	CASE(get_sizeof),
	CASE(get_local_vcid),
	CASE(null_getters),
	CASE(create_null_info),
	CASE(server_create_alloc),
	CASE(server_create_port_any),
	CASE(server_create_caller_memory),
	CASE(client_create_caller_memory),
	CASE(server_create_bad_cid),
	CASE(server_create_port_in_use),
	CASE(server_create_bad_port),
	CASE(client_create),
	CASE(client_to_server),
	CASE(server_to_client),
	CASE(client_to_cid_any),
	CASE(client_connect),
	CASE(send_data_unconnected_no_addr),
	CASE(recv_addr_null),
	CASE(recv_flags_null),
	CASE(dontwait_empty),
	CASE(msg_peek),
	CASE(truncation),
	CASE(max_size),
	CASE(send_errors),
	CASE(bad_arguments),
	CASE(server_accept),
	CASE(plain_socket_interop),
	CASE(destroy_closes),
	CASE(rebind_after_destroy),
	CASE(no_fd_leak),
};

int main(int argc, char **argv)
{
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "local-cid=any"))
			local_cid = VMADDR_CID_ANY;
		else if (!strncmp(argv[i], "local-cid=", 10))
			local_cid = (unsigned int) strtoul(argv[i] + 10, NULL, 0);
		else if (!strncmp(argv[i], "port-base=", 10))
			next_port = atoi(argv[i] + 10);
		else {
			fprintf(stderr, "lib_kernel: unknown argument '%s'\n", argv[i]);
			return 255;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	start_fds = count_fds();
	for (size_t i = 0; i < UDO_ARRAY_LEN(cases); i++) {
		why[0] = '\0';
		int bad = cases[i].run();
		release_tracked();
		if (bad) {
			failed++;
			printf("%s: FAIL %s\n", cases[i].name, why);
		} else {
			printf("%s: ok\n", cases[i].name);
		}
	}
	printf("done: %zu cases, %d failed\n", UDO_ARRAY_LEN(cases), failed);
	return failed;
}
