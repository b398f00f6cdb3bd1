# cython: language_level=3
"""Declarations of the vectorised C loops of ``_simd.h`` (static: compiled into every
module that cimports this)."""

cdef extern from "_simd.h" nogil:
    int FASTBP_LIBMVEC
    void fastbp_sgd_f(float* W, const float* g, float lr, Py_ssize_t n)
    void fastbp_sgd_d(double* W, const double* g, double lr, Py_ssize_t n)
    void fastbp_outer_f(Py_ssize_t M, Py_ssize_t N, const float* x, const float* y, float* out)
    void fastbp_outer_d(Py_ssize_t M, Py_ssize_t N, const double* x, const double* y,
                        double* out)
    void fastbp_rank1_f(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t N, float alpha,
                        const float* x, const float* y, float* W)
    void fastbp_rank1_d(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t N, double alpha,
                        const double* x, const double* y, double* W)
    void fastbp_gemv_t_f(Py_ssize_t M, Py_ssize_t N, float alpha, const float* A,
                         const float* x, float beta, float* y)
    void fastbp_gemv_t_d(Py_ssize_t M, Py_ssize_t N, double alpha, const double* A,
                         const double* x, double beta, double* y)
    void fastbp_gemv_n_f(Py_ssize_t M, Py_ssize_t N, float alpha, const float* A,
                         const float* x, float beta, float* y)
    void fastbp_gemv_n_d(Py_ssize_t M, Py_ssize_t N, double alpha, const double* A,
                         const double* x, double beta, double* y)
    void fastbp_vexp_f(const float* x, float* y, Py_ssize_t n)
    void fastbp_vexp_d(const double* x, double* y, Py_ssize_t n)
    void fastbp_vtanh_f(const float* x, float* y, Py_ssize_t n)
    void fastbp_vtanh_d(const double* x, double* y, Py_ssize_t n)
    void fastbp_vsigmoid_f(const float* x, float* y, Py_ssize_t n)
    void fastbp_vsigmoid_d(const double* x, double* y, Py_ssize_t n)
