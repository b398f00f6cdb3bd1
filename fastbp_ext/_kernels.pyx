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
from libc.math cimport exp, log, log1p, fabs, sqrt
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport uint64_t
from scipy.linalg.cython_blas cimport (
    sgemm, dgemm, sgemv, dgemv, sger, dger, saxpy, daxpy, sdot, ddot,
)

import os

import numpy as np

cnp.import_array()

# ----------------------------------------------------------------------------------
# Vectorised transcendental loops.
#
# glibc's scalar tanhf/tanh cost ~9 ns per element here, 40-80x slower than numpy's SIMD
# tanh. Declaring the libm functions with GCC's ``simd`` attribute (what glibc's own
# <bits/math-vector.h> does, but only under -ffast-math) lets GCC call the vector
# variants of glibc's libmvec (``_ZGV?N?v_tanhf`` ...), which keep IEEE semantics (NaN
# and Inf propagate; no -ffast-math). ``target_clones`` compiles the loop for SSE2,
# AVX2 and AVX-512 and picks one at load time, so the build stays portable. Elsewhere
# (clang, non-glibc, other CPUs) these are plain scalar loops. One macro generates the
# float and double versions from one body.
# ----------------------------------------------------------------------------------
cdef extern from * nogil:
    """
    #include <math.h>
    #if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) \\
        && defined(__GLIBC__) && !defined(__FAST_MATH__) \\
        && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    __attribute__((simd("notinbranch"))) extern float tanhf(float);
    __attribute__((simd("notinbranch"))) extern double tanh(double);
    /* exp may set errno (ERANGE), which stops GCC from vectorising it; fastbp never
       reads errno, so it is declared const (NaN/Inf semantics are unchanged). */
    __attribute__((simd("notinbranch"), const)) extern float expf(float);
    __attribute__((simd("notinbranch"), const)) extern double exp(double);
    #define FASTBP_CLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
    /* likewise sqrt (its errno check is a branch in every loop that calls it) */
    __attribute__((const)) extern float sqrtf(float);
    __attribute__((const)) extern double sqrt(double);
    #define FASTBP_LIBMVEC 1
    #else
    #define FASTBP_CLONES
    #define FASTBP_LIBMVEC 0
    #endif
    #define FASTBP_VLOOP(NAME, T, EXPR) \\
    FASTBP_CLONES static void NAME(const T *x, T *y, Py_ssize_t n) { \\
        _Pragma("GCC ivdep") \\
        for (Py_ssize_t i = 0; i < n; i++) { const T v = x[i]; y[i] = (EXPR); } }
    /* y = exp(x) */
    FASTBP_VLOOP(fastbp_vexp_f, float, expf(v))
    FASTBP_VLOOP(fastbp_vexp_d, double, exp(v))
    /* y = tanh(x) */
    FASTBP_VLOOP(fastbp_vtanh_f, float, tanhf(v))
    FASTBP_VLOOP(fastbp_vtanh_d, double, tanh(v))
    /* y = sigmoid(x), stable: e = exp(-|x|), (x >= 0 ? 1 : e) / (1 + e) */
    FASTBP_VLOOP(fastbp_vsigmoid_f, float, (v >= 0 ? 1.0f : expf(-fabsf(v))) / (1.0f + expf(-fabsf(v))))
    FASTBP_VLOOP(fastbp_vsigmoid_d, double, (v >= 0 ? 1.0 : exp(-fabs(v))) / (1.0 + exp(-fabs(v))))
    /* W -= lr * g (the SGD step; rounded as numpy's W - lr*g) */
    #define FASTBP_SGD(NAME, T) \
    FASTBP_CLONES static void NAME(T *W, const T *g, T lr, Py_ssize_t n) { \
        for (Py_ssize_t i = 0; i < n; i++) W[i] = W[i] - lr * g[i]; }
    FASTBP_SGD(fastbp_sgd_f, float)
    FASTBP_SGD(fastbp_sgd_d, double)
    /* out (M, N) = x y^T, written in one pass */
    #define FASTBP_OUTER(NAME, T) \
    FASTBP_CLONES static void NAME(Py_ssize_t M, Py_ssize_t N, const T *restrict x, \
                                   const T *restrict y, T *restrict out) { \
        for (Py_ssize_t i = 0; i < M; i++) { const T xi = x[i]; T *restrict o = out + i * N; \
            for (Py_ssize_t j = 0; j < N; j++) o[j] = xi * y[j]; } }
    FASTBP_OUTER(fastbp_outer_f, float)
    FASTBP_OUTER(fastbp_outer_d, double)
    """
    int FASTBP_LIBMVEC
    void fastbp_sgd_f(float* W, const float* g, float lr, Py_ssize_t n)
    void fastbp_sgd_d(double* W, const double* g, double lr, Py_ssize_t n)
    void fastbp_outer_f(Py_ssize_t M, Py_ssize_t N, const float* x, const float* y, float* out)
    void fastbp_outer_d(Py_ssize_t M, Py_ssize_t N, const double* x, const double* y,
                        double* out)
    void fastbp_vexp_f(const float* x, float* y, Py_ssize_t n)
    void fastbp_vexp_d(const double* x, double* y, Py_ssize_t n)
    void fastbp_vtanh_f(const float* x, float* y, Py_ssize_t n)
    void fastbp_vtanh_d(const double* x, double* y, Py_ssize_t n)
    void fastbp_vsigmoid_f(const float* x, float* y, Py_ssize_t n)
    void fastbp_vsigmoid_d(const double* x, double* y, Py_ssize_t n)


# ==================================================================================
# Threads: the policy lives in _common (one thread count for every kernel module)
# ==================================================================================
from fastbp_ext._common cimport threads_for as _threads_for, PAR_TRANSC, PAR_ARITH, PAR_COPY
from fastbp_ext._common import (  # noqa: F401
    set_num_threads, get_num_threads, _parallel_thresholds, _default_threads)


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
"""True when the module was built with ``FASTBP_BOUNDSCHECK=1`` (bounds and wrap-around
checks compiled in). The raw-pointer loops are guarded by the validation of each
Python-callable kernel in either build."""

LIBMVEC = bool(FASTBP_LIBMVEC)
"""True when tanh/sigmoid loops are vectorised through glibc's libmvec."""


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

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return <float>exp(x)  # promoted; scalar path only (losses)
    else:
        return exp(x)

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

cdef inline floating _put(floating r, floating o, floating beta) noexcept nogil:
    # out = r + beta*out, with out never read when beta == 0 (GCC unswitches the branch)
    cdef floating zero = 0
    return r if beta == zero else r + beta * o



# ==================================================================================
# Layer 2: nogil loops (one body for float and double)
# ==================================================================================
cdef inline int _bi(Py_ssize_t n) noexcept nogil:
    return <int>(n if n > 1 else 1)


