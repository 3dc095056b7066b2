/* SPDX-License-Identifier: MIT */
/*
 * Batched datagrams: udo_vsock_udp_dgram arrays through sendmmsg/recvmmsg,
 * UDO_VSOCK_UDP_BATCH_MAX at a time from a stack array, so a batch costs one
 * system call per 64 datagrams and no allocation.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <cando/vsock-udp-batch.h>

static int p_flags(const void *vsock_info)
{
	return vsock_info ? *(const int *) vsock_info : 0;
}

/*
 * -EINVAL (errno set) unless every entry can be handed to the kernel. A
 * count no array could hold, or a size the kernel reads as negative, is
 * refused before anything is read or sent.
 */
static int p_check(int fd, const struct udo_vsock_udp_dgram *dgrams, size_t count)
{
	size_t i;

	if (fd < 0 || !dgrams || !count || count > SSIZE_MAX / sizeof(*dgrams))
		goto bad;
	for (i = 0; i < count; i++)
		if (!dgrams[i].data || !dgrams[i].size || dgrams[i].size > SSIZE_MAX)
			goto bad;
	return 0;
bad:
	errno = EINVAL;
	return -EINVAL;
}

/*
 * Lay out the next chunk of a batch (at most UDO_VSOCK_UDP_BATCH_MAX
 * entries from @d, @left remaining) for sendmmsg/recvmmsg; returns its size.
 * An entry's addr is its destination or sender; @fallback stands in for a
 * NULL one (sends: the batch's destination; receives: NULL).
 */
static unsigned int p_chunk(struct mmsghdr *mm, struct iovec *iov,
                            struct udo_vsock_udp_dgram *d, size_t left,
                            struct sockaddr_vm *fallback)
{
	unsigned int i, n = left > UDO_VSOCK_UDP_BATCH_MAX ?
	                    UDO_VSOCK_UDP_BATCH_MAX : (unsigned int) left;

	for (i = 0; i < n; i++) {
		struct sockaddr_vm *name = d[i].addr ? d[i].addr : fallback;

		iov[i].iov_base = d[i].data;
		iov[i].iov_len = d[i].size;
		mm[i].msg_hdr = (struct msghdr) {
			.msg_name = name,
			.msg_namelen = name ? sizeof(*name) : 0,
			.msg_iov = &iov[i],
			.msg_iovlen = 1,
		};
	}
	return n;
}

ssize_t udo_vsock_udp_send_batch(const int sock_fd, struct udo_vsock_udp_dgram *dgrams,
                                 const size_t count, const struct sockaddr_vm *addr,
                                 const void *vsock_info)
{
	struct mmsghdr mm[UDO_VSOCK_UDP_BATCH_MAX];
	struct iovec iov[UDO_VSOCK_UDP_BATCH_MAX];
	const int flags = p_flags(vsock_info);
	size_t done = 0;

	if (p_check(sock_fd, dgrams, count))
		return -EINVAL;
	while (done < count) {
		struct udo_vsock_udp_dgram *d = dgrams + done;
		/* Only read by sendmmsg: the cast drops the const the API promises. */
		unsigned int i, n = p_chunk(mm, iov, d, count - done, (struct sockaddr_vm *) addr);
		int ret;

		ret = sendmmsg(sock_fd, mm, n, flags);
		if (ret < 0)
			return done ? (ssize_t) done : -errno;
		for (i = 0; i < (unsigned int) ret; i++)
			d[i].len = mm[i].msg_len;
		done += (unsigned int) ret;
		if ((unsigned int) ret < n)
			break;
	}
	return (ssize_t) done;
}

ssize_t udo_vsock_udp_recv_batch(const int sock_fd, struct udo_vsock_udp_dgram *dgrams,
                                 const size_t count, const void *vsock_info)
{
	struct mmsghdr mm[UDO_VSOCK_UDP_BATCH_MAX];
	struct iovec iov[UDO_VSOCK_UDP_BATCH_MAX];
	int flags = p_flags(vsock_info);
	size_t done = 0;

	if (p_check(sock_fd, dgrams, count))
		return -EINVAL;
	while (done < count) {
		struct udo_vsock_udp_dgram *d = dgrams + done;
		unsigned int i, n = p_chunk(mm, iov, d, count - done, NULL);
		int ret;

		ret = recvmmsg(sock_fd, mm, n, flags, NULL);
		if (ret < 0) {
			/* A later chunk finding the queue empty ends the batch. */
			if (done)
				return (ssize_t) done;
			return -errno;
		}
		for (i = 0; i < (unsigned int) ret; i++) {
			d[i].len = mm[i].msg_len;
			d[i].flags = mm[i].msg_hdr.msg_flags;
		}
		done += (unsigned int) ret;
		if ((unsigned int) ret < n)
			break;
		/* MSG_WAITFORONE: the wait is over once one datagram came. */
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
	}
	return (ssize_t) done;
}
