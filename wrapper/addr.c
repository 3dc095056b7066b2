/* SPDX-License-Identifier: MIT */
/*
 * Address mapping and binding.
 *
 * A world is (namespace, cid, port).  A socket bound there holds the abstract
 * AF_UNIX name "\0vsock_wrapper/<namespace>/<cid>/<port>", so the kernel keeps
 * the port table for us: a second bind gets EADDRINUSE from AF_UNIX, a send to a
 * name nobody holds gets ECONNREFUSED, and a dead process frees its ports.
 * The name always carries the local CID, whatever CID form bind was given, so
 * (ANY, p) and (local, p) collide as they do in the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "vsw.h"

/* Give up an auto-bind after this many taken ports (the kernel would walk all
 * 2^32, holding a lock; nobody has that many sockets in a test world). */
#define P_AUTOBIND_TRIES 65536u

/* Decimal digits of v, written backwards ending at end; returns the start. */
static char *p_u32(char *end, uint32_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

/*
 * "<prefix><cid>/<port>", by hand: this runs on every send, and snprintf plus
 * clearing the whole sockaddr_un were two thirds of the wrapper's cost there.
 * It always fits: the prefix is at most 87 bytes, the digits at most 21, and
 * sun_path holds 108.
 */
socklen_t vsw_world_name(struct sockaddr_un *sun, uint32_t cid, uint32_t port)
{
	char digits[24], *end = digits + sizeof(digits), *p;
	size_t n;

	p = p_u32(end, port);
	*--p = '/';
	p = p_u32(p, cid);
	n = (size_t)(end - p);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, vsw_cfg.prefix, vsw_cfg.prefix_len);
	/* No trailing NUL: abstract names are exactly addrlen bytes. */
	memcpy(sun->sun_path + vsw_cfg.prefix_len, p, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + vsw_cfg.prefix_len + n);
}

/* 1 to 10 decimal digits up to UINT32_MAX. */
static bool p_parse_u32(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 10)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

void vsw_name_to_vm(const struct sockaddr_un *sun, socklen_t len, struct sockaddr_vm *vm)
{
	size_t plen = len > offsetof(struct sockaddr_un, sun_path) ?
		len - offsetof(struct sockaddr_un, sun_path) : 0;
	const char *p = sun->sun_path + vsw_cfg.prefix_len, *slash;
	uint32_t cid, port;

	memset(vm, 0, sizeof(*vm));
	vm->svm_family = AF_VSOCK;
	vm->svm_cid = VMADDR_CID_ANY;
	vm->svm_port = VMADDR_PORT_ANY;
	/* "<prefix><cid>/<port>": anything else (a foreign AF_UNIX sender) stays ANY. */
	if (sun->sun_family != AF_UNIX || plen <= vsw_cfg.prefix_len ||
	    memcmp(sun->sun_path, vsw_cfg.prefix, vsw_cfg.prefix_len))
		return;
	plen -= vsw_cfg.prefix_len;
	slash = memrchr(p, '/', plen);
	if (!slash || !p_parse_u32(p, (size_t)(slash - p), &cid) ||
	    !p_parse_u32(slash + 1, plen - (size_t)(slash - p) - 1, &port))
		return;
	vm->svm_cid = cid;
	vm->svm_port = port;
}

int vsw_addr_check(const struct sockaddr *addr, socklen_t len)
{
	const struct sockaddr_vm *vm = (const struct sockaddr_vm *)addr;

	if (len < (socklen_t)sizeof(*vm))
		return EFAULT;		/* what vsock_addr_cast() says; callers map it */
	if (!addr)
		return EFAULT;
	if (vm->svm_family != AF_VSOCK)
		return EAFNOSUPPORT;
	if (vm->svm_flags & ~VMADDR_FLAG_TO_HOST)
		return EINVAL;
	return 0;
}

int vsw_addr_out(const struct sockaddr_vm *vm, struct sockaddr *addr, socklen_t *len)
{
	socklen_t n;

	if (!len) {
		errno = EFAULT;
		return -1;
	}
	if ((int)*len < 0) {
		errno = EINVAL;
		return -1;
	}
	n = *len < (socklen_t)sizeof(*vm) ? *len : (socklen_t)sizeof(*vm);
	if (n && !addr) {
		errno = EFAULT;
		return -1;
	}
	if (n)
		memcpy(addr, vm, n);
	*len = sizeof(*vm);
	return 0;
}

/* capable(CAP_NET_BIND_SERVICE), as the kernel asks it of a vsock bind below 1024. */
static bool p_can_bind_service(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	int saved = errno;

	if (syscall(SYS_capget, &hdr, data) != 0) {
		errno = saved;
		return geteuid() == 0;
	}
	return data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].effective & CAP_TO_MASK(CAP_NET_BIND_SERVICE);
}

/* Adopt a name the AF_UNIX socket already holds: a forked relative bound the
 * shared socket after our copy of the state was taken. */
static bool p_adopt(int fd, struct vsw_obj *o)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	struct sockaddr_vm vm;
	int saved = errno;

	if (vsw_real.getsockname(fd, (struct sockaddr *)&sun, &len) != 0) {
		errno = saved;
		return false;
	}
	errno = saved;
	vsw_name_to_vm(&sun, len, &vm);
	if (vm.svm_port == VMADDR_PORT_ANY)
		return false;
	o->bound = true;
	o->bound_cid = VMADDR_CID_ANY;
	o->port = vm.svm_port;
	return true;
}

/* One AF_UNIX bind of world (local cid, port): 0 or -errno. */
static int p_bind_name(int fd, struct vsw_obj *o, uint32_t cid, uint32_t port)
{
	struct sockaddr_un sun;
	socklen_t len = vsw_world_name(&sun, vsw_cfg.cid, port);
	int saved = errno, err;

	if (vsw_real.bind(fd, (struct sockaddr *)&sun, len) == 0) {
		o->bound = true;
		o->bound_cid = cid;
		o->port = port;
		return 0;
	}
	err = errno;
	errno = saved;
	if (err == EINVAL)
		p_adopt(fd, o);	/* bound meanwhile by a forked relative */
	return -err;
}

int vsw_bind_locked(int fd, struct vsw_obj *o, uint32_t cid, uint32_t port)
{
	uint32_t i;
	int rc;

	/* The kernel's order: already bound, CID, then the transport's checks. */
	if (o->bound || p_adopt(fd, o))
		return -EINVAL;
	if (cid != VMADDR_CID_ANY && cid != vsw_cfg.cid)
		return -EADDRNOTAVAIL;
	if (port != VMADDR_PORT_ANY) {
		if (port < VSW_FIRST_EPHEMERAL && !p_can_bind_service())
			return -EACCES;
		return p_bind_name(fd, o, cid, port);
	}
	for (i = 0; i < P_AUTOBIND_TRIES; i++) {
		rc = p_bind_name(fd, o, cid, vsw_next_port());
		if (rc != -EADDRINUSE)
			return rc;
	}
	return -EADDRINUSE;
}

int vsw_autobind_locked(int fd, struct vsw_obj *o)
{
	int rc;

	if (o->bound)
		return 0;
	rc = vsw_bind_locked(fd, o, VMADDR_CID_ANY, VMADDR_PORT_ANY);
	/* -EINVAL: a forked relative bound it meanwhile, and we adopted its name. */
	return rc == -EINVAL && o->bound ? 0 : rc;
}

void vsw_sync_locked(int fd, struct vsw_obj *o)
{
	if (!o->bound)
		p_adopt(fd, o);
}
