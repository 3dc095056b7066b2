/* SPDX-License-Identifier: MIT */
/*
 * Sending and receiving.  Every send funnels into p_send() and every receive
 * into p_recv(), which carry the vsock rules; the data itself moves by one
 * AF_UNIX system call on the caller's own buffers (sendto/recvfrom for one
 * buffer, sendmsg/recvmsg for an iovec).  sendmmsg/recvmmsg take one pass: one
 * ownership check and one lock for the whole batch, the names translated into
 * a stack array, and one AF_UNIX sendmmsg/recvmmsg per 64 messages.
 *
 * The hot path (measured with callgrind, see benchmarks/README.md): one
 * fstat (the stale-fd check of fdtab.c) and one lock per call, world names
 * formatted and parsed by hand (snprintf was 2/3 of a send).
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

/* Messages translated per AF_UNIX sendmmsg/recvmmsg: the names live on the stack. */
#define P_CHUNK 64u

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

/*
 * fd's state, with the lock held, if the table says fd is an emulated
 * socket; else NULL and the lock is not held.  A miss costs no lock.
 *
 * Unlike vsw_owned(), no fstat: the stale-fd check (an fd closed behind our
 * back and reused) would be a second system call per datagram, the largest
 * cost the wrapper added.  The I/O calls make it when their result shows a
 * file that may not be ours (p_foreign, p_recv), and then answer as the
 * native call does; see wrapper/README.md for what that leaves out.
 */
static struct vsw_obj *p_lock_sock(int fd)
{
	struct vsw_obj *o;

	if (!vsw_find(fd))
		return NULL;
	vsw_lock();
	o = vsw_find(fd);
	if (o && o->kind == VSW_SOCK)
		return o;
	vsw_unlock();
	return NULL;
}

/* After an I/O call on fd failed: true if fd is no longer the socket we
 * registered (the entry is then forgotten and the caller redoes the call
 * natively; nothing was transferred).  errno is kept. */
static bool p_foreign(int fd)
{
	int saved = errno;
	bool foreign;

	if (saved == EAGAIN || saved == EINTR)
		return false;	/* what our own sockets answer, the hot failures */
	foreign = vsw_owned(fd) != VSW_SOCK;
	errno = saved;
	return foreign;
}

/* The destination, per vsock_dgram_sendmsg(): the address given if it is a
 * valid sockaddr_vm, else the connected peer, else EINVAL.  Auto-binds first,
 * as the kernel does, even when the send then fails.  Under the lock. */
static int p_destination_locked(int fd, struct vsw_obj *o, const struct msghdr *msg,
				struct sockaddr_vm *dst)
{
	int rc = vsw_autobind_locked(fd, o);

	if (rc)
		return rc;
	if (msg->msg_name && msg->msg_namelen &&
	    !vsw_addr_check(msg->msg_name, msg->msg_namelen)) {
		memcpy(dst, msg->msg_name, sizeof(*dst));
		if (dst->svm_cid == VMADDR_CID_ANY)
			dst->svm_cid = vsw_cfg.cid;
		return 0;
	}
	if (o->connected) {
		/* The kernel rewrites the stored peer, visible to getpeername. */
		if (o->peer.svm_cid == VMADDR_CID_ANY)
			o->peer.svm_cid = vsw_cfg.cid;
		memcpy(dst, &o->peer, sizeof(*dst));
		return 0;
	}
	return -EINVAL;
}

/* Everything vsock checks before a datagram leaves, in the kernel's order,
 * under the lock: 0 with the AF_UNIX name in sun/len, or -errno. */
static int p_route_locked(int fd, struct vsw_obj *o, const struct msghdr *msg, size_t *total,
			  struct sockaddr_vm *dst, struct sockaddr_un *sun, socklen_t *len)
{
	int rc;

