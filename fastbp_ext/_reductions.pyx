# cython: language_level=3, cdivision=True
"""Kernels of fastbp: sums, max, logsumexp, softmax, log_softmax, broadcasting adjoints.

Layout of every single-axis kernel: a C-order ``X`` is viewed as ``(outer, n, inner)``
with ``n`` the length of the reduced axis (``axis=None``: ``(1, X.size, 1)``). With
``inner == 1`` (the last axis) each row is a contiguous run: the row loops are the
vectorised ones of ``_simd_red.h`` (libmvec ``exp``), and rows are split over threads
above the thread policy's thresholds. With ``inner > 1`` the loops run over ``inner``
in the innermost position, with a per-call scratch of ``inner`` values.

Sums (``reduce_sum``, ``unbroadcast``, ``backprop_bias``) share one kernel, ``k_sum``:
the wrapper drops size-1 axes and merges neighbouring axes that are all reduced / all
kept into alternating groups (at most 64). Full sums use eight double partial sums;
row sums (reduced last group) likewise per row; column sums (``(n, m) -> (m,)``, kept
last group) add rows in the array's dtype as numpy does; any other pattern accumulates
in a double scratch. ``expand`` (the adjoint) is the same walk writing instead of
reading.

Special values: a row whose maximum is NaN gives NaN, rows whose maximum is +-inf give
that inf in ``logsumexp`` and NaN rows in ``softmax`` / ``log_softmax`` (as
scipy.special does); nothing here raises floating-point warnings.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport log, INFINITY, NAN
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset

from fastbp_ext._common cimport (
    floating, Call, Kernel, launch, launch_side, call_dtype, KERR_NOMEM,
    ftype, same_type, contig, out_like, same_or_apart, overlap, check_beta, dim,
    same_shape, shape_of, threads_for, PAR_TRANSC, PAR_ARITH, put,
)
from fastbp_ext._simd cimport fastbp_vexp_f, fastbp_vexp_d
from fastbp_ext._simd_red cimport (
    fastbp_vmax_f, fastbp_vmax_d, fastbp_expsum_f, fastbp_expsum_d, fastbp_expsum_ns_f,
    fastbp_expsum_ns_d, fastbp_dot_f, fastbp_dot_d, fastbp_lsm_bwd_f, fastbp_lsm_bwd_d,
    fastbp_sm_bwd_f, fastbp_sm_bwd_d, fastbp_lse_bwd_f, fastbp_lse_bwd_d, fastbp_colmax_f,
    fastbp_colmax_d, fastbp_colfirst_f, fastbp_colfirst_d,
)

import operator

import numpy as np

cnp.import_array()

__all__ = [
    "reduce_sum", "unbroadcast", "backprop_bias", "expand",
    "reduce_max", "backprop_reduce_max", "logsumexp", "backprop_logsumexp",
    "softmax", "backprop_softmax", "log_softmax", "backprop_log_softmax",
]

cdef enum:
    MAXD = 64          # numpy's NPY_MAXDIMS


# ==================================================================================
# Row loops (C level)
# ==================================================================================
cdef inline bint _finite(floating x) noexcept nogil:
    return x - x == 0          # false for +-inf and NaN


cdef inline floating _vmax(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fastbp_vmax_f(x, n)
    else:
        return fastbp_vmax_d(x, n)


cdef inline double _expsum(const floating* x, floating* y, floating m,
                           Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fastbp_expsum_f(x, y, m, n)
    else:
        return fastbp_expsum_d(x, y, m, n)


cdef inline double _expsum_ns(const floating* x, floating m, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fastbp_expsum_ns_f(x, m, n)
    else:
        return fastbp_expsum_ns_d(x, m, n)


cdef inline double _dot(const floating* x, const floating* y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fastbp_dot_f(x, y, n)
    else:
        return fastbp_dot_d(x, y, n)


cdef inline void _vexp(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fastbp_vexp_f(x, y, n)
    else:
        fastbp_vexp_d(x, y, n)


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
        out[j] = put(X[j], out[j], beta)
    for i in range(1, n):
        for j in range(m):
            out[j] = out[j] + X[i * m + j]


cdef void row_sums(Py_ssize_t n, Py_ssize_t m,
                   const floating* X,      # IN  (n, m)
                   floating beta,
                   floating* out,          # OUT (n,) = X.sum(1) + beta out
                   ) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = put(<floating>sum_all(m, X + i * m), out[i], beta)


cdef void copy_put(Py_ssize_t n, const floating* x, floating beta,
                   floating* out) noexcept nogil:
    cdef Py_ssize_t i
    if beta == 0:
        if out != x:
            memcpy(out, x, n * sizeof(floating))
    else:
        for i in range(n):
            out[i] = x[i] + beta * out[i]


cdef void fill_put(Py_ssize_t n, floating v, floating beta, floating* out) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = put(v, out[i], beta)


cdef void col_max(Py_ssize_t n, Py_ssize_t inner,
                  const floating* x,       # IN  (n, inner)
                  floating* m,             # OUT (inner,) column maxima, NaN propagates
                  ) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating ninf = -INFINITY
    for j in range(inner):
        m[j] = ninf
    for i in range(n):
        if floating is float:
            fastbp_colmax_f(x + i * inner, m, inner)
        else:
            fastbp_colmax_d(x + i * inner, m, inner)


# ---------------------------------------------------------------- group walks
cdef void _group_strides(int k, const Py_ssize_t* g, bint last_flag,
                         Py_ssize_t* st) noexcept nogil:
    """Strides (in elements) of the groups in the array of the unflagged groups (kept by
    a sum / copied by an expand); 0 for the flagged groups. Flags alternate, the last
    group has ``last_flag``."""
    cdef Py_ssize_t s = 1
    cdef int q
    cdef bint flag
    for q in range(k - 1, -1, -1):
        flag = last_flag if (k - 1 - q) % 2 == 0 else not last_flag
        if flag:
            st[q] = 0
        else:
            st[q] = s
            s *= g[q]


cdef inline void _odo_next(int k1, Py_ssize_t* idx, const Py_ssize_t* g, const Py_ssize_t* st,
                           Py_ssize_t* base) noexcept nogil:
    """Advance the index of the leading ``k1`` groups by one (C order), keeping
    ``base = sum(idx * st)``."""
    cdef int q = k1 - 1
    idx[q] += 1
    base[0] += st[q]
    while q > 0 and idx[q] == g[q]:
        base[0] -= g[q] * st[q]
        idx[q] = 0
        q -= 1
        idx[q] += 1
        base[0] += st[q]


# ==================================================================================
# Kernels (C level)
# ==================================================================================
cdef int k_sum(floating* out, Call* c) noexcept nogil:
    """out = sum of a[0] over the flagged groups + beta out.
    a[1]: group sizes (n[0] groups, alternating flags, the last one flagged iff n[1]);
    n[2]: size of a[0]; n[3]: size of out; s[0]: beta."""
    cdef const floating* X = <const floating*>c.a[0]
    cdef const Py_ssize_t* g = <const Py_ssize_t*>c.a[1]
    cdef int k = <int>c.n[0]
    cdef bint last_red = c.n[1] != 0
    cdef Py_ssize_t nx = c.n[2], no = c.n[3]
    cdef floating beta = <floating>c.s[0]
    cdef Py_ssize_t o, r, j, rows, L, base
    cdef Py_ssize_t idx[MAXD]
    cdef Py_ssize_t st[MAXD]
    cdef double* acc
    cdef const floating* xr
    if no == 0:
        return 0
    if nx == 0:                                   # a sum of nothing
        fill_put(no, <floating>0, beta, out)
        return 0
    if k == 0:                                    # every axis of size 1
        out[0] = put(X[0], out[0], beta)
        return 0
    if k == 1:
        if last_red:
            out[0] = put(<floating>sum_all(nx, X), out[0], beta)
        else:
            copy_put(nx, X, beta, out)
        return 0
    if k == 2:
        if last_red:
            row_sums(g[0], g[1], X, beta, out)
        else:
            col_sums(g[0], g[1], X, beta, out)
        return 0
    if k == 3 and not last_red:                   # one middle axis: (outer, n, inner)
        for o in range(g[0]):
            col_sums(g[1], g[2], X + o * g[1] * g[2], beta, out + o * g[2])
        return 0
    # any other pattern: walk the rows of X, accumulating in double
    acc = <double*>calloc(no, sizeof(double))
    if acc == NULL:
        return KERR_NOMEM
    _group_strides(k, g, last_red, st)           # strides in out of the kept groups
    L = g[k - 1]
    rows = nx // L
    for j in range(k):
        idx[j] = 0
    base = 0
    for r in range(rows):
        xr = X + r * L
        if last_red:
            acc[base] += sum_all(L, xr)
        else:
            for j in range(L):
                acc[base + j] += xr[j]
        if r + 1 < rows:
            _odo_next(k - 1, idx, g, st, &base)
    for j in range(no):
        out[j] = put(<floating>acc[j], out[j], beta)
    free(acc)
    return 0


cdef Kernel K_SUM = Kernel(b"reduce_sum", k_sum[float], k_sum[double])


cdef int k_expand(floating* out, Call* c) noexcept nogil:
    """out = broadcast of a[0] + beta out. a[1]: group sizes of out (n[0] groups,
    alternating, the last one broadcast iff n[1]); n[2]: size of out; s[0]: beta."""
    cdef const floating* dY = <const floating*>c.a[0]
    cdef const Py_ssize_t* g = <const Py_ssize_t*>c.a[1]
    cdef int k = <int>c.n[0]
    cdef bint last_b = c.n[1] != 0
    cdef Py_ssize_t no = c.n[2]
    cdef floating beta = <floating>c.s[0]
    cdef Py_ssize_t r, j, rows, L, base
    cdef Py_ssize_t idx[MAXD]
    cdef Py_ssize_t st[MAXD]
    cdef floating* orow
    cdef floating v
    if no == 0:
        return 0
    if k == 0:
        out[0] = put(dY[0], out[0], beta)
        return 0
    _group_strides(k, g, last_b, st)             # strides in dY of the copied groups
    L = g[k - 1]
    rows = no // L
    for j in range(k):
        idx[j] = 0
    base = 0
    for r in range(rows):
        orow = out + r * L
        if last_b:
            fill_put(L, dY[base], beta, orow)
        else:
            copy_put(L, dY + base, beta, orow)
        if r + 1 < rows:
            _odo_next(k - 1, idx, g, st, &base)
    return 0


cdef Kernel K_EXPAND = Kernel(b"expand", k_expand[float], k_expand[double])


# ---------------------------------------------------------------- max
cdef int k_max(floating* out, Call* c) noexcept nogil:
    """out (outer, inner) = max of a[0] (outer, n, inner) over n; n[0..2] = outer, n, inner."""
    cdef const floating* X = <const floating*>c.a[0]
    cdef Py_ssize_t outer = c.n[0], n = c.n[1], inner = c.n[2], o
    cdef int nt
    if inner == 1:
        nt = threads_for(outer * n * sizeof(floating), PAR_ARITH)
        if nt > 1 and outer > 1:
            for o in prange(outer, num_threads=nt, schedule='static'):
                out[o] = _vmax(X + o * n, n)
        else:
            for o in range(outer):
                out[o] = _vmax(X + o * n, n)
        return 0
    for o in range(outer):
        col_max(n, inner, X + o * n * inner, out + o * inner)
    return 0


cdef Kernel K_MAX = Kernel(b"reduce_max", k_max[float], k_max[double])


cdef inline bint _is(floating x, floating y) noexcept nogil:
    """x == y, NaN matching NaN (np.argmax picks the first NaN)."""
    return x == y or (x != x and y != y)


cdef void _max_bwd_row(const floating* x, floating g, floating y, floating* out, Py_ssize_t n,
                       floating beta) noexcept nogil:
    cdef Py_ssize_t i, p = -1
    for i in range(n):
        if _is(x[i], y):
            p = i
            break
    if beta == 0:
        memset(out, 0, n * sizeof(floating))
    if p >= 0:
        out[p] = out[p] + g


cdef int k_max_bwd(floating* out, Call* c) noexcept nogil:
    """out (outer, n, inner) = a[0] (dY, (outer, inner)) routed to the first position
    where a[1] (X) equals a[2] (Y), + s[0] out."""
    cdef const floating* dY = <const floating*>c.a[0]
    cdef const floating* X = <const floating*>c.a[1]
    cdef const floating* Y = <const floating*>c.a[2]
    cdef Py_ssize_t outer = c.n[0], n = c.n[1], inner = c.n[2], o, i, j, off
    cdef floating beta = <floating>c.s[0]
    cdef int acc = beta != 0
    cdef floating* found
    if n == 0 or outer == 0 or inner == 0:
        return 0
    if inner == 1:
        for o in range(outer):
            _max_bwd_row(X + o * n, dY[o], Y[o], out + o * n, n, beta)
        return 0
    # branch-free column walk: found[j] marks the columns already routed
    found = <floating*>malloc(inner * sizeof(floating))
    if found == NULL:
        return KERR_NOMEM
    for o in range(outer):
        for j in range(inner):
            found[j] = 0
        for i in range(n):
            off = (o * n + i) * inner
            if floating is float:
                fastbp_colfirst_f(X + off, Y + o * inner, dY + o * inner, found, out + off,
                                  inner, acc)
            else:
                fastbp_colfirst_d(X + off, Y + o * inner, dY + o * inner, found, out + off,
                                  inner, acc)
    free(found)
    return 0


cdef Kernel K_MAX_BWD = Kernel(b"backprop_reduce_max", k_max_bwd[float], k_max_bwd[double])


# ---------------------------------------------------------------- logsumexp
cdef inline floating _lse_row(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef floating m = _vmax(x, n)             # -inf for n == 0
    if not _finite(m):
        return m
    return <floating>(m + log(_expsum_ns(x, m, n)))


cdef int k_lse(floating* out, Call* c) noexcept nogil:
    """out (outer, inner) = logsumexp of a[0] (outer, n, inner) over n."""
    cdef const floating* X = <const floating*>c.a[0]
    cdef Py_ssize_t outer = c.n[0], n = c.n[1], inner = c.n[2], o, i, j
    cdef int nt
    cdef const floating* x
    cdef floating* m
    cdef floating* tmp
    cdef double* s
    if inner == 1:
        nt = threads_for(outer * n * sizeof(floating), PAR_TRANSC)
        if nt > 1 and outer > 1:
            for o in prange(outer, num_threads=nt, schedule='static'):
                out[o] = _lse_row(X + o * n, n)
        else:
            for o in range(outer):
                out[o] = _lse_row(X + o * n, n)
        return 0
    s = <double*>malloc(inner * sizeof(double))
    tmp = <floating*>malloc(inner * sizeof(floating))
    if s == NULL or tmp == NULL:
        free(s)
        free(tmp)
        return KERR_NOMEM
    for o in range(outer):
        x = X + o * n * inner
        m = out + o * inner
        col_max(n, inner, x, m)
        for j in range(inner):
            s[j] = 0
        for i in range(n):
            for j in range(inner):
                tmp[j] = x[i * inner + j] - m[j]
            _vexp(tmp, tmp, inner)
            for j in range(inner):
                s[j] += tmp[j]
        for j in range(inner):
            if _finite(m[j]):
                m[j] = <floating>(m[j] + log(s[j]))
    free(s)
    free(tmp)
    return 0


cdef Kernel K_LSE = Kernel(b"logsumexp", k_lse[float], k_lse[double])


cdef int k_lse_bwd(floating* out, Call* c) noexcept nogil:
    """out (outer, n, inner) = a[0] (dY) * exp(a[1] (X) - a[2] (Y)) + s[0] out."""
    cdef const floating* dY = <const floating*>c.a[0]
    cdef const floating* X = <const floating*>c.a[1]
    cdef const floating* Y = <const floating*>c.a[2]
    cdef Py_ssize_t outer = c.n[0], n = c.n[1], inner = c.n[2], o, i, j
    cdef floating beta = <floating>c.s[0]
    cdef int acc = beta != 0
    cdef int nt
    cdef floating* tmp
    cdef const floating* xr
    cdef floating* orow
    if inner == 1:
        nt = threads_for(outer * n * sizeof(floating), PAR_TRANSC)
        if nt > 1 and outer > 1:
            for o in prange(outer, num_threads=nt, schedule='static'):
                _lse_bwd(X + o * n, dY[o], Y[o], out + o * n, n, acc)
        else:
            for o in range(outer):
                _lse_bwd(X + o * n, dY[o], Y[o], out + o * n, n, acc)
        return 0
    tmp = <floating*>malloc(inner * sizeof(floating))
    if tmp == NULL:
        return KERR_NOMEM
    for o in range(outer):
        for i in range(n):
            xr = X + (o * n + i) * inner
            orow = out + (o * n + i) * inner
            for j in range(inner):
                tmp[j] = xr[j] - Y[o * inner + j]
            _vexp(tmp, tmp, inner)
            for j in range(inner):
                orow[j] = put(dY[o * inner + j] * tmp[j], orow[j], beta)
    free(tmp)
    return 0


cdef inline void _lse_bwd(const floating* x, floating g, floating y, floating* out,
                          Py_ssize_t n, int acc) noexcept nogil:
    if floating is float:
        fastbp_lse_bwd_f(x, g, y, out, n, acc)
    else:
        fastbp_lse_bwd_d(x, g, y, out, n, acc)


cdef Kernel K_LSE_BWD = Kernel(b"backprop_logsumexp", k_lse_bwd[float], k_lse_bwd[double])


# ---------------------------------------------------------------- softmax
cdef void _softmax_row(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    cdef floating m = _vmax(x, n)
    cdef floating inv, nan = NAN
    cdef Py_ssize_t j
    if not _finite(m):
        for j in range(n):
            y[j] = nan
        return
    inv = <floating>(1.0 / _expsum(x, y, m, n))
    for j in range(n):
        y[j] = y[j] * inv


cdef void _log_softmax_row(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    cdef floating m = _vmax(x, n)
    cdef floating ls, nan = NAN
    cdef Py_ssize_t j
    if not _finite(m):
        for j in range(n):
            y[j] = nan
        return
    ls = <floating>log(_expsum_ns(x, m, n))
    for j in range(n):
        y[j] = (x[j] - m) - ls


cdef int _softmax_cols(bint logs, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner,
                       const floating* X, floating* out) noexcept nogil:
    """softmax (logs: log_softmax) over the middle axis of (outer, n, inner), inner > 1."""
    cdef Py_ssize_t o, i, j
    cdef const floating* x
    cdef floating* y
    cdef floating* m = <floating*>malloc(inner * sizeof(floating))
    cdef floating* tmp = <floating*>malloc(inner * sizeof(floating))
    cdef double* s = <double*>malloc(inner * sizeof(double))
    if m == NULL or tmp == NULL or s == NULL:
        free(m)
        free(tmp)
        free(s)
        return KERR_NOMEM
    for o in range(outer):
        x = X + o * n * inner
        y = out + o * n * inner
        col_max(n, inner, x, m)
        for j in range(inner):
            s[j] = 0
        for i in range(n):
            # softmax keeps exp(x - m) in out; log_softmax only needs the sums
            for j in range(inner):
                tmp[j] = x[i * inner + j] - m[j]
            if logs:
                _vexp(tmp, tmp, inner)
                for j in range(inner):
                    s[j] += tmp[j]
            else:
                _vexp(tmp, y + i * inner, inner)
                for j in range(inner):
                    s[j] += y[i * inner + j]
        for j in range(inner):   # s := the per-column constant of the write pass
            if not _finite(m[j]):
                s[j] = NAN
            elif logs:
                s[j] = log(s[j])
            else:
                s[j] = 1.0 / s[j]
        for j in range(inner):
            tmp[j] = <floating>s[j]
        for i in range(n):
            if logs:
                for j in range(inner):
                    y[i * inner + j] = (x[i * inner + j] - m[j]) - tmp[j]
            else:
                for j in range(inner):
                    y[i * inner + j] = y[i * inner + j] * tmp[j]
    free(m)
    free(tmp)
    free(s)
    return 0


cdef int k_softmax(floating* out, Call* c) noexcept nogil:
    """out = softmax of a[0] (outer, n, inner) over n."""
    cdef const floating* X = <const floating*>c.a[0]
    cdef Py_ssize_t outer = c.n[0], n = c.n[1], inner = c.n[2], o
    cdef int nt
    if inner == 1:
        nt = threads_for(outer * n * sizeof(floating), PAR_TRANSC)
        if nt > 1 and outer > 1:
            for o in prange(outer, num_threads=nt, schedule='static'):
                _softmax_row(X + o * n, out + o * n, n)
        else:
            for o in range(outer):
                _softmax_row(X + o * n, out + o * n, n)
        return 0
    return _softmax_cols(False, outer, n, inner, X, out)


cdef Kernel K_SOFTMAX = Kernel(b"softmax", k_softmax[float], k_softmax[double])


cdef int k_log_softmax(floating* out, Call* c) noexcept nogil:
    """out = log_softmax of a[0] (outer, n, inner) over n."""
    cdef const floating* X = <const floating*>c.a[0]
    cdef Py_ssize_t outer = c.n[0], n = c.n[1], inner = c.n[2], o
    cdef int nt
    if inner == 1:
        nt = threads_for(outer * n * sizeof(floating), PAR_TRANSC)
        if nt > 1 and outer > 1:
            for o in prange(outer, num_threads=nt, schedule='static'):
                _log_softmax_row(X + o * n, out + o * n, n)
        else:
            for o in range(outer):
                _log_softmax_row(X + o * n, out + o * n, n)
        return 0
    return _softmax_cols(True, outer, n, inner, X, out)


cdef Kernel K_LOG_SOFTMAX = Kernel(b"log_softmax", k_log_softmax[float], k_log_softmax[double])


cdef inline void _sm_bwd(const floating* dy, const floating* y, floating s, floating* out,
                         Py_ssize_t n, int acc) noexcept nogil:
    if floating is float:
        fastbp_sm_bwd_f(dy, y, s, out, n, acc)
    else:
        fastbp_sm_bwd_d(dy, y, s, out, n, acc)


cdef inline void _lsm_bwd(const floating* dy, const floating* y, floating s, floating* out,
                          Py_ssize_t n, int acc) noexcept nogil:
    if floating is float:
        fastbp_lsm_bwd_f(dy, y, s, out, n, acc)
    else:
        fastbp_lsm_bwd_d(dy, y, s, out, n, acc)


cdef void _softmax_bwd_row(bint logs, const floating* dy, const floating* y, floating* out,
                           Py_ssize_t n, int acc) noexcept nogil:
    if logs:
        _lsm_bwd(dy, y, <floating>sum_all(n, dy), out, n, acc)
    else:
        _sm_bwd(dy, y, <floating>_dot(dy, y, n), out, n, acc)


cdef int _softmax_bwd(bint logs, floating* out, Call* c) noexcept nogil:
    """softmax:     out = Y * (dY - sum(dY * Y)) + beta out;
    log_softmax: out = dY - exp(Y) * sum(dY) + beta out (sums over n).
    a[0] = dY, a[1] = Y, both (outer, n, inner); s[0] = beta."""
    cdef const floating* dY = <const floating*>c.a[0]
    cdef const floating* Y = <const floating*>c.a[1]
    cdef Py_ssize_t outer = c.n[0], n = c.n[1], inner = c.n[2], o, i, j, off
    cdef floating beta = <floating>c.s[0]
    cdef int acc = beta != 0
    cdef int nt
    cdef double* s
    cdef floating* tmp
    if inner == 1:
        nt = threads_for(outer * n * sizeof(floating), PAR_TRANSC if logs else PAR_ARITH)
        if nt > 1 and outer > 1:
            for o in prange(outer, num_threads=nt, schedule='static'):
                _softmax_bwd_row(logs, dY + o * n, Y + o * n, out + o * n, n, acc)
        else:
            for o in range(outer):
                _softmax_bwd_row(logs, dY + o * n, Y + o * n, out + o * n, n, acc)
        return 0
    s = <double*>malloc(inner * sizeof(double))
    tmp = <floating*>malloc(inner * sizeof(floating))
    if s == NULL or tmp == NULL:
        free(s)
        free(tmp)
        return KERR_NOMEM
    for o in range(outer):
        off = o * n * inner
        for j in range(inner):
            s[j] = 0
        for i in range(n):
            if logs:
                for j in range(inner):
                    s[j] += dY[off + i * inner + j]
            else:
                for j in range(inner):
                    s[j] += <double>(dY[off + i * inner + j] * Y[off + i * inner + j])
        for j in range(inner):
            tmp[j] = <floating>s[j]
        for i in range(n):
            if logs:
                _lsm_cols_row(dY + off + i * inner, Y + off + i * inner, tmp,
                              out + off + i * inner, inner, beta)
            else:
                for j in range(inner):
                    out[off + i * inner + j] = put(
                        Y[off + i * inner + j] * (dY[off + i * inner + j] - tmp[j]),
                        out[off + i * inner + j], beta)
    free(s)
    free(tmp)
    return 0


cdef void _lsm_cols_row(const floating* dy, const floating* y, const floating* s,
                        floating* out, Py_ssize_t inner, floating beta) noexcept nogil:
    """out = dy - exp(y) * s (+ beta out) for one row of ``inner`` columns."""
    cdef Py_ssize_t j, lo, w
    cdef floating e[256]
    lo = 0
    while lo < inner:        # exp in blocks through the vector loop
        w = inner - lo if inner - lo < 256 else 256
        _vexp(y + lo, e, w)
        for j in range(w):
            out[lo + j] = put(dy[lo + j] - e[j] * s[lo + j], out[lo + j], beta)
        lo += w


cdef int k_softmax_bwd(floating* out, Call* c) noexcept nogil:
    return _softmax_bwd(False, out, c)


cdef int k_log_softmax_bwd(floating* out, Call* c) noexcept nogil:
    return _softmax_bwd(True, out, c)


cdef Kernel K_SOFTMAX_BWD = Kernel(b"backprop_softmax", k_softmax_bwd[float],
                                   k_softmax_bwd[double])
cdef Kernel K_LOG_SOFTMAX_BWD = Kernel(b"backprop_log_softmax", k_log_softmax_bwd[float],
                                       k_log_softmax_bwd[double])


# ==================================================================================
# Python wrappers: validation, then one launch
# ==================================================================================
cdef int _axis_of(object axis, int nd) except -2:
    """One axis normalised to [0, nd); -1 for None (all elements)."""
    if axis is None:
        return -1
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be None or an int, got {axis!r}")
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be None or an int, got {axis!r}") from None
    if a < -nd or a >= nd:
        raise np.exceptions.AxisError(a, nd)
    return a + nd if a < 0 else a


cdef void _view3(cnp.ndarray X, int ax, Py_ssize_t* v) noexcept:
    """(outer, n, inner) of C-order X for axis ax (-1: all)."""
    cdef int nd = cnp.PyArray_NDIM(X), i
    v[0] = 1
    v[2] = 1
    if ax < 0:
        v[1] = cnp.PyArray_SIZE(X)
        return
    for i in range(ax):
        v[0] *= dim(X, i)
    v[1] = dim(X, ax)
    for i in range(ax + 1, nd):
        v[2] *= dim(X, i)


cdef int _reduced(cnp.ndarray X, int ax, bint keepdims, cnp.npy_intp* rd) noexcept:
    """The reduced shape (in rd); returns its ndim."""
    cdef int nd = cnp.PyArray_NDIM(X), i, r = 0
    for i in range(nd):
        if ax < 0 or i == ax:
            if keepdims:
                rd[r] = 1
                r += 1
        else:
            rd[r] = dim(X, i)
            r += 1
    return r


cdef bint _has_shape(cnp.ndarray a, int nd, cnp.npy_intp* dims) noexcept:
    return cnp.PyArray_NDIM(a) == nd and (
        nd == 0 or cnp.PyArray_CompareLists(cnp.PyArray_DIMS(a), dims, nd))


cdef tuple _tup(int nd, cnp.npy_intp* dims):
    return tuple([dims[i] for i in range(nd)])


cdef int _apart(cnp.ndarray out, cnp.ndarray a, str name) except -1:
    if overlap(out, a):
        raise ValueError(f"out shares memory with {name}; use a separate buffer")
    return 0


cdef double _beta(cnp.ndarray out, double beta) except? -1:
    if out is None:
        return 0.0
    check_beta(beta)
    return beta


cdef int _groups(int nd, const cnp.npy_intp* dims, const char* flag, Py_ssize_t* g,
                 bint* last) noexcept:
    """Drop size-1 axes and merge neighbours of the same flag: the group sizes (in g,
    alternating flags) and the flag of the last group; returns the number of groups."""
    cdef int i, k = 0
    cdef char f = 0, prev = -1
    for i in range(nd):
        if dims[i] == 1:
            continue
        f = 1 if flag[i] else 0
        if k > 0 and f == prev:
            g[k - 1] *= dims[i]
        else:
            g[k] = dims[i]
            k += 1
            prev = f
    last[0] = prev == 1
    return k


cdef object _sum_into(cnp.ndarray X, const char* red, int ond, cnp.npy_intp* odims,
                      cnp.ndarray out, double beta, str what):
    """out (ond, odims) = X summed over the axes flagged in red + beta out."""
    cdef int t = cnp.PyArray_TYPE(X)
    X = contig(X)
    if out is not None:
        out = out_like(out, t, ond, odims, what)
        same_or_apart(out, X, "out", "dY")
    else:
        out = <cnp.ndarray>cnp.PyArray_EMPTY(ond, odims, t, 0)
    cdef Py_ssize_t g[MAXD]
    cdef bint last
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.a[1] = <void*>&g[0]
    c.n[0] = _groups(cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), red, g, &last)
    c.n[1] = last
    c.n[2] = cnp.PyArray_SIZE(X)
    c.n[3] = cnp.PyArray_SIZE(out)
    c.s[0] = beta
    launch_side(&K_SUM, &c, 1, MAXD * sizeof(Py_ssize_t))
    return out


def reduce_sum(cnp.ndarray X not None, axis=None, bint keepdims=False):
    """Sum over all elements (``axis=None``), one axis or a tuple of axes.

    Full sums and sums over the last axis accumulate in double (eight partial sums);
    sums whose last kept axis is contiguous (column sums) add rows in the array's dtype,
    as numpy does; other patterns accumulate in double.

    Parameters
    ----------
    X : ndarray
        float32 or float64, any shape and strides.
    axis : None, int or tuple of ints
        Axes to sum over (negative values count from the end).
    keepdims : bool
        Keep the reduced axes with size 1.

    Returns
    -------
    ndarray
        A new array of ``X``'s dtype (0-d for a full sum without ``keepdims``).

    Raises
    ------
    TypeError
        Non-float dtype, an axis that is not an int.
    numpy.exceptions.AxisError
        An axis out of range.
    ValueError
        A repeated axis.
    """
    cdef int t = ftype(X, "X")
    cdef int nd = cnp.PyArray_NDIM(X), i, ond = 0
    cdef char red[MAXD]
    cdef cnp.npy_intp odims[MAXD]
    if axis is None:
        memset(red, 1, MAXD)
    else:
        memset(red, 0, MAXD)
        if isinstance(axis, (str, bytes)):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        try:
            axes = (operator.index(axis),)
        except TypeError:
            try:
                axes = tuple([operator.index(a) for a in axis])
            except TypeError:
                raise TypeError(
                    f"axis must be an int or a tuple of ints, got {axis!r}") from None
        for a in axes:
            if not -nd <= a < nd:
                raise np.exceptions.AxisError(a, nd)
            if red[a % nd]:
                raise ValueError(f"duplicate value in axis {axis!r}")
            red[a % nd] = 1
    for i in range(nd):
        if not red[i]:
            odims[ond] = dim(X, i)
            ond += 1
        elif keepdims:
            odims[ond] = 1
            ond += 1
    return _sum_into(X, red, ond, odims, None, 0.0, "sum")


def unbroadcast(cnp.ndarray dY not None, shape, cnp.ndarray out=None, double beta=0.0):
    """Sum ``dY`` down to ``shape`` (the adjoint of broadcasting ``shape`` to
    ``dY.shape``): ``out = sum + beta * out``.

    Every pattern is compiled: leading axes of ``dY`` and the axes where ``shape`` has
    size 1 are summed.

    Parameters
    ----------
    dY : ndarray
        The gradient at the broadcast shape.
    shape : tuple of ints
        The shape to sum down to; it must broadcast to ``dY.shape``.
    out : ndarray, optional
        C-contiguous destination of ``shape``.
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
        ``shape`` does not broadcast to ``dY.shape``; a bad ``out``.
    """
    ftype(dY, "dY")
    shape = tuple(shape)
    cdef int nd = len(shape), ndy = cnp.PyArray_NDIM(dY), lead = ndy - nd, i
    cdef cnp.npy_intp dims[MAXD]
    cdef char red[MAXD]
    if nd > ndy:
        raise ValueError(f"cannot unbroadcast dY of shape {shape_of(dY)} to {shape}: "
                         "the shape has more dimensions")
    for i in range(nd):
        dims[i] = operator.index(shape[i])
    for i in range(ndy):
        if i < lead:
            red[i] = 1
        elif dims[i - lead] == dim(dY, i):
            red[i] = 0
        elif dims[i - lead] == 1:
            red[i] = 1
        else:
            raise ValueError(f"cannot unbroadcast dY of shape {shape_of(dY)} to {shape}: "
                             f"{shape} does not broadcast to {shape_of(dY)}")
    return _sum_into(dY, red, nd, dims, out, _beta(out, beta), "reduced gradient")


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
    ftype(dY, "dY")
    if cnp.PyArray_NDIM(dY) != 2:
        raise ValueError(f"backprop_bias needs a 2-D gradient, got shape {shape_of(dY)}")
    cdef char red[2]
    red[0] = 1
    red[1] = 0
    cdef cnp.npy_intp dims[1]
    dims[0] = dim(dY, 1)
    return _sum_into(dY, red, 1, dims, out, _beta(out, beta), "bias gradient")


def expand(cnp.ndarray dY not None, shape, cnp.ndarray out=None, double beta=0.0):
    """Broadcast ``dY`` to ``shape``: ``out = broadcast_to(dY, shape) + beta * out`` (the
    adjoint of :func:`unbroadcast`, the backward of a sum).

    Parameters
    ----------
    dY : ndarray
        float32/float64 whose shape broadcasts to ``shape``.
    shape : tuple of ints
        The target shape.
    out : ndarray, optional
        C-contiguous destination of ``shape``.
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
        ``dY.shape`` does not broadcast to ``shape``; a bad ``out``.
    """
    cdef int t = ftype(dY, "dY")
    shape = tuple(shape)
    cdef int nd = len(shape), ndy = cnp.PyArray_NDIM(dY), lead = nd - ndy, i
    cdef cnp.npy_intp dims[MAXD]
    cdef char bc[MAXD]
    if nd > MAXD:
        raise ValueError(f"shape {shape} has too many dimensions")
    for i in range(nd):
        dims[i] = operator.index(shape[i])
        if dims[i] < 0:
            raise ValueError(f"negative dimensions are not allowed in shape {shape}")
    if lead < 0:
        raise ValueError(f"cannot expand dY of shape {shape_of(dY)} to {shape}")
    for i in range(nd):
        if i < lead:
            bc[i] = 1
        elif dim(dY, i - lead) == dims[i]:
            bc[i] = 0
        elif dim(dY, i - lead) == 1:
            bc[i] = 1
        else:
            raise ValueError(f"cannot expand dY of shape {shape_of(dY)} to {shape}")
    beta = _beta(out, beta)
    dY = contig(dY)
    out = out_like(out, t, nd, dims, "expanded gradient")
    same_or_apart(out, dY, "out", "dY")
    cdef Py_ssize_t g[MAXD]
    cdef bint last
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(dY)
    c.a[1] = <void*>&g[0]
    c.n[0] = _groups(nd, dims, bc, g, &last)
    c.n[1] = last
    c.n[2] = cnp.PyArray_SIZE(out)
    c.s[0] = beta
    launch_side(&K_EXPAND, &c, 1, MAXD * sizeof(Py_ssize_t))
    return out


cdef object _reduce(const Kernel* k, cnp.ndarray X, object axis, bint keepdims, str what):
    cdef int t = ftype(X, "X")
    cdef int ax = _axis_of(axis, cnp.PyArray_NDIM(X))
    cdef Py_ssize_t v[3]
    _view3(X, ax, v)
    if v[1] == 0 and k == &K_MAX:
        raise ValueError(f"reduce_max of an empty axis (axis={axis!r}, shape "
                         f"{shape_of(X)}): the maximum of nothing is undefined")
    cdef cnp.npy_intp rd[MAXD]
    cdef int rnd = _reduced(X, ax, keepdims, rd)
    X = contig(X)
    cdef cnp.ndarray out = out_like(None, t, rnd, rd, what)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.n[0] = v[0]
    c.n[1] = v[1]
    c.n[2] = v[2]
    launch(k, &c)
    return out


def reduce_max(cnp.ndarray X not None, axis=None, bint keepdims=False):
    """Maximum over all elements (``axis=None``) or one axis; NaN propagates (as np.max).

    Returns
    -------
    ndarray
        A new array of the reduced shape (0-d for ``axis=None`` without ``keepdims``).

    Raises
    ------
    TypeError
        Non-float dtype, a non-integer axis.
    numpy.exceptions.AxisError
        An axis out of range.
    ValueError
        An empty reduction.
    """
    return _reduce(&K_MAX, X, axis, keepdims, "maximum")


def logsumexp(cnp.ndarray X not None, axis=-1, bint keepdims=False):
    """``m + log(sum(exp(X - m)))`` over one axis (or all elements), ``m`` the maximum:
    stable for any magnitude; rows whose maximum is +-inf give that inf, NaN propagates,
    an empty reduction gives -inf.

    Returns
    -------
    ndarray
        A new array of the reduced shape.

    Raises
    ------
    TypeError
        Non-float dtype, a non-integer axis.
    numpy.exceptions.AxisError
        An axis out of range.
    """
    return _reduce(&K_LSE, X, axis, keepdims, "logsumexp")


cdef object _backprop_reduced(const Kernel* k, cnp.ndarray dY, cnp.ndarray X, cnp.ndarray Y,
                              object axis, bint keepdims, cnp.ndarray out, double beta,
                              bint strict):
    """Shared wrapper of backprop_reduce_max / backprop_logsumexp: dY and Y of the
    reduced shape, out of X's shape."""
    cdef int t = ftype(dY, "dY")
    same_type(X, t, "X", dY, "dY")
    same_type(Y, t, "Y", dY, "dY")
    cdef int nd = cnp.PyArray_NDIM(X)
    cdef int ax = _axis_of(axis, nd)
    cdef Py_ssize_t v[3]
    _view3(X, ax, v)
    cdef cnp.npy_intp rd[MAXD]
    cdef int rnd = _reduced(X, ax, keepdims, rd)
    for a, name in ((dY, "dY"), (Y, "Y")):
        if not _has_shape(a, rnd, rd):
            raise ValueError(
                f"{name} of shape {shape_of(a)} does not match the reduced shape "
                f"{_tup(rnd, rd)} of X of shape {shape_of(X)} (axis={axis!r}, "
                f"keepdims={bool(keepdims)})")
    beta = _beta(out, beta)
    dY = contig(dY)
    X = contig(X)
    Y = contig(Y)
    out = out_like(out, t, nd, cnp.PyArray_DIMS(X), "gradient")
    if strict:
        _apart(out, X, "X")
        _apart(out, dY, "dY")
        _apart(out, Y, "Y")
    else:
        same_or_apart(out, X, "out", "X")
        same_or_apart(out, dY, "out", "dY")
        same_or_apart(out, Y, "out", "Y")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(dY)
    c.a[1] = cnp.PyArray_DATA(X)
    c.a[2] = cnp.PyArray_DATA(Y)
    c.n[0] = v[0]
    c.n[1] = v[1]
    c.n[2] = v[2]
    c.s[0] = beta
    launch(k, &c)
    return out