cdef void gemm_rm(bint trans_a, bint trans_b, int M, int N, int K, floating alpha,
                  const floating* A,   # IN  (M, K), or (K, M) if trans_a
                  const floating* B,   # IN  (K, N), or (N, K) if trans_b
                  floating beta,
                  floating* C,         # OUT (M, N)
                  ) noexcept nogil:
    """Row-major C = alpha op(A) op(B) + beta C: column-major C^T = op(B)^T op(A)^T."""
    cdef char ta = b't' if trans_a else b'n'
    cdef char tb = b't' if trans_b else b'n'
    cdef int lda = _bi(M if trans_a else K)
    cdef int ldb = _bi(K if trans_b else N)
    cdef int ldc = _bi(N)
    cdef Py_ssize_t i
    if M == 0 or N == 0:
        return
    if K == 0:  # BLAS may return early without scaling C
        for i in range(<Py_ssize_t>M * N):
            C[i] = 0 if beta == 0 else beta * C[i]
        return
    # Degenerate shapes: OpenBLAS's gemm packs its operands even for a single row or
    # column (10x slower than gemv at batch size 1), so forward them. A (1, K) or (K, 1)
    # operand is one contiguous K-vector whether transposed or not.
    if M == 1:      # C^T = op(B)^T a
        gemv_rm(not trans_b, N if trans_b else K, K if trans_b else N, alpha, B, A, beta, C)
        return
    if N == 1:      # C = op(A) b
        gemv_rm(trans_a, K if trans_a else M, M if trans_a else K, alpha, A, B, beta, C)
        return
    if K == 1 and alpha == 1 and (beta == 0 or beta == 1):   # outer product
        if beta == 0:
            outer_write(M, N, A, B, C)
        else:
            ger_rm(M, N, alpha, A, B, C)
        return
    if floating is float:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float*>B, &ldb, <float*>A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double*>B, &ldb, <double*>A, &lda, &beta, C, &ldc)


cdef void gemv_rm(bint trans, int M, int N, floating alpha,
                  const floating* A,   # IN  (M, N)
                  const floating* x,   # IN  (N,), or (M,) if trans
                  floating beta,
                  floating* y,         # OUT (M,), or (N,) if trans
                  ) noexcept nogil:
    """Row-major y = alpha op(A) x + beta y (column-major view of A is (N, M))."""
    cdef char t = b'n' if trans else b't'
    cdef int lda = _bi(N)
    cdef int one = 1
    cdef Py_ssize_t i, ny = N if trans else M, nx = M if trans else N
    if ny == 0:
        return
    if nx == 0:
        for i in range(ny):
            y[i] = 0 if beta == 0 else beta * y[i]
        return
    if floating is float:
        sgemv(&t, &N, &M, &alpha, <float*>A, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &N, &M, &alpha, <double*>A, &lda, <double*>x, &one, &beta, y, &one)


cdef void ger_rm(int M, int N, floating alpha,
                 const floating* x,    # IN  (M,)
                 const floating* y,    # IN  (N,)
                 floating* A,          # OUT (M, N), A += alpha x y^T
                 ) noexcept nogil:
    cdef int lda = _bi(N)
    cdef int one = 1
    if M == 0 or N == 0:
        return
    if floating is float:
        sger(&N, &M, &alpha, <float*>y, &one, <float*>x, &one, A, &lda)
    else:
        dger(&N, &M, &alpha, <double*>y, &one, <double*>x, &one, A, &lda)


cdef void axpy(Py_ssize_t n, floating alpha,
               const floating* x,      # IN  (n,)
               floating* y,            # OUT (n,), y += alpha x
               ) noexcept nogil:
    cdef int one = 1
    cdef int chunk
    cdef Py_ssize_t done = 0
    while done < n:  # BLAS counts are 32-bit
        chunk = <int>(n - done if n - done < 1073741824 else 1073741824)
        if floating is float:
            saxpy(&chunk, &alpha, <float*>x + done, &one, y + done, &one)
        else:
            daxpy(&chunk, &alpha, <double*>x + done, &one, y + done, &one)
        done += chunk


cdef void outer_write(Py_ssize_t M, Py_ssize_t N,
                      const floating* x,   # IN  (M,)
                      const floating* y,   # IN  (N,)
                      floating* out,       # OUT (M, N) = x y^T
                      ) noexcept nogil:
    # beta = 0: one pass writing the outer product (ger would need a zeroing pass first)
    if floating is float:
        fastbp_outer_f(M, N, x, y, out)
    else:
        fastbp_outer_d(M, N, x, y, out)


