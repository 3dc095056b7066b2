/*
 * cando._hot.Core, the base type of cando.VsockSocket: send(), sendto(),
 * recv(), recv_into(), recvfrom() and recvfrom_into() for the common call
 * (positional arguments, no flags). Any other call (flags, nbytes, keywords,
 * anything to check or refuse) goes to the Python method of the same name
 * plus "_checked", and every failed call to the Python _after(): retries,
 * timeouts and errors stay in Python.
 *
 * A Client's or Server's libcando instance lives in memory Core owns
 * (_new_instance); cando.vsock_udp creates and destroys the instance in it.
 */
#include "hot.h" /* Python.h first */

#include <structmember.h>

/* recv()/recvfrom() receive into a bytes object kept per socket up to this
 * size (the largest datagram fits); a larger bufsize takes the Python path. */
#define P_SCRATCH_MAX ((Py_ssize_t) 1 << 17)
/* ... and hand a datagram of at least this size over as it is. */
#define P_KEEP_LONG 8192
#define P_MAX_ARGS 8

enum p_kind { P_FD, P_CLIENT, P_SERVER };

typedef struct {
	PyObject_HEAD
	int fd; /* _fd: -1 once closed */
	int kind; /* enum p_kind */
	int blocking; /* _blocking: no timeout set, so a call may wait (see p_receive) */
	struct udo_vsock_udp *vsock; /* owned; NULL for a plain fd */
	PyObject *scratch; /* bytes recv() receives into; one receive at a time */
} p_core;

static PyObject *p_str_after;
static PyObject *p_str_send, *p_str_sendto, *p_str_recv, *p_str_recv_into, *p_str_recvfrom;
static PyObject *p_str_recvfrom_into;

/* The Python method `name` ("<method>_checked") with the caller's arguments. */
static PyObject *p_checked(p_core *self, PyObject *name, PyObject *const *args, size_t nargsf,
			   PyObject *kwnames)
{
	Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
	Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
	PyObject *stack[P_MAX_ARGS + 1];

	if (total > P_MAX_ARGS) {
		PyErr_Format(PyExc_TypeError, "too many arguments (%zd given)", total);
		return NULL;
	}
	stack[0] = (PyObject *) self;
	memcpy(stack + 1, args, (size_t) total * sizeof(*args));
	return PyObject_VectorcallMethod(name, stack, (size_t) nargs + 1, kwnames);
}

/* True for `fixed` positional arguments, then at most `most` in all, the rest 0. */
static int p_plain(PyObject *const *args, size_t nargsf, PyObject *kwnames, Py_ssize_t fixed,
		   Py_ssize_t most)
{
	Py_ssize_t n = PyVectorcall_NARGS(nargsf);
	Py_ssize_t i;

	if (kwnames || n < fixed || n > most)
		return 0;
	for (i = fixed; i < n; i++)
		if (args[i] != hot_zero)
			return 0;
	return 1;
}

/*
 * After a failed call: 0 to retry (EINTR, or EAGAIN waited out under a
 * timeout), -1 with the exception set. Python's _after() decides; a signal
 * handler runs first, as it would between two bytecodes.
 */
