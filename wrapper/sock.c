/* SPDX-License-Identifier: MIT */
/*
 * Socket-level calls on emulated sockets: socket, bind, connect, names, options,
 * shutdown, ioctl.  Each mirrors the kernel's af_vsock.c and VMCI transport,
 * including the order in which their checks fail.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vsw.h"

/* Both errno conventions in one place: set errno from -err, return -1. */
static int p_fail(int err)
{
	errno = err;
	return -1;
}

/* AF_UNIX refuses a datagram larger than its send buffer less 32 bytes; vsock
 * has no such coupling, so keep the buffer big enough for the largest one. */
static void p_ensure_sndbuf(int fd)
{
	int need = (int)vsw_cfg.max_dgram + 1024, have = 0;
	socklen_t len = sizeof(have);
	int saved = errno;

	if (vsw_real.getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have < need) {
		/* The kernel doubles the value and caps it at wmem_max; root may force. */
		vsw_real.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &need, sizeof(need));
		len = sizeof(have);
		if (vsw_real.getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have < need)
			vsw_real.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &need, sizeof(need));
	}
	errno = saved;
}

VSW_API int socket(int domain, int type, int protocol)
{
	int fd;

	vsw_init();
	if (domain != AF_VSOCK || (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_DGRAM)
		return vsw_real.socket(domain, type, protocol);
	if (protocol && protocol != PF_VSOCK) {
		fd = p_fail(EPROTONOSUPPORT);
	} else {
		fd = vsw_real.socket(AF_UNIX, type, 0);
		if (fd >= 0) {
			p_ensure_sndbuf(fd);
			if (vsw_track(fd, VSW_SOCK) != 0) {
				int err = errno;

				vsw_real.close(fd);
				fd = p_fail(err);
			}
		}
	}
	vsw_trace("socket", fd, fd, ", AF_VSOCK, 0x%x, %d", (unsigned int)type, protocol);
	return fd;
}

VSW_API int socketpair(int domain, int type, int protocol, int sv[2])
{
	vsw_init();
	if (domain == AF_VSOCK && (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_DGRAM &&
	    (!protocol || protocol == PF_VSOCK))
		return p_fail(EOPNOTSUPP);	/* sock_no_socketpair */
	return vsw_real.socketpair(domain, type, protocol, sv);
}

static int p_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	const struct sockaddr_vm *vm = (const struct sockaddr_vm *)addr;
	struct vsw_obj *o;
	int rc;

	if ((int)len < 0 || len > sizeof(struct sockaddr_storage))
		return p_fail(EINVAL);
	if (len && !addr)
		return p_fail(EFAULT);
	if (vsw_addr_check(addr, len))
		return p_fail(EINVAL);
	vsw_lock();
	o = vsw_find(fd);
	rc = o ? vsw_bind_locked(fd, o, vm->svm_cid, vm->svm_port) : -EBADF;
	vsw_unlock();
	return rc ? p_fail(-rc) : 0;
}

VSW_API int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int rc;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.bind(fd, addr, len);
	rc = p_bind(fd, addr, len);
	vsw_trace("bind", fd, rc, ", %u:%u", addr && len >= 16 ? ((const struct sockaddr_vm *)addr)->svm_cid : 0,
		  addr && len >= 16 ? ((const struct sockaddr_vm *)addr)->svm_port : 0);
	return rc;
}

static int p_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	const struct sockaddr_vm *vm = (const struct sockaddr_vm *)addr;
	struct vsw_obj *o;
	int err, rc = 0;

	if ((int)len < 0 || len > sizeof(struct sockaddr_storage))
		return p_fail(EINVAL);
	if (len && !addr)
		return p_fail(EFAULT);
	err = vsw_addr_check(addr, len);
	vsw_lock();
	o = vsw_find(fd);
	if (!o) {
		rc = -EBADF;
	} else if (err == EAFNOSUPPORT && vm->svm_family == AF_UNSPEC) {
		/* Dissolve the association; the local address stays. */
		o->connected = false;
		memset(&o->peer, 0, sizeof(o->peer));
	} else if (err) {
		rc = -EINVAL;
	} else {
		/* Auto-bind first, then the transport's dgram_allow(): VMCI lets a
		 * datagram reach the hypervisor on its PBRPC port only.  No existence
		 * check: a datagram connect is a default destination, nothing more. */
		rc = vsw_autobind_locked(fd, o);
		if (!rc && vm->svm_cid == VMADDR_CID_HYPERVISOR && vm->svm_port != VSW_VMCI_PBRPC_PORT)
			rc = -EINVAL;
		if (!rc) {
			memcpy(&o->peer, vm, sizeof(o->peer));
			o->connected = true;
		}
	}
	vsw_unlock();
	return rc ? p_fail(-rc) : 0;
}

VSW_API int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int rc;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.connect(fd, addr, len);
	/* Never connect the AF_UNIX socket: that would filter what it receives. */
	rc = p_connect(fd, addr, len);
	vsw_trace("connect", fd, rc, NULL);
	return rc;
}

static int p_getname(int fd, struct sockaddr *addr, socklen_t *len, bool peer)
{
	struct sockaddr_vm vm;
	struct vsw_obj *o;
	int rc = 0;

	memset(&vm, 0, sizeof(vm));
	vm.svm_family = AF_VSOCK;
	vsw_lock();
	o = vsw_find(fd);
	if (!o) {
		rc = -EBADF;
	} else if (peer) {
		if (o->connected)
			memcpy(&vm, &o->peer, sizeof(vm));
		else
			rc = -ENOTCONN;
	} else {
		vsw_sync_locked(fd, o);
		vm.svm_cid = o->bound ? o->bound_cid : VMADDR_CID_ANY;
		vm.svm_port = o->bound ? o->port : VMADDR_PORT_ANY;
	}
	vsw_unlock();
	if (rc)
		return p_fail(-rc);
	return vsw_addr_out(&vm, addr, len);
}

