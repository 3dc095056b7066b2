/* SPDX-License-Identifier: MIT */
/*
 * soak: create/destroy cycles (half of them failing) and a stream of datagrams;
 * the fd count and RSS must stay flat.
 *
 *   cycles=N     (default 100000) each cycle is one of, in turn:
 *                  0  server_create(NULL) + client_create + one datagram + destroy
 *                  1  server_create(NULL) on a taken port: EADDRINUSE (socket made,
 *                     closed on the failure path)
 *                  2  caller-memory server + client + one datagram + destroy
 *                  3  caller-memory server_create with a CID that is not local:
 *                     EADDRNOTAVAIL; plus server_accept: EADDRINUSE
 *   datagrams=M  (default 1000000) sent client -> server in bursts of 8, each
 *                received and checked
 *
 * Flatness: fds equal and RSS within rss-slack-kb (default 512) between the
 * first checkpoint (after 10% of the work: allocator warm-up) and the end.
 * Output: "figures: ..." lines, "soak: ok" or "soak: FAIL why".  Exit 0/1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <cando/vsock-udp.h>

#include "../c/testutil.h"

static long rss_kb(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

static long errors;

static void exchange(struct udo_vsock_udp *srv, struct udo_vsock_udp *cli, unsigned int tag)
{
	unsigned int in = 0;

	if (udo_vsock_udp_client_send_data(cli, &tag, sizeof(tag), NULL) != sizeof(tag) ||
	    udo_vsock_udp_server_recv_data(srv, &in, sizeof(in), NULL, NULL) != sizeof(in) ||
	    in != tag)
		errors++;
}

int main(int argc, char **argv)
{
	long cycles = 100000, datagrams = 1000000, slack = 512, failed_creates = 0;
	struct udo_vsock_udp_server_create_info any = { VMADDR_CID_ANY, -1 }, taken,
		not_local = { 3, -1 };
	struct udo_vsock_udp_client_create_info ci = { 2, 0 };
	struct sockaddr_vm peer = { .svm_family = AF_VSOCK, .svm_cid = 2, .svm_port = 9 };
	_Alignas(max_align_t) char mem_s[4096], mem_c[4096];
	struct udo_vsock_udp *ms = (void *) mem_s, *mc = (void *) mem_c, *holder, *s, *c;
	int fd0 = 0, fd1;
	long rss0 = 0, rss1;
	double t0;
	int bad = 0;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "cycles=", 7))
			cycles = atol(argv[i] + 7);
		else if (!strncmp(argv[i], "datagrams=", 10))
			datagrams = atol(argv[i] + 10);
		else if (!strncmp(argv[i], "rss-slack-kb=", 13))
			slack = atol(argv[i] + 13);
		else {
			fprintf(stderr, "soak: unknown argument '%s'\n", argv[i]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	holder = udo_vsock_udp_server_create(NULL, &any);
	if (!holder) {
		printf("soak: FAIL server_create: %s\n", strerror(errno));
		return 1;
	}
	taken = (struct udo_vsock_udp_server_create_info){ VMADDR_CID_ANY,
	                                                   udo_vsock_udp_get_port(holder) };

	t0 = now();
	for (long i = 0; i < cycles; i++) {
		if (i == cycles / 10) {
			fd0 = count_fds();
			rss0 = rss_kb();
		}
		switch (i & 3) {
		case 0:
			s = udo_vsock_udp_server_create(NULL, &any);
			ci.port = udo_vsock_udp_get_port(s);
			c = udo_vsock_udp_client_create(NULL, &ci);
			if (!s || !c)
				errors++;
			else
				exchange(s, c, (unsigned int) i);
			udo_vsock_udp_destroy(c);
			udo_vsock_udp_destroy(s);
			break;
		case 1:
			if (udo_vsock_udp_server_create(NULL, &taken) || errno != EADDRINUSE)
				errors++;
			failed_creates++;
			break;
		case 2:
			s = udo_vsock_udp_server_create(ms, &any);
			ci.port = udo_vsock_udp_get_port(ms);
			c = udo_vsock_udp_client_create(mc, &ci);
			if (!s || !c)
				errors++;
			else
				exchange(s, c, (unsigned int) i);
			udo_vsock_udp_destroy(mc);
			udo_vsock_udp_destroy(ms);
			break;
		default:
			if (udo_vsock_udp_server_create(ms, &not_local) || errno != EADDRNOTAVAIL)
				errors++;
			if (udo_vsock_udp_server_accept(holder, &peer) != -1 || errno != EADDRINUSE)
				errors++;
			failed_creates++;
			udo_vsock_udp_destroy(ms);
			break;
		}
	}
	fd1 = count_fds();
	rss1 = rss_kb();
	printf("figures: cycles=%ld failing=%ld errors=%ld fds_at_10pct=%d fds_end=%d "
	       "rss_kb_at_10pct=%ld rss_kb_end=%ld seconds=%.2f cycles_per_s=%.0f\n",
	       cycles, failed_creates, errors, fd0, fd1, rss0, rss1, now() - t0,
	       (double) cycles / (now() - t0));
	if (cycles >= 10 && (fd1 != fd0 || rss1 - rss0 > slack))
		bad = printf("soak: FAIL cycles: fds %d -> %d, RSS %ld -> %ld kB\n", fd0, fd1, rss0,
		             rss1);

	ci.port = udo_vsock_udp_get_port(holder);
	c = udo_vsock_udp_client_create(NULL, &ci);
	t0 = now();
	for (long i = 0; i < datagrams; i += 8) {
		if (i / 8 == datagrams / 80) {
			fd0 = count_fds();
			rss0 = rss_kb();
		}
		for (long j = i; j < i + 8 && j < datagrams; j++) {
			unsigned int tag = (unsigned int) j;

			if (udo_vsock_udp_client_send_data(c, &tag, sizeof(tag), NULL) != sizeof(tag))
				errors++;
		}
		for (long j = i; j < i + 8 && j < datagrams; j++) {
			unsigned int in = 0;

			if (udo_vsock_udp_server_recv_data(holder, &in, sizeof(in), NULL, NULL) !=
			    sizeof(in) || in != (unsigned int) j)
				errors++;
		}
	}
	fd1 = count_fds();
	rss1 = rss_kb();
	printf("figures: datagrams=%ld errors=%ld fds_at_10pct=%d fds_end=%d rss_kb_at_10pct=%ld "
	       "rss_kb_end=%ld seconds=%.2f datagrams_per_s=%.0f\n",
	       datagrams, errors, fd0, fd1, rss0, rss1, now() - t0,
	       (double) datagrams / (now() - t0));
	if (datagrams >= 80 && (fd1 != fd0 || rss1 - rss0 > slack))
		bad = printf("soak: FAIL datagrams: fds %d -> %d, RSS %ld -> %ld kB\n", fd0, fd1,
		             rss0, rss1);
	udo_vsock_udp_destroy(c);
	udo_vsock_udp_destroy(holder);
	if (errors)
		bad = printf("soak: FAIL %ld calls gave an unexpected result\n", errors);
	if (!bad)
		printf("soak: ok\n");
	return bad ? 1 : 0;
}
