/*
 * C the binding keeps for itself, compiled into cando._cando and not part of
 * libcando: loops that would cost Python a bytecode round per datagram.
 * Plain C: cffi reads these prototypes as part of the cdef, and prelude.c
 * defines them.
 */

ssize_t cando_send_joined(int sock_fd, struct udo_vsock_udp_dgram *dgrams, const char *joined,
                          const size_t *sizes, size_t count, const struct sockaddr_vm *addr,
                          const void *vsock_info);

/*
 * The per-datagram calls without the arguments the common case leaves NULL:
 * a cffi call costs about 10 ns per argument, so recv()/recv_into() and
 * Client.send() without flags make these instead of the full calls.
 */
ssize_t cando_recv(int sock_fd, void *data, size_t size);
ssize_t cando_client_send(struct udo_vsock_udp *vsock, const void *data, size_t size);
