# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py (off, or on with
# FASTBP_BOUNDSCHECK=1); a file-level directive here would override them.
"""Typed kernels of fastbp: BLAS through :mod:`scipy.linalg.cython_blas`, fused loops.

Three layers, as in scikit-learn's ``_loss`` module:

1. tiny per-element ``cdef inline ... noexcept nogil`` helpers;
2. ``nogil`` loops over C-contiguous row-major data, written once for the fused
   ``floating`` type (``float``/``double``); BLAS calls pick ``s*``/``d*`` with
   ``if floating is float``; row loops use ``prange`` above measured sizes;
3. Python-callable ``def`` kernels that validate everything (dtype, shape, layout, index
   ranges) with the cheap numpy C API *before* entering ``nogil`` code, then dispatch.

Conventions of the Python API (those of :class:`fastbp.backends.numpy_ops.NumpyOps`):

* ops that produce a gradient take ``out`` and ``beta`` and write
  ``out = result + beta * out``; ``beta == 0`` never reads ``out``; ``out=None``
  allocates (and ``beta`` is then ignored). The ``out`` array is returned.
* arrays are float32 or float64, all of one dtype: mixing raises :class:`TypeError`
  naming both dtypes (no silent upcasts); other dtypes raise :class:`TypeError`.
* non-C-contiguous, misaligned or byte-swapped *inputs* are copied to a C-contiguous
  native array first (never misread); arrays the kernel *writes* (``out``, parameters
  and optimiser state updated in place) must be C-contiguous, aligned, native and
  writeable, else :class:`ValueError`.
* wrong shapes raise :class:`ValueError` naming the shapes; ids outside ``[0, V)`` raise
  :class:`IndexError` naming the id; non-integer ids or class ids raise
  :class:`TypeError`; class ids outside ``[0, C)`` raise :class:`ValueError`.
* empty inputs work (the loss of an empty batch is 0).
"""

cimport cython
cimport numpy as cnp
from cython.parallel cimport prange
from libc.string cimport memcpy

import numpy as np

cnp.import_array()


# ==================================================================================
# Threads: the policy lives in _common (one thread count for every kernel module)
# ==================================================================================
from fastbp_ext._common cimport threads_for as _threads_for, PAR_ARITH
from fastbp_ext._common import (  # noqa: F401
    set_num_threads, get_num_threads, _parallel_thresholds, _default_threads)
from fastbp_ext._common import BOUNDSCHECK, LIBMVEC, _probe_boundscheck  # noqa: F401


# ==================================================================================
# Layer 1: per-element helpers
# ==================================================================================
# Cython writes an integer literal in floating context as a C double (``1.0``), which
# would promote float32 arithmetic to double; constants are typed locals instead.
cdef inline floating _tanh_grad(floating dy, floating y) noexcept nogil:
    cdef floating one = 1
    return dy * (one - y * y)

cdef inline floating _sigmoid_grad(floating dy, floating y) noexcept nogil:
    cdef floating one = 1
    return dy * y * (one - y)

cdef inline floating _relu_grad(floating dy, floating y) noexcept nogil:
    # dy * [y > 0] (dy * 0 keeps NaN/Inf upstream, as numpy does), written as a select of
    # two constants so that GCC vectorises it (with -fno-trapping-math); a branch per
    # element is mispredicted half the time (15x slower).
    cdef floating zero = 0, one = 1
    return dy * (one if y > zero else zero)


cdef inline floating _put(floating r, floating o, floating beta) noexcept nogil:
    # out = r + beta*out, with out never read when beta == 0 (GCC unswitches the branch)
    cdef floating zero = 0
    return r if beta == zero else r + beta * o


# ==================================================================================
# Layer 2: nogil loops (one body for float and double)
# ==================================================================================


