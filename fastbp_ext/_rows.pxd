# cython: language_level=3
"""Row-sparse loops shared by ``_embedding`` (scatter_add_rows, coalesce_rows) and
``_optim`` (sgd_update_rows, adam_update_rows): ``inline``, compiled into each module
that cimports them. All pointers are to C-contiguous row-major data; ids are validated
by the Python wrappers (:c:func:`rows_values`) before any of these loops runs.
"""

cimport numpy as cnp
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t

from fastbp_ext._common cimport (
    floating, index_t, ftype, same_type, writable, dim, shape_of, check_ids,
)


cdef extern from *:
    void __builtin_prefetch(const void* addr, int rw, int locality) nogil

# Rows of a large table are read at random: the hardware prefetcher streams within a row
# but cannot guess the next one, so the row ROW_AHEAD positions on is prefetched.
cdef enum:
    ROW_AHEAD = 4


cdef inline void prefetch_row(const void* p, Py_ssize_t nbytes, int write) noexcept nogil:
    cdef Py_ssize_t off = 0
    while off < nbytes:
        if write:
            __builtin_prefetch(<const char*>p + off, 1, 3)
        else:
            __builtin_prefetch(<const char*>p + off, 0, 3)
        off += 64


cdef inline void scatter_add(Py_ssize_t n, Py_ssize_t d, floating alpha,
                             const index_t* rows,     # IN  (n,), validated
                             const floating* values,  # IN  (n, d)
                             floating* out,           # OUT (V, d), out[rows[i]] += alpha values[i]
                             ) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating* o
    cdef const floating* v
    for i in range(n):  # serial: repeated rows must add up
        if i + ROW_AHEAD < n:
            prefetch_row(out + <Py_ssize_t>rows[i + ROW_AHEAD] * d, d * sizeof(floating), 1)
        o = out + <Py_ssize_t>rows[i] * d
        v = values + i * d
        for j in range(d):
            o[j] = o[j] + alpha * v[j]


cdef inline uint64_t _hash(uint64_t k) noexcept nogil:
    k ^= k >> 33
    k *= 0xff51afd7ed558ccdULL
    k ^= k >> 33
    return k


cdef inline Py_ssize_t coalesce_index(Py_ssize_t n,
                                      const index_t* rows,     # IN  (n,)
                                      Py_ssize_t* slot_out,    # OUT (n,) distinct-row number
                                      cnp.int64_t* uniq_out,   # OUT (<= n,) first-seen order
                                      ) noexcept nogil:
    """Number the distinct rows in order of first appearance with an open-addressing
    hash table of O(n) size (independent of the table size V). Returns the number of
    distinct rows, or -1 if out of memory."""
    cdef Py_ssize_t cap = 16, i, h, u = 0
    cdef cnp.int64_t key
    while cap < 2 * n:
        cap <<= 1
    cdef Py_ssize_t* table = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
    if table == NULL:
        return -1
    for i in range(cap):
        table[i] = -1
    for i in range(n):
        key = rows[i]
        h = <Py_ssize_t>(_hash(<uint64_t>key) & <uint64_t>(cap - 1))
        while table[h] != -1 and uniq_out[table[h]] != key:
            h = (h + 1) & (cap - 1)
        if table[h] == -1:
            table[h] = u
            uniq_out[u] = key
            u += 1
        slot_out[i] = table[h]
    free(table)
    return u


cdef inline Py_ssize_t coalesce_ids(Py_ssize_t n, const void* rows, bint i32,  # IN  (n,)
                                    Py_ssize_t* slot_out,    # OUT (n,)
                                    cnp.int64_t* uniq_out,   # OUT (<= n,)
                                    ) noexcept nogil:
    """:c:func:`coalesce_index` for int32 (``i32``) or int64 ids behind a void pointer."""
    if i32:
        return coalesce_index(n, <const cnp.int32_t*>rows, slot_out, uniq_out)
    return coalesce_index(n, <const cnp.int64_t*>rows, slot_out, uniq_out)


cdef inline void sum_into_slots(Py_ssize_t n, Py_ssize_t d,
                                const Py_ssize_t* slot,   # IN  (n,)
                                const floating* values,   # IN  (n, d)
                                floating* out,            # OUT (u, d), zero on entry
                                ) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating* o
    for i in range(n):
        o = out + slot[i] * d
        for j in range(d):
            o[j] = o[j] + values[i * d + j]


cdef inline Py_ssize_t rows_values(cnp.ndarray table, cnp.ndarray I, cnp.ndarray values,
                                   str tname) except -1:
    """Check a (V, d) table written in place against rows/values; returns n."""
    cdef int t = ftype(table, tname)
    same_type(values, t, "values", table, tname)
    if cnp.PyArray_NDIM(table) != 2:
        raise ValueError(f"{tname} must be a 2-D (V, d) table, got shape {shape_of(table)}")
    writable(table, tname)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(I), d = dim(table, 1)
    cdef int ndv = cnp.PyArray_NDIM(values)
    if not ((ndv == 2 and dim(values, 0) == n and dim(values, 1) == d) or
            (ndv == cnp.PyArray_NDIM(I) + 1 and shape_of(values) == shape_of(I) + (d,))):
        raise ValueError(
            f"values of shape {shape_of(values)} do not match {n} rows of width {d} "
            f"(rows of shape {shape_of(I)})")
    check_ids(I, dim(table, 0), "row")
    return n
