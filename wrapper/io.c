/* SPDX-License-Identifier: MIT */
/*
 * Sending and receiving.  Every send funnels into vsw_sendmsg() and every
 * receive into vsw_recvmsg(), which carry the vsock rules; the data itself
 * moves by one AF_UNIX sendmsg/recvmsg on the caller's own iovec.
 *
 * Full receiver (AF_UNIX blocks the sender when the peer's queue holds
 * net.unix.max_dgram_qlen datagrams; the kernel's vsock never blocks, it drops):
 *   VSOCK_WRAPPER_FULL=block (default): a blocking send waits, so tests are
 *     deterministic.  A non-blocking send (O_NONBLOCK or MSG_DONTWAIT) fails
 *     with EAGAIN: the program asked not to wait, and losing the datagram
 *     silently is what `drop` is for.
 *   VSOCK_WRAPPER_FULL=drop: every send is made non-blocking; EAGAIN means the
 *     datagram was dropped and the send reports success, as the kernel does.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vsw.h"

void __chk_fail(void) __attribute__((noreturn));

static ssize_t p_fail(int err)
{
	errno = err;
	return -1;
}

static size_t p_iov_total(const struct iovec *iov, size_t n)
{
	size_t total = 0, i;

	for (i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

/* The destination, per vsock_dgram_sendmsg(): the address given if it is a
 * valid sockaddr_vm, else the connected peer, else EINVAL.  Auto-binds first,
 * as the kernel does, even when the send then fails. */
static int p_destination(int fd, const struct msghdr *msg, struct sockaddr_vm *dst)
{
	struct vsw_obj *o;
	int rc;

	vsw_lock();
	o = vsw_find(fd);
	rc = o ? vsw_autobind_locked(fd, o) : -EBADF;
	if (rc) {
		/* nothing */
	} else if (msg->msg_name && msg->msg_namelen &&
		   !vsw_addr_check(msg->msg_name, msg->msg_namelen)) {
		memcpy(dst, msg->msg_name, sizeof(*dst));
		if (dst->svm_cid == VMADDR_CID_ANY)
			dst->svm_cid = vsw_cfg.cid;
	} else if (o->connected) {
		/* The kernel rewrites the stored peer, visible to getpeername. */
		if (o->peer.svm_cid == VMADDR_CID_ANY)
			o->peer.svm_cid = vsw_cfg.cid;
		memcpy(dst, &o->peer, sizeof(*dst));
	} else {
		rc = -EINVAL;
	}
	vsw_unlock();
	if (!rc && dst->svm_port == VMADDR_PORT_ANY)
		rc = -EINVAL;
	/* VMCI's dgram_allow(): the hypervisor only on its PBRPC port. */
	if (!rc && dst->svm_cid == VMADDR_CID_HYPERVISOR && dst->svm_port != VSW_VMCI_PBRPC_PORT)
		rc = -EINVAL;
	return rc;
}

ssize_t vsw_sendmsg(int fd, const struct msghdr *msg, int flags, const char *call)
{
	struct sockaddr_vm dst = { .svm_cid = VMADDR_CID_ANY, .svm_port = VMADDR_PORT_ANY };
	struct sockaddr_un sun;
	struct msghdr m;
	size_t total = 0;
	ssize_t n;
	int rc;

	if (flags & MSG_OOB) {
		n = p_fail(EOPNOTSUPP);
		goto out;
	}
	if (msg->msg_iovlen > IOV_MAX || (msg->msg_iovlen && !msg->msg_iov)) {
		n = p_fail(msg->msg_iovlen > IOV_MAX ? EMSGSIZE : EFAULT);
		goto out;
	}
	total = p_iov_total(msg->msg_iov, msg->msg_iovlen);
	rc = p_destination(fd, msg, &dst);
	if (rc) {
		n = p_fail(-rc);
		goto out;
	}
	/* vmci_transport_dgram_enqueue(): the size first, then the route.  The
	 * host reaches neither the hypervisor nor a loopback CID. */
	if (total > vsw_cfg.max_dgram) {
		n = p_fail(EMSGSIZE);
		goto out;
	}
	if (dst.svm_cid == VMADDR_CID_HYPERVISOR || dst.svm_cid == VMADDR_CID_LOCAL) {
		n = p_fail(EINVAL);
		goto out;
	}
	memset(&m, 0, sizeof(m));
	m.msg_name = &sun;
	m.msg_namelen = vsw_world_name(&sun, dst.svm_cid, dst.svm_port);
	m.msg_iov = msg->msg_iov;
	m.msg_iovlen = msg->msg_iovlen;
	/* No control data: vsock ignores it, AF_UNIX would pass fds. */
	n = vsw_real.sendmsg(fd, &m, MSG_NOSIGNAL |
			     (vsw_cfg.drop ? MSG_DONTWAIT : (flags & MSG_DONTWAIT)));
	if (n < 0 && (errno == ECONNREFUSED || errno == ENOENT))
		errno = EHOSTUNREACH;	/* nobody bound there */
	else if (n < 0 && errno == EAGAIN && vsw_cfg.drop)
		n = (ssize_t)total;	/* dropped, and reported sent, like the kernel */
out:
	if (call)
		vsw_trace(call, fd, n, ", %zu bytes to %u:%u", total, dst.svm_cid, dst.svm_port);
	return n;
}

