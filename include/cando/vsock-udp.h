/* SPDX-License-Identifier: MIT */
#ifndef CANDO_VSOCK_UDP_H
#define CANDO_VSOCK_UDP_H

/*
 * vsock-udp: AF_VSOCK datagram sockets, the channel between a virtual
 * machine and its host. See docs/ and vsock-udp.rst for the full reference.
 *
 * I/O functions return the number of bytes on success and a negative errno
 * value on failure (-EINVAL for a bad argument); errno is set as well.
 * Where an instance exists, the failure is also recorded in it and can be
 * read with udo_log_get_error() / udo_log_get_error_code().
 */

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

#include <cando/macros.h>
#include <cando/log.h>

/*
 * Opaque instance. Allocate it with the library (pass NULL to a create
 * function) or yourself: udo_vsock_udp_get_sizeof() bytes, aligned as
 * malloc(3) aligns (a plain char array is not enough).
 */
struct udo_vsock_udp;

/* How to create a server: the address it binds. */
struct udo_vsock_udp_server_create_info {
	unsigned int vcid; /* VMADDR_CID_ANY or the local CID */
	int          port; /* -1 (VMADDR_PORT_ANY) lets the kernel choose */
};

/* How to create a client: the address it sends to. */
struct udo_vsock_udp_client_create_info {
	unsigned int vcid; /* destination CID */
	int          port; /* destination port */
};

/*
 * Create a datagram socket bound to vsock_info's (vcid, port).
 * @vsock: NULL to have the library allocate the instance, or caller memory
 *         of udo_vsock_udp_get_sizeof() bytes.
 * @vsock_info: a struct udo_vsock_udp_server_create_info.
 * Returns the instance, or NULL with errno set (caller memory is then left
 * with its error recorded and no open fd).
 */
UDO_API struct udo_vsock_udp *
udo_vsock_udp_server_create(struct udo_vsock_udp *vsock, const void *vsock_info);

/*
 * Create a socket bound to the server's address and connected to @addr,
 * filtering for @addr's datagrams. No Linux AF_VSOCK transport lets two
 * sockets bind one address, so on Linux this fails with EADDRINUSE.
 * Returns the new fd, or -1 with errno set.
 */
UDO_API int
udo_vsock_udp_server_accept(struct udo_vsock_udp *vsock, const struct sockaddr_vm *addr);

/*
 * Receive one datagram on the server's socket.
 * @addr: if not NULL, receives the sender's address.
 * @sock_info: NULL, or a pointer to an int of recvfrom(2) MSG_* flags.
 * Returns bytes received, or a negative errno value.
 */
UDO_API ssize_t
udo_vsock_udp_server_recv_data(struct udo_vsock_udp *vsock, void *data, const size_t size,
                               struct sockaddr_vm *addr, const void *sock_info);

/*
 * Create a datagram socket that sends to vsock_info's (vcid, port). It is
 * not bound: the kernel binds it on the first send.
 * Returns the instance, or NULL with errno set.
 */
UDO_API struct udo_vsock_udp *
udo_vsock_udp_client_create(struct udo_vsock_udp *vsock, const void *vsock_info);

/*
 * connect(2) the client's socket to its destination, so that it can also
 * be used without an address. Returns 0, or -1 with errno set.
 */
UDO_API int
udo_vsock_udp_client_connect(struct udo_vsock_udp *vsock);

/*
 * Send one datagram to the client's destination.
 * @vsock_info: NULL, or a pointer to an int of sendto(2) MSG_* flags.
 * Returns bytes sent, or a negative errno value.
 */
UDO_API ssize_t
udo_vsock_udp_client_send_data(struct udo_vsock_udp *vsock, const void *data,
                               const size_t size, const void *vsock_info);

/* The instance's socket fd, or -1 for NULL. */
UDO_API int
udo_vsock_udp_get_fd(struct udo_vsock_udp *vsock);

/* The instance's CID (as given at create), or UINT32_MAX for NULL. */
UDO_API unsigned int
udo_vsock_udp_get_vcid(struct udo_vsock_udp *vsock);

/* The instance's port (the kernel's choice after binding -1), or -1 for NULL. */
UDO_API int
udo_vsock_udp_get_port(struct udo_vsock_udp *vsock);

/*
 * Close the instance's fd and free it if the library allocated it; caller
 * memory is zeroed with fd = -1 instead. NULL is a no-op.
 */
UDO_API void
udo_vsock_udp_destroy(struct udo_vsock_udp *vsock);

/* sizeof(struct udo_vsock_udp), for callers that allocate it themselves. */
UDO_API int
udo_vsock_udp_get_sizeof(void);

/*
 * The local CID, from IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock.
 * Returns UINT32_MAX with errno set on failure, and with errno EADDRNOTAVAIL
 * where no transport owns a CID (the kernel answers VMADDR_CID_ANY).
 */
UDO_API unsigned int
udo_vsock_udp_get_local_vcid(void);

/*
 * Receive one datagram on @sock_fd (one recvfrom(2)).
 * @addr: if not NULL, receives the sender's address.
 * @vsock_info: NULL, or a pointer to an int of MSG_* flags.
 * Returns bytes received, or a negative errno value.
 */
UDO_API ssize_t
udo_vsock_udp_recv_data(const int sock_fd, void *data, const size_t size,
                        struct sockaddr_vm *addr, const void *vsock_info);

/*
 * Send one datagram on @sock_fd (one sendto(2)).
 * @addr: the destination, or NULL on a connected socket.
 * @vsock_info: NULL, or a pointer to an int of MSG_* flags.
 * Returns bytes sent, or a negative errno value.
 */
UDO_API ssize_t
udo_vsock_udp_send_data(const int sock_fd, const void *data, const size_t size,
                        const struct sockaddr_vm *addr, const void *vsock_info);

#endif /* CANDO_VSOCK_UDP_H */
