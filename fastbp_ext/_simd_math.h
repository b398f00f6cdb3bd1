/* Elementwise loops of fastbp_ext._elementwise: unary math (log, sqrt, powers), and the
 * inner (last-axis) loops of the broadcasting binary and ternary kernels.
 *
 * Same technique as _simd.h (whose header comment explains it): glibc's libmvec vector
 * variants are reached by declaring the libm functions with GCC's ``simd`` attribute
 * (log, pow), ``const`` drops the errno side effect that blocks vectorisation (sqrt is
 * then one instruction), and FASTBP_CLONES compiles each loop for SSE2, AVX2 and AVX-512.
 * IEEE semantics are kept (no -ffast-math): log(-1) is NaN, log(0) is -inf, NaN
 * propagates. Elsewhere these are plain scalar loops.
 *
 * Every loop takes a ``beta`` where it writes a gradient: beta == 0 writes
 * ``o = EXPR`` (o never read), otherwise ``o = o + EXPR`` (numpy's ``out += result``).
 * Strides are in elements; 0 is a broadcast operand. The common stride patterns
 * (contiguous operands, a broadcast scalar) get their own loops so that they vectorise;
 * any other pattern runs the strided loop. ``o`` is contiguous and may be one of the
 * inputs exactly (in place), hence ``ivdep`` rather than ``restrict``.
 *
 * Everything is ``static`` (one copy per extension module that includes it).
 */
#ifndef FASTBP_SIMD_MATH_H
#define FASTBP_SIMD_MATH_H

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) \
    && defined(__GLIBC__) && !defined(__FAST_MATH__) \
    && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
__attribute__((simd("notinbranch"), const)) extern float logf(float);
__attribute__((simd("notinbranch"), const)) extern double log(double);
__attribute__((simd("notinbranch"), const)) extern float powf(float, float);
__attribute__((simd("notinbranch"), const)) extern double pow(double, double);
__attribute__((const)) extern float sqrtf(float);
__attribute__((const)) extern double sqrt(double);
#define FASTBP_MCLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#define FASTBP_MATH_LIBMVEC 1
#else
#define FASTBP_MCLONES
#define FASTBP_MATH_LIBMVEC 0
#endif

/* ------------------------------------------------------------------ unary, contiguous */
/* y = EXPR(v) with v = x[i] and the constant p */
#define FASTBP_ULOOP(NAME, T, EXPR) \
FASTBP_MCLONES static void NAME(const T *x, T *y, Py_ssize_t n, T p) { \
    (void)p; \
    _Pragma("GCC ivdep") \
    for (Py_ssize_t i = 0; i < n; i++) { const T v = x[i]; y[i] = (EXPR); } }

FASTBP_ULOOP(fastbp_vlog_f, float, logf(v))
FASTBP_ULOOP(fastbp_vlog_d, double, log(v))
FASTBP_ULOOP(fastbp_vsqrt_f, float, sqrtf(v))
FASTBP_ULOOP(fastbp_vsqrt_d, double, sqrt(v))
FASTBP_ULOOP(fastbp_vsquare_f, float, v * v)
FASTBP_ULOOP(fastbp_vsquare_d, double, v * v)
FASTBP_ULOOP(fastbp_vcube_f, float, v * v * v)
FASTBP_ULOOP(fastbp_vcube_d, double, v * v * v)
FASTBP_ULOOP(fastbp_vrecip_f, float, 1.0f / v)
FASTBP_ULOOP(fastbp_vrecip_d, double, 1.0 / v)
FASTBP_ULOOP(fastbp_vpow_f, float, powf(v, p))
FASTBP_ULOOP(fastbp_vpow_d, double, pow(v, p))

/* ------------------------------------------------- gradients of powers, contiguous */
/* o = (g * p) * EXPR(v) (+ o), v = x[i]: the gradient dY * p * X**q of X**p, q = p - 1 */
#define FASTBP_PLOOP(NAME, T, EXPR) \
FASTBP_MCLONES static void NAME(Py_ssize_t n, const T *g, const T *x, T *o, T p, T q, \
                                T beta) { \
    (void)q; \
    if (beta == 0) { \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T v = x[i]; o[i] = g[i] * p * (EXPR); } \
    } else { \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T v = x[i]; \
            o[i] = o[i] + g[i] * p * (EXPR); } \
    } }

FASTBP_PLOOP(fastbp_ppow_f, float, powf(v, q))
FASTBP_PLOOP(fastbp_ppow_d, double, pow(v, q))
FASTBP_PLOOP(fastbp_plin_f, float, v)                      /* q == 1 */
FASTBP_PLOOP(fastbp_plin_d, double, v)
FASTBP_PLOOP(fastbp_psquare_f, float, v * v)               /* q == 2 */
FASTBP_PLOOP(fastbp_psquare_d, double, v * v)
FASTBP_PLOOP(fastbp_prsqrt_f, float, 1.0f / sqrtf(v))      /* q == -1/2 */
FASTBP_PLOOP(fastbp_prsqrt_d, double, 1.0 / sqrt(v))
FASTBP_PLOOP(fastbp_prsquare_f, float, 1.0f / (v * v))     /* q == -2 */
FASTBP_PLOOP(fastbp_prsquare_d, double, 1.0 / (v * v))

