# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py.
"""Kernels of fastbp: tanh, sigmoid, relu and their backprops, fused bias+activation, dropout masks.

Each kernel is a C-level entry point ``k_<name>(floating* out, Call* c)`` (see
``_common.pxd``) and a Python wrapper that validates its arguments and launches it.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.string cimport memcpy, memset
from fastbp_ext._common cimport (
    out_beta,
    floating, Call, Kernel, launch, call_dtype,
    dim, same_shape, shape_of, ftype, same_type, contig, out_like, same_or_apart,
    check_beta, put, threads_for, PAR_TRANSC, PAR_ARITH,
)
from fastbp_ext._simd cimport (
    fastbp_vtanh_f, fastbp_vtanh_d, fastbp_vsigmoid_f, fastbp_vsigmoid_d,
)

import numpy as np

cnp.import_array()

__all__ = ["tanh", "sigmoid", "relu", "backprop_tanh", "backprop_sigmoid", "backprop_relu",
           "bias_act", "backprop_act", "dropout_mask_from_uniform"]


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

cdef inline floating _relu(floating x) noexcept nogil:
    # like np.maximum(x, 0): NaN propagates
    cdef floating zero = 0
    return x if not (x < zero) else zero


# ==================================================================================
# Layer 2: nogil loops
# ==================================================================================
cdef enum:
    ACT_IDENTITY = 0
    ACT_TANH = 1
    ACT_SIGMOID = 2
    ACT_RELU = 3


cdef void act_inplace(int act, Py_ssize_t n, floating* y) noexcept nogil:
    """y = f(y) in place (vector libm loops for tanh / sigmoid)."""
    cdef Py_ssize_t i
    if act == ACT_TANH:
        if floating is float:
            fastbp_vtanh_f(y, y, n)
        else:
            fastbp_vtanh_d(y, y, n)
    elif act == ACT_SIGMOID:
        if floating is float:
            fastbp_vsigmoid_f(y, y, n)
        else:
            fastbp_vsigmoid_d(y, y, n)
    elif act == ACT_RELU:
        for i in range(n):
            y[i] = _relu(y[i])


cdef void act_forward(int act, Py_ssize_t n,
                      const floating* x,   # IN
                      floating* y,         # OUT y = f(x)
                      ) noexcept nogil:
    cdef Py_ssize_t i
    if act == ACT_TANH:
        if floating is float:
            fastbp_vtanh_f(x, y, n)
        else:
            fastbp_vtanh_d(x, y, n)
    elif act == ACT_SIGMOID:
        if floating is float:
            fastbp_vsigmoid_f(x, y, n)
        else:
            fastbp_vsigmoid_d(x, y, n)
    elif act == ACT_RELU:
        for i in range(n):
            y[i] = _relu(x[i])
    else:
        memcpy(y, x, n * sizeof(floating))


cdef void act_forward_par(int act, Py_ssize_t n, const floating* x,
                          floating* y) noexcept nogil:
    cdef int nt = threads_for(n * sizeof(floating),
                              PAR_TRANSC if act != ACT_RELU else PAR_ARITH)
    cdef Py_ssize_t c, lo, chunk
    if nt == 1:
        act_forward(act, n, x, y)
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        if lo < n:
            act_forward(act, (chunk if lo + chunk <= n else n - lo), x + lo, y + lo)


cdef void bias_act_rows(int act, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t m,
                        const floating* X,   # IN  (n, m)
                        const floating* b,   # IN  (m,)
                        floating* Y,         # OUT (n, m) = f(X + b)
                        ) noexcept nogil:
    cdef Py_ssize_t i, j, start
    cdef const floating* xr
    cdef floating* yr
    if act == ACT_RELU:
        for i in range(lo, hi):
            xr = X + i * m
            yr = Y + i * m
            for j in range(m):
                yr[j] = _relu(xr[j] + b[j])
        return
    # Add the bias to a block of rows (~16 KB, still in L1/L2), then run the vector
    # tanh/sigmoid once over the whole block: per-row calls would pay a scalar libm
    # epilogue (~9 ns per element) at the end of every row.
    start = lo
    for i in range(lo, hi):
        xr = X + i * m
        yr = Y + i * m
        for j in range(m):
            yr[j] = xr[j] + b[j]
        if (i + 1 - start) * m >= 4096 or i + 1 == hi:
            act_inplace(act, (i + 1 - start) * m, Y + start * m)
            start = i + 1


cdef void bias_act_par(int act, Py_ssize_t n, Py_ssize_t m, const floating* X,
                       const floating* b, floating* Y) noexcept nogil:
    cdef int nt = threads_for(n * m * sizeof(floating),
                              PAR_TRANSC if act in (ACT_TANH, ACT_SIGMOID) else PAR_ARITH)
    cdef Py_ssize_t c, lo, hi, chunk
    if nt == 1 or n < nt:
        bias_act_rows(act, 0, n, m, X, b, Y)
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        if lo < hi:
            bias_act_rows(act, lo, hi, m, X, b, Y)


cdef void act_backward(int act, Py_ssize_t lo, Py_ssize_t hi,
                       const floating* dY,   # IN
                       const floating* Y,    # IN  saved output f(z)
                       floating beta,
                       floating* out,        # OUT dX = dY f'(z) + beta out
                       ) noexcept nogil:
    cdef Py_ssize_t i
    if act == ACT_TANH:
        for i in range(lo, hi):
            out[i] = put(_tanh_grad(dY[i], Y[i]), out[i], beta)
    elif act == ACT_SIGMOID:
        for i in range(lo, hi):
            out[i] = put(_sigmoid_grad(dY[i], Y[i]), out[i], beta)
    elif act == ACT_RELU:
        for i in range(lo, hi):
            out[i] = put(_relu_grad(dY[i], Y[i]), out[i], beta)
    else:
        for i in range(lo, hi):
            out[i] = put(dY[i], out[i], beta)


cdef void act_backward_par(int act, Py_ssize_t n, const floating* dY, const floating* Y,
                           floating beta, floating* out) noexcept nogil:
    cdef int nt = threads_for(n * sizeof(floating), PAR_ARITH)
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


cdef void dropout_loop(Py_ssize_t n, const double* U, double rate, floating scale,
                       floating* out) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = scale if U[i] >= rate else 0


# ==================================================================================
# C-level entry points
# ==================================================================================
# forward activations -- a: X; n: size
cdef int k_tanh(floating* out, Call* c) noexcept nogil:
    act_forward_par(ACT_TANH, c.n[0], <floating*>c.a[0], out)
    return 0

cdef int k_sigmoid(floating* out, Call* c) noexcept nogil:
    act_forward_par(ACT_SIGMOID, c.n[0], <floating*>c.a[0], out)
    return 0

cdef int k_relu(floating* out, Call* c) noexcept nogil:
    act_forward_par(ACT_RELU, c.n[0], <floating*>c.a[0], out)
    return 0


# backward activations -- a: dY, Y (saved output); n: size, act (backprop_act); s: beta
cdef int k_backprop_tanh(floating* out, Call* c) noexcept nogil:
    act_backward_par(ACT_TANH, c.n[0], <floating*>c.a[0], <floating*>c.a[1],
                     <floating>c.s[0], out)
    return 0

cdef int k_backprop_sigmoid(floating* out, Call* c) noexcept nogil:
    act_backward_par(ACT_SIGMOID, c.n[0], <floating*>c.a[0], <floating*>c.a[1],
                     <floating>c.s[0], out)
    return 0

cdef int k_backprop_relu(floating* out, Call* c) noexcept nogil:
    act_backward_par(ACT_RELU, c.n[0], <floating*>c.a[0], <floating*>c.a[1],
                     <floating>c.s[0], out)
    return 0

cdef int k_backprop_act(floating* out, Call* c) noexcept nogil:
    act_backward_par(<int>c.n[1], c.n[0], <floating*>c.a[0], <floating*>c.a[1],
                     <floating>c.s[0], out)
    return 0


cdef int k_bias_act(floating* out, Call* c) noexcept nogil:
    # a: X (n, m), b (m,) or NULL; n: n, m, act
    cdef floating* b = <floating*>c.a[1]
    if b == NULL:
        act_forward_par(<int>c.n[2], c.n[1], <floating*>c.a[0], out)
    else:
        bias_act_par(<int>c.n[2], c.n[0], c.n[1], <floating*>c.a[0], b, out)
    return 0


cdef int k_dropout_mask_from_uniform(floating* out, Call* c) noexcept nogil:
    # a: U (float64 uniform draws); n: size; s: rate
    cdef double rate = c.s[0]
    cdef double s = 1.0 / (1.0 - rate)
    dropout_loop(c.n[0], <double*>c.a[0], rate, <floating>s, out)
    return 0


cdef Kernel K_TANH = Kernel(b"tanh", k_tanh[float], k_tanh[double])
cdef Kernel K_SIGMOID = Kernel(b"sigmoid", k_sigmoid[float], k_sigmoid[double])
cdef Kernel K_RELU = Kernel(b"relu", k_relu[float], k_relu[double])
cdef Kernel K_BACKPROP_TANH = Kernel(
    b"backprop_tanh", k_backprop_tanh[float], k_backprop_tanh[double])
cdef Kernel K_BACKPROP_SIGMOID = Kernel(
    b"backprop_sigmoid", k_backprop_sigmoid[float], k_backprop_sigmoid[double])
cdef Kernel K_BACKPROP_RELU = Kernel(
    b"backprop_relu", k_backprop_relu[float], k_backprop_relu[double])
cdef Kernel K_BACKPROP_ACT = Kernel(
    b"backprop_act", k_backprop_act[float], k_backprop_act[double])
cdef Kernel K_BIAS_ACT = Kernel(b"bias_act", k_bias_act[float], k_bias_act[double])


cdef const Kernel* bias_act_kernel() noexcept nogil:
    return &K_BIAS_ACT


cdef int act_code(const Kernel* k) noexcept nogil:
    if k == &K_TANH:
        return ACT_TANH
    if k == &K_SIGMOID:
        return ACT_SIGMOID
    if k == &K_RELU:
        return ACT_RELU
    return 0
cdef Kernel K_DROPOUT_MASK_FROM_UNIFORM = Kernel(
    b"dropout_mask_from_uniform", k_dropout_mask_from_uniform[float],
    k_dropout_mask_from_uniform[double])


# ==================================================================================
# Python wrappers
# ==================================================================================
cdef int _act_code(object act) except -1:
    if act == "tanh":
        return ACT_TANH
    if act == "relu":
        return ACT_RELU
    if act == "sigmoid":
        return ACT_SIGMOID
    if act == "identity":
        return ACT_IDENTITY
    raise ValueError(f"unknown activation {act!r}; expected identity, tanh, sigmoid or relu")


cdef object _forward(const Kernel* k, cnp.ndarray X):
    cdef int t = ftype(X, "X")
    X = contig(X)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.n[0] = cnp.PyArray_SIZE(X)
    launch(k, &c)
    return out


cdef object _backward(const Kernel* k, int act, cnp.ndarray dY, cnp.ndarray Y,
                      cnp.ndarray out, double beta):
    """out = dY * f'(Y) + beta * out."""
    cdef int t = ftype(dY, "dY")
    same_type(Y, t, "Y", dY, "dY")
    if not same_shape(dY, Y):
        raise ValueError(f"dY of shape {shape_of(dY)} does not match Y of shape {shape_of(Y)}")
    dY = contig(dY)
    Y = contig(Y)
    beta = out_beta(out, beta)
    out = out_like(out, t, cnp.PyArray_NDIM(dY), cnp.PyArray_DIMS(dY), "gradient")
    same_or_apart(out, dY, "out", "dY")
    same_or_apart(out, Y, "out", "Y")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(dY)
    c.a[1] = cnp.PyArray_DATA(Y)
    c.n[0] = cnp.PyArray_SIZE(dY)
    c.n[1] = act
    c.s[0] = beta
    launch(k, &c)
    return out


