# cython: language_level=3
"""The shared C layer of fastbp's kernel modules: types, the kernel-call ABI, argument
checks and the thread policy. Every kernel module ``cimport``\\ s what it needs from here.

The kernel-call ABI
-------------------
Every kernel has two layers, as cython-blis does:

1. a C-level entry point ``cdef int k_<name>(floating* out, Call* c) noexcept nogil``,
   written once for the fused ``floating`` type, that reads everything it needs from the
   :c:type:`Call` record (raw pointers, sizes, trace-time constants) and writes ``out``
   (plus any further outputs named in ``c.a``); it returns 0, or a nonzero error code
   (the wrapper turns it into an exception);
2. a Python ``def`` wrapper that validates its arguments with the numpy C API, fills a
   ``Call`` and hands it to :c:func:`launch`.

A :c:type:`Kernel` holds a kernel's float and double specialisations; :c:func:`run` is
the one place where the dtype is dispatched. A compiled step plan is an array of
``(Kernel*, Call)`` pairs replayed with ``run`` and no Python in between, so nothing a
kernel computes may live in its Python wrapper, and any value that changes from call to
call (an upstream gradient's scale, a step count) is read through a pointer in ``c.a``,
never baked into ``c.s``. ``c.s`` holds constants fixed when the call is made
(learning rate, ``beta``, an exponent, a dropout rate).
"""

cimport numpy as cnp

# The one floating type of every kernel: float32 and float64 share one body.
ctypedef fused floating:
    float
    double

# Integer ids / class labels read without conversion (other integer dtypes are
# converted to int64 once, at the Python boundary).
ctypedef fused index_t:
    cnp.int32_t
    cnp.int64_t

# ---------------------------------------------------------------- kernel-call ABI
cdef enum:
    F32 = 0           # Call.dtype
    F64 = 1
    CALL_NA = 8       # number of pointer slots in a Call
    CALL_NN = 12      # number of size slots
    CALL_NS = 4       # number of constant slots

cdef enum:            # error codes returned by kernels
    KERR_OK = 0
    KERR_NOMEM = 1    # a scratch allocation failed
    KERR_INDEX = 2    # an index out of range (position in Call.info)

# A wrapper zeroes its Call (memset) before filling the slots its kernel uses: a plan's
# buffer analysis compares every pointer slot, so an unused one must not hold a stale
# pointer left on the stack.
ctypedef struct Call:
    int dtype                  # F32 or F64: which specialisation run() calls
    void* out                  # the buffer the kernel writes (its first argument)
    void* a[CALL_NA]           # further buffers: inputs, saved arrays, extra outputs
    Py_ssize_t n[CALL_NN]      # sizes, strides (in elements), modes, index-type flags
    double s[CALL_NS]          # constants fixed at call time: lr, beta, p, rate
    Py_ssize_t info            # set by a kernel that fails (e.g. position of a bad id)

ctypedef int (*kernel_f32)(float* out, Call* c) noexcept nogil
ctypedef int (*kernel_f64)(double* out, Call* c) noexcept nogil

ctypedef struct Kernel:
    const char* name
    kernel_f32 f32
    kernel_f64 f64


cdef inline int run(const Kernel* k, Call* c) noexcept nogil:
    """The dtype dispatch of every kernel, written once."""
    if c.dtype == F32:
        return k.f32(<float*>c.out, c)
    return k.f64(<double*>c.out, c)


cdef int launch(const Kernel* k, Call* c) except -1
"""Run ``k`` on ``c`` without the GIL; raise MemoryError/IndexError for a kernel's
error code."""

cdef int launch_side(const Kernel* k, Call* c, int slot, Py_ssize_t nbytes) except -1
"""``launch`` for a call whose ``c.a[slot]`` points to a ``nbytes`` side record on the
wrapper's stack (a shape/stride description): a recording copies the record, so that the
replayed call does not read the wrapper's dead stack frame."""

# ---------------------------------------------------------------- recording (plans)
# While a step is traced (fastbp_ext._plan), every successful launch appends a copy of
# its call to the active Recording; a compiled step plan replays them with ``run``.
ctypedef struct Step:
    const Kernel* k            # the kernel, or NULL for a Python callback step
    Call c                     # the call, copied at trace time
    Py_ssize_t side            # offset of the call's side record in Recording.side, or -1
    int slot                   # the c.a slot that points to the side record
    Py_ssize_t cb              # index of the Python callback (k == NULL)

