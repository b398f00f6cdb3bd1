# cython: language_level=3, cdivision=True
"""The shared C layer of the kernel modules (see ``_common.pxd``): argument checks for the
Python wrappers, the thread policy of the parallel loops, and :c:func:`launch`."""

cimport numpy as cnp
from libc.stdlib cimport realloc
from cpython.pythread cimport PyThread_get_thread_ident
from libc.string cimport memcpy, memset
from cython.parallel cimport prange  # noqa: F401  (links OpenMP for omp_get_* users)

from fastbp_ext._simd cimport FASTBP_LIBMVEC

import os

import numpy as np

cnp.import_array()


# ==================================================================================
# Build flags
# ==================================================================================
def _probe_boundscheck():
    # True when this module was compiled with boundscheck on: index 1 of a length-1
    # view of a 3-element buffer raises with checks and reads valid memory without.
    cdef double[::1] view = np.zeros(3)[:1]
    cdef Py_ssize_t i = 1
    try:
        view[i] = 0.0
    except IndexError:
        return True
    return False


BOUNDSCHECK = _probe_boundscheck()
"""True when the kernels were built with ``FASTBP_BOUNDSCHECK=1`` (bounds and wrap-around
checks compiled in; setup.py gives every kernel module the same flags). The raw-pointer
loops are guarded by the validation of each Python-callable kernel in either build."""

LIBMVEC = bool(FASTBP_LIBMVEC)
"""True when the tanh/sigmoid/exp loops of ``_simd.h`` are vectorised through glibc's
libmvec."""


# ==================================================================================
# Launching kernels
# ==================================================================================
cdef int launch(const Kernel* k, Call* c) except -1:
    cdef int err
    with nogil:
        err = run(k, c)
    if err == KERR_OK:
        if _rec != NULL:
            record(k, c, -1, NULL, 0, -1)
        return 0
    return _raise_for(k, c, err)


cdef int launch_side(const Kernel* k, Call* c, int slot, Py_ssize_t nbytes) except -1:
    cdef int err
    with nogil:
        err = run(k, c)
    if err == KERR_OK:
        if _rec != NULL:
            record(k, c, slot, c.a[slot], nbytes, -1)
        return 0
    return _raise_for(k, c, err)


cdef int _raise_for(const Kernel* k, Call* c, int err) except -1:
    name = k.name.decode()
    if err == KERR_NOMEM:
        raise MemoryError(f"kernel {name}: out of memory for its scratch space")
    if err == KERR_INDEX:
        raise IndexError(f"kernel {name}: index at position {c.info} is out of range")
    raise RuntimeError(f"kernel {name} failed with error code {err}")


# ==================================================================================
# Recording (compiled step plans, fastbp_ext._plan)
# ==================================================================================
cdef Recording* _rec = NULL


cdef Recording* active_recording() noexcept nogil:
    return _rec


cdef int set_recording(Recording* r) except -1:
    global _rec
    _rec = r
    return 0


cdef int record(const Kernel* k, Call* c, int slot, const void* side,
                Py_ssize_t nbytes, Py_ssize_t cb) except -1:
    cdef Recording* r = _rec
    cdef Py_ssize_t cap, pad
    cdef void* p
    if r == NULL or PyThread_get_thread_ident() != r.owner:
        return 0
    if r.n == r.cap:
        cap = 2 * r.cap if r.cap else 64
        p = realloc(r.steps, cap * sizeof(Step))
        if p == NULL:
            raise MemoryError("compiled step plan: out of memory for its steps")
        r.steps = <Step*>p
        r.cap = cap
    cdef Step* st = &r.steps[r.n]
    st.k = k
    if c != NULL:
        memcpy(&st.c, c, sizeof(Call))
    else:
        memset(&st.c, 0, sizeof(Call))
    st.side = -1
    st.slot = slot
    st.cb = cb
    if nbytes > 0:
        pad = (nbytes + 63) // 64 * 64
        if r.nside + pad > r.capside:
            cap = 2 * (r.nside + pad) + 4096
            p = realloc(r.side, cap)
            if p == NULL:
                raise MemoryError("compiled step plan: out of memory for its records")
            r.side = <char*>p
            r.capside = cap
        memcpy(r.side + r.nside, side, nbytes)
        st.side = r.nside
        r.nside += pad
    r.n += 1
    return 0


