/* SPDX-License-Identifier: MIT */
/*
 * bad_input: every exported libcando function with wrong arguments -- NULL for
 * each pointer, fd -1, a closed fd, a regular file's fd, size 0, size SIZE_MAX,
 * MSG_OOB, an address of the wrong family -- must give the negative result
 * docs/contract.md documents, with errno set (and, where an instance exists,
 * the failure recorded in it), and never crash.
 *
 * Runs natively (no AF_VSOCK datagram transport: every create fails, so the
 * "valid" instance is one whose create failed, fd -1) and under vsock_wrapper
 * or a real kernel ("live": the valid instance has a socket).  The expected
 * result of each case is computed for the mode detected at start.
 *
 * Output: one line per case, "name: ok" or "name: FAIL <why>", then
 * "done: N cases, M failed (live|native)".  Exit status: 0 if all passed, 1 if
 * not, 2 if fds leaked.  Nothing here blocks: every receive that could wait
 * passes MSG_DONTWAIT.
 *
 * Build: cc -std=gnu11 -Iinclude bad_input.c -lcando
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <cando/log.h>
#include <cando/vsock-udp.h>
#include <cando/vsock-udp-batch.h>

#include "testutil.h"

static int n_cases, n_failed;
static bool live;

static void result(const char *name, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void result(const char *name, bool ok, const char *fmt, ...)
{
	va_list ap;

	n_cases++;
	if (ok) {
		printf("%s: ok\n", name);
		return;
	}
	n_failed++;
	printf("%s: FAIL ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static const char *ename(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "0";
}

/*
 * An I/O result: want is a negative errno value (errno must match it) or a
 * byte count.  If inst is given, its error record must carry the errno of a
 * failure other than EAGAIN/EINTR.
 */
static void check_io(const char *name, ssize_t got, int err, ssize_t want,
                     struct udo_vsock_udp *inst)
{
	if (got != want) {
		result(name, false, "returned %zd (errno %s), want %zd (%s)", got, ename(err), want,
		       want < 0 ? ename((int) -want) : "bytes");
		return;
	}
	if (want < 0 && err != (int) -want) {
		result(name, false, "errno %s, want %s", ename(err), ename((int) -want));
		return;
	}
	if (want < 0 && inst && want != -EAGAIN &&
	    udo_log_get_error_code(inst) != (unsigned int) -want) {
		result(name, false, "error record code %u, want %d (%s)",
		       udo_log_get_error_code(inst), (int) -want, udo_log_get_error(inst));
		return;
	}
	result(name, true, NULL);
}

/* An int result of -1 with errno want_errno (0: success wanted, any result >= 0). */
static void check_int(const char *name, int got, int err, int want_errno)
{
	if (want_errno == 0) {
		result(name, got >= 0, "returned %d (errno %s), want success", got, ename(err));
		return;
	}
	result(name, got == -1 && err == want_errno, "returned %d (errno %s), want -1 (%s)",
	       got, ename(err), ename(want_errno));
}

static void check_create(const char *name, struct udo_vsock_udp *got, int err, int want_errno,
                         struct udo_vsock_udp *caller)
{
	if (got) {
		result(name, false, "returned an instance, want NULL (%s)", ename(want_errno));
		udo_vsock_udp_destroy(got);
		return;
	}
	if (err != want_errno) {
		result(name, false, "errno %s, want %s", ename(err), ename(want_errno));
		return;
	}
	if (caller && (udo_vsock_udp_get_fd(caller) != -1 ||
	               udo_log_get_error_code(caller) != (unsigned int) want_errno ||
	               !udo_log_get_error(caller)[0])) {
		result(name, false, "caller memory left with fd %d, code %u, message '%s'",
		       udo_vsock_udp_get_fd(caller), udo_log_get_error_code(caller),
		       udo_log_get_error(caller));
		return;
	}
	result(name, true, NULL);
}

#define IO(name, call, want, inst)                                \
	do {                                                      \
		errno = 0;                                        \
		ssize_t r_ = (call);                              \
		check_io((name), r_, errno, (want), (inst));      \
	} while (0)

#define INT(name, call, want_errno)                               \
	do {                                                      \
		errno = 0;                                        \
		int r_ = (call);                                  \
		check_int((name), r_, errno, (want_errno));       \
	} while (0)

#define CREATE(name, call, want_errno, caller)                    \
	do {                                                      \
		errno = 0;                                        \
		struct udo_vsock_udp *r_ = (call);                \
		check_create((name), r_, errno, (want_errno), (caller)); \
	} while (0)

/* --------------------------------------------------------------- fixtures */

/* Caller memory for instances (the struct is opaque: bytes, suitably aligned). */
struct mem {
	_Alignas(max_align_t) char bytes[4096];
};
static struct mem m_recv, m_sink, m_client, m_failed, m_destroyed, m_closed, m_regular, m_scratch;

