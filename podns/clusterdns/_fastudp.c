/* The cluster DNS's hot UDP loop, compiled: recvmmsg into preallocated buffers, the plain
 * precomputed questions answered here, sendmmsg back in one call.
 *
 * Built and loaded by fastudp.py (which falls back to the ctypes loop of mmsg.py when it cannot
 * be). Per datagram it does exactly what DNSServer._answer's inline path does, byte for byte:
 * a query (QR=0, opcode QUERY, CD clear) with one question and nothing else, or one question and
 * a bare EDNS0 OPT (version 0, no options), whose lower-cased question is a key of the index's
 * serving dict, gets client ID + the entry's header with the client's RD bit (ARCOUNT + 1 with
 * OPT) + the question exactly as asked (0x20 mixed case kept) + the entry's records (+ our OPT),
 * when that fits in 512 bytes (with EDNS: or in what the client advertises, never over the UDP
 * cap). Every other datagram is handed back to Python (`run()` returns its index) in the same
 * batch: its reply is queued with `queue()` and everything goes out with `send()`.
 *
 * The GIL is released around recvmmsg and sendmmsg; while a batch is answered here the GIL is
 * held, so the serving dict (written by the event loop thread under the GIL) is read safely and
 * looked up again after every receive (mark_synced swaps it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SEND_SIZE 2048
#define MAX_BATCH 1024

typedef struct {
    PyObject_HEAD
    int fd;
    int batch;
    Py_ssize_t size;
    unsigned char *rbuf;
    unsigned char *sbuf;
    struct sockaddr_in6 *names;
    struct iovec *riov;
    struct iovec *siov;
    struct mmsghdr *rh;
    struct mmsghdr *sh;
    int n;
    int queued;
    PyObject *index;
    PyObject *serving_name;
    PyObject *counts;
    PyObject *observe;
    unsigned char opt[11];
    long udp_cap;
    int sample_every;
    int countdown;
    int sampled;
    struct timespec t0;
    long largest;
    unsigned long long answered;
} Loop;

static double elapsed(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

static void Loop_dealloc(Loop *self) {
    PyMem_RawFree(self->rbuf);
    PyMem_RawFree(self->sbuf);
    PyMem_RawFree(self->names);
    PyMem_RawFree(self->riov);
    PyMem_RawFree(self->siov);
    PyMem_RawFree(self->rh);
    PyMem_RawFree(self->sh);
    Py_XDECREF(self->index);
    Py_XDECREF(self->serving_name);
    Py_XDECREF(self->counts);
    Py_XDECREF(self->observe);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Loop_init(Loop *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "index", "counts", "observe", "opt", "udp_cap", "size", "batch",
                             "sample", NULL};
    int fd, batch = 64, sample = 32;
    Py_ssize_t size = 4096;
    long udp_cap;
    PyObject *index, *counts, *observe;
    Py_buffer opt;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iOO!Oy*l|nii", kwlist, &fd, &index, &PyList_Type,
                                     &counts, &observe, &opt, &udp_cap, &size, &batch, &sample))
        return -1;
    if (opt.len != 11) {
        PyBuffer_Release(&opt);
        PyErr_SetString(PyExc_ValueError, "opt must be the 11-byte OPT record");
        return -1;
    }
    memcpy(self->opt, opt.buf, 11);
    PyBuffer_Release(&opt);
    if (batch < 1 || batch > MAX_BATCH || size < 512 || size > 65536 || sample < 1) {
        PyErr_SetString(PyExc_ValueError, "batch, size or sample out of range");
        return -1;
    }
    if (self->rbuf != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Loop is initialised once");
        return -1;
    }
    self->fd = fd;
    self->batch = batch;
    self->size = size;
    self->udp_cap = udp_cap;
    self->sample_every = self->countdown = sample;
    self->rbuf = PyMem_RawCalloc((size_t)batch, (size_t)size);
    self->sbuf = PyMem_RawCalloc((size_t)batch, SEND_SIZE);
    self->names = PyMem_RawCalloc((size_t)batch, sizeof(struct sockaddr_in6));
    self->riov = PyMem_RawCalloc((size_t)batch, sizeof(struct iovec));
    self->siov = PyMem_RawCalloc((size_t)batch, sizeof(struct iovec));
    self->rh = PyMem_RawCalloc((size_t)batch, sizeof(struct mmsghdr));
    self->sh = PyMem_RawCalloc((size_t)batch, sizeof(struct mmsghdr));
    if (!self->rbuf || !self->sbuf || !self->names || !self->riov || !self->siov || !self->rh || !self->sh) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < batch; i++) {
        self->riov[i].iov_base = self->rbuf + (size_t)i * (size_t)size;
        self->riov[i].iov_len = (size_t)size;
        self->rh[i].msg_hdr.msg_iov = &self->riov[i];
        self->rh[i].msg_hdr.msg_iovlen = 1;
        self->rh[i].msg_hdr.msg_name = &self->names[i];
        self->rh[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
        self->siov[i].iov_base = self->sbuf + (size_t)i * SEND_SIZE;
        self->sh[i].msg_hdr.msg_iov = &self->siov[i];
        self->sh[i].msg_hdr.msg_iovlen = 1;
    }
    Py_INCREF(index);
    self->index = index;
    Py_INCREF(counts);
    self->counts = counts;
    Py_INCREF(observe);
    self->observe = observe;
    self->serving_name = PyUnicode_InternFromString("serving");
    return self->serving_name == NULL ? -1 : 0;
}

/* Queue a reply to datagram i (its address is the receive slot's, pointed at). */
static void put(Loop *self, int i, const unsigned char *data, size_t len) {
    int j = self->queued++;
    memcpy(self->sbuf + (size_t)j * SEND_SIZE, data, len);
    self->siov[j].iov_len = len;
    self->sh[j].msg_hdr.msg_name = &self->names[i];
    self->sh[j].msg_hdr.msg_namelen = self->rh[i].msg_hdr.msg_namelen;
}

