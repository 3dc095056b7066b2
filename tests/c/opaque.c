/* Must NOT compile: struct udo_vsock_udp is opaque to consumers. */
#include <cando/vsock-udp.h>

int size_of_instance(void);
int size_of_instance(void)
{
	return (int) sizeof(struct udo_vsock_udp);
}
