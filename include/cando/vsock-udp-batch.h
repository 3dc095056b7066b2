/* SPDX-License-Identifier: MIT */
#ifndef CANDO_VSOCK_UDP_BATCH_H
#define CANDO_VSOCK_UDP_BATCH_H

/*
 * vsock-udp batch extension: many datagrams per system call, over
 * sendmmsg(2) / recvmmsg(2). Not part of the documented vsock-udp API
 * (<cando/vsock-udp.h>); same conventions: the count of datagrams on
 * success, a negative errno value on failure (-EINVAL for a bad argument),
 * errno set as well, and flags given through a `const void *vsock_info`
 * that is NULL (flags 0) or points to an int of MSG_* flags.
 *
 * Like sendmmsg/recvmmsg, a failure is reported only when no datagram at
 * all was transferred; otherwise the call returns how many were. The error
 * is not kept: a retry from the first datagram not transferred meets it
 * again if its cause persists.
 */

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

#include <cando/macros.h>

/* One datagram of a batch. */
struct udo_vsock_udp_dgram {
	void               *data;  /* send: the payload; recv: the buffer */
	size_t              size;  /* send: payload length; recv: buffer capacity */
	struct sockaddr_vm *addr;  /* send: destination, or NULL for the batch's;
	                            * recv: receives the sender, or NULL */
	size_t              len;   /* out: bytes sent or received */
	int                 flags; /* out (recv): MSG_TRUNC if the datagram was longer */
};

/*
 * Send @count datagrams on @sock_fd, with as few sendmmsg(2) calls as the
 * kernel allows (one for up to UDO_VSOCK_UDP_BATCH_MAX datagrams).
 * @dgrams: each entry needs data != NULL and 0 < size <= SSIZE_MAX.
 * @addr: destination of the entries whose addr is NULL; NULL on a connected socket.
 * @vsock_info: NULL, or a pointer to an int of sendmmsg(2) MSG_* flags.
 * Returns the number of datagrams sent (>= 1), or a negative errno value.
 */
UDO_API ssize_t
udo_vsock_udp_send_batch(const int sock_fd, struct udo_vsock_udp_dgram *dgrams,
                         const size_t count, const struct sockaddr_vm *addr,
                         const void *vsock_info);

/*
 * Receive up to @count datagrams on @sock_fd (recvmmsg(2)), filling each
 * entry's len, flags and, if addr is not NULL, the sender's address.
 * @vsock_info: NULL, or a pointer to an int of recvmmsg(2) MSG_* flags.
 *   As with recvmmsg, a blocking call waits for all @count datagrams unless
 *   MSG_WAITFORONE is given: then it waits for the first and takes what is
 *   queued (MSG_DONTWAIT: none waits).
 * Returns the number of datagrams received (>= 1), or a negative errno value
 * (-EAGAIN when nothing is queued and the call may not wait).
 */
UDO_API ssize_t
udo_vsock_udp_recv_batch(const int sock_fd, struct udo_vsock_udp_dgram *dgrams,
                         const size_t count, const void *vsock_info);

/* Datagrams handed to one sendmmsg/recvmmsg call; larger batches take several. */
#define UDO_VSOCK_UDP_BATCH_MAX 64

#endif /* CANDO_VSOCK_UDP_BATCH_H */