static int p_after(p_core *self, ssize_t rc, int writing, int instance, double *deadline)
{
	PyObject *args[5], *res = NULL;
	int i;

	if (rc == -EINTR && PyErr_CheckSignals() < 0)
		return -1;
	args[0] = (PyObject *) self;
	args[1] = PyLong_FromSsize_t(rc);
	args[2] = PyBool_FromLong(writing);
	args[3] = PyFloat_FromDouble(*deadline);
	args[4] = PyBool_FromLong(instance); /* the instance's error record names the call */
	if (args[1] && args[3])
		res = PyObject_VectorcallMethod(p_str_after, args, 5, NULL);
	for (i = 1; i < 5; i++)
		Py_XDECREF(args[i]);
	if (!res)
		return -1;
	*deadline = PyFloat_AsDouble(res);
	Py_DECREF(res);
	return *deadline == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* MSG_DONTWAIT, for the first try of every call: see p_receive. */
static const int p_dontwait = MSG_DONTWAIT;

static ssize_t p_recv_once(p_core *self, int fd, int server, void *buf, size_t size,
			   struct sockaddr_vm *addr, const int *flags)
{
	if (server)
		return udo_vsock_udp_server_recv_data(self->vsock, buf, size, addr, flags);
	return udo_vsock_udp_recv_data(fd, buf, size, addr, flags);
}

/*
 * One receive into `buf`, retried as _after() says; the sender into `addr` if
 * given. Each try starts with the GIL held and MSG_DONTWAIT: a queued
 * datagram is a copy shorter than handing the GIL over and taking it back.
 * Only when that finds nothing does a blocking socket wait, letting other
 * threads run meanwhile; a socket with a timeout goes to _after(), which
 * polls (without the GIL) and has it tried again.
 */
static ssize_t p_receive(p_core *self, void *buf, size_t size, struct sockaddr_vm *addr)
{
	int server = addr && self->kind == P_SERVER && self->fd >= 0; /* created, not closed */
	double deadline = 0.0;
	ssize_t rc;
	int fd;

	for (;;) {
		rc = p_recv_once(self, self->fd, server, buf, size, addr, &p_dontwait);
		if (rc == -EAGAIN && self->blocking) {
			fd = self->fd;
			Py_BEGIN_ALLOW_THREADS
			rc = p_recv_once(self, fd, server, buf, size, addr, NULL);
			Py_END_ALLOW_THREADS
		}
		if (rc >= 0 || p_after(self, rc, 0, server, &deadline) < 0)
			return rc;
	}
}

/*
 * A datagram of at most `size` bytes, received into the socket's scratch: a
 * bytes object taken for the call (a second thread receiving meanwhile
 * makes its own). A short datagram is copied out and the scratch kept; a
 * long one is the result itself, cut to its length, as socket.recv() does:
 * copying it would cost more than a new scratch next time.
 */
static PyObject *p_receive_bytes(p_core *self, Py_ssize_t size, struct sockaddr_vm *addr)
{
	PyObject *buf = self->scratch, *data;
	ssize_t rc;

	self->scratch = NULL;
	if (!buf || PyBytes_GET_SIZE(buf) < size) {
		Py_XDECREF(buf);
		buf = PyBytes_FromStringAndSize(NULL, size);
		if (!buf)
			return NULL;
	}
	rc = p_receive(self, PyBytes_AS_STRING(buf), (size_t) size, addr);
	if (rc >= P_KEEP_LONG)
		return _PyBytes_Resize(&buf, rc) < 0 ? NULL : buf;
	data = rc < 0 ? NULL : PyBytes_FromStringAndSize(PyBytes_AS_STRING(buf), rc);
	if (self->scratch)
		Py_DECREF(buf); /* another receive put its own back first */
	else
		self->scratch = buf;
	return data;
}

/* bufsize, if it is an int in 1..P_SCRATCH_MAX; else 0 (the checked path says why). */
static Py_ssize_t p_bufsize(PyObject *obj)
{
	Py_ssize_t size;

	if (!PyLong_CheckExact(obj))
		return 0;
	size = PyLong_AsSsize_t(obj);
	if (size == -1 && PyErr_Occurred()) {
		PyErr_Clear();
		return 0;
	}
	return size > 0 && size <= P_SCRATCH_MAX ? size : 0;
}

PyDoc_STRVAR(p_recv_doc,
"recv($self, bufsize, flags=0)\n--\n\n"
"Receive one datagram of at most ``bufsize`` bytes (``udo_vsock_udp_recv_data``).");

static PyObject *p_recv(p_core *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
	Py_ssize_t size;

	if (!p_plain(args, nargsf, kwnames, 1, 2) || !(size = p_bufsize(args[0])))
		return p_checked(self, p_str_recv, args, nargsf, kwnames);
	return p_receive_bytes(self, size, NULL);
}

PyDoc_STRVAR(p_recvfrom_doc,
"recvfrom($self, bufsize, flags=0)\n--\n\n"
"Receive one datagram of at most ``bufsize`` bytes and its sender ``(cid, port)``.\n\n"
"Calls ``udo_vsock_udp_recv_data`` (:class:`Server`: ``udo_vsock_udp_server_recv_data``).");

static PyObject *p_recvfrom(p_core *self, PyObject *const *args, size_t nargsf,
			    PyObject *kwnames)
{
	struct sockaddr_vm addr = { .svm_family = 0 };
	PyObject *data;
	Py_ssize_t size;

	if (!p_plain(args, nargsf, kwnames, 1, 2) || !(size = p_bufsize(args[0])))
		return p_checked(self, p_str_recvfrom, args, nargsf, kwnames);
	data = p_receive_bytes(self, size, &addr);
	return data ? hot_pair(data, hot_sender(&addr)) : NULL;
}

PyDoc_STRVAR(p_recv_into_doc,
"recv_into($self, buffer, nbytes=0, flags=0)\n--\n\n"
"Receive one datagram into ``buffer`` (zero-copy); return its size.\n\n"
"At most ``nbytes`` bytes (0: the whole buffer); the rest of a longer\n"
"datagram is discarded. Any writable bytes-like object, or a\n"
":class:`~cando.Buffer`. Calls ``udo_vsock_udp_recv_data``.");

static PyObject *p_recv_into(p_core *self, PyObject *const *args, size_t nargsf,
			     PyObject *kwnames)
{
	Py_buffer view;
	ssize_t rc;

	if (!p_plain(args, nargsf, kwnames, 1, 3) || hot_borrow(args[0], &view, PyBUF_WRITABLE) < 0)
		return p_checked(self, p_str_recv_into, args, nargsf, kwnames);
	rc = p_receive(self, view.buf, (size_t) view.len, NULL);
	PyBuffer_Release(&view);
	return rc < 0 ? NULL : PyLong_FromSsize_t(rc);
}

PyDoc_STRVAR(p_recvfrom_into_doc,
"recvfrom_into($self, buffer, nbytes=0, flags=0)\n--\n\n"
"Like :meth:`recv_into`, also returning the sender's ``(cid, port)``.\n\n"
"Calls ``udo_vsock_udp_recv_data`` (:class:`Server`: ``udo_vsock_udp_server_recv_data``,\n"
"which records a failure in the instance, see :attr:`last_error`).");

static PyObject *p_recvfrom_into(p_core *self, PyObject *const *args, size_t nargsf,
				 PyObject *kwnames)
{
	struct sockaddr_vm addr = { .svm_family = 0 };
	Py_buffer view;
	ssize_t rc;

	if (!p_plain(args, nargsf, kwnames, 1, 3) || hot_borrow(args[0], &view, PyBUF_WRITABLE) < 0)
		return p_checked(self, p_str_recvfrom_into, args, nargsf, kwnames);
	rc = p_receive(self, view.buf, (size_t) view.len, &addr);
	PyBuffer_Release(&view);
	return rc < 0 ? NULL : hot_pair(PyLong_FromSsize_t(rc), hot_sender(&addr));
}

PyDoc_STRVAR(p_send_doc,
"send($self, data, flags=0)\n--\n\n"
"Send one datagram to the destination (:class:`Client`) or the connected peer;\n"
"return the bytes sent.\n\n"
"Calls ``udo_vsock_udp_client_send_data`` (:class:`Client`: no :meth:`connect`\n"
"needed), else ``udo_vsock_udp_send_data`` without an address (the socket must\n"
"be connected, else ``EINVAL``, as the kernel says).");

static ssize_t p_send_once(p_core *self, int fd, int client, const Py_buffer *data,
			   const struct sockaddr_vm *addr, const int *flags)
{
	if (client)
		return udo_vsock_udp_client_send_data(self->vsock, data->buf, (size_t) data->len,
						      flags);
	return udo_vsock_udp_send_data(fd, data->buf, (size_t) data->len, addr, flags);
}

/*
 * Send the borrowed `data` to `addr` (NULL: the destination or peer); release
 * it. Tried as p_receive tries: without waiting first, with the GIL held.
 */
static PyObject *p_transmit(p_core *self, Py_buffer *data, const struct sockaddr_vm *addr)
{
	int client = !addr && self->kind == P_CLIENT && self->fd >= 0;
	double deadline = 0.0;
	ssize_t rc;
	int fd;

	do {
		rc = p_send_once(self, self->fd, client, data, addr, &p_dontwait);
		if (rc == -EAGAIN && self->blocking) {
			fd = self->fd;
			Py_BEGIN_ALLOW_THREADS
			rc = p_send_once(self, fd, client, data, addr, NULL);
			Py_END_ALLOW_THREADS
		}
	} while (rc < 0 && p_after(self, rc, 1, client, &deadline) == 0);
	PyBuffer_Release(data);
	return rc < 0 ? NULL : PyLong_FromSsize_t(rc);
}

static PyObject *p_send(p_core *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
	Py_buffer data;

	if (!p_plain(args, nargsf, kwnames, 1, 2) || hot_borrow(args[0], &data, PyBUF_SIMPLE) < 0)
		return p_checked(self, p_str_send, args, nargsf, kwnames);
	return p_transmit(self, &data, NULL);
}

PyDoc_STRVAR(p_sendto_doc,
"sendto($self, data, address, flags=0)\n--\n\n"
"Send one datagram to ``address``, a ``(cid, port)``; return the bytes sent.\n\n"
"Calls ``udo_vsock_udp_send_data``.");

static PyObject *p_sendto(p_core *self, PyObject *const *args, size_t nargsf,
			  PyObject *kwnames)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK };
	Py_buffer data;

	if (!p_plain(args, nargsf, kwnames, 2, 3) || !hot_address(args[1], &addr) ||
	    hot_borrow(args[0], &data, PyBUF_SIMPLE) < 0)
		return p_checked(self, p_str_sendto, args, nargsf, kwnames);
	return p_transmit(self, &data, &addr);
}

