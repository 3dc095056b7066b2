/*
 * LD_PRELOAD shim for tests: fakes what open("/dev/vsock") and its
 * IOCTL_VM_SOCKETS_GET_LOCAL_CID answer, so udo_vsock_udp_get_local_vcid()'s
 * failure paths can be driven on any machine.
 *
 * CANDO_DEVVSOCK_SHIM (read at each call):
 *   errno:N  open("/dev/vsock") fails with errno N
 *   notty    open gives a real fd of /dev/null (the ioctl then fails ENOTTY)
 *   cid:N    open gives a real fd of /dev/null; the CID ioctl on it answers N
 * Anything else, or unset: everything goes straight to libc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

static int fake_fd = -1;

static int shim_open(const char *path, int flags, int *handled)
{
	const char *mode = getenv("CANDO_DEVVSOCK_SHIM");
	int (*real_open)(const char *, int, ...);

	*handled = 0;
	if (!mode || !path || strcmp(path, "/dev/vsock"))
		return -1;
	if (!strncmp(mode, "errno:", 6)) {
		*handled = 1;
		errno = atoi(mode + 6);
		return -1;
	}
	if (strcmp(mode, "notty") && strncmp(mode, "cid:", 4))
		return -1;
	*handled = 1;
	real_open = (int (*)(const char *, int, ...)) dlsym(RTLD_NEXT, "open");
	fake_fd = real_open("/dev/null", flags);
	return fake_fd;
}

int open(const char *path, int flags, ...)
{
	int (*real)(const char *, int, ...) =
		(int (*)(const char *, int, ...)) dlsym(RTLD_NEXT, "open");
	mode_t mode = 0;
	int handled, fd;
	va_list ap;

	fd = shim_open(path, flags, &handled);
	if (handled)
		return fd;
	va_start(ap, flags);
	if (flags & (O_CREAT | O_TMPFILE))
		mode = va_arg(ap, mode_t);
	va_end(ap);
	return real(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	int (*real)(const char *, int, ...) =
		(int (*)(const char *, int, ...)) dlsym(RTLD_NEXT, "open64");
	mode_t mode = 0;
	int handled, fd;
	va_list ap;

	fd = shim_open(path, flags, &handled);
	if (handled)
		return fd;
	va_start(ap, flags);
	if (flags & (O_CREAT | O_TMPFILE))
		mode = va_arg(ap, mode_t);
	va_end(ap);
	return real(path, flags, mode);
}

int ioctl(int fd, unsigned long request, ...)
{
	int (*real)(int, unsigned long, ...) =
		(int (*)(int, unsigned long, ...)) dlsym(RTLD_NEXT, "ioctl");
	const char *mode = getenv("CANDO_DEVVSOCK_SHIM");
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd >= 0 && fd == fake_fd && mode && !strncmp(mode, "cid:", 4) &&
	    request == IOCTL_VM_SOCKETS_GET_LOCAL_CID) {
		*(unsigned int *) arg = (unsigned int) strtoul(mode + 4, NULL, 0);
		return 0;
	}
	return real(fd, request, arg);
}
