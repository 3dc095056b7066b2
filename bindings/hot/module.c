/* cando._hot: the module, and the helpers core.c and batch.c share. */
#include "hot.h"

PyObject *hot_zero;
static PyObject *p_buffer_type; /* cando.Buffer, registered by cando.vsock_udp */
static PyObject *p_str_view;

int hot_borrow(PyObject *obj, Py_buffer *view, int flags)
{
	PyObject *mem;
	int rc;

	if ((PyObject *) Py_TYPE(obj) == p_buffer_type) {
		/* Before 3.12 a Python class cannot be a buffer: its memoryview is. */
		mem = PyObject_GetAttr(obj, p_str_view); /* the slot _view */
		rc = mem ? PyObject_GetBuffer(mem, view, flags) : -1;
		Py_XDECREF(mem); /* the view holds the memoryview */
	} else {
		rc = PyObject_GetBuffer(obj, view, flags);
	}
	if (rc < 0) {
		PyErr_Clear();
		return -1;
	}
	if (view->len == 0) {
		PyBuffer_Release(view);
		return -1;
	}
	return 0;
}

PyObject *hot_pair(PyObject *first, PyObject *second)
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

PyObject *hot_sender(const struct sockaddr_vm *addr)
{
	return hot_pair(PyLong_FromUnsignedLong(addr->svm_cid),
			PyLong_FromUnsignedLong(addr->svm_port));
}

/* A u32 from a plain int; 0 if it is none (the checked path says why). */
static int p_u32(PyObject *obj, unsigned int *out)
{
	unsigned long v;

	if (!PyLong_CheckExact(obj))
		return 0;
	v = PyLong_AsUnsignedLong(obj);
	if (v == (unsigned long) -1 && PyErr_Occurred()) {
		PyErr_Clear();
		return 0;
	}
	*out = (unsigned int) v;
	return v <= UINT_MAX;
}

int hot_address(PyObject *obj, struct sockaddr_vm *addr)
{
	return PyTuple_CheckExact(obj) && PyTuple_GET_SIZE(obj) == 2 &&
	       p_u32(PyTuple_GET_ITEM(obj, 0), &addr->svm_cid) &&
	       p_u32(PyTuple_GET_ITEM(obj, 1), &addr->svm_port);
}

static PyObject *p_set_buffer_type(PyObject *module, PyObject *type)
{
	(void) module;
	if (!PyType_Check(type)) {
		PyErr_SetString(PyExc_TypeError, "_set_buffer_type takes a type");
		return NULL;
	}
	Py_INCREF(type);
	Py_XSETREF(p_buffer_type, type);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(p_send_batch_doc,
"_send_batch($module, fd, datagrams, dest, flags, /)\n--\n\n"
"``udo_vsock_udp_send_batch`` of the tuple ``datagrams``, each borrowed where\n"
"it is, to ``dest`` (a checked ``(cid, port)``, or None) with MSG_* ``flags``.\n"
"Returns the count sent or a negative errno, or None when a datagram is not\n"
"a non-empty contiguous buffer (cando._batch says why).");

static PyMethodDef p_module_methods[] = {
	{ "_send_batch", HOT_VECTORCALL(hot_send_batch), METH_FASTCALL, p_send_batch_doc },
	{ "_set_buffer_type", p_set_buffer_type, METH_O,
	  PyDoc_STR("Register cando.Buffer, whose .view C borrows.") },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef p_module = {
	PyModuleDef_HEAD_INIT, "cando._hot",
	PyDoc_STR("What cando's Python layer does per datagram, in C."), -1,
	p_module_methods, NULL, NULL, NULL, NULL,
};

static int p_add_type(PyObject *module, const char *name, PyTypeObject *type)
{
	if (PyType_Ready(type) < 0)
		return -1;
	Py_INCREF(type);
	if (PyModule_AddObject(module, name, (PyObject *) type) < 0) {
		Py_DECREF(type);
		return -1;
	}
	return 0;
}

PyMODINIT_FUNC PyInit__hot(void)
{
	PyObject *module;

	hot_zero = PyLong_FromLong(0);
	p_str_view = PyUnicode_InternFromString("_view");
	if (!hot_zero || !p_str_view || hot_core_init() < 0)
		return NULL;
	module = PyModule_Create(&p_module);
	if (!module)
		return NULL;
	if (p_add_type(module, "Core", &hot_core_type) < 0 ||
	    p_add_type(module, "Batch", &hot_batch_type) < 0) {
		Py_DECREF(module);
		return NULL;
	}
	return module;
}
