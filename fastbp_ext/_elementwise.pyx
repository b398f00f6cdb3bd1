# cython: language_level=3, cdivision=True
"""Kernels of fastbp: broadcasting arithmetic (add, sub, mul, div, maximum, minimum), unary
math (exp, log, sqrt, power) and their backprops.

Broadcasting (binary ops and the gradients taken at the broadcast shape) is one N-d
strided iteration written once: the wrapper lays out the output shape and each operand's
strides in elements (0 along broadcast axes) in a small buffer, collapsing every run of
axes that is contiguous for all operands (size-1 axes are dropped), so the common cases
reduce to a few long rows: same shapes and scalars to one contiguous row, a (n, m) + (m,)
row bias to n rows of m. The kernel walks the rows of the collapsed shape and runs one
inner loop per row (``_simd_math.h``: vectorised loops for contiguous and scalar operands,
a strided loop otherwise). Operands are read through their strides (transposes and slices
are not copied); byte-swapped or misaligned inputs are copied first. The output is
C-contiguous.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.string cimport memcpy, memset
from fastbp_ext._common cimport (
    out_beta,
    floating, Call, Kernel, launch, launch_side, call_dtype, ftype, same_type, contig, out_like,
    same_or_apart, check_beta, shape_of, same_shape, good, threads_for, PAR_TRANSC,
    PAR_ARITH,
)
from fastbp_ext._simd cimport fastbp_vexp_f, fastbp_vexp_d
from fastbp_ext._simd_math cimport *  # noqa: F403

cnp.import_array()

__all__ = [
    "add", "sub", "mul", "div", "maximum", "minimum", "add_bias", "scale_by",
    "backprop_mul", "backprop_div", "backprop_maximum", "backprop_minimum",
    "exp", "log", "sqrt", "power",
    "backprop_exp", "backprop_log", "backprop_sqrt", "backprop_power",
]

LIBMVEC_MATH = bool(FASTBP_MATH_LIBMVEC)
"""True when the log/pow loops are vectorised through glibc's libmvec."""

cdef enum:
    MAXD = 64           # numpy 2's NPY_MAXDIMS: axes of the geometry buffer
    TILE = 16           # tile edge of the transposed-operand walk (_rows_tiled)
    # inner loops of the N-d iteration: binary (operands 0, 1) ...
    OP_ADD = 0
    OP_SUB = 1
    OP_MUL = 2
    OP_DIV = 3
    OP_MAX = 4
    OP_MIN = 5
    OP_HALFDIV = 6      # a * 0.5 / b
    # ... and ternary (operands 0, 1, 2)
    OP_DIVY = 10        # (-g * a) / (b * b)
    OP_PICKGT = 11      # g * ([a > b] + 0.5 [a == b])
    OP_PICKLT = 12      # g * ([a < b] + 0.5 [a == b])
    # unary modes
    U_EXP = 0
    U_LOG = 1
    U_SQRT = 2
    U_ONE = 3
    U_COPY = 4
    U_SQUARE = 5
    U_CUBE = 6
    U_RECIP = 7
    U_POW = 8


# ==================================================================================
# C level: the N-d broadcasting iteration
# ==================================================================================
# The geometry buffer (Call.a[3]): shape at [0, nd), the element strides of operand k
# (k = 0, 1, 2) at [(k + 1) * MAXD, (k + 1) * MAXD + nd). The output is C-contiguous of
# that shape; Call.n[0] = nd >= 1; Call.s[0] = beta.
cdef inline void _row(int op, Py_ssize_t m,
                      const floating* a, Py_ssize_t sa,   # IN  operand 0 (stride sa)
                      const floating* b, Py_ssize_t sb,   # IN  operand 1
                      const floating* z, Py_ssize_t sz,   # IN  operand 2 (ternary ops)
                      floating* o,                        # OUT (m,) = f(a, b[, z]) + beta o
                      floating beta) noexcept nogil:
    if floating is float:
        if op == OP_ADD:
            fastbp_add_f(m, a, sa, b, sb, o, beta)
        elif op == OP_SUB:
            fastbp_sub_f(m, a, sa, b, sb, o, beta)
        elif op == OP_MUL:
            fastbp_mul_f(m, a, sa, b, sb, o, beta)
        elif op == OP_DIV:
            fastbp_div_f(m, a, sa, b, sb, o, beta)
        elif op == OP_MAX:
            fastbp_max_f(m, a, sa, b, sb, o, beta)
        elif op == OP_MIN:
            fastbp_min_f(m, a, sa, b, sb, o, beta)
        elif op == OP_HALFDIV:
            fastbp_halfdiv_f(m, a, sa, b, sb, o, beta)
        elif op == OP_DIVY:
            fastbp_divy_f(m, a, sa, b, sb, z, sz, o, beta)
        elif op == OP_PICKGT:
            fastbp_pickgt_f(m, a, sa, b, sb, z, sz, o, beta)
        elif op == OP_PICKLT:
            fastbp_picklt_f(m, a, sa, b, sb, z, sz, o, beta)
    else:
        if op == OP_ADD:
            fastbp_add_d(m, a, sa, b, sb, o, beta)
        elif op == OP_SUB:
            fastbp_sub_d(m, a, sa, b, sb, o, beta)
        elif op == OP_MUL:
            fastbp_mul_d(m, a, sa, b, sb, o, beta)
        elif op == OP_DIV:
            fastbp_div_d(m, a, sa, b, sb, o, beta)
        elif op == OP_MAX:
            fastbp_max_d(m, a, sa, b, sb, o, beta)
        elif op == OP_MIN:
            fastbp_min_d(m, a, sa, b, sb, o, beta)
        elif op == OP_HALFDIV:
            fastbp_halfdiv_d(m, a, sa, b, sb, o, beta)
        elif op == OP_DIVY:
            fastbp_divy_d(m, a, sa, b, sb, z, sz, o, beta)
        elif op == OP_PICKGT:
            fastbp_pickgt_d(m, a, sa, b, sb, z, sz, o, beta)
        elif op == OP_PICKLT:
            fastbp_picklt_d(m, a, sa, b, sb, z, sz, o, beta)