def backprop_reduce_max(cnp.ndarray dY not None, cnp.ndarray X not None,
                        cnp.ndarray Y not None, axis=None, bint keepdims=False,
                        cnp.ndarray out=None, double beta=0.0):
    """Gradient of ``Y = reduce_max(X, axis, keepdims)``: each reduced slot's ``dY`` goes
    to the first position along the axis (C order for ``axis=None``) where ``X == Y``
    (NaN matching NaN: ``np.argmax``'s choice), 0 elsewhere; ``out = grad + beta * out``.

    Returns
    -------
    ndarray
        ``out`` of ``X``'s shape.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        ``dY`` or ``Y`` not of the reduced shape, a bad ``out`` (or one sharing memory
        with an input).
    numpy.exceptions.AxisError
        An axis out of range.
    """
    return _backprop_reduced(&K_MAX_BWD, dY, X, Y, axis, keepdims, out, beta, True)


def backprop_logsumexp(cnp.ndarray dY not None, cnp.ndarray X not None,
                       cnp.ndarray Y not None, axis=-1, bint keepdims=False,
                       cnp.ndarray out=None, double beta=0.0):
    """Gradient of ``Y = logsumexp(X, axis, keepdims)``: ``out = dY * exp(X - Y) +
    beta * out`` (dY and Y broadcast along the axis).

    Returns
    -------
    ndarray
        ``out`` of ``X``'s shape.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        ``dY`` or ``Y`` not of the reduced shape, a bad ``out``.
    numpy.exceptions.AxisError
        An axis out of range.
    """
    return _backprop_reduced(&K_LSE_BWD, dY, X, Y, axis, keepdims, out, beta, False)