# ---- kernels that exist for recordings: the copies and checks a wrapper does in Python
ctypedef struct _Strided:
    int nd
    Py_ssize_t shape[32]
    Py_ssize_t strides[32]     # in bytes


cdef int k_contig(floating* out, Call* c) noexcept nogil:
    # out: C-contiguous destination; a: src data, _Strided*; n: item size in bytes
    cdef _Strided* m = <_Strided*>c.a[1]
    cdef const char* src = <const char*>c.a[0]
    cdef char* dst = <char*>out
    cdef Py_ssize_t isz = c.n[0], total = 1, i, off
    cdef Py_ssize_t idx[32]
    cdef int j, nd = m.nd
    for j in range(nd):
        total *= m.shape[j]
        idx[j] = 0
    for i in range(total):
        off = 0
        for j in range(nd):
            off += idx[j] * m.strides[j]
        memcpy(dst + i * isz, src + off, isz)
        j = nd - 1
        while j >= 0:
            idx[j] += 1
            if idx[j] < m.shape[j]:
                break
            idx[j] = 0
            j -= 1
    return 0


cdef int k_check_ids(floating* out, Call* c) noexcept nogil:
    # a: ids; n: count, V, ids are int32
    cdef Py_ssize_t bad
    if c.n[2]:
        bad = _first_bad_id(c.n[0], <cnp.int32_t*>c.a[0], c.n[1])
    else:
        bad = _first_bad_id(c.n[0], <cnp.int64_t*>c.a[0], c.n[1])
    if bad >= 0:
        c.info = bad
        return KERR_INDEX
    return 0


cdef Kernel K_CONTIG = Kernel(b"contig", k_contig[float], k_contig[double])
cdef Kernel K_CHECK_IDS = Kernel(b"check_ids", k_check_ids[float], k_check_ids[double])
cdef Kernel K_CHECK_LABELS = Kernel(b"check_labels", k_check_ids[float], k_check_ids[double])


cdef int _record_check(const Kernel* k, cnp.ndarray ids, Py_ssize_t V) except -1:
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = F32
    c.out = NULL
    c.a[0] = cnp.PyArray_DATA(ids)
    c.n[0] = cnp.PyArray_SIZE(ids)
    c.n[1] = V
    c.n[2] = cnp.PyArray_TYPE(ids) == cnp.NPY_INT32
    c.info = -1
    return record(k, &c, -1, NULL, 0, -1)


cdef int call_dtype(int typenum) noexcept:
    return F32 if typenum == cnp.NPY_FLOAT else F64


# ==================================================================================
# Threads
# ==================================================================================
cdef int _nthreads = 1

# Bytes of input per thread above which a loop is split over threads. An OpenMP parallel
# region costs ~1.5-2 us on the 2-core machines of this project, so a loop is split only
# when it takes ~4 us or more serially. Measured break-evens (1 vs 2 threads): tanh 32k
# float32 / 16k float64 elements, backprop_tanh and sgd 128k / 64k, row gathers 256k /
# 128k. Thresholds are in bytes so float32 and float64 share them.
cdef Py_ssize_t _thresholds[3]
_thresholds[PAR_TRANSC] = 65536
_thresholds[PAR_ARITH] = 262144
_thresholds[PAR_COPY] = 524288


