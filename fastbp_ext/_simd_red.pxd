# cython: language_level=3
"""Declarations of the vectorised row loops of ``_simd_red.h`` (static: compiled into every
module that cimports this; used by ``_reductions.pyx``)."""

cdef extern from "_simd_red.h" nogil:
    float fastbp_vmax_f(const float* x, Py_ssize_t n)
    double fastbp_vmax_d(const double* x, Py_ssize_t n)
    double fastbp_expsum_f(const float* x, float* y, float m, Py_ssize_t n)
    double fastbp_expsum_d(const double* x, double* y, double m, Py_ssize_t n)
    double fastbp_expsum_ns_f(const float* x, float m, Py_ssize_t n)
    double fastbp_expsum_ns_d(const double* x, double m, Py_ssize_t n)
    double fastbp_dot_f(const float* x, const float* y, Py_ssize_t n)
    double fastbp_dot_d(const double* x, const double* y, Py_ssize_t n)
    void fastbp_lsm_bwd_f(const float* dy, const float* y, float s, float* out, Py_ssize_t n,
                          int acc)
    void fastbp_lsm_bwd_d(const double* dy, const double* y, double s, double* out,
                          Py_ssize_t n, int acc)
    void fastbp_sm_bwd_f(const float* dy, const float* y, float s, float* out, Py_ssize_t n,
                         int acc)
    void fastbp_sm_bwd_d(const double* dy, const double* y, double s, double* out,
                         Py_ssize_t n, int acc)
    void fastbp_lse_bwd_f(const float* x, float g, float y, float* out, Py_ssize_t n, int acc)
    void fastbp_lse_bwd_d(const double* x, double g, double y, double* out, Py_ssize_t n,
                          int acc)
    void fastbp_colmax_f(const float* x, float* m, Py_ssize_t n)
    void fastbp_colmax_d(const double* x, double* m, Py_ssize_t n)
    void fastbp_colfirst_f(const float* x, const float* y, const float* g, float* found,
                           float* out, Py_ssize_t n, int acc)
    void fastbp_colfirst_d(const double* x, const double* y, const double* g, double* found,
                           double* out, Py_ssize_t n, int acc)