cdef void fill_rows(Py_ssize_t n, Py_ssize_t m,
                    const floating* b,     # IN  (m,)
                    floating* out,         # OUT (n, m), every row = b
                    ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        memcpy(out + i * m, b, m * sizeof(floating))


cdef void col_sums(Py_ssize_t n, Py_ssize_t m,
                   const floating* X,      # IN  (n, m)
                   floating beta,
                   floating* out,          # OUT (m,) = X.sum(0) + beta out
                   ) noexcept nogil:
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


cdef double sum_all(Py_ssize_t n, const floating* x) noexcept nogil:
    # eight independent partial sums in double: vectorisable and accurate
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
        s4 += x[i + 4]
        s5 += x[i + 5]
        s6 += x[i + 6]
        s7 += x[i + 7]
        i += 8
    while i < n:
        s0 += x[i]
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef void row_sums(Py_ssize_t n, Py_ssize_t m,
                   const floating* X,      # IN  (n, m)
                   floating beta,
                   floating* out,          # OUT (n,)
                   ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _put(<floating>sum_all(m, X + i * m), out[i], beta)


cdef void scale_loop(Py_ssize_t n, floating alpha,
                     const floating* x,    # IN
                     floating beta,
                     floating* out,        # OUT out = alpha x + beta out
                     ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _put(x[i] * alpha, out[i], beta)


cdef void copy_loop(Py_ssize_t n, const floating* x, floating beta,
                    floating* out) noexcept nogil:
    cdef Py_ssize_t i
    if beta == 0:
        memcpy(out, x, n * sizeof(floating))
    else:
        for i in range(n):
            out[i] = x[i] + beta * out[i]


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
    cdef int nt = _threads_for(n * sizeof(floating),
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
    cdef int nt = _threads_for(n * m * sizeof(floating),
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


cdef Py_ssize_t first_bad_id(Py_ssize_t n, const index_t* ids,   # IN
                             Py_ssize_t V) noexcept nogil:
    """Position of the first id outside [0, V), or -1."""
    cdef Py_ssize_t i
    for i in range(n):
        if ids[i] < 0 or ids[i] >= V:
            return i
    return -1


cdef void gather_rows(Py_ssize_t n, Py_ssize_t d,
                      const floating* E,    # IN  (V, d)
                      const index_t* ids,   # IN  (n,), validated
                      floating* out,        # OUT (n, d)
                      ) noexcept nogil:
    cdef Py_ssize_t i, c, lo, hi, chunk
    cdef int nt = _threads_for(n * d * sizeof(floating), PAR_COPY)
    if nt == 1 or n < nt:
        for i in range(n):
            memcpy(out + i * d, E + <Py_ssize_t>ids[i] * d, d * sizeof(floating))
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        for i in range(lo, hi):
            memcpy(out + i * d, E + <Py_ssize_t>ids[i] * d, d * sizeof(floating))


cdef void scatter_add(Py_ssize_t n, Py_ssize_t d, floating alpha,
                      const index_t* rows,     # IN  (n,), validated
                      const floating* values,  # IN  (n, d)
                      floating* out,           # OUT (V, d), out[rows[i]] += alpha values[i]
                      ) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating* o
    cdef const floating* v
    for i in range(n):  # serial: repeated rows must add up
        o = out + <Py_ssize_t>rows[i] * d
        v = values + i * d
        for j in range(d):
            o[j] = o[j] + alpha * v[j]


cdef inline uint64_t _hash(uint64_t k) noexcept nogil:
    k ^= k >> 33
    k *= 0xff51afd7ed558ccdULL
    k ^= k >> 33
    return k


cdef Py_ssize_t coalesce_index(Py_ssize_t n,
                               const index_t* rows,     # IN  (n,)
                               Py_ssize_t* slot_out,    # OUT (n,) distinct-row number
                               cnp.int64_t* uniq_out,   # OUT (<= n,) first-seen order
                               ) noexcept nogil:
    """Number the distinct rows in order of first appearance with an open-addressing
    hash table of O(n) size (independent of the table size V). Returns the number of
    distinct rows, or -1 if out of memory."""
    cdef Py_ssize_t cap = 16, i, h, u = 0
    cdef cnp.int64_t key
    while cap < 2 * n:
        cap <<= 1
    cdef Py_ssize_t* table = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
    if table == NULL:
        return -1
    for i in range(cap):
        table[i] = -1
    for i in range(n):
        key = rows[i]
        h = <Py_ssize_t>(_hash(<uint64_t>key) & <uint64_t>(cap - 1))
        while table[h] != -1 and uniq_out[table[h]] != key:
            h = (h + 1) & (cap - 1)
        if table[h] == -1:
            table[h] = u
            uniq_out[u] = key
            u += 1
        slot_out[i] = table[h]
    free(table)
    return u


cdef void sum_into_slots(Py_ssize_t n, Py_ssize_t d,
                         const Py_ssize_t* slot,   # IN  (n,)
                         const floating* values,   # IN  (n, d)
                         floating* out,            # OUT (u, d), zero on entry
                         ) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating* o
    for i in range(n):
        o = out + slot[i] * d
        for j in range(d):
            o[j] = o[j] + values[i * d + j]


cdef void sgd_loop(Py_ssize_t lo, Py_ssize_t hi, floating lr,
                   const floating* g,      # IN  gradient
                   floating* W,            # OUT W -= lr g
                   ) noexcept nogil:
    if floating is float:
        fastbp_sgd_f(W + lo, g + lo, lr, hi - lo)
    else:
        fastbp_sgd_d(W + lo, g + lo, lr, hi - lo)


cdef void sgd_par(Py_ssize_t n, floating lr, const floating* g, floating* W) noexcept nogil:
    cdef int nt = _threads_for(n * sizeof(floating), PAR_ARITH)
    cdef Py_ssize_t c, lo, hi, chunk
    if nt == 1:
        sgd_loop(0, n, lr, g, W)
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        if lo < hi:
            sgd_loop(lo, hi, lr, g, W)


cdef void adam_loop(Py_ssize_t n,
                    floating* W,             # OUT (n,) updated in place
                    const floating* g,       # IN  (n,)
                    floating* m,             # OUT (n,) first moment
                    floating* v,             # OUT (n,) second moment
                    floating b1, floating one_minus_b1, floating b2, floating one_minus_b2,
                    floating lr_t, floating eps_t) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating mi, vi
    for i in range(n):
        mi = m[i] * b1 + one_minus_b1 * g[i]
        vi = v[i] * b2 + one_minus_b2 * g[i] * g[i]
        m[i] = mi
        v[i] = vi
        if floating is float:
            W[i] = W[i] - lr_t * mi / (<float>sqrt(vi) + eps_t)
        else:
            W[i] = W[i] - lr_t * mi / (sqrt(vi) + eps_t)


cdef void adam_par(Py_ssize_t n, floating* W, const floating* g, floating* m, floating* v,
                   floating b1, floating omb1, floating b2, floating omb2,
                   floating lr_t, floating eps_t) noexcept nogil:
    cdef int nt = _threads_for(n * sizeof(floating), PAR_TRANSC)
    cdef Py_ssize_t c, lo, chunk
    if nt == 1:
        adam_loop(n, W, g, m, v, b1, omb1, b2, omb2, lr_t, eps_t)
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        if lo < n:
            adam_loop((chunk if lo + chunk <= n else n - lo), W + lo, g + lo, m + lo, v + lo,
                      b1, omb1, b2, omb2, lr_t, eps_t)


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
            out[i * C + j] = _put((P[i * C + j] - onehot) * scale, out[i * C + j], beta)


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
        out[i] = _put((Sig[i] - T[i]) * scale, out[i], beta)


cdef void dropout_loop(Py_ssize_t n, const double* U, double rate, floating scale,
                       floating* out) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = scale if U[i] >= rate else 0


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


cdef int _no_overlap(cnp.ndarray out, cnp.ndarray a, str name) except -1:
    if _overlap(out, a):
        raise ValueError(f"out shares memory with {name}; BLAS needs distinct buffers")
    return 0


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


cdef int _blas_dim(Py_ssize_t n) except -1:
    if n > 2147483647:
        raise ValueError(f"dimension {n} is too large for 32-bit BLAS")
    return 0


cdef cnp.ndarray _index_array(object ids, str what):
    """ids as a C-contiguous int32/int64 array (other integer dtypes converted)."""
    cdef cnp.ndarray a
    if not cnp.PyArray_Check(ids):
        raise TypeError(f"{what} must be a numpy integer array, got {type(ids).__name__}")
    a = <cnp.ndarray>ids
    cdef int t = cnp.PyArray_TYPE(a)
    if (t == cnp.NPY_INT64 or t == cnp.NPY_INT32) and _good(a):
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


cdef Py_ssize_t _bad_id(cnp.ndarray ids, Py_ssize_t V) noexcept:
    cdef Py_ssize_t n = cnp.PyArray_SIZE(ids)
    cdef void* p = cnp.PyArray_DATA(ids)
    if cnp.PyArray_TYPE(ids) == cnp.NPY_INT32:
        return first_bad_id(n, <cnp.int32_t*>p, V)
    return first_bad_id(n, <cnp.int64_t*>p, V)


cdef int _check_ids(cnp.ndarray ids, Py_ssize_t V, str what) except -1:
    cdef Py_ssize_t bad = _bad_id(ids, V)
    if bad >= 0:
        raise IndexError(
            f"{what} {ids.reshape(-1)[bad]} is out of range for a table of {V} rows")
    return 0


cdef int _check_labels(cnp.ndarray y, Py_ssize_t n, Py_ssize_t C) except -1:
    if cnp.PyArray_NDIM(y) != 1 or _dim(y, 0) != n:
        raise ValueError(f"class ids of shape {_shape(y)} do not match logits with {n} rows")
    cdef Py_ssize_t bad = _bad_id(y, C)
    if bad >= 0:
        raise ValueError(f"class id {y[bad]} is outside [0, {C})")
    return 0


cdef inline cnp.ndarray _arr(object a, str name):
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    return <cnp.ndarray>a


cdef inline cnp.ndarray _zero_d(double value, int t):
    cdef cnp.ndarray r = <cnp.ndarray>cnp.PyArray_EMPTY(0, NULL, t, 0)
    if t == cnp.NPY_FLOAT:
        (<float*>cnp.PyArray_DATA(r))[0] = <float>value
    else:
        (<double*>cnp.PyArray_DATA(r))[0] = value
    return r


# ==================================================================================
# Layer 3: Python-callable kernels
# ==================================================================================
# ------------------------------------------------------------------ BLAS-like
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
    cdef int t = _ftype(A, "A")
    _same_type(B, t, "B", A, "A")
    if cnp.PyArray_NDIM(A) != 2 or cnp.PyArray_NDIM(B) != 2:
        raise ValueError(f"gemm needs 2-D operands, got shapes {_shape(A)} and {_shape(B)}")
    A = _contig(A)
    B = _contig(B)
    cdef Py_ssize_t M = _dim(A, 1) if trans_a else _dim(A, 0)
    cdef Py_ssize_t K = _dim(A, 0) if trans_a else _dim(A, 1)
    cdef Py_ssize_t K2 = _dim(B, 1) if trans_b else _dim(B, 0)
    cdef Py_ssize_t N = _dim(B, 0) if trans_b else _dim(B, 1)
    if K != K2:
        raise ValueError(
            f"gemm: shapes {_shape(A)}{'.T' if trans_a else ''} and "
            f"{_shape(B)}{'.T' if trans_b else ''} are not aligned ({K} != {K2})")
    _blas_dim(M); _blas_dim(N); _blas_dim(K)
    cdef cnp.npy_intp dims[2]
    dims[0] = M
    dims[1] = N
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, 2, dims, "product")
    _no_overlap(out, A, "A")
    _no_overlap(out, B, "B")
    cdef void* pa = cnp.PyArray_DATA(A)
    cdef void* pb = cnp.PyArray_DATA(B)
    cdef void* pc = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            gemm_rm(trans_a, trans_b, <int>M, <int>N, <int>K, <float>1, <float*>pa,
                    <float*>pb, <float>beta, <float*>pc)
        else:
            gemm_rm(trans_a, trans_b, <int>M, <int>N, <int>K, <double>1, <double*>pa,
                    <double*>pb, beta, <double*>pc)
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
    cdef int t = _ftype(A, "A")
    _same_type(x, t, "x", A, "A")
    if cnp.PyArray_NDIM(A) != 2 or cnp.PyArray_NDIM(x) != 1:
        raise ValueError(f"gemv needs a 2-D A and a 1-D x, got shapes {_shape(A)} and {_shape(x)}")
    A = _contig(A)
    x = _contig(x)
    cdef Py_ssize_t M = _dim(A, 0), N = _dim(A, 1)
    cdef Py_ssize_t nx = M if trans else N
    if _dim(x, 0) != nx:
        raise ValueError(
            f"gemv: shapes {_shape(A)}{'.T' if trans else ''} and {_shape(x)} are not aligned")
    _blas_dim(M); _blas_dim(N)
    cdef cnp.npy_intp dims[1]
    dims[0] = N if trans else M
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, 1, dims, "product")
    _no_overlap(out, A, "A")
    _no_overlap(out, x, "x")
    cdef void* pa = cnp.PyArray_DATA(A)
    cdef void* px = cnp.PyArray_DATA(x)
    cdef void* py = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            gemv_rm(trans, <int>M, <int>N, <float>1, <float*>pa, <float*>px, <float>beta,
                    <float*>py)
        else:
            gemv_rm(trans, <int>M, <int>N, <double>1, <double*>pa, <double*>px, beta,
                    <double*>py)
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
    cdef int t = _ftype(x, "x")
    _same_type(y, t, "y", x, "x")
    if cnp.PyArray_NDIM(x) != 1 or cnp.PyArray_NDIM(y) != 1:
        raise ValueError(f"ger needs 1-D vectors, got shapes {_shape(x)} and {_shape(y)}")
    x = _contig(x)
    y = _contig(y)
    cdef Py_ssize_t M = _dim(x, 0), N = _dim(y, 0)
    _blas_dim(M); _blas_dim(N)
    cdef cnp.npy_intp dims[2]
    dims[0] = M
    dims[1] = N
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, 2, dims, "outer product")
    _no_overlap(out, x, "x")
    _no_overlap(out, y, "y")
    cdef void* px = cnp.PyArray_DATA(x)
    cdef void* py = cnp.PyArray_DATA(y)
    cdef void* pa = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            if beta == 0:
                outer_write(M, N, <float*>px, <float*>py, <float*>pa)
            else:
                ger_rm(<int>M, <int>N, <float>1, <float*>px, <float*>py, <float*>pa)
        else:
            if beta == 0:
                outer_write(M, N, <double*>px, <double*>py, <double*>pa)
            else:
                ger_rm(<int>M, <int>N, <double>1, <double*>px, <double*>py, <double*>pa)
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
    cdef int t = _ftype(x, "x")
    _same_type(y, t, "y", x, "x")
    if cnp.PyArray_NDIM(x) != 1 or not _same_shape(x, y):
        raise ValueError(f"dot needs two 1-D arrays of one length, got {_shape(x)} and {_shape(y)}")
    x = _contig(x)
    y = _contig(y)
    cdef Py_ssize_t n = _dim(x, 0)
    _blas_dim(n)
    cdef int nn = <int>n, one = 1
    cdef double r
    if t == cnp.NPY_FLOAT:
        r = sdot(&nn, <float*>cnp.PyArray_DATA(x), &one, <float*>cnp.PyArray_DATA(y), &one)
    else:
        r = ddot(&nn, <double*>cnp.PyArray_DATA(x), &one, <double*>cnp.PyArray_DATA(y), &one)
    return _zero_d(r, t)


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
    cdef int t = _ftype(X, "X")
    X = _contig(X)
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), "result")
    _same_or_apart(out, X, "out", "X")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(X)
    cdef void* px = cnp.PyArray_DATA(X)
    cdef void* po = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            scale_loop(n, <float>alpha, <float*>px, <float>beta, <float*>po)
        else:
            scale_loop(n, alpha, <double*>px, beta, <double*>po)
    return out