cdef object _softmax_fwd(const Kernel* k, cnp.ndarray X, object axis, cnp.ndarray out,
                         str what):
    cdef int t = ftype(X, "X")
    cdef int ax = _axis_of(axis, cnp.PyArray_NDIM(X))
    cdef Py_ssize_t v[3]
    _view3(X, ax, v)
    X = contig(X)
    out = out_like(out, t, cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), what)
    same_or_apart(out, X, "out", "X")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.n[0] = v[0]
    c.n[1] = v[1]
    c.n[2] = v[2]
    launch(k, &c)
    return out


cdef object _softmax_back(const Kernel* k, cnp.ndarray dY, cnp.ndarray Y, object axis,
                          cnp.ndarray out, double beta):
    cdef int t = ftype(dY, "dY")
    same_type(Y, t, "Y", dY, "dY")
    if not same_shape(dY, Y):
        raise ValueError(f"dY of shape {shape_of(dY)} does not match Y of shape {shape_of(Y)}")
    cdef int ax = _axis_of(axis, cnp.PyArray_NDIM(Y))
    cdef Py_ssize_t v[3]
    _view3(Y, ax, v)
    beta = _beta(out, beta)
    dY = contig(dY)
    Y = contig(Y)
    out = out_like(out, t, cnp.PyArray_NDIM(Y), cnp.PyArray_DIMS(Y), "gradient")
    same_or_apart(out, dY, "out", "dY")
    same_or_apart(out, Y, "out", "Y")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(dY)
    c.a[1] = cnp.PyArray_DATA(Y)
    c.n[0] = v[0]
    c.n[1] = v[1]
    c.n[2] = v[2]
    c.s[0] = beta
    launch(k, &c)
    return out