cdef void _rows(int op, Py_ssize_t lo, Py_ssize_t hi, int nd,
                const Py_ssize_t* geo,                     # IN  shape and strides
                const floating* a, const floating* b,      # IN  operands 0, 1
                const floating* z,                         # IN  operand 2
                floating* out,                             # OUT rows [lo, hi) of out
                floating beta) noexcept nogil:
    """Rows ``lo .. hi - 1`` of the collapsed shape (a row: the last axis)."""
    cdef const Py_ssize_t* shape = geo
    cdef const Py_ssize_t* s0 = geo + MAXD
    cdef const Py_ssize_t* s1 = geo + 2 * MAXD
    cdef const Py_ssize_t* s2 = geo + 3 * MAXD
    cdef Py_ssize_t idx[MAXD]
    cdef Py_ssize_t m = shape[nd - 1], r, q = lo, o0 = 0, o1 = 0, o2 = 0
    cdef int d = nd - 2
    while d >= 0:                     # the multi-index of row lo
        idx[d] = q % shape[d]
        q = q // shape[d]
        o0 += idx[d] * s0[d]
        o1 += idx[d] * s1[d]
        o2 += idx[d] * s2[d]
        d -= 1
    for r in range(lo, hi):
        _row(op, m, a + o0, s0[nd - 1], b + o1, s1[nd - 1], z + o2, s2[nd - 1],
             out + r * m, beta)
        d = nd - 2
        while d >= 0:                 # next multi-index, odometer style
            idx[d] += 1
            o0 += s0[d]
            o1 += s1[d]
            o2 += s2[d]
            if idx[d] < shape[d]:
                break
            o0 -= s0[d] * shape[d]
            o1 -= s1[d] * shape[d]
            o2 -= s2[d] * shape[d]
            idx[d] = 0
            d -= 1


cdef inline Py_ssize_t _offset(Py_ssize_t r, int nd, const Py_ssize_t* shape,
                               const Py_ssize_t* s) noexcept nogil:
    """Element offset of row ``r`` (a flat index over the axes before the last)."""
    cdef Py_ssize_t off = 0
    cdef int d = nd - 2
    while d >= 0:
        off += (r % shape[d]) * s[d]
        r = r // shape[d]
        d -= 1
    return off


cdef void _rows_tiled(int op, Py_ssize_t lo, Py_ssize_t hi, int nd,
                      const Py_ssize_t* geo,                 # IN  shape and strides
                      const floating* a, const floating* b,  # IN  operands 0, 1
                      const floating* z,                     # IN  operand 2
                      floating* out,                         # OUT rows [lo, hi) of out
                      floating beta) noexcept nogil:
    """As :func:`_rows`, for an operand read across its rows (a transposed view): the
    last two axes are walked in TILE x TILE tiles so that the lines it reads stay in
    cache while the output is written row by row."""
    cdef const Py_ssize_t* shape = geo
    cdef const Py_ssize_t* s0 = geo + MAXD
    cdef const Py_ssize_t* s1 = geo + 2 * MAXD
    cdef const Py_ssize_t* s2 = geo + 3 * MAXD
    cdef Py_ssize_t m = shape[nd - 1], P = shape[nd - 2], r = lo, r_end, i, j0, jl
    cdef Py_ssize_t o0, o1, o2
    cdef Py_ssize_t t0 = s0[nd - 2], t1 = s1[nd - 2], t2 = s2[nd - 2]
    cdef Py_ssize_t u0 = s0[nd - 1], u1 = s1[nd - 1], u2 = s2[nd - 1]
    while r < hi:
        # a block of up to TILE rows along axis nd - 2 (not crossing into the next block
        # of the axes before it)
        r_end = r - r % P + P
        if r_end > r + TILE:
            r_end = r + TILE
        if r_end > hi:
            r_end = hi
        o0 = _offset(r, nd, shape, s0)
        o1 = _offset(r, nd, shape, s1)
        o2 = _offset(r, nd, shape, s2)
        j0 = 0
        while j0 < m:
            jl = m - j0 if m - j0 < TILE else TILE
            for i in range(r_end - r):
                _row(op, jl, a + o0 + i * t0 + j0 * u0, u0, b + o1 + i * t1 + j0 * u1, u1,
                     z + o2 + i * t2 + j0 * u2, u2, out + (r + i) * m + j0, beta)
            j0 += TILE
        r = r_end