def linear(cnp.ndarray X not None, cnp.ndarray W not None, cnp.ndarray b=None,
           cnp.ndarray out=None):
    """Fused affine map ``out = X @ W + b``: fill the rows of ``out`` with ``b``, then one
    ``gemm`` with ``beta = 1`` (``beta = 0`` and no fill when ``b`` is None).

    Parameters
    ----------
    X : ndarray
        (n, k) inputs.
    W : ndarray
        (k, m) weights.
    b : ndarray or None
        (m,) bias.
    out : ndarray, optional
        (n, m) destination, not sharing memory with the inputs.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Misaligned shapes, a bad ``out``.
    """
    cdef int t = _ftype(X, "X")
    _same_type(W, t, "W", X, "X")
    if b is not None:
        _same_type(b, t, "b", X, "X")
    if cnp.PyArray_NDIM(X) != 2 or cnp.PyArray_NDIM(W) != 2 or _dim(X, 1) != _dim(W, 0):
        raise ValueError(f"linear: shapes {_shape(X)} and {_shape(W)} are not aligned")
    cdef Py_ssize_t n = _dim(X, 0), k = _dim(X, 1), m = _dim(W, 1)
    if b is not None and (cnp.PyArray_NDIM(b) != 1 or _dim(b, 0) != m):
        raise ValueError(f"linear: bias of shape {_shape(b)} for an output of width {m}")
    _blas_dim(n); _blas_dim(k); _blas_dim(m)
    X = _contig(X)
    W = _contig(W)
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = m
    out = _out_like(out, t, 2, dims, "product")
    _no_overlap(out, X, "X")
    _no_overlap(out, W, "W")
    cdef void* pb = NULL
    if b is not None:
        b = _contig(b)
        _no_overlap(out, b, "b")
        pb = cnp.PyArray_DATA(b)
    cdef void* px = cnp.PyArray_DATA(X)
    cdef void* pw = cnp.PyArray_DATA(W)
    cdef void* po = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            if pb != NULL:
                fill_rows(n, m, <float*>pb, <float*>po)
            gemm_rm(False, False, <int>n, <int>m, <int>k, <float>1, <float*>px, <float*>pw,
                    <float>(1 if pb != NULL else 0), <float*>po)
        else:
            if pb != NULL:
                fill_rows(n, m, <double*>pb, <double*>po)
            gemm_rm(False, False, <int>n, <int>m, <int>k, <double>1, <double*>px,
                    <double*>pw, <double>(1 if pb != NULL else 0), <double*>po)
    return out