cdef void col_sums(Py_ssize_t n, Py_ssize_t m,
                   const floating* X,      # IN  (n, m)
                   floating beta,
                   floating* out,          # OUT (m,) = X.sum(0) + beta out
                   ) noexcept nogil:
    # part of the C API of _kernels.pxd (the kernels that used it moved to _reductions)
    cdef Py_ssize_t i, j
    if n == 0:
        for j in range(m):
            out[j] = 0 if beta == 0 else beta * out[j]
        return
    for j in range(m):
        out[j] = _put(X[j], out[j], beta)
    for i in range(1, n):
        for j in range(m):
            out[j] = out[j] + X[i * m + j]


cdef inline void _binop_vv(int op, Py_ssize_t m, const floating* x, const floating* y,
                           floating* out) noexcept nogil:
    cdef Py_ssize_t j
    if op == 0:
        for j in range(m):
            out[j] = x[j] + y[j]
    elif op == 1:
        for j in range(m):
            out[j] = x[j] - y[j]
    else:
        for j in range(m):
            out[j] = x[j] * y[j]


cdef inline void _binop_vs(int op, Py_ssize_t m, const floating* x, floating s,
                           floating* out) noexcept nogil:
    cdef Py_ssize_t j
    if op == 0:
        for j in range(m):
            out[j] = x[j] + s
    elif op == 1:
        for j in range(m):
            out[j] = x[j] - s
    else:
        for j in range(m):
            out[j] = x[j] * s


cdef inline void _binop_sv(int op, Py_ssize_t m, floating s, const floating* y,
                           floating* out) noexcept nogil:
    cdef Py_ssize_t j
    if op == 0:
        for j in range(m):
            out[j] = s + y[j]
    elif op == 1:
        for j in range(m):
            out[j] = s - y[j]
    else:
        for j in range(m):
            out[j] = s * y[j]


cdef void binop_rows(int op, Py_ssize_t n, Py_ssize_t m,
                     const floating* x, Py_ssize_t xr, bint xv,  # IN  row stride, vector?
                     const floating* y, Py_ssize_t yr, bint yv,  # IN
                     floating* out,                              # OUT (n, m)
                     ) noexcept nogil:
    """out[i, j] = x[i*xr + j*xv] (op) y[i*yr + j*yv]: same shape, row bias, scalar.
    (op: 0 add, 1 sub, 2 mul; one loop per op so that each vectorises.)"""
    cdef Py_ssize_t i
    for i in range(n):
        if xv and yv:
            _binop_vv(op, m, x + i * xr, y + i * yr, out + i * m)
        elif xv:
            _binop_vs(op, m, x + i * xr, y[i * yr], out + i * m)
        else:
            _binop_sv(op, m, x[i * xr], y + i * yr, out + i * m)


