// A C++ consumer of the installed libcando: the same exchange as consumer.c,
// written as C++ (the headers give C linkage through UDO_API).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

#include <cando/vsock-udp.h>

namespace {

bool wait_readable(int fd)
{
	pollfd pfd{};
	pfd.fd = fd;
	pfd.events = POLLIN;
	return poll(&pfd, 1, 10000) == 1;
}

struct Instance {
	std::vector<unsigned char> mem;
	udo_vsock_udp *ptr = nullptr;

	Instance() : mem(static_cast<std::size_t>(udo_vsock_udp_get_sizeof())) {}
	~Instance() { udo_vsock_udp_destroy(ptr); }
	udo_vsock_udp *raw() { return reinterpret_cast<udo_vsock_udp *>(mem.data()); }
};

} // namespace

int main()
{
	// Log flags combine in C++ as in C (<cando/log.h> gives them operator|).
	udo_log_set_level(UDO_LOG_ERROR | UDO_LOG_WARNING);
	udo_log_set_level(UDO_LOG_NONE);

	Instance srv, cli;
	udo_vsock_udp_server_create_info sinfo{};
	sinfo.vcid = VMADDR_CID_ANY;
	sinfo.port = -1;
	srv.ptr = udo_vsock_udp_server_create(srv.raw(), &sinfo);
	if (!srv.ptr) {
		std::fprintf(stderr, "server_create: %s\n", udo_log_get_error(srv.raw()));
		return 1;
	}
	const int port = udo_vsock_udp_get_port(srv.ptr);
	std::printf("server_port %d\n", port);

	udo_vsock_udp_client_create_info cinfo{};
	cinfo.vcid = VMADDR_CID_HOST;
	cinfo.port = port;
	cli.ptr = udo_vsock_udp_client_create(nullptr, &cinfo);
	if (!cli.ptr)
		return 1;
	if (udo_vsock_udp_client_connect(cli.ptr) != 0)
		return 1;

	const std::string msg = "hello from C++";
	ssize_t n = udo_vsock_udp_send_data(udo_vsock_udp_get_fd(cli.ptr), msg.data(), msg.size(),
	                                    nullptr, nullptr);
	std::printf("client_sent %zd\n", n);
	sockaddr_vm self{};
	socklen_t len = sizeof(self);
	if (getsockname(udo_vsock_udp_get_fd(cli.ptr), reinterpret_cast<sockaddr *>(&self), &len))
		return 1;
	std::printf("client_port %u\n", self.svm_port);

	std::vector<char> buf(64);
	sockaddr_vm from{};
	if (!wait_readable(udo_vsock_udp_get_fd(srv.ptr)))
		return 1;
	n = udo_vsock_udp_server_recv_data(srv.ptr, buf.data(), buf.size(), &from, nullptr);
	if (n < 0)
		return 1;
	std::printf("server_got %zd %s|%u %u\n", n,
	            std::string(buf.data(), static_cast<std::size_t>(n)).c_str(),
	            from.svm_cid, from.svm_port);

	const int flags = MSG_DONTWAIT;
	n = udo_vsock_udp_server_recv_data(srv.ptr, buf.data(), buf.size(), nullptr, &flags);
	std::printf("server_again %zd %d\n", n, errno);

	n = udo_vsock_udp_send_data(udo_vsock_udp_get_fd(srv.ptr), "hi back", 7, &from, nullptr);
	std::printf("server_sent %zd\n", n);
	if (!wait_readable(udo_vsock_udp_get_fd(cli.ptr)))
		return 1;
	from = sockaddr_vm{};
	n = udo_vsock_udp_recv_data(udo_vsock_udp_get_fd(cli.ptr), buf.data(), buf.size(), &from,
	                            nullptr);
	if (n < 0)
		return 1;
	std::printf("client_got %zd %s|%u %u\n", n,
	            std::string(buf.data(), static_cast<std::size_t>(n)).c_str(),
	            from.svm_cid, from.svm_port);
	return 0;
}
