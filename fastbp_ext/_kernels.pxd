# cython: language_level=3
"""Shared C types and the C-level (``nogil``) API of :mod:`fastbp_ext._kernels`.

Other Cython modules can ``cimport fastbp_ext._kernels`` and call these row-major BLAS
wrappers and loops without touching Python. All pointers are to C-contiguous row-major
data; nothing here validates its arguments (the Python-callable kernels of the ``.pyx``
do that before they get here).
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

# ---------------------------------------------------------------- row-major BLAS
cdef void gemm_rm(bint trans_a, bint trans_b, int M, int N, int K, floating alpha,
                  const floating* A, const floating* B, floating beta,
                  floating* C) noexcept nogil
cdef void gemv_rm(bint trans, int M, int N, floating alpha, const floating* A,
                  const floating* x, floating beta, floating* y) noexcept nogil
cdef void ger_rm(int M, int N, floating alpha, const floating* x, const floating* y,
                 floating* A) noexcept nogil
cdef void axpy(Py_ssize_t n, floating alpha, const floating* x, floating* y) noexcept nogil

# ---------------------------------------------------------------- fused loops
cdef void fill_rows(Py_ssize_t n, Py_ssize_t m, const floating* b,
                    floating* out) noexcept nogil
cdef void col_sums(Py_ssize_t n, Py_ssize_t m, const floating* X, floating beta,
                   floating* out) noexcept nogil
cdef void adam_loop(Py_ssize_t n, floating* W, const floating* g, floating* m, floating* v,
                    floating b1, floating one_minus_b1, floating b2, floating one_minus_b2,
                    floating lr_t, floating eps_t) noexcept nogil