cdef void scale_loop(Py_ssize_t n, floating alpha,
                     const floating* x,    # IN
                     floating beta,
                     floating* out,        # OUT out = alpha x + beta out
                     ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _put(x[i] * alpha, out[i], beta)


cdef void mul_loop(Py_ssize_t lo, Py_ssize_t hi,
                   const floating* a,      # IN
                   const floating* b,      # IN
                   floating beta,
                   floating* out,          # OUT out = a*b + beta out
                   ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(lo, hi):
        out[i] = _put(a[i] * b[i], out[i], beta)


cdef enum:
    ACT_IDENTITY = 0
    ACT_TANH = 1
    ACT_SIGMOID = 2
    ACT_RELU = 3


cdef void act_backward(int act, Py_ssize_t lo, Py_ssize_t hi,
                       const floating* dY,   # IN
                       const floating* Y,    # IN  saved output f(z)
                       floating beta,
                       floating* out,        # OUT dX = dY f'(z) + beta out
                       ) noexcept nogil:
    cdef Py_ssize_t i
    if act == ACT_TANH:
        for i in range(lo, hi):
            out[i] = _put(_tanh_grad(dY[i], Y[i]), out[i], beta)
    elif act == ACT_SIGMOID:
        for i in range(lo, hi):
            out[i] = _put(_sigmoid_grad(dY[i], Y[i]), out[i], beta)
    elif act == ACT_RELU:
        for i in range(lo, hi):
            out[i] = _put(_relu_grad(dY[i], Y[i]), out[i], beta)
    else:
        for i in range(lo, hi):
            out[i] = _put(dY[i], out[i], beta)


cdef void act_backward_par(int act, Py_ssize_t n, const floating* dY, const floating* Y,
                           floating beta, floating* out) noexcept nogil:
    cdef int nt = _threads_for(n * sizeof(floating), PAR_ARITH)
    cdef Py_ssize_t c, lo, hi, chunk
    if nt == 1:
        act_backward(act, 0, n, dY, Y, beta, out)
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        if lo < hi:
            act_backward(act, lo, hi, dY, Y, beta, out)


# ==================================================================================
# Layer 3 support: validation at the Python boundary (cheap numpy C-API checks)
# ==================================================================================
class UnsupportedBroadcast(ValueError):
    """Raised by the broadcasting kernels (``add``, ``sub``, ``mul``, ``unbroadcast``,
    ``reduce_sum``) for a shape pattern they do not cover; the backend then falls back
    to the numpy reference."""


cdef inline object _shape(cnp.ndarray a, bint strides=False):
    return (<object>a).strides if strides else (<object>a).shape


cdef inline bint _is_float(int t) noexcept:
    return t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE


cdef int _ftype(cnp.ndarray a, str name) except -1:
    """Type number of a float32/float64 array, else TypeError."""
    cdef int t = cnp.PyArray_TYPE(a)
    if _is_float(t):
        return t
    raise TypeError(f"{name} must be a float32 or float64 array, got dtype {a.dtype}")


cdef int _same_type(cnp.ndarray a, int t, str name, cnp.ndarray ref, str refname) except -1:
    if cnp.PyArray_TYPE(a) == t:
        return 0
    _ftype(a, name)
    raise TypeError(
        f"mixed dtypes: {refname} is {ref.dtype} but {name} is {a.dtype}; "
        "fastbp never upcasts silently (cast one of them explicitly)")


cdef inline bint _good(cnp.ndarray a) noexcept:
    return cnp.PyArray_ISCARRAY_RO(a) and cnp.PyArray_ISNOTSWAPPED(a)


cdef cnp.ndarray _contig(cnp.ndarray a):
    """A C-contiguous, aligned, native-byte-order version of an input (copy if needed)."""
    if _good(a):
        return a
    # np.array, not np.ascontiguousarray: the latter turns a 0-d array into shape (1,)
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int nd = cnp.PyArray_NDIM(a)
    return nd == cnp.PyArray_NDIM(b) and (
        nd == 0 or cnp.PyArray_CompareLists(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b), nd))


cdef inline Py_ssize_t _dim(cnp.ndarray a, int i) noexcept nogil:
    return cnp.PyArray_DIMS(a)[i]


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b) noexcept:
    """Do the (contiguous) buffers of a and b share memory?"""
    cdef char* pa = <char*>cnp.PyArray_DATA(a)
    cdef char* pb = <char*>cnp.PyArray_DATA(b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    return na > 0 and nb > 0 and pa < pb + nb and pb < pa + na


cdef int _writable(cnp.ndarray out, str name) except -1:
    if not (cnp.PyArray_ISCARRAY(out) and cnp.PyArray_ISNOTSWAPPED(out)):
        if not cnp.PyArray_ISWRITEABLE(out):
            raise ValueError(f"{name} is read-only")
        raise ValueError(
            f"{name} must be a C-contiguous, aligned, native-byte-order array "
            f"(it is written in place), got strides {_shape(out, True)} for shape {_shape(out)}")
    return 0


cdef cnp.ndarray _out_like(cnp.ndarray out, int t, int nd, cnp.npy_intp* dims, str what):
    """Validate a caller's ``out`` (dtype, layout, shape ``dims``) or allocate one."""
    if out is None:
        return <cnp.ndarray>cnp.PyArray_EMPTY(nd, dims, t, 0)
    if cnp.PyArray_TYPE(out) != t:
        _ftype(out, "out")
        raise TypeError(
            f"mixed dtypes: out is {out.dtype} but the {what} is {np.dtype(_tname(t))}; "
            "fastbp never upcasts silently")
    if cnp.PyArray_NDIM(out) != nd or (
            nd and not cnp.PyArray_CompareLists(cnp.PyArray_DIMS(out), dims, nd)):
        raise ValueError(
            f"out has shape {_shape(out)} but the {what} has shape "
            f"{tuple([dims[i] for i in range(nd)])}")
    _writable(out, "out")
    return out


cdef inline str _tname(int t):
    return "float32" if t == cnp.NPY_FLOAT else "float64"


cdef int _same_or_apart(cnp.ndarray out, cnp.ndarray a, str outname, str name) except -1:
    """Elementwise kernels may write in place (``out`` *is* the input's buffer) but not
    into a buffer that partly overlaps an input (the result would depend on the order of
    the loop)."""
    if _overlap(out, a) and not (cnp.PyArray_DATA(out) == cnp.PyArray_DATA(a)
                                 and _same_shape(out, a)):
        raise ValueError(f"{outname} partly overlaps {name}; use the same array or a "
                         "separate buffer")
    return 0


cdef int _check_beta(double beta) except -1:
    if beta != 0.0 and beta != 1.0:
        raise ValueError(f"beta must be 0.0 or 1.0, got {beta!r}")
    return 0


cdef inline cnp.ndarray _arr(object a, str name):
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    return <cnp.ndarray>a


# ==================================================================================
# Layer 3: Python-callable kernels
# ==================================================================================
# ------------------------------------------------------------------ elementwise
cdef object _binary(int op, cnp.ndarray X, cnp.ndarray Y):
    """Same shape, (n, m) with (m,) (either order), or a size-1 operand; else
    UnsupportedBroadcast."""
    cdef int t = _ftype(X, "X")
    _same_type(Y, t, "Y", X, "X")
    cdef int ndx = cnp.PyArray_NDIM(X), ndy = cnp.PyArray_NDIM(Y)
    cdef Py_ssize_t nx = cnp.PyArray_SIZE(X), ny = cnp.PyArray_SIZE(Y)
    cdef Py_ssize_t n, m, xr, yr
    cdef bint xv, yv
    cdef cnp.ndarray shape_of
    if _same_shape(X, Y):
        n, m, xr, yr, xv, yv, shape_of = 1, nx, 0, 0, True, True, X
    elif ny == 1 and ndy <= ndx:
        n, m, xr, yr, xv, yv, shape_of = 1, nx, 0, 0, True, False, X
    elif nx == 1 and ndx <= ndy:
        n, m, xr, yr, xv, yv, shape_of = 1, ny, 0, 0, False, True, Y
    elif ndx == 2 and ndy == 1 and _dim(X, 1) == _dim(Y, 0):
        n, m, xr, yr, xv, yv, shape_of = _dim(X, 0), _dim(X, 1), _dim(X, 1), 0, True, True, X
    elif ndx == 1 and ndy == 2 and _dim(Y, 1) == _dim(X, 0):
        n, m, xr, yr, xv, yv, shape_of = _dim(Y, 0), _dim(Y, 1), 0, _dim(Y, 1), True, True, Y
    else:
        raise UnsupportedBroadcast(
            f"broadcasting {_shape(X)} with {_shape(Y)} is not covered by the compiled kernel")
    X = _contig(X)
    Y = _contig(Y)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(shape_of), cnp.PyArray_DIMS(shape_of), t, 0)
    cdef void* px = cnp.PyArray_DATA(X)
    cdef void* py = cnp.PyArray_DATA(Y)
    cdef void* po = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            binop_rows(op, n, m, <float*>px, xr, xv, <float*>py, yr, yv, <float*>po)
        else:
            binop_rows(op, n, m, <double*>px, xr, xv, <double*>py, yr, yv, <double*>po)
    return out


