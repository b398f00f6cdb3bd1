# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py.
"""Kernels of fastbp: fused losses: softmax_cross_entropy, sigmoid_bce and their backprops.

Each kernel is a C-level entry point ``k_<name>(floating* out, Call* c)`` (see
``_common.pxd``) and a Python wrapper that validates its arguments and launches it. A
forward loss writes its mean into a 0-d output array; a backward pass reads the
upstream gradient ``dloss`` through a pointer (a one-element array, or a Python float
the wrapper stores in a buffer).
"""

cimport numpy as cnp
from libc.string cimport memset
from libc.math cimport exp, log, log1p, fabs
from libc.stdlib cimport malloc, free

from fastbp_ext._common cimport (
    out_beta,
    floating, index_t, Call, Kernel, launch, call_dtype,
    dim, same_shape, shape_of, ftype, same_type, contig, out_like, same_or_apart,
    check_beta, index_array, check_labels, put,
)
from fastbp_ext._simd cimport fastbp_vexp_f, fastbp_vexp_d, fastbp_vsigmoid_f, fastbp_vsigmoid_d

cnp.import_array()

__all__ = ["softmax_cross_entropy", "backprop_softmax_cross_entropy", "sigmoid_bce",
           "backprop_sigmoid_bce"]


# ==================================================================================
# Layer 1: per-element helpers
# ==================================================================================
cdef inline floating _bce(floating s, floating t) noexcept nogil:
    # max(s, 0) - s*t + log1p(exp(-|s|)): stable for any |s|
    cdef floating zero = 0
    cdef floating mx = s if s > zero else zero
    cdef floating sp
    if floating is float:
        sp = <float>log1p(exp(-fabs(s)))
    else:
        sp = log1p(exp(-fabs(s)))
    return mx - s * t + sp


# ==================================================================================
# Layer 2: nogil loops
# ==================================================================================
cdef double softmax_xent_rows(Py_ssize_t n, Py_ssize_t C,
                              const floating* Z,     # IN  (n, C) logits
                              const index_t* y,      # IN  (n,) validated class ids
                              floating* P,           # OUT (n, C) softmax
                              ) noexcept nogil:
    """Sum over rows of -log softmax(Z)[y] (stable log-sum-exp); fills P. Three passes:
    shift each row by its max, one vectorised exp over all of P, normalise. Returns NaN
    if out of memory (impossible for the scratch of n doubles in practice)."""
    cdef Py_ssize_t i, j
    cdef const floating* z
    cdef floating* p
    cdef floating mx, s
    cdef double total = 0
    cdef double* target = <double*>malloc((n if n > 0 else 1) * sizeof(double))
    if target == NULL:
        return 0.0 / 0.0
    for i in range(n):
        z = Z + i * C
        p = P + i * C
        mx = z[0]
        for j in range(1, C):
            if z[j] > mx or z[j] != z[j]:
                mx = z[j]
        for j in range(C):
            p[j] = z[j] - mx
        target[i] = p[y[i]]
    if floating is float:
        fastbp_vexp_f(P, P, n * C)
    else:
        fastbp_vexp_d(P, P, n * C)
    for i in range(n):
        p = P + i * C
        s = 0
        for j in range(C):
            s = s + p[j]
        for j in range(C):
            p[j] = p[j] / s
        total += log(<double>s) - target[i]
    free(target)
    return total


cdef void softmax_xent_grad(Py_ssize_t n, Py_ssize_t C,
                            const floating* P,    # IN  (n, C) saved softmax
                            const index_t* y,     # IN  (n,) validated class ids
                            floating scale, floating beta,
                            floating* out,        # OUT (n, C) = scale (P - onehot) + beta out
                            ) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating onehot
    for i in range(n):
        for j in range(C):
            onehot = 1 if j == y[i] else 0
            out[i * C + j] = put((P[i * C + j] - onehot) * scale, out[i * C + j], beta)