VSW_API int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	int rc;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.getsockname(fd, addr, len);
	rc = p_getname(fd, addr, len, false);
	vsw_trace("getsockname", fd, rc, NULL);
	return rc;
}

VSW_API int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	int rc;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.getpeername(fd, addr, len);
	rc = p_getname(fd, addr, len, true);
	vsw_trace("getpeername", fd, rc, NULL);
	return rc;
}

/* sock_getsockopt()'s way with an int: copy at most the caller's length. */
static int p_int_out(int v, void *val, socklen_t *len)
{
	socklen_t n;

	if (!len)
		return p_fail(EFAULT);
	if ((int)*len < 0)
		return p_fail(EINVAL);
	n = *len < (socklen_t)sizeof(v) ? *len : (socklen_t)sizeof(v);
	if (n && !val)
		return p_fail(EFAULT);
	memcpy(val, &v, n);
	*len = n;
	return 0;
}

static int p_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	/* af_vsock's datagram ops have no option handlers of their own. */
	if (level != SOL_SOCKET)
		return p_fail(EOPNOTSUPP);
	switch (name) {
	case SO_DOMAIN:
		return p_int_out(AF_VSOCK, val, len);
	case SO_TYPE:
		return p_int_out(SOCK_DGRAM, val, len);
	case SO_PROTOCOL:
		return p_int_out(0, val, len);
	case SO_PEERNAME: {
		/* sock_getsockopt(): ENOTCONN first; then a buffer longer than the
		 * address is EINVAL, a shorter one gets a truncated copy. */
		struct sockaddr_vm peer;
		socklen_t plen = sizeof(peer);

		if (!len)
			return p_fail(EFAULT);
		if ((int)*len < 0)
			return p_fail(EINVAL);
		if (p_getname(fd, (struct sockaddr *)&peer, &plen, true) < 0)
			return -1;
		if (*len > plen)
			return p_fail(EINVAL);
		memcpy(val, &peer, *len);
		return 0;
	}
	default:
		return vsw_real.getsockopt(fd, level, name, val, len);
	}
}

VSW_API int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	int rc;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.getsockopt(fd, level, name, val, len);
	rc = p_getsockopt(fd, level, name, val, len);
	vsw_trace("getsockopt", fd, rc, ", %d, %d", level, name);
	return rc;
}

VSW_API int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	int rc;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.setsockopt(fd, level, name, val, len);
	if (level != SOL_SOCKET) {
		rc = p_fail(EOPNOTSUPP);
	} else {
		rc = vsw_real.setsockopt(fd, level, name, val, len);
		if (rc == 0 && (name == SO_SNDBUF || name == SO_SNDBUFFORCE))
			p_ensure_sndbuf(fd);
	}
	vsw_trace("setsockopt", fd, rc, ", %d, %d", level, name);
	return rc;
}

static int p_shutdown(int fd, int how)
{
	struct vsw_obj *o;
	int rc;

	if (how < SHUT_RD || how > SHUT_RDWR)
		return p_fail(EINVAL);
	/* Let AF_UNIX record the shutdown: receives on a read-shut socket return 0. */
	if (vsw_real.shutdown(fd, how) != 0)
		return -1;
	vsw_lock();
	o = vsw_find(fd);
	/* vsock_shutdown(): an unconnected datagram socket is shut all the same but
	 * gets ENOTCONN; a connected one leaves SS_CONNECTED, forgetting its peer. */
	rc = o && o->connected ? 0 : -ENOTCONN;
	if (o)
		o->connected = false;
	vsw_unlock();
	return rc ? p_fail(-rc) : 0;
}

VSW_API int shutdown(int fd, int how)
{
	int rc;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.shutdown(fd, how);
	rc = p_shutdown(fd, how);
	vsw_trace("shutdown", fd, rc, ", %d", how);
	return rc;
}

/* ioctls the VFS or the generic socket layer answer before the protocol's own. */
static bool p_generic_ioctl(unsigned long req)
{
	switch (req) {
	case FIONBIO:
	case FIOASYNC:
	case FIOCLEX:
	case FIONCLEX:
	case FIOSETOWN:
	case SIOCSPGRP:
	case FIOGETOWN:
	case SIOCGPGRP:
		return true;
	default:
		return false;
	}
}

VSW_API int ioctl(int fd, unsigned long req, ...)
{
	enum vsw_kind kind;
	va_list ap;
	void *arg;
	int rc;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	vsw_init();
	kind = vsw_owned(fd);
	if (kind == VSW_NONE || p_generic_ioctl(req))
		return vsw_real.ioctl(fd, req, arg);
	if (kind == VSW_SOCK) {
		rc = p_fail(EOPNOTSUPP);	/* sock_no_ioctl */
	} else if (req != IOCTL_VM_SOCKETS_GET_LOCAL_CID) {
		rc = p_fail(ENOTTY);
	} else if (!arg) {
		rc = p_fail(EFAULT);
	} else {
		memcpy(arg, &vsw_cfg.cid, sizeof(vsw_cfg.cid));
		rc = 0;
	}
	vsw_trace("ioctl", fd, rc, ", 0x%lx", req);
	return rc;
}
