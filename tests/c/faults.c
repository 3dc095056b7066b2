/* SPDX-License-Identifier: MIT */
/*
 * faults: libcando when the world misbehaves.
 *
 *   peer_killed       a client process is SIGKILLed mid-stream; the server keeps
 *                     serving (what it got is intact, a new client gets through)
 *   receiver_closed   the server is destroyed; the client's next send fails with
 *                     -EHOSTUNREACH, recorded in its error record; nothing crashes
 *   eintr             a signal handler installed without SA_RESTART interrupts a
 *                     blocking server_recv_data: -EINTR, errno EINTR, not recorded
 *                     as an error
 *   emfile            RLIMIT_NOFILE leaves room for 2 more fds: create fails
 *                     cleanly with EMFILE (record says "socket: ..."), accept and
 *                     get_local_vcid too, no fd leaked; raising the limit heals it
 *
 * Argument: skip=CASE (valgrind virtualises RLIMIT_NOFILE: skip=emfile there).
 * Output: "case: ok" / "case: FAIL why", then "done: N cases, M failed".
 * Exit status: the number of failed cases.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <cando/log.h>
#include <cando/vsock-udp.h>

#include "testutil.h"

static struct udo_vsock_udp *server(void)
{
	struct udo_vsock_udp_server_create_info si = { VMADDR_CID_ANY, -1 };

	return udo_vsock_udp_server_create(NULL, &si);
}

static struct udo_vsock_udp *client_to(struct udo_vsock_udp *srv)
{
	struct udo_vsock_udp_client_create_info ci = { 2, udo_vsock_udp_get_port(srv) };

	return udo_vsock_udp_client_create(NULL, &ci);
}

/* ------------------------------------------------------------ peer killed */

static int case_peer_killed(void)
{
	struct udo_vsock_udp *srv = server();
	uint32_t msg[256];
	int ready[2], got = 0, bad = 0, status;
	pid_t pid;

	if (!srv || pipe(ready))
		return fail("setup: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		struct udo_vsock_udp *cli = client_to(srv);
		bool told = false;

		for (uint32_t seq = 0;; seq++) {
			for (size_t i = 0; i < 256; i++)
				msg[i] = seq * 2654435761u + (uint32_t) i;
			/* A refused send (VMCI's ENOMEM when its delivery queue is full)
			 * is skipped: the client floods until it is killed. */
			if (udo_vsock_udp_client_send_data(cli, msg, sizeof(msg), NULL) < 0)
				continue;
			if (!told && write(ready[1], "r", 1) != 1)
				_exit(4);
			told = true;
		}
	}
	close(ready[1]);
	if (read(ready[0], msg, 1) != 1)
		return fail("the client never got going");
	close(ready[0]);
	/* Receive some, then kill the sender mid-stream. */
	for (int i = 0; i < 40; i++) {
		ssize_t n = udo_vsock_udp_server_recv_data(srv, msg, sizeof(msg), NULL, NULL);

		got++;
		bad += n != (ssize_t) sizeof(msg) || msg[1] != msg[0] + 1;
	}
	kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status))
		return fail("the client was not killed");
	/* Drain what it left, then a new client must get through. */
	for (;;) {
		const int dw = MSG_DONTWAIT;
		ssize_t n = udo_vsock_udp_server_recv_data(srv, msg, sizeof(msg), NULL, &dw);

		if (n == -EAGAIN)
			break;
		got++;
		bad += n != (ssize_t) sizeof(msg) || msg[1] != msg[0] + 1;
	}
	struct udo_vsock_udp *cli = client_to(srv);
	ssize_t s = udo_vsock_udp_client_send_data(cli, "after", 5, NULL);
	ssize_t r = udo_vsock_udp_server_recv_data(srv, msg, sizeof(msg), NULL, NULL);

	udo_vsock_udp_destroy(cli);
	udo_vsock_udp_destroy(srv);
	if (bad)
		return fail("%d of %d datagrams damaged", bad, got);
	if (s != 5 || r != 5 || memcmp(msg, "after", 5))
		return fail("after the kill: send %zd, recv %zd", s, r);
	return 0;
}

/* --------------------------------------------------------- receiver closed */

static int case_receiver_closed(void)
{
	struct udo_vsock_udp *srv = server(), *cli;
	char b[8];
	ssize_t n;

	if (!srv || !(cli = client_to(srv)))
		return fail("setup: %s", strerror(errno));
	if (udo_vsock_udp_client_send_data(cli, "one", 3, NULL) != 3 ||
	    udo_vsock_udp_server_recv_data(srv, b, sizeof(b), NULL, NULL) != 3)
		return fail("first exchange failed");
	udo_vsock_udp_destroy(srv);
	errno = 0;
	n = udo_vsock_udp_client_send_data(cli, "two", 3, NULL);
	int e = errno;
	unsigned int code = udo_log_get_error_code(cli);
	const char *msg = udo_log_get_error(cli);
	int ok = n == -EHOSTUNREACH && e == EHOSTUNREACH && code == EHOSTUNREACH &&
	         strstr(msg, "sendto") != NULL;

	if (!ok) {
		fail("send = %zd errno %d, record %u '%s'", n, e, code, msg);
		udo_vsock_udp_destroy(cli);
		return 1;
	}
	/* Again: the failure is stable, nothing was left half-done. */
	n = udo_vsock_udp_client_send_data(cli, "three", 5, NULL);
	udo_vsock_udp_destroy(cli);
	return n == -EHOSTUNREACH ? 0 : fail("second send = %zd", n);
}