def softmax(cnp.ndarray X not None, axis=-1, cnp.ndarray out=None):
    """``exp(X - m) / sum(exp(X - m))`` along ``axis`` (None: all elements), ``m`` the
    maximum: stable for any magnitude; rows whose maximum is +-inf or NaN give NaN.

    Parameters
    ----------
    X : ndarray
        float32 or float64, any shape and strides.
    axis : int or None
        The softmax axis (default the last).
    out : ndarray, optional
        C-contiguous destination of ``X``'s shape (may be ``X`` itself).

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes, a non-integer axis.
    numpy.exceptions.AxisError
        An axis out of range.
    ValueError
        A bad ``out``.
    """
    return _softmax_fwd(&K_SOFTMAX, X, axis, out, "softmax")


def log_softmax(cnp.ndarray X not None, axis=-1, cnp.ndarray out=None):
    """``(X - m) - log(sum(exp(X - m)))`` along ``axis`` (None: all elements): one max
    pass, one exp-sum pass, one write pass; rows whose maximum is +-inf or NaN give NaN.

    Returns
    -------
    ndarray
        ``out`` (a new array if None), of ``X``'s shape.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes, a non-integer axis.
    numpy.exceptions.AxisError
        An axis out of range.
    ValueError
        A bad ``out``.
    """
    return _softmax_fwd(&K_LOG_SOFTMAX, X, axis, out, "log_softmax")


def backprop_softmax(cnp.ndarray dY not None, cnp.ndarray Y not None, axis=-1,
                     cnp.ndarray out=None, double beta=0.0):
    """``out = Y * (dY - sum(dY * Y, axis, keepdims=True)) + beta * out``, ``Y`` the saved
    softmax output (one reduction pass and one write pass per row).

    Returns
    -------
    ndarray
        ``out`` of ``Y``'s shape.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    numpy.exceptions.AxisError
        An axis out of range.
    """
    return _softmax_back(&K_SOFTMAX_BWD, dY, Y, axis, out, beta)


def backprop_log_softmax(cnp.ndarray dY not None, cnp.ndarray Y not None, axis=-1,
                         cnp.ndarray out=None, double beta=0.0):
    """``out = dY - exp(Y) * sum(dY, axis, keepdims=True) + beta * out``, ``Y`` the saved
    log_softmax output (one reduction pass and one write pass per row).

    Returns
    -------
    ndarray
        ``out`` of ``Y``'s shape.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out``.
    numpy.exceptions.AxisError
        An axis out of range.
    """
    return _softmax_back(&K_LOG_SOFTMAX_BWD, dY, Y, axis, out, beta)
