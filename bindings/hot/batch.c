/*
 * The batch calls' C half (cando._batch holds the Python half).
 *
 * _send_batch borrows every datagram where it is for the one call: none is
 * copied, and none can change size while C reads it. Batch holds what a
 * receive batch needs (the dgram array, the senders, for recv() the data
 * slots), grown to the largest call and reused through cando._batch's pool;
 * it reads a received batch into Python objects without a bytecode per
 * datagram. Failures come back as negative errno values, and refusals as
 * None, for Python to raise.
 */
#include "hot.h" /* Python.h first */

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <cando/vsock-udp-batch.h>

#define P_MAX_COUNT ((size_t) 1 << 20) /* as cando._batch checks */

/* An int argument; -1 with the exception set when it is none (Python checked it). */
static int p_as_int(PyObject *obj, int *out)
{
	long v = PyLong_AsLong(obj);

	if (v == -1 && PyErr_Occurred())
		return -1;
	if (v < INT_MIN || v > INT_MAX) {
		PyErr_SetString(PyExc_OverflowError, "out of int range");
		return -1;
	}
	*out = (int) v;
	return 0;
}

/* Borrow each datagram of `items`; -1 (no exception) at the first that is not one. */
static int p_borrow_all(PyObject *items, Py_buffer *views, struct udo_vsock_udp_dgram *dgrams)
{
	Py_ssize_t n = PyTuple_GET_SIZE(items), i;

	for (i = 0; i < n; i++) {
		if (hot_borrow(PyTuple_GET_ITEM(items, i), &views[i], PyBUF_SIMPLE) < 0) {
			while (i--)
				PyBuffer_Release(&views[i]);
			return -1;
		}
		dgrams[i] = (struct udo_vsock_udp_dgram) {
			.data = views[i].buf, .size = (size_t) views[i].len,
		};
	}
	return 0;
}

