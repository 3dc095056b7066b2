/* SPDX-License-Identifier: MIT */
/*
 * File-descriptor bookkeeping (close, dup*, fcntl(F_DUPFD*), close_range,
 * closefrom) and /dev/vsock.
 *
 * dup'd fds share one state object, as they share one socket.  A dup of an
 * emulated fd runs under the table lock, so no other thread can see the new fd
 * untracked.  State does not survive exec: the fds stay open as plain AF_UNIX
 * sockets that the new program's wrapper does not know.
 */
/* We define open and open64, fcntl and fcntl64 ourselves: no redirection. */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vsw.h"

VSW_API int close(int fd)
{
	int rc;

	vsw_init();
	if (!vsw_find(fd) || vsw_vfork_child())
		return vsw_real.close(fd);
	/* Forget first: until the real close the number cannot be handed out again. */
	vsw_lock();
	vsw_forget(fd);
	vsw_unlock();
	rc = vsw_real.close(fd);
	vsw_trace("close", fd, rc, NULL);
	return rc;
}

static int p_close_range(unsigned int first, unsigned int last, int flags)
{
	return vsw_real.close_range ? vsw_real.close_range(first, last, flags)
				    : (int)syscall(SYS_close_range, first, last, flags);
}

/*
 * The table forgets the range and the real call closes it under one lock
 * hold, as close() forgets before it closes: else another thread's socket()
 * could get a number freed here, register it, and lose it to the forget.
 * Closing a socket never blocks here (AF_UNIX has no linger).
 */
VSW_API int close_range(unsigned int first, unsigned int last, int flags)
{
	int rc;

	vsw_init();
	if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) ||
	    (flags & CLOSE_RANGE_CLOEXEC) || vsw_vfork_child())
		return p_close_range(first, last, flags);	/* nothing to forget */
	vsw_lock();
	rc = p_close_range(first, last, flags);
	if (rc == 0)
		vsw_forget_range(first, last);
	vsw_unlock();
	return rc;
}

static void p_closefrom(int lowfd)
{
	if (vsw_real.closefrom)
		vsw_real.closefrom(lowfd);
	else
		(void)syscall(SYS_close_range, (unsigned int)lowfd, ~0U, 0);
}

VSW_API void closefrom(int lowfd)
{
	vsw_init();
	if (lowfd < 0 || vsw_vfork_child()) {
		p_closefrom(lowfd);
		return;
	}
	vsw_lock();
	p_closefrom(lowfd);
	vsw_forget_range((unsigned int)lowfd, ~0U);
	vsw_unlock();
}

enum p_dup_op { P_DUP, P_DUP2, P_DUP3, P_DUPFD, P_DUPFD_CLOEXEC };

static int p_do_dup(enum p_dup_op op, int oldfd, int newfd, int flags)
{
	switch (op) {
	case P_DUP:
		return vsw_real.dup(oldfd);
	case P_DUP2:
		return vsw_real.dup2(oldfd, newfd);
	case P_DUP3:
		return vsw_real.dup3(oldfd, newfd, flags);
	case P_DUPFD:
		return vsw_real.fcntl(oldfd, F_DUPFD, newfd);
	case P_DUPFD_CLOEXEC:
		return vsw_real.fcntl(oldfd, F_DUPFD_CLOEXEC, newfd);
	}
	errno = EINVAL;
	return -1;
}

static const char *const p_dup_names[] = { "dup", "dup2", "dup3", "F_DUPFD", "F_DUPFD_CLOEXEC" };

/* Any dup: the new fd refers to what oldfd refers to, and dup2/dup3 onto an
 * emulated fd closes it, so the target's entry goes either way. */
static int p_dup(enum p_dup_op op, int oldfd, int newfd, int flags)
{
	bool ours;
	int fd;

	vsw_init();
	if (vsw_vfork_child())
		return p_do_dup(op, oldfd, newfd, flags);
	ours = vsw_owned(oldfd) != VSW_NONE;
	if (!ours) {
		fd = p_do_dup(op, oldfd, newfd, flags);
		if (fd >= 0 && vsw_find(fd)) {
			vsw_lock();
			vsw_forget(fd);
			vsw_unlock();
		}
		return fd;
	}
	vsw_lock();
	fd = p_do_dup(op, oldfd, newfd, flags);
	if (fd >= 0 && vsw_share(fd, oldfd) != 0) {
		/* Out of memory for the table: undo rather than leave an untracked twin. */
		if (fd != oldfd)
			vsw_real.close(fd);
		errno = ENOMEM;
		fd = -1;
	}
	vsw_unlock();
	vsw_trace(p_dup_names[op], oldfd, fd, NULL);
	return fd;
}

