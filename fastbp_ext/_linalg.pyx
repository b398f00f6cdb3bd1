# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py.
"""Kernels of fastbp: BLAS products: gemm, gemv, ger, dot, scale, linear.

Each kernel is a C-level entry point ``k_<name>(floating* out, Call* c)`` (see
``_common.pxd``) and a Python wrapper that validates its arguments and launches it.
"""

cimport numpy as cnp
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sdot, ddot

from fastbp_ext._common cimport (
    out_beta,
    floating, Call, Kernel, run, launch, call_dtype, active_recording, record,
    dim, good, same_shape, shape_of, ftype, same_type, contig, out_like, no_overlap,
    same_or_apart, check_beta, blas_dim, put,
)
from fastbp_ext._blas cimport gemm_rm, gemv_rm, ger_rm, outer_write

cnp.import_array()

__all__ = ["gemm", "gemv", "ger", "dot", "scale", "linear"]


# ==================================================================================
# Layer 2: nogil loops
# ==================================================================================
cdef void fill_rows(Py_ssize_t n, Py_ssize_t m,
                    const floating* b,     # IN  (m,)
                    floating* out,         # OUT (n, m), every row = b
                    ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        memcpy(out + i * m, b, m * sizeof(floating))


cdef void scale_loop(Py_ssize_t n, floating alpha,
                     const floating* x,    # IN
                     floating beta,
                     floating* out,        # OUT out = alpha x + beta out
                     ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = put(x[i] * alpha, out[i], beta)


# ==================================================================================
# C-level entry points
# ==================================================================================
cdef int k_gemm(floating* out, Call* c) noexcept nogil:
    # a: A, B; n: M, N, K, trans_a, trans_b; s: beta
    cdef floating one = 1
    gemm_rm(<bint>c.n[3], <bint>c.n[4], <int>c.n[0], <int>c.n[1], <int>c.n[2], one,
            <floating*>c.a[0], <floating*>c.a[1], <floating>c.s[0], out)
    return 0


cdef int k_gemv(floating* out, Call* c) noexcept nogil:
    # a: A, x; n: M, N, trans; s: beta
    cdef floating one = 1
    gemv_rm(<bint>c.n[2], <int>c.n[0], <int>c.n[1], one, <floating*>c.a[0],
            <floating*>c.a[1], <floating>c.s[0], out)
    return 0


cdef int k_ger(floating* out, Call* c) noexcept nogil:
    # a: x, y; n: M, N; s: beta
    cdef floating one = 1
    if c.s[0] == 0:
        outer_write(c.n[0], c.n[1], <floating*>c.a[0], <floating*>c.a[1], out)
    else:
        ger_rm(<int>c.n[0], <int>c.n[1], one, <floating*>c.a[0], <floating*>c.a[1], out)
    return 0


cdef int k_dot(floating* out, Call* c) noexcept nogil:
    # out: 0-d; a: x, y; n: length
    cdef int nn = <int>c.n[0], one = 1
    if floating is float:
        out[0] = sdot(&nn, <float*>c.a[0], &one, <float*>c.a[1], &one)
    else:
        out[0] = ddot(&nn, <double*>c.a[0], &one, <double*>c.a[1], &one)
    return 0


cdef int k_scale(floating* out, Call* c) noexcept nogil:
    # a: X; n: size; s: alpha, beta
    scale_loop(c.n[0], <floating>c.s[0], <floating*>c.a[0], <floating>c.s[1], out)
    return 0


cdef int k_linear(floating* out, Call* c) noexcept nogil:
    # a: X, W, b (or NULL); n: n, k, m, trans_w
    # out = X op(W) + b: the rows of out filled with b, then one gemm with beta = 1 (or
    # beta = 0 and no fill without a bias). op(W) = W.T when trans_w: W is then stored
    # (m, k), the (out, in) layout, and BLAS reads it transposed (no copy).
    cdef floating one = 1, zero = 0
    cdef floating* b = <floating*>c.a[2]
    if b != NULL:
        fill_rows(c.n[0], c.n[2], b, out)
    gemm_rm(False, <bint>c.n[3], <int>c.n[0], <int>c.n[2], <int>c.n[1], one,
            <floating*>c.a[0], <floating*>c.a[1], one if b != NULL else zero, out)
    return 0


cdef Kernel K_GEMM = Kernel(b"gemm", k_gemm[float], k_gemm[double])
cdef Kernel K_GEMV = Kernel(b"gemv", k_gemv[float], k_gemv[double])
cdef Kernel K_GER = Kernel(b"ger", k_ger[float], k_ger[double])
cdef Kernel K_DOT = Kernel(b"dot", k_dot[float], k_dot[double])
cdef Kernel K_SCALE = Kernel(b"scale", k_scale[float], k_scale[double])
cdef Kernel K_LINEAR = Kernel(b"linear", k_linear[float], k_linear[double])


# ==================================================================================
# Python wrappers
# ==================================================================================
def gemm(cnp.ndarray A not None, cnp.ndarray B not None, cnp.ndarray out=None,
         bint trans_a=False, bint trans_b=False, double beta=0.0):
    """Matrix product ``out = op(A) @ op(B) + beta * out`` (one BLAS ``gemm``).

    Parameters
    ----------
    A, B : ndarray
        2-D float32/float64 arrays of one dtype. ``op(A)`` is ``A.T`` when ``trans_a``.
    out : ndarray, optional
        C-contiguous destination of shape ``(op(A).shape[0], op(B).shape[1])``; must not
        share memory with ``A`` or ``B``. Allocated when None.
    trans_a, trans_b : bool
        Use the transpose of ``A`` / ``B`` (no copy is made).
    beta : {0.0, 1.0}
        Overwrite (0) or accumulate into (1) ``out``.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Non-2-D or misaligned shapes, a bad ``out``, ``beta`` not 0 or 1.
    """
    cdef int t = ftype(A, "A")
    same_type(B, t, "B", A, "A")
    if cnp.PyArray_NDIM(A) != 2 or cnp.PyArray_NDIM(B) != 2:
        raise ValueError(f"gemm needs 2-D operands, got shapes {shape_of(A)} and {shape_of(B)}")
    A = contig(A)
    B = contig(B)
    cdef Py_ssize_t M = dim(A, 1) if trans_a else dim(A, 0)
    cdef Py_ssize_t K = dim(A, 0) if trans_a else dim(A, 1)
    cdef Py_ssize_t K2 = dim(B, 1) if trans_b else dim(B, 0)
    cdef Py_ssize_t N = dim(B, 0) if trans_b else dim(B, 1)
    if K != K2:
        raise ValueError(
            f"gemm: shapes {shape_of(A)}{'.T' if trans_a else ''} and "
            f"{shape_of(B)}{'.T' if trans_b else ''} are not aligned ({K} != {K2})")
    blas_dim(M); blas_dim(N); blas_dim(K)
    cdef cnp.npy_intp dims[2]
    dims[0] = M
    dims[1] = N
    beta = out_beta(out, beta)
    out = out_like(out, t, 2, dims, "product")
    no_overlap(out, A, "A")
    no_overlap(out, B, "B")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(A)
    c.a[1] = cnp.PyArray_DATA(B)
    c.n[0] = M
    c.n[1] = N
    c.n[2] = K
    c.n[3] = trans_a
    c.n[4] = trans_b
    c.s[0] = beta
    launch(&K_GEMM, &c)
    return out


def gemv(cnp.ndarray A not None, cnp.ndarray x not None, cnp.ndarray out=None,
         bint trans=False, double beta=0.0):
    """Matrix-vector product ``out = op(A) @ x + beta * out`` (one BLAS ``gemv``).

    Parameters
    ----------
    A : ndarray
        2-D array (M, N); ``op(A)`` is ``A.T`` when ``trans``.
    x : ndarray
        1-D array of length N (M when ``trans``), same dtype as ``A``.
    out : ndarray, optional
        1-D destination of length M (N when ``trans``), not sharing memory with inputs.
    trans : bool
        Multiply by ``A.T``.
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
        Wrong dimensions or misaligned shapes, a bad ``out``.
    """
    cdef int t = ftype(A, "A")
    same_type(x, t, "x", A, "A")
    if cnp.PyArray_NDIM(A) != 2 or cnp.PyArray_NDIM(x) != 1:
        raise ValueError(f"gemv needs a 2-D A and a 1-D x, got shapes {shape_of(A)} and {shape_of(x)}")
    A = contig(A)
    x = contig(x)
    cdef Py_ssize_t M = dim(A, 0), N = dim(A, 1)
    cdef Py_ssize_t nx = M if trans else N
    if dim(x, 0) != nx:
        raise ValueError(
            f"gemv: shapes {shape_of(A)}{'.T' if trans else ''} and {shape_of(x)} are not aligned")
    blas_dim(M); blas_dim(N)
    cdef cnp.npy_intp dims[1]
    dims[0] = N if trans else M
    beta = out_beta(out, beta)
    out = out_like(out, t, 1, dims, "product")
    no_overlap(out, A, "A")
    no_overlap(out, x, "x")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(A)
    c.a[1] = cnp.PyArray_DATA(x)
    c.n[0] = M
    c.n[1] = N
    c.n[2] = trans
    c.s[0] = beta
    launch(&K_GEMV, &c)
    return out


def ger(cnp.ndarray x not None, cnp.ndarray y not None, cnp.ndarray out=None,
        double beta=0.0):
    """Rank-1 weight gradient ``out = outer(x, y) + beta * out``.

    With ``beta == 0`` the outer product is written in one pass; with ``beta == 1`` it is
    one BLAS ``ger`` into ``out``.

    Parameters
    ----------
    x, y : ndarray
        1-D arrays of lengths M and N, one dtype.
    out : ndarray, optional
        (M, N) destination, not sharing memory with ``x`` or ``y``.
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
        Non-1-D inputs, a bad ``out``.
    """
    cdef int t = ftype(x, "x")
    same_type(y, t, "y", x, "x")
    if cnp.PyArray_NDIM(x) != 1 or cnp.PyArray_NDIM(y) != 1:
        raise ValueError(f"ger needs 1-D vectors, got shapes {shape_of(x)} and {shape_of(y)}")
    x = contig(x)
    y = contig(y)
    cdef Py_ssize_t M = dim(x, 0), N = dim(y, 0)
    blas_dim(M); blas_dim(N)
    cdef cnp.npy_intp dims[2]
    dims[0] = M
    dims[1] = N
    beta = out_beta(out, beta)
    out = out_like(out, t, 2, dims, "outer product")
    no_overlap(out, x, "x")
    no_overlap(out, y, "y")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(x)
    c.a[1] = cnp.PyArray_DATA(y)
    c.n[0] = M
    c.n[1] = N
    c.s[0] = beta
    launch(&K_GER, &c)
    return out


def dot(cnp.ndarray x not None, cnp.ndarray y not None):
    """Inner product of two 1-D arrays of one dtype, as a 0-d array of that dtype.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Non-1-D inputs or different lengths.
    """
    cdef int t = ftype(x, "x")
    same_type(y, t, "y", x, "x")
    if cnp.PyArray_NDIM(x) != 1 or not same_shape(x, y):
        raise ValueError(f"dot needs two 1-D arrays of one length, got {shape_of(x)} and {shape_of(y)}")
    x = contig(x)
    y = contig(y)
    cdef Py_ssize_t n = dim(x, 0)
    blas_dim(n)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(0, NULL, t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(x)
    c.a[1] = cnp.PyArray_DATA(y)
    c.n[0] = n
    # k_dot cannot fail, and (as before the move to the kernel ABI) a dot product is too
    # short to pay for releasing the GIL: run it directly (and record it for a plan).
    run(&K_DOT, &c)
    if active_recording() != NULL:
        record(&K_DOT, &c, -1, NULL, 0, -1)
    return out


def scale(cnp.ndarray X not None, double alpha, cnp.ndarray out=None, double beta=0.0):
    """``out = alpha * X + beta * out`` for an array of any shape.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        A bad ``out``.
    """
    cdef int t = ftype(X, "X")
    X = contig(X)
    beta = out_beta(out, beta)
    out = out_like(out, t, cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), "result")
    same_or_apart(out, X, "out", "X")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.n[0] = cnp.PyArray_SIZE(X)
    c.s[0] = alpha
    c.s[1] = beta
    launch(&K_SCALE, &c)
    return out


def linear(cnp.ndarray X not None, cnp.ndarray W not None, cnp.ndarray b=None,
           cnp.ndarray out=None, bint trans_w=False):
    """Fused affine map ``out = X @ op(W) + b``: fill the rows of ``out`` with ``b``, then
    one ``gemm`` with ``beta = 1`` (``beta = 0`` and no fill when ``b`` is None), both in
    the kernel.

    Parameters
    ----------
    X : ndarray
        (n, k) inputs.
    W : ndarray
        (k, m) weights, or (m, k) when ``trans_w`` (the (out, in) layout of
        ``nn.Linear`` and PyTorch; ``op(W) = W.T``, read transposed by BLAS, never
        copied). A transposed view of a C-contiguous array is used without a copy too
        (the other transposition flag on its data); other non-contiguous ``W`` are copied.
    b : ndarray or None
        (m,) bias.
    out : ndarray, optional
        (n, m) destination, not sharing memory with the inputs.
    trans_w : bool
        Take ``W`` as (m, k) and compute ``X @ W.T + b``.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Misaligned shapes (naming both, and the layout), a bad ``out``.
    """
    cdef int t = ftype(X, "X")
    same_type(W, t, "W", X, "X")
    if b is not None:
        same_type(b, t, "b", X, "X")
    cdef Py_ssize_t kw = 1 if trans_w else 0
    if cnp.PyArray_NDIM(X) != 2 or cnp.PyArray_NDIM(W) != 2 or dim(X, 1) != dim(W, kw):
        raise ValueError(f"linear: shapes {shape_of(X)} and {shape_of(W)}"
                         f"{' (out, in)' if trans_w else ''} are not aligned")
    cdef Py_ssize_t n = dim(X, 0), k = dim(X, 1), m = dim(W, 1 - kw)
    if b is not None and (cnp.PyArray_NDIM(b) != 1 or dim(b, 0) != m):
        raise ValueError(f"linear: bias of shape {shape_of(b)} for an output of width {m}")
    blas_dim(n); blas_dim(k); blas_dim(m)
    X = contig(X)
    cdef bint trans = trans_w
    if not good(W) and good(W.T):
        # W is the transpose of a C-contiguous array: use that array's data with the
        # other transposition (W.T is a view, no copy).
        W = W.T
        trans = not trans
    else:
        W = contig(W)
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = m
    out = out_like(out, t, 2, dims, "product")
    no_overlap(out, X, "X")
    no_overlap(out, W, "W")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.a[2] = NULL
    if b is not None:
        b = contig(b)
        no_overlap(out, b, "b")
        c.a[2] = cnp.PyArray_DATA(b)
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.a[1] = cnp.PyArray_DATA(W)
    c.n[0] = n
    c.n[1] = k
    c.n[2] = m
    c.n[3] = trans
    launch(&K_LINEAR, &c)
    return out
