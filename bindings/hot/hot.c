/*
 * cando._hot: the per-datagram methods of cando's sockets, as C methods.
 *
 * Through cffi every method is a Python frame around its C call, and that
 * frame costs more than a stdlib socket method in all (benchmarks/README.md).
 * So send(), recv(), recv_into() and recvfrom() are C methods of Core, the
 * base type of cando.VsockSocket, for the common call: positional
 * arguments, no flags. Every other call (flags, nbytes, keywords, anything
 * to check or refuse) goes to the Python method of the same name plus
 * "_checked", and every failed system call to the Python _after(): retries,
 * timeouts and the errno -> exception map stay in Python, in one place.
 *
 * The libcando instance is not owned here: its memory belongs to the
 * Python object (cando.vsock_udp._Instance keeps it for its whole life);
 * Core only borrows its address, given once by _attach().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdlib.h>

#include <cando/vsock-udp.h>
#include <cando/vsock-udp-batch.h>

/* recv()/recvfrom() copy out of one buffer kept per socket up to this size
 * (the largest datagram fits); a larger bufsize takes the Python path. */
#define P_SCRATCH_MAX ((Py_ssize_t) 1 << 17)
/* ... and hand a datagram of at least this size over without a copy. */
#define P_KEEP_LONG 8192
#define P_MAX_ARGS 8

enum p_kind { P_FD, P_CLIENT, P_SERVER };

typedef struct {
	PyObject_HEAD
	int fd; /* _fd: -1 once closed */
	int kind; /* enum p_kind */
	struct udo_vsock_udp *vsock; /* borrowed, see above */
	PyObject *scratch; /* bytes recv() receives into; one receive at a time */
} p_core;

static PyObject *p_zero; /* flags/nbytes at their default: the int 0, by identity */
static PyObject *p_buffer_type; /* cando.Buffer: received into through its .view */
static PyObject *p_str_after, *p_str_view;
static PyObject *p_str_send, *p_str_recv, *p_str_recv_into, *p_str_recvfrom;

/*
 * The Python method "<name>_checked" with the caller's arguments: the path
 * of any call this file does not take on itself.
 */
static PyObject *p_checked(p_core *self, PyObject *name, PyObject *const *args, size_t nargsf,
			   PyObject *kwnames)
{
	Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
	Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
	PyObject *stack[P_MAX_ARGS + 1];

	if (total > P_MAX_ARGS) {
		PyErr_Format(PyExc_TypeError, "%U() takes at most 3 arguments (%zd given)",
			     name, total);
		return NULL;
	}
	stack[0] = (PyObject *) self;
	memcpy(stack + 1, args, (size_t) total * sizeof(*args));
	return PyObject_VectorcallMethod(name, stack, (size_t) nargs + 1, kwnames);
}