	if (msg->msg_iovlen > IOV_MAX || (msg->msg_iovlen && !msg->msg_iov))
		return msg->msg_iovlen > IOV_MAX ? -EMSGSIZE : -EFAULT;
	/* The first send auto-binds: a real bind(), which must not land on an fd
	 * closed behind our back and reused (the stale-fd check the hot path skips).
	 * -EBADF sends the caller to p_foreign(), which answers natively. */
	if (!o->bound && !vsw_same_file_locked(fd, o))
		return -EBADF;
	*total = p_iov_total(msg->msg_iov, msg->msg_iovlen);
	rc = p_destination_locked(fd, o, msg, dst);
	if (rc)
		return rc;
	if (dst->svm_port == VMADDR_PORT_ANY)
		return -EINVAL;
	/* VMCI's dgram_allow(): the hypervisor only on its PBRPC port. */
	if (dst->svm_cid == VMADDR_CID_HYPERVISOR && dst->svm_port != VSW_VMCI_PBRPC_PORT)
		return -EINVAL;
	/* vmci_transport_dgram_enqueue(): the size first, then the route.  The
	 * host reaches neither the hypervisor nor a loopback CID. */
	if (*total > vsw_cfg.max_dgram)
		return -EMSGSIZE;
	if (dst->svm_cid == VMADDR_CID_HYPERVISOR || dst->svm_cid == VMADDR_CID_LOCAL)
		return -EINVAL;
	*len = vsw_world_name(sun, dst->svm_cid, dst->svm_port);
	return 0;
}

static int p_send_flags(int flags)
{
	return MSG_NOSIGNAL | (vsw_cfg.drop ? MSG_DONTWAIT : (flags & MSG_DONTWAIT));
}

/* A failed AF_UNIX send, as vsock reports it. */
static void p_send_errno(void)
{
	if (errno == ECONNREFUSED || errno == ENOENT)
		errno = EHOSTUNREACH;	/* nobody bound there */
}

/* One datagram; o is fd's state and the lock is held (p_lock_sock), released here. */
static ssize_t p_send(int fd, struct vsw_obj *o, const struct msghdr *msg, int flags,
		      const char *call)
{
	struct sockaddr_vm dst = { .svm_cid = VMADDR_CID_ANY, .svm_port = VMADDR_PORT_ANY };
	struct sockaddr_un sun;
	socklen_t len = 0;
	size_t total = 0;
	ssize_t n;
	int rc;

	if (flags & MSG_OOB) {
		vsw_unlock();
		n = p_fail(EOPNOTSUPP);
		goto out;
	}
	rc = p_route_locked(fd, o, msg, &total, &dst, &sun, &len);
	vsw_unlock();
	if (rc) {
		n = p_fail(-rc);
		goto out;
	}
	/* No control data: vsock ignores it, AF_UNIX would pass fds. */
	if (msg->msg_iovlen == 1) {
		n = vsw_real.sendto(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len,
				    p_send_flags(flags), (struct sockaddr *)&sun, len);
	} else {
		struct msghdr m = { .msg_name = &sun, .msg_namelen = len,
				    .msg_iov = msg->msg_iov, .msg_iovlen = msg->msg_iovlen };

		n = vsw_real.sendmsg(fd, &m, p_send_flags(flags));
	}
	if (n < 0 && errno == EAGAIN && vsw_cfg.drop)
		n = (ssize_t)total;	/* dropped, and reported sent, like the kernel */
	else if (n < 0)
		p_send_errno();
out:
	if (call && vsw_cfg.debug)
		vsw_trace(call, fd, n, ", %zu bytes to %u:%u", total, dst.svm_cid, dst.svm_port);
	return n;
}

ssize_t vsw_sendmsg(int fd, const struct msghdr *msg, int flags, const char *call)
{
	struct vsw_obj *o = p_lock_sock(fd);

	if (!o)
		return p_fail(EBADF);
	return p_send(fd, o, msg, flags, call);
}