#define INST(m) ((struct udo_vsock_udp *) (void *) (m).bytes)

static int regular_fd, closed_fd, pipe_fds[2];
static int sink_port;
static char buf[256];

static struct udo_vsock_udp *server_in(void *mem, int port)
{
	struct udo_vsock_udp_server_create_info info = { VMADDR_CID_ANY, port };

	return udo_vsock_udp_server_create(mem, &info);
}

/* Ports for the live fixtures: given by the kernel, so runs never collide. */
static void setup(void)
{
	struct udo_vsock_udp_client_create_info cinfo;
	struct udo_vsock_udp_server_create_info bad = { VMADDR_CID_ANY, -7 };
	char path[] = "/tmp/cando-bad-input-XXXXXX";

	regular_fd = mkstemp(path);
	if (regular_fd < 0 || unlink(path) || write(regular_fd, "x", 1) != 1 ||
	    pipe(pipe_fds)) {
		perror("bad_input: setup");
		exit(3);
	}
	/* Far above the fds this program opens, so none of them reuses it. */
	closed_fd = fcntl(regular_fd, F_DUPFD_CLOEXEC, 900);
	close(closed_fd);

	live = server_in(&m_recv, -1) != NULL;
	server_in(&m_sink, -1);
	sink_port = udo_vsock_udp_get_port(INST(m_sink));
	cinfo = (struct udo_vsock_udp_client_create_info){ 2, live ? sink_port : 1234 };
	udo_vsock_udp_client_create(INST(m_client), &cinfo);
	udo_vsock_udp_server_create(INST(m_failed), &bad); /* fd -1, error recorded */
	server_in(&m_destroyed, -1);
	udo_vsock_udp_destroy(INST(m_destroyed)); /* zeroed, fd -1 */
	server_in(&m_closed, -1);
	server_in(&m_regular, -1);
	if (live) {
		/* An instance whose fd was closed behind its back: closed_fd is free now,
		 * dup2 it there and close it, so the instance's fd is closed too. */
		close(udo_vsock_udp_get_fd(INST(m_closed)));
		dup2(regular_fd, udo_vsock_udp_get_fd(INST(m_regular)));
	}
}

/* What a call on the valid fixture gives when the syscall itself answers @e. */
static ssize_t L(int e)
{
	return live ? -e : -EINVAL;
}

/*
 * Size SIZE_MAX goes through these, so that valgrind's complaint about a
 * syscall buffer larger than the memory behind it (true: that is the bad
 * input) can be suppressed by name (tests/soak/valgrind.supp).  Their frame
 * must stay on the stack: no tail calls.
 */
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")
__attribute__((noinline)) ssize_t oversized_recv_data(int fd, void *data, size_t size,
                                                       struct sockaddr_vm *addr, const void *info);
__attribute__((noinline)) ssize_t oversized_recv_data(int fd, void *data, size_t size,
                                                       struct sockaddr_vm *addr, const void *info)
{
	ssize_t r = udo_vsock_udp_recv_data(fd, data, size, addr, info);

	NO_TAIL_CALL();
	return r;
}

__attribute__((noinline)) ssize_t oversized_send_data(int fd, const void *data, size_t size,
                                                       const struct sockaddr_vm *addr,
                                                       const void *info);
__attribute__((noinline)) ssize_t oversized_send_data(int fd, const void *data, size_t size,
                                                       const struct sockaddr_vm *addr,
                                                       const void *info)
{
	ssize_t r = udo_vsock_udp_send_data(fd, data, size, addr, info);

	NO_TAIL_CALL();
	return r;
}

__attribute__((noinline)) ssize_t oversized_server_recv_data(struct udo_vsock_udp *v, void *data,
                                                              size_t size, const void *info);
__attribute__((noinline)) ssize_t oversized_server_recv_data(struct udo_vsock_udp *v, void *data,
                                                              size_t size, const void *info)
{
	ssize_t r = udo_vsock_udp_server_recv_data(v, data, size, NULL, info);

	NO_TAIL_CALL();
	return r;
}

__attribute__((noinline)) ssize_t oversized_client_send_data(struct udo_vsock_udp *v,
                                                              const void *data, size_t size,
                                                              const void *info);
__attribute__((noinline)) ssize_t oversized_client_send_data(struct udo_vsock_udp *v,
                                                              const void *data, size_t size,
                                                              const void *info)
{
	ssize_t r = udo_vsock_udp_client_send_data(v, data, size, info);

	NO_TAIL_CALL();
	return r;
}

/* ---------------------------------------------------------------- cases */

struct fd_variant {
	const char *name;
	int fd;
	int err; /* what the syscall says, if the library gets that far; 0: valid */
};