/* True when the optional arguments after the first `fixed` are absent or 0. */
static int p_plain(PyObject *const *args, size_t nargsf, PyObject *kwnames, Py_ssize_t fixed)
{
	Py_ssize_t n = PyVectorcall_NARGS(nargsf);
	Py_ssize_t i;

	if (kwnames || n < fixed)
		return 0;
	for (i = fixed; i < n; i++)
		if (args[i] != p_zero)
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
	PyObject *args[5], *res;
	int i;

	if (rc == -EINTR && PyErr_CheckSignals() < 0)
		return -1;
	args[0] = (PyObject *) self;
	args[1] = PyLong_FromSsize_t(rc);
	args[2] = PyBool_FromLong(writing);
	args[3] = PyFloat_FromDouble(*deadline);
	args[4] = PyBool_FromLong(instance); /* the instance's error record names the call */
	res = NULL;
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

/* One receive into `buf`, retried as _after() says; the sender into `addr` if given. */
static ssize_t p_receive(p_core *self, void *buf, size_t size, struct sockaddr_vm *addr)
{
	int server = addr && self->kind == P_SERVER;
	double deadline = 0.0;
	ssize_t rc;
	int fd;

	for (;;) {
		fd = self->fd;
		Py_BEGIN_ALLOW_THREADS
		if (server)
			rc = udo_vsock_udp_server_recv_data(self->vsock, buf, size, addr, NULL);
		else
			rc = udo_vsock_udp_recv_data(fd, buf, size, addr, NULL);
		Py_END_ALLOW_THREADS
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
	if (rc >= P_KEEP_LONG) {
		return _PyBytes_Resize(&buf, rc) < 0 ? NULL : buf;
	}
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

	if (!p_plain(args, nargsf, kwnames, 1) || PyVectorcall_NARGS(nargsf) > 2 ||
	    !(size = p_bufsize(args[0])))
		return p_checked(self, p_str_recv, args, nargsf, kwnames);
	return p_receive_bytes(self, size, NULL);
}

/* (first, second), stealing both; NULL if either is. */
static PyObject *p_pair(PyObject *first, PyObject *second)
{
	PyObject *pair = first && second ? PyTuple_New(2) : NULL;

	if (!pair) {
		Py_XDECREF(first);
		Py_XDECREF(second);
		return NULL;
	}
	PyTuple_SET_ITEM(pair, 0, first);
	PyTuple_SET_ITEM(pair, 1, second);
	return pair;
}

/* The sender's (cid, port), as socket reports an AF_VSOCK address. */
static PyObject *p_sender(const struct sockaddr_vm *addr)
{
	return p_pair(PyLong_FromUnsignedLong(addr->svm_cid),
		      PyLong_FromUnsignedLong(addr->svm_port));
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

	if (!p_plain(args, nargsf, kwnames, 1) || PyVectorcall_NARGS(nargsf) > 2 ||
	    !(size = p_bufsize(args[0])))
		return p_checked(self, p_str_recvfrom, args, nargsf, kwnames);
	data = p_receive_bytes(self, size, &addr);
	if (!data)
		return NULL;
	return p_pair(data, p_sender(&addr));
}

/*
 * The caller's buffer, borrowed for the call (0), or -1 with no exception
 * set when the checked path must handle it. A cando.Buffer lends its view.
 */
static int p_borrow(PyObject *obj, Py_buffer *view, int flags)
{
	PyObject *mem;
	int rc;

	if ((PyObject *) Py_TYPE(obj) == p_buffer_type) {
		mem = PyObject_GetAttr(obj, p_str_view);
		if (!mem) {
			PyErr_Clear();
			return -1;
		}
		rc = PyObject_GetBuffer(mem, view, flags);
		Py_DECREF(mem); /* the view holds the memoryview */
	} else {
		rc = PyObject_GetBuffer(obj, view, flags);
	}
	if (rc < 0) {
		PyErr_Clear();
		return -1;
	}
	if (view->len == 0) { /* refused with a ValueError by the checked path */
		PyBuffer_Release(view);
		return -1;
	}
	return 0;
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

	if (!p_plain(args, nargsf, kwnames, 1) || PyVectorcall_NARGS(nargsf) > 3 ||
	    p_borrow(args[0], &view, PyBUF_WRITABLE) < 0)
		return p_checked(self, p_str_recv_into, args, nargsf, kwnames);
	rc = p_receive(self, view.buf, (size_t) view.len, NULL);
	PyBuffer_Release(&view);
	return rc < 0 ? NULL : PyLong_FromSsize_t(rc);
}

PyDoc_STRVAR(p_send_doc,
"send($self, data, flags=0)\n--\n\n"
"Send one datagram to the destination (:class:`Client`) or the connected peer;\n"
"return the bytes sent.\n\n"
"Calls ``udo_vsock_udp_client_send_data`` (:class:`Client`: no :meth:`connect`\n"
"needed), else ``udo_vsock_udp_send_data`` without an address (the socket must\n"
"be connected, else ``ENOTCONN``).");

static PyObject *p_send(p_core *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
	int client = self->kind == P_CLIENT;
	double deadline = 0.0;
	Py_buffer data;
	ssize_t rc;
	int fd;

	if (!p_plain(args, nargsf, kwnames, 1) || PyVectorcall_NARGS(nargsf) > 2 ||
	    p_borrow(args[0], &data, PyBUF_SIMPLE) < 0)
		return p_checked(self, p_str_send, args, nargsf, kwnames);
	do {
		fd = self->fd;
		Py_BEGIN_ALLOW_THREADS
		if (client)
			rc = udo_vsock_udp_client_send_data(self->vsock, data.buf,
							    (size_t) data.len, NULL);
		else
			rc = udo_vsock_udp_send_data(fd, data.buf, (size_t) data.len, NULL, NULL);
		Py_END_ALLOW_THREADS
	} while (rc < 0 && p_after(self, rc, 1, client, &deadline) == 0);
	PyBuffer_Release(&data);
	return rc < 0 ? NULL : PyLong_FromSsize_t(rc);
}

PyDoc_STRVAR(p_attach_doc,
"_attach($self, address, kind)\n--\n\n"
"Borrow the libcando instance at ``address`` (kind 1: client, 2: server).");

static PyObject *p_attach(p_core *self, PyObject *const *args, Py_ssize_t nargs)
{
	void *vsock;
	long kind;

	if (nargs != 2) {
		PyErr_SetString(PyExc_TypeError, "_attach(address, kind)");
		return NULL;
	}
	vsock = PyLong_AsVoidPtr(args[0]);
	kind = PyLong_AsLong(args[1]);
	if (PyErr_Occurred())
		return NULL;
	if (!vsock || (kind != P_CLIENT && kind != P_SERVER) || self->vsock) {
		PyErr_SetString(PyExc_ValueError, "_attach: one instance, once, kind 1 or 2");
		return NULL;
	}
	self->vsock = vsock;
	self->kind = (int) kind;
	Py_RETURN_NONE;
}

#define P_VECTORCALL(f) ((PyCFunction) (void (*)(void)) (f))

static PyMethodDef p_core_methods[] = {
	{ "send", P_VECTORCALL(p_send), METH_FASTCALL | METH_KEYWORDS, p_send_doc },
	{ "recv", P_VECTORCALL(p_recv), METH_FASTCALL | METH_KEYWORDS, p_recv_doc },
	{ "recv_into", P_VECTORCALL(p_recv_into), METH_FASTCALL | METH_KEYWORDS, p_recv_into_doc },
	{ "recvfrom", P_VECTORCALL(p_recvfrom), METH_FASTCALL | METH_KEYWORDS, p_recvfrom_doc },
	{ "_attach", P_VECTORCALL(p_attach), METH_FASTCALL, p_attach_doc },
	{ NULL, NULL, 0, NULL },
};

static PyMemberDef p_core_members[] = {
	{ "_fd", T_INT, offsetof(p_core, fd), 0, "the fd; -1 once closed" },
	{ NULL, 0, 0, 0, NULL },
};

static PyObject *p_core_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	p_core *self = (p_core *) type->tp_alloc(type, 0);

	(void) args;
	(void) kwds;
	if (self)
		self->fd = -1;
	return (PyObject *) self;
}

static void p_core_dealloc(PyObject *obj)
{
	p_core *self = (p_core *) obj;

	Py_XDECREF(self->scratch);
	Py_TYPE(obj)->tp_free(obj);
}

static PyTypeObject p_core_type = {
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

PyDoc_STRVAR(p_send_batch_doc,
"_send_batch($module, fd, datagrams, dest, flags, /)\n--\n\n"
"udo_vsock_udp_send_batch of the tuple ``datagrams``, each borrowed where it\n"
"is, to ``dest`` (a checked ``(cid, port)``, or None) with MSG_* ``flags``.\n"
"Returns the count sent or a negative errno, or None when a datagram is not\n"
"a non-empty contiguous buffer (cando._batch says why).");

/* An int argument (-1 with OverflowError beyond int: Python checked it already). */
static int p_as_int(PyObject *obj)
{
	long v = PyLong_AsLong(obj);

	if (v < INT_MIN || v > INT_MAX) {
		PyErr_SetString(PyExc_OverflowError, "out of int range");
		return -1;
	}
	return (int) v;
}

/* Borrow each datagram; -1 (no exception) at the first that is not a sendable buffer. */
static Py_ssize_t p_borrow_all(PyObject *items, Py_buffer *views, struct udo_vsock_udp_dgram *dgrams)
{
	Py_ssize_t n = PyTuple_GET_SIZE(items), i;

	for (i = 0; i < n; i++) {
		if (p_borrow(PyTuple_GET_ITEM(items, i), &views[i], PyBUF_SIMPLE) < 0) {
			while (i--)
				PyBuffer_Release(&views[i]);
			return -1;
		}
		dgrams[i] = (struct udo_vsock_udp_dgram) {
			.data = views[i].buf, .size = (size_t) views[i].len,
		};
	}
	return n;
}

static PyObject *p_send_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
	struct udo_vsock_udp_dgram stack_dgrams[UDO_VSOCK_UDP_BATCH_MAX], *dgrams = stack_dgrams;
	Py_buffer stack_views[UDO_VSOCK_UDP_BATCH_MAX], *views = stack_views;
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK };
	PyObject *items, *result = NULL;
	Py_ssize_t n, i;
	ssize_t rc;
	int fd, flags;

	(void) module;
	if (nargs != 4 || !PyTuple_Check(args[1])) {
		PyErr_SetString(PyExc_TypeError, "_send_batch(fd, tuple, dest, flags)");
		return NULL;
	}
	items = args[1];
	fd = p_as_int(args[0]);
	flags = p_as_int(args[3]);
	if (args[2] != Py_None && PyArg_ParseTuple(args[2], "II", &addr.svm_cid, &addr.svm_port) == 0)
		return NULL;
	if (PyErr_Occurred())
		return NULL;
	n = PyTuple_GET_SIZE(items);
	if (n > UDO_VSOCK_UDP_BATCH_MAX) {
		dgrams = PyMem_Calloc((size_t) n, sizeof(*dgrams));
		views = PyMem_Calloc((size_t) n, sizeof(*views));
		if (!dgrams || !views) {
			PyErr_NoMemory();
			goto out;
		}
	}
	if (p_borrow_all(items, views, dgrams) < 0) {
		result = Py_NewRef(Py_None);
		goto out;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = udo_vsock_udp_send_batch(fd, dgrams, (size_t) n, args[2] == Py_None ? NULL : &addr,
				      flags ? &flags : NULL);
	Py_END_ALLOW_THREADS
	for (i = 0; i < n; i++)
		PyBuffer_Release(&views[i]);
	result = PyLong_FromSsize_t(rc);
out:
	if (dgrams != stack_dgrams) {
		PyMem_Free(dgrams);
		PyMem_Free(views);
	}
	return result;
}

PyDoc_STRVAR(p_batch_results_doc,
"_batch_results($module, dgrams, n, with_data, /)\n--\n\n"
"The results of a received batch: ``[(data or nbytes, (cid, port))]`` of the\n"
"first ``n`` entries of ``dgrams`` (a buffer over a struct udo_vsock_udp_dgram\n"
"array cando._batch made). ``data`` is cut to its slot; a run of datagrams\n"
"from one sender shares one address tuple.");

/* A datagram's result: its bytes (at most its slot), or the length received. */
static PyObject *p_batch_first(const struct udo_vsock_udp_dgram *d, int with_data)
{
	if (!with_data)
		return PyLong_FromSize_t(d->len);
	return PyBytes_FromStringAndSize(d->data, (Py_ssize_t) (d->len < d->size ? d->len : d->size));
}

static PyObject *p_batch_results(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
	const struct udo_vsock_udp_dgram *d;
	PyObject *list = NULL, *sender = NULL;
	unsigned long long key, last = 0;
	Py_buffer view;
	Py_ssize_t n, i;
	int with_data;

	(void) module;
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "_batch_results(dgrams, n, with_data)");
		return NULL;
	}
	if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
		return NULL;
	n = PyLong_AsSsize_t(args[1]);
	with_data = PyObject_IsTrue(args[2]);
	if (PyErr_Occurred() || with_data < 0)
		goto out;
	if (n < 0 || (size_t) n > (size_t) view.len / sizeof(*d)) {
		PyErr_SetString(PyExc_ValueError, "_batch_results: n out of the array");
		goto out;
	}
	list = PyList_New(n);
	for (i = 0, d = view.buf; list && i < n; i++, d++) {
		key = d->addr ? (unsigned long long) d->addr->svm_cid << 32 | d->addr->svm_port : 0;
		if (!sender || key != last) {
			Py_XDECREF(sender);
			sender = d->addr ? p_sender(d->addr) : Py_NewRef(Py_None);
			last = key;
		}
		if (sender) {
			Py_INCREF(sender);
			PyList_SET_ITEM(list, i, p_pair(p_batch_first(d, with_data), sender));
		}
		if (!sender || !PyList_GET_ITEM(list, i))
			Py_CLEAR(list);
	}
	Py_XDECREF(sender);