cdef int _nd(int op, floating* out, Call* c) noexcept nogil:
    """The N-d iteration of ``op`` (threads over rows, or over chunks of a single row)."""
    cdef int nd = <int>c.n[0]
    cdef const Py_ssize_t* geo = <const Py_ssize_t*>c.a[3]
    cdef const floating* a = <const floating*>c.a[0]
    cdef const floating* b = <const floating*>c.a[1]
    cdef const floating* z = <const floating*>c.a[2]
    cdef floating beta = <floating>c.s[0]
    cdef Py_ssize_t m = geo[nd - 1], R = 1, lo, chunk, t
    cdef Py_ssize_t sa = geo[MAXD + nd - 1], sb = geo[2 * MAXD + nd - 1]
    cdef Py_ssize_t sz = geo[3 * MAXD + nd - 1]
    cdef int d, nt
    # an operand read across memory along the last axis: tile the last two axes
    cdef bint tiled = nd >= 2 and (sa > 1 or sa < -1 or sb > 1 or sb < -1 or sz > 1
                                   or sz < -1)
    for d in range(nd - 1):
        R *= geo[d]
    if R * m == 0:
        return 0
    nt = threads_for(R * m * <Py_ssize_t>sizeof(floating), PAR_ARITH)
    if nt == 1:
        if tiled:
            _rows_tiled(op, 0, R, nd, geo, a, b, z, out, beta)
        else:
            _rows(op, 0, R, nd, geo, a, b, z, out, beta)
    elif R == 1:                      # one long row: split it
        chunk = (m + nt - 1) // nt
        for t in prange(nt, num_threads=nt, schedule='static'):
            lo = t * chunk
            if lo < m:
                _row(op, (chunk if lo + chunk <= m else m - lo), a + lo * sa, sa,
                     b + lo * sb, sb, z + lo * sz, sz, out + lo, beta)
    else:
        if nt > R:
            nt = <int>R
        chunk = (R + nt - 1) // nt
        for t in prange(nt, num_threads=nt, schedule='static'):
            lo = t * chunk
            if lo < R and tiled:
                _rows_tiled(op, lo, (lo + chunk if lo + chunk <= R else R), nd, geo, a, b,
                            z, out, beta)
            elif lo < R:
                _rows(op, lo, (lo + chunk if lo + chunk <= R else R), nd, geo, a, b, z,
                      out, beta)
    return 0


# ---------------------------------------------------------------- entry points (N-d)
# operands (a[0], a[1]) -> out = a0 (op) a1 + beta out, broadcast as in the geometry
cdef int k_add(floating* out, Call* c) noexcept nogil:
    return _nd(OP_ADD, out, c)


cdef int k_sub(floating* out, Call* c) noexcept nogil:
    return _nd(OP_SUB, out, c)


cdef int k_mul(floating* out, Call* c) noexcept nogil:
    return _nd(OP_MUL, out, c)


cdef int k_div(floating* out, Call* c) noexcept nogil:
    return _nd(OP_DIV, out, c)


cdef int k_maximum(floating* out, Call* c) noexcept nogil:
    return _nd(OP_MAX, out, c)


cdef int k_minimum(floating* out, Call* c) noexcept nogil:
    return _nd(OP_MIN, out, c)


cdef int k_halfdiv(floating* out, Call* c) noexcept nogil:
    return _nd(OP_HALFDIV, out, c)


# operands (a[0] = dZ, a[1], a[2]) -> out = f(dZ, a1, a2) + beta out
cdef int k_div_wrt_y(floating* out, Call* c) noexcept nogil:
    return _nd(OP_DIVY, out, c)


cdef int k_pick_gt(floating* out, Call* c) noexcept nogil:
    return _nd(OP_PICKGT, out, c)


cdef int k_pick_lt(floating* out, Call* c) noexcept nogil:
    return _nd(OP_PICKLT, out, c)


cdef Kernel K_ADD = Kernel(b"add", k_add[float], k_add[double])
cdef Kernel K_SUB = Kernel(b"sub", k_sub[float], k_sub[double])
cdef Kernel K_MUL = Kernel(b"mul", k_mul[float], k_mul[double])
cdef Kernel K_DIV = Kernel(b"div", k_div[float], k_div[double])
cdef Kernel K_MAXIMUM = Kernel(b"maximum", k_maximum[float], k_maximum[double])
cdef Kernel K_MINIMUM = Kernel(b"minimum", k_minimum[float], k_minimum[double])
cdef Kernel K_ADD_BIAS = Kernel(b"add_bias", k_add[float], k_add[double])


cdef bint row_bias(const Kernel* k, const Call* c, Py_ssize_t* n, Py_ssize_t* m) noexcept nogil:
    cdef const Py_ssize_t* geo = <const Py_ssize_t*>c.a[3]
    cdef Py_ssize_t nd = c.n[0]
    if k != &K_ADD_BIAS or geo == NULL or c.s[0] != 0.0 or c.a[1] == NULL:
        return False
    if nd == 1 and geo[MAXD] == 1 and geo[2 * MAXD] == 1:  # a single row
        n[0] = 1
        m[0] = geo[0]
        return True
    if (nd == 2 and geo[MAXD] == geo[1] and geo[MAXD + 1] == 1
            and geo[2 * MAXD] == 0 and geo[2 * MAXD + 1] == 1):
        n[0] = geo[0]
        m[0] = geo[1]
        return True
    return False
cdef Kernel K_SCALE_BY = Kernel(b"scale_by", k_mul[float], k_mul[double])
cdef Kernel K_BP_MUL = Kernel(b"backprop_mul", k_mul[float], k_mul[double])
cdef Kernel K_BP_DIV_X = Kernel(b"backprop_div", k_div[float], k_div[double])
cdef Kernel K_BP_DIV_Y = Kernel(b"backprop_div", k_div_wrt_y[float], k_div_wrt_y[double])
cdef Kernel K_BP_MAXIMUM = Kernel(b"backprop_maximum", k_pick_gt[float], k_pick_gt[double])
cdef Kernel K_BP_MINIMUM = Kernel(b"backprop_minimum", k_pick_lt[float], k_pick_lt[double])
cdef Kernel K_BP_EXP = Kernel(b"backprop_exp", k_mul[float], k_mul[double])
cdef Kernel K_BP_LOG = Kernel(b"backprop_log", k_div[float], k_div[double])
cdef Kernel K_BP_SQRT = Kernel(b"backprop_sqrt", k_halfdiv[float], k_halfdiv[double])


