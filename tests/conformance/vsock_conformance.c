/* SPDX-License-Identifier: MIT */
/*
 * vsock_conformance: every rule of the "Semantics" section of
 * shared/spec/vsock-wrapper.md, exercised with plain libc calls (no libcando),
 * one output line per case: "name: result", then "done: N cases".
 *
 * It runs on a real kernel (Debian's, VMCI datagram transport, inside QEMU via
 * tests/kernel/vm.py) and on the host under vsock_wrapper, and both outputs
 * must match line for line, except for the cases below whose result depends on
 * which CIDs are local (the kernel there has none: bind to CID 2 fails, the
 * local-CID ioctl gives VMADDR_CID_ANY, CID 3 is not a VM; under the wrapper
 * with VSOCK_WRAPPER_CID=2, CID 2 is local and CID 3 is a world nobody bound).
 * The same list is in cid_dependent.txt:
 *
 *   CID-DEPENDENT: bind_cid_local
 *   CID-DEPENDENT: bind_inuse_local_cid
 *   CID-DEPENDENT: getsockname_bound_local
 *   CID-DEPENDENT: dev_local_cid
 *   CID-DEPENDENT: send_cid_other
 *
 * Under the wrapper, run it with VSOCK_WRAPPER_CID=2 and VSOCK_WRAPPER_FULL=drop
 * (the kernel drops datagrams to a full receiver; `drop` is the wrapper mode
 * that does the same) in a fresh VSOCK_WRAPPER_NAMESPACE, so auto-bound ports
 * start at 1024 as on a freshly booted kernel.
 *
 * Results never contain fds or times; auto-bound ports are printed as numbers,
 * which are the same in both runs because both count from 1024 in a new world.
 * Build: cc -std=gnu11 -O2 -Wall -Wextra [-static] -o vsock_conformance vsock_conformance.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/vm_sockets.h>

#ifndef SO_VM_SOCKETS_BUFFER_SIZE
#define SO_VM_SOCKETS_BUFFER_SIZE 0
#endif

#define ANY VMADDR_CID_ANY
#define PANY VMADDR_PORT_ANY
#define HOST VMADDR_CID_HOST

static int ncases;

static void out(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	ncases++;
}

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "E?";
}

/* "ok" / a count, or the errno name. */
static void res(const char *name, long rc)
{
	if (rc < 0)
		out(name, "%s", ename(errno));
	else
		out(name, "%ld", rc);
}

static void res_ok(const char *name, long rc)
{
	if (rc < 0)
		out(name, "%s", ename(errno));
	else
		out(name, "ok");
}

static struct sockaddr_vm vm(unsigned int cid, unsigned int port)
{
	struct sockaddr_vm a;

	memset(&a, 0, sizeof(a));
	a.svm_family = AF_VSOCK;
	a.svm_cid = cid;
	a.svm_port = port;
	return a;
}

#define SA(p) ((struct sockaddr *)(p))

static int sock(void)
{
	int fd = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		printf("fatal: socket: %s\n", strerror(errno));
		exit(2);
	}
	return fd;
}

static int bind_to(int fd, unsigned int cid, unsigned int port)
{
	struct sockaddr_vm a = vm(cid, port);

	return bind(fd, SA(&a), sizeof(a));
}

/* A socket bound to (ANY, port), or exit: the cases rely on it. */
static int bound(unsigned int port)
{
	int fd = sock();

	if (bind_to(fd, ANY, port) != 0) {
		printf("fatal: bind %u: %s\n", port, strerror(errno));
		exit(2);
	}
	return fd;
}

static ssize_t send_to(int fd, const void *buf, size_t len, int flags, unsigned int cid,
		       unsigned int port)
{
	struct sockaddr_vm a = vm(cid, port);

	return sendto(fd, buf, len, flags, SA(&a), sizeof(a));
}

/* Wait (bounded) until fd has a datagram; never sleep as synchronisation. */
static int wait_in(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 5000);
}