out:
	PyBuffer_Release(&view);
	return list;
}

static PyObject *p_set_buffer_type(PyObject *module, PyObject *type)
{
	(void) module;
	if (!PyType_Check(type)) {
		PyErr_SetString(PyExc_TypeError, "a type");
		return NULL;
	}
	Py_INCREF(type);
	Py_XSETREF(p_buffer_type, type);
	Py_RETURN_NONE;
}

static PyMethodDef p_module_methods[] = {
	{ "_batch_results", P_VECTORCALL(p_batch_results), METH_FASTCALL, p_batch_results_doc },
	{ "_send_batch", P_VECTORCALL(p_send_batch), METH_FASTCALL, p_send_batch_doc },
	{ "_set_buffer_type", p_set_buffer_type, METH_O,
	  PyDoc_STR("Register cando.Buffer, which receives through its .view.") },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef p_module = {
	PyModuleDef_HEAD_INIT, "cando._hot", PyDoc_STR("C methods of cando's sockets."), -1,
	p_module_methods, NULL, NULL, NULL, NULL,
};

static int p_intern(PyObject **slot, const char *text)
{
	*slot = PyUnicode_InternFromString(text);
	return *slot ? 0 : -1;
}

PyMODINIT_FUNC PyInit__hot(void)
{
	PyObject *module;

	if (p_intern(&p_str_after, "_after") < 0 || p_intern(&p_str_view, "view") < 0 ||
	    p_intern(&p_str_send, "_send_checked") < 0 ||
	    p_intern(&p_str_recv, "_recv_checked") < 0 ||
	    p_intern(&p_str_recv_into, "_recv_into_checked") < 0 ||
	    p_intern(&p_str_recvfrom, "_recvfrom_checked") < 0)
		return NULL;
	p_zero = PyLong_FromLong(0);
	if (!p_zero || PyType_Ready(&p_core_type) < 0)
		return NULL;
	module = PyModule_Create(&p_module);
	if (!module)
		return NULL;
	Py_INCREF(&p_core_type);
	if (PyModule_AddObject(module, "Core", (PyObject *) &p_core_type) < 0) {
		Py_DECREF(&p_core_type);
		Py_DECREF(module);
		return NULL;
	}
	return module;
}