VSW_API int dup(int oldfd)
{
	return p_dup(P_DUP, oldfd, -1, 0);
}

VSW_API int dup2(int oldfd, int newfd)
{
	return p_dup(P_DUP2, oldfd, newfd, 0);
}

VSW_API int dup3(int oldfd, int newfd, int flags)
{
	return p_dup(P_DUP3, oldfd, newfd, flags);
}

/* fcntl's third argument is an int or a pointer; both travel as a pointer-sized
 * register in the x86-64 and aarch64 ABIs, which is also how glibc reads it. */
static int p_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return p_dup(cmd == F_DUPFD ? P_DUPFD : P_DUPFD_CLOEXEC, fd, (int)(intptr_t)arg, 0);
	return real(fd, cmd, arg);
}

VSW_API int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	vsw_init();
	return p_fcntl(vsw_real.fcntl, fd, cmd, arg);
}

VSW_API int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	vsw_init();
	return p_fcntl(vsw_real.fcntl64, fd, cmd, arg);
}

/* ---- /dev/vsock ---- */

static bool p_is_dev(const char *path)
{
	return path && !strcmp(path, "/dev/vsock");
}

/* A handle that works whether or not the machine has the device: the real one
 * if it opens, else /dev/null; ioctl() answers for it either way. */
static int p_open_dev(int flags, const char *call)
{
	int fd;

	flags &= ~(O_CREAT | O_EXCL | O_TRUNC | O_DIRECTORY);
	fd = vsw_real.open("/dev/vsock", flags);
	if (fd < 0)
		fd = vsw_real.open("/dev/null", flags);
	if (fd >= 0 && vsw_track(fd, VSW_DEV) != 0) {
		int err = errno;

		vsw_real.close(fd);
		errno = err;
		fd = -1;
	}
	vsw_trace(call, fd, fd, ", \"/dev/vsock\"");
	return fd;
}

static mode_t p_mode(int flags, va_list ap)
{
	return __OPEN_NEEDS_MODE(flags) ? (mode_t)va_arg(ap, int) : 0;
}

VSW_API int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = p_mode(flags, ap);
	va_end(ap);
	vsw_init();
	if (p_is_dev(path))
		return p_open_dev(flags, "open");
	return vsw_real.open(path, flags, mode);
}

VSW_API int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = p_mode(flags, ap);
	va_end(ap);
	vsw_init();
	if (p_is_dev(path))
		return p_open_dev(flags, "open64");
	return vsw_real.open64(path, flags, mode);
}

VSW_API int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = p_mode(flags, ap);
	va_end(ap);
	vsw_init();
	/* An absolute path ignores dirfd. */
	if (p_is_dev(path))
		return p_open_dev(flags, "openat");
	return vsw_real.openat(dirfd, path, flags, mode);
}

VSW_API int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = p_mode(flags, ap);
	va_end(ap);
	vsw_init();
	if (p_is_dev(path))
		return p_open_dev(flags, "openat64");
	return vsw_real.openat64(dirfd, path, flags, mode);
}

VSW_API int __open_2(const char *path, int flags)
{
	vsw_init();
	if (p_is_dev(path))
		return p_open_dev(flags, "open");
	return vsw_real.open_2(path, flags);
}

VSW_API int __open64_2(const char *path, int flags)
{
	vsw_init();
	if (p_is_dev(path))
		return p_open_dev(flags, "open64");
	return vsw_real.open64_2(path, flags);
}

VSW_API int __openat_2(int dirfd, const char *path, int flags)
{
	vsw_init();
	if (p_is_dev(path))
		return p_open_dev(flags, "openat");
	return vsw_real.openat_2(dirfd, path, flags);
}

VSW_API int __openat64_2(int dirfd, const char *path, int flags)
{
	vsw_init();
	if (p_is_dev(path))
		return p_open_dev(flags, "openat64");
	return vsw_real.openat64_2(dirfd, path, flags);
}
