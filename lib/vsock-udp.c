/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cando/log.h>
#include <cando/vsock-udp.h>

/* Private: the header keeps it opaque so its layout can change. */
struct udo_vsock_udp {
	struct udo_log_error_struct err; /* first: udo_log_get_error(vsock) */
	bool                        free;
	int                         fd;
	unsigned int                vcid;
	int                         port;
	struct sockaddr_vm          addr;
};

/* Why a call may fail in ways a vsock user would not guess from strerror. */
static const char *p_hint(const char *call, int err)
{
	if (err == ENODEV && !strcmp(call, "socket"))
		return "this kernel has no AF_VSOCK datagram transport";
	if (err == EAFNOSUPPORT && !strcmp(call, "socket"))
		return "the vsock kernel module is not loaded";
	if (err == EADDRNOTAVAIL && !strcmp(call, "bind"))
		return "the CID is neither VMADDR_CID_ANY nor the local CID";
	return NULL;
}

/*
 * Record a failure: errno = @err, and the instance's error record (if any)
 * says which call failed and why. Returns -@err for the I/O functions.
 */
static ssize_t p_fail(struct udo_vsock_udp *vsock, const char *func, int err,
                      const char *call, const char *why)
{
	char reason[128];
	const char *text = strerror_r(err, reason, sizeof(reason));

	if (!why)
		why = p_hint(call, err);
	if (vsock)
		udo_log_set_error(vsock, (unsigned int) err, "%s: %s%s%s%s", call, text,
		                  why ? " (" : "", why ? why : "", why ? ")" : "");
	udo_log_error("%s: %s: %s%s%s%s", func, call, text,
	              why ? " (" : "", why ? why : "", why ? ")" : "");
	errno = err;
	return -err;
}

static void p_close_keep_errno(int fd)
{
	int saved_errno = errno;

	close(fd);
	errno = saved_errno;
}

/* The reason an I/O request is malformed, or NULL if it is not. */
static const char *p_bad_io(int fd, const void *data, size_t size)
{
	if (fd < 0)
		return "the fd is negative";
	if (!data)
		return "data is NULL";
	if (!size)
		return "size is 0";
	return NULL;
}

static int p_flags(const void *vsock_info)
{
	return vsock_info ? *(const int *) vsock_info : 0;
}

/* EINTR and EAGAIN are how a caller's signal or non-blocking I/O answers: not errors. */
static bool p_is_error(ssize_t ret)
{
	return ret < 0 && ret != -EINTR && ret != -EAGAIN;
}

/*
 * The create path server and client share. Each public function reads its
 * own info struct and passes the values: both structs are
 * { unsigned int vcid; int port; }, but reading one through the other's
 * type would break C's aliasing rules.
 */
static struct udo_vsock_udp *p_create(struct udo_vsock_udp *vsock, bool has_info,
                                      unsigned int vcid, int port, bool server, const char *func)
{
	struct udo_vsock_udp *inst = vsock;
	socklen_t len = sizeof(inst->addr);

	if (!inst) {
		inst = calloc(1, sizeof(*inst));
		if (!inst) {
			p_fail(NULL, func, ENOMEM, "calloc", NULL);
			return NULL;
		}
		inst->free = true;
	} else {
		memset(inst, 0, sizeof(*inst));
	}
	inst->fd = -1;

	if (!has_info) {
		p_fail(inst, func, EINVAL, func, "vsock_info is NULL");
		goto fail;
	}
	if (port < -1) {
		p_fail(inst, func, EINVAL, func, "port is below -1 (VMADDR_PORT_ANY)");
		goto fail;
	}

	inst->vcid = vcid;
	inst->port = port;
	inst->addr.svm_family = AF_VSOCK;
	inst->addr.svm_cid = vcid;
	inst->addr.svm_port = (unsigned int) port;

	inst->fd = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (inst->fd < 0) {
		p_fail(inst, func, errno, "socket", NULL);
		goto fail;
	}
	if (!server)
		return inst;

	if (bind(inst->fd, (const struct sockaddr *) &inst->addr, sizeof(inst->addr)) < 0) {
		p_fail(inst, func, errno, "bind", NULL);
		goto fail;
	}
	/* Learn the port the kernel chose for VMADDR_PORT_ANY. */
	if (getsockname(inst->fd, (struct sockaddr *) &inst->addr, &len) < 0) {
		p_fail(inst, func, errno, "getsockname", NULL);
		goto fail;
	}
	inst->port = (int) inst->addr.svm_port;
	return inst;

fail:
	if (inst->fd >= 0)
		p_close_keep_errno(inst->fd);
	inst->fd = -1;
	if (inst->free) {
		int saved_errno = errno;

		free(inst);
		errno = saved_errno;
	}
	return NULL;
}

struct udo_vsock_udp *udo_vsock_udp_server_create(struct udo_vsock_udp *vsock,
                                                  const void *vsock_info)
{
	const struct udo_vsock_udp_server_create_info *info = vsock_info;

	return p_create(vsock, info != NULL, info ? info->vcid : 0, info ? info->port : 0,
	                true, __func__);
}

struct udo_vsock_udp *udo_vsock_udp_client_create(struct udo_vsock_udp *vsock,
                                                  const void *vsock_info)
{
	const struct udo_vsock_udp_client_create_info *info = vsock_info;

	return p_create(vsock, info != NULL, info ? info->vcid : 0, info ? info->port : 0,
	                false, __func__);
}