def reduce_sum(cnp.ndarray X not None, axis=None, bint keepdims=False):
    """Sum over all elements (``axis=None``) or, for a 2-D array, over axis 0 or 1.

    Sums are accumulated in double precision in blocks (column sums in the array's
    dtype, row by row, as numpy does).

    Returns
    -------
    ndarray
        An array of ``X``'s dtype (0-d for a full sum without ``keepdims``).

    Raises
    ------
    TypeError
        Non-float dtype.
    UnsupportedBroadcast
        Other axes (the backend falls back to numpy).
    """
    cdef int t = _ftype(X, "X")
    cdef int nd = cnp.PyArray_NDIM(X)
    cdef int mode = -1   # 0: all, 1: columns (axis 0), 2: rows (axis 1)
    cdef Py_ssize_t i
    if axis is None:
        mode = 0
    else:
        try:
            axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
            norm = [int(a) + nd if int(a) < 0 else int(a) for a in axes]
        except (TypeError, ValueError):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}") from None
        for a in norm:
            if not 0 <= a < nd:
                raise np.exceptions.AxisError(
                    f"axis {a - nd if a < 0 else a} is out of bounds for an array of "
                    f"dimension {nd}")
        if len(set(norm)) != len(norm):
            raise ValueError(f"duplicate value in axis {axis!r}")
        norm = sorted(norm)
        if len(norm) == nd and norm == list(range(nd)):
            mode = 0
        elif nd == 2 and norm == [0]:
            mode = 1
        elif nd == 2 and norm == [1]:
            mode = 2
        else:
            raise UnsupportedBroadcast(f"reduce_sum over axis {axis!r} of a {nd}-D array")
    X = _contig(X)
    cdef cnp.npy_intp dims[64]
    cdef int ond
    if mode == 0:
        ond = nd if keepdims else 0
        for i in range(ond):
            dims[i] = 1
    elif keepdims:
        ond = 2
        dims[0] = 1 if mode == 1 else _dim(X, 0)
        dims[1] = _dim(X, 1) if mode == 1 else 1
    else:
        ond = 1
        dims[0] = _dim(X, 1) if mode == 1 else _dim(X, 0)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(ond, dims, t, 0)
    cdef void* px = cnp.PyArray_DATA(X)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(X)
    with nogil:
        if t == cnp.NPY_FLOAT:
            if mode == 0:
                (<float*>po)[0] = <float>sum_all(n, <float*>px)
            elif mode == 1:
                col_sums(_dim(X, 0), _dim(X, 1), <float*>px, <float>0, <float*>po)
            else:
                row_sums(_dim(X, 0), _dim(X, 1), <float*>px, <float>0, <float*>po)
        else:
            if mode == 0:
                (<double*>po)[0] = sum_all(n, <double*>px)
            elif mode == 1:
                col_sums(_dim(X, 0), _dim(X, 1), <double*>px, <double>0, <double*>po)
            else:
                row_sums(_dim(X, 0), _dim(X, 1), <double*>px, <double>0, <double*>po)
    return out


def unbroadcast(cnp.ndarray dY not None, shape, cnp.ndarray out=None, double beta=0.0):
    """Sum ``dY`` down to ``shape`` (the adjoint of broadcasting), ``out = sum + beta out``.

    Covered: ``shape == _shape(dY)`` (copy), a (m,) or (1, m) bias of a (n, m) gradient
    (column sums), (n, 1) (row sums), and any size-1 shape (full sum).

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
    UnsupportedBroadcast
        Other patterns (the backend falls back to numpy).
    """
    cdef int t = _ftype(dY, "dY")
    shape = tuple(shape)
    cdef int nd = len(shape), ndy = cnp.PyArray_NDIM(dY)
    cdef cnp.npy_intp dims[64]
    cdef Py_ssize_t i, size = 1
    if nd > 64:
        raise ValueError(f"shape {shape} has too many dimensions")
    for i in range(nd):
        dims[i] = shape[i]
        size *= dims[i]
    cdef int mode
    if shape == _shape(dY):
        mode = 0
    elif size == 1 and nd <= ndy:
        mode = 1
    elif ndy == 2 and ((nd == 1 and dims[0] == _dim(dY, 1)) or
                       (nd == 2 and dims[0] == 1 and dims[1] == _dim(dY, 1))):
        mode = 2
    elif ndy == 2 and nd == 2 and dims[0] == _dim(dY, 0) and dims[1] == 1:
        mode = 3
    else:
        raise UnsupportedBroadcast(f"unbroadcast of {_shape(dY)} to {shape}")
    dY = _contig(dY)
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, nd, dims, "reduced gradient")
    _same_or_apart(out, dY, "out", "dY")
    cdef void* pg = cnp.PyArray_DATA(dY)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dY)
    cdef Py_ssize_t r = _dim(dY, 0) if ndy == 2 else 0
    cdef Py_ssize_t c = _dim(dY, 1) if ndy == 2 else 0
    with nogil:
        if t == cnp.NPY_FLOAT:
            if mode == 0:
                copy_loop(n, <float*>pg, <float>beta, <float*>po)
            elif mode == 1:
                (<float*>po)[0] = _put(<float>sum_all(n, <float*>pg), (<float*>po)[0],
                                       <float>beta)
            elif mode == 2:
                col_sums(r, c, <float*>pg, <float>beta, <float*>po)
            else:
                row_sums(r, c, <float*>pg, <float>beta, <float*>po)
        else:
            if mode == 0:
                copy_loop(n, <double*>pg, beta, <double*>po)
            elif mode == 1:
                (<double*>po)[0] = _put(sum_all(n, <double*>pg), (<double*>po)[0], beta)
            elif mode == 2:
                col_sums(r, c, <double*>pg, beta, <double*>po)
            else:
                row_sums(r, c, <double*>pg, beta, <double*>po)
    return out


def backprop_bias(cnp.ndarray dY not None, cnp.ndarray out=None, double beta=0.0):
    """Bias gradient ``out = dY.sum(axis=0) + beta * out`` for ``dY`` of shape (n, m).

    Returns
    -------
    ndarray
        ``out`` of shape (m,).

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        ``dY`` not 2-D, a bad ``out``.
    """
    cdef int t = _ftype(dY, "dY")
    if cnp.PyArray_NDIM(dY) != 2:
        raise ValueError(f"backprop_bias needs a 2-D gradient, got shape {_shape(dY)}")
    dY = _contig(dY)
    cdef cnp.npy_intp dims[1]
    dims[0] = _dim(dY, 1)
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, 1, dims, "bias gradient")
    cdef void* pg = cnp.PyArray_DATA(dY)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef Py_ssize_t n = _dim(dY, 0), m = _dim(dY, 1)
    with nogil:
        if t == cnp.NPY_FLOAT:
            col_sums(n, m, <float*>pg, <float>beta, <float*>po)
        else:
            col_sums(n, m, <double*>pg, beta, <double*>po)
    return out


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


# ------------------------------------------------------------------ activations
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


cdef object _activation(int act, cnp.ndarray X):
    cdef int t = _ftype(X, "X")
    X = _contig(X)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), t, 0)
    cdef void* px = cnp.PyArray_DATA(X)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(X)
    with nogil:
        if t == cnp.NPY_FLOAT:
            act_forward_par(act, n, <float*>px, <float*>po)
        else:
            act_forward_par(act, n, <double*>px, <double*>po)
    return out


def tanh(cnp.ndarray X not None):
    """Elementwise ``tanh(X)`` (vectorised libm), a new array.

    Raises
    ------
    TypeError
        Non-float dtype.
    """
    return _activation(ACT_TANH, X)


def sigmoid(cnp.ndarray X not None):
    """Elementwise logistic sigmoid, stable for any magnitude, a new array.

    Raises
    ------
    TypeError
        Non-float dtype.
    """
    return _activation(ACT_SIGMOID, X)


