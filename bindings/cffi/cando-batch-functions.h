/*
 * The batch extension's functions, as the binding sees them. Plain C: the
 * prelude includes it after <cando/vsock-udp-batch.h>, so drift is a
 * "conflicting types" error.
 */

ssize_t udo_vsock_udp_send_batch(const int sock_fd, struct udo_vsock_udp_dgram *dgrams,
                                 const size_t count, const struct sockaddr_vm *addr,
                                 const void *vsock_info);
ssize_t udo_vsock_udp_recv_batch(const int sock_fd, struct udo_vsock_udp_dgram *dgrams,
                                 const size_t count, const void *vsock_info);