ssize_t vsw_recvmsg(int fd, struct msghdr *msg, int flags, const char *call)
{
	struct sockaddr_un sun;
	struct sockaddr_vm vm;
	struct msghdr m;
	ssize_t n;

	if (flags & (MSG_OOB | MSG_ERRQUEUE)) {
		n = p_fail(EOPNOTSUPP);
		goto out;
	}
	if (msg->msg_name && (int)msg->msg_namelen < 0) {
		n = p_fail(EINVAL);
		goto out;
	}
	memset(&m, 0, sizeof(m));
	m.msg_name = &sun;
	m.msg_namelen = sizeof(sun);
	m.msg_iov = msg->msg_iov;
	m.msg_iovlen = msg->msg_iovlen;
	/* MSG_TRUNC is dropped: vsock ignores it, AF_UNIX would return the full
	 * length.  Truncation still shows in msg_flags. */
	n = vsw_real.recvmsg(fd, &m, flags & (MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
	if (n < 0)
		goto out;
	msg->msg_flags = m.msg_flags & (MSG_TRUNC | MSG_CMSG_CLOEXEC);
	msg->msg_controllen = 0;
	if (msg->msg_name) {
		vsw_name_to_vm(&sun, m.msg_namelen, &vm);
		vsw_addr_out(&vm, msg->msg_name, &msg->msg_namelen);
	}
out:
	if (call)
		vsw_trace(call, fd, n, NULL);
	return n;
}

/* ---- the send family ---- */

VSW_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct msghdr m;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.sendmsg(fd, msg, flags);
	if (!msg)
		return p_fail(EFAULT);
	m = *msg;
	if ((int)m.msg_namelen < 0)
		return p_fail(EINVAL);
	if (m.msg_namelen > sizeof(struct sockaddr_storage))
		m.msg_namelen = sizeof(struct sockaddr_storage);
	return vsw_sendmsg(fd, &m, flags, "sendmsg");
}

VSW_API ssize_t sendto(int fd, const void *buf, size_t len, int flags,
		       const struct sockaddr *to, socklen_t tolen)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.sendto(fd, buf, len, flags, to, tolen);
	if (to) {
		if ((int)tolen < 0 || tolen > sizeof(struct sockaddr_storage))
			return p_fail(EINVAL);
		m.msg_name = (void *)to;
		m.msg_namelen = tolen;
	}
	return vsw_sendmsg(fd, &m, flags, "sendto");
}

VSW_API ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.send(fd, buf, len, flags);
	return vsw_sendmsg(fd, &m, flags, "send");
}

VSW_API ssize_t write(int fd, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.write(fd, buf, len);
	return vsw_sendmsg(fd, &m, 0, "write");
}

VSW_API ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov };

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.writev(fd, iov, cnt);
	if (cnt < 0 || cnt > IOV_MAX)
		return p_fail(EINVAL);
	m.msg_iovlen = (size_t)cnt;
	return vsw_sendmsg(fd, &m, 0, "writev");
}