/* One datagram into the caller's buffers; the caller made sure fd is ours. */
/* plain: recvfrom/recv/read, whose callers read no msg_flags: one recvfrom then. */
static ssize_t p_recv(int fd, struct msghdr *msg, int flags, bool plain, const char *call)
{
	struct sockaddr_un sun;
	struct sockaddr_vm vm;
	socklen_t len = sizeof(sun);
	ssize_t n;
	int rflags, raw_flags = 0;

	if (flags & (MSG_OOB | MSG_ERRQUEUE)) {
		n = p_fail(EOPNOTSUPP);
		goto out;
	}
	if (msg->msg_name && (int)msg->msg_namelen < 0) {
		n = p_fail(EINVAL);
		goto out;
	}
	/* MSG_TRUNC is dropped: vsock ignores it, AF_UNIX would return the full
	 * length.  Truncation still shows in msg_flags (recvmsg only). */
	rflags = flags & (MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	sun.sun_family = AF_UNSPEC;	/* read only if msg_name; -O3 cannot tell */
	if (plain) {
		n = vsw_real.recvfrom(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len,
				      rflags, msg->msg_name ? (struct sockaddr *)&sun : NULL,
				      msg->msg_name ? &len : NULL);
		if (n < 0)
			goto out;
	} else {
		struct msghdr m = { .msg_name = &sun, .msg_namelen = len,
				    .msg_iov = msg->msg_iov, .msg_iovlen = msg->msg_iovlen };

		n = vsw_real.recvmsg(fd, &m, rflags);
		if (n < 0)
			goto out;
		len = m.msg_namelen;
		raw_flags = m.msg_flags;
		msg->msg_flags = m.msg_flags & (MSG_TRUNC | MSG_CMSG_CLOEXEC);
		msg->msg_controllen = 0;
	}
	if (msg->msg_name) {
		vsw_name_to_vm(&sun, len, &vm);
		if (vm.svm_port == VMADDR_PORT_ANY && vsw_owned(fd) != VSW_SOCK) {
			/* Not from our world, and fd is not ours any more: the native answer. */
			memcpy(msg->msg_name, &sun, msg->msg_namelen < len ? msg->msg_namelen : len);
			msg->msg_namelen = len;
			if (!plain)
				msg->msg_flags = raw_flags;
		} else {
			vsw_addr_out(&vm, msg->msg_name, &msg->msg_namelen);
		}
	}
out:
	if (call && vsw_cfg.debug)
		vsw_trace(call, fd, n, NULL);
	return n;
}

ssize_t vsw_recvmsg(int fd, struct msghdr *msg, int flags, const char *call)
{
	return p_recv(fd, msg, flags, false, call);
}

/* Is fd an emulated socket, as the table says?  For the receive side. */
static bool p_ours(int fd)
{
	if (!p_lock_sock(fd))
		return false;
	vsw_unlock();
	return true;
}

/* ---- the send family ---- */

VSW_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct vsw_obj *o;
	struct msghdr m;
	ssize_t n;

	vsw_init();
	o = p_lock_sock(fd);
	if (!o)
		return vsw_real.sendmsg(fd, msg, flags);
	if (!msg || (int)msg->msg_namelen < 0) {
		vsw_unlock();
		return p_fail(!msg ? EFAULT : EINVAL);
	}
	m = *msg;
	if (m.msg_namelen > sizeof(struct sockaddr_storage))
		m.msg_namelen = sizeof(struct sockaddr_storage);
	n = p_send(fd, o, &m, flags, "sendmsg");
	return n < 0 && p_foreign(fd) ? vsw_real.sendmsg(fd, msg, flags) : n;
}

VSW_API ssize_t sendto(int fd, const void *buf, size_t len, int flags,
		       const struct sockaddr *to, socklen_t tolen)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct vsw_obj *o;
	ssize_t n;

	vsw_init();
	o = p_lock_sock(fd);
	if (!o)
		return vsw_real.sendto(fd, buf, len, flags, to, tolen);
	if (to) {
		if ((int)tolen < 0 || tolen > sizeof(struct sockaddr_storage)) {
			vsw_unlock();
			return p_fail(EINVAL);
		}
		m.msg_name = (void *)to;
		m.msg_namelen = tolen;
	}
	n = p_send(fd, o, &m, flags, "sendto");
	return n < 0 && p_foreign(fd) ? vsw_real.sendto(fd, buf, len, flags, to, tolen) : n;
}

VSW_API ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct vsw_obj *o;
	ssize_t n;

	vsw_init();
	o = p_lock_sock(fd);
	if (!o)
		return vsw_real.send(fd, buf, len, flags);
	n = p_send(fd, o, &m, flags, "send");
	return n < 0 && p_foreign(fd) ? vsw_real.send(fd, buf, len, flags) : n;
}

