/* SPDX-License-Identifier: MIT */
/*
 * threads: libcando and vsock_wrapper under concurrency.
 *
 *   shared_instances  8 threads send through ONE client instance while 8 threads
 *                     receive on ONE server instance: every datagram arrives once,
 *                     intact (needs a lossless transport: VSOCK_WRAPPER_FULL=block)
 *   fdtab_churn       threads socket/bind/dup/close vsock sockets while others
 *                     open and close plain fds: a vsock fd always answers as one,
 *                     a plain fd never does, nothing leaks
 *   fork_under_lock   fork() over and over while threads hammer the wrapper (whose
 *                     table lock they take): each child makes and binds a vsock
 *                     socket and exits; a child stuck on a lock is killed by its
 *                     alarm(10) and counted
 *
 * Arguments: per-thread=N (datagrams per sender, default 2000), churn=N (default
 * 2000), forks=N (default 200), only=CASE[,CASE...].
 * Output: "case: ok" / "case: FAIL why", "figures: ..." lines, "done: ...".
 * Exit status: the number of failed cases.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <cando/vsock-udp.h>

#include "testutil.h"

#define SENDERS 8
#define RECEIVERS 8
#define DGRAM 64

static int per_thread = 2000, churn = 2000, forks = 200;

static uint64_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

/* ------------------------------------------------------- shared instances */

struct dgram {
	uint32_t sender, seq, stop, pad;
	unsigned char body[DGRAM - 24];
	uint64_t sum;
};

static struct udo_vsock_udp *g_server, *g_client;
static atomic_uchar *g_seen;
static atomic_int g_received, g_corrupt, g_dup, g_errors;

static void *sender(void *arg)
{
	uint32_t id = (uint32_t) (uintptr_t) arg;
	struct dgram d;

	for (int i = 0; i < per_thread; i++) {
		memset(&d, 0, sizeof(d));
		d.sender = id;
		d.seq = (uint32_t) i;
		for (size_t j = 0; j < sizeof(d.body); j++)
			d.body[j] = (unsigned char) (id * 31 + (uint32_t) i + j);
		d.sum = fnv((const unsigned char *) &d, offsetof(struct dgram, sum));
		ssize_t n = udo_vsock_udp_client_send_data(g_client, &d, sizeof(d), NULL);

		if (n != (ssize_t) sizeof(d)) {
			atomic_fetch_add(&g_errors, 1);
			fprintf(stderr, "threads: send %zd\n", n);
		}
	}
	return NULL;
}

static void *receiver(void *arg)
{
	struct dgram d;
	struct sockaddr_vm from;

	(void) arg;
	for (;;) {
		ssize_t n = udo_vsock_udp_server_recv_data(g_server, &d, sizeof(d), &from, NULL);

		if (n == -EINTR)
			continue;
		if (n != (ssize_t) sizeof(d)) {
			atomic_fetch_add(&g_errors, 1);
			fprintf(stderr, "threads: recv %zd\n", n);
			return NULL;
		}
		if (d.sum != fnv((const unsigned char *) &d, offsetof(struct dgram, sum)) ||
		    d.sender >= SENDERS || d.seq >= (uint32_t) per_thread) {
			atomic_fetch_add(&g_corrupt, 1);
			continue;
		}
		if (d.stop)
			return NULL;
		if (atomic_fetch_add(&g_seen[d.sender * (uint32_t) per_thread + d.seq], 1))
			atomic_fetch_add(&g_dup, 1);
		atomic_fetch_add(&g_received, 1);
	}
}