# ==================================================================================
# C level: contiguous unary loops (Call: a[0] = X, n[0] = size, s[0] = p)
# ==================================================================================
cdef int _power_mode(double p) noexcept nogil:
    if p == 0.0:
        return U_ONE
    if p == 1.0:
        return U_COPY
    if p == 2.0:
        return U_SQUARE
    if p == 3.0:
        return U_CUBE
    if p == 0.5:
        return U_SQRT
    if p == -1.0:
        return U_RECIP
    return U_POW


cdef void _unary(int mode, Py_ssize_t n,
                 const floating* x,      # IN  (n,)
                 floating* y,            # OUT (n,) = f(x)
                 floating p) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1
    if mode == U_ONE:                   # x**0 == 1, even for NaN (as np.power)
        for i in range(n):
            y[i] = one
    elif mode == U_COPY:
        if y != x:
            memcpy(y, x, n * sizeof(floating))
    elif floating is float:
        if mode == U_EXP:
            fastbp_vexp_f(x, y, n)
        elif mode == U_LOG:
            fastbp_vlog_f(x, y, n, p)
        elif mode == U_SQRT:
            fastbp_vsqrt_f(x, y, n, p)
        elif mode == U_SQUARE:
            fastbp_vsquare_f(x, y, n, p)
        elif mode == U_CUBE:
            fastbp_vcube_f(x, y, n, p)
        elif mode == U_RECIP:
            fastbp_vrecip_f(x, y, n, p)
        else:
            fastbp_vpow_f(x, y, n, p)
    else:
        if mode == U_EXP:
            fastbp_vexp_d(x, y, n)
        elif mode == U_LOG:
            fastbp_vlog_d(x, y, n, p)
        elif mode == U_SQRT:
            fastbp_vsqrt_d(x, y, n, p)
        elif mode == U_SQUARE:
            fastbp_vsquare_d(x, y, n, p)
        elif mode == U_CUBE:
            fastbp_vcube_d(x, y, n, p)
        elif mode == U_RECIP:
            fastbp_vrecip_d(x, y, n, p)
        else:
            fastbp_vpow_d(x, y, n, p)


cdef int _unary_par(int mode, floating* out, Call* c) noexcept nogil:
    cdef const floating* x = <const floating*>c.a[0]
    cdef Py_ssize_t n = c.n[0], t, lo, chunk
    cdef floating p = <floating>c.s[0]
    cdef int nt = threads_for(n * <Py_ssize_t>sizeof(floating),
                              PAR_TRANSC if mode == U_EXP or mode == U_LOG or mode == U_POW
                              else PAR_ARITH)
    if nt == 1:
        _unary(mode, n, x, out, p)
        return 0
    chunk = (n + nt - 1) // nt
    for t in prange(nt, num_threads=nt, schedule='static'):
        lo = t * chunk
        if lo < n:
            _unary(mode, (chunk if lo + chunk <= n else n - lo), x + lo, out + lo, p)
    return 0


cdef int k_exp(floating* out, Call* c) noexcept nogil:
    return _unary_par(U_EXP, out, c)


cdef int k_log(floating* out, Call* c) noexcept nogil:
    return _unary_par(U_LOG, out, c)


cdef int k_sqrt(floating* out, Call* c) noexcept nogil:
    return _unary_par(U_SQRT, out, c)


cdef int k_power(floating* out, Call* c) noexcept nogil:
    return _unary_par(_power_mode(c.s[0]), out, c)


cdef Kernel K_EXP = Kernel(b"exp", k_exp[float], k_exp[double])
cdef Kernel K_LOG = Kernel(b"log", k_log[float], k_log[double])
cdef Kernel K_SQRT = Kernel(b"sqrt", k_sqrt[float], k_sqrt[double])
cdef Kernel K_POWER = Kernel(b"power", k_power[float], k_power[double])


# ------------------------------------------ gradient of a power (contiguous operands)
cdef void _power_grad(Py_ssize_t n, double pd,
                      const floating* g,     # IN  (n,) dY
                      const floating* x,     # IN  (n,) X
                      floating* o,           # OUT (n,) = dY * p * X**(p - 1) + beta o
                      floating beta) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating zero = 0, one = 1
    cdef floating p = <floating>pd
    cdef floating q = p - one
    if pd == 0.0:                       # 0 everywhere (not 0 * inf)
        if beta == zero:
            for i in range(n):
                o[i] = zero
    elif pd == 1.0:                     # dY exactly
        if beta == zero:
            if o != g:
                memcpy(o, g, n * sizeof(floating))
        else:
            for i in range(n):
                o[i] = o[i] + g[i]
    elif floating is float:
        if pd == 2.0:
            fastbp_plin_f(n, g, x, o, p, q, beta)
        elif pd == 3.0:
            fastbp_psquare_f(n, g, x, o, p, q, beta)
        elif pd == 0.5:
            fastbp_prsqrt_f(n, g, x, o, p, q, beta)
        elif pd == -1.0:
            fastbp_prsquare_f(n, g, x, o, p, q, beta)
        else:
            fastbp_ppow_f(n, g, x, o, p, q, beta)
    else:
        if pd == 2.0:
            fastbp_plin_d(n, g, x, o, p, q, beta)
        elif pd == 3.0:
            fastbp_psquare_d(n, g, x, o, p, q, beta)
        elif pd == 0.5:
            fastbp_prsqrt_d(n, g, x, o, p, q, beta)
        elif pd == -1.0:
            fastbp_prsquare_d(n, g, x, o, p, q, beta)
        else:
            fastbp_ppow_d(n, g, x, o, p, q, beta)