def tanh(cnp.ndarray X not None):
    """Elementwise ``tanh(X)`` (vectorised libm), a new array.

    Raises
    ------
    TypeError
        Non-float dtype.
    """
    return _forward(&K_TANH, X)


def sigmoid(cnp.ndarray X not None):
    """Elementwise logistic sigmoid, stable for any magnitude, a new array.

    Raises
    ------
    TypeError
        Non-float dtype.
    """
    return _forward(&K_SIGMOID, X)


def relu(cnp.ndarray X not None):
    """Elementwise ``max(X, 0)`` (NaN propagates, as in ``np.maximum``), a new array.

    Raises
    ------
    TypeError
        Non-float dtype.
    """
    return _forward(&K_RELU, X)


def backprop_tanh(cnp.ndarray dY not None, cnp.ndarray Y not None, cnp.ndarray out=None,
                  double beta=0.0):
    """``out = dY * (1 - Y**2) + beta * out`` with ``Y = tanh(X)`` the saved output.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    """
    return _backward(&K_BACKPROP_TANH, ACT_TANH, dY, Y, out, beta)


def backprop_sigmoid(cnp.ndarray dY not None, cnp.ndarray Y not None, cnp.ndarray out=None,
                     double beta=0.0):
    """``out = dY * Y * (1 - Y) + beta * out`` with ``Y = sigmoid(X)``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    """
    return _backward(&K_BACKPROP_SIGMOID, ACT_SIGMOID, dY, Y, out, beta)