PyDoc_STRVAR(p_new_instance_doc,
"_new_instance($self, kind, /)\n--\n\n"
"Zeroed memory for this socket's libcando instance (kind 1: client, 2: server),\n"
"once; its address. Freed with the socket.");

static PyObject *p_new_instance(p_core *self, PyObject *arg)
{
	long kind = PyLong_AsLong(arg);
	int size = udo_vsock_udp_get_sizeof();

	if (kind == -1 && PyErr_Occurred())
		return NULL;
	if ((kind != P_CLIENT && kind != P_SERVER) || self->vsock || size <= 0) {
		PyErr_SetString(PyExc_ValueError, "_new_instance: once, kind 1 or 2");
		return NULL;
	}
	self->vsock = PyMem_Calloc(1, (size_t) size);
	if (!self->vsock)
		return PyErr_NoMemory();
	self->kind = (int) kind;
	return PyLong_FromVoidPtr(self->vsock);
}

static PyObject *p_drop_scratch(p_core *self, PyObject *unused)
{
	(void) unused;
	Py_CLEAR(self->scratch);
	Py_RETURN_NONE;
}

static PyMethodDef p_core_methods[] = {
	{ "send", HOT_VECTORCALL(p_send), METH_FASTCALL | METH_KEYWORDS, p_send_doc },
	{ "sendto", HOT_VECTORCALL(p_sendto), METH_FASTCALL | METH_KEYWORDS, p_sendto_doc },
	{ "recv", HOT_VECTORCALL(p_recv), METH_FASTCALL | METH_KEYWORDS, p_recv_doc },
	{ "recv_into", HOT_VECTORCALL(p_recv_into), METH_FASTCALL | METH_KEYWORDS,
	  p_recv_into_doc },
	{ "recvfrom", HOT_VECTORCALL(p_recvfrom), METH_FASTCALL | METH_KEYWORDS, p_recvfrom_doc },
	{ "recvfrom_into", HOT_VECTORCALL(p_recvfrom_into), METH_FASTCALL | METH_KEYWORDS,
	  p_recvfrom_into_doc },
	{ "_new_instance", (PyCFunction) p_new_instance, METH_O, p_new_instance_doc },
	{ "_drop_scratch", (PyCFunction) p_drop_scratch, METH_NOARGS,
	  PyDoc_STR("Free recv()'s receive buffer (close() calls it).") },
	{ NULL, NULL, 0, NULL },
};