cdef int k_backprop_power(floating* out, Call* c) noexcept nogil:
    """a[0] = dY, a[1] = X (contiguous, n[0] elements); s[0] = beta, s[1] = p."""
    cdef const floating* g = <const floating*>c.a[0]
    cdef const floating* x = <const floating*>c.a[1]
    cdef Py_ssize_t n = c.n[0], t, lo, chunk
    cdef floating beta = <floating>c.s[0]
    cdef double p = c.s[1]
    cdef int nt = threads_for(n * <Py_ssize_t>sizeof(floating),
                              PAR_TRANSC if _power_mode(p) == U_POW else PAR_ARITH)
    if nt == 1:
        _power_grad(n, p, g, x, out, beta)
        return 0
    chunk = (n + nt - 1) // nt
    for t in prange(nt, num_threads=nt, schedule='static'):
        lo = t * chunk
        if lo < n:
            _power_grad((chunk if lo + chunk <= n else n - lo), p, g + lo, x + lo, out + lo,
                        beta)
    return 0


cdef Kernel K_BP_POWER = Kernel(b"backprop_power", k_backprop_power[float],
                                k_backprop_power[double])


# ==================================================================================
# Python level: validation and geometry
# ==================================================================================
cdef inline cnp.ndarray _strided(cnp.ndarray a):
    """An input read through its strides: copied only if byte-swapped or misaligned."""
    if cnp.PyArray_ISALIGNED(a) and cnp.PyArray_ISNOTSWAPPED(a):
        return a
    return contig(a)


cdef int _broadcast(cnp.ndarray X, cnp.ndarray Y, cnp.npy_intp* dims) except -1:
    """numpy's broadcast shape of X and Y into ``dims``; returns its ndim."""
    cdef int nx = cnp.PyArray_NDIM(X), ny = cnp.PyArray_NDIM(Y)
    cdef int nd = nx if nx > ny else ny, d, ax, ay
    cdef cnp.npy_intp u, v
    for d in range(nd):
        ax = d - (nd - nx)
        ay = d - (nd - ny)
        u = cnp.PyArray_DIMS(X)[ax] if ax >= 0 else 1
        v = cnp.PyArray_DIMS(Y)[ay] if ay >= 0 else 1
        if u == v or v == 1:
            dims[d] = u
        elif u == 1:
            dims[d] = v
        else:
            raise ValueError(
                f"operands could not be broadcast together: X has shape {shape_of(X)} "
                f"and Y has shape {shape_of(Y)}")
    return nd


cdef bint _fits(cnp.ndarray a, int nd, const cnp.npy_intp* dims) noexcept:
    """Does ``a`` broadcast to the shape ``dims`` (without growing it)?"""
    cdef int na = cnp.PyArray_NDIM(a), d
    cdef cnp.npy_intp u
    if na > nd:
        return False
    for d in range(na):
        u = cnp.PyArray_DIMS(a)[d]
        if u != 1 and u != dims[nd - na + d]:
            return False
    return True


cdef void _strides_into(cnp.ndarray a, int nd, Py_ssize_t* st) noexcept:
    """Element strides of ``a`` aligned right to ``nd`` axes, 0 where it broadcasts."""
    cdef int na, d, ad
    if a is None:
        for d in range(nd):
            st[d] = 0
        return
    na = cnp.PyArray_NDIM(a)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    for d in range(nd):
        ad = d - (nd - na)
        if ad < 0 or cnp.PyArray_DIMS(a)[ad] == 1:
            st[d] = 0
        else:
            st[d] = cnp.PyArray_STRIDES(a)[ad] // item


cdef Py_ssize_t _layout(int nd, const cnp.npy_intp* dims, Py_ssize_t* geo, cnp.ndarray A,
                        cnp.ndarray B, cnp.ndarray C) noexcept:
    """Fill the geometry buffer for operands A, B, C (None: a broadcast scalar) and
    collapse it; returns the number of axes left (>= 1)."""
    cdef int d, k, j
    cdef bint ok
    for d in range(nd):
        geo[d] = dims[d]
    _strides_into(A, nd, geo + MAXD)
    _strides_into(B, nd, geo + 2 * MAXD)
    _strides_into(C, nd, geo + 3 * MAXD)
    # drop size-1 axes; an empty shape is one axis of length 0
    j = 0
    for d in range(nd):
        if geo[d] == 0:
            j = 0
            break
        if geo[d] != 1:
            geo[j] = geo[d]
            for k in range(1, 4):
                geo[k * MAXD + j] = geo[k * MAXD + d]
            j += 1
    else:
        if j == 0:                       # a single element
            geo[0] = 1
            for k in range(1, 4):
                geo[k * MAXD] = 0
            return 1
    if j == 0:
        geo[0] = 0
        for k in range(1, 4):
            geo[k * MAXD] = 0
        return 1
    # merge axis d into the current axis j when it continues it for every operand
    nd = j
    j = 0
    for d in range(1, nd):
        ok = True
        for k in range(1, 4):
            if geo[k * MAXD + j] != geo[k * MAXD + d] * geo[d]:
                ok = False
                break
        if ok:
            geo[j] *= geo[d]
        else:
            j += 1
            geo[j] = geo[d]
        for k in range(1, 4):
            geo[k * MAXD + j] = geo[k * MAXD + d]
    return j + 1