static int case_shared_instances(void)
{
	struct udo_vsock_udp_server_create_info si = { VMADDR_CID_ANY, -1 };
	struct udo_vsock_udp_client_create_info ci;
	pthread_t s[SENDERS], r[RECEIVERS];
	struct timespec t0, t1;
	int total = SENDERS * per_thread, missing = 0;

	g_seen = calloc((size_t) total, sizeof(*g_seen));
	g_server = udo_vsock_udp_server_create(NULL, &si);
	if (!g_server || !g_seen)
		return fail("server_create: %s", strerror(errno));
	ci = (struct udo_vsock_udp_client_create_info){ 2, udo_vsock_udp_get_port(g_server) };
	g_client = udo_vsock_udp_client_create(NULL, &ci);
	if (!g_client)
		return fail("client_create: %s", strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uintptr_t i = 0; i < RECEIVERS; i++)
		pthread_create(&r[i], NULL, receiver, NULL);
	for (uintptr_t i = 0; i < SENDERS; i++)
		pthread_create(&s[i], NULL, sender, (void *) i);
	for (int i = 0; i < SENDERS; i++)
		pthread_join(s[i], NULL);
	/* One stop datagram per receiver, queued after all the data (one FIFO). */
	for (int i = 0; i < RECEIVERS; i++) {
		struct dgram d = { .stop = 1 };

		d.sum = fnv((const unsigned char *) &d, offsetof(struct dgram, sum));
		udo_vsock_udp_client_send_data(g_client, &d, sizeof(d), NULL);
	}
	for (int i = 0; i < RECEIVERS; i++)
		pthread_join(r[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int i = 0; i < total; i++)
		missing += !atomic_load(&g_seen[i]);
	printf("figures: shared_instances senders=%d receivers=%d datagrams=%d received=%d "
	       "missing=%d duplicated=%d corrupted=%d errors=%d seconds=%.3f\n",
	       SENDERS, RECEIVERS, total, atomic_load(&g_received), missing, atomic_load(&g_dup),
	       atomic_load(&g_corrupt), atomic_load(&g_errors),
	       (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
	udo_vsock_udp_destroy(g_client);
	udo_vsock_udp_destroy(g_server);
	free(g_seen);
	if (missing || atomic_load(&g_dup) || atomic_load(&g_corrupt) || atomic_load(&g_errors))
		return fail("missing %d, duplicated %d, corrupted %d, errors %d", missing,
		            atomic_load(&g_dup), atomic_load(&g_corrupt), atomic_load(&g_errors));
	return 0;
}

/* ------------------------------------------------------------ fd table churn */

static atomic_int g_bad;
static atomic_bool g_stop;

static int family_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
		return -errno;
	return ss.ss_family;
}

static void bad(const char *what, int got)
{
	atomic_fetch_add(&g_bad, 1);
	fprintf(stderr, "threads: %s: %d\n", what, got);
}

static void *vsock_churn(void *arg)
{
	(void) arg;
	for (int i = 0; i < churn; i++) {
		int s = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
		                         .svm_port = VMADDR_PORT_ANY };
		struct sockaddr_vm b;
		socklen_t len = sizeof(b);
		int d, f;

		if (s < 0) {
			bad("socket", -errno);
			continue;
		}
		if (bind(s, (struct sockaddr *) &a, sizeof(a)) < 0)
			bad("bind", -errno);
		d = (i & 1) ? dup(s) : fcntl(s, F_DUPFD_CLOEXEC, 0);
		if (d < 0)
			bad("dup", -errno);
		close(s);
		if (d >= 0) {
			if ((f = family_of(d)) != AF_VSOCK)
				bad("dup'ed vsock fd family", f);
			if (getsockname(d, (struct sockaddr *) &b, &len) < 0 ||
			    b.svm_port == VMADDR_PORT_ANY)
				bad("dup'ed vsock fd lost its bound port", (int) b.svm_port);
			/* Send to itself through the duplicate: its state survived. */
			if (sendto(d, "x", 1, 0, (struct sockaddr *) &b, sizeof(b)) != 1)
				bad("sendto self", -errno);
			close(d);
		}
	}
	return NULL;
}

static void *plain_churn(void *arg)
{
	(void) arg;
	while (!atomic_load(&g_stop)) {
		int sv[2], f;

		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) {
			bad("socketpair", -errno);
			continue;
		}
		/* Reused fd numbers of closed vsock sockets must not look like vsock. */
		if ((f = family_of(sv[0])) != AF_UNIX)
			bad("plain fd family", f);
		close(sv[0]);
		close(sv[1]);
	}
	return NULL;
}