def _parallel_thresholds(transc=None, arith=None, copy=None):
    """Get (and optionally set) the bytes per thread above which loops are split over
    threads: ``(transcendental, arithmetic, copy)``. For tuning and benchmarks."""
    if transc is not None:
        _thresholds[PAR_TRANSC] = max(1, int(transc))
    if arith is not None:
        _thresholds[PAR_ARITH] = max(1, int(arith))
    if copy is not None:
        _thresholds[PAR_COPY] = max(1, int(copy))
    return _thresholds[PAR_TRANSC], _thresholds[PAR_ARITH], _thresholds[PAR_COPY]


def _default_threads():
    n = os.cpu_count() or 1
    env = os.environ.get("FASTBP_NUM_THREADS", "")
    if env.strip():
        try:
            cap = int(env)
        except ValueError:
            raise ValueError(
                f"FASTBP_NUM_THREADS must be a positive integer, got {env!r}") from None
        if cap < 1:
            raise ValueError(f"FASTBP_NUM_THREADS must be a positive integer, got {env!r}")
        n = min(n, cap)
    return n


def set_num_threads(n):
    """Set the number of OpenMP threads used by the kernels' parallel loops.

    Parameters
    ----------
    n : int
        A positive number of threads. BLAS threads are not affected (see
        :func:`fastbp.threads.set_num_threads` for both).

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.
    """
    global _nthreads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of threads must be a positive integer, got {n!r}")
    _nthreads = int(n)


def get_num_threads():
    """Return the number of OpenMP threads used by the kernels' parallel loops.

    Returns
    -------
    int
        Defaults to ``os.cpu_count()``, capped by ``FASTBP_NUM_THREADS`` when set.
    """
    return _nthreads


_nthreads = _default_threads()


cdef int threads_for(Py_ssize_t work, int kind) noexcept nogil:
    cdef Py_ssize_t threshold = _thresholds[kind]
    if _nthreads <= 1 or work < threshold:
        return 1
    cdef Py_ssize_t t = work // threshold
    return <int>(t if t < _nthreads else _nthreads)


cdef Py_ssize_t _first_bad_id(Py_ssize_t n, const index_t* ids,   # IN
                              Py_ssize_t V) noexcept nogil:
    """Position of the first id outside [0, V), or -1."""
    cdef Py_ssize_t i
    for i in range(n):
        if ids[i] < 0 or ids[i] >= V:
            return i
    return -1


# ==================================================================================
# Layer 3 support: validation at the Python boundary (cheap numpy C-API checks)
# ==================================================================================
class UnsupportedBroadcast(ValueError):
    """Raised by the broadcasting kernels (``add``, ``sub``, ``mul``, ``unbroadcast``,
    ``reduce_sum``) for a shape pattern they do not cover; the backend then falls back
    to the numpy reference."""


cdef inline bint _is_float(int t) noexcept:
    return t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE


cdef int ftype(cnp.ndarray a, str name) except -1:
    """Type number of a float32/float64 array, else TypeError."""
    cdef int t = cnp.PyArray_TYPE(a)
    if _is_float(t):
        return t
    raise TypeError(f"{name} must be a float32 or float64 array, got dtype {a.dtype}")


cdef int same_type(cnp.ndarray a, int t, str name, cnp.ndarray ref, str refname) except -1:
    if cnp.PyArray_TYPE(a) == t:
        return 0
    ftype(a, name)
    raise TypeError(
        f"mixed dtypes: {refname} is {ref.dtype} but {name} is {a.dtype}; "
        "fastbp never upcasts silently (cast one of them explicitly)")


cdef cnp.ndarray contig(cnp.ndarray a):
    """A C-contiguous, aligned, native-byte-order version of an input (copy if needed)."""
    if good(a):
        return a
    # np.array, not np.ascontiguousarray: the latter turns a 0-d array into shape (1,)
    cdef cnp.ndarray r = np.array(a, dtype=a.dtype.newbyteorder("="), order="C")
    if _rec != NULL:
        _record_contig(a, r)
    return r