def add(cnp.ndarray X not None, cnp.ndarray Y not None):
    """``X + Y`` for same shapes, a (n, m) matrix with a (m,) row (either order), or a
    size-1 operand.

    Returns
    -------
    ndarray
        A new array.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    UnsupportedBroadcast
        (a ValueError) for other broadcast patterns.
    """
    return _binary(0, X, Y)


def sub(cnp.ndarray X not None, cnp.ndarray Y not None):
    """``X - Y``; same shape patterns and exceptions as :func:`add`."""
    return _binary(1, X, Y)


def mul(cnp.ndarray X not None, cnp.ndarray Y not None):
    """``X * Y``; same shape patterns and exceptions as :func:`add`."""
    return _binary(2, X, Y)


def add_bias(cnp.ndarray X not None, cnp.ndarray b not None):
    """``X + b`` for ``X`` of shape (n, m) and a bias ``b`` of shape (m,).

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Other shapes.
    """
    if not (cnp.PyArray_NDIM(X) == 2 and cnp.PyArray_NDIM(b) == 1
            and _dim(X, 1) == _dim(b, 0)):
        _ftype(X, "X")
        _same_type(b, cnp.PyArray_TYPE(X), "b", X, "X")
        raise ValueError(f"add_bias needs X (n, m) and b (m,), got {_shape(X)} and {_shape(b)}")
    return _binary(0, X, b)


