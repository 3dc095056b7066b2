/*
 * A C consumer of the installed libcando: one datagram each way between a
 * server (library memory) and a client (caller memory), run under
 * vsock_wrapper. Prints what it saw, one "key value..." line each, for
 * tests/test_c_consumers.py to check. Exit status 0 only if every call did.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cando/log.h>
#include <cando/vsock-udp.h>

static int wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 10000) == 1 ? 0 : -1;
}

int main(void)
{
	struct udo_vsock_udp_server_create_info sinfo = { .vcid = VMADDR_CID_ANY, .port = -1 };
	struct udo_vsock_udp_client_create_info cinfo = { .vcid = VMADDR_CID_HOST, .port = 0 };
	struct udo_vsock_udp_server_create_info bad = { .vcid = 7, .port = -1 };
	struct udo_log_error_struct own = { 0, "" };
	struct udo_vsock_udp *srv, *cli;
	struct sockaddr_vm from, self;
	socklen_t self_len = sizeof(self);
	char buf[64];
	void *mem;
	ssize_t n;

	printf("sizeof %d\n", udo_vsock_udp_get_sizeof());
	printf("local_cid %u\n", udo_vsock_udp_get_local_vcid());

	srv = udo_vsock_udp_server_create(NULL, &sinfo);
	if (!srv) {
		fprintf(stderr, "server_create: %s\n", strerror(errno));
		return 1;
	}
	printf("server_port %d\n", udo_vsock_udp_get_port(srv));

	mem = calloc(1, (size_t) udo_vsock_udp_get_sizeof());
	if (!mem)
		return 1;
	cinfo.port = udo_vsock_udp_get_port(srv);
	cli = udo_vsock_udp_client_create(mem, &cinfo);
	if (cli != mem) {
		fprintf(stderr, "client_create: %s\n", udo_log_get_error(mem));
		return 1;
	}

	n = udo_vsock_udp_client_send_data(cli, "hello from C", 12, NULL);
	printf("client_sent %zd\n", n);
	if (getsockname(udo_vsock_udp_get_fd(cli), (struct sockaddr *) &self, &self_len) < 0)
		return 1;
	printf("client_port %u\n", self.svm_port);

	if (wait_readable(udo_vsock_udp_get_fd(srv)) < 0)
		return 1;
	memset(&from, 0, sizeof(from));
	n = udo_vsock_udp_server_recv_data(srv, buf, sizeof(buf), &from, NULL);
	if (n < 0)
		return 1;
	printf("server_got %zd %.*s|%u %u\n", n, (int) n, buf, from.svm_cid, from.svm_port);

	n = udo_vsock_udp_send_data(udo_vsock_udp_get_fd(srv), "hi back", 7, &from, NULL);
	printf("server_sent %zd\n", n);
	if (wait_readable(udo_vsock_udp_get_fd(cli)) < 0)
		return 1;
	memset(&from, 0, sizeof(from));
	n = udo_vsock_udp_recv_data(udo_vsock_udp_get_fd(cli), buf, sizeof(buf), &from, NULL);
	if (n < 0)
		return 1;
	printf("client_got %zd %.*s|%u %u\n", n, (int) n, buf, from.svm_cid, from.svm_port);

	udo_vsock_udp_destroy(cli);
	udo_vsock_udp_destroy(cli); /* caller memory: harmless */
	printf("client_fd_after_destroy %d\n", udo_vsock_udp_get_fd(cli));
	free(mem);
	udo_vsock_udp_destroy(srv);

	mem = calloc(1, (size_t) udo_vsock_udp_get_sizeof());
	if (!mem)
		return 1;
	if (udo_vsock_udp_server_create(mem, &bad))
		return 1;
	printf("bad_cid %u %s\n", udo_log_get_error_code(mem), udo_log_get_error(mem));
	free(mem);

	udo_log_set_error(&own, UDO_LOG_ERR_INCORRECT_DATA, "%s %d", "own error", 42);
	printf("own_error %u %s\n", udo_log_get_error_code(&own), udo_log_get_error(&own));
	udo_log_set_level(UDO_LOG_INFO);
	udo_log_remove_colors();
	fflush(stdout);
	udo_log_print("%s", "printed by udo_log_print");
	return 0;
}
