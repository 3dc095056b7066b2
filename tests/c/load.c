/* SPDX-License-Identifier: MIT */
/*
 * load: N client processes x M datagrams each into one server driven by epoll
 * over udo_vsock_udp_server_recv_data().
 *
 * Each datagram: a 24-byte header { client, seq, payload length, pad, checksum }
 * and a payload of random length (0 .. 69608 - 24, so whole datagrams span 24 ..
 * 69608 bytes, the largest vsock datagram) filled from a PRNG seeded by
 * (client, seq); the checksum (64-bit FNV-1a over 8-byte words) covers the
 * header and payload.  The server checks length, checksum, and that each
 * client's sequence numbers only increase (a datagram is delivered whole or not
 * at all, once).
 *
 * Each client reports how many datagrams it sent through a pipe, whose EOF
 * (in the same epoll set) tells the server the client is gone; its datagrams
 * are queued before its send returned, so the server then drains the socket.
 *
 * Arguments: clients=N (16), count=M (20000), seed=S, and
 *   expect-all   every datagram must arrive (VSOCK_WRAPPER_FULL=block)
 *   count-loss   loss is counted and reported, not a failure (drop, the kernel)
 * Output: "figures: ..." and "load: ok" or "load: FAIL why".
 * Exit status: 0 ok, 1 corrupted/duplicated/lost (expect-all), 2 setup.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <cando/vsock-udp.h>

#define MAX_DGRAM 69608
#define MAX_CLIENTS 256

struct header {
	uint32_t client, seq, len, pad;
	uint64_t sum;
};

static uint64_t words[(MAX_DGRAM + 7) / 8 + 1];

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* FNV-1a over 64-bit words (the tail zero-padded): fast and order-sensitive. */
static uint64_t checksum(const struct header *h, const unsigned char *payload, size_t len)
{
	uint64_t sum = 0xcbf29ce484222325ull, w;
	size_t i;

	sum = (sum ^ ((uint64_t) h->client << 32 | h->seq)) * 0x100000001b3ull;
	sum = (sum ^ h->len) * 0x100000001b3ull;
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, payload + i, 8);
		sum = (sum ^ w) * 0x100000001b3ull;
	}
	if (i < len) {
		w = 0;
		memcpy(&w, payload + i, len - i);
		sum = (sum ^ w) * 0x100000001b3ull;
	}
	return sum;
}