cdef int _record_contig(cnp.ndarray a, cnp.ndarray r) except -1:
    """Record the copy ``contig`` made, so that a replay copies the current values."""
    cdef int nd = cnp.PyArray_NDIM(a), i
    if not cnp.PyArray_ISNOTSWAPPED(a) or nd > 32:
        raise TypeError("a compiled step cannot replay this conversion (non-native byte "
                        f"order or more than 32 dimensions, shape {shape_of(a)})")
    cdef _Strided m
    m.nd = nd
    for i in range(nd):
        m.shape[i] = cnp.PyArray_DIMS(a)[i]
        m.strides[i] = cnp.PyArray_STRIDES(a)[i]
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = F32
    c.out = cnp.PyArray_DATA(r)
    c.a[0] = cnp.PyArray_DATA(a)
    c.a[1] = &m
    c.n[0] = cnp.PyArray_ITEMSIZE(a)
    return record(&K_CONTIG, &c, 1, &m, sizeof(_Strided), -1)


cdef inline void _extent(cnp.ndarray a, char** lo, char** hi) noexcept:
    """The byte range [lo, hi) that the elements of a (any strides) lie in."""
    cdef char* p = <char*>cnp.PyArray_DATA(a)
    cdef char* l = p
    cdef char* h = p + cnp.PyArray_ITEMSIZE(a)
    cdef int i
    cdef Py_ssize_t span
    for i in range(cnp.PyArray_NDIM(a)):
        span = (cnp.PyArray_DIMS(a)[i] - 1) * cnp.PyArray_STRIDES(a)[i]
        if span < 0:
            l += span
        else:
            h += span
    lo[0] = l
    hi[0] = h


cdef bint overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    """Can the buffers of a and b (any strides) share memory? Compares the byte ranges
    their elements span (a conservative test, exact for contiguous arrays)."""
    cdef char* la
    cdef char* ha
    cdef char* lb
    cdef char* hb
    if cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_SIZE(b) == 0:
        return False
    _extent(a, &la, &ha)
    _extent(b, &lb, &hb)
    return la < hb and lb < ha


cdef int writable(cnp.ndarray out, str name) except -1:
    if not (cnp.PyArray_ISCARRAY(out) and cnp.PyArray_ISNOTSWAPPED(out)):
        if not cnp.PyArray_ISWRITEABLE(out):
            raise ValueError(f"{name} is read-only")
        raise ValueError(
            f"{name} must be a C-contiguous, aligned, native-byte-order array "
            f"(it is written in place), got strides {shape_of(out, True)} for shape {shape_of(out)}")
    return 0


cdef cnp.ndarray out_like(cnp.ndarray out, int t, int nd, cnp.npy_intp* dims, str what):
    """Validate a caller's ``out`` (dtype, layout, shape ``dims``) or allocate one."""
    if out is None:
        return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, t, 0)
    if cnp.PyArray_TYPE(out) != t:
        ftype(out, "out")
        raise TypeError(
            f"mixed dtypes: out is {out.dtype} but the {what} is {np.dtype(tname(t))}; "
            "fastbp never upcasts silently")
    if cnp.PyArray_NDIM(out) != nd or (
            nd and not cnp.PyArray_CompareLists(cnp.PyArray_DIMS(out), dims, nd)):
        raise ValueError(
            f"out has shape {shape_of(out)} but the {what} has shape "
            f"{tuple([dims[i] for i in range(nd)])}")
    writable(out, "out")
    return out


cdef str tname(int t):
    return "float32" if t == cnp.NPY_FLOAT else "float64"


cdef int no_overlap(cnp.ndarray out, cnp.ndarray a, str name) except -1:
    if overlap(out, a):
        raise ValueError(f"out shares memory with {name}; BLAS needs distinct buffers")
    return 0


