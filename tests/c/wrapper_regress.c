/* SPDX-License-Identifier: MIT */
/*
 * vsock_wrapper regressions found in review, one line per case
 * ("name: ok" or "name: FAIL why"), exit status = failures. Runs under the
 * wrapper only (tests/test_wrapper_behaviour.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "testutil.h"

static int n_failed;

static void report(const char *name, int failed)
{
	if (failed) {
		n_failed++;
		printf("%s: FAIL %s\n", name, why);
	} else {
		printf("%s: ok\n", name);
	}
}

static int vsock(void)
{
	return socket(AF_VSOCK, SOCK_DGRAM, 0);
}

static int domain_of(int fd)
{
	int dom = -1;
	socklen_t len = sizeof(dom);

	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len);
	return dom;
}

/* Another thread's socket() must never lose its entry to a close_range() here. */
static volatile bool stop;

static void *close_range_loop(void *arg)
{
	(void)arg;
	while (!stop) {
		int s = vsock();

		close_range((unsigned int)s, (unsigned int)s, 0);
	}
	return NULL;
}

static int close_range_race(void)
{
	pthread_t t;
	int bad = 0;

	pthread_create(&t, NULL, close_range_loop, NULL);
	for (int i = 0; i < 20000 && !bad; i++) {
		int s = vsock();

		if (domain_of(s) != AF_VSOCK)
			bad = fail("iteration %d: fd %d from socket(AF_VSOCK) is family %d", i, s,
				   domain_of(s));
		close(s);
	}
	stop = true;
	pthread_join(t, NULL);
	return bad;
}

/* An fd closed behind the wrapper's back (fclose of an fdopen) and reused by a
 * plain AF_UNIX socket: a send on it must not bind it into the vsock world. */
static int stale_fd_not_bound(void)
{
	int v = vsock(), u, peer;
	struct sockaddr_un to = { .sun_family = AF_UNIX }, name;
	socklen_t len = sizeof(name);

	if (v < 0)
		return fail("socket: %s", strerror(errno));
	fclose(fdopen(v, "r"));
	u = socket(AF_UNIX, SOCK_DGRAM, 0);
	peer = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (u != v) {
		close(u);
		close(peer);
		return fail("the number was not reused (%d, %d)", v, u);
	}
	strcpy(to.sun_path + 1, "cando-regress-peer");
	bind(peer, (struct sockaddr *)&to, sizeof(to));
	if (sendto(u, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) != 1)
		return fail("sendto: %s", strerror(errno));
	getsockname(u, (struct sockaddr *)&name, &len);
	close(u);
	close(peer);
	return len > sizeof(sa_family_t) ? fail("the AF_UNIX socket got bound (%u bytes)", len) : 0;
}

static int so_peername(void)
{
	int s = vsock();
	struct sockaddr_vm to = { .svm_family = AF_VSOCK, .svm_cid = 2, .svm_port = 4000 };
	char buf[128];
	socklen_t len = sizeof(buf);
	int r1, e1, r2;

	connect(s, (struct sockaddr *)&to, sizeof(to));
	r1 = getsockopt(s, SOL_SOCKET, SO_PEERNAME, buf, &len);
	e1 = errno;
	len = 8;
	r2 = getsockopt(s, SOL_SOCKET, SO_PEERNAME, buf, &len);
	close(s);
	if (r1 != -1 || e1 != EINVAL)
		return fail("buffer of 128: %d (%s), want EINVAL", r1, strerror(e1));
	return r2 != 0 || len != 8 ? fail("buffer of 8: %d, len %u", r2, len) : 0;
}

/* A child of a raw fork (no atfork handlers: _Fork) keeps working dup()s. */
static int raw_fork_child(void)
{
	int s = vsock(), status = 0;
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);

	if (pid == 0) {
		int d = dup(s);

		_exit(domain_of(d) == AF_VSOCK ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	close(s);
	return !WIFEXITED(status) || WEXITSTATUS(status) ? fail("the child's dup is not a vsock socket") : 0;
}

static int sendmmsg_negative_namelen(void)
{
	int s = vsock();
	struct sockaddr_vm to = { .svm_family = AF_VSOCK, .svm_cid = 2, .svm_port = 4000 };
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct mmsghdr m = { .msg_hdr = { .msg_name = &to, .msg_namelen = (socklen_t)-1,
					  .msg_iov = &iov, .msg_iovlen = 1 } };
	int r = sendmmsg(s, &m, 1, 0), e = errno;

	close(s);
	return r != -1 || e != EINVAL ? fail("%d (%s), want EINVAL", r, strerror(e)) : 0;
}

static int readv_null_iov(void)
{
	/* Hidden from the compiler, which rightly refuses a literal NULL here. */
	struct iovec *volatile none = NULL;
	int s = vsock();
	ssize_t r = readv(s, none, 1);
	int e = errno;

	close(s);
	return r != -1 || e != EFAULT ? fail("%zd (%s), want EFAULT", r, strerror(e)) : 0;
}

/* recvmmsg writes back the time left of its timeout, as __sys_recvmmsg(). */
static int recvmmsg_time_left(void)
{
	int rx = vsock(), tx = vsock();
	struct sockaddr_vm me = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				  .svm_port = 4100 };
	char buf[16];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct mmsghdr m = { .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };
	struct timespec t = { .tv_sec = 5, .tv_nsec = 0 };
	int r;

	bind(rx, (struct sockaddr *)&me, sizeof(me));
	me.svm_cid = 2;
	sendto(tx, "x", 1, 0, (struct sockaddr *)&me, sizeof(me));
	r = recvmmsg(rx, &m, 1, MSG_WAITFORONE, &t);
	close(rx);
	close(tx);
	if (r != 1)
		return fail("recvmmsg gave %d (%s)", r, strerror(errno));
	return t.tv_sec == 5 || t.tv_sec < 0 ? fail("timeout after: {%ld, %ld}", (long)t.tv_sec,
						    t.tv_nsec) : 0;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	report("close_range_race", close_range_race());
	report("stale_fd_not_bound", stale_fd_not_bound());
	report("so_peername", so_peername());
	report("raw_fork_child", raw_fork_child());
	report("sendmmsg_negative_namelen", sendmmsg_negative_namelen());
	report("readv_null_iov", readv_null_iov());
	report("recvmmsg_time_left", recvmmsg_time_left());
	return n_failed;
}