static int case_fdtab_churn(void)
{
	pthread_t v[4], p[2];
	int before = count_fds(), after;

	for (int i = 0; i < 4; i++)
		pthread_create(&v[i], NULL, vsock_churn, NULL);
	for (int i = 0; i < 2; i++)
		pthread_create(&p[i], NULL, plain_churn, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(v[i], NULL);
	atomic_store(&g_stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(p[i], NULL);
	after = count_fds();
	printf("figures: fdtab_churn threads=6 vsock_sockets=%d bad=%d fds_before=%d "
	       "fds_after=%d\n", 4 * churn, atomic_load(&g_bad), before, after);
	if (atomic_load(&g_bad))
		return fail("%d inconsistent answers (see stderr)", atomic_load(&g_bad));
	if (before != after)
		return fail("fds %d before, %d after", before, after);
	return 0;
}

/* ---------------------------------------------------------- fork under lock */

static atomic_bool g_hammer;

static void *hammer(void *arg)
{
	(void) arg;
	while (atomic_load(&g_hammer)) {
		int s = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
		                         .svm_port = VMADDR_PORT_ANY };

		if (s >= 0) {
			bind(s, (struct sockaddr *) &a, sizeof(a));
			int d = dup(s);

			close(s);
			if (d >= 0)
				close(d);
		}
	}
	return NULL;
}

static int case_fork_under_lock(void)
{
	pthread_t h[4];
	int hung = 0, failed = 0;

	atomic_store(&g_hammer, true);
	for (int i = 0; i < 4; i++)
		pthread_create(&h[i], NULL, hammer, NULL);
	for (int i = 0; i < forks; i++) {
		pid_t pid = fork();
		int status;

		if (pid < 0)
			return fail("fork: %s", strerror(errno));
		if (pid == 0) {
			struct udo_vsock_udp_server_create_info si = { VMADDR_CID_ANY, -1 };
			struct udo_vsock_udp *srv;

			alarm(10); /* a deadlocked child dies of SIGALRM */
			srv = udo_vsock_udp_server_create(NULL, &si);
			if (!srv)
				_exit(2);
			udo_vsock_udp_destroy(srv);
			_exit(0);
		}
		if (waitpid(pid, &status, 0) != pid)
			return fail("waitpid: %s", strerror(errno));
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
			hung++;
		else if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	atomic_store(&g_hammer, false);
	for (int i = 0; i < 4; i++)
		pthread_join(h[i], NULL);
	printf("figures: fork_under_lock forks=%d hung=%d failed=%d\n", forks, hung, failed);
	if (hung || failed)
		return fail("%d children deadlocked, %d failed", hung, failed);
	return 0;
}

static const struct {
	const char *name;
	int (*run)(void);
} cases[] = {
	{ "shared_instances", case_shared_instances },
	{ "fdtab_churn", case_fdtab_churn },
	{ "fork_under_lock", case_fork_under_lock },
};

/* Is @name in the comma-separated @list? */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int failed = 0, ran = 0;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "per-thread=", 11))
			per_thread = atoi(argv[i] + 11);
		else if (!strncmp(argv[i], "churn=", 6))
			churn = atoi(argv[i] + 6);
		else if (!strncmp(argv[i], "forks=", 6))
			forks = atoi(argv[i] + 6);
		else if (!strncmp(argv[i], "only=", 5))
			only = argv[i] + 5;
		else {
			fprintf(stderr, "threads: unknown argument '%s'\n", argv[i]);
			return 255;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (only && !listed(only, cases[i].name))
			continue;
		why[0] = '\0';
		ran++;
		if (cases[i].run()) {
			failed++;
			printf("%s: FAIL %s\n", cases[i].name, why);
		} else {
			printf("%s: ok\n", cases[i].name);
		}
	}
	printf("done: %d cases, %d failed\n", ran, failed);
	return failed;
}
