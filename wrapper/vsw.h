/* SPDX-License-Identifier: MIT */
/*
 * vsock_wrapper internals: an LD_PRELOAD AF_VSOCK/SOCK_DGRAM transport carried
 * over AF_UNIX datagram sockets in the abstract namespace.
 *
 * An emulated vsock fd IS an AF_UNIX/SOCK_DGRAM socket, so poll, select, epoll,
 * fcntl, O_NONBLOCK and the SOL_SOCKET options work natively.  What AF_UNIX
 * cannot know (the vsock addresses) lives in a per-socket state object that the
 * fd table points to; dup'd fds share it.
 *
 * Files: init.c (config, libc symbols, debug), fdtab.c (fd table, locking,
 * fork), addr.c (world names, address checks, bind), sock.c (socket-level
 * calls), io.c (send/receive), fd.c (close/dup/fcntl, /dev/vsock).
 */
#ifndef VSW_H
#define VSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <linux/vm_sockets.h>

/* Only the interposed libc functions leave the library. */
#define VSW_API __attribute__((visibility("default")))

/* VMCI's largest datagram payload: 17 pages less the 24-byte VMCI header. */
#define VSW_DEFAULT_MAX_DGRAM 69608u
/* Ports below this need CAP_NET_BIND_SERVICE; auto-bind counts up from it. */
#define VSW_FIRST_EPHEMERAL 1024u
/* VMCI lets a datagram reach the hypervisor (CID 0) on this port only. */
#define VSW_VMCI_PBRPC_PORT 35u

struct vsw_config {
	uint32_t cid;		/* VSOCK_WRAPPER_CID */
	size_t max_dgram;	/* VSOCK_WRAPPER_MAX_DGRAM */
	bool drop;		/* VSOCK_WRAPPER_FULL=drop */
	bool debug;		/* VSOCK_WRAPPER_DEBUG=1 */
	/* "\0vsock_wrapper/<namespace>/": the world's name prefix. */
	char prefix[96];	/* at most 1 + 14 + 71 + 1 = 87 bytes */
	size_t prefix_len;
};

extern struct vsw_config vsw_cfg;

/* The next libc (or whatever follows us in the lookup order). */
struct vsw_real {
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*shutdown)(int, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*read_chk)(int, void *, size_t, size_t);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*open_2)(const char *, int);
	int (*open64_2)(const char *, int);
	int (*openat_2)(int, const char *, int);
	int (*openat64_2)(int, const char *, int);
};

extern struct vsw_real vsw_real;

/* Resolve libc, read the environment, set up fork handling: once, thread-safely. */
void vsw_init(void);

/* One stderr line per emulated call when VSOCK_WRAPPER_DEBUG=1; keeps errno. */
void vsw_trace(const char *call, int fd, long ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- fd table (fdtab.c) ---- */

enum vsw_kind { VSW_NONE = 0, VSW_SOCK = 1, VSW_DEV = 2 };

/* State of one emulated socket or /dev/vsock handle, shared by its dup'd fds. */
struct vsw_obj {
	unsigned int refs;		/* fds in the table pointing here */
	enum vsw_kind kind;
	dev_t dev;			/* identity of the open file, to notice an */
	ino_t ino;			/* fd closed behind our back and reused    */
	bool bound;
	uint32_t bound_cid;		/* as given to bind (ANY stays ANY) */
	uint32_t port;
	bool connected;
	struct sockaddr_vm peer;	/* as given to connect */
};

/* Kind of fd, after checking it still is the file we registered (lock-free miss). */
enum vsw_kind vsw_owned(int fd);
void vsw_lock(void);
void vsw_unlock(void);
/* Under the lock: the object behind fd, or NULL. */
struct vsw_obj *vsw_find(int fd);
/* Register a fresh object for fd (replacing any stale entry); -1/errno on failure. */
int vsw_track(int fd, enum vsw_kind kind);
/* Under the lock: newfd now refers to what oldfd refers to (or to nothing). */
int vsw_share(int newfd, int oldfd);
/* Under the lock: true if fd is still the file o was registered for; else
 * forgets fd (o may be freed) and returns false.  Keeps errno. */
bool vsw_same_file_locked(int fd, struct vsw_obj *o);
/* Under the lock: forget fd. */
void vsw_forget(int fd);
/* Under the lock: forget every fd in [lo, hi]. */
void vsw_forget_range(unsigned int lo, unsigned int hi);
/* True in a vfork()ed child, which shares its parent's memory (and table) until exec. */
bool vsw_vfork_child(void);
/* Next auto-bind candidate: a counter shared with forked children. */
uint32_t vsw_next_port(void);

/* ---- addresses and binding (addr.c) ---- */

/* The AF_UNIX name of world (cid, port) in our namespace; returns its length. */
socklen_t vsw_world_name(struct sockaddr_un *sun, uint32_t cid, uint32_t port);
/* Parse a world name back into a sockaddr_vm (ANY/ANY if it is not one). */
void vsw_name_to_vm(const struct sockaddr_un *sun, socklen_t len, struct sockaddr_vm *vm);
/* The kernel's vsock_addr_cast(): 0, or the errno it gives. */
int vsw_addr_check(const struct sockaddr *addr, socklen_t len);
/* Copy a sockaddr_vm out the way move_addr_to_user() does. */
int vsw_addr_out(const struct sockaddr_vm *vm, struct sockaddr *addr, socklen_t *len);
/* Under the lock: bind obj (fd) to (cid, port); port ANY searches. 0 or -errno. */
int vsw_bind_locked(int fd, struct vsw_obj *o, uint32_t cid, uint32_t port);
/* Under the lock: notice a bind a forked relative made on the shared socket. */
void vsw_sync_locked(int fd, struct vsw_obj *o);
/* Under the lock: bind an unbound socket to a fresh port (connect/send). 0 or -errno. */
int vsw_autobind_locked(int fd, struct vsw_obj *o);

/* ---- I/O (io.c) ---- */

ssize_t vsw_sendmsg(int fd, const struct msghdr *msg, int flags, const char *call);
ssize_t vsw_recvmsg(int fd, struct msghdr *msg, int flags, const char *call);

#endif /* VSW_H */