def relu(cnp.ndarray X not None):
    """Elementwise ``max(X, 0)`` (NaN propagates, as in ``np.maximum``), a new array.

    Raises
    ------
    TypeError
        Non-float dtype.
    """
    return _activation(ACT_RELU, X)


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
    return _elementwise_backward(ACT_TANH, dY, Y, out, beta, "Y")


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
    return _elementwise_backward(ACT_SIGMOID, dY, Y, out, beta, "Y")


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
    return _elementwise_backward(ACT_RELU, dY, Y, out, beta, "Y")


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
    return _elementwise_backward(_act_code(act), dY, Y, out, beta, "Y")


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
    cdef int t = _ftype(X, "X")
    cdef Py_ssize_t n, m
    if b is None:
        n = 1
        m = cnp.PyArray_SIZE(X)
    else:
        _same_type(b, t, "b", X, "X")
        if cnp.PyArray_NDIM(X) != 2 or cnp.PyArray_NDIM(b) != 1 or _dim(X, 1) != _dim(b, 0):
            raise ValueError(f"bias_act needs X (n, m) and b (m,), got {_shape(X)} and {_shape(b)}")
        n = _dim(X, 0)
        m = _dim(X, 1)
        b = _contig(b)
    X = _contig(X)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), t, 0)
    cdef void* px = cnp.PyArray_DATA(X)
    cdef void* pb = NULL if b is None else cnp.PyArray_DATA(b)
    cdef void* po = cnp.PyArray_DATA(out)
    with nogil:
        if b is None:
            if t == cnp.NPY_FLOAT:
                act_forward_par(code, m, <float*>px, <float*>po)
            else:
                act_forward_par(code, m, <double*>px, <double*>po)
        elif t == cnp.NPY_FLOAT:
            bias_act_par(code, n, m, <float*>px, <float*>pb, <float*>po)
        else:
            bias_act_par(code, n, m, <double*>px, <double*>pb, <double*>po)
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
    if not _is_float(t):
        raise TypeError(f"mask dtype must be float32 or float64, got {dt}")
    U = _contig(U)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(U), cnp.PyArray_DIMS(U), t, 0)
    cdef double s = 1.0 / (1.0 - rate)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(U)
    cdef double* pu = <double*>cnp.PyArray_DATA(U)
    cdef void* po = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            dropout_loop(n, pu, rate, <float>s, <float*>po)
        else:
            dropout_loop(n, pu, rate, s, <double*>po)
    return out


# ------------------------------------------------------------------ embedding
def embedding(cnp.ndarray E not None, ids):
    """Gather and concatenate window rows: ``(B, w)`` ids -> ``(B, w * d)`` (``(n,)`` ids
    -> ``(n, d)``).

    Parameters
    ----------
    E : ndarray
        (V, d) table, float32 or float64.
    ids : ndarray
        1-D or 2-D array of any integer dtype.

    Returns
    -------
    ndarray
        A new array of the gathered rows.

    Raises
    ------
    TypeError
        Non-float table or non-integer ids.
    ValueError
        ``E`` not 2-D or ``ids`` not 1-D/2-D.
    IndexError
        An id outside ``[0, V)`` (named in the message).
    """
    cdef int t = _ftype(E, "E")
    cdef cnp.ndarray I = _index_array(ids, "ids")
    if cnp.PyArray_NDIM(E) != 2:
        raise ValueError(f"embedding table must be 2-D (V, d), got shape {_shape(E)}")
    cdef int ndi = cnp.PyArray_NDIM(I)
    if ndi != 1 and ndi != 2:
        raise ValueError(f"ids must be 1-D (n,) or 2-D (B, w), got shape {_shape(I)}")
    E = _contig(E)
    cdef Py_ssize_t V = _dim(E, 0), d = _dim(E, 1), n = cnp.PyArray_SIZE(I)
    _check_ids(I, V, "id")
    cdef cnp.npy_intp dims[2]
    dims[0] = _dim(I, 0)
    dims[1] = (_dim(I, 1) if ndi == 2 else 1) * d
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, t, 0)
    cdef void* pe = cnp.PyArray_DATA(E)
    cdef void* pi = cnp.PyArray_DATA(I)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef bint i32 = cnp.PyArray_TYPE(I) == cnp.NPY_INT32
    with nogil:
        if t == cnp.NPY_FLOAT:
            if i32:
                gather_rows(n, d, <float*>pe, <cnp.int32_t*>pi, <float*>po)
            else:
                gather_rows(n, d, <float*>pe, <cnp.int64_t*>pi, <float*>po)
        else:
            if i32:
                gather_rows(n, d, <double*>pe, <cnp.int32_t*>pi, <double*>po)
            else:
                gather_rows(n, d, <double*>pe, <cnp.int64_t*>pi, <double*>po)
    return out


cdef Py_ssize_t _rows_values(cnp.ndarray table, cnp.ndarray I, cnp.ndarray values,
                             str tname) except -1:
    """Check a (V, d) table written in place against rows/values; returns n."""
    cdef int t = _ftype(table, tname)
    _same_type(values, t, "values", table, tname)
    if cnp.PyArray_NDIM(table) != 2:
        raise ValueError(f"{tname} must be a 2-D (V, d) table, got shape {_shape(table)}")
    _writable(table, tname)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(I), d = _dim(table, 1)
    cdef int ndv = cnp.PyArray_NDIM(values)
    if not ((ndv == 2 and _dim(values, 0) == n and _dim(values, 1) == d) or
            (ndv == cnp.PyArray_NDIM(I) + 1 and _shape(values) == _shape(I) + (d,))):
        raise ValueError(
            f"values of shape {_shape(values)} do not match {n} rows of width {d} "
            f"(rows of shape {_shape(I)})")
    _check_ids(I, _dim(table, 0), "row")
    return n


def scatter_add_rows(cnp.ndarray out not None, rows, cnp.ndarray values not None,
                     double alpha=1.0):
    """``out[rows[i]] += alpha * values[i]`` in place, repeated rows summed: the adjoint of
    :func:`embedding` and, with ``alpha = -lr``, the row-sparse SGD update.

    Parameters
    ----------
    out : ndarray
        (V, d) table, C-contiguous and writeable.
    rows : ndarray
        Integer ids of any shape, each in ``[0, V)``.
    values : ndarray
        ``(rows.size, d)`` or ``_shape(rows) + (d,)``, the dtype of ``out``.
    alpha : float
        Scale of the values.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float/mixed dtypes, non-integer rows.
    ValueError
        Shapes that do not match, a non-writeable or non-contiguous ``out``.
    IndexError
        A row outside ``[0, V)`` (nothing is written then).
    """
    _scatter(out, rows, values, alpha, "out")
    return out


cdef int _scatter(cnp.ndarray out, object rows, cnp.ndarray values, double alpha,
                  str name) except -1:
    cdef cnp.ndarray I = _index_array(rows, "rows")
    cdef Py_ssize_t n = _rows_values(out, I, values, name)
    values = _contig(values)
    if _overlap(out, values):  # rows may repeat: read a snapshot of the values
        values = values.copy()
    cdef int t = cnp.PyArray_TYPE(out)
    cdef Py_ssize_t d = _dim(out, 1)
    cdef void* pv = cnp.PyArray_DATA(values)
    cdef void* pr = cnp.PyArray_DATA(I)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef bint i32 = cnp.PyArray_TYPE(I) == cnp.NPY_INT32
    with nogil:
        if t == cnp.NPY_FLOAT:
            if i32:
                scatter_add(n, d, <float>alpha, <cnp.int32_t*>pr, <float*>pv, <float*>po)
            else:
                scatter_add(n, d, <float>alpha, <cnp.int64_t*>pr, <float*>pv, <float*>po)
        else:
            if i32:
                scatter_add(n, d, alpha, <cnp.int32_t*>pr, <double*>pv, <double*>po)
            else:
                scatter_add(n, d, alpha, <cnp.int64_t*>pr, <double*>pv, <double*>po)
    return 0


