# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py.
"""Kernels of fastbp: in-place optimiser steps: sgd_update, sgd_update_rows, adam_update, adam_update_rows.

Each kernel is a C-level entry point ``k_<name>(floating* out, Call* c)`` (see
``_common.pxd``) and a Python wrapper that validates its arguments and launches it;
``out`` is the parameter updated in place.
"""

cimport numpy as cnp
from libc.string cimport memset
from cython.parallel cimport prange
from libc.math cimport sqrt, pow
from libc.stdlib cimport malloc, calloc, free

from fastbp_ext._common cimport (
    floating, Call, Kernel, launch, call_dtype, KERR_NOMEM,
    dim, same_shape, shape_of, ftype, same_type, contig, writable, overlap, same_or_apart,
    index_array, threads_for, PAR_TRANSC, PAR_ARITH,
)
from fastbp_ext._simd cimport fastbp_sgd_f, fastbp_sgd_d
from fastbp_ext._rows cimport (
    scatter_add, coalesce_ids, sum_into_slots, rows_values, prefetch_row, ROW_AHEAD,
)

import numpy as np

cnp.import_array()

__all__ = ["sgd_update", "sgd_update_rows", "adam_update", "adam_update_rows"]


# ==================================================================================
# Layer 2: nogil loops
# ==================================================================================
cdef void sgd_loop(Py_ssize_t lo, Py_ssize_t hi, floating lr,
                   const floating* g,      # IN  gradient
                   floating* W,            # OUT W -= lr g
                   ) noexcept nogil:
    if floating is float:
        fastbp_sgd_f(W + lo, g + lo, lr, hi - lo)
    else:
        fastbp_sgd_d(W + lo, g + lo, lr, hi - lo)


cdef void sgd_par(Py_ssize_t n, floating lr, const floating* g, floating* W) noexcept nogil:
    cdef int nt = threads_for(n * sizeof(floating), PAR_ARITH)
    cdef Py_ssize_t c, lo, hi, chunk
    if nt == 1:
        sgd_loop(0, n, lr, g, W)
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        if lo < hi:
            sgd_loop(lo, hi, lr, g, W)


cdef void adam_loop(Py_ssize_t n,
                    floating* W,             # OUT (n,) updated in place
                    const floating* g,       # IN  (n,)
                    floating* m,             # OUT (n,) first moment
                    floating* v,             # OUT (n,) second moment
                    floating b1, floating one_minus_b1, floating b2, floating one_minus_b2,
                    floating lr_t, floating eps_t) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating mi, vi
    for i in range(n):
        mi = m[i] * b1 + one_minus_b1 * g[i]
        vi = v[i] * b2 + one_minus_b2 * g[i] * g[i]
        m[i] = mi
        v[i] = vi
        if floating is float:
            W[i] = W[i] - lr_t * mi / (<float>sqrt(vi) + eps_t)
        else:
            W[i] = W[i] - lr_t * mi / (sqrt(vi) + eps_t)


cdef void adam_par(Py_ssize_t n, floating* W, const floating* g, floating* m, floating* v,
                   floating b1, floating omb1, floating b2, floating omb2,
                   floating lr_t, floating eps_t) noexcept nogil:
    cdef int nt = threads_for(n * sizeof(floating), PAR_TRANSC)
    cdef Py_ssize_t c, lo, chunk
    if nt == 1:
        adam_loop(n, W, g, m, v, b1, omb1, b2, omb2, lr_t, eps_t)
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        if lo < n:
            adam_loop((chunk if lo + chunk <= n else n - lo), W + lo, g + lo, m + lo, v + lo,
                      b1, omb1, b2, omb2, lr_t, eps_t)


# ==================================================================================
# C-level entry points (out: the parameter, updated in place)
# ==================================================================================
cdef int k_sgd_update(floating* out, Call* c) noexcept nogil:
    # a: dW; n: size; s: lr
    sgd_par(c.n[0], <floating>c.s[0], <floating*>c.a[0], out)
    return 0