def backprop_relu(cnp.ndarray dY not None, cnp.ndarray Y not None, cnp.ndarray out=None,
                  double beta=0.0):
    """``out = dY * [Y > 0] + beta * out`` with ``Y = relu(X)``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    """
    return _backward(&K_BACKPROP_RELU, ACT_RELU, dY, Y, out, beta)


def backprop_act(cnp.ndarray dY not None, cnp.ndarray Y not None, act, cnp.ndarray out=None,
                 double beta=0.0):
    """Adjoint of :func:`bias_act` with respect to its pre-activation input, written from
    the saved output ``Y``: dispatches to the ``backprop_<act>`` loops (identity: copy).

    Raises
    ------
    ValueError
        Unknown ``act``, different shapes, a bad ``out``.
    TypeError
        Non-float or mixed dtypes.
    """
    return _backward(&K_BACKPROP_ACT, _act_code(act), dY, Y, out, beta)


def bias_act(cnp.ndarray X not None, cnp.ndarray b, act):
    """Fused ``Y = f(X + b)`` in one pass over ``X``.

    Parameters
    ----------
    X : ndarray
        (n, m) pre-activations (any shape when ``b`` is None).
    b : ndarray or None
        (m,) bias.
    act : {"identity", "tanh", "sigmoid", "relu"}
        The activation.

    Returns
    -------
    ndarray
        A new array ``Y``.

    Raises
    ------
    ValueError
        Unknown ``act`` or a bias that does not match the last axis of ``X``.
    TypeError
        Non-float or mixed dtypes.
    """
    cdef int code = _act_code(act)
    cdef int t = ftype(X, "X")
    cdef Py_ssize_t n, m
    if b is None:
        n = 1
        m = cnp.PyArray_SIZE(X)
    else:
        same_type(b, t, "b", X, "X")
        if cnp.PyArray_NDIM(X) != 2 or cnp.PyArray_NDIM(b) != 1 or dim(X, 1) != dim(b, 0):
            raise ValueError(f"bias_act needs X (n, m) and b (m,), got {shape_of(X)} and {shape_of(b)}")
        n = dim(X, 0)
        m = dim(X, 1)
        b = contig(b)
    X = contig(X)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.a[1] = NULL if b is None else cnp.PyArray_DATA(b)
    c.n[0] = n
    c.n[1] = m
    c.n[2] = code
    launch(&K_BIAS_ACT, &c)
    return out


