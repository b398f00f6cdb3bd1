/* Vectorised elementwise loops shared by the kernel modules of fastbp_ext.
 *
 * glibc's scalar tanhf/tanh cost ~9 ns per element here, 40-80x slower than numpy's SIMD
 * tanh. Declaring the libm functions with GCC's ``simd`` attribute (what glibc's own
 * <bits/math-vector.h> does, but only under -ffast-math) lets GCC call the vector
 * variants of glibc's libmvec (``_ZGV?N?v_tanhf`` ...), which keep IEEE semantics (NaN
 * and Inf propagate; no -ffast-math). ``target_clones`` compiles each loop for SSE2,
 * AVX2 and AVX-512 and picks one at load time, so the build stays portable. Elsewhere
 * (clang, non-glibc, other CPUs) these are plain scalar loops. One macro generates the
 * float and double versions from one body.
 *
 * Everything here is ``static``: each extension module that includes the header (through
 * ``_simd.pxd``) gets its own copy, so no symbol crosses module boundaries.
 */
#ifndef FASTBP_SIMD_H
#define FASTBP_SIMD_H

#include <math.h>
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) \
    && defined(__GLIBC__) && !defined(__FAST_MATH__) \
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
#define FASTBP_VLOOP(NAME, T, EXPR) \
FASTBP_CLONES static void NAME(const T *x, T *y, Py_ssize_t n) { \
    _Pragma("GCC ivdep") \
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
/* rows [lo, hi) of W (M, N) += alpha x y^T, in place: the fused rank-1 weight update of a
   compiled step at batch size 1 (one pass over W; BLAS ger wakes its thread pool) */
#define FASTBP_RANK1(NAME, T) \
FASTBP_CLONES static void NAME(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t N, T alpha, \
                               const T *restrict x, const T *restrict y, T *restrict W) { \
    for (Py_ssize_t i = lo; i < hi; i++) { const T a = alpha * x[i]; \
        T *restrict w = W + i * N; \
        for (Py_ssize_t j = 0; j < N; j++) w[j] = w[j] + a * y[j]; } }
FASTBP_RANK1(fastbp_rank1_f, float)
FASTBP_RANK1(fastbp_rank1_d, double)
/* Matrix-vector products of a batch of one through a row-major A (M, N), each one pass
   over A's rows on the calling thread. OpenBLAS's gemv was measured slower in the
   compiled large step at batch size 1 (1500 x 512 float32, 2026-12-03): its column-major
   "n" product (y = A^T x) ran 230 us on 2 threads, and its 2-thread "t" product
   (y = A x) left half of A in the other core's cache, which made the rank-1 update that
   follows 1.6-2.5x slower (315-517 us). In the plan these loops take ~160-175 us each
   and leave the update at ~170-180 us: the step went from ~0.78 to ~0.52 ms. */
/* y (N) = alpha A^T x + beta y (y is not read when beta == 0) */
#define FASTBP_GEMV_T(NAME, T) \
FASTBP_CLONES static void NAME(Py_ssize_t M, Py_ssize_t N, T alpha, const T *restrict A, \
                               const T *restrict x, T beta, T *restrict y) { \
    if (beta == 0) { for (Py_ssize_t j = 0; j < N; j++) y[j] = 0; } \
    else if (beta != 1) { for (Py_ssize_t j = 0; j < N; j++) y[j] = beta * y[j]; } \
    for (Py_ssize_t i = 0; i < M; i++) { const T a = alpha * x[i]; \
        const T *restrict r = A + i * N; \
        for (Py_ssize_t j = 0; j < N; j++) y[j] = y[j] + a * r[j]; } }
FASTBP_GEMV_T(fastbp_gemv_t_f, float)
FASTBP_GEMV_T(fastbp_gemv_t_d, double)
/* y (M) = alpha A x + beta y (y is not read when beta == 0): one dot product per row,
   summed in vector lanes */
#define FASTBP_GEMV_N(NAME, T) \
FASTBP_CLONES static void NAME(Py_ssize_t M, Py_ssize_t N, T alpha, const T *restrict A, \
                               const T *restrict x, T beta, T *restrict y) { \
    for (Py_ssize_t i = 0; i < M; i++) { const T *restrict r = A + i * N; T s = 0; \
        _Pragma("omp simd reduction(+:s)") \
        for (Py_ssize_t j = 0; j < N; j++) s += r[j] * x[j]; \
        y[i] = beta == 0 ? alpha * s : alpha * s + beta * y[i]; } }
FASTBP_GEMV_N(fastbp_gemv_n_f, float)
FASTBP_GEMV_N(fastbp_gemv_n_d, double)
#endif /* FASTBP_SIMD_H */