VSW_API ssize_t write(int fd, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct vsw_obj *o;
	ssize_t n;

	vsw_init();
	o = p_lock_sock(fd);
	if (!o)
		return vsw_real.write(fd, buf, len);
	n = p_send(fd, o, &m, 0, "write");
	return n < 0 && p_foreign(fd) ? vsw_real.write(fd, buf, len) : n;
}

VSW_API ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov };
	struct vsw_obj *o;
	ssize_t n;

	vsw_init();
	o = p_lock_sock(fd);
	if (!o)
		return vsw_real.writev(fd, iov, cnt);
	if (cnt < 0 || cnt > IOV_MAX) {
		vsw_unlock();
		return p_fail(EINVAL);
	}
	m.msg_iovlen = (size_t)cnt;
	n = p_send(fd, o, &m, 0, "writev");
	return n < 0 && p_foreign(fd) ? vsw_real.writev(fd, iov, cnt) : n;
}

/*
 * One pass: the lock is taken once per chunk of P_CHUNK messages, every
 * message is routed (stopping at the first the kernel would refuse), and the
 * routed ones go out in one AF_UNIX sendmmsg.  Like the kernel, an error is
 * reported only if nothing was sent.
 */
VSW_API int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct sockaddr_un sun[P_CHUNK];
	struct mmsghdr mm[P_CHUNK];
	size_t total[P_CHUNK];
	struct sockaddr_vm dst;
	struct vsw_obj *o;
	unsigned int done = 0, n, i, sent;
	int rc = 0, r;

	vsw_init();
	o = p_lock_sock(fd);
	if (!o)
		return vsw_real.sendmmsg(fd, vec, vlen, flags);
	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV;
	if (flags & MSG_OOB) {
		vsw_unlock();
		rc = -EOPNOTSUPP;
		goto out;
	}
	while (done < vlen) {
		n = vlen - done < P_CHUNK ? vlen - done : P_CHUNK;
		if (done && !(o = p_lock_sock(fd))) {
			rc = -EBADF;	/* closed by another thread meanwhile */
			break;
		}
		for (i = 0; i < n; i++) {
			const struct msghdr *msg = &vec[done + i].msg_hdr;

			if ((int)msg->msg_namelen < 0) {
				rc = -EINVAL;	/* as sendmsg(): copy_msghdr_from_user() */
				break;
			}
			rc = p_route_locked(fd, o, msg, &total[i], &dst, &sun[i],
					    &mm[i].msg_hdr.msg_namelen);
			if (rc)
				break;
			mm[i].msg_hdr.msg_name = &sun[i];
			mm[i].msg_hdr.msg_iov = msg->msg_iov;
			mm[i].msg_hdr.msg_iovlen = msg->msg_iovlen;
			mm[i].msg_hdr.msg_control = NULL;
			mm[i].msg_hdr.msg_controllen = 0;
			mm[i].msg_hdr.msg_flags = 0;
		}
		vsw_unlock();
		n = i;	/* the routed ones */
		for (sent = 0; sent < n; ) {
			r = vsw_real.sendmmsg(fd, mm + sent, n - sent, p_send_flags(flags));
			if (r < 0 && errno == EAGAIN && vsw_cfg.drop) {
				/* dropped, and reported sent, like the kernel */
				vec[done + sent].msg_len = (unsigned int)total[sent];
				sent++;
				continue;
			}
			if (r < 0) {
				p_send_errno();
				rc = -errno;
				break;
			}
			for (i = sent; i < sent + (unsigned int)r; i++)
				vec[done + i].msg_len = mm[i].msg_len;
			sent += (unsigned int)r;
		}
		done += sent;
		if (rc || sent < n)
			break;
	}
out:
	if (done || !rc) {
		r = (int)done;
	} else {
		errno = -rc;
		if (p_foreign(fd))
			return vsw_real.sendmmsg(fd, vec, vlen, flags);
		r = -1;
	}
	vsw_trace("sendmmsg", fd, r, ", %u", vlen);
	return r;
}