/* Receive (GIL released by the caller). Returns datagrams taken, 0 on a transient error, -1 with
 * errno EBADF when the socket is gone. */
static int receive(Loop *self) {
    for (int i = 0; i < self->batch; i++) {
        self->rh[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
        self->rh[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(self->fd, self->rh, (unsigned int)self->batch, MSG_WAITFORONE, NULL);
    if (n < 0)
        return errno == EBADF || errno == ENOTSOCK ? -1 : 0;
    return n;
}

/* Send every queued reply (GIL released by the caller), skipping any the kernel refuses. */
static void transmit(Loop *self) {
    int done = 0, total = self->queued;
    self->queued = 0;
    while (done < total) {
        int sent = sendmmsg(self->fd, self->sh + done, (unsigned int)(total - done), 0);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            sent = 1; /* this datagram is refused (EPERM, bad destination, ENOBUFS): skip it */
        }
        done += sent;
    }
}

/* The inline path for datagram i: 1 answered (reply queued), 0 not (Python answers), -1 error. */
static int answer_one(Loop *self, PyObject *serving, int i) {
    const unsigned char *d = self->rbuf + (size_t)i * (size_t)self->size;
    size_t len = self->rh[i].msg_len;
    size_t qlen;
    int edns;
    static const unsigned char qd1[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    static const unsigned char qd1_ar1[8] = {0, 1, 0, 0, 0, 0, 0, 1};
    if (len <= 16 || (d[2] & 0xF8) || (d[3] & 0x10))
        return 0;
    if (memcmp(d + 4, qd1, 8) == 0) {
        qlen = len - 12;
        edns = 0;
    } else if (len >= 23 && memcmp(d + 4, qd1_ar1, 8) == 0 && d[len - 11] == 0 && d[len - 10] == 0 &&
               d[len - 9] == 0x29 && d[len - 5] == 0 && d[len - 2] == 0 && d[len - 1] == 0) {
        qlen = len - 23;
        edns = 1;
    } else {
        return 0;
    }
    PyObject *key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)qlen);
    if (key == NULL)
        return -1;
    unsigned char *k = (unsigned char *)PyBytes_AS_STRING(key);
    for (size_t p = 0; p < qlen; p++) {
        unsigned char c = d[12 + p];
        k[p] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
    }
    PyObject *e = PyDict_GetItemWithError(serving, key); /* borrowed */
    Py_DECREF(key);
    if (e == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) < 2 || !PyBytes_Check(PyTuple_GET_ITEM(e, 0)))
        return 0;
    PyObject *replyobj = PyTuple_GET_ITEM(e, 0);
    const unsigned char *reply = (const unsigned char *)PyBytes_AS_STRING(replyobj);
    size_t rlen = (size_t)PyBytes_GET_SIZE(replyobj);
    if (rlen < 10 + qlen)
        return 0;
    size_t size = rlen + 2 + (edns ? 11 : 0);
    if (edns) {
        size_t adv = (size_t)d[len - 8] << 8 | d[len - 7];
        if (!(size <= 512 || (size <= adv && size <= (size_t)self->udp_cap)))
            return 0;
    } else if (size > 512) {
        return 0;
    }
    /* count it first: an odd counts cell makes Python answer (the same reply, counted there) */
    PyObject *cell = PyTuple_GET_ITEM(e, 1);
    Py_ssize_t c = PyLong_Check(cell) ? PyLong_AsSsize_t(cell) : -1;
    if (c < 0 || c >= PyList_GET_SIZE(self->counts)) {
        PyErr_Clear();
        return 0;
    }
    PyObject *old = PyList_GET_ITEM(self->counts, c);
    long v = PyLong_Check(old) ? PyLong_AsLong(old) : -1;
    if (v < 0) {
        PyErr_Clear();
        return 0;
    }
    PyObject *bumped = PyLong_FromLong(v + 1);
    if (bumped == NULL)
        return -1;
    PyList_SET_ITEM(self->counts, c, bumped);
    Py_DECREF(old);
    int j = self->queued++;
    unsigned char *out = self->sbuf + (size_t)j * SEND_SIZE;
    out[0] = d[0];
    out[1] = d[1];
    out[2] = (unsigned char)((reply[0] & 0xFE) | (d[2] & 1));
    memcpy(out + 3, reply + 1, 9);
    if (edns) {
        unsigned int ar = ((unsigned int)reply[8] << 8 | reply[9]) + 1;
        out[10] = (unsigned char)(ar >> 8);
        out[11] = (unsigned char)ar;
    }
    memcpy(out + 12, d + 12, qlen);
    memcpy(out + 12 + qlen, reply + 10 + qlen, rlen - 10 - qlen);
    if (edns)
        memcpy(out + 2 + rlen, self->opt, 11);
    self->siov[j].iov_len = size;
    self->sh[j].msg_hdr.msg_name = &self->names[i];
    self->sh[j].msg_hdr.msg_namelen = self->rh[i].msg_hdr.msg_namelen;
    self->answered++;
    return 1;
}