PyObject *hot_send_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
	struct udo_vsock_udp_dgram stack_dgrams[UDO_VSOCK_UDP_BATCH_MAX], *dgrams = stack_dgrams;
	Py_buffer stack_views[UDO_VSOCK_UDP_BATCH_MAX], *views = stack_views;
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK };
	PyObject *result = NULL;
	Py_ssize_t n, i;
	int fd, flags;
	ssize_t rc;

	(void) module;
	if (nargs != 4 || !PyTuple_Check(args[1])) {
		PyErr_SetString(PyExc_TypeError, "_send_batch(fd, tuple, (cid, port) or None, flags)");
		return NULL;
	}
	if (p_as_int(args[0], &fd) < 0 || p_as_int(args[3], &flags) < 0)
		return NULL;
	if (args[2] != Py_None && !hot_address(args[2], &addr)) {
		PyErr_SetString(PyExc_ValueError, "_send_batch: dest is no checked (cid, port)");
		return NULL;
	}
	n = PyTuple_GET_SIZE(args[1]);
	if (n > UDO_VSOCK_UDP_BATCH_MAX) {
		dgrams = PyMem_Calloc((size_t) n, sizeof(*dgrams));
		views = PyMem_Calloc((size_t) n, sizeof(*views));
		if (!dgrams || !views) {
			PyErr_NoMemory();
			goto out;
		}
	}
	if (p_borrow_all(args[1], views, dgrams) < 0) {
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

typedef struct {
	PyObject_HEAD
	size_t count; /* entries in dgrams and addrs */
	struct udo_vsock_udp_dgram *dgrams;
	struct sockaddr_vm *addrs;
	char *data; /* recv()'s slots, uninitialised: only received bytes are read */
	size_t data_size;
	int busy; /* a call is using the arrays (with the GIL released) */
} p_batch;

/* Room for `count` entries; -1 with MemoryError. */
static int p_reserve(p_batch *self, size_t count)
{
	struct udo_vsock_udp_dgram *dgrams;
	struct sockaddr_vm *addrs;

	if (count <= self->count)
		return 0;
	dgrams = PyMem_Calloc(count, sizeof(*dgrams));
	addrs = PyMem_Calloc(count, sizeof(*addrs));
	if (!dgrams || !addrs) {
		PyMem_Free(dgrams);
		PyMem_Free(addrs);
		PyErr_NoMemory();
		return -1;
	}
	PyMem_Free(self->dgrams);
	PyMem_Free(self->addrs);
	self->dgrams = dgrams;
	self->addrs = addrs;
	self->count = count;
	return 0;
}

/* Point `count` entries at bufsize-byte slots from `base`, each with its sender. */
static void p_slots(p_batch *self, char *base, size_t count, size_t bufsize)
{
	size_t i;

	for (i = 0; i < count; i++)
		self->dgrams[i] = (struct udo_vsock_udp_dgram) {
			.data = base + i * bufsize, .size = bufsize, .addr = &self->addrs[i],
		};
}

/* udo_vsock_udp_recv_batch on the prepared entries, without the GIL. */
static ssize_t p_recv_batch(p_batch *self, int fd, size_t count, int flags)
{
	ssize_t rc;

	Py_BEGIN_ALLOW_THREADS
	rc = udo_vsock_udp_recv_batch(fd, self->dgrams, count, flags ? &flags : NULL);
	Py_END_ALLOW_THREADS
	return rc;
}

/* A datagram's result: its bytes (at most its slot), or the length received. */
static PyObject *p_first(const struct udo_vsock_udp_dgram *d, int with_data)
{
	if (!with_data)
		return PyLong_FromSize_t(d->len);
	return PyBytes_FromStringAndSize(d->data, (Py_ssize_t) (d->len < d->size ? d->len : d->size));
}

/* [(data or nbytes, (cid, port))] of the first n entries; one sender tuple per run. */
static PyObject *p_results(p_batch *self, ssize_t n, int with_data)
{
	PyObject *list = PyList_New(n), *sender = NULL, *item;
	uint64_t key, last = 0;
	ssize_t i;

	for (i = 0; list && i < n; i++) {
		const struct udo_vsock_udp_dgram *d = &self->dgrams[i];

		key = (uint64_t) d->addr->svm_cid << 32 | d->addr->svm_port;
		if (!sender || key != last) {
			Py_XDECREF(sender);
			sender = hot_sender(d->addr);
			last = key;
		}
		item = sender ? hot_pair(p_first(d, with_data), Py_NewRef(sender)) : NULL;
		if (item)
			PyList_SET_ITEM(list, i, item);
		else
			Py_CLEAR(list);
	}
	Py_XDECREF(sender);
	return list;
}

/* The call's outcome: results, or the negative errno. Busy until the results
 * are made: making them can run Python (the collector, another thread), which
 * must not reuse the arrays they are read from. */
static PyObject *p_outcome(p_batch *self, ssize_t rc, int with_data)
{
	PyObject *res = rc < 0 ? PyLong_FromSsize_t(rc) : p_results(self, rc, with_data);

	self->busy = 0;
	return res;
}

/* fd, bufsize, flags: -1 with the exception set at the first that is wrong. */
static int p_args(p_batch *self, PyObject *const *args, int *fd, size_t *bufsize, int *flags)
{
	int size;

	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "this Batch is in use by another call");
		return -1;
	}
	if (p_as_int(args[0], fd) < 0 || p_as_int(args[1], &size) < 0 ||
	    p_as_int(args[2], flags) < 0)
		return -1;
	if (size < 1) {
		PyErr_SetString(PyExc_ValueError, "bufsize out of range");
		return -1;
	}
	*bufsize = (size_t) size;
	return 0;
}

PyDoc_STRVAR(p_recv_doc,
"recv($self, fd, bufsize, flags, count, /)\n--\n\n"
"Up to ``count`` datagrams into slots of ``bufsize`` bytes\n"
"(``udo_vsock_udp_recv_batch``): ``[(bytes, (cid, port))]``, or a negative errno.");