/* ---- the receive family ---- */

VSW_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t n;

	vsw_init();
	if (!p_ours(fd))
		return vsw_real.recvmsg(fd, msg, flags);
	if (!msg)
		return p_fail(EFAULT);
	n = p_recv(fd, msg, flags, false, "recvmsg");
	return n < 0 && p_foreign(fd) ? vsw_real.recvmsg(fd, msg, flags) : n;
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
	n = p_recv(fd, &m, flags, true, call);
	if (n >= 0 && from && fromlen)
		*fromlen = m.msg_namelen;
	return n;
}

VSW_API ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
			 struct sockaddr *from, socklen_t *fromlen)
{
	ssize_t n;

	vsw_init();
	if (!p_ours(fd))
		return vsw_real.recvfrom(fd, buf, len, flags, from, fromlen);
	n = p_recvfrom(fd, buf, len, flags, from, fromlen, "recvfrom");
	return n < 0 && p_foreign(fd) ? vsw_real.recvfrom(fd, buf, len, flags, from, fromlen) : n;
}

VSW_API ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	ssize_t n;

	vsw_init();
	if (!p_ours(fd))
		return vsw_real.recv(fd, buf, len, flags);
	n = p_recvfrom(fd, buf, len, flags, NULL, NULL, "recv");
	return n < 0 && p_foreign(fd) ? vsw_real.recv(fd, buf, len, flags) : n;
}

VSW_API ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov };
	ssize_t n;

	vsw_init();
	if (!p_ours(fd))
		return vsw_real.readv(fd, iov, cnt);
	if (cnt < 0 || cnt > IOV_MAX)
		return p_fail(EINVAL);
	if (cnt && !iov)
		return p_fail(EFAULT);	/* the kernel's copy of the iovec fails */
	m.msg_iovlen = (size_t)cnt;
	/* sock_read_iter(): an empty read returns 0 and leaves the datagram queued. */
	if (!p_iov_total(iov, (size_t)cnt))
		return 0;
	n = p_recv(fd, &m, 0, false, "readv");
	return n < 0 && p_foreign(fd) ? vsw_real.readv(fd, iov, cnt) : n;
}

VSW_API ssize_t read(int fd, void *buf, size_t len)
{
	ssize_t n;

	vsw_init();
	if (!p_ours(fd))
		return vsw_real.read(fd, buf, len);
	if (!len)
		return 0;
	n = p_recvfrom(fd, buf, len, 0, NULL, NULL, "read");
	return n < 0 && p_foreign(fd) ? vsw_real.read(fd, buf, len) : n;
}

static long long p_ns(const struct timespec *t)
{
	return t->tv_sec * 1000000000LL + t->tv_nsec;
}

/*
 * One pass: an AF_UNIX recvmmsg per chunk of P_CHUNK messages into the
 * caller's iovecs, names translated in place afterwards.  The kernel looks at
 * MSG_WAITFORONE and the timeout between datagrams; so does the AF_UNIX
 * recvmmsg within a chunk, and this loop between chunks.
 */
VSW_API int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
		     struct timespec *timeout)
{
	struct sockaddr_un sun[P_CHUNK];
	struct mmsghdr mm[P_CHUNK];
	struct timespec start, now, left;
	struct sockaddr_vm vm;
	unsigned int done = 0, n, i;
	int r, rflags, err = 0;
	bool foreign = false;

