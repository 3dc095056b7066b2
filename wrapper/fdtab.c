/* SPDX-License-Identifier: MIT */
/*
 * The fd table: which fds are emulated vsock sockets (or /dev/vsock handles),
 * and their state.
 *
 * Two levels of 1024 pointers, so a process pays for the fds it uses, not for
 * RLIMIT_NOFILE.  Entries are published with atomics: a call on an fd we do not
 * own costs two loads and no lock.  Every change happens under one mutex, which
 * is never held across a call that can block.
 *
 * An fd closed behind our back (syscall(SYS_close), fclose of an fdopen'ed
 * socket, ...) and reused must not be taken for ours: each hit is checked
 * against the (st_dev, st_ino) recorded at registration.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>
#include <unistd.h>

#include "vsw.h"

#define P_CHUNK_BITS 10
#define P_CHUNK (1u << P_CHUNK_BITS)
#define P_CHUNKS 1024u
#define P_MAX_FD (P_CHUNK * P_CHUNKS)

static struct vsw_obj **p_table[P_CHUNKS];
static pthread_mutex_t p_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The auto-bind counter, in a MAP_SHARED page so forked children share it the
 * way the processes of a kernel share its port counter.  Unrelated processes of
 * one world each count from 1024 and skip the ports already bound. */
static uint64_t p_port_fallback;
static uint64_t *p_port_counter = &p_port_fallback;

void vsw_lock(void)
{
	pthread_mutex_lock(&p_mutex);
}

void vsw_unlock(void)
{
	pthread_mutex_unlock(&p_mutex);
}

/* fork() while another thread holds the lock must not leave the child with a
 * lock nobody will release: take it around fork. */
static void p_prepare(void)
{
	pthread_mutex_lock(&p_mutex);
}

static void p_release(void)
{
	pthread_mutex_unlock(&p_mutex);
}

/* The process whose memory holds this table. A vfork()ed child (Python's
 * subprocess, posix_spawn) runs in its parent's memory until it execs: its
 * close()/dup2() calls must not edit the parent's table. */
static pid_t p_owner;

static void p_child(void)
{
	p_owner = (pid_t)syscall(SYS_getpid);
	pthread_mutex_unlock(&p_mutex);
}

/*
 * A pid that is not the owner's is a vfork() child only if it shares the
 * owner's memory: a child of _Fork() or of clone() without CLONE_VM runs no
 * atfork handler, and adopts the table (its copy) here instead.
 */
bool vsw_vfork_child(void)
{
	pid_t pid = (pid_t)syscall(SYS_getpid);
	int saved = errno;
	long cmp;

	if (pid == p_owner)
		return false;
	cmp = syscall(SYS_kcmp, pid, p_owner, KCMP_VM, 0, 0);
	if (cmp < 0 && errno != ESRCH) {
		/* No kcmp here (ENOSYS, EPERM): leave the table alone, right for vfork. */
		errno = saved;
		return true;
	}
	errno = saved;
	if (cmp == 0)
		return true;	/* the owner's memory: a vfork() child */
	p_owner = pid;		/* memory of its own (or the owner is gone): adopt */
	return false;
}

void vsw_fdtab_init(void);
void vsw_fdtab_init(void)
{
	void *page = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (page != MAP_FAILED)
		p_port_counter = page;
	p_owner = (pid_t)syscall(SYS_getpid);
	pthread_atfork(p_prepare, p_release, p_child);
}

uint32_t vsw_next_port(void)
{
	uint64_t n = __atomic_fetch_add(p_port_counter, 1, __ATOMIC_RELAXED);

	/* 1024 .. 4294967294, then around again (4294967295 is VMADDR_PORT_ANY). */
	return VSW_FIRST_EPHEMERAL + (uint32_t)(n % (VMADDR_PORT_ANY - VSW_FIRST_EPHEMERAL));
}

static struct vsw_obj *p_load(int fd)
{
	struct vsw_obj **chunk;