/* After a receive of n datagrams: start a latency sample every `sample` queries. */
static void account(Loop *self, int n) {
    if (n > self->largest)
        self->largest = n;
    self->countdown -= n;
    if (self->countdown <= 0) {
        self->countdown = self->sample_every;
        self->sampled = 1;
        clock_gettime(CLOCK_MONOTONIC, &self->t0);
    }
}

/* Report the sampled batch's receive-to-send time (a failing observer is reported, never
 * allowed to cost the batch just received). */
static void observe_sample(Loop *self, const struct timespec *t1) {
    if (!self->sampled)
        return;
    self->sampled = 0;
    if (self->observe == Py_None)
        return;
    PyObject *r = PyObject_CallFunction(self->observe, "d", elapsed(&self->t0, t1));
    if (r == NULL)
        PyErr_WriteUnraisable(self->observe);
    Py_XDECREF(r);
}

PyDoc_STRVAR(run_doc,
"run() -> list[int]\n\n"
"Receive and answer batches until one holds datagrams the inline path does not answer; return\n"
"their indexes (their payloads are `payload(i)`, the replies already found are queued: answer\n"
"the rest with `queue(i, reply)`, then `send()`). An empty list: a transient receive error\n"
"(retry). OSError when the socket is closed. The GIL is released while blocked.");

