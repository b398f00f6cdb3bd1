# cython: language_level=3
"""Shared C types and the C-level (``nogil``) loops still defined in
:mod:`fastbp_ext._kernels` during the move to one module per kind.

The row-major BLAS shims now live in ``_blas.pxd``; the kernel-call ABI, fused types and
argument checks in ``_common.pxd``. All pointers are to C-contiguous row-major data;
nothing here validates its arguments.
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

# ---------------------------------------------------------------- fused loops
cdef void col_sums(Py_ssize_t n, Py_ssize_t m, const floating* X, floating beta,
                   floating* out) noexcept nogil