cdef tuple _coalesce(cnp.ndarray I, cnp.ndarray values, int t, Py_ssize_t d):
    """(unique rows as intp in first-seen order, summed values) -- O(n), no O(V) work."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(I), u
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    cdef cnp.ndarray slot = <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
    cdef cnp.ndarray uniq = <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT64, 0)
    cdef void* pr = cnp.PyArray_DATA(I)
    cdef Py_ssize_t* ps = <Py_ssize_t*>cnp.PyArray_DATA(slot)
    cdef cnp.int64_t* pu = <cnp.int64_t*>cnp.PyArray_DATA(uniq)
    with nogil:
        if cnp.PyArray_TYPE(I) == cnp.NPY_INT32:
            u = coalesce_index(n, <cnp.int32_t*>pr, ps, pu)
        else:
            u = coalesce_index(n, <cnp.int64_t*>pr, ps, pu)
    if u < 0:
        raise MemoryError("coalesce_rows: cannot allocate the hash table")
    dims[0] = u
    dims[1] = d
    cdef cnp.ndarray summed = <cnp.ndarray>cnp.PyArray_ZEROS(2, dims, t, 0)
    cdef void* pv = cnp.PyArray_DATA(values)
    cdef void* po = cnp.PyArray_DATA(summed)
    with nogil:
        if t == cnp.NPY_FLOAT:
            sum_into_slots(n, d, ps, <float*>pv, <float*>po)
        else:
            sum_into_slots(n, d, ps, <double*>pv, <double*>po)
    return uniq[:u].astype(np.intp, copy=False), summed


def coalesce_rows(rows, cnp.ndarray values not None):
    """Sum the values of repeated rows with a hash table sized by the number of rows (the
    cost never depends on the table size V).

    Parameters
    ----------
    rows : ndarray
        Integer ids, any shape with ``rows.size`` entries.
    values : ndarray
        ``(rows.size, d)`` (or ``_shape(rows) + (d,)``) float32/float64 values.

    Returns
    -------
    unique_rows : ndarray
        intp, the distinct rows in order of first appearance.
    summed : ndarray
        ``(unique_rows.size, d)`` sums of their values.

    Raises
    ------
    TypeError
        Non-integer rows or non-float values.
    ValueError
        ``values`` not matching ``rows``.
    """
    cdef cnp.ndarray I = _index_array(rows, "rows")
    cdef int t = _ftype(values, "values")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(I)
    cdef int ndv = cnp.PyArray_NDIM(values)
    if ndv < 1 or not ((ndv == 2 and _dim(values, 0) == n) or
                       (ndv == cnp.PyArray_NDIM(I) + 1 and
                        _shape(values)[:ndv - 1] == _shape(I))):
        raise ValueError(f"values of shape {_shape(values)} do not match rows of shape {_shape(I)}")
    values = _contig(values)
    return _coalesce(I, values, t, _dim(values, ndv - 1))


# ------------------------------------------------------------------ losses
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
    cdef int t = _ftype(Z, "Z")
    cdef cnp.ndarray Y = _index_array(y, "class ids")
    if cnp.PyArray_NDIM(Z) != 2:
        raise ValueError(f"logits must be 2-D (n, C), got shape {_shape(Z)}")
    cdef Py_ssize_t n = _dim(Z, 0), C = _dim(Z, 1)
    _check_labels(Y, n, C)
    Z = _contig(Z)
    cdef cnp.ndarray P = <cnp.ndarray>cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(Z), t, 0)
    cdef void* pz = cnp.PyArray_DATA(Z)
    cdef void* py = cnp.PyArray_DATA(Y)
    cdef void* pp = cnp.PyArray_DATA(P)
    cdef bint i32 = cnp.PyArray_TYPE(Y) == cnp.NPY_INT32
    cdef double total = 0
    with nogil:
        if t == cnp.NPY_FLOAT:
            if i32:
                total = softmax_xent_rows(n, C, <float*>pz, <cnp.int32_t*>py, <float*>pp)
            else:
                total = softmax_xent_rows(n, C, <float*>pz, <cnp.int64_t*>py, <float*>pp)
        else:
            if i32:
                total = softmax_xent_rows(n, C, <double*>pz, <cnp.int32_t*>py, <double*>pp)
            else:
                total = softmax_xent_rows(n, C, <double*>pz, <cnp.int64_t*>py, <double*>pp)
    return _zero_d(total / (n if n > 1 else 1), t), P


def backprop_softmax_cross_entropy(cnp.ndarray P not None, y, double dloss,
                                   cnp.ndarray out=None, double beta=0.0):
    """``out = dloss * (P - onehot(y)) / n + beta * out``.

    Raises
    ------
    TypeError
        Non-float/mixed dtypes or non-integer class ids.
    ValueError
        Bad shapes, a class id outside ``[0, C)``, a bad ``out``.
    """
    cdef int t = _ftype(P, "P")
    cdef cnp.ndarray Y = _index_array(y, "class ids")
    if cnp.PyArray_NDIM(P) != 2:
        raise ValueError(f"P must be 2-D (n, C), got shape {_shape(P)}")
    cdef Py_ssize_t n = _dim(P, 0), C = _dim(P, 1)
    _check_labels(Y, n, C)
    P = _contig(P)
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, 2, cnp.PyArray_DIMS(P), "gradient")
    _same_or_apart(out, P, "out", "P")
    cdef double s = dloss / (n if n > 1 else 1)
    cdef void* pp = cnp.PyArray_DATA(P)
    cdef void* py = cnp.PyArray_DATA(Y)
    cdef void* po = cnp.PyArray_DATA(out)
    cdef bint i32 = cnp.PyArray_TYPE(Y) == cnp.NPY_INT32
    with nogil:
        if t == cnp.NPY_FLOAT:
            if i32:
                softmax_xent_grad(n, C, <float*>pp, <cnp.int32_t*>py, <float>s, <float>beta,
                                  <float*>po)
            else:
                softmax_xent_grad(n, C, <float*>pp, <cnp.int64_t*>py, <float>s, <float>beta,
                                  <float*>po)
        else:
            if i32:
                softmax_xent_grad(n, C, <double*>pp, <cnp.int32_t*>py, s, beta, <double*>po)
            else:
                softmax_xent_grad(n, C, <double*>pp, <cnp.int64_t*>py, s, beta, <double*>po)
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
    cdef int t = _ftype(S, "S")
    _same_type(T, t, "T", S, "S")
    if not _same_shape(S, T):
        raise ValueError(f"targets of shape {_shape(T)} for logits of shape {_shape(S)}")
    S = _contig(S)
    T = _contig(T)
    cdef cnp.ndarray Sig = <cnp.ndarray>cnp.PyArray_EMPTY(
        cnp.PyArray_NDIM(S), cnp.PyArray_DIMS(S), t, 0)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(S)
    cdef void* ps = cnp.PyArray_DATA(S)
    cdef void* pt = cnp.PyArray_DATA(T)
    cdef void* pg = cnp.PyArray_DATA(Sig)
    cdef double total
    with nogil:
        if t == cnp.NPY_FLOAT:
            total = bce_forward(n, <float*>ps, <float*>pt, <float*>pg)
        else:
            total = bce_forward(n, <double*>ps, <double*>pt, <double*>pg)
    return _zero_d(total / (n if n > 1 else 1), t), Sig


def backprop_sigmoid_bce(cnp.ndarray Sig not None, cnp.ndarray T not None, double dloss,
                         cnp.ndarray out=None, double beta=0.0):
    """``out = dloss * (sigmoid(S) - T) / n + beta * out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    """
    cdef int t = _ftype(Sig, "Sig")
    _same_type(T, t, "T", Sig, "Sig")
    if not _same_shape(Sig, T):
        raise ValueError(f"targets of shape {_shape(T)} for Sig of shape {_shape(Sig)}")
    Sig = _contig(Sig)
    T = _contig(T)
    if out is None:
        beta = 0.0
    else:
        _check_beta(beta)
    out = _out_like(out, t, cnp.PyArray_NDIM(Sig), cnp.PyArray_DIMS(Sig), "gradient")
    _same_or_apart(out, Sig, "out", "Sig")
    _same_or_apart(out, T, "out", "T")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(Sig)
    cdef double s = dloss / (n if n > 1 else 1)
    cdef void* pg = cnp.PyArray_DATA(Sig)
    cdef void* pt = cnp.PyArray_DATA(T)
    cdef void* po = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_FLOAT:
            bce_backward(n, <float*>pg, <float*>pt, <float>s, <float>beta, <float*>po)
        else:
            bce_backward(n, <double*>pg, <double*>pt, s, beta, <double*>po)
    return out


# ------------------------------------------------------------------ optimisers
cdef int _param_and_grad(cnp.ndarray W, cnp.ndarray dW, str wname, str gname) except -1:
    cdef int t = _ftype(W, wname)
    _same_type(dW, t, gname, W, wname)
    if not _same_shape(W, dW):
        raise ValueError(f"{gname} of shape {_shape(dW)} does not match {wname} of shape {_shape(W)}")
    _writable(W, wname)
    _same_or_apart(W, dW, wname, gname)
    return t


def sgd_update(cnp.ndarray W not None, cnp.ndarray dW not None, double lr):
    """In place ``W -= lr * dW`` (an axpy with ``alpha = -lr``).

    One pass (SSE2/AVX2/AVX-512 clones picked at load time). It is a loop of ours rather
    than BLAS ``axpy`` so that its threading follows this module's OpenMP threshold:
    OpenBLAS wakes its own thread pool for axpy from ~10k elements, which on a busy
    2-core machine cost up to milliseconds per call in the training step; single-threaded
    it is also ~10% faster than OpenBLAS's saxpy at 50k elements.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, ``W`` not writeable/C-contiguous.
    """
    cdef int t = _param_and_grad(W, dW, "W", "dW")
    dW = _contig(dW)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(W)
    cdef void* pw = cnp.PyArray_DATA(W)
    cdef void* pg = cnp.PyArray_DATA(dW)
    with nogil:
        if t == cnp.NPY_FLOAT:
            sgd_par(n, <float>lr, <float*>pg, <float*>pw)
        else:
            sgd_par(n, lr, <double*>pg, <double*>pw)


def sgd_update_rows(cnp.ndarray W not None, rows, cnp.ndarray values not None, double lr):
    """Row-sparse SGD ``W[rows[i]] -= lr * values[i]`` in place (repeated rows summed).

    Raises
    ------
    TypeError, ValueError, IndexError
        As :func:`scatter_add_rows`.
    """
    _scatter(W, rows, values, -lr, "W")


cdef int _distinct_state(cnp.ndarray W, cnp.ndarray m, cnp.ndarray v) except -1:
    if _overlap(W, m) or _overlap(W, v) or _overlap(m, v):
        raise ValueError("Adam needs three separate buffers for W, m and v")
    return 0


cdef tuple _adam_consts(double lr, double beta1, double beta2, double eps, step):
    if step < 1:
        raise ValueError(f"Adam step counts from 1, got {step}")
    cdef double c2 = sqrt(1 - beta2 ** step)
    return (lr * c2 / (1 - beta1 ** step), eps * c2)


def adam_update(cnp.ndarray W not None, cnp.ndarray dW not None, cnp.ndarray m not None,
                cnp.ndarray v not None, double lr, double beta1, double beta2, double eps,
                step):
    """In-place Adam step with bias correction (``step`` counts from 1), one fused pass
    over ``W``, ``dW``, ``m`` and ``v``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, state arrays not writeable/C-contiguous, ``step < 1``.
    """
    cdef int t = _param_and_grad(W, dW, "W", "dW")
    _param_and_grad(m, dW, "m", "dW")
    _param_and_grad(v, dW, "v", "dW")
    _distinct_state(W, m, v)
    lr_t, eps_t = _adam_consts(lr, beta1, beta2, eps, step)
    dW = _contig(dW)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(W)
    cdef void* pw = cnp.PyArray_DATA(W)
    cdef void* pg = cnp.PyArray_DATA(dW)
    cdef void* pm = cnp.PyArray_DATA(m)
    cdef void* pv = cnp.PyArray_DATA(v)
    cdef double a = lr_t, e = eps_t
    with nogil:
        if t == cnp.NPY_FLOAT:
            adam_par(n, <float*>pw, <float*>pg, <float*>pm, <float*>pv, <float>beta1,
                     <float>(1 - beta1), <float>beta2, <float>(1 - beta2), <float>a, <float>e)
        else:
            adam_par(n, <double*>pw, <double*>pg, <double*>pm, <double*>pv, beta1,
                     1 - beta1, beta2, 1 - beta2, a, e)


def adam_update_rows(cnp.ndarray W not None, rows, cnp.ndarray values not None,
                     cnp.ndarray m not None, cnp.ndarray v not None, double lr, double beta1,
                     double beta2, double eps, step):
    """Lazy (row-sparse) Adam, as ``torch.optim.SparseAdam``: repeated rows are summed
    (hash table, O(rows)), then only those rows of ``W``, ``m`` and ``v`` are updated.

    Raises
    ------
    TypeError
        Non-float/mixed dtypes, non-integer rows.
    ValueError
        Shapes that do not match, state not writeable/C-contiguous, ``step < 1``.
    IndexError
        A row outside ``[0, V)`` (nothing is written then).
    """
    cdef cnp.ndarray I = _index_array(rows, "rows")
    cdef Py_ssize_t n = _rows_values(W, I, values, "W")
    cdef int t = cnp.PyArray_TYPE(W)
    for arr, name in ((m, "m"), (v, "v")):
        _same_type(arr, t, name, W, "W")
        if not _same_shape(arr, W):
            raise ValueError(f"{name} of shape {_shape(arr)} does not match W of shape {_shape(W)}")
        _writable(arr, name)
    _distinct_state(W, m, v)
    lr_t, eps_t = _adam_consts(lr, beta1, beta2, eps, step)
    values = _contig(values)
    cdef Py_ssize_t d = _dim(W, 1)
    uniq, summed = _coalesce(I, values, t, d)
    cdef cnp.ndarray U = uniq, G = summed
    cdef Py_ssize_t u = cnp.PyArray_SIZE(U), k, r
    cdef Py_ssize_t* pu = <Py_ssize_t*>cnp.PyArray_DATA(U)
    cdef void* pw = cnp.PyArray_DATA(W)
    cdef void* pg = cnp.PyArray_DATA(G)
    cdef void* pm = cnp.PyArray_DATA(m)
    cdef void* pv = cnp.PyArray_DATA(v)
    cdef double a = lr_t, e = eps_t
    with nogil:
        for k in range(u):
            r = pu[k] * d
            if t == cnp.NPY_FLOAT:
                adam_loop(d, <float*>pw + r, <float*>pg + k * d, <float*>pm + r,
                          <float*>pv + r, <float>beta1, <float>(1 - beta1), <float>beta2,
                          <float>(1 - beta2), <float>a, <float>e)
            else:
                adam_loop(d, <double*>pw + r, <double*>pg + k * d, <double*>pm + r,
                          <double*>pv + r, beta1, 1 - beta1, beta2, 1 - beta2, a, e)


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