struct inst_variant {
	const char *name;
	struct udo_vsock_udp *inst;
	int err; /* what the syscall says; 0: valid; -1: the library refuses (EINVAL) */
};

/* The library's argument checks come first: fd < 0, data NULL, size 0. */
static ssize_t expect_raw(const struct fd_variant *v, const void *data, size_t size,
                          ssize_t valid)
{
	if (v->fd < 0 || !data || !size)
		return -EINVAL;
	if (v->err)
		return -v->err;
	return valid;
}

static void raw_io_cases(void)
{
	const int dontwait = MSG_DONTWAIT, oob = MSG_OOB | MSG_DONTWAIT;
	const int recv_fd = udo_vsock_udp_get_fd(INST(m_recv));
	const int send_fd = udo_vsock_udp_get_fd(INST(m_client));
	struct sockaddr_vm to = { .svm_family = AF_VSOCK, .svm_cid = 2,
	                          .svm_port = (unsigned int) sink_port };
	struct sockaddr_vm from;
	struct sockaddr_in inet = { .sin_family = AF_INET, .sin_port = htons(9) };
	struct sockaddr_vm unspec = to, port_any = to, cid_hv = to;
	const struct fd_variant recv_fds[] = {
		{ "fd_valid", recv_fd, 0 },
		{ "fd_minus1", -1, 0 },
		{ "fd_int_min", INT_MIN, 0 },
		{ "fd_closed", closed_fd, EBADF },
		{ "fd_regular_file", regular_fd, ENOTSOCK },
		{ "fd_pipe", pipe_fds[0], ENOTSOCK },
		{ "fd_int_max", INT_MAX, EBADF },
	};
	struct fd_variant send_fds[UDO_ARRAY_LEN(recv_fds)];
	char name[128];

	unspec.svm_family = AF_UNSPEC;
	port_any.svm_port = VMADDR_PORT_ANY;
	cid_hv.svm_cid = VMADDR_CID_HYPERVISOR;
	memcpy(send_fds, recv_fds, sizeof(send_fds));
	send_fds[0].fd = send_fd;

	for (size_t i = 0; i < UDO_ARRAY_LEN(recv_fds); i++) {
		const struct fd_variant *r = &recv_fds[i], *s = &send_fds[i];
		/* The valid fixture: nothing is queued for recv (EAGAIN), sends reach the sink. */
		ssize_t recv_ok = L(EAGAIN), send_ok = live ? 16 : -EINVAL;

		snprintf(name, sizeof(name), "recv_data_%s", r->name);
		IO(name, udo_vsock_udp_recv_data(r->fd, buf, 16, &from, &dontwait),
		   expect_raw(r, buf, 16, recv_ok), NULL);
		snprintf(name, sizeof(name), "recv_data_%s_data_null", r->name);
		IO(name, udo_vsock_udp_recv_data(r->fd, NULL, 16, &from, &dontwait),
		   expect_raw(r, NULL, 16, recv_ok), NULL);
		snprintf(name, sizeof(name), "recv_data_%s_size_0", r->name);
		IO(name, udo_vsock_udp_recv_data(r->fd, buf, 0, &from, &dontwait),
		   expect_raw(r, buf, 0, recv_ok), NULL);
		snprintf(name, sizeof(name), "recv_data_%s_size_max", r->name);
		IO(name, oversized_recv_data(r->fd, buf, SIZE_MAX, NULL, &dontwait),
		   expect_raw(r, buf, SIZE_MAX, recv_ok), NULL);
		snprintf(name, sizeof(name), "recv_data_%s_msg_oob", r->name);
		IO(name, udo_vsock_udp_recv_data(r->fd, buf, 16, NULL, &oob),
		   expect_raw(r, buf, 16, L(EOPNOTSUPP)), NULL);

		snprintf(name, sizeof(name), "send_data_%s", s->name);
		IO(name, udo_vsock_udp_send_data(s->fd, buf, 16, &to, &dontwait),
		   expect_raw(s, buf, 16, send_ok), NULL);
		snprintf(name, sizeof(name), "send_data_%s_data_null", s->name);
		IO(name, udo_vsock_udp_send_data(s->fd, NULL, 16, &to, NULL),
		   expect_raw(s, NULL, 16, send_ok), NULL);
		snprintf(name, sizeof(name), "send_data_%s_size_0", s->name);
		IO(name, udo_vsock_udp_send_data(s->fd, buf, 0, &to, NULL),
		   expect_raw(s, buf, 0, send_ok), NULL);
		snprintf(name, sizeof(name), "send_data_%s_size_max", s->name);
		IO(name, oversized_send_data(s->fd, buf, SIZE_MAX, &to, NULL),
		   expect_raw(s, buf, SIZE_MAX, L(EMSGSIZE)), NULL);
		snprintf(name, sizeof(name), "send_data_%s_msg_oob", s->name);
		IO(name, udo_vsock_udp_send_data(s->fd, buf, 16, &to, &oob),
		   expect_raw(s, buf, 16, L(EOPNOTSUPP)), NULL);
	}
	/* Addresses: the client's socket is not connected, so an unusable
	 * destination has no fallback: EINVAL (vsock_dgram_sendmsg). */
	IO("send_data_addr_null_unconnected", udo_vsock_udp_send_data(send_fd, buf, 16, NULL, NULL),
	   L(EINVAL), NULL);
	IO("send_data_addr_af_inet", udo_vsock_udp_send_data(
	   send_fd, buf, 16, (const struct sockaddr_vm *) &inet, NULL), L(EINVAL), NULL);
	IO("send_data_addr_af_unspec", udo_vsock_udp_send_data(send_fd, buf, 16, &unspec, NULL),
	   L(EINVAL), NULL);
	IO("send_data_addr_port_any", udo_vsock_udp_send_data(send_fd, buf, 16, &port_any, NULL),
	   L(EINVAL), NULL);
	IO("send_data_addr_cid_hypervisor",
	   udo_vsock_udp_send_data(send_fd, buf, 16, &cid_hv, NULL), L(EINVAL), NULL);
	/* An output address of the wrong family is simply overwritten. */
	from.svm_family = AF_INET;
	IO("recv_data_addr_af_inet_output",
	   udo_vsock_udp_recv_data(recv_fd, buf, 16, &from, &dontwait), L(EAGAIN), NULL);
}