cdef object _elementwise_backward(int act, cnp.ndarray dY, cnp.ndarray Y, cnp.ndarray out,
                                  double beta, str yname):
    """out = dY * f'(Y) + beta * out (act = -1: dY * Y, the product rule)."""
    cdef int t = _ftype(dY, "dY")
    _same_type(Y, t, yname, dY, "dY")
    if not _same_shape(dY, Y):
        raise ValueError(f"dY of shape {_shape(dY)} does not match {yname} of shape {_shape(Y)}")
    dY = _contig(dY)
    Y = _contig(Y)
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, cnp.PyArray_NDIM(dY), cnp.PyArray_DIMS(dY), "gradient")
    _same_or_apart(out, dY, "out", "dY")
    _same_or_apart(out, Y, "out", yname)
    cdef void* pg = cnp.PyArray_DATA(dY)
    cdef void* py = cnp.PyArray_DATA(Y)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dY)
    with nogil:
        if t == cnp.NPY_FLOAT:
            if act < 0:
                mul_loop(0, n, <float*>pg, <float*>py, <float>beta, <float*>po)
            else:
                act_backward_par(act, n, <float*>pg, <float*>py, <float>beta, <float*>po)
        else:
            if act < 0:
                mul_loop(0, n, <double*>pg, <double*>py, beta, <double*>po)
            else:
                act_backward_par(act, n, <double*>pg, <double*>py, beta, <double*>po)
    return out


def backprop_mul(cnp.ndarray dY not None, cnp.ndarray Other not None, cnp.ndarray out=None,
                 double beta=0.0):
    """Gradient of ``X * Other`` with respect to ``X``: ``out = dY * Other + beta * out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    """
    return _elementwise_backward(-1, dY, Other, out, beta, "Other")


# ==================================================================================
# The kernels of the per-kind modules (this module is the namespace that gathers them)
# ==================================================================================
import importlib as _importlib

_KINDS = ("_linalg", "_activations", "_elementwise", "_reductions", "_indexing",
          "_embedding", "_losses", "_optim")
for _kind in _KINDS:
    _mod = _importlib.import_module("fastbp_ext." + _kind)
    globals().update({_name: getattr(_mod, _name) for _name in _mod.__all__})
del _kind, _mod