	vsw_init();
	if (!p_ours(fd))
		return vsw_real.recvmmsg(fd, vec, vlen, flags, timeout);
	if (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
			timeout->tv_nsec >= 1000000000L))
		return (int)p_fail(EINVAL);
	if (timeout)
		clock_gettime(CLOCK_MONOTONIC, &start);
	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV;
	if (flags & (MSG_OOB | MSG_ERRQUEUE)) {
		err = EOPNOTSUPP;
		vlen = 0;
	}
	if (vlen && !vec) {
		err = EFAULT;
		vlen = 0;
	}
	/* As p_recv, per message: a negative name length stops the batch there. */
	for (i = 0; i < vlen; i++) {
		if (vec[i].msg_hdr.msg_name && (int)vec[i].msg_hdr.msg_namelen < 0) {
			err = EINVAL;
			vlen = i;
			break;
		}
	}
	rflags = flags & (MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_WAITFORONE);
	while (done < vlen) {
		n = vlen - done < P_CHUNK ? vlen - done : P_CHUNK;
		for (i = 0; i < n; i++) {
			mm[i].msg_hdr = (struct msghdr) {
				.msg_name = &sun[i], .msg_namelen = sizeof(sun[i]),
				.msg_iov = vec[done + i].msg_hdr.msg_iov,
				.msg_iovlen = vec[done + i].msg_hdr.msg_iovlen };
		}
		if (timeout) {
			long long ns;

			clock_gettime(CLOCK_MONOTONIC, &now);
			ns = p_ns(timeout) - (p_ns(&now) - p_ns(&start));
			if (done && ns <= 0)
				break;
			left.tv_sec = ns > 0 ? ns / 1000000000LL : 0;
			left.tv_nsec = ns > 0 ? ns % 1000000000LL : 0;
		}
		r = vsw_real.recvmmsg(fd, mm, n, rflags, timeout ? &left : NULL);
		if (r < 0) {
			if (!done && p_foreign(fd))
				return vsw_real.recvmmsg(fd, vec, vlen, flags, timeout);
			err = done ? 0 : errno;	/* after some: the next call will see it */
			break;
		}
		for (i = 0; i < (unsigned int)r; i++) {
			struct msghdr *msg = &vec[done + i].msg_hdr;
			socklen_t len = mm[i].msg_hdr.msg_namelen;

			vec[done + i].msg_len = mm[i].msg_len;
			msg->msg_flags = mm[i].msg_hdr.msg_flags & (MSG_TRUNC | MSG_CMSG_CLOEXEC);
			msg->msg_controllen = 0;
			if (!msg->msg_name)
				continue;
			vsw_name_to_vm(&sun[i], len, &vm);
			/* Not from our world: is fd still ours?  If not, the native answer. */
			if (vm.svm_port == VMADDR_PORT_ANY && !foreign)
				foreign = vsw_owned(fd) != VSW_SOCK;
			if (foreign) {
				memcpy(msg->msg_name, &sun[i], msg->msg_namelen < len ?
				       msg->msg_namelen : len);
				msg->msg_namelen = len;
				msg->msg_flags = mm[i].msg_hdr.msg_flags;
			} else {
				vsw_addr_out(&vm, msg->msg_name, &msg->msg_namelen);
			}
		}
		done += (unsigned int)r;
		if ((unsigned int)r < n)
			break;
		if (rflags & MSG_WAITFORONE)
			rflags |= MSG_DONTWAIT;
	}
	if (done || !err) {
		r = (int)done;
	} else {
		errno = err;
		r = -1;
	}
	if (done && timeout) {
		/* __sys_recvmmsg() writes back the time left (0 if it ran out). */
		long long ns;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ns = p_ns(timeout) - (p_ns(&now) - p_ns(&start));
		timeout->tv_sec = ns > 0 ? ns / 1000000000LL : 0;
		timeout->tv_nsec = ns > 0 ? ns % 1000000000LL : 0;
	}
	vsw_trace("recvmmsg", fd, r, ", %u", vlen);
	return r;
}

/* ---- glibc's _FORTIFY_SOURCE entry points ---- */

VSW_API ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	vsw_init();
	if (!p_ours(fd))
		return vsw_real.read_chk(fd, buf, len, buflen);
	if (len > buflen)
		__chk_fail();
	return read(fd, buf, len);
}

VSW_API ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	vsw_init();
	if (!p_ours(fd))
		return vsw_real.recv_chk(fd, buf, len, buflen, flags);
	if (len > buflen)
		__chk_fail();
	return recv(fd, buf, len, flags);
}

VSW_API ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
			       struct sockaddr *from, socklen_t *fromlen)
{
	vsw_init();
	if (!p_ours(fd))
		return vsw_real.recvfrom_chk(fd, buf, len, buflen, flags, from, fromlen);
	if (len > buflen)
		__chk_fail();
	return recvfrom(fd, buf, len, flags, from, fromlen);
}
