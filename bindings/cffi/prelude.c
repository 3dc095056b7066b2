/* The C prelude of cando._cando: the real header, then the binding's view of it. */
#include <sys/ioctl.h> /* _IO() behind IOCTL_VM_SOCKETS_GET_LOCAL_CID */
#include <cando/vsock-udp.h>
#include "cando-functions.h"
#include <cando/vsock-udp-batch.h>
#include "cando-batch-functions.h"