cdef int same_or_apart(cnp.ndarray out, cnp.ndarray a, str outname, str name) except -1:
    """Elementwise kernels may write in place (``out`` *is* the input's buffer) but not
    into a buffer that partly overlaps an input (the result would depend on the order of
    the loop)."""
    if overlap(out, a) and not (cnp.PyArray_DATA(out) == cnp.PyArray_DATA(a)
                                 and same_shape(out, a)):
        raise ValueError(f"{outname} partly overlaps {name}; use the same array or a "
                         "separate buffer")
    return 0


cdef int check_beta(double beta) except -1:
    if beta != 0.0 and beta != 1.0:
        raise ValueError(f"beta must be 0.0 or 1.0, got {beta!r}")
    return 0


cdef double out_beta(object out, double beta) except -1.0:
    if out is None:
        return 0.0
    check_beta(beta)
    return beta


cdef int blas_dim(Py_ssize_t n) except -1:
    if n > 2147483647:
        raise ValueError(f"dimension {n} is too large for 32-bit BLAS")
    return 0


cdef cnp.ndarray index_array(object ids, str what):
    """ids as a C-contiguous int32/int64 array (other integer dtypes converted)."""
    cdef cnp.ndarray a
    if not cnp.PyArray_Check(ids):
        raise TypeError(f"{what} must be a numpy integer array, got {type(ids).__name__}")
    a = <cnp.ndarray>ids
    cdef int t = cnp.PyArray_TYPE(a)
    if (t == cnp.NPY_INT64 or t == cnp.NPY_INT32) and good(a):
        return a
    kind = a.dtype.kind
    if kind not in "iu":
        raise TypeError(f"{what} must be an integer array, got dtype {a.dtype}")
    if t == cnp.NPY_INT64 or t == cnp.NPY_INT32:
        return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")
    if a.dtype.itemsize == 8 and kind == "u" and a.size:
        big = a.max()
        if big > np.iinfo(np.int64).max:
            raise IndexError(f"id {big} is out of range")
    return np.array(a, dtype=np.int64, order="C")


cdef Py_ssize_t bad_id(cnp.ndarray ids, Py_ssize_t V) noexcept:
    cdef Py_ssize_t n = cnp.PyArray_SIZE(ids)
    cdef void* p = cnp.PyArray_DATA(ids)
    if cnp.PyArray_TYPE(ids) == cnp.NPY_INT32:
        return _first_bad_id(n, <cnp.int32_t*>p, V)
    return _first_bad_id(n, <cnp.int64_t*>p, V)


cdef int check_ids(cnp.ndarray ids, Py_ssize_t V, str what) except -1:
    cdef Py_ssize_t bad = bad_id(ids, V)
    if bad >= 0:
        raise IndexError(
            f"{what} {ids.reshape(-1)[bad]} is out of range for a table of {V} rows")
    if _rec != NULL:  # a replay checks the ids of its call (C, before the kernel)
        _record_check(&K_CHECK_IDS, ids, V)
    return 0


cdef int check_labels(cnp.ndarray y, Py_ssize_t n, Py_ssize_t C) except -1:
    if cnp.PyArray_NDIM(y) != 1 or dim(y, 0) != n:
        raise ValueError(f"class ids of shape {shape_of(y)} do not match logits with {n} rows")
    cdef Py_ssize_t bad = bad_id(y, C)
    if bad >= 0:
        raise ValueError(f"class id {y[bad]} is outside [0, {C})")
    if _rec != NULL:
        _record_check(&K_CHECK_LABELS, y, C)
    return 0


cdef cnp.ndarray arr(object a, str name):
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    return <cnp.ndarray>a


cdef cnp.ndarray zero_d(double value, int t):
    cdef cnp.ndarray r = <cnp.ndarray>cnp.PyArray_EMPTY(0, NULL, t, 0)
    if t == cnp.NPY_FLOAT:
        (<float*>cnp.PyArray_DATA(r))[0] = <float>value
    else:
        (<double*>cnp.PyArray_DATA(r))[0] = value
    return r


# ==================================================================================