/*
 * The batch extension (<cando/vsock-udp-batch.h>): the same fd variants, and
 * each way an entry or the array can be wrong. The library refuses a bad
 * array (NULL, count 0, a count no array could hold, an entry with no data,
 * size 0 or a size above SSIZE_MAX) with -EINVAL before any system call.
 */
static void batch_cases(void)
{
	const int dontwait = MSG_DONTWAIT, oob = MSG_OOB | MSG_DONTWAIT;
	const int recv_fd = udo_vsock_udp_get_fd(INST(m_recv));
	const int send_fd = udo_vsock_udp_get_fd(INST(m_client));
	struct sockaddr_vm to = { .svm_family = AF_VSOCK, .svm_cid = 2,
	                          .svm_port = (unsigned int) sink_port };
	struct sockaddr_in inet = { .sin_family = AF_INET, .sin_port = htons(9) };
	const struct fd_variant fds[] = {
		{ "fd_valid", -1, 0 },	/* recv_fd or send_fd, below */
		{ "fd_minus1", -1, 0 },
		{ "fd_closed", closed_fd, EBADF },
		{ "fd_regular_file", regular_fd, ENOTSOCK },
		{ "fd_int_max", INT_MAX, EBADF },
	};
	const struct {
		const char *name;
		void *data;
		size_t size;
		size_t count;
		bool null_array;
	} arrays[] = {
		{ "ok", buf, 16, 1, false },
		{ "array_null", buf, 16, 1, true },
		{ "count_0", buf, 16, 0, false },
		{ "count_max", buf, 16, SIZE_MAX, false },
		{ "data_null", NULL, 16, 1, false },
		{ "size_0", buf, 0, 1, false },
		{ "size_max", buf, SIZE_MAX, 1, false },
	};
	char name[128];

	for (size_t i = 0; i < UDO_ARRAY_LEN(fds); i++) {
		for (size_t j = 0; j < UDO_ARRAY_LEN(arrays); j++) {
			struct udo_vsock_udp_dgram d = { .data = arrays[j].data,
			                                 .size = arrays[j].size };
			struct udo_vsock_udp_dgram *dp = arrays[j].null_array ? NULL : &d;
			struct fd_variant r = fds[i], s = fds[i];
			bool bad = !arrays[j].data || !arrays[j].size || arrays[j].null_array ||
			           arrays[j].count != 1 || arrays[j].size > SSIZE_MAX;

			if (i == 0) {
				r.fd = recv_fd;
				s.fd = send_fd;
			}
			snprintf(name, sizeof(name), "recv_batch_%s_%s", r.name, arrays[j].name);
			IO(name, udo_vsock_udp_recv_batch(r.fd, dp, arrays[j].count, &dontwait),
			   bad ? -EINVAL : expect_raw(&r, buf, 16, L(EAGAIN)), NULL);
			snprintf(name, sizeof(name), "send_batch_%s_%s", s.name, arrays[j].name);
			IO(name, udo_vsock_udp_send_batch(s.fd, dp, arrays[j].count, &to, NULL),
			   bad ? -EINVAL : expect_raw(&s, buf, 16, live ? 1 : -EINVAL), NULL);
		}
	}
	{
		struct udo_vsock_udp_dgram d = { .data = buf, .size = 16 };

		IO("recv_batch_msg_oob", udo_vsock_udp_recv_batch(recv_fd, &d, 1, &oob),
		   L(EOPNOTSUPP), NULL);
		IO("send_batch_msg_oob", udo_vsock_udp_send_batch(send_fd, &d, 1, &to, &oob),
		   L(EOPNOTSUPP), NULL);
		IO("send_batch_addr_af_inet", udo_vsock_udp_send_batch(
		   send_fd, &d, 1, (const struct sockaddr_vm *) &inet, NULL), L(EINVAL), NULL);
		IO("send_batch_addr_null_unconnected",
		   udo_vsock_udp_send_batch(send_fd, &d, 1, NULL, NULL), L(EINVAL), NULL);
		d.addr = (struct sockaddr_vm *) (void *) &inet;
		IO("send_batch_entry_addr_af_inet",
		   udo_vsock_udp_send_batch(send_fd, &d, 1, &to, NULL), L(EINVAL), NULL);
	}
}

