/* Vectorised row loops of the reductions kernels (fastbp_ext/_reductions.pyx): max,
 * exp-sums, dot products and the fused softmax / log-softmax / logsumexp backward writes.
 *
 * Builds on _simd.h (its libmvec ``simd`` declarations of expf/exp and FASTBP_CLONES).
 * Reductions use ``#pragma omp simd reduction(...)`` so that GCC vectorises them without
 * -ffast-math (setup.py compiles with -fopenmp; elsewhere the pragma is ignored and the
 * loops are scalar, with the same results up to summation order). Sums are accumulated
 * in double. Everything is ``static`` (one copy per module that includes it).
 */
#ifndef FASTBP_SIMD_RED_H
#define FASTBP_SIMD_RED_H

#include <math.h>
#include "_simd.h"

/* max of x[0..n) (n >= 1), NaN if any element is NaN (as np.max) */
#define FASTBP_VMAX(NAME, T) \
FASTBP_CLONES static T NAME(const T *x, Py_ssize_t n) { \
    T m = -INFINITY; int nan = 0; \
    _Pragma("omp simd reduction(max:m) reduction(|:nan)") \
    for (Py_ssize_t i = 0; i < n; i++) { const T v = x[i]; m = v > m ? v : m; nan |= (v != v); } \
    return nan ? (T)NAN : m; }
FASTBP_VMAX(fastbp_vmax_f, float)
FASTBP_VMAX(fastbp_vmax_d, double)

/* y = exp(x - m); returns sum(y) in double (y may be x: in place) */
#define FASTBP_EXPSUM(NAME, T, EXP) \
FASTBP_CLONES static double NAME(const T *x, T *y, T m, Py_ssize_t n) { \
    double s = 0; \
    _Pragma("omp simd reduction(+:s)") \
    for (Py_ssize_t i = 0; i < n; i++) { const T e = EXP(x[i] - m); y[i] = e; s += e; } \
    return s; }
FASTBP_EXPSUM(fastbp_expsum_f, float, expf)
FASTBP_EXPSUM(fastbp_expsum_d, double, exp)

/* sum(exp(x - m)) in double, nothing stored */
#define FASTBP_EXPSUM_NS(NAME, T, EXP) \
FASTBP_CLONES static double NAME(const T *x, T m, Py_ssize_t n) { \
    double s = 0; \
    _Pragma("omp simd reduction(+:s)") \
    for (Py_ssize_t i = 0; i < n; i++) s += EXP(x[i] - m); \
    return s; }
FASTBP_EXPSUM_NS(fastbp_expsum_ns_f, float, expf)
FASTBP_EXPSUM_NS(fastbp_expsum_ns_d, double, exp)

/* sum(x * y) in double */
#define FASTBP_DOT(NAME, T) \
FASTBP_CLONES static double NAME(const T *x, const T *y, Py_ssize_t n) { \
    double s = 0; \
    _Pragma("omp simd reduction(+:s)") \
    for (Py_ssize_t i = 0; i < n; i++) s += (double)(x[i] * y[i]); \
    return s; }
FASTBP_DOT(fastbp_dot_f, float)
FASTBP_DOT(fastbp_dot_d, double)

/* The fused backward writes: out = r (acc == 0) or out + r (acc != 0), out never read
 * when acc == 0. */
#define FASTBP_WRITE2(NAME, T, R) \
FASTBP_CLONES static void NAME(const T *a, const T *b, T s, T *out, \
                               Py_ssize_t n, int acc) { \
    if (acc) { _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T u = a[i], v = b[i]; out[i] = out[i] + (R); } } \
    else { _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T u = a[i], v = b[i]; out[i] = (R); } } }
/* backprop_log_softmax: a = dY, b = Y, s = sum(dY): dY - exp(Y) * s */
FASTBP_WRITE2(fastbp_lsm_bwd_f, float, u - expf(v) * s)
FASTBP_WRITE2(fastbp_lsm_bwd_d, double, u - exp(v) * s)
/* backprop_softmax: a = dY, b = Y, s = sum(dY * Y): Y * (dY - s) */
FASTBP_WRITE2(fastbp_sm_bwd_f, float, v * (u - s))
FASTBP_WRITE2(fastbp_sm_bwd_d, double, v * (u - s))

/* backprop_logsumexp of one row: out = g * exp(x - y) (+ out) */
#define FASTBP_LSE_BWD(NAME, T, EXP) \
FASTBP_CLONES static void NAME(const T *x, T g, T y, T *out, Py_ssize_t n, int acc) { \
    if (acc) { _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = out[i] + g * EXP(x[i] - y); } \
    else { _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = g * EXP(x[i] - y); } }
FASTBP_LSE_BWD(fastbp_lse_bwd_f, float, expf)
FASTBP_LSE_BWD(fastbp_lse_bwd_d, double, exp)

/* Column loops (a row of ``n`` columns at a time, for the reductions over a middle axis):
 * m = max(m, x) per column, NaN sticky (as np.max) */
#define FASTBP_COLMAX(NAME, T) \
FASTBP_CLONES static void NAME(const T *restrict x, T *restrict m, Py_ssize_t n) { \
    for (Py_ssize_t j = 0; j < n; j++) { const T v = x[j], c = m[j]; \
        m[j] = ((v > c) | (v != v)) ? v : c; } }
FASTBP_COLMAX(fastbp_colmax_f, float)
FASTBP_COLMAX(fastbp_colmax_d, double)

/* backprop_reduce_max over a middle axis, one row: the columns not yet routed (found
 * == 0) whose x equals y (NaN matching NaN) get g; out = that (+ out when acc) */
#define FASTBP_COLFIRST(NAME, T) \
FASTBP_CLONES static void NAME(const T *restrict x, const T *restrict y, const T *restrict g, \
                               T *restrict found, T *restrict out, Py_ssize_t n, int acc) { \
    if (acc) { for (Py_ssize_t j = 0; j < n; j++) { const T v = x[j], w = y[j]; \
        const int h = (found[j] == 0) & ((v == w) | ((v != v) & (w != w))); \
        out[j] = out[j] + (h ? g[j] : (T)0); found[j] = h ? (T)1 : found[j]; } } \
    else { for (Py_ssize_t j = 0; j < n; j++) { const T v = x[j], w = y[j]; \
        const int h = (found[j] == 0) & ((v == w) | ((v != v) & (w != w))); \
        out[j] = h ? g[j] : (T)0; found[j] = h ? (T)1 : found[j]; } } }
FASTBP_COLFIRST(fastbp_colfirst_f, float)
FASTBP_COLFIRST(fastbp_colfirst_d, double)

#endif /* FASTBP_SIMD_RED_H */