static PyObject *p_recv(p_batch *self, PyObject *const *args, Py_ssize_t nargs)
{
	size_t count, bufsize;
	int fd, flags;
	ssize_t rc;
	Py_ssize_t want;

	if (nargs != 4) {
		PyErr_SetString(PyExc_TypeError, "recv(fd, bufsize, flags, count)");
		return NULL;
	}
	if (p_args(self, args, &fd, &bufsize, &flags) < 0)
		return NULL;
	want = PyLong_AsSsize_t(args[3]);
	if (want == -1 && PyErr_Occurred())
		return NULL;
	if (want < 1 || (size_t) want > P_MAX_COUNT) {
		PyErr_SetString(PyExc_ValueError, "count out of range");
		return NULL;
	}
	count = (size_t) want;
	if (bufsize > SIZE_MAX / count)
		return PyErr_NoMemory();
	if (p_reserve(self, count) < 0)
		return NULL;
	if (self->data_size < count * bufsize) {
		free(self->data);
		self->data_size = 0;
		self->data = malloc(count * bufsize);
		if (!self->data)
			return PyErr_NoMemory();
		self->data_size = count * bufsize;
	}
	p_slots(self, self->data, count, bufsize);
	self->busy = 1;
	rc = p_recv_batch(self, fd, count, flags);
	return p_outcome(self, rc, 1);
}

PyDoc_STRVAR(p_recv_into_doc,
"recv_into($self, fd, bufsize, flags, buffer, /)\n--\n\n"
"Datagrams into ``buffer``, one per ``bufsize`` slot (``udo_vsock_udp_recv_batch``):\n"
"``[(nbytes, (cid, port))]``, a negative errno, or None when ``buffer`` is no\n"
"writable contiguous buffer of at least one slot.");

static PyObject *p_recv_into(p_batch *self, PyObject *const *args, Py_ssize_t nargs)
{
	size_t count, bufsize;
	Py_buffer view;
	int fd, flags;
	ssize_t rc;

	if (nargs != 4) {
		PyErr_SetString(PyExc_TypeError, "recv_into(fd, bufsize, flags, buffer)");
		return NULL;
	}
	if (p_args(self, args, &fd, &bufsize, &flags) < 0)
		return NULL;
	if (hot_borrow(args[3], &view, PyBUF_WRITABLE) < 0)
		Py_RETURN_NONE;
	count = (size_t) view.len / bufsize;
	if (count > P_MAX_COUNT)
		count = P_MAX_COUNT;
	if (!count || p_reserve(self, count) < 0) {
		PyBuffer_Release(&view);
		if (count)
			return NULL;
		Py_RETURN_NONE;
	}
	p_slots(self, view.buf, count, bufsize);
	self->busy = 1;
	rc = p_recv_batch(self, fd, count, flags);
	PyBuffer_Release(&view); /* results hold lengths and senders, not the slots */
	return p_outcome(self, rc, 0);
}

static PyObject *p_nbytes(p_batch *self, void *closure)
{
	(void) closure;
	return PyLong_FromSize_t(self->data_size +
				 self->count * (sizeof(*self->dgrams) + sizeof(*self->addrs)));
}

static PyMethodDef p_batch_methods[] = {
	{ "recv", HOT_VECTORCALL(p_recv), METH_FASTCALL, p_recv_doc },
	{ "recv_into", HOT_VECTORCALL(p_recv_into), METH_FASTCALL, p_recv_into_doc },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef p_batch_getset[] = {
	{ "nbytes", (getter) p_nbytes, NULL, "memory held", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static void p_batch_dealloc(PyObject *obj)
{
	p_batch *self = (p_batch *) obj;

	PyMem_Free(self->dgrams);
	PyMem_Free(self->addrs);
	free(self->data);
	Py_TYPE(obj)->tp_free(obj);
}

PyTypeObject hot_batch_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "cando._hot.Batch",
	.tp_doc = PyDoc_STR("Arrays for received batches, grown to the largest call, reused."),
	.tp_basicsize = sizeof(p_batch),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_new = PyType_GenericNew,
	.tp_dealloc = p_batch_dealloc,
	.tp_methods = p_batch_methods,
	.tp_getset = p_batch_getset,
};