static ssize_t expect_inst(const struct inst_variant *v, const void *data, size_t size,
                           ssize_t valid)
{
	if (v->err == -1 || !data || !size)
		return -EINVAL;
	if (v->err)
		return -v->err;
	return valid;
}

static void inst_io_cases(void)
{
	const int dontwait = MSG_DONTWAIT, oob = MSG_OOB | MSG_DONTWAIT;
	struct sockaddr_vm from;
	char name[128];
	const struct inst_variant recvs[] = {
		{ "valid", INST(m_recv), live ? 0 : -1 },
		{ "vsock_null", NULL, -1 },
		{ "vsock_create_failed", INST(m_failed), -1 },
		{ "vsock_destroyed", INST(m_destroyed), -1 },
		{ "vsock_fd_closed", INST(m_closed), live ? EBADF : -1 },
		{ "vsock_fd_regular_file", INST(m_regular), live ? ENOTSOCK : -1 },
	};
	struct inst_variant sends[UDO_ARRAY_LEN(recvs)];

	memcpy(sends, recvs, sizeof(sends));
	sends[0].inst = INST(m_client);

	for (size_t i = 0; i < UDO_ARRAY_LEN(recvs); i++) {
		const struct inst_variant *r = &recvs[i], *s = &sends[i];
		/* An instance's record is checked only where one exists. */
		struct udo_vsock_udp *ri = r->inst, *si = s->inst;

		snprintf(name, sizeof(name), "server_recv_data_%s", r->name);
		IO(name, udo_vsock_udp_server_recv_data(r->inst, buf, 16, &from, &dontwait),
		   expect_inst(r, buf, 16, -EAGAIN), ri);
		snprintf(name, sizeof(name), "server_recv_data_%s_data_null", r->name);
		IO(name, udo_vsock_udp_server_recv_data(r->inst, NULL, 16, &from, &dontwait),
		   expect_inst(r, NULL, 16, -EAGAIN), ri);
		snprintf(name, sizeof(name), "server_recv_data_%s_size_0", r->name);
		IO(name, udo_vsock_udp_server_recv_data(r->inst, buf, 0, NULL, &dontwait),
		   expect_inst(r, buf, 0, -EAGAIN), ri);
		snprintf(name, sizeof(name), "server_recv_data_%s_size_max", r->name);
		IO(name, oversized_server_recv_data(r->inst, buf, SIZE_MAX, &dontwait),
		   expect_inst(r, buf, SIZE_MAX, -EAGAIN), ri);
		snprintf(name, sizeof(name), "server_recv_data_%s_msg_oob", r->name);
		IO(name, udo_vsock_udp_server_recv_data(r->inst, buf, 16, NULL, &oob),
		   expect_inst(r, buf, 16, -EOPNOTSUPP), ri);

		snprintf(name, sizeof(name), "client_send_data_%s", s->name);
		IO(name, udo_vsock_udp_client_send_data(s->inst, buf, 16, &dontwait),
		   expect_inst(s, buf, 16, 16), si);
		snprintf(name, sizeof(name), "client_send_data_%s_data_null", s->name);
		IO(name, udo_vsock_udp_client_send_data(s->inst, NULL, 16, NULL),
		   expect_inst(s, NULL, 16, 16), si);
		snprintf(name, sizeof(name), "client_send_data_%s_size_0", s->name);
		IO(name, udo_vsock_udp_client_send_data(s->inst, buf, 0, NULL),
		   expect_inst(s, buf, 0, 16), si);
		snprintf(name, sizeof(name), "client_send_data_%s_size_max", s->name);
		IO(name, oversized_client_send_data(s->inst, buf, SIZE_MAX, NULL),
		   expect_inst(s, buf, SIZE_MAX, -EMSGSIZE), si);
		snprintf(name, sizeof(name), "client_send_data_%s_msg_oob", s->name);
		IO(name, udo_vsock_udp_client_send_data(s->inst, buf, 16, &oob),
		   expect_inst(s, buf, 16, -EOPNOTSUPP), si);
	}
	/* The server's output address of the wrong family is overwritten. */
	from.svm_family = AF_INET;
	IO("server_recv_data_addr_af_inet_output",
	   udo_vsock_udp_server_recv_data(INST(m_recv), buf, 16, &from, &dontwait), L(EAGAIN),
	   INST(m_recv));
}