static PyObject *Loop_run(Loop *self, PyObject *Py_UNUSED(ignored)) {
    int n, pending_send = self->queued > 0; /* replies a previous batch left unsent */
    struct timespec t1;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        if (pending_send) {
            transmit(self);
            if (self->sampled)
                clock_gettime(CLOCK_MONOTONIC, &t1);
        }
        n = receive(self);
        Py_END_ALLOW_THREADS
        if (pending_send)
            observe_sample(self, &t1);
        pending_send = 0;
        if (n < 0)
            return PyErr_Format(PyExc_OSError, "recvmmsg: socket closed");
        self->n = n;
        if (n == 0)
            return PyList_New(0);
        account(self, n);
        PyObject *serving = PyObject_GetAttr(self->index, self->serving_name);
        if (serving == NULL)
            return NULL;
        PyObject *rest = NULL;
        for (int i = 0; i < n; i++) {
            int got = PyDict_Check(serving) ? answer_one(self, serving, i) : 0;
            if (got < 0) {
                /* a bug must cost one query, never the batch: Python answers this one */
                PyErr_WriteUnraisable(self->index);
                got = 0;
            }
            if (got == 0) {
                if (rest == NULL && (rest = PyList_New(0)) == NULL) {
                    Py_DECREF(serving);
                    return NULL;
                }
                PyObject *idx = PyLong_FromLong(i);
                if (idx == NULL || PyList_Append(rest, idx) < 0) {
                    Py_XDECREF(idx);
                    Py_DECREF(rest);
                    Py_DECREF(serving);
                    return NULL;
                }
                Py_DECREF(idx);
            }
        }
        Py_DECREF(serving);
        if (rest != NULL)
            return rest;
        pending_send = 1;
    }
}

/* The datagram index `arg` of the last batch, or -1 with IndexError/TypeError set. */
static long datagram(Loop *self, PyObject *arg) {
    long i = PyLong_AsLong(arg);
    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0 || i >= self->n) {
        PyErr_SetString(PyExc_IndexError, "no such datagram in the last batch");
        return -1;
    }
    return i;
}

static PyObject *Loop_payload(Loop *self, PyObject *arg) {
    long i = datagram(self, arg);
    if (i < 0)
        return NULL;
    return PyBytes_FromStringAndSize((const char *)self->rbuf + (size_t)i * (size_t)self->size,
                                     (Py_ssize_t)self->rh[i].msg_len);
}

static PyObject *Loop_name(Loop *self, PyObject *arg) {
    long i = datagram(self, arg);
    if (i < 0)
        return NULL;
    socklen_t len = self->rh[i].msg_hdr.msg_namelen;
    if (len > sizeof(struct sockaddr_in6))
        len = sizeof(struct sockaddr_in6);
    return PyBytes_FromStringAndSize((const char *)&self->names[i], (Py_ssize_t)len);
}

static PyObject *Loop_queue(Loop *self, PyObject *args) {
    int i;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*", &i, &data))
        return NULL;
    if (i < 0 || i >= self->n || self->queued >= self->batch) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_IndexError, "no such datagram in the last batch");
        return NULL;
    }
    int fits = data.len <= SEND_SIZE;
    if (fits)
        put(self, i, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyBool_FromLong(fits);
}

static PyObject *Loop_send(Loop *self, PyObject *Py_UNUSED(ignored)) {
    struct timespec t1;
    Py_BEGIN_ALLOW_THREADS
    transmit(self);
    if (self->sampled)
        clock_gettime(CLOCK_MONOTONIC, &t1);
    Py_END_ALLOW_THREADS
    observe_sample(self, &t1);
    Py_RETURN_NONE;
}

static PyObject *Loop_get_largest(Loop *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->largest);
}

static PyObject *Loop_get_answered(Loop *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(self->answered);
}

static PyMethodDef Loop_methods[] = {
    {"run", (PyCFunction)Loop_run, METH_NOARGS, run_doc},
    {"payload", (PyCFunction)Loop_payload, METH_O, "payload(i) -> bytes: datagram i of the last batch"},
    {"name", (PyCFunction)Loop_name, METH_O, "name(i) -> bytes: the raw source sockaddr of datagram i"},
    {"queue", (PyCFunction)Loop_queue, METH_VARARGS,
     "queue(i, reply) -> bool: queue a reply to datagram i; False when too big for a send slot"},
    {"send", (PyCFunction)Loop_send, METH_NOARGS, "send(): send every queued reply in one sendmmsg"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Loop_getset[] = {
    {"largest", (getter)Loop_get_largest, NULL, "most datagrams one recvmmsg returned", NULL},
    {"answered", (getter)Loop_get_answered, NULL, "queries answered by the inline path", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "podns.clusterdns._fastudp.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Loop(fd, index, counts, observe, opt, udp_cap, size=4096, batch=64, sample=32): "
              "one UDP socket's batched receive, inline answers and batched send",
    .tp_methods = Loop_methods,
    .tp_getset = Loop_getset,
    .tp_init = (initproc)Loop_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastudp", "The cluster DNS's compiled UDP loop (see fastudp.py).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastudp(void) {
    if (PyType_Ready(&LoopType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0) {
        Py_DECREF(&LoopType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "SEND_SIZE", SEND_SIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