cdef int k_sgd_update_rows(floating* out, Call* c) noexcept nogil:
    # a: rows (n,), values (n, d); n: n, d, rows are int32; s: lr
    cdef floating alpha = <floating>(-c.s[0])
    if c.n[2]:
        scatter_add(c.n[0], c.n[1], alpha, <cnp.int32_t*>c.a[0], <floating*>c.a[1], out)
    else:
        scatter_add(c.n[0], c.n[1], alpha, <cnp.int64_t*>c.a[0], <floating*>c.a[1], out)
    return 0


cdef inline cnp.int64_t _adam_t(Call* c, int slot, double* lr_t, double* eps_t) noexcept nogil:
    """The step number of this Adam update and its bias-corrected lr and eps. The step
    is read at run time from the int64 counter in ``c.a[slot]`` (this update's number is
    the counter + 1; the caller stores it back once the update is done), or is the
    constant ``c.n[4]`` when there is no counter."""
    cdef cnp.int64_t t
    if c.a[slot] != NULL:
        t = (<cnp.int64_t*>c.a[slot])[0] + 1
    else:
        t = c.n[4]
    cdef double c2 = sqrt(1 - pow(c.s[1], <double>t))
    lr_t[0] = c.s[2] * c2 / (1 - pow(c.s[0], <double>t))
    eps_t[0] = c.s[3] * c2
    return t


cdef inline void _adam_done(Call* c, int slot, cnp.int64_t t) noexcept nogil:
    if c.a[slot] != NULL:
        (<cnp.int64_t*>c.a[slot])[0] = t


cdef int k_adam_update(floating* out, Call* c) noexcept nogil:
    # a: dW, m, v, step counter (int64, or NULL); n: size, -, -, -, step if no counter;
    # s: beta1, beta2, lr, eps
    cdef double b1 = c.s[0], b2 = c.s[1], lr_t, eps_t
    cdef cnp.int64_t t = _adam_t(c, 3, &lr_t, &eps_t)
    adam_par(c.n[0], out, <floating*>c.a[0], <floating*>c.a[1], <floating*>c.a[2],
             <floating>b1, <floating>(1 - b1), <floating>b2, <floating>(1 - b2),
             <floating>lr_t, <floating>eps_t)
    _adam_done(c, 3, t)
    return 0


cdef int k_adam_update_rows(floating* out, Call* c) noexcept nogil:
    # a: rows (n,), values (n, d), m, v, step counter (or NULL); n: n, d, rows are int32,
    # -, step if no counter; s: as k_adam_update.
    # Lazy Adam: sum the values of repeated rows (hash table, O(n) scratch), then update
    # only those rows of W, m and v.
    cdef Py_ssize_t n = c.n[0], d = c.n[1], u, k, r
    cdef double b1 = c.s[0], b2 = c.s[1], lr_t, eps_t
    cdef cnp.int64_t t = _adam_t(c, 4, &lr_t, &eps_t)
    cdef floating* m = <floating*>c.a[2]
    cdef floating* v = <floating*>c.a[3]
    cdef floating* G
    cdef Py_ssize_t nn = n if n > 0 else 1
    cdef Py_ssize_t* slot = <Py_ssize_t*>malloc(nn * sizeof(Py_ssize_t))
    cdef cnp.int64_t* uniq = <cnp.int64_t*>malloc(nn * sizeof(cnp.int64_t))
    if slot == NULL or uniq == NULL:
        free(slot)
        free(uniq)
        return KERR_NOMEM
    u = coalesce_ids(n, c.a[0], <bint>c.n[2], slot, uniq)
    G = NULL
    if u >= 0:
        G = <floating*>calloc(u * d if u * d > 0 else 1, sizeof(floating))
    if G == NULL:
        free(slot)
        free(uniq)
        return KERR_NOMEM
    sum_into_slots(n, d, slot, <floating*>c.a[1], G)
    for k in range(u):
        if k + ROW_AHEAD < u:  # the rows of W, m and v are read at random: fetch ahead
            r = <Py_ssize_t>uniq[k + ROW_AHEAD] * d
            prefetch_row(out + r, d * sizeof(floating), 1)
            prefetch_row(m + r, d * sizeof(floating), 1)
            prefetch_row(v + r, d * sizeof(floating), 1)
        r = <Py_ssize_t>uniq[k] * d
        adam_loop(d, out + r, G + k * d, m + r, v + r, <floating>b1, <floating>(1 - b1),
                  <floating>b2, <floating>(1 - b2), <floating>lr_t, <floating>eps_t)
    free(G)
    free(slot)
    free(uniq)
    _adam_done(c, 4, t)
    return 0