static void accessor_cases(void)
{
	struct udo_vsock_udp *accept_inst[] = { INST(m_failed), INST(m_destroyed),
	                                        INST(m_closed), INST(m_regular) };
	const char *accept_names[] = { "server_accept_vsock_create_failed",
	                               "server_accept_vsock_destroyed",
	                               "server_accept_vsock_fd_closed",
	                               "server_accept_vsock_fd_regular_file" };
	struct sockaddr_vm peer = { .svm_family = AF_VSOCK, .svm_cid = 2, .svm_port = 1234 };
	struct sockaddr_in inet = { .sin_family = AF_INET };
	unsigned int code;

	INT("server_accept_vsock_null", udo_vsock_udp_server_accept(NULL, &peer), EINVAL);
	INT("server_accept_addr_null", udo_vsock_udp_server_accept(INST(m_recv), NULL), EINVAL);
	code = udo_log_get_error_code(INST(m_recv));
	result("server_accept_addr_null_recorded", code == EINVAL, "code %u", code);
	INT("server_accept_both_null", udo_vsock_udp_server_accept(NULL, NULL), EINVAL);
	/* The server's address is taken: no Linux transport lets a second socket
	 * bind it, whatever the peer (contract); natively the server was never made,
	 * and an instance with no socket is refused (EINVAL). */
	INT("server_accept_addr_af_inet", udo_vsock_udp_server_accept(
	    INST(m_recv), (const struct sockaddr_vm *) &inet), live ? EADDRINUSE : EINVAL);
	INT("server_accept_valid", udo_vsock_udp_server_accept(INST(m_recv), &peer),
	    live ? EADDRINUSE : EINVAL);
	INT("client_connect_vsock_null", udo_vsock_udp_client_connect(NULL), EINVAL);
	INT("client_connect_vsock_create_failed", udo_vsock_udp_client_connect(INST(m_failed)),
	    EBADF);
	INT("client_connect_vsock_destroyed", udo_vsock_udp_client_connect(INST(m_destroyed)),
	    EBADF);
	INT("client_connect_vsock_fd_closed", udo_vsock_udp_client_connect(INST(m_closed)),
	    EBADF);
	INT("client_connect_vsock_fd_regular_file",
	    udo_vsock_udp_client_connect(INST(m_regular)), live ? ENOTSOCK : EBADF);
	code = udo_log_get_error_code(INST(m_regular));
	result("client_connect_failure_recorded", code == (unsigned int) (live ? ENOTSOCK : EBADF),
	       "code %u", code);

	/* Failed or destroyed instances have no socket (fd -1): EINVAL before any
	 * system call.  Where the instance's own socket is gone behind its back
	 * (closed, or replaced by dup2), its address is free again and accept
	 * succeeds: the new fd is the caller's, closed here. */
	for (size_t i = 0; i < UDO_ARRAY_LEN(accept_inst); i++) {
		int want = !live || i < 2 ? EINVAL : 0;

		errno = 0;
		int fd = udo_vsock_udp_server_accept(accept_inst[i], &peer);

		check_int(accept_names[i], fd, errno, want);
		if (fd >= 0)
			close(fd);
	}

	result("get_fd_null", udo_vsock_udp_get_fd(NULL) == -1, "%d",
	       udo_vsock_udp_get_fd(NULL));
	result("get_fd_create_failed", udo_vsock_udp_get_fd(INST(m_failed)) == -1, "%d",
	       udo_vsock_udp_get_fd(INST(m_failed)));
	result("get_fd_destroyed", udo_vsock_udp_get_fd(INST(m_destroyed)) == -1, "%d",
	       udo_vsock_udp_get_fd(INST(m_destroyed)));
	result("get_vcid_null", udo_vsock_udp_get_vcid(NULL) == UINT32_MAX, "%u",
	       udo_vsock_udp_get_vcid(NULL));
	result("get_vcid_destroyed", udo_vsock_udp_get_vcid(INST(m_destroyed)) == 0, "%u",
	       udo_vsock_udp_get_vcid(INST(m_destroyed)));
	result("get_port_null", udo_vsock_udp_get_port(NULL) == -1, "%d",
	       udo_vsock_udp_get_port(NULL));
	result("get_port_destroyed", udo_vsock_udp_get_port(INST(m_destroyed)) == 0, "%d",
	       udo_vsock_udp_get_port(INST(m_destroyed)));
	result("get_sizeof", udo_vsock_udp_get_sizeof() > 0 &&
	       (size_t) udo_vsock_udp_get_sizeof() <= sizeof(m_recv), "%d",
	       udo_vsock_udp_get_sizeof());
	errno = 0;
	{
		unsigned int cid = udo_vsock_udp_get_local_vcid();
		int e = errno;

		/* Natively /dev/vsock may exist (a guest transport) or not; on the
		 * kernel lane (VMCI host, no VM) no transport owns a CID. */
		bool lane = getenv("CANDO_KERNEL_LANE") != NULL;

		result("get_local_vcid",
		       lane ? cid == UINT32_MAX && e == EADDRNOTAVAIL :
		       live ? cid == 2 : (cid != UINT32_MAX || e != 0),
		       "%u errno %s", cid, ename(e));
	}

	errno = EDOM;
	udo_vsock_udp_destroy(NULL);
	result("destroy_null", errno == EDOM, "errno %s", ename(errno));
	udo_vsock_udp_destroy(INST(m_destroyed));
	result("destroy_twice_caller_memory", errno == EDOM &&
	       udo_vsock_udp_get_fd(INST(m_destroyed)) == -1, "errno %s", ename(errno));
	udo_vsock_udp_destroy(INST(m_failed));
	result("destroy_create_failed", errno == EDOM &&
	       udo_vsock_udp_get_fd(INST(m_failed)) == -1, "errno %s", ename(errno));
}

