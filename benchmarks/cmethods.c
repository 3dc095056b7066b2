/*
 * cmethods: a measurement, not product code. What cando's per-datagram Python
 * calls would cost as C-level functions (METH_FASTCALL, the caller's buffer
 * borrowed through the buffer protocol on the stack) instead of a Python
 * method around a cffi call. benchmarks/cmethods.py builds and times it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <cando/vsock-udp.h>

static PyObject *p_result(ssize_t r)
{
	if (r >= 0)
		return PyLong_FromSsize_t(r);
	errno = (int) -r;
	return PyErr_SetFromErrno(PyExc_OSError);
}

/* An fd argument, or -1 with an exception set. */
static int p_fd(PyObject *obj)
{
	long v = PyLong_AsLong(obj);

	if (v == -1 && PyErr_Occurred())
		return -1;
	if (v < 0 || v > INT_MAX) {
		PyErr_SetString(PyExc_ValueError, "fd out of range");
		return -1;
	}
	return (int) v;
}

static int p_nargs(Py_ssize_t n, const char *usage)
{
	if (n == 2)
		return 0;
	PyErr_SetString(PyExc_TypeError, usage);
	return -1;
}

/* send(instance address, data): udo_vsock_udp_client_send_data */
static PyObject *p_send(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	struct udo_vsock_udp *vsock;
	Py_buffer b;
	ssize_t r;

	(void) self;
	if (p_nargs(n, "send(instance, data)") < 0)
		return NULL;
	vsock = PyLong_AsVoidPtr(args[0]);
	if (!vsock || PyObject_GetBuffer(args[1], &b, PyBUF_SIMPLE) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = udo_vsock_udp_client_send_data(vsock, b.buf, (size_t) b.len, NULL);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	return p_result(r);
}

/* recv_into(fd, writable buffer): udo_vsock_udp_recv_data */
static PyObject *p_recv_into(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	Py_buffer b;
	ssize_t r;
	int fd;

	(void) self;
	if (p_nargs(n, "recv_into(fd, buffer)") < 0)
		return NULL;
	fd = p_fd(args[0]);
	if (fd < 0 || PyObject_GetBuffer(args[1], &b, PyBUF_WRITABLE) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = udo_vsock_udp_recv_data(fd, b.buf, (size_t) b.len, NULL, NULL);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&b);
	return p_result(r);
}

/* recv(fd, bufsize <= 65536): udo_vsock_udp_recv_data into the stack, then bytes */
static PyObject *p_recv(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	char buf[65536];
	Py_ssize_t size;
	ssize_t r;
	int fd;

	(void) self;
	if (p_nargs(n, "recv(fd, bufsize)") < 0)
		return NULL;
	fd = p_fd(args[0]);
	if (fd < 0)
		return NULL;
	size = PyLong_AsSsize_t(args[1]);
	if (size == -1 && PyErr_Occurred())
		return NULL;
	if (size < 1 || size > (Py_ssize_t) sizeof(buf)) {
		PyErr_SetString(PyExc_ValueError, "bufsize must be in [1, 65536]");
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	r = udo_vsock_udp_recv_data(fd, buf, (size_t) size, NULL, NULL);
	Py_END_ALLOW_THREADS
	if (r < 0)
		return p_result(r);
	return PyBytes_FromStringAndSize(buf, r);
}

static PyMethodDef p_methods[] = {
	{"send", (PyCFunction) (void (*)(void)) p_send, METH_FASTCALL, NULL},
	{"recv_into", (PyCFunction) (void (*)(void)) p_recv_into, METH_FASTCALL, NULL},
	{"recv", (PyCFunction) (void (*)(void)) p_recv, METH_FASTCALL, NULL},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef p_module = {
	PyModuleDef_HEAD_INIT, "cmethods", NULL, -1, p_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_cmethods(void)
{
	return PyModule_Create(&p_module);
}