cdef int _apart(cnp.ndarray out, cnp.ndarray a, str name) except -1:
    """``out`` (C-contiguous) may be the very buffer of input ``a`` (same shape, C order:
    in place) but must not otherwise share memory with it."""
    cdef char* pa = <char*>cnp.PyArray_DATA(a)
    cdef char* po = <char*>cnp.PyArray_DATA(out)
    cdef char* lo = pa
    cdef char* hi = pa + cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t span
    cdef int d
    if cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_SIZE(out) == 0:
        return 0
    for d in range(cnp.PyArray_NDIM(a)):
        span = (cnp.PyArray_DIMS(a)[d] - 1) * cnp.PyArray_STRIDES(a)[d]
        if span < 0:
            lo += span
        else:
            hi += span
    if lo < po + cnp.PyArray_NBYTES(out) and po < hi:
        if not (pa == po and good(a) and same_shape(a, out)):
            raise ValueError(f"out partly overlaps {name}; use the same array or a "
                             "separate buffer")
    return 0


cdef object _binary(const Kernel* k, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray out):
    """Launch ``k`` on X, Y broadcast together into out (None: allocated)."""
    cdef int t = ftype(X, "X")
    same_type(Y, t, "Y", X, "X")
    cdef cnp.npy_intp dims[MAXD]
    cdef int nd = _broadcast(X, Y, dims)
    X = _strided(X)
    Y = _strided(Y)
    out = out_like(out, t, nd, dims, "result")
    _apart(out, X, "X")
    _apart(out, Y, "Y")
    cdef Py_ssize_t geo[4 * MAXD]
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.a[1] = cnp.PyArray_DATA(Y)
    c.a[2] = c.a[0]
    c.a[3] = geo
    c.n[0] = _layout(nd, dims, geo, X, Y, None)
    c.s[0] = 0.0
    launch_side(k, &c, 3, 4 * MAXD * sizeof(Py_ssize_t))
    return out


cdef int _grad_args(cnp.ndarray G, str gname, cnp.ndarray A, str aname, cnp.ndarray B,
                    str bname, bint same) except -1:
    """Dtypes of a gradient op, and A (B) broadcasting to G's shape (``same``: equal to
    it); returns the type number."""
    cdef int t = ftype(G, gname)
    same_type(A, t, aname, G, gname)
    if B is not None:
        same_type(B, t, bname, G, gname)
    cdef int nd = cnp.PyArray_NDIM(G)
    for arg, name in ((A, aname), (B, bname)):
        if arg is None:
            continue
        if same and not same_shape(G, arg):
            raise ValueError(f"{gname} of shape {shape_of(G)} does not match {name} of "
                             f"shape {shape_of(arg)}")
        if not _fits(arg, nd, cnp.PyArray_DIMS(G)):
            raise ValueError(f"{gname} of shape {shape_of(G)} and {name} of shape "
                             f"{shape_of(arg)}: {name} does not broadcast to "
                             f"{gname}'s shape")
    return t


cdef object _gradient(const Kernel* k, int t, cnp.ndarray G, cnp.ndarray A, cnp.ndarray B,
                      cnp.ndarray out, double beta):
    """Launch ``k`` on (G, A[, B]) broadcast to G's shape (arguments validated by
    :func:`_grad_args`): out = f(G, A, B) + beta * out."""
    beta = out_beta(out, beta)
    cdef int nd = cnp.PyArray_NDIM(G), d
    cdef cnp.npy_intp dims[MAXD]
    for d in range(nd):
        dims[d] = cnp.PyArray_DIMS(G)[d]
    G = _strided(G)
    A = _strided(A)
    if B is not None:
        B = _strided(B)
    out = out_like(out, t, nd, dims, "gradient")
    _apart(out, G, "the gradient")
    _apart(out, A, "an input")
    if B is not None:
        _apart(out, B, "an input")
    cdef Py_ssize_t geo[4 * MAXD]
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(G)
    c.a[1] = cnp.PyArray_DATA(A)
    c.a[2] = cnp.PyArray_DATA(B) if B is not None else c.a[0]
    c.a[3] = geo
    c.n[0] = _layout(nd, dims, geo, G, A, B)
    c.s[0] = beta
    launch_side(k, &c, 3, 4 * MAXD * sizeof(Py_ssize_t))
    return out


cdef int _wrt(int wrt) except -1:
    if wrt != 0 and wrt != 1:
        raise ValueError(f"wrt must be 0 (X) or 1 (Y), got {wrt}")
    return 0


cdef object _unary_call(const Kernel* k, cnp.ndarray X, cnp.ndarray out, double p):
    cdef int t = ftype(X, "X")
    X = contig(X)
    out = out_like(out, t, cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), "result")
    same_or_apart(out, X, "out", "X")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.n[0] = cnp.PyArray_SIZE(X)
    c.s[0] = p
    launch(k, &c)
    return out


# ==================================================================================
# Python level: the kernels
# ==================================================================================
# ------------------------------------------------------------------ binary, broadcasting
def add(cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray out=None):
    """``X + Y`` with numpy broadcasting.

    Parameters
    ----------
    X, Y : ndarray
        float32 or float64 arrays of one dtype, any shapes numpy broadcasts together and
        any strides.
    out : ndarray, optional
        C-contiguous destination of the broadcast shape (it may be ``X`` or ``Y`` itself
        when that has the broadcast shape).

    Returns
    -------
    ndarray
        ``out``, or a new C-contiguous array.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Shapes that do not broadcast (naming both), a bad ``out``.
    """
    return _binary(&K_ADD, X, Y, out)


def sub(cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray out=None):
    """``X - Y`` with numpy broadcasting; arguments and exceptions as :func:`add`."""
    return _binary(&K_SUB, X, Y, out)


def mul(cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray out=None):
    """``X * Y`` with numpy broadcasting; arguments and exceptions as :func:`add`."""
    return _binary(&K_MUL, X, Y, out)