	if (fd < 0 || (unsigned int)fd >= P_MAX_FD)
		return NULL;
	chunk = __atomic_load_n(&p_table[(unsigned int)fd >> P_CHUNK_BITS], __ATOMIC_ACQUIRE);
	if (!chunk)
		return NULL;
	return __atomic_load_n(&chunk[(unsigned int)fd & (P_CHUNK - 1)], __ATOMIC_ACQUIRE);
}

/* Under the lock; the chunk is allocated on demand.  false: out of memory/range. */
static bool p_store(int fd, struct vsw_obj *o)
{
	unsigned int hi, lo;
	struct vsw_obj **chunk;

	if (fd < 0 || (unsigned int)fd >= P_MAX_FD)
		return o == NULL;
	hi = (unsigned int)fd >> P_CHUNK_BITS;
	lo = (unsigned int)fd & (P_CHUNK - 1);
	chunk = p_table[hi];
	if (!chunk) {
		if (!o)
			return true;
		chunk = calloc(P_CHUNK, sizeof(*chunk));
		if (!chunk)
			return false;
		__atomic_store_n(&p_table[hi], chunk, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&chunk[lo], o, __ATOMIC_RELEASE);
	return true;
}

struct vsw_obj *vsw_find(int fd)
{
	return p_load(fd);
}

static void p_put(struct vsw_obj *o)
{
	if (o && --o->refs == 0)
		free(o);
}

void vsw_forget(int fd)
{
	struct vsw_obj *o = p_load(fd);

	if (o) {
		p_store(fd, NULL);
		p_put(o);
	}
}

void vsw_forget_range(unsigned int lo, unsigned int hi)
{
	unsigned int c;

	/* Walk the chunks that exist only: close_range(3, ~0U) is common. */
	for (c = lo >> P_CHUNK_BITS; c < P_CHUNKS && c <= (hi >> P_CHUNK_BITS); c++) {
		unsigned int i, first, last;

		if (!p_table[c])
			continue;
		first = c == (lo >> P_CHUNK_BITS) ? (lo & (P_CHUNK - 1)) : 0;
		last = c == (hi >> P_CHUNK_BITS) ? (hi & (P_CHUNK - 1)) : P_CHUNK - 1;
		for (i = first; i <= last; i++)
			if (p_table[c][i])
				vsw_forget((int)((c << P_CHUNK_BITS) | i));
	}
}

int vsw_track(int fd, enum vsw_kind kind)
{
	struct vsw_obj *o = calloc(1, sizeof(*o));
	struct stat st;

	if (!o) {
		errno = ENOMEM;
		return -1;
	}
	if (fstat(fd, &st) == 0) {
		o->dev = st.st_dev;
		o->ino = st.st_ino;
	}
	o->refs = 1;
	o->kind = kind;
	o->port = VMADDR_PORT_ANY;
	o->bound_cid = VMADDR_CID_ANY;
	vsw_lock();
	vsw_forget(fd);		/* a stale entry, if the old fd went behind our back */
	if (!p_store(fd, o)) {
		vsw_unlock();
		free(o);
		errno = (unsigned int)fd >= P_MAX_FD ? EMFILE : ENOMEM;
		return -1;
	}
	vsw_unlock();
	return 0;
}

int vsw_share(int newfd, int oldfd)
{
	struct vsw_obj *o = p_load(oldfd);

	if (newfd == oldfd)
		return 0;
	vsw_forget(newfd);
	if (!o)
		return 0;
	if (!p_store(newfd, o))
		return -1;
	o->refs++;
	return 0;
}

bool vsw_same_file_locked(int fd, struct vsw_obj *o)
{
	struct stat st;
	int saved = errno, rc = fstat(fd, &st);

	errno = saved;
	if (rc == 0 && st.st_ino == o->ino && st.st_dev == o->dev)
		return true;
	vsw_forget(fd);
	return false;
}

enum vsw_kind vsw_owned(int fd)
{
	struct vsw_obj *o;
	enum vsw_kind kind;

	if (!p_load(fd))
		return VSW_NONE;
	vsw_lock();
	o = p_load(fd);
	kind = o && vsw_same_file_locked(fd, o) ? o->kind : VSW_NONE;
	vsw_unlock();
	return kind;
}