ctypedef struct Recording:
    Step* steps
    Py_ssize_t n, cap
    char* side                 # side records, 64-byte padded
    Py_ssize_t nside, capside
    unsigned long owner        # the thread that records (other threads' calls are not)

cdef Recording* active_recording() noexcept nogil
cdef int set_recording(Recording* r) except -1
cdef int record(const Kernel* k, Call* c, int slot, const void* side,
                Py_ssize_t nbytes, Py_ssize_t cb) except -1
"""Append one step to the active recording (no-op when there is none)."""

cdef int call_dtype(int typenum) noexcept
"""F32/F64 for a numpy type number (NPY_FLOAT / NPY_DOUBLE)."""

# ---------------------------------------------------------------- argument checks
# Cheap numpy C-API checks used by the Python wrappers before any nogil code.
cdef inline Py_ssize_t dim(cnp.ndarray a, int i) noexcept nogil:
    return cnp.PyArray_DIMS(a)[i]

cdef inline bint good(cnp.ndarray a) noexcept:
    """C-contiguous, aligned, native byte order."""
    return cnp.PyArray_ISCARRAY_RO(a) and cnp.PyArray_ISNOTSWAPPED(a)

cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int nd = cnp.PyArray_NDIM(a)
    return nd == cnp.PyArray_NDIM(b) and (
        nd == 0 or cnp.PyArray_CompareLists(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b), nd))

cdef inline object shape_of(cnp.ndarray a, bint strides=False):
    return (<object>a).strides if strides else (<object>a).shape

cdef bint overlap(cnp.ndarray a, cnp.ndarray b) noexcept
cdef str tname(int t)
cdef int ftype(cnp.ndarray a, str name) except -1
cdef int same_type(cnp.ndarray a, int t, str name, cnp.ndarray ref, str refname) except -1
cdef cnp.ndarray contig(cnp.ndarray a)
cdef int writable(cnp.ndarray out, str name) except -1
cdef cnp.ndarray out_like(cnp.ndarray out, int t, int nd, cnp.npy_intp* dims, str what)
cdef int no_overlap(cnp.ndarray out, cnp.ndarray a, str name) except -1
cdef int same_or_apart(cnp.ndarray out, cnp.ndarray a, str outname, str name) except -1
cdef int check_beta(double beta) except -1
cdef double out_beta(object out, double beta) except -1.0
"""The ``beta`` a kernel uses: 0 when there is no ``out`` to accumulate into, else the
caller's, which must be 0.0 or 1.0 (ValueError otherwise)."""
cdef int blas_dim(Py_ssize_t n) except -1
cdef cnp.ndarray index_array(object ids, str what)
cdef Py_ssize_t bad_id(cnp.ndarray ids, Py_ssize_t V) noexcept
cdef int check_ids(cnp.ndarray ids, Py_ssize_t V, str what) except -1
cdef int check_labels(cnp.ndarray y, Py_ssize_t n, Py_ssize_t C) except -1
cdef cnp.ndarray arr(object a, str name)
cdef cnp.ndarray zero_d(double value, int t)

# ---------------------------------------------------------------- threads
# Bytes of input per thread above which a loop is split over threads (see _common.pyx).
cdef enum:
    PAR_TRANSC = 0    # tanh / sigmoid / exp / sqrt loops
    PAR_ARITH = 1     # memory-bound arithmetic (adds, products)
    PAR_COPY = 2      # plain copies (row gathers)

cdef int threads_for(Py_ssize_t work, int kind) noexcept nogil
"""Number of OpenMP threads for a loop over ``work`` bytes of the given kind."""


# ---------------------------------------------------------------- per-element helpers
cdef inline floating put(floating r, floating o, floating beta) noexcept nogil:
    """``out = r + beta*out``, with ``out`` never read when ``beta == 0`` (GCC unswitches
    the branch). Cython writes a float literal as a C double, which would promote float32
    arithmetic, so constants are typed locals."""
    cdef floating zero = 0
    return r if beta == zero else r + beta * o