def div(cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray out=None):
    """``X / Y`` with numpy broadcasting (IEEE: x / 0 is +-inf, 0 / 0 is NaN, no
    warnings); arguments and exceptions as :func:`add`."""
    return _binary(&K_DIV, X, Y, out)


def maximum(cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray out=None):
    """``np.maximum(X, Y)`` with numpy broadcasting (a NaN on either side propagates);
    arguments and exceptions as :func:`add`."""
    return _binary(&K_MAXIMUM, X, Y, out)


def minimum(cnp.ndarray X not None, cnp.ndarray Y not None, cnp.ndarray out=None):
    """``np.minimum(X, Y)`` with numpy broadcasting (a NaN on either side propagates);
    arguments and exceptions as :func:`add`."""
    return _binary(&K_MINIMUM, X, Y, out)


def add_bias(cnp.ndarray X not None, cnp.ndarray b not None):
    """``X + b`` for ``X`` of shape (n, m) and a bias ``b`` of shape (m,).

    Returns
    -------
    ndarray
        A new (n, m) array.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Other shapes.
    """
    if not (cnp.PyArray_NDIM(X) == 2 and cnp.PyArray_NDIM(b) == 1
            and cnp.PyArray_DIMS(X)[1] == cnp.PyArray_DIMS(b)[0]):
        ftype(X, "X")
        same_type(b, cnp.PyArray_TYPE(X), "b", X, "X")
        raise ValueError(f"add_bias needs X (n, m) and b (m,), got {shape_of(X)} and "
                         f"{shape_of(b)}")
    return _binary(&K_ADD_BIAS, X, b, None)


def scale_by(cnp.ndarray X not None, cnp.ndarray s not None, cnp.ndarray out=None,
             double beta=0.0):
    """``out = X * s + beta * out`` with ``s`` a one-element array read by the kernel at
    run time (e.g. the upstream gradient of a scalar).

    Parameters
    ----------
    X : ndarray
        Any shape and strides.
    s : ndarray
        One element, the dtype of ``X``.
    out : ndarray, optional
        C-contiguous destination of X's shape.
    beta : float
        0.0 (overwrite) or 1.0 (accumulate into ``out``).

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        ``s`` not of size 1, a bad ``out`` or ``beta``.
    """
    cdef int t = ftype(X, "X")
    same_type(s, t, "s", X, "X")
    if cnp.PyArray_SIZE(s) != 1:
        raise ValueError(f"s must have exactly one element, got shape {shape_of(s)}")
    beta = out_beta(out, beta)
    s = contig(s)
    X = _strided(X)
    cdef int nd = cnp.PyArray_NDIM(X)
    out = out_like(out, t, nd, cnp.PyArray_DIMS(X), "result")
    _apart(out, X, "X")
    _apart(out, s, "s")
    cdef Py_ssize_t geo[4 * MAXD]
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.a[1] = cnp.PyArray_DATA(s)      # read at run time, stride 0
    c.a[2] = c.a[0]
    c.a[3] = geo
    c.n[0] = _layout(nd, cnp.PyArray_DIMS(X), geo, X, None, None)
    c.s[0] = beta
    launch_side(&K_SCALE_BY, &c, 3, 4 * MAXD * sizeof(Py_ssize_t))
    return out


# ------------------------------------------------------------------ binary gradients
def backprop_mul(cnp.ndarray dZ not None, cnp.ndarray Other not None, cnp.ndarray out=None,
                 double beta=0.0):
    """Gradient of ``Z = X * Other`` with respect to ``X`` at the broadcast shape:
    ``out = dZ * Other + beta * out``.

    Parameters
    ----------
    dZ : ndarray
        The upstream gradient (of Z's shape); any strides.
    Other : ndarray
        The other factor, broadcastable to ``dZ.shape``.
    out : ndarray, optional
        C-contiguous destination of dZ's shape.
    beta : float
        0.0 or 1.0.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        ``Other`` not broadcastable to dZ's shape, a bad ``out`` or ``beta``.
    """
    cdef int t = _grad_args(dZ, "dZ", Other, "Other", None, "", False)
    return _gradient(&K_BP_MUL, t, dZ, Other, None, out, beta)


def backprop_div(cnp.ndarray dZ not None, cnp.ndarray X not None, cnp.ndarray Y not None,
                 int wrt, cnp.ndarray out=None, double beta=0.0):
    """Gradient of ``Z = X / Y`` at the broadcast shape ``dZ.shape``: ``dZ / Y`` for
    ``wrt=0`` (X), ``-dZ * X / (Y * Y)`` for ``wrt=1`` (Y); plus ``beta * out``.

    Parameters
    ----------
    dZ : ndarray
        The upstream gradient.
    X, Y : ndarray
        The saved inputs, broadcastable to ``dZ.shape``.
    wrt : int
        0 or 1.
    out : ndarray, optional
        C-contiguous destination of dZ's shape.
    beta : float
        0.0 or 1.0.

    Returns
    -------
    ndarray
        ``out`` (sum it down to the input's shape with ``unbroadcast``).

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Inputs not broadcastable to dZ's shape, ``wrt`` not 0 or 1, a bad ``out``.
    """
    cdef int t = _grad_args(dZ, "dZ", X, "X", Y, "Y", False)
    _wrt(wrt)
    if wrt == 0:
        return _gradient(&K_BP_DIV_X, t, dZ, Y, None, out, beta)
    return _gradient(&K_BP_DIV_Y, t, dZ, X, Y, out, beta)