static ssize_t rcv(int fd, void *buf, size_t len, int flags, struct sockaddr_vm *from,
		   socklen_t *fromlen)
{
	struct sockaddr_vm dummy;
	socklen_t dlen = sizeof(dummy);

	if (!(flags & MSG_DONTWAIT))
		wait_in(fd);
	return recvfrom(fd, buf, len, flags, SA(from ? from : &dummy), fromlen ? fromlen : &dlen);
}

static unsigned int local_port(int fd)
{
	struct sockaddr_vm a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, SA(&a), &len) != 0)
		return 0;
	return a.svm_port;
}

static void name_line(const char *name, int rc, const struct sockaddr_vm *a, socklen_t len)
{
	if (rc < 0)
		out(name, "%s", ename(errno));
	else
		out(name, "cid=%u port=%u len=%u", a->svm_cid, a->svm_port, (unsigned int)len);
}

static void sockname(const char *name, int fd)
{
	struct sockaddr_vm a;
	socklen_t len = sizeof(a);
	int rc = getsockname(fd, SA(&a), &len);

	name_line(name, rc, &a, len);
}

static void peername(const char *name, int fd)
{
	struct sockaddr_vm a;
	socklen_t len = sizeof(a);
	int rc = getpeername(fd, SA(&a), &len);

	name_line(name, rc, &a, len);
}

static void int_opt(const char *name, int fd, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &len) < 0)
		out(name, "%s", ename(errno));
	else
		out(name, "%d len=%u", v, (unsigned int)len);
}

static const char *revents(short r)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s%s%s%s", r & POLLIN ? "POLLIN " : "", r & POLLOUT ? "POLLOUT " : "",
		 r & POLLERR ? "POLLERR " : "", r & POLLHUP ? "POLLHUP " : "");
	if (!buf[0])
		return "none";
	buf[strlen(buf) - 1] = '\0';
	return buf;
}

static short poll_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

static void drain(int fd)
{
	char buf[16];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
}

/* ---------------------------------------------------------------- socket */