cdef Kernel K_SGD_UPDATE = Kernel(b"sgd_update", k_sgd_update[float], k_sgd_update[double])
cdef Kernel K_SGD_UPDATE_ROWS = Kernel(
    b"sgd_update_rows", k_sgd_update_rows[float], k_sgd_update_rows[double])
cdef Kernel K_ADAM_UPDATE = Kernel(b"adam_update", k_adam_update[float], k_adam_update[double])
cdef Kernel K_ADAM_UPDATE_ROWS = Kernel(
    b"adam_update_rows", k_adam_update_rows[float], k_adam_update_rows[double])


# ==================================================================================
# Python wrappers
# ==================================================================================
cdef int _param_and_grad(cnp.ndarray W, cnp.ndarray dW, str wname, str gname) except -1:
    cdef int t = ftype(W, wname)
    same_type(dW, t, gname, W, wname)
    if not same_shape(W, dW):
        raise ValueError(f"{gname} of shape {shape_of(dW)} does not match {wname} of shape {shape_of(W)}")
    writable(W, wname)
    same_or_apart(W, dW, wname, gname)
    return t


cdef int _distinct_state(cnp.ndarray W, cnp.ndarray m, cnp.ndarray v) except -1:
    if overlap(W, m) or overlap(W, v) or overlap(m, v):
        raise ValueError("Adam needs three separate buffers for W, m and v")
    return 0


cdef int _adam_consts(Call* c, int slot, double lr, double beta1, double beta2,
                      double eps, step) except -1:
    """The call constants of an Adam step (beta1, beta2, lr, eps) and its step: a Python
    int (this update's number, from 1) or a 1-element int64 counter array, incremented
    by the kernel (the update's number is the counter + 1), so that a replayed call of
    a compiled step plan counts its own steps."""
    cdef cnp.ndarray cnt
    c.s[0] = beta1
    c.s[1] = beta2
    c.s[2] = lr
    c.s[3] = eps
    if cnp.PyArray_Check(step):
        cnt = <cnp.ndarray>step
        if (cnp.PyArray_TYPE(cnt) != cnp.NPY_INT64 or cnp.PyArray_SIZE(cnt) != 1
                or not cnp.PyArray_ISCARRAY(cnt) or not cnp.PyArray_ISNOTSWAPPED(cnt)):
            raise TypeError("an Adam step counter must be a writeable 1-element int64 "
                            f"array, got dtype {cnt.dtype} and shape {shape_of(cnt)}")
        if (<cnp.int64_t*>cnp.PyArray_DATA(cnt))[0] < 0:
            raise ValueError(f"Adam step counter must be >= 0, got {int(cnt.reshape(-1)[0])}")
        c.a[slot] = cnp.PyArray_DATA(cnt)
        c.n[4] = 0
        return 0
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"Adam step must be an int or an int64 counter array, got {step!r}")
    if step < 1:
        raise ValueError(f"Adam step counts from 1, got {step}")
    c.a[slot] = NULL
    c.n[4] = step
    return 0


def sgd_update(cnp.ndarray W not None, cnp.ndarray dW not None, double lr):
    """In place ``W -= lr * dW`` (an axpy with ``alpha = -lr``).

    One pass (SSE2/AVX2/AVX-512 clones picked at load time). It is a loop of ours rather
    than BLAS ``axpy`` so that its threading follows this module's OpenMP threshold:
    OpenBLAS wakes its own thread pool for axpy from ~10k elements, which on a busy
    2-core machine cost up to milliseconds per call in the training step; single-threaded
    it is also ~10% faster than OpenBLAS's saxpy at 50k elements.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, ``W`` not writeable/C-contiguous.
    """
    cdef int t = _param_and_grad(W, dW, "W", "dW")
    dW = contig(dW)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(W)
    c.a[0] = cnp.PyArray_DATA(dW)
    c.n[0] = cnp.PyArray_SIZE(W)
    c.s[0] = lr
    launch(&K_SGD_UPDATE, &c)