def backprop_maximum(cnp.ndarray dZ not None, cnp.ndarray X not None,
                     cnp.ndarray Y not None, int wrt, cnp.ndarray out=None,
                     double beta=0.0):
    """Gradient of ``Z = maximum(X, Y)`` at ``dZ.shape``: the gradient goes to the input
    that was chosen, ties (X == Y) split evenly: ``wrt=0``:
    ``dZ * ([X > Y] + 0.5 [X == Y])``, ``wrt=1``: ``dZ * ([Y > X] + 0.5 [X == Y])``;
    plus ``beta * out``. Arguments and exceptions as :func:`backprop_div`.
    """
    cdef int t = _grad_args(dZ, "dZ", X, "X", Y, "Y", False)
    _wrt(wrt)
    if wrt == 0:
        return _gradient(&K_BP_MAXIMUM, t, dZ, X, Y, out, beta)
    return _gradient(&K_BP_MAXIMUM, t, dZ, Y, X, out, beta)


def backprop_minimum(cnp.ndarray dZ not None, cnp.ndarray X not None,
                     cnp.ndarray Y not None, int wrt, cnp.ndarray out=None,
                     double beta=0.0):
    """Gradient of ``Z = minimum(X, Y)``: as :func:`backprop_maximum` with ``<``."""
    cdef int t = _grad_args(dZ, "dZ", X, "X", Y, "Y", False)
    _wrt(wrt)
    if wrt == 0:
        return _gradient(&K_BP_MINIMUM, t, dZ, X, Y, out, beta)
    return _gradient(&K_BP_MINIMUM, t, dZ, Y, X, out, beta)


# ------------------------------------------------------------------ unary
def exp(cnp.ndarray X not None, cnp.ndarray out=None):
    """``np.exp(X)`` (vectorised through libmvec where available; overflow gives inf).

    Parameters
    ----------
    X : ndarray
        float32 or float64, any shape and strides.
    out : ndarray, optional
        C-contiguous destination of X's shape (may be X itself).

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        A non-float ``X`` or an ``out`` of another dtype.
    ValueError
        A bad ``out``.
    """
    return _unary_call(&K_EXP, X, out, 0.0)


def log(cnp.ndarray X not None, cnp.ndarray out=None):
    """``np.log(X)``: log(0) = -inf, log(x < 0) = NaN, silently. Arguments as
    :func:`exp`."""
    return _unary_call(&K_LOG, X, out, 0.0)


def sqrt(cnp.ndarray X not None, cnp.ndarray out=None):
    """``np.sqrt(X)`` (NaN for x < 0, silently). Arguments as :func:`exp`."""
    return _unary_call(&K_SQRT, X, out, 0.0)


def power(cnp.ndarray X not None, double p, cnp.ndarray out=None):
    """``X ** p`` for a constant exponent: exact fast paths for p in {0, 1, 2, 3, 0.5,
    -1} (``x**0 == 1`` even for NaN, as numpy), ``pow`` (``powf`` for float32)
    otherwise. Arguments as :func:`exp`."""
    return _unary_call(&K_POWER, X, out, p)


# ------------------------------------------------------------------ unary gradients
def backprop_exp(cnp.ndarray dY not None, cnp.ndarray Y not None, cnp.ndarray out=None,
                 double beta=0.0):
    """Gradient of ``Y = exp(X)`` through its output: ``out = dY * Y + beta * out``.

    Parameters
    ----------
    dY : ndarray
        The upstream gradient.
    Y : ndarray
        The saved output, of dY's shape.
    out : ndarray, optional
        C-contiguous destination of dY's shape.
    beta : float
        0.0 or 1.0.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, a bad ``out`` or ``beta``.
    """
    cdef int t = _grad_args(dY, "dY", Y, "Y", None, "", True)
    return _gradient(&K_BP_EXP, t, dY, Y, None, out, beta)


def backprop_log(cnp.ndarray dY not None, cnp.ndarray X not None, cnp.ndarray out=None,
                 double beta=0.0):
    """Gradient of ``log(X)``: ``out = dY / X + beta * out`` (X the saved input).
    Arguments and exceptions as :func:`backprop_exp`."""
    cdef int t = _grad_args(dY, "dY", X, "X", None, "", True)
    return _gradient(&K_BP_LOG, t, dY, X, None, out, beta)


def backprop_sqrt(cnp.ndarray dY not None, cnp.ndarray Y not None, cnp.ndarray out=None,
                  double beta=0.0):
    """Gradient of ``Y = sqrt(X)`` through its output: ``out = dY * 0.5 / Y + beta * out``.
    Arguments and exceptions as :func:`backprop_exp`."""
    cdef int t = _grad_args(dY, "dY", Y, "Y", None, "", True)
    return _gradient(&K_BP_SQRT, t, dY, Y, None, out, beta)


def backprop_power(cnp.ndarray dY not None, cnp.ndarray X not None, double p,
                   cnp.ndarray out=None, double beta=0.0):
    """Gradient of ``X ** p``: ``out = dY * p * X**(p - 1) + beta * out`` (X the saved
    input); p == 0 gives 0 everywhere and p == 1 gives dY exactly. Arguments and
    exceptions as :func:`backprop_exp`."""
    cdef int t = _grad_args(dY, "dY", X, "X", None, "", True)
    beta = out_beta(out, beta)
    dY = contig(dY)
    X = contig(X)
    out = out_like(out, t, cnp.PyArray_NDIM(dY), cnp.PyArray_DIMS(dY), "gradient")
    same_or_apart(out, dY, "out", "dY")
    same_or_apart(out, X, "out", "X")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(dY)
    c.a[1] = cnp.PyArray_DATA(X)
    c.n[0] = cnp.PyArray_SIZE(dY)
    c.s[0] = beta
    c.s[1] = p
    launch(&K_BP_POWER, &c)
    return out