static void t_socket(void)
{
	int fd, fl, fdf;

	fd = socket(AF_VSOCK, SOCK_DGRAM, 0);
	res_ok("socket_dgram", fd);
	close(fd);

	fd = socket(AF_VSOCK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	fl = fcntl(fd, F_GETFL);
	fdf = fcntl(fd, F_GETFD);
	out("socket_nonblock_cloexec", "nonblock=%d cloexec=%d", !!(fl & O_NONBLOCK),
	    !!(fdf & FD_CLOEXEC));
	close(fd);

	fd = socket(AF_VSOCK, SOCK_DGRAM, PF_VSOCK);
	res_ok("socket_proto_pf_vsock", fd);
	close(fd);

	fd = socket(AF_VSOCK, SOCK_DGRAM, 17);
	res_ok("socket_proto_other", fd);
	if (fd >= 0)
		close(fd);

	fd = sock();
	int_opt("so_domain", fd, SOL_SOCKET, SO_DOMAIN);
	int_opt("so_type", fd, SOL_SOCKET, SO_TYPE);
	int_opt("so_protocol", fd, SOL_SOCKET, SO_PROTOCOL);
	close(fd);

	{
		int sv[2];

		res_ok("socketpair", socketpair(AF_VSOCK, SOCK_DGRAM, 0, sv));
	}
}

/* ------------------------------------------------------------------ bind */

static void t_bind(void)
{
	struct sockaddr_vm a = vm(ANY, 5001);
	int fd, fd2, one = 1;
	pid_t pid;
	int st;

	fd = sock();
	res_ok("bind_addrlen_short", bind(fd, SA(&a), sizeof(a) - 1));
	a.svm_family = AF_INET;
	res_ok("bind_family_wrong", bind(fd, SA(&a), sizeof(a)));
	a = vm(ANY, 5001);
	a.svm_flags = 0x80;
	res_ok("bind_flags_invalid", bind(fd, SA(&a), sizeof(a)));
	res_ok("bind_any", bind_to(fd, ANY, 5001));
	res_ok("bind_twice", bind_to(fd, ANY, 5002));
	close(fd);

	fd = sock();
	res_ok("bind_cid_other", bind_to(fd, 99, 5003));
	res_ok("bind_cid_loopback", bind_to(fd, VMADDR_CID_LOCAL, 5003));
	res_ok("bind_cid_hypervisor", bind_to(fd, VMADDR_CID_HYPERVISOR, 5003));
	res_ok("bind_cid_local", bind_to(fd, HOST, 5003));
	close(fd);

	fd = sock();
	fd2 = sock();
	res_ok("bind_port_any", bind_to(fd, ANY, PANY));
	out("bind_port_any_port", "%u", local_port(fd));
	res_ok("bind_port_any_again", bind_to(fd2, ANY, PANY));
	out("bind_port_any_next", "%u", local_port(fd2));
	close(fd);
	close(fd2);

	fd = sock();
	res_ok("bind_priv_port_root", bind_to(fd, ANY, 999));
	close(fd);

	/* Without CAP_NET_BIND_SERVICE (dropped in a child), a port below 1024. */
	pid = fork();
	if (pid == 0) {
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2];

		if (syscall(SYS_capget, &h, d) != 0)
			_exit(200);
		d[0].effective &= ~(1u << CAP_NET_BIND_SERVICE);
		if (syscall(SYS_capset, &h, d) != 0)
			_exit(201);
		fd = sock();
		_exit(bind_to(fd, ANY, 998) == 0 ? 0 : errno);
	}
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		out("bind_priv_port_nocap", "ok");
	else if (WIFEXITED(st) && WEXITSTATUS(st) < 200)
		out("bind_priv_port_nocap", "%s", ename(WEXITSTATUS(st)));
	else
		out("bind_priv_port_nocap", "setup failed %d", st);

	fd = bound(5004);
	fd2 = sock();
	res_ok("bind_inuse", bind_to(fd2, ANY, 5004));
	res_ok("bind_inuse_local_cid", bind_to(fd2, HOST, 5004));
	res_ok("so_reuseaddr_set", setsockopt(fd2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)));
	res_ok("bind_inuse_reuseaddr", bind_to(fd2, ANY, 5004));
	out("bind_failed_leaves_unbound", "port=%u", local_port(fd2));
	close(fd);
	close(fd2);

	/* A port is free again once its socket is closed. */
	fd = sock();
	res_ok("bind_after_close", bind_to(fd, ANY, 5004));
	close(fd);

	fd = sock();
	sockname("getsockname_unbound", fd);
	bind_to(fd, ANY, 5005);
	sockname("getsockname_bound_any", fd);
	close(fd);

	fd = sock();
	if (bind_to(fd, HOST, 5006) == 0)
		sockname("getsockname_bound_local", fd);
	else
		out("getsockname_bound_local", "%s", ename(errno));
	close(fd);

	fd = bound(5007);
	{
		struct sockaddr_vm b;
		socklen_t len = 4;

		memset(&b, 0xee, sizeof(b));
		if (getsockname(fd, SA(&b), &len) < 0)
			out("getsockname_short_len", "%s", ename(errno));
		else
			out("getsockname_short_len", "len=%u family=%u port_untouched=%d", (unsigned int)len,
			    b.svm_family, b.svm_port == 0xeeeeeeeeu);
	}
	close(fd);
}

/* --------------------------------------------------------------- connect */