VSW_API int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	unsigned int i;
	ssize_t n = 0;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.sendmmsg(fd, vec, vlen, flags);
	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV;
	for (i = 0; i < vlen; i++) {
		n = vsw_sendmsg(fd, &vec[i].msg_hdr, flags, NULL);
		if (n < 0)
			break;
		vec[i].msg_len = (unsigned int)n;
	}
	/* Like the kernel: an error is reported only if nothing was sent. */
	n = i ? (ssize_t)i : n;
	vsw_trace("sendmmsg", fd, n, ", %u", vlen);
	return (int)n;
}

/* ---- the receive family ---- */

VSW_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.recvmsg(fd, msg, flags);
	if (!msg)
		return p_fail(EFAULT);
	return vsw_recvmsg(fd, msg, flags, "recvmsg");
}

static ssize_t p_recvfrom(int fd, void *buf, size_t len, int flags,
			  struct sockaddr *from, socklen_t *fromlen, const char *call)
{
	struct iovec iov = { buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (from && fromlen) {
		m.msg_name = from;
		m.msg_namelen = *fromlen;
	}
	n = vsw_recvmsg(fd, &m, flags, call);
	if (n >= 0 && from && fromlen)
		*fromlen = m.msg_namelen;
	return n;
}

VSW_API ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
			 struct sockaddr *from, socklen_t *fromlen)
{
	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.recvfrom(fd, buf, len, flags, from, fromlen);
	return p_recvfrom(fd, buf, len, flags, from, fromlen, "recvfrom");
}

VSW_API ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.recv(fd, buf, len, flags);
	return p_recvfrom(fd, buf, len, flags, NULL, NULL, "recv");
}

VSW_API ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov };

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.readv(fd, iov, cnt);
	if (cnt < 0 || cnt > IOV_MAX)
		return p_fail(EINVAL);
	m.msg_iovlen = (size_t)cnt;
	/* sock_read_iter(): an empty read returns 0 and leaves the datagram queued. */
	if (!p_iov_total(iov, (size_t)cnt))
		return 0;
	return vsw_recvmsg(fd, &m, 0, "readv");
}

VSW_API ssize_t read(int fd, void *buf, size_t len)
{
	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.read(fd, buf, len);
	if (!len)
		return 0;
	return p_recvfrom(fd, buf, len, 0, NULL, NULL, "read");
}

static bool p_expired(const struct timespec *start, const struct timespec *limit)
{
	struct timespec now;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (now.tv_sec - start->tv_sec) * 1000000000LL + (now.tv_nsec - start->tv_nsec);
	return ns >= limit->tv_sec * 1000000000LL + limit->tv_nsec;
}

VSW_API int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		     struct timespec *timeout)
{
	struct timespec start;
	unsigned int i;
	ssize_t n = 0;

	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.recvmmsg(fd, vec, vlen, flags, timeout);
	if (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
			timeout->tv_nsec >= 1000000000L))
		return (int)p_fail(EINVAL);
	if (timeout)
		clock_gettime(CLOCK_MONOTONIC, &start);
	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV;
	for (i = 0; i < vlen; i++) {
		n = vsw_recvmsg(fd, &vec[i].msg_hdr, flags & ~MSG_WAITFORONE, NULL);
		if (n < 0)
			break;
		vec[i].msg_len = (unsigned int)n;
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
		/* As in the kernel, the timeout is looked at between datagrams only. */
		if (timeout && p_expired(&start, timeout)) {
			i++;
			break;
		}
	}
	n = i ? (ssize_t)i : n;
	vsw_trace("recvmmsg", fd, n, ", %u", vlen);
	return (int)n;
}

/* ---- glibc's _FORTIFY_SOURCE entry points ---- */

VSW_API ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.read_chk(fd, buf, len, buflen);
	if (len > buflen)
		__chk_fail();
	return read(fd, buf, len);
}

VSW_API ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.recv_chk(fd, buf, len, buflen, flags);
	if (len > buflen)
		__chk_fail();
	return p_recvfrom(fd, buf, len, flags, NULL, NULL, "recv");
}

VSW_API ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
			       struct sockaddr *from, socklen_t *fromlen)
{
	vsw_init();
	if (vsw_owned(fd) != VSW_SOCK)
		return vsw_real.recvfrom_chk(fd, buf, len, buflen, flags, from, fromlen);
	if (len > buflen)
		__chk_fail();
	return p_recvfrom(fd, buf, len, flags, from, fromlen, "recvfrom");
}