static PyMemberDef p_core_members[] = {
	{ "_fd", T_INT, offsetof(p_core, fd), 0, "the fd; -1 once closed" },
	{ "_blocking", T_INT, offsetof(p_core, blocking), 0, "true while no timeout is set" },
	{ NULL, 0, 0, 0, NULL },
};

static PyObject *p_core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	p_core *self = (p_core *) type->tp_alloc(type, 0);

	(void) args;
	(void) kwds;
	if (self) {
		self->fd = -1;
		self->blocking = 1;
	}
	return (PyObject *) self;
}

static int p_intern(PyObject **slot, const char *text)
{
	*slot = PyUnicode_InternFromString(text);
	return *slot ? 0 : -1;
}

int hot_core_init(void)
{
	if (p_intern(&p_str_after, "_after") < 0 || p_intern(&p_str_send, "_send_checked") < 0 ||
	    p_intern(&p_str_sendto, "_sendto_checked") < 0 ||
	    p_intern(&p_str_recv, "_recv_checked") < 0 ||
	    p_intern(&p_str_recv_into, "_recv_into_checked") < 0 ||
	    p_intern(&p_str_recvfrom, "_recvfrom_checked") < 0 ||
	    p_intern(&p_str_recvfrom_into, "_recvfrom_into_checked") < 0)
		return -1;
	return PyType_Ready(&hot_core_type);
}

/*
 * The Python half closed the instance before this runs (close(), or
 * __del__, which the interpreter calls first); an instance never created
 * has no fd to close. So only the memory is left.
 */
static void p_core_dealloc(PyObject *obj)
{
	p_core *self = (p_core *) obj;

	Py_XDECREF(self->scratch);
	PyMem_Free(self->vsock);
	Py_TYPE(obj)->tp_free(obj);
}

PyTypeObject hot_core_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "cando._hot.Core",
	.tp_doc = PyDoc_STR("The C half of cando.VsockSocket: its per-datagram methods."),
	.tp_basicsize = sizeof(p_core),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_new = p_core_new,
	.tp_dealloc = p_core_dealloc,
	.tp_methods = p_core_methods,
	.tp_members = p_core_members,
};
