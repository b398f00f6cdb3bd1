# cython: language_level=3
"""Declarations of the elementwise C loops of ``_simd_math.h`` (static: compiled into
every module that cimports this). Strides are in elements; ``beta`` is 0 (write) or 1
(accumulate)."""

cdef extern from "_simd_math.h" nogil:
    int FASTBP_MATH_LIBMVEC
    # unary, contiguous: y = f(x) (p: the exponent of vpow, unused elsewhere)
    void fastbp_vlog_f(const float* x, float* y, Py_ssize_t n, float p)
    void fastbp_vlog_d(const double* x, double* y, Py_ssize_t n, double p)
    void fastbp_vsqrt_f(const float* x, float* y, Py_ssize_t n, float p)
    void fastbp_vsqrt_d(const double* x, double* y, Py_ssize_t n, double p)
    void fastbp_vsquare_f(const float* x, float* y, Py_ssize_t n, float p)
    void fastbp_vsquare_d(const double* x, double* y, Py_ssize_t n, double p)
    void fastbp_vcube_f(const float* x, float* y, Py_ssize_t n, float p)
    void fastbp_vcube_d(const double* x, double* y, Py_ssize_t n, double p)
    void fastbp_vrecip_f(const float* x, float* y, Py_ssize_t n, float p)
    void fastbp_vrecip_d(const double* x, double* y, Py_ssize_t n, double p)
    void fastbp_vpow_f(const float* x, float* y, Py_ssize_t n, float p)
    void fastbp_vpow_d(const double* x, double* y, Py_ssize_t n, double p)
    # o = (g * p) * h(x) (+ o): gradients of x**p (q = p - 1)
    void fastbp_ppow_f(Py_ssize_t n, const float* g, const float* x, float* o, float p,
                       float q, float beta)
    void fastbp_ppow_d(Py_ssize_t n, const double* g, const double* x, double* o, double p,
                       double q, double beta)
    void fastbp_plin_f(Py_ssize_t n, const float* g, const float* x, float* o, float p,
                       float q, float beta)
    void fastbp_plin_d(Py_ssize_t n, const double* g, const double* x, double* o, double p,
                       double q, double beta)
    void fastbp_psquare_f(Py_ssize_t n, const float* g, const float* x, float* o, float p,
                          float q, float beta)
    void fastbp_psquare_d(Py_ssize_t n, const double* g, const double* x, double* o,
                          double p, double q, double beta)
    void fastbp_prsqrt_f(Py_ssize_t n, const float* g, const float* x, float* o, float p,
                         float q, float beta)
    void fastbp_prsqrt_d(Py_ssize_t n, const double* g, const double* x, double* o,
                         double p, double q, double beta)
    void fastbp_prsquare_f(Py_ssize_t n, const float* g, const float* x, float* o, float p,
                           float q, float beta)
    void fastbp_prsquare_d(Py_ssize_t n, const double* g, const double* x, double* o,
                           double p, double q, double beta)
    # binary rows: o[i] = f(x[i*sx], y[i*sy]) (+ o[i])
    void fastbp_add_f(Py_ssize_t n, const float* x, Py_ssize_t sx, const float* y,
                      Py_ssize_t sy, float* o, float beta)
    void fastbp_add_d(Py_ssize_t n, const double* x, Py_ssize_t sx, const double* y,
                      Py_ssize_t sy, double* o, double beta)
    void fastbp_sub_f(Py_ssize_t n, const float* x, Py_ssize_t sx, const float* y,
                      Py_ssize_t sy, float* o, float beta)
    void fastbp_sub_d(Py_ssize_t n, const double* x, Py_ssize_t sx, const double* y,
                      Py_ssize_t sy, double* o, double beta)
    void fastbp_mul_f(Py_ssize_t n, const float* x, Py_ssize_t sx, const float* y,
                      Py_ssize_t sy, float* o, float beta)
    void fastbp_mul_d(Py_ssize_t n, const double* x, Py_ssize_t sx, const double* y,
                      Py_ssize_t sy, double* o, double beta)
    void fastbp_div_f(Py_ssize_t n, const float* x, Py_ssize_t sx, const float* y,
                      Py_ssize_t sy, float* o, float beta)
    void fastbp_div_d(Py_ssize_t n, const double* x, Py_ssize_t sx, const double* y,
                      Py_ssize_t sy, double* o, double beta)
    void fastbp_max_f(Py_ssize_t n, const float* x, Py_ssize_t sx, const float* y,
                      Py_ssize_t sy, float* o, float beta)
    void fastbp_max_d(Py_ssize_t n, const double* x, Py_ssize_t sx, const double* y,
                      Py_ssize_t sy, double* o, double beta)
    void fastbp_min_f(Py_ssize_t n, const float* x, Py_ssize_t sx, const float* y,
                      Py_ssize_t sy, float* o, float beta)
    void fastbp_min_d(Py_ssize_t n, const double* x, Py_ssize_t sx, const double* y,
                      Py_ssize_t sy, double* o, double beta)
    void fastbp_halfdiv_f(Py_ssize_t n, const float* x, Py_ssize_t sx, const float* y,
                          Py_ssize_t sy, float* o, float beta)
    void fastbp_halfdiv_d(Py_ssize_t n, const double* x, Py_ssize_t sx, const double* y,
                          Py_ssize_t sy, double* o, double beta)
    # ternary rows: o[i] = f(z[i*sz], x[i*sx], y[i*sy]) (+ o[i])
    void fastbp_divy_f(Py_ssize_t n, const float* z, Py_ssize_t sz, const float* x,
                       Py_ssize_t sx, const float* y, Py_ssize_t sy, float* o, float beta)
    void fastbp_divy_d(Py_ssize_t n, const double* z, Py_ssize_t sz, const double* x,
                       Py_ssize_t sx, const double* y, Py_ssize_t sy, double* o, double beta)
    void fastbp_pickgt_f(Py_ssize_t n, const float* z, Py_ssize_t sz, const float* x,
                         Py_ssize_t sx, const float* y, Py_ssize_t sy, float* o, float beta)
    void fastbp_pickgt_d(Py_ssize_t n, const double* z, Py_ssize_t sz, const double* x,
                         Py_ssize_t sx, const double* y, Py_ssize_t sy, double* o,
                         double beta)
    void fastbp_picklt_f(Py_ssize_t n, const float* z, Py_ssize_t sz, const float* x,
                         Py_ssize_t sx, const float* y, Py_ssize_t sy, float* o, float beta)
    void fastbp_picklt_d(Py_ssize_t n, const double* z, Py_ssize_t sz, const double* x,
                         Py_ssize_t sx, const double* y, Py_ssize_t sy, double* o,
                         double beta)
