# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py.
"""Kernels of fastbp: embedding lookups and row scatters: embedding, scatter_add_rows, coalesce_rows.

Each kernel is a C-level entry point ``k_<name>(floating* out, Call* c)`` (see
``_common.pxd``) and a Python wrapper that validates its arguments and launches it. The
id type (int32 or int64) is a flag in ``c.n``; the entry point branches to a helper
written once for the fused ``index_t``.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from fastbp_ext._common cimport (
    floating, index_t, Call, Kernel, launch, call_dtype, KERR_NOMEM, active_recording,
    dim, shape_of, ftype, overlap, contig, index_array, check_ids,
    threads_for, PAR_COPY,
)
from fastbp_ext._rows cimport scatter_add, coalesce_ids, sum_into_slots, rows_values

import numpy as np

cnp.import_array()

__all__ = ["embedding", "scatter_add_rows", "coalesce_rows"]


# ==================================================================================
# Layer 2: nogil loops
# ==================================================================================
cdef void gather_rows(Py_ssize_t n, Py_ssize_t d,
                      const floating* E,    # IN  (V, d)
                      const index_t* ids,   # IN  (n,), validated
                      floating* out,        # OUT (n, d)
                      ) noexcept nogil:
    cdef Py_ssize_t i, c, lo, hi, chunk
    cdef int nt = threads_for(n * d * sizeof(floating), PAR_COPY)
    if nt == 1 or n < nt:
        for i in range(n):
            memcpy(out + i * d, E + <Py_ssize_t>ids[i] * d, d * sizeof(floating))
        return
    chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        for i in range(lo, hi):
            memcpy(out + i * d, E + <Py_ssize_t>ids[i] * d, d * sizeof(floating))


# ==================================================================================
# C-level entry points
# ==================================================================================
cdef int k_embedding(floating* out, Call* c) noexcept nogil:
    # a: E (V, d), ids (n,); n: n, d, ids are int32
    if c.n[2]:
        gather_rows(c.n[0], c.n[1], <floating*>c.a[0], <cnp.int32_t*>c.a[1], out)
    else:
        gather_rows(c.n[0], c.n[1], <floating*>c.a[0], <cnp.int64_t*>c.a[1], out)
    return 0


cdef int k_scatter_add_rows(floating* out, Call* c) noexcept nogil:
    # out: (V, d) table; a: rows (n,), values (n, d); n: n, d, rows are int32; s: alpha
    cdef floating alpha = <floating>c.s[0]
    if c.n[2]:
        scatter_add(c.n[0], c.n[1], alpha, <cnp.int32_t*>c.a[0], <floating*>c.a[1], out)
    else:
        scatter_add(c.n[0], c.n[1], alpha, <cnp.int64_t*>c.a[0], <floating*>c.a[1], out)
    return 0


cdef int k_coalesce_rows(floating* out, Call* c) noexcept nogil:
    # out: (>= u, d) summed values (written: the first u rows); a: rows (n,),
    # values (n, d), unique rows (n,) int64 (written: the first u), Py_ssize_t* u (written);
    # n: n, d, rows are int32
    cdef Py_ssize_t n = c.n[0], d = c.n[1], u
    cdef Py_ssize_t* slot = <Py_ssize_t*>malloc((n if n > 0 else 1) * sizeof(Py_ssize_t))
    if slot == NULL:
        return KERR_NOMEM
    u = coalesce_ids(n, c.a[0], <bint>c.n[2], slot, <cnp.int64_t*>c.a[2])
    if u < 0:
        free(slot)
        return KERR_NOMEM
    memset(out, 0, u * d * sizeof(floating))
    sum_into_slots(n, d, slot, <floating*>c.a[1], out)
    free(slot)
    (<Py_ssize_t*>c.a[3])[0] = u
    return 0


cdef Kernel K_EMBEDDING = Kernel(b"embedding", k_embedding[float], k_embedding[double])
cdef Kernel K_SCATTER_ADD_ROWS = Kernel(
    b"scatter_add_rows", k_scatter_add_rows[float], k_scatter_add_rows[double])
cdef Kernel K_COALESCE_ROWS = Kernel(
    b"coalesce_rows", k_coalesce_rows[float], k_coalesce_rows[double])


# ==================================================================================
# Python wrappers
# ==================================================================================
def embedding(cnp.ndarray E not None, ids):
    """Gather and concatenate window rows: ``(B, w)`` ids -> ``(B, w * d)`` (``(n,)`` ids
    -> ``(n, d)``).

    Parameters
    ----------
    E : ndarray
        (V, d) table, float32 or float64.
    ids : ndarray
        1-D or 2-D array of any integer dtype.

    Returns
    -------
    ndarray
        A new array of the gathered rows.

    Raises
    ------
    TypeError
        Non-float table or non-integer ids.
    ValueError
        ``E`` not 2-D or ``ids`` not 1-D/2-D.
    IndexError
        An id outside ``[0, V)`` (named in the message).
    """
    cdef int t = ftype(E, "E")
    cdef cnp.ndarray I = index_array(ids, "ids")
    if cnp.PyArray_NDIM(E) != 2:
        raise ValueError(f"embedding table must be 2-D (V, d), got shape {shape_of(E)}")
    cdef int ndi = cnp.PyArray_NDIM(I)
    if ndi != 1 and ndi != 2:
        raise ValueError(f"ids must be 1-D (n,) or 2-D (B, w), got shape {shape_of(I)}")
    E = contig(E)
    cdef Py_ssize_t V = dim(E, 0), d = dim(E, 1)
    check_ids(I, V, "id")
    cdef cnp.npy_intp dims[2]
    dims[0] = dim(I, 0)
    dims[1] = (dim(I, 1) if ndi == 2 else 1) * d
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(E)
    c.a[1] = cnp.PyArray_DATA(I)
    c.n[0] = cnp.PyArray_SIZE(I)
    c.n[1] = d
    c.n[2] = cnp.PyArray_TYPE(I) == cnp.NPY_INT32
    launch(&K_EMBEDDING, &c)
    return out


def scatter_add_rows(cnp.ndarray out not None, rows, cnp.ndarray values not None,
                     double alpha=1.0):
    """``out[rows[i]] += alpha * values[i]`` in place, repeated rows summed: the adjoint of
    :func:`embedding` and, with ``alpha = -lr``, the row-sparse SGD update.

    Parameters
    ----------
    out : ndarray
        (V, d) table, C-contiguous and writeable.
    rows : ndarray
        Integer ids of any shape, each in ``[0, V)``.
    values : ndarray
        ``(rows.size, d)`` or ``rows.shape + (d,)``, the dtype of ``out``.
    alpha : float
        Scale of the values.

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float/mixed dtypes, non-integer rows.
    ValueError
        Shapes that do not match, a non-writeable or non-contiguous ``out``.
    IndexError
        A row outside ``[0, V)`` (nothing is written then).
    """
    cdef cnp.ndarray I = index_array(rows, "rows")
    cdef Py_ssize_t n = rows_values(out, I, values, "out")
    values = contig(values)
    if overlap(out, values):  # rows may repeat: read a snapshot of the values
        values = values.copy()
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(cnp.PyArray_TYPE(out))
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(I)
    c.a[1] = cnp.PyArray_DATA(values)
    c.n[0] = n
    c.n[1] = dim(out, 1)
    c.n[2] = cnp.PyArray_TYPE(I) == cnp.NPY_INT32
    c.s[0] = alpha
    launch(&K_SCATTER_ADD_ROWS, &c)
    return out


def coalesce_rows(rows, cnp.ndarray values not None):
    """Sum the values of repeated rows with a hash table sized by the number of rows (the
    cost never depends on the table size V).

    Parameters
    ----------
    rows : ndarray
        Integer ids, any shape with ``rows.size`` entries.
    values : ndarray
        ``(rows.size, d)`` (or ``rows.shape + (d,)``) float32/float64 values.

    Returns
    -------
    unique_rows : ndarray
        intp, the distinct rows in order of first appearance.
    summed : ndarray
        ``(unique_rows.size, d)`` sums of their values.

    Raises
    ------
    TypeError
        Non-integer rows or non-float values.
    ValueError
        ``values`` not matching ``rows``.
    """
    if active_recording() != NULL:
        raise RuntimeError("coalesce_rows cannot be part of a compiled step: the number of "
                           "distinct rows, and so its output shape, depends on the values")
    cdef cnp.ndarray I = index_array(rows, "rows")
    cdef int t = ftype(values, "values")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(I)
    cdef int ndv = cnp.PyArray_NDIM(values)
    if ndv < 1 or not ((ndv == 2 and dim(values, 0) == n) or
                       (ndv == cnp.PyArray_NDIM(I) + 1 and
                        shape_of(values)[:ndv - 1] == shape_of(I))):
        raise ValueError(f"values of shape {shape_of(values)} do not match rows of shape {shape_of(I)}")
    values = contig(values)
    cdef Py_ssize_t d = dim(values, ndv - 1), u = 0
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = d
    cdef cnp.ndarray uniq = <cnp.ndarray>cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT64, 0)
    cdef cnp.ndarray summed = <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(summed)
    c.a[0] = cnp.PyArray_DATA(I)
    c.a[1] = cnp.PyArray_DATA(values)
    c.a[2] = cnp.PyArray_DATA(uniq)
    c.a[3] = &u
    c.n[0] = n
    c.n[1] = d
    c.n[2] = cnp.PyArray_TYPE(I) == cnp.NPY_INT32
    launch(&K_COALESCE_ROWS, &c)
    cdef cnp.PyArray_Dims shape
    if u < n:  # shrink in place to the distinct rows (a fresh array: no other reference)
        dims[0] = u
        shape.ptr = dims
        shape.len = 2
        cnp.PyArray_Resize(summed, &shape, 0, cnp.NPY_CORDER)
    return uniq[:u].astype(np.intp, copy=False), summed