static void create_cases(void)
{
	struct udo_vsock_udp_server_create_info s_below = { VMADDR_CID_ANY, -2 },
		s_min = { VMADDR_CID_ANY, INT_MIN }, s_cid3 = { 3, -1 },
		s_cid1 = { VMADDR_CID_LOCAL, -1 }, s_cid_hv = { VMADDR_CID_HYPERVISOR, -1 };
	struct udo_vsock_udp_client_create_info c_below = { 2, -2 }, c_min = { 2, INT_MIN };
	struct udo_vsock_udp *mem = INST(m_scratch);
	const int no_dev = live ? 0 : ENODEV;
	const int not_local = live ? EADDRNOTAVAIL : ENODEV;

	CREATE("server_create_alloc_info_null", udo_vsock_udp_server_create(NULL, NULL), EINVAL,
	       NULL);
	CREATE("server_create_caller_info_null", udo_vsock_udp_server_create(mem, NULL), EINVAL,
	       mem);
	CREATE("server_create_alloc_port_minus2", udo_vsock_udp_server_create(NULL, &s_below),
	       EINVAL, NULL);
	CREATE("server_create_caller_port_minus2", udo_vsock_udp_server_create(mem, &s_below),
	       EINVAL, mem);
	CREATE("server_create_alloc_port_int_min", udo_vsock_udp_server_create(NULL, &s_min),
	       EINVAL, NULL);
	CREATE("server_create_caller_port_int_min", udo_vsock_udp_server_create(mem, &s_min),
	       EINVAL, mem);
	CREATE("server_create_caller_cid_not_local", udo_vsock_udp_server_create(mem, &s_cid3),
	       not_local, mem);
	CREATE("server_create_alloc_cid_not_local", udo_vsock_udp_server_create(NULL, &s_cid3),
	       not_local, NULL);
	CREATE("server_create_caller_cid_local_loopback", udo_vsock_udp_server_create(mem, &s_cid1),
	       not_local, mem);
	CREATE("server_create_caller_cid_hypervisor", udo_vsock_udp_server_create(mem, &s_cid_hv),
	       not_local, mem);
	CREATE("client_create_alloc_info_null", udo_vsock_udp_client_create(NULL, NULL), EINVAL,
	       NULL);
	CREATE("client_create_caller_info_null", udo_vsock_udp_client_create(mem, NULL), EINVAL,
	       mem);
	CREATE("client_create_alloc_port_minus2", udo_vsock_udp_client_create(NULL, &c_below),
	       EINVAL, NULL);
	CREATE("client_create_caller_port_minus2", udo_vsock_udp_client_create(mem, &c_below),
	       EINVAL, mem);
	CREATE("client_create_alloc_port_int_min", udo_vsock_udp_client_create(NULL, &c_min),
	       EINVAL, NULL);
	CREATE("client_create_caller_port_int_min", udo_vsock_udp_client_create(mem, &c_min),
	       EINVAL, mem);
	if (no_dev) {
		struct udo_vsock_udp_client_create_info ok = { 2, 1234 };

		CREATE("client_create_caller_no_transport", udo_vsock_udp_client_create(mem, &ok),
		       ENODEV, mem);
	} else {
		/* A port taken by a live server: EADDRINUSE, nothing leaked. */
		struct udo_vsock_udp_server_create_info taken = {
			.vcid = VMADDR_CID_ANY, .port = udo_vsock_udp_get_port(INST(m_recv)) };

		CREATE("server_create_caller_port_in_use", udo_vsock_udp_server_create(mem, &taken),
		       EADDRINUSE, mem);
	}
	udo_vsock_udp_destroy(mem);
}