def sgd_update_rows(cnp.ndarray W not None, rows, cnp.ndarray values not None, double lr):
    """Row-sparse SGD ``W[rows[i]] -= lr * values[i]`` in place (repeated rows summed).

    Raises
    ------
    TypeError, ValueError, IndexError
        As :func:`scatter_add_rows`.
    """
    cdef cnp.ndarray I = index_array(rows, "rows")
    cdef Py_ssize_t n = rows_values(W, I, values, "W")
    values = contig(values)
    if overlap(W, values):  # rows may repeat: read a snapshot of the values
        values = values.copy()
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(cnp.PyArray_TYPE(W))
    c.out = cnp.PyArray_DATA(W)
    c.a[0] = cnp.PyArray_DATA(I)
    c.a[1] = cnp.PyArray_DATA(values)
    c.n[0] = n
    c.n[1] = dim(W, 1)
    c.n[2] = cnp.PyArray_TYPE(I) == cnp.NPY_INT32
    c.s[0] = lr
    launch(&K_SGD_UPDATE_ROWS, &c)


def adam_update(cnp.ndarray W not None, cnp.ndarray dW not None, cnp.ndarray m not None,
                cnp.ndarray v not None, double lr, double beta1, double beta2, double eps,
                step):
    """In-place Adam step with bias correction, one fused pass over ``W``, ``dW``, ``m``
    and ``v``.

    ``step`` is this update's number (an int, from 1) or a 1-element int64 counter array
    that the kernel increments (the update's number is its value + 1); the optimiser
    passes its counter, so that a compiled step plan replaying the call counts steps.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Different shapes, state arrays not writeable/C-contiguous, ``step < 1``.
    """
    cdef int t = _param_and_grad(W, dW, "W", "dW")
    _param_and_grad(m, dW, "m", "dW")
    _param_and_grad(v, dW, "v", "dW")
    _distinct_state(W, m, v)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    _adam_consts(&c, 3, lr, beta1, beta2, eps, step)
    dW = contig(dW)
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(W)
    c.a[0] = cnp.PyArray_DATA(dW)
    c.a[1] = cnp.PyArray_DATA(m)
    c.a[2] = cnp.PyArray_DATA(v)
    c.n[0] = cnp.PyArray_SIZE(W)
    launch(&K_ADAM_UPDATE, &c)


def adam_update_rows(cnp.ndarray W not None, rows, cnp.ndarray values not None,
                     cnp.ndarray m not None, cnp.ndarray v not None, double lr, double beta1,
                     double beta2, double eps, step):
    """Lazy (row-sparse) Adam, as ``torch.optim.SparseAdam``: repeated rows are summed
    (hash table, O(rows)), then only those rows of ``W``, ``m`` and ``v`` are updated.

    Raises
    ------
    TypeError
        Non-float/mixed dtypes, non-integer rows.
    ValueError
        Shapes that do not match, state not writeable/C-contiguous, ``step < 1``.
    IndexError
        A row outside ``[0, V)`` (nothing is written then).
    """
    cdef cnp.ndarray I = index_array(rows, "rows")
    cdef Py_ssize_t n = rows_values(W, I, values, "W")
    cdef int t = cnp.PyArray_TYPE(W)
    for arr, name in ((m, "m"), (v, "v")):
        same_type(arr, t, name, W, "W")
        if not same_shape(arr, W):
            raise ValueError(f"{name} of shape {shape_of(arr)} does not match W of shape {shape_of(W)}")
        writable(arr, name)
    _distinct_state(W, m, v)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    _adam_consts(&c, 4, lr, beta1, beta2, eps, step)
    values = contig(values)
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(W)
    c.a[0] = cnp.PyArray_DATA(I)
    c.a[1] = cnp.PyArray_DATA(values)
    c.a[2] = cnp.PyArray_DATA(m)
    c.a[3] = cnp.PyArray_DATA(v)
    c.n[0] = n
    c.n[1] = dim(W, 1)
    c.n[2] = cnp.PyArray_TYPE(I) == cnp.NPY_INT32
    launch(&K_ADAM_UPDATE_ROWS, &c)
