# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py.
"""Kernels of fastbp that draw random numbers: dropout masks from a counter-based
generator, drawn inside the kernel.

The generator (:class:`fastbp.Generator`) is a (2,) uint64 array ``[key, counter]``; the
stream and the mask rule are documented in ``_random.h``. The kernel reads the state
through a pointer in ``Call.a`` and advances the counter in place, so a kernel call
replayed from a compiled step plan draws a fresh mask every time, and two backends or
two runs seeded alike draw the same masks. Each kernel is a C-level entry point
``k_<name>(floating* out, Call* c)`` (see ``_common.pxd``) and a Python wrapper that
validates its arguments and launches it.
"""

cimport numpy as cnp
from libc.string cimport memset
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint64_t

from fastbp_ext._common cimport (
    floating, Call, Kernel, launch, call_dtype, ftype, contig, shape_of, threads_for,
    PAR_TRANSC,
)

import numpy as np

cnp.import_array()

__all__ = ["dropout_forward", "dropout_mask_gen"]


cdef extern from "_random.h" nogil:
    uint64_t fastbp_claim(uint64_t* counter, uint64_t n)
    void fastbp_dropout_f(uint64_t key, uint64_t ctr0, uint64_t thr, float scale,
                          const float* x, float* y, float* mask,
                          Py_ssize_t lo, Py_ssize_t hi)
    void fastbp_dropout_d(uint64_t key, uint64_t ctr0, uint64_t thr, double scale,
                          const double* x, double* y, double* mask,
                          Py_ssize_t lo, Py_ssize_t hi)