/* The log functions take pointers too; they must shrug off NULL and bad fds. */
static void log_cases(void)
{
	struct udo_log_error_struct rec = { 7, "kept" };
	char out[64];
	ssize_t n;

	result("log_get_error_null", udo_log_get_error(NULL) != NULL &&
	       !udo_log_get_error(NULL)[0], "not \"\"");
	result("log_get_error_code_null", udo_log_get_error_code(NULL) == 0, "not 0");
	errno = EDOM;
	udo_log_set_error_struct(NULL, 5, "x %d", 1);
	result("log_set_error_struct_null", errno == EDOM, "errno %s", ename(errno));
	udo_log_set_error_struct(&rec, 5, NULL);
	result("log_set_error_struct_format_null", rec.code == 7 && !strcmp(rec.buffer, "kept") &&
	       errno == EDOM, "record changed to %u '%s'", rec.code, rec.buffer);

	udo_log_set_level(UDO_LOG_ALL);
	udo_log_set_write_fd(pipe_fds[1]);
	udo_log_time(UDO_LOG_ERROR, NULL);
	udo_log_notime(UDO_LOG_ALL, NULL);
	fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
	n = read(pipe_fds[0], out, sizeof(out));
	result("log_format_null_writes_nothing", n < 0 && errno == EAGAIN, "read %zd", n);

	udo_log_set_write_fd(-1);
	errno = EDOM;
	udo_log_print("to fd -1");
	result("log_write_fd_minus1", errno == EDOM, "errno %s", ename(errno));
	udo_log_set_write_fd(closed_fd);
	udo_log_error("to a closed fd");
	result("log_write_fd_closed", errno == EDOM, "errno %s", ename(errno));
	udo_log_set_write_fd(pipe_fds[0]); /* the read end: write fails with EBADF */
	udo_log_warning("to a pipe's read end");
	result("log_write_fd_read_only", errno == EDOM, "errno %s", ename(errno));
	udo_log_set_level((enum udo_log_level_type) 0x40000000);
	udo_log_set_write_fd(pipe_fds[1]);
	udo_log_info("level without the info bit");
	n = read(pipe_fds[0], out, sizeof(out));
	result("log_level_unknown_bits", n < 0 && errno == EAGAIN, "read %zd", n);
	/* A failing library call logs at the error level: one line, errno kept. */
	udo_log_set_level(UDO_LOG_ERROR);
	udo_log_remove_colors();
	errno = 0;
	n = udo_vsock_udp_recv_data(-1, NULL, 0, NULL, NULL);
	result("log_failure_errno_kept", n == -EINVAL && errno == EINVAL, "%zd errno %s", n,
	       ename(errno));
	udo_log_reset_colors();
	udo_log_set_level(UDO_LOG_NONE);
	udo_log_set_write_fd(STDOUT_FILENO);
}

int main(void)
{
	int fds_before;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("CANDO_BAD_INPUT_SELFTEST")) {
		/* Proves the sanitizer harness sees reports from inside libcando: caller
		 * memory far smaller than udo_vsock_udp_get_sizeof(). */
		struct udo_vsock_udp_server_create_info info = { VMADDR_CID_ANY, -2 };
		void *small = malloc(8);

		udo_vsock_udp_server_create(small, &info);
		free(small);
		return 0;
	}
	fds_before = count_fds();
	setup();
	raw_io_cases();
	batch_cases();
	inst_io_cases();
	log_cases();
	accessor_cases();
	create_cases();

	udo_vsock_udp_destroy(INST(m_recv));
	udo_vsock_udp_destroy(INST(m_sink));
	udo_vsock_udp_destroy(INST(m_client));
	udo_vsock_udp_destroy(INST(m_regular));
	udo_vsock_udp_destroy(INST(m_closed));
	close(regular_fd);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	result("no_fd_leak", count_fds() == fds_before, "%d fds, %d at start", count_fds(),
	       fds_before);
	printf("done: %d cases, %d failed (%s)\n", n_cases, n_failed, live ? "live" : "native");
	return n_failed ? 1 : 0;
}