int udo_vsock_udp_server_accept(struct udo_vsock_udp *vsock, const struct sockaddr_vm *addr)
{
	const int one = 1;
	int fd;

	if (!vsock || !addr) {
		p_fail(vsock, __func__, EINVAL, __func__, vsock ? "addr is NULL" : "vsock is NULL");
		return -1;
	}
	if (vsock->fd < 0) {
		/* A failed or destroyed instance: its address was never bound. */
		p_fail(vsock, __func__, EINVAL, __func__, "the instance has no socket");
		return -1;
	}

	fd = socket(AF_VSOCK, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		p_fail(vsock, __func__, errno, "socket", NULL);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		p_fail(vsock, __func__, errno, "setsockopt", "SO_REUSEADDR");
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *) &vsock->addr, sizeof(vsock->addr)) < 0) {
		p_fail(vsock, __func__, errno, "bind",
		       errno == EADDRINUSE ?
		       "no AF_VSOCK transport in Linux lets two sockets bind one address" : NULL);
		goto fail;
	}
	if (connect(fd, (const struct sockaddr *) addr, sizeof(*addr)) < 0) {
		p_fail(vsock, __func__, errno, "connect", NULL);
		goto fail;
	}
	return fd;

fail:
	p_close_keep_errno(fd);
	return -1;
}

ssize_t udo_vsock_udp_server_recv_data(struct udo_vsock_udp *vsock, void *data,
                                       const size_t size, struct sockaddr_vm *addr,
                                       const void *sock_info)
{
	ssize_t ret;

	if (!vsock)
		return p_fail(NULL, __func__, EINVAL, __func__, "vsock is NULL");
	if (p_bad_io(vsock->fd, data, size))
		return p_fail(vsock, __func__, EINVAL, __func__, p_bad_io(vsock->fd, data, size));

	ret = udo_vsock_udp_recv_data(vsock->fd, data, size, addr, sock_info);
	if (p_is_error(ret))
		p_fail(vsock, __func__, (int) -ret, "recvfrom", NULL);
	return ret;
}

int udo_vsock_udp_client_connect(struct udo_vsock_udp *vsock)
{
	if (!vsock) {
		p_fail(NULL, __func__, EINVAL, __func__, "vsock is NULL");
		return -1;
	}
	if (connect(vsock->fd, (const struct sockaddr *) &vsock->addr, sizeof(vsock->addr)) < 0) {
		p_fail(vsock, __func__, errno, "connect", NULL);
		return -1;
	}
	return 0;
}

ssize_t udo_vsock_udp_client_send_data(struct udo_vsock_udp *vsock, const void *data,
                                       const size_t size, const void *vsock_info)
{
	ssize_t ret;

	if (!vsock)
		return p_fail(NULL, __func__, EINVAL, __func__, "vsock is NULL");
	if (p_bad_io(vsock->fd, data, size))
		return p_fail(vsock, __func__, EINVAL, __func__, p_bad_io(vsock->fd, data, size));

	ret = udo_vsock_udp_send_data(vsock->fd, data, size, &vsock->addr, vsock_info);
	if (p_is_error(ret))
		p_fail(vsock, __func__, (int) -ret, "sendto", NULL);
	return ret;
}

int udo_vsock_udp_get_fd(struct udo_vsock_udp *vsock)
{
	return vsock ? vsock->fd : -1;
}

unsigned int udo_vsock_udp_get_vcid(struct udo_vsock_udp *vsock)
{
	return vsock ? vsock->vcid : UINT32_MAX;
}

int udo_vsock_udp_get_port(struct udo_vsock_udp *vsock)
{
	return vsock ? vsock->port : -1;
}

void udo_vsock_udp_destroy(struct udo_vsock_udp *vsock)
{
	int saved_errno = errno;

	if (!vsock)
		return;
	if (vsock->fd >= 0)
		close(vsock->fd);
	if (vsock->free) {
		free(vsock);
	} else {
		/* Caller memory: leave it inert, so a second destroy is harmless. */
		memset(vsock, 0, sizeof(*vsock));
		vsock->fd = -1;
	}
	errno = saved_errno;
}

int udo_vsock_udp_get_sizeof(void)
{
	return (int) sizeof(struct udo_vsock_udp);
}

unsigned int udo_vsock_udp_get_local_vcid(void)
{
	unsigned int cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return UINT32_MAX;
	if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0) {
		p_close_keep_errno(fd);
		return UINT32_MAX;
	}
	close(fd);
	/* The kernel answers VMADDR_CID_ANY where no transport owns a CID. */
	if (cid == VMADDR_CID_ANY) {
		errno = EADDRNOTAVAIL;
		return UINT32_MAX;
	}
	return cid;
}

ssize_t udo_vsock_udp_recv_data(const int sock_fd, void *data, const size_t size,
                                struct sockaddr_vm *addr, const void *vsock_info)
{
	socklen_t len = sizeof(*addr);
	ssize_t ret;

	if (p_bad_io(sock_fd, data, size)) {
		errno = EINVAL;
		return -EINVAL;
	}
	ret = recvfrom(sock_fd, data, size, p_flags(vsock_info),
	               (struct sockaddr *) addr, addr ? &len : NULL);
	return ret < 0 ? -errno : ret;
}

ssize_t udo_vsock_udp_send_data(const int sock_fd, const void *data, const size_t size,
                                const struct sockaddr_vm *addr, const void *vsock_info)
{
	ssize_t ret;

	if (p_bad_io(sock_fd, data, size)) {
		errno = EINVAL;
		return -EINVAL;
	}
	ret = sendto(sock_fd, data, size, p_flags(vsock_info),
	             (const struct sockaddr *) addr, addr ? sizeof(*addr) : 0);
	return ret < 0 ? -errno : ret;
}
