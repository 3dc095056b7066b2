/* The C prelude of cando._cando: the real header, then the binding's view of it. */
#include <sys/ioctl.h> /* _IO() behind IOCTL_VM_SOCKETS_GET_LOCAL_CID */
#include <cando/vsock-udp.h>
#include "cando-functions.h"
#include <cando/vsock-udp-batch.h>
#include "cando-batch-functions.h"
#include "binding-helpers.h"

/*
 * send_many() for small datagrams: Python joins them into one bytes object
 * and passes their sizes; the entries are laid out here, not one Python
 * attribute assignment at a time.
 */
ssize_t cando_send_joined(int sock_fd, struct udo_vsock_udp_dgram *dgrams, const char *joined,
                          const size_t *sizes, size_t count, const struct sockaddr_vm *addr,
                          const void *vsock_info)
{
	size_t i;

	for (i = 0; i < count; i++) {
		dgrams[i].data = (void *) joined; /* only read: the batch is sent */
		dgrams[i].size = sizes[i];
		dgrams[i].addr = NULL;
		joined += sizes[i];
	}
	return udo_vsock_udp_send_batch(sock_fd, dgrams, count, addr, vsock_info);
}