static void t_connect(void)
{
	struct sockaddr_vm a;
	int fd, rx, third;
	char buf[32];
	ssize_t n;

	fd = sock();
	a = vm(HOST, 5100);
	res_ok("connect_no_peer_check", connect(fd, SA(&a), sizeof(a)));
	out("connect_autobinds", "port=%u", local_port(fd));
	peername("getpeername_connected", fd);
	a = vm(HOST, 5101);
	res_ok("connect_again", connect(fd, SA(&a), sizeof(a)));
	peername("getpeername_reconnected", fd);
	a = vm(0, 0);
	a.svm_family = AF_UNSPEC;
	res_ok("connect_unspec_short", connect(fd, SA(&a), 2));
	res_ok("connect_unspec", connect(fd, SA(&a), sizeof(a)));
	peername("getpeername_after_unspec", fd);
	sockname("getsockname_after_unspec", fd);
	close(fd);

	fd = sock();
	peername("getpeername_unconnected", fd);
	a = vm(HOST, 5100);
	res_ok("connect_addrlen_short", connect(fd, SA(&a), sizeof(a) - 1));
	a.svm_family = AF_INET;
	res_ok("connect_family_wrong", connect(fd, SA(&a), sizeof(a)));
	out("connect_failed_no_autobind", "port=%u", local_port(fd));
	a = vm(VMADDR_CID_HYPERVISOR, 5100);
	res_ok("connect_cid_hypervisor", connect(fd, SA(&a), sizeof(a)));
	out("connect_cid_hypervisor_autobound", "port=%u", local_port(fd));
	close(fd);

	/* Connected to rx; a third socket's datagram still arrives. */
	rx = bound(5102);
	fd = bound(5103);
	third = bound(5104);
	a = vm(HOST, 5103);
	connect(rx, SA(&a), sizeof(a));
	send_to(third, "third", 5, 0, HOST, 5102);
	{
		struct sockaddr_vm from;
		socklen_t flen = sizeof(from);

		n = rcv(rx, buf, sizeof(buf), 0, &from, &flen);
		if (n < 0)
			out("connect_does_not_filter", "%s", ename(errno));
		else
			out("connect_does_not_filter", "%zd from port=%u", n, from.svm_port);
	}
	/* send() goes to the connected peer. */
	res("send_connected", send(rx, "hello", 5, 0));
	n = rcv(fd, buf, sizeof(buf), 0, NULL, NULL);
	res("send_connected_received", n);
	res("write_connected", write(rx, "abc", 3));
	res("write_connected_received", rcv(fd, buf, sizeof(buf), 0, NULL, NULL));
	/* An invalid address in sendto falls back to the connected peer. */
	a = vm(HOST, 5104);
	res("sendto_short_addr_connected", sendto(rx, "xy", 2, 0, SA(&a), 8));
	res("sendto_short_addr_connected_received", rcv(fd, buf, sizeof(buf), 0, NULL, NULL));
	close(rx);
	close(fd);
	close(third);

	/* Connected to (ANY, p): sending rewrites the peer to the local CID. */
	rx = bound(5105);
	fd = sock();
	a = vm(ANY, 5105);
	connect(fd, SA(&a), sizeof(a));
	peername("getpeername_cid_any", fd);
	res("send_connected_cid_any", send(fd, "q", 1, 0));
	peername("getpeername_cid_any_after_send", fd);
	drain(rx);
	close(fd);
	close(rx);

	fd = sock();
	a = vm(VMADDR_CID_LOCAL, 5106);
	res_ok("connect_cid_loopback", connect(fd, SA(&a), sizeof(a)));
	res("send_connected_cid_loopback", send(fd, "x", 1, 0));
	a = vm(HOST, PANY);
	res_ok("connect_port_any", connect(fd, SA(&a), sizeof(a)));
	res("send_connected_port_any", send(fd, "x", 1, 0));
	close(fd);

	/* shutdown */
	fd = sock();
	res_ok("shutdown_unconnected", shutdown(fd, SHUT_WR));
	close(fd);
	fd = sock();
	a = vm(HOST, 5107);
	connect(fd, SA(&a), sizeof(a));
	res_ok("shutdown_connected", shutdown(fd, SHUT_WR));
	peername("getpeername_after_shutdown", fd);
	close(fd);
}

/* ------------------------------------------------------------------ send */