cdef double bce_forward(Py_ssize_t n,
                        const floating* S,    # IN  logits
                        const floating* T,    # IN  targets
                        floating* Sig,        # OUT sigmoid(S)
                        ) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(n):
        total += _bce(S[i], T[i])
    if floating is float:
        fastbp_vsigmoid_f(S, Sig, n)
    else:
        fastbp_vsigmoid_d(S, Sig, n)
    return total


cdef void bce_backward(Py_ssize_t n,
                       const floating* Sig,   # IN  sigmoid(S)
                       const floating* T,     # IN  targets
                       floating scale, floating beta,
                       floating* out,         # OUT scale (Sig - T) + beta out
                       ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = put((Sig[i] - T[i]) * scale, out[i], beta)


cdef inline double _mean_scale(const void* dloss, Py_ssize_t is_f64,
                               Py_ssize_t n) noexcept nogil:
    """The upstream gradient read through its pointer (float32 or float64), over n."""
    cdef double dl = (<const double*>dloss)[0] if is_f64 else (<const float*>dloss)[0]
    return dl / (n if n > 1 else 1)


# ==================================================================================
# C-level entry points
# ==================================================================================
cdef int k_softmax_cross_entropy(floating* out, Call* c) noexcept nogil:
    # out: 0-d mean loss; a: Z (n, C), y (n,), P (n, C) written; n: n, C, y is int32
    cdef Py_ssize_t n = c.n[0]
    cdef double total
    if c.n[2]:
        total = softmax_xent_rows(n, c.n[1], <floating*>c.a[0], <cnp.int32_t*>c.a[1],
                                  <floating*>c.a[2])
    else:
        total = softmax_xent_rows(n, c.n[1], <floating*>c.a[0], <cnp.int64_t*>c.a[1],
                                  <floating*>c.a[2])
    out[0] = <floating>(total / (n if n > 1 else 1))
    return 0


cdef int k_backprop_softmax_cross_entropy(floating* out, Call* c) noexcept nogil:
    # a: P (n, C), y (n,), dloss (one element); n: n, C, y is int32, dloss is float64;
    # s: beta
    cdef Py_ssize_t n = c.n[0]
    cdef double s = _mean_scale(c.a[2], c.n[3], n)
    if c.n[2]:
        softmax_xent_grad(n, c.n[1], <floating*>c.a[0], <cnp.int32_t*>c.a[1], <floating>s,
                          <floating>c.s[0], out)
    else:
        softmax_xent_grad(n, c.n[1], <floating*>c.a[0], <cnp.int64_t*>c.a[1], <floating>s,
                          <floating>c.s[0], out)
    return 0


cdef int k_sigmoid_bce(floating* out, Call* c) noexcept nogil:
    # out: 0-d mean loss; a: S, T, Sig written; n: size
    cdef Py_ssize_t n = c.n[0]
    cdef double total = bce_forward(n, <floating*>c.a[0], <floating*>c.a[1],
                                    <floating*>c.a[2])
    out[0] = <floating>(total / (n if n > 1 else 1))
    return 0


cdef int k_backprop_sigmoid_bce(floating* out, Call* c) noexcept nogil:
    # a: Sig, T, dloss (one element); n: size, dloss is float64; s: beta
    cdef Py_ssize_t n = c.n[0]
    cdef double s = _mean_scale(c.a[2], c.n[1], n)
    bce_backward(n, <floating*>c.a[0], <floating*>c.a[1], <floating>s, <floating>c.s[0], out)
    return 0


cdef Kernel K_SOFTMAX_CROSS_ENTROPY = Kernel(
    b"softmax_cross_entropy", k_softmax_cross_entropy[float],
    k_softmax_cross_entropy[double])
cdef Kernel K_BACKPROP_SOFTMAX_CROSS_ENTROPY = Kernel(
    b"backprop_softmax_cross_entropy", k_backprop_softmax_cross_entropy[float],
    k_backprop_softmax_cross_entropy[double])
cdef Kernel K_SIGMOID_BCE = Kernel(b"sigmoid_bce", k_sigmoid_bce[float], k_sigmoid_bce[double])
cdef Kernel K_BACKPROP_SIGMOID_BCE = Kernel(
    b"backprop_sigmoid_bce", k_backprop_sigmoid_bce[float], k_backprop_sigmoid_bce[double])


# ==================================================================================
# Python wrappers
# ==================================================================================
cdef inline object _dloss(object dloss, double* buf, Call* c, int slot, int flag):
    """Point ``c.a[slot]`` at the upstream gradient: a one-element float32/float64 array
    (read through the pointer; ``c.n[flag]`` says whether it is float64), or a number
    stored in ``buf``. Returns the object to keep alive during the call."""
    cdef cnp.ndarray D
    if cnp.PyArray_Check(dloss):
        D = <cnp.ndarray>dloss
        ftype(D, "dloss")
        if cnp.PyArray_SIZE(D) != 1:
            raise ValueError(f"dloss must be a number or a one-element array, got shape "
                             f"{shape_of(D)}")
        D = contig(D)
        c.a[slot] = cnp.PyArray_DATA(D)
        c.n[flag] = cnp.PyArray_TYPE(D) == cnp.NPY_DOUBLE
        return D
    buf[0] = dloss
    c.a[slot] = buf
    c.n[flag] = 1
    return None


def softmax_cross_entropy(cnp.ndarray Z not None, y):
    """Fused, stable mean softmax cross-entropy of logits ``Z`` (n, C) against ids ``y``.

    Returns
    -------
    loss : ndarray
        0-d, the dtype of ``Z`` (0 for an empty batch); accumulated in double.
    P : ndarray
        (n, C) softmax, saved for :func:`backprop_softmax_cross_entropy`.

    Raises
    ------
    TypeError
        Non-float logits or non-integer class ids.
    ValueError
        ``Z`` not 2-D, ``y`` not of shape (n,), a class id outside ``[0, C)``.
    """
    cdef int t = ftype(Z, "Z")
    cdef cnp.ndarray Y = index_array(y, "class ids")
    if cnp.PyArray_NDIM(Z) != 2:
        raise ValueError(f"logits must be 2-D (n, C), got shape {shape_of(Z)}")
    cdef Py_ssize_t n = dim(Z, 0), C = dim(Z, 1)
    check_labels(Y, n, C)
    Z = contig(Z)
    cdef cnp.ndarray P = <cnp.ndarray>cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(Z), t, 0)
    cdef cnp.ndarray loss = <cnp.ndarray>cnp.PyArray_EMPTY(0, NULL, t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(loss)
    c.a[0] = cnp.PyArray_DATA(Z)
    c.a[1] = cnp.PyArray_DATA(Y)
    c.a[2] = cnp.PyArray_DATA(P)
    c.n[0] = n
    c.n[1] = C
    c.n[2] = cnp.PyArray_TYPE(Y) == cnp.NPY_INT32
    launch(&K_SOFTMAX_CROSS_ENTROPY, &c)
    return loss, P


def backprop_softmax_cross_entropy(cnp.ndarray P not None, y, dloss,
                                   cnp.ndarray out=None, double beta=0.0):
    """``out = dloss * (P - onehot(y)) / n + beta * out``.

    Parameters
    ----------
    P : ndarray
        (n, C) saved softmax.
    y : ndarray
        (n,) integer class ids.
    dloss : ndarray or float
        The upstream gradient of the loss: a one-element float32/float64 array (read by
        the kernel when it runs) or a number.
    out : ndarray, optional
        (n, C) destination.
    beta : {0.0, 1.0}
        Overwrite or accumulate.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float/mixed dtypes or non-integer class ids.
    ValueError
        Bad shapes, a class id outside ``[0, C)``, a bad ``out``.
    """
    cdef Call c
    memset(&c, 0, sizeof(Call))
    cdef double dl_buf
    keep = _dloss(dloss, &dl_buf, &c, 2, 3)
    cdef int t = ftype(P, "P")
    cdef cnp.ndarray Y = index_array(y, "class ids")
    if cnp.PyArray_NDIM(P) != 2:
        raise ValueError(f"P must be 2-D (n, C), got shape {shape_of(P)}")
    cdef Py_ssize_t n = dim(P, 0), C = dim(P, 1)
    check_labels(Y, n, C)
    P = contig(P)
    beta = out_beta(out, beta)
    out = out_like(out, t, 2, cnp.PyArray_DIMS(P), "gradient")
    same_or_apart(out, P, "out", "P")
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(P)
    c.a[1] = cnp.PyArray_DATA(Y)
    c.n[0] = n
    c.n[1] = C
    c.n[2] = cnp.PyArray_TYPE(Y) == cnp.NPY_INT32
    c.s[0] = beta
    launch(&K_BACKPROP_SOFTMAX_CROSS_ENTROPY, &c)
    return out


def sigmoid_bce(cnp.ndarray S not None, cnp.ndarray T not None):
    """Mean binary cross-entropy of logits ``S`` against targets ``T`` (same shape),
    ``max(s, 0) - s t + log1p(exp(-|s|))``: stable for any logit magnitude.

    Returns
    -------
    loss : ndarray
        0-d, the dtype of ``S`` (accumulated in double; 0 when empty).
    Sig : ndarray
        ``sigmoid(S)``, saved for the backward pass.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes.
    """
    cdef int t = ftype(S, "S")
    same_type(T, t, "T", S, "S")
    if not same_shape(S, T):
        raise ValueError(f"targets of shape {shape_of(T)} for logits of shape {shape_of(S)}")
    S = contig(S)
    T = contig(T)
    cdef cnp.ndarray Sig = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(S), cnp.PyArray_DIMS(S), t, 0)
    cdef cnp.ndarray loss = <cnp.ndarray>cnp.PyArray_EMPTY(0, NULL, t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(loss)
    c.a[0] = cnp.PyArray_DATA(S)
    c.a[1] = cnp.PyArray_DATA(T)
    c.a[2] = cnp.PyArray_DATA(Sig)
    c.n[0] = cnp.PyArray_SIZE(S)
    launch(&K_SIGMOID_BCE, &c)
    return loss, Sig


def backprop_sigmoid_bce(cnp.ndarray Sig not None, cnp.ndarray T not None, dloss,
                         cnp.ndarray out=None, double beta=0.0):
    """``out = dloss * (sigmoid(S) - T) / n + beta * out``.

    Parameters
    ----------
    Sig : ndarray
        Saved ``sigmoid(S)``.
    T : ndarray
        Targets, the shape and dtype of ``Sig``.
    dloss : ndarray or float
        The upstream gradient of the loss: a one-element float32/float64 array (read by
        the kernel when it runs) or a number.
    out : ndarray, optional
        Destination of ``Sig``'s shape.
    beta : {0.0, 1.0}
        Overwrite or accumulate.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    """
    cdef Call c
    memset(&c, 0, sizeof(Call))
    cdef double dl_buf
    keep = _dloss(dloss, &dl_buf, &c, 2, 1)
    cdef int t = ftype(Sig, "Sig")
    same_type(T, t, "T", Sig, "Sig")
    if not same_shape(Sig, T):
        raise ValueError(f"targets of shape {shape_of(T)} for Sig of shape {shape_of(Sig)}")
    Sig = contig(Sig)
    T = contig(T)
    beta = out_beta(out, beta)
    out = out_like(out, t, cnp.PyArray_NDIM(Sig), cnp.PyArray_DIMS(Sig), "gradient")
    same_or_apart(out, Sig, "out", "Sig")
    same_or_apart(out, T, "out", "T")
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(Sig)
    c.a[1] = cnp.PyArray_DATA(T)
    c.n[0] = cnp.PyArray_SIZE(Sig)
    c.s[0] = beta
    launch(&K_BACKPROP_SIGMOID_BCE, &c)
    return out
