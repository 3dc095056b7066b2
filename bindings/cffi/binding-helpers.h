/*
 * C the binding keeps for itself, compiled into cando._cando and not part of
 * libcando: loops that would cost Python a bytecode round per datagram.
 * Plain C: cffi reads these prototypes as part of the cdef, and prelude.c
 * defines them.
 */

ssize_t cando_send_joined(int sock_fd, struct udo_vsock_udp_dgram *dgrams, const char *joined,
                          const size_t *sizes, size_t count, const struct sockaddr_vm *addr,
                          const void *vsock_info);