/* ------------------------------------------------------------ binary, one row */
/* o[i] = EXPR(a, b) (+ o[i]) with a = x[i*sx], b = y[i*sy] */
#define FASTBP_BSTORE(I, E) do { if (accumulate) o[I] = o[I] + (E); else o[I] = (E); } while (0)
#define FASTBP_BLOOPS(T, EXPR) \
    if (sx == 1 && sy == 1) { \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T a = x[i], b = y[i]; FASTBP_BSTORE(i, EXPR); } \
    } else if (sx == 1 && sy == 0) { \
        const T b = y[0]; \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T a = x[i]; FASTBP_BSTORE(i, EXPR); } \
    } else if (sx == 0 && sy == 1) { \
        const T a = x[0]; \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T b = y[i]; FASTBP_BSTORE(i, EXPR); } \
    } else { \
        for (Py_ssize_t i = 0; i < n; i++) { \
            const T a = x[i * sx], b = y[i * sy]; FASTBP_BSTORE(i, EXPR); } \
    }
#define FASTBP_BIN(NAME, T, EXPR) \
FASTBP_MCLONES static void NAME(Py_ssize_t n, const T *x, Py_ssize_t sx, const T *y, \
                                Py_ssize_t sy, T *o, T beta) { \
    if (beta == 0) { const int accumulate = 0; FASTBP_BLOOPS(T, EXPR) } \
    else { const int accumulate = 1; FASTBP_BLOOPS(T, EXPR) } }

FASTBP_BIN(fastbp_add_f, float, a + b)
FASTBP_BIN(fastbp_add_d, double, a + b)
FASTBP_BIN(fastbp_sub_f, float, a - b)
FASTBP_BIN(fastbp_sub_d, double, a - b)
FASTBP_BIN(fastbp_mul_f, float, a * b)
FASTBP_BIN(fastbp_mul_d, double, a * b)
FASTBP_BIN(fastbp_div_f, float, a / b)
FASTBP_BIN(fastbp_div_d, double, a / b)
/* np.maximum / np.minimum: a NaN on either side propagates */
FASTBP_BIN(fastbp_max_f, float, (a >= b || a != a) ? a : b)
FASTBP_BIN(fastbp_max_d, double, (a >= b || a != a) ? a : b)
FASTBP_BIN(fastbp_min_f, float, (a <= b || a != a) ? a : b)
FASTBP_BIN(fastbp_min_d, double, (a <= b || a != a) ? a : b)
/* dY * 0.5 / Y: the gradient of sqrt through its output */
FASTBP_BIN(fastbp_halfdiv_f, float, a * 0.5f / b)
FASTBP_BIN(fastbp_halfdiv_d, double, a * 0.5 / b)

/* ----------------------------------------------------------- ternary, one row */
/* o[i] = EXPR(g, a, b) (+ o[i]) with g = z[i*sz], a = x[i*sx], b = y[i*sy] */
#define FASTBP_TLOOPS(T, EXPR) \
    if (sz == 1 && sx == 1 && sy == 1) { \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { \
            const T g = z[i], a = x[i], b = y[i]; FASTBP_BSTORE(i, EXPR); } \
    } else if (sz == 1 && sx == 1 && sy == 0) { \
        const T b = y[0]; \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T g = z[i], a = x[i]; FASTBP_BSTORE(i, EXPR); } \
    } else if (sz == 1 && sx == 0 && sy == 1) { \
        const T a = x[0]; \
        _Pragma("GCC ivdep") \
        for (Py_ssize_t i = 0; i < n; i++) { const T g = z[i], b = y[i]; FASTBP_BSTORE(i, EXPR); } \
    } else { \
        for (Py_ssize_t i = 0; i < n; i++) { \
            const T g = z[i * sz], a = x[i * sx], b = y[i * sy]; FASTBP_BSTORE(i, EXPR); } \
    }
#define FASTBP_TER(NAME, T, EXPR) \
FASTBP_MCLONES static void NAME(Py_ssize_t n, const T *z, Py_ssize_t sz, const T *x, \
                                Py_ssize_t sx, const T *y, Py_ssize_t sy, T *o, T beta) { \
    if (beta == 0) { const int accumulate = 0; FASTBP_TLOOPS(T, EXPR) } \
    else { const int accumulate = 1; FASTBP_TLOOPS(T, EXPR) } }

/* gradient of X / Y with respect to Y: -dZ * X / (Y * Y) */
FASTBP_TER(fastbp_divy_f, float, (-g * a) / (b * b))
FASTBP_TER(fastbp_divy_d, double, (-g * a) / (b * b))
/* gradient of maximum(A, B) with respect to A: dZ * ([A > B] + 0.5 [A == B]) */
FASTBP_TER(fastbp_pickgt_f, float, g * (a > b ? 1.0f : (a == b ? 0.5f : 0.0f)))
FASTBP_TER(fastbp_pickgt_d, double, g * (a > b ? 1.0 : (a == b ? 0.5 : 0.0)))
/* gradient of minimum(A, B) with respect to A: dZ * ([A < B] + 0.5 [A == B]) */
FASTBP_TER(fastbp_picklt_f, float, g * (a < b ? 1.0f : (a == b ? 0.5f : 0.0f)))
FASTBP_TER(fastbp_picklt_d, double, g * (a < b ? 1.0 : (a == b ? 0.5 : 0.0)))

#endif /* FASTBP_SIMD_MATH_H */
