# cython: language_level=3
"""Row-major BLAS through :mod:`scipy.linalg.cython_blas` (nothing to link at build time):
``inline`` shims compiled into each kernel module that cimports them. All pointers are to
C-contiguous row-major data; nothing here validates its arguments.

Row-major inputs are handled by swapping operands: row-major ``C = A B`` is column-major
``C^T = B^T A^T``.
"""

from libc.stdlib cimport malloc, free
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv, sger, dger, saxpy, daxpy

from fastbp_ext._common cimport floating
from fastbp_ext._simd cimport (
    fastbp_outer_f, fastbp_outer_d, fastbp_gemv_t_f, fastbp_gemv_t_d, fastbp_gemv_n_f,
    fastbp_gemv_n_d,
)


cdef inline int _bi(Py_ssize_t n) noexcept nogil:
    return <int>(n if n > 1 else 1)


cdef inline void outer_write(Py_ssize_t M, Py_ssize_t N,
                      const floating* x,   # IN  (M,)
                      const floating* y,   # IN  (N,)
                      floating* out,       # OUT (M, N) = x y^T
                      ) noexcept nogil:
    # beta = 0: one pass writing the outer product (ger would need a zeroing pass first)
    if floating is float:
        fastbp_outer_f(M, N, x, y, out)
    else:
        fastbp_outer_d(M, N, x, y, out)


cdef inline void gemm_rm(bint trans_a, bint trans_b, int M, int N, int K, floating alpha,
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
    if (few_rows(M, N, K, trans_a, trans_b, floating is float)
            and gemm_few_rows(trans_a, trans_b, M, N, K, alpha, A, B, beta, C)):
        return
    if floating is float:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float*>B, &ldb, <float*>A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double*>B, &ldb, <double*>A, &lda, &beta, C, &ldc)


cdef inline bint few_rows(int M, int N, int K, bint trans_a, bint trans_b,
                          bint single) noexcept nogil:
    """Products with a few rows of C and many columns, for which the column-major call
    with m = M (computing C^T's storage) and a transposing copy are faster than the call
    with n = M. Measured with SciPy 1.17's OpenBLAS 0.3.30 (SkylakeX kernels) on 2
    threads:

    - any transposes: 1.2-1.5x at M = 4..16, N >= 256, K >= 128 (e.g. a batch of 16
      through a 300 x 512 layer: 56 -> 44 us); at M = 32 ahead from K ~ 500 (32 x 1500 x
      512: 376 -> 331 us); slower for M >= 64.
    - float32 ``A B^T`` (the input gradient ``dx = dz W^T`` of a layer): 1.1-1.6x at
      M = 8..32 with N, K >= 200 (the lecture step's 32 x 200 by 200 x 250: 68 -> 56 us,
      median of 11); double precision gains nothing at M = 32, so it is left alone.
    """
    if N >= 256 and K >= 128 and (M <= 16 or (M <= 32 and K >= 512)):
        return True
    return single and trans_b and not trans_a and M <= 32 and N >= 200 and K >= 192


cdef inline bint gemm_few_rows(bint trans_a, bint trans_b, int M, int N, int K,
                               floating alpha,
                               const floating* A,   # IN  (M, K), or (K, M) if trans_a
                               const floating* B,   # IN  (K, N), or (N, K) if trans_b
                               floating beta,
                               floating* C,         # OUT (M, N)
                               ) noexcept nogil:
    """Row-major C = alpha op(A) op(B) + beta C through a column-major (M, N) product T
    (m = M) and C = T^T + beta C. Returns False (nothing done) if the scratch cannot be
    allocated."""
    cdef floating* T = <floating*>malloc(<size_t>M * N * sizeof(floating))
    if T == NULL:
        return False
    # column-major views: A (M, K) row-major is A^T (K, M); B (K, N) is B^T (N, K)
    cdef char ta = b'n' if trans_a else b't'
    cdef char tb = b'n' if trans_b else b't'
    cdef int lda = _bi(M if trans_a else K)
    cdef int ldb = _bi(K if trans_b else N)
    cdef int ldt = _bi(M)
    cdef floating zero = 0
    cdef Py_ssize_t i, j
    cdef const floating* t
    if floating is float:
        sgemm(&ta, &tb, &M, &N, &K, &alpha, <float*>A, &lda, <float*>B, &ldb, &zero, T, &ldt)
    else:
        dgemm(&ta, &tb, &M, &N, &K, &alpha, <double*>A, &lda, <double*>B, &ldb, &zero, T, &ldt)
    # T[i + j M] is C[i, j]: read T in order, write the M rows of C side by side
    for j in range(N):
        t = T + j * M
        if beta == 0:
            for i in range(M):
                C[i * N + j] = t[i]
        elif beta == 1:
            for i in range(M):
                C[i * N + j] = C[i * N + j] + t[i]
        else:
            for i in range(M):
                C[i * N + j] = beta * C[i * N + j] + t[i]
    free(T)
    return True


# Matrices of at least this many bytes go through the gemv loops of _simd.h instead of
# OpenBLAS (measured 2026-12-03: 1500 x 512 float32, 6 MB of traffic per step over 3
# passes, ~0.78 -> ~0.52 ms per compiled large step at batch size 1; below ~1 MB, in
# cache, OpenBLAS's row-dot product is faster: 250 x 200 float32, 4.5 vs 9.3 us).
cdef enum:
    GEMV_OWN_BYTES = 1048576


cdef inline void gemv_rm(bint trans, int M, int N, floating alpha,
                  const floating* A,   # IN  (M, N)
                  const floating* x,   # IN  (N,), or (M,) if trans
                  floating beta,
                  floating* y,         # OUT (M,), or (N,) if trans
                  ) noexcept nogil:
    """Row-major y = alpha op(A) x + beta y."""
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
    if <Py_ssize_t>M * N * <Py_ssize_t>sizeof(floating) >= GEMV_OWN_BYTES:
        # a matrix beyond one core's cache: one pass over its rows on this thread
        # (_simd.h says why not OpenBLAS's gemv)
        if trans:
            if floating is float:
                fastbp_gemv_t_f(M, N, alpha, A, x, beta, y)
            else:
                fastbp_gemv_t_d(M, N, alpha, A, x, beta, y)
        else:
            if floating is float:
                fastbp_gemv_n_f(M, N, alpha, A, x, beta, y)
            else:
                fastbp_gemv_n_d(M, N, alpha, A, x, beta, y)
        return
    if floating is float:
        sgemv(&t, &N, &M, &alpha, <float*>A, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &N, &M, &alpha, <double*>A, &lda, <double*>x, &one, &beta, y, &one)


cdef inline void ger_rm(int M, int N, floating alpha,
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


cdef inline void axpy(Py_ssize_t n, floating alpha,
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