# ==================================================================================
# nogil loop
# ==================================================================================
cdef void dropout_range(uint64_t key, uint64_t ctr0, uint64_t thr, floating scale,
                        const floating* x, floating* y, floating* mask,
                        Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    if floating is float:
        fastbp_dropout_f(key, ctr0, thr, scale, x, y, mask, lo, hi)
    else:
        fastbp_dropout_d(key, ctr0, thr, scale, x, y, mask, lo, hi)


cdef void dropout_par(uint64_t* state, double rate, Py_ssize_t n,
                      const floating* x,   # IN  (NULL: mask only)
                      floating* y,         # OUT y = x * mask (unused when x is NULL)
                      floating* mask,      # OUT 0 or 1/(1-rate)
                      ) noexcept nogil:
    cdef uint64_t thr = <uint64_t>ceil(rate * 4294967296.0)   # rate * 2^32 is exact
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    cdef uint64_t key = state[0]
    cdef uint64_t ctr0 = fastbp_claim(&state[1], <uint64_t>((n + 1) // 2))
    # hashing costs about what a tanh does per element
    cdef int nt = threads_for(n * sizeof(floating), PAR_TRANSC)
    cdef Py_ssize_t c, lo, hi, chunk
    if nt == 1:
        dropout_range(key, ctr0, thr, scale, x, y, mask, 0, n)
        return
    chunk = ((n + nt - 1) // nt + 1) & ~(<Py_ssize_t>1)   # even: chunks start on a word
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        hi = lo + chunk if lo + chunk < n else n
        if lo < hi:
            dropout_range(key, ctr0, thr, scale, x, y, mask, lo, hi)


# ==================================================================================
# C-level entry points
# ==================================================================================
cdef int k_dropout_forward(floating* out, Call* c) noexcept nogil:
    # out: Y; a: X, state (uint64 [key, counter], advanced), mask; n: size; s: rate
    dropout_par(<uint64_t*>c.a[1], c.s[0], c.n[0], <floating*>c.a[0], out,
                <floating*>c.a[2])
    return 0


cdef int k_dropout_mask_gen(floating* out, Call* c) noexcept nogil:
    # out: mask; a: -, state (advanced); n: size; s: rate
    dropout_par(<uint64_t*>c.a[1], c.s[0], c.n[0], <floating*>NULL, <floating*>NULL, out)
    return 0


cdef Kernel K_DROPOUT_FORWARD = Kernel(
    b"dropout_forward", k_dropout_forward[float], k_dropout_forward[double])
cdef Kernel K_DROPOUT_MASK_GEN = Kernel(
    b"dropout_mask_gen", k_dropout_mask_gen[float], k_dropout_mask_gen[double])


# ==================================================================================
# Python wrappers
# ==================================================================================
cdef uint64_t* _state_ptr(cnp.ndarray state) except NULL:
    """The generator state: a writable, C-contiguous, aligned, native (2,) uint64 array."""
    if not (cnp.PyArray_ISUNSIGNED(state) and cnp.PyArray_ITEMSIZE(state) == 8):
        raise TypeError(f"generator state must be a uint64 array, got dtype {state.dtype}")
    if cnp.PyArray_NDIM(state) != 1 or cnp.PyArray_DIMS(state)[0] != 2:
        raise ValueError(f"generator state must have shape (2,) ([key, counter]), "
                         f"got {shape_of(state)}")
    if not (cnp.PyArray_ISCARRAY(state) and cnp.PyArray_ISNOTSWAPPED(state)):
        if not cnp.PyArray_ISWRITEABLE(state):
            raise ValueError("generator state is read-only (the kernel advances its counter)")
        raise ValueError("generator state must be a C-contiguous, aligned, native-byte-order "
                         "array (the kernel advances its counter in place)")
    return <uint64_t*>cnp.PyArray_DATA(state)


cdef int _check_rate(double rate) except -1:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    return 0


def dropout_forward(cnp.ndarray X not None, cnp.ndarray state not None, double rate):
    """Inverted dropout of ``X`` in one pass: ``(Y, mask)`` with ``mask`` 0 (probability
    ``rate``) or ``1 / (1 - rate)`` and ``Y = X * mask``, the draws taken from the
    counter-based generator ``state`` (whose counter advances by ``ceil(X.size / 2)``).

    Parameters
    ----------
    X : ndarray
        float32 or float64, any shape.
    state : ndarray
        (2,) uint64 ``[key, counter]`` (:attr:`fastbp.Generator.state_array`), written.
    rate : float
        Drop probability in [0, 1).

    Returns
    -------
    (ndarray, ndarray)
        ``Y`` and ``mask``, new arrays of ``X``'s shape and dtype.

    Raises
    ------
    TypeError
        ``X`` not float32/float64, ``state`` not uint64.
    ValueError
        ``rate`` outside [0, 1), ``state`` of the wrong shape, read-only or not
        C-contiguous/aligned/native.
    """
    cdef int t = ftype(X, "X")
    cdef uint64_t* st = _state_ptr(state)
    _check_rate(rate)
    X = contig(X)
    cdef int nd = cnp.PyArray_NDIM(X)
    cdef cnp.ndarray out = <cnp.ndarray>cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(X), t, 0)
    cdef cnp.ndarray mask = <cnp.ndarray>cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(X), t, 0)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.a[1] = st
    c.a[2] = cnp.PyArray_DATA(mask)
    c.n[0] = cnp.PyArray_SIZE(X)
    c.s[0] = rate
    launch(&K_DROPOUT_FORWARD, &c)
    return out, mask


def dropout_mask_gen(cnp.ndarray state not None, shape, double rate, dtype):
    """Inverted-dropout mask of ``shape``: 0 with probability ``rate``, else
    ``1 / (1 - rate)``, drawn from the counter-based generator ``state`` (whose counter
    advances by ``ceil(size / 2)``). The same mask :func:`dropout_forward` would use.

    Parameters
    ----------
    state : ndarray
        (2,) uint64 ``[key, counter]``, written.
    shape : tuple of int
    rate : float
        Drop probability in [0, 1).
    dtype : dtype
        float32 or float64.

    Returns
    -------
    ndarray

    Raises
    ------
    TypeError
        ``dtype`` not float32/float64, ``state`` not uint64.
    ValueError
        ``rate`` outside [0, 1), a negative dimension, a bad ``state``.
    """
    cdef uint64_t* st = _state_ptr(state)
    _check_rate(rate)
    dt = np.dtype(dtype)
    if dt.num != cnp.NPY_FLOAT and dt.num != cnp.NPY_DOUBLE:
        raise TypeError(f"mask dtype must be float32 or float64, got {dt}")
    cdef cnp.ndarray out = np.empty(shape, np.float32 if dt.num == cnp.NPY_FLOAT else np.float64)
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(dt.num)
    c.out = cnp.PyArray_DATA(out)
    c.a[1] = st
    c.n[0] = cnp.PyArray_SIZE(out)
    c.s[0] = rate
    launch(&K_DROPOUT_MASK_GEN, &c)
    return out