def dropout_mask_from_uniform(cnp.ndarray U not None, double rate, dtype):
    """Inverted-dropout mask from uniform draws: ``1/(1-rate)`` where ``U >= rate``, else 0.

    The uniform draws stay numpy's (``rng.random(shape)``, float64) so that a seeded
    generator gives the same mask on both backends; this fuses the threshold, cast and
    scale into one pass.

    Parameters
    ----------
    U : ndarray
        float64 uniform draws in [0, 1).
    rate : float
        Drop probability in [0, 1).
    dtype : dtype
        float32 or float64, the mask's dtype.

    Returns
    -------
    ndarray
        The mask, of ``U``'s shape.

    Raises
    ------
    TypeError
        ``U`` not float64 or ``dtype`` not float32/float64.
    ValueError
        ``rate`` outside [0, 1).
    """
    if cnp.PyArray_TYPE(U) != cnp.NPY_DOUBLE:
        raise TypeError(f"uniform draws must be float64, got dtype {U.dtype}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    dt = np.dtype(dtype)
    cdef int t = dt.num
    if t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE:
        raise TypeError(f"mask dtype must be float32 or float64, got {dt}")
    U = contig(U)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(U), cnp.PyArray_DIMS(U), t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(U)
    c.n[0] = cnp.PyArray_SIZE(U)
    c.s[0] = rate
    launch(&K_DROPOUT_MASK_FROM_UNIFORM, &c)
    return out
