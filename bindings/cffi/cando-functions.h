/*
 * Every exported function of libcando, as the binding sees it. Plain C on
 * purpose: cffi reads it as part of the cdef, and the extension's prelude
 * includes it after <cando/vsock-udp.h>, where a prototype that no longer
 * matches the header is a "conflicting types" error.
 */

struct udo_vsock_udp *udo_vsock_udp_server_create(struct udo_vsock_udp *vsock,
                                                  const void *vsock_info);
int udo_vsock_udp_server_accept(struct udo_vsock_udp *vsock, const struct sockaddr_vm *addr);
ssize_t udo_vsock_udp_server_recv_data(struct udo_vsock_udp *vsock, void *data, const size_t size,
                                       struct sockaddr_vm *addr, const void *sock_info);
struct udo_vsock_udp *udo_vsock_udp_client_create(struct udo_vsock_udp *vsock,
                                                  const void *vsock_info);
int udo_vsock_udp_client_connect(struct udo_vsock_udp *vsock);
ssize_t udo_vsock_udp_client_send_data(struct udo_vsock_udp *vsock, const void *data,
                                       const size_t size, const void *vsock_info);
int udo_vsock_udp_get_fd(struct udo_vsock_udp *vsock);
unsigned int udo_vsock_udp_get_vcid(struct udo_vsock_udp *vsock);
int udo_vsock_udp_get_port(struct udo_vsock_udp *vsock);
void udo_vsock_udp_destroy(struct udo_vsock_udp *vsock);
int udo_vsock_udp_get_sizeof(void);
unsigned int udo_vsock_udp_get_local_vcid(void);
ssize_t udo_vsock_udp_recv_data(const int sock_fd, void *data, const size_t size,
                                struct sockaddr_vm *addr, const void *vsock_info);
ssize_t udo_vsock_udp_send_data(const int sock_fd, const void *data, const size_t size,
                                const struct sockaddr_vm *addr, const void *vsock_info);

void udo_log_set_level(enum udo_log_level_type level);
void udo_log_set_write_fd(int fd);
void udo_log_remove_colors(void);
void udo_log_reset_colors(void);
const char *udo_log_get_error(const void *context);
unsigned int udo_log_get_error_code(const void *context);
void udo_log_set_error_struct(void *context, unsigned int code, const char *format, ...);
void udo_log_time(enum udo_log_level_type type, const char *format, ...);
void udo_log_notime(enum udo_log_level_type type, const char *format, ...);
