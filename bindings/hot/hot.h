/*
 * cando._hot: what cando's Python layer does per datagram, in C.
 *
 * Through cffi every Python method is a frame around its C call, and that
 * frame costs more than a stdlib socket method in all (benchmarks/README.md).
 * So the sockets' send/recv/recv_into/recvfrom are C methods of their base
 * type (core.c), and the batch calls lay out and read their arrays in C
 * (batch.c). Arguments are checked and errors raised in Python: these files
 * take the common call and hand everything else back (the errno -> exception
 * map stays in one place, cando/errors.py).
 */
#ifndef CANDO_HOT_H
#define CANDO_HOT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cando/vsock-udp.h>

#define HOT_VECTORCALL(f) ((PyCFunction) (void (*)(void)) (f))

extern PyTypeObject hot_core_type;
extern PyTypeObject hot_batch_type;
extern PyObject *hot_zero; /* the int 0: flags/nbytes at their default, by identity */

/* Once, before the types are used: what core.c looks up by name. */
int hot_core_init(void);

PyObject *hot_send_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/*
 * Borrow obj's memory for one call (0), or -1 with no exception set when it
 * is no non-empty contiguous buffer (writable, with PyBUF_WRITABLE): the
 * caller's Python path then says why. A cando.Buffer lends its view.
 */
int hot_borrow(PyObject *obj, Py_buffer *view, int flags);

/* (first, second), stealing both references; NULL if either is NULL. */
PyObject *hot_pair(PyObject *first, PyObject *second);

/* A (cid, port) tuple of plain ints (u32) into addr's cid and port; 0 if it is none. */
int hot_address(PyObject *obj, struct sockaddr_vm *addr);

/* A sender's (cid, port), as socket reports an AF_VSOCK address. */
PyObject *hot_sender(const struct sockaddr_vm *addr);

#endif