/* -------------------------------------------------------------------- EINTR */

static volatile sig_atomic_t g_signals;

static void on_alarm(int sig)
{
	(void) sig;
	g_signals++;
}

static int case_eintr(void)
{
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
	struct itimerval tv = { { 0, 20000 }, { 0, 20000 } }, off = { { 0, 0 }, { 0, 0 } };
	struct udo_vsock_udp *srv = server();
	char b[16];
	ssize_t n;
	int e;

	if (!srv)
		return fail("setup: %s", strerror(errno));
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	/* Nothing will arrive: the receive blocks until a timer signal interrupts it
	 * (a signal landing before the call only runs the handler; the next one
	 * interrupts). */
	setitimer(ITIMER_REAL, &tv, NULL);
	errno = 0;
	n = udo_vsock_udp_server_recv_data(srv, b, sizeof(b), NULL, NULL);
	e = errno;
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_DFL);
	unsigned int code = udo_log_get_error_code(srv);

	udo_vsock_udp_destroy(srv);
	if (n != -EINTR || e != EINTR)
		return fail("recv = %zd errno %d, want -EINTR", n, e);
	if (code != 0)
		return fail("EINTR was recorded as an error (code %u)", code);
	return g_signals >= 1 ? 0 : fail("no signal ran");
}

/* ------------------------------------------------------------------- EMFILE */

static int case_emfile(void)
{
	struct rlimit old, low;
	struct udo_vsock_udp *keep[8] = { 0 }, *srv, *more;
	struct sockaddr_vm peer = { .svm_family = AF_VSOCK, .svm_cid = 2, .svm_port = 7 };
	int before = count_fds(), made = 0, e, r = 0;
	union {
		_Alignas(max_align_t) char bytes[4096];
	} mem;
	struct udo_vsock_udp *caller = (struct udo_vsock_udp *) (void *) mem.bytes;
	struct udo_vsock_udp_server_create_info si = { VMADDR_CID_ANY, -1 };

	srv = server();
	if (!srv || getrlimit(RLIMIT_NOFILE, &old))
		return fail("setup: %s", strerror(errno));
	/* Room for exactly two more fds. */
	low = old;
	low.rlim_cur = (rlim_t) before + 1 + 2;
	if (setrlimit(RLIMIT_NOFILE, &low))
		return fail("setrlimit: %s", strerror(errno));
	while (made < 8 && (keep[made] = server()))
		made++;
	e = errno;
	if (made != 2 || e != EMFILE)
		r = fail("made %d servers before failing with errno %d, want 2 and EMFILE", made, e);
	errno = 0;
	if (!r && (udo_vsock_udp_server_create(caller, &si) || errno != EMFILE ||
	           udo_log_get_error_code(caller) != EMFILE ||
	           strncmp(udo_log_get_error(caller), "socket: ", 8) ||
	           udo_vsock_udp_get_fd(caller) != -1))
		r = fail("caller-memory create at the limit: errno %d, record %u '%s'", errno,
		         udo_log_get_error_code(caller), udo_log_get_error(caller));
	errno = 0;
	if (!r && (udo_vsock_udp_server_accept(srv, &peer) != -1 || errno != EMFILE))
		r = fail("accept at the limit: errno %d", errno);
	errno = 0;
	if (!r && (udo_vsock_udp_get_local_vcid() != UINT32_MAX || errno != EMFILE))
		r = fail("get_local_vcid at the limit: errno %d", errno);
	for (int i = 0; i < made; i++)
		udo_vsock_udp_destroy(keep[i]);
	setrlimit(RLIMIT_NOFILE, &old);
	more = server();
	if (!r && !more)
		r = fail("create after raising the limit: %s", strerror(errno));
	udo_vsock_udp_destroy(more);
	udo_vsock_udp_destroy(srv);
	if (!r && count_fds() != before)
		r = fail("%d fds before, %d after", before, count_fds());
	return r;
}

static const struct {
	const char *name;
	int (*run)(void);
} cases[] = {
	{ "peer_killed", case_peer_killed },
	{ "receiver_closed", case_receiver_closed },
	{ "eintr", case_eintr },
	{ "emfile", case_emfile },
};

int main(int argc, char **argv)
{
	const char *skip = argc > 1 && !strncmp(argv[1], "skip=", 5) ? argv[1] + 5 : "";
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		if (!strcmp(skip, cases[i].name)) {
			printf("%s: skipped\n", cases[i].name);
			continue;
		}
		if (cases[i].run()) {
			failed++;
			printf("%s: FAIL %s\n", cases[i].name, why);
		} else {
			printf("%s: ok\n", cases[i].name);
		}
	}
	printf("done: %zu cases, %d failed\n", sizeof(cases) / sizeof(cases[0]), failed);
	return failed;
}
