/*
 * The prototypes of vsock-udp.rst, copied verbatim, after the installed
 * header: any difference in a return or parameter type is a "conflicting
 * types" error. Compiled (not run) by tests/test_abi.py.
 */
#include <cando/vsock-udp.h>

struct udo_vsock_udp *udo_vsock_udp_server_create(struct udo_vsock_udp *vsock, const void *vsock_info);
int udo_vsock_udp_server_accept(struct udo_vsock_udp *vsock, const struct sockaddr_vm *addr);
ssize_t udo_vsock_udp_server_recv_data(struct udo_vsock_udp *vsock, void *data, const size_t size, struct sockaddr_vm *addr, const void *sock_info);
struct udo_vsock_udp *udo_vsock_udp_client_create(struct udo_vsock_udp *vsock, const void *vsock_info);
int udo_vsock_udp_client_connect(struct udo_vsock_udp *vsock);
ssize_t udo_vsock_udp_client_send_data(struct udo_vsock_udp *vsock, const void *data, const size_t size, const void *vsock_info);
int udo_vsock_udp_get_fd(struct udo_vsock_udp *vsock);
unsigned int udo_vsock_udp_get_vcid(struct udo_vsock_udp *vsock);
int udo_vsock_udp_get_port(struct udo_vsock_udp *vsock);
void udo_vsock_udp_destroy(struct udo_vsock_udp *vsock);
int udo_vsock_udp_get_sizeof(void);
unsigned int udo_vsock_udp_get_local_vcid(void);
ssize_t udo_vsock_udp_recv_data(const int sock_fd, void *data, const size_t size, struct sockaddr_vm *addr, const void *vsock_info);
ssize_t udo_vsock_udp_send_data(const int sock_fd, const void *data, const size_t size, const struct sockaddr_vm *addr, const void *vsock_info);

/* The public create-info structs, member for member. */
_Static_assert(sizeof(struct udo_vsock_udp_server_create_info) == sizeof(unsigned int) + sizeof(int),
               "server_create_info is { unsigned int vcid; int port; }");
_Static_assert(sizeof(struct udo_vsock_udp_client_create_info) == sizeof(unsigned int) + sizeof(int),
               "client_create_info is { unsigned int vcid; int port; }");
_Static_assert(sizeof(struct udo_log_error_struct) == sizeof(unsigned int) + 512,
               "udo_log_error_struct is { unsigned int code; char buffer[512]; }");
_Static_assert(UDO_LOG_NONE == 0 && UDO_LOG_SUCCESS == 1 && UDO_LOG_ERROR == 2 &&
               UDO_LOG_INFO == 4 && UDO_LOG_WARNING == 8 && UDO_LOG_RESET == 0x10 &&
               UDO_LOG_ALL == 0xFFFFFFFF, "log levels");
_Static_assert(UDO_LOG_ERR_UNCOMMON == 0x1000 && UDO_LOG_ERR_INCORRECT_DATA == 0x1001,
               "error types");

static void use_members(void)
{
	struct udo_vsock_udp_server_create_info s = { .vcid = 1u, .port = -1 };
	struct udo_vsock_udp_client_create_info c = { .vcid = s.vcid, .port = s.port };
	struct udo_log_error_struct e = { .code = 0u, .buffer = "" };
	unsigned int *vcid = &c.vcid;
	int *port = &c.port;
	unsigned int *code = &e.code;
	char (*buffer)[512] = &e.buffer;

	(void) vcid;
	(void) port;
	(void) code;
	(void) buffer;
}

/* Every log function and macro contract.md lists. */
void use_log(void);
void use_log(void)
{
	struct udo_log_error_struct e;
	void (*set_level)(enum udo_log_level_type) = udo_log_set_level;
	void (*set_fd)(int) = udo_log_set_write_fd;
	void (*rm)(void) = udo_log_remove_colors;
	void (*rs)(void) = udo_log_reset_colors;
	const char *(*get)(const void *) = udo_log_get_error;
	unsigned int (*get_code)(const void *) = udo_log_get_error_code;
	void (*set_err)(void *, unsigned int, const char *, ...) = udo_log_set_error_struct;
	void (*ltime)(enum udo_log_level_type, const char *, ...) = udo_log_time;
	void (*lnotime)(enum udo_log_level_type, const char *, ...) = udo_log_notime;

	(void) set_level; (void) set_fd; (void) rm; (void) rs; (void) get; (void) get_code;
	(void) set_err; (void) ltime; (void) lnotime;
	use_members();
	udo_log_error("%d", 1);
	udo_log_info("%d", 1);
	udo_log_success("%d", 1);
	udo_log_warning("%d", 1);
	udo_log_print("%d", 1);
	udo_log_set_error(&e, UDO_LOG_ERR_UNCOMMON, "%s", "x");
}