static int client(int id, int port, int count, uint64_t seed, int report_fd)
{
	struct udo_vsock_udp_client_create_info ci = { 2, port };
	struct udo_vsock_udp *cli;
	unsigned char *dgram = malloc(MAX_DGRAM);
	uint64_t rng = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t) (id + 1));
	long sent = 0, failed = 0;

	/* The kernel lane has no local CID to name: send to the host, CID 2. */
	cli = udo_vsock_udp_client_create(NULL, &ci);
	if (!cli || !dgram)
		return 2;
	for (int seq = 0; seq < count; seq++) {
		struct header h = { (uint32_t) id, (uint32_t) seq, 0, 0, 0 };
		uint64_t s = rng ^ (uint64_t) seq * 0xda942042e4dd58b5ull;

		h.len = (uint32_t) (xorshift(&rng) % (MAX_DGRAM - sizeof(h) + 1));
		for (size_t i = 0; i < (h.len + 7) / 8; i++)
			words[i] = xorshift(&s) | 1;
		memcpy(dgram + sizeof(h), words, h.len);
		h.sum = checksum(&h, dgram + sizeof(h), h.len);
		memcpy(dgram, &h, sizeof(h));
		ssize_t n = udo_vsock_udp_client_send_data(cli, dgram, sizeof(h) + h.len, NULL);

		if (n == (ssize_t) (sizeof(h) + h.len)) {
			sent++;
		} else if (!failed++) {
			fprintf(stderr, "load: client %d: send of %zu bytes: %zd (%s)\n", id,
			        sizeof(h) + h.len, n, n < 0 ? strerror((int) -n) : "short");
		}
	}
	udo_vsock_udp_destroy(cli);
	free(dgram);
	if (write(report_fd, &sent, sizeof(sent)) != sizeof(sent))
		return 2;
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct udo_vsock_udp_server_create_info si = { VMADDR_CID_ANY, -1 };
	int clients = 16, count = 20000, ep, open_pipes, port, failed_clients = 0;
	bool expect_all = false;
	uint64_t seed = 0x5eed;
	int pipes[MAX_CLIENTS], next_seq[MAX_CLIENTS];
	long sent[MAX_CLIENTS] = { 0 }, received[MAX_CLIENTS] = { 0 };
	long corrupted = 0, duplicated = 0, total_sent = 0, total_received = 0;
	unsigned long long bytes = 0;
	const int dontwait = MSG_DONTWAIT;
	struct udo_vsock_udp *srv;
	unsigned char *buf = malloc(MAX_DGRAM + 1);
	struct timespec t0, t1;
	pid_t pids[MAX_CLIENTS];
	double secs;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "clients=", 8))
			clients = atoi(argv[i] + 8);
		else if (!strncmp(argv[i], "count=", 6))
			count = atoi(argv[i] + 6);
		else if (!strncmp(argv[i], "seed=", 5))
			seed = strtoull(argv[i] + 5, NULL, 0);
		else if (!strcmp(argv[i], "expect-all"))
			expect_all = true;
		else if (!strcmp(argv[i], "count-loss"))
			expect_all = false;
		else {
			fprintf(stderr, "load: unknown argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (clients < 1 || clients > MAX_CLIENTS || count < 1 || !buf)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	srv = udo_vsock_udp_server_create(NULL, &si);
	if (!srv) {
		printf("load: FAIL server_create: %s\n", strerror(errno));
		return 2;
	}
	port = udo_vsock_udp_get_port(srv);
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };

	epoll_ctl(ep, EPOLL_CTL_ADD, udo_vsock_udp_get_fd(srv), &ev);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int c = 0; c < clients; c++) {
		int p[2];

		if (pipe2(p, O_CLOEXEC))
			return 2;
		pids[c] = fork();
		if (pids[c] < 0)
			return 2;
		if (pids[c] == 0) {
			/* Drop what the server process holds: the child owns only its pipe. */
			close(p[0]);
			for (int k = 0; k < c; k++)
				close(pipes[k]);
			close(ep);
			udo_vsock_udp_destroy(srv);
			free(buf);
			_exit(client(c, port, count, seed, p[1]));
		}
		close(p[1]);
		pipes[c] = p[0];
		next_seq[c] = 0;
		ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = (uint32_t) c };
		epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	}
	open_pipes = clients;

	for (;;) {
		struct epoll_event evs[32];
		int n = epoll_wait(ep, evs, 32, open_pipes ? 60000 : 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("load: epoll_wait");
			return 2;
		}
		if (n == 0 && open_pipes) {
			printf("load: FAIL no progress in 60 s\n");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			uint32_t who = evs[i].data.u32;

			if (who != UINT32_MAX) {
				long s = 0;

				if (read(pipes[who], &s, sizeof(s)) == sizeof(s)) {
					sent[who] = s;
					continue; /* EOF comes next */
				}
				epoll_ctl(ep, EPOLL_CTL_DEL, pipes[who], NULL);
				close(pipes[who]);
				open_pipes--;
				continue;
			}
			for (;;) {
				struct header h;
				ssize_t r = udo_vsock_udp_server_recv_data(srv, buf, MAX_DGRAM + 1, NULL,
				                                           &dontwait);

				if (r == -EAGAIN || r == -EINTR)
					break;
				if (r < 0) {
					printf("load: FAIL server_recv_data: %s\n", strerror((int) -r));
					return 2;
				}
				bytes += (unsigned long long) r;
				total_received++;
				memcpy(&h, buf, r >= (ssize_t) sizeof(h) ? sizeof(h) : 0);
				if (r < (ssize_t) sizeof(h) || h.client >= (uint32_t) clients ||
				    (size_t) r != sizeof(h) + h.len ||
				    h.sum != checksum(&h, buf + sizeof(h), h.len)) {
					corrupted++;
					continue;
				}
				if ((int) h.seq < next_seq[h.client]) {
					duplicated++;
					continue;
				}
				next_seq[h.client] = (int) h.seq + 1;
				received[h.client]++;
			}
		}
		if (!open_pipes && n == 0)
			break; /* every client gone and the socket drained */
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int c = 0; c < clients; c++) {
		int status;

		waitpid(pids[c], &status, 0);
		failed_clients += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		total_sent += sent[c];
	}
	secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
	long intact = total_received - corrupted - duplicated;

	printf("figures: load clients=%d per_client=%d sent=%ld received=%ld intact=%ld "
	       "lost=%ld corrupted=%ld duplicated=%ld failed_clients=%d bytes=%llu "
	       "seconds=%.2f datagrams_per_s=%.0f mib_per_s=%.1f\n",
	       clients, count, total_sent, total_received, intact, total_sent - intact, corrupted,
	       duplicated, failed_clients, bytes, secs, (double) total_received / secs,
	       (double) bytes / secs / 1048576.0);
	close(ep);
	udo_vsock_udp_destroy(srv);
	free(buf);
	if (corrupted || duplicated) {
		printf("load: FAIL %ld corrupted, %ld duplicated\n", corrupted, duplicated);
		return 1;
	}
	if (expect_all && (failed_clients || total_sent != (long) clients * count ||
	                   intact != total_sent)) {
		printf("load: FAIL %ld of %ld sent, %ld intact, %d clients failed\n", total_sent,
		       (long) clients * count, intact, failed_clients);
		return 1;
	}
	printf("load: ok\n");
	return 0;
}