static void t_send(void)
{
	static char big[69609];
	struct sockaddr_vm from;
	socklen_t flen;
	int fd, rx, rx2;
	char buf[64];
	ssize_t n;

	rx = bound(5200);

	fd = sock();
	res("send_autobinds", send_to(fd, "a", 1, 0, HOST, 5200));
	out("send_autobinds_port", "%u", local_port(fd));
	flen = sizeof(from);
	n = rcv(rx, buf, sizeof(buf), 0, &from, &flen);
	if (n < 0)
		out("recv_sender_addr", "%s", ename(errno));
	else
		out("recv_sender_addr", "%zd cid=%u port=%u len=%u", n, from.svm_cid, from.svm_port,
		    (unsigned int)flen);
	close(fd);

	fd = sock();
	res("send_oob", send_to(fd, "a", 1, MSG_OOB, HOST, 5200));
	out("send_oob_no_autobind", "port=%u", local_port(fd));
	res("send_no_dest", send(fd, "a", 1, 0));
	out("send_no_dest_autobinds", "port=%u", local_port(fd));
	res("write_no_dest", write(fd, "a", 1));
	res("sendto_short_addr_unconnected", sendto(fd, "a", 1, 0, (struct sockaddr *)big, 8));
	res("send_dest_port_any", send_to(fd, "a", 1, 0, HOST, PANY));
	res("send_dest_cid_loopback", send_to(fd, "a", 1, 0, VMADDR_CID_LOCAL, 5200));
	res("send_dest_cid_hypervisor", send_to(fd, "a", 1, 0, VMADDR_CID_HYPERVISOR, 5200));
	res("send_dest_unbound_port", send_to(fd, "a", 1, 0, HOST, 5299));
	res("send_dest_unbound_port_cid_any", send_to(fd, "a", 1, 0, ANY, 5299));
	res("send_cid_other", send_to(fd, "a", 1, 0, 3, 5200));

	res("send_dest_cid_any", send_to(fd, "any", 3, 0, ANY, 5200));
	flen = sizeof(from);
	n = rcv(rx, buf, sizeof(buf), 0, &from, &flen);
	if (n < 0)
		out("send_dest_cid_any_sender", "%s", ename(errno));
	else
		out("send_dest_cid_any_sender", "%zd cid=%u port=%u", n, from.svm_cid, from.svm_port);

	res("send_69608", send_to(fd, big, 69608, 0, HOST, 5200));
	res("recv_69608", rcv(rx, big, sizeof(big), 0, NULL, NULL));
	res("send_69609", send_to(fd, big, 69609, 0, HOST, 5200));
	res("send_69609_to_unbound_port", send_to(fd, big, 69609, 0, HOST, 5299));
	res("send_69609_to_cid_loopback", send_to(fd, big, 69609, 0, VMADDR_CID_LOCAL, 5200));
	res("send_69609_to_port_any", send_to(fd, big, 69609, 0, HOST, PANY));
	res("send_zero", send_to(fd, "", 0, 0, HOST, 5200));
	flen = sizeof(from);
	n = rcv(rx, buf, sizeof(buf), 0, &from, &flen);
	if (n < 0)
		out("recv_zero", "%s", ename(errno));
	else
		out("recv_zero", "%zd len=%u", n, (unsigned int)flen);

	/* sendmsg, sendmmsg, writev */
	{
		struct iovec iov[2] = { { "ab", 2 }, { "cde", 3 } };
		struct sockaddr_vm to = vm(HOST, 5200);
		struct msghdr m = { .msg_name = &to, .msg_namelen = sizeof(to), .msg_iov = iov, .msg_iovlen = 2 };
		struct mmsghdr mm[2];

		res("sendmsg_iov", sendmsg(fd, &m, 0));
		n = rcv(rx, buf, sizeof(buf), 0, NULL, NULL);
		buf[n > 0 ? n : 0] = '\0';
		out("sendmsg_iov_received", "%zd %s", n, buf);

		memset(mm, 0, sizeof(mm));
		mm[0].msg_hdr = m;
		mm[1].msg_hdr = m;
		mm[1].msg_hdr.msg_iovlen = 1;
		res("sendmmsg", sendmmsg(fd, mm, 2, 0));
		out("sendmmsg_lens", "%u %u", mm[0].msg_len, mm[1].msg_len);
		drain(rx);

		to.svm_port = 5299;
		mm[1].msg_hdr = m;
		to.svm_port = 5200;
		{
			struct sockaddr_vm bad = vm(HOST, 5299);

			mm[1].msg_hdr.msg_name = &bad;
			res("sendmmsg_second_fails", sendmmsg(fd, mm, 2, 0));
			mm[0].msg_hdr.msg_name = &bad;
			res("sendmmsg_first_fails", sendmmsg(fd, mm, 2, 0));
		}
		drain(rx);

		to = vm(HOST, 5200);
		connect(fd, SA(&to), sizeof(to));
		res("writev_connected", writev(fd, iov, 2));
		res("writev_connected_received", rcv(rx, buf, sizeof(buf), 0, NULL, NULL));
	}
	close(fd);

	/* A full receiver: the kernel never makes the sender wait (no EAGAIN even
	 * with MSG_DONTWAIT): it drops, and the send still succeeds.  How many of
	 * the 1000 are sent varies on the kernel: a burst can also be refused with
	 * ENOMEM when VMCI's queue of datagrams awaiting delivery is full (more so
	 * on a loaded machine), so the count is not part of the line. */
	rx2 = bound(5201);
	{
		int small = 4096, would_block = 0, got = 0, i;

		setsockopt(rx2, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		fd = sock();
		for (i = 0; i < 1000; i++)
			if (send_to(fd, "0123456789abcdef", 16, MSG_DONTWAIT, HOST, 5201) < 0 &&
			    errno == EAGAIN)
				would_block++;
		while (recv(rx2, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
			got++;
		out("send_full_receiver", "would_block=%d received=%s", would_block,
		    got > 0 && got < 1000 ? "some" : got == 0 ? "none" : "all");
		close(fd);
	}
	close(rx2);
	close(rx);
}

/* --------------------------------------------------------------- receive */

static void t_recv(void)
{
	char buf[64], small[10];
	struct sockaddr_vm from;
	socklen_t flen;
	int fd, rx, nb;
	ssize_t n;

	rx = bound(5300);
	fd = bound(5301);

	res("recv_oob", recv(rx, buf, sizeof(buf), MSG_OOB));
	res("recv_errqueue", recv(rx, buf, sizeof(buf), MSG_ERRQUEUE));
	res("recv_dontwait_empty", recv(rx, buf, sizeof(buf), MSG_DONTWAIT));
	nb = socket(AF_VSOCK, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	res("recv_nonblock_empty", recv(nb, buf, sizeof(buf), 0));
	close(nb);

	send_to(fd, "peekaboo", 8, 0, HOST, 5300);
	wait_in(rx);
	res("recv_peek", recv(rx, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT));
	n = recv(rx, buf, sizeof(buf), MSG_DONTWAIT);
	res("recv_after_peek", n);

	send_to(fd, "0123456789abcdefghij", 20, 0, HOST, 5300);
	{
		struct iovec iov = { small, sizeof(small) };
		struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				    .msg_iovlen = 1 };

		wait_in(rx);
		n = recvmsg(rx, &m, 0);
		if (n < 0)
			out("recv_trunc", "%s", ename(errno));
		else
			out("recv_trunc", "%zd%s", n, m.msg_flags & MSG_TRUNC ? " MSG_TRUNC" : "");
		res("recv_trunc_rest_discarded", recv(rx, buf, sizeof(buf), MSG_DONTWAIT));

		send_to(fd, "0123456789abcdefghij", 20, 0, HOST, 5300);
		wait_in(rx);
		m.msg_flags = 0;
		n = recvmsg(rx, &m, MSG_TRUNC);
		if (n < 0)
			out("recvmsg_flag_trunc", "%s", ename(errno));
		else
			out("recvmsg_flag_trunc", "%zd%s", n, m.msg_flags & MSG_TRUNC ? " MSG_TRUNC" : "");
	}
	send_to(fd, "0123456789abcdefghij", 20, 0, HOST, 5300);
	res("recv_flag_trunc", rcv(rx, small, sizeof(small), MSG_TRUNC, NULL, NULL));
	send_to(fd, "0123456789abcdefghij", 20, 0, HOST, 5300);
	{
		struct msghdr m = { 0 };

		wait_in(rx);
		n = recvmsg(rx, &m, 0);
		out("recv_zero_buffer", "%zd%s", n, m.msg_flags & MSG_TRUNC ? " MSG_TRUNC" : "");
		res("recv_zero_buffer_consumed", recv(rx, buf, sizeof(buf), MSG_DONTWAIT));
	}

	send_to(fd, "hello", 5, 0, HOST, 5300);
	flen = 8;
	memset(&from, 0xee, sizeof(from));
	n = rcv(rx, buf, sizeof(buf), 0, &from, &flen);
	out("recvfrom_short_addrlen", "%zd len=%u cid_untouched=%d", n, (unsigned int)flen,
	    from.svm_cid == 0xeeeeeeeeu);

	send_to(fd, "hello", 5, 0, HOST, 5300);
	wait_in(rx);
	res("read_zero", read(rx, buf, 0));
	res("read_after_zero", read(rx, buf, sizeof(buf)));
	send_to(fd, "hello", 5, 0, HOST, 5300);
	{
		struct iovec iov[2] = { { buf, 2 }, { buf + 2, 10 } };

		wait_in(rx);
		res("readv", readv(rx, iov, 2));
	}
	send_to(fd, "one", 3, 0, HOST, 5300);
	send_to(fd, "three", 5, 0, HOST, 5300);
	{
		char b0[8], b1[8];
		struct iovec i0 = { b0, sizeof(b0) }, i1 = { b1, sizeof(b1) };
		struct sockaddr_vm f0, f1;
		struct mmsghdr mm[3];
		struct timespec ts = { 5, 0 };

		memset(mm, 0, sizeof(mm));
		mm[0].msg_hdr.msg_iov = &i0;
		mm[0].msg_hdr.msg_iovlen = 1;
		mm[0].msg_hdr.msg_name = &f0;
		mm[0].msg_hdr.msg_namelen = sizeof(f0);
		mm[1].msg_hdr.msg_iov = &i1;
		mm[1].msg_hdr.msg_iovlen = 1;
		mm[1].msg_hdr.msg_name = &f1;
		mm[1].msg_hdr.msg_namelen = sizeof(f1);
		mm[2] = mm[1];
		wait_in(rx);
		n = recvmmsg(rx, mm, 3, MSG_DONTWAIT, &ts);
		if (n < 0)
			out("recvmmsg", "%s", ename(errno));
		else
			out("recvmmsg", "%zd lens=%u,%u port=%u", n, mm[0].msg_len, mm[1].msg_len,
			    f1.svm_port);
	}

	out("poll_empty", "%s", revents(poll_now(rx)));
	send_to(fd, "x", 1, 0, HOST, 5300);
	wait_in(rx);
	out("poll_queued", "%s", revents(poll_now(rx)));
	{
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN }, got;

		epoll_ctl(ep, EPOLL_CTL_ADD, rx, &ev);
		res("epoll_queued", epoll_wait(ep, &got, 1, 5000));
		close(ep);
	}
	drain(rx);

	close(fd);
	close(rx);
}

/* ------------------------------------------------------ device, options */

static void t_device(void)
{
	unsigned int cid = 12345;
	int dev, fd, v;
	socklen_t len;

	dev = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	res_ok("dev_open", dev);
	if (ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
		out("dev_local_cid", "%s", ename(errno));
	else
		out("dev_local_cid", "%u", cid);
	res_ok("dev_other_ioctl", ioctl(dev, _IO(7, 0xb8), &cid));
	res_ok("dev_fionread", ioctl(dev, FIONREAD, &v));
	close(dev);

	fd = sock();
	res_ok("sock_local_cid_ioctl", ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid));
	res_ok("sock_fionread", ioctl(fd, FIONREAD, &v));
	v = 1;
	res_ok("sock_fionbio", ioctl(fd, FIONBIO, &v));
	bind_to(fd, ANY, 5400);
	{
		char buf[8];

		res("fionbio_recv_empty", recv(fd, buf, sizeof(buf), 0));
	}
	close(fd);

	fd = sock();
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	{
		char buf[8];

		res("fcntl_nonblock_recv_empty", recv(fd, buf, sizeof(buf), 0));
	}
	v = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	int_opt("so_rcvbuf", fd, SOL_SOCKET, SO_RCVBUF);
	close(fd);

	fd = bound(5401);
	{
		struct timeval tv = { 0, 50000 };
		char buf[8];

		res_ok("so_rcvtimeo_set", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
		res("so_rcvtimeo_recv", recv(fd, buf, sizeof(buf), 0));
	}
	{
		unsigned long long size = 0;

		len = sizeof(size);
		res_ok("vsock_opt_get", getsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, &len));
		size = 65536;
		res_ok("vsock_opt_set", setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, sizeof(size)));
		v = 1;
		res_ok("ip_level_opt", setsockopt(fd, 0 /* SOL_IP */, 1, &v, sizeof(v)));
	}
	int_opt("so_error", fd, SOL_SOCKET, SO_ERROR);
	res_ok("listen", listen(fd, 1));
	close(fd);
}

/* ------------------------------------------------------ file descriptors */

static void t_fds(void)
{
	int fd, d, d2, fl, p[2], st;
	char buf[16];
	pid_t pid;

	fd = sock();
	d = dup(fd);
	bind_to(d, ANY, 5500);
	out("dup_shares_bind", "port=%u", local_port(fd));
	close(fd);
	out("dup_survives_close", "port=%u", local_port(d));
	d2 = 100;
	res_ok("dup2", dup2(d, d2));
	out("dup2_shares", "port=%u", local_port(d2));
	res_ok("dup3", dup3(d, 101, O_CLOEXEC));
	fl = fcntl(101, F_GETFD);
	out("dup3_cloexec", "%d port=%u", !!(fl & FD_CLOEXEC), local_port(101));
	fd = fcntl(d, F_DUPFD_CLOEXEC, 200);
	out("fcntl_dupfd_cloexec", "%s port=%u", fd >= 200 ? "ok" : ename(errno), local_port(fd));
	close(fd);
	close(101);
	close(d2);
	close(d);

	/* The number of a closed emulated socket, reused by a pipe and a UNIX socket. */
	fd = sock();
	close(fd);
	if (pipe(p) == 0) {
		out("fd_reuse_pipe", "%s", write(p[1], "z", 1) == 1 && read(p[0], buf, 1) == 1 ? "ok" : ename(errno));
		close(p[0]);
		close(p[1]);
	}
	fd = sock();
	d = fd;
	close(fd);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	int_opt("fd_reuse_unix_domain", fd, SOL_SOCKET, SO_DOMAIN);
	close(fd);
	(void)d;

	/* fork: an inherited unbound socket auto-binds a fresh port in the child. */
	{
		int rx = bound(5501), u = sock();
		struct sockaddr_vm from;
		socklen_t flen = sizeof(from);
		ssize_t n;

		pid = fork();
		if (pid == 0) {
			_exit(send_to(u, "kid", 3, 0, HOST, 5501) == 3 ? 0 : 1);
		}
		waitpid(pid, &st, 0);
		n = rcv(rx, buf, sizeof(buf), 0, &from, &flen);
		if (n < 0)
			out("fork_child_send", "%s", ename(errno));
		else
			out("fork_child_send", "%zd cid=%u port=%u", n, from.svm_cid, from.svm_port);
		/* The socket is shared with the child: the parent sees its bind. */
		out("fork_shared_socket_bound", "port=%u", local_port(u));
		res("fork_parent_send", send_to(u, "dad", 3, 0, HOST, 5501));
		flen = sizeof(from);
		n = rcv(rx, buf, sizeof(buf), 0, &from, &flen);
		out("fork_parent_sender", "%zd port=%u", n, from.svm_port);
		close(u);
		close(rx);
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_socket();
	t_bind();
	t_connect();
	t_send();
	t_recv();
	t_device();
	t_fds();
	printf("done: %d cases\n", ncases);
	return 0;
}
