# cython: language_level=3, cdivision=True
# boundscheck / wraparound / initializedcheck come from setup.py.
"""Kernels of fastbp: strided copies, gathers and their scatter-add adjoints, concatenation.

Every kernel has the two layers of the kernel-call ABI (``_common.pxd``): a C-level
``k_<name>(floating* out, Call* c)`` entry point that does all the work (including the
bounds checks of the indices: a compiled plan replays it with new ids), and a validating
``def`` wrapper that fills the :c:type:`Call` and its small shape buffers.

* ``copy_into``: N-d strided copy/accumulate, both sides with any strides (negative too);
  dimensions are flipped to positive output strides, sorted and collapsed, so contiguous
  data is one ``memcpy`` (or one vector loop with ``beta == 1``); a transposing copy goes
  by 32 x 32 tiles.
* ``gather`` / ``backprop_gather``: leading-axes advanced indexing (``X[i0, i1, ...]``,
  the index arrays broadcast together) as a gather of contiguous blocks of
  ``prod(X.shape[k:])`` elements, and its serial scatter-add adjoint.
* ``concatenate``: ``(outer, n_i * inner)`` block copies per input.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from fastbp_ext._common cimport (
    floating, Call, Kernel, launch, launch_side, call_dtype, active_recording, ftype, same_type, contig, out_like,
    overlap, shape_of, same_shape, check_beta, index_array, dim, threads_for, good,
    put, PAR_COPY, PAR_ARITH, KERR_INDEX,
)

import operator

import numpy as np

cnp.import_array()

__all__ = ["copy_into", "gather", "backprop_gather", "concatenate"]

cdef enum:
    MAXD = 64        # dimensions of a strided copy (numpy's NPY_MAXDIMS)
    GMAX = 32        # index arrays / broadcast dimensions of a gather
    CHUNK = 256      # positions whose row numbers are computed in one batch
    SMALL = 16       # blocks shorter than this are copied by a loop, not memcpy
    NSTACK = 64      # inputs of a concatenation described on the wrapper's stack
    TILE = 32        # tile edge of a transposing copy


# ==================================================================================
# copy_into: N-d strided copy / accumulate
# ==================================================================================
ctypedef struct Strided:
    Py_ssize_t nd
    Py_ssize_t shape[MAXD]
    Py_ssize_t sstr[MAXD]     # strides of src, in elements
    Py_ssize_t ostr[MAXD]     # strides of out, in elements


cdef int _collapse(const Strided* m, Py_ssize_t* shp, Py_ssize_t* ss, Py_ssize_t* os,
                   Py_ssize_t* soff, Py_ssize_t* ooff) noexcept nogil:
    """Canonical loop nest of a strided copy: size-1 dimensions dropped, each dimension
    flipped so that out's stride is positive (the offsets of the first elements are
    returned in soff/ooff), sorted by decreasing out stride and adjacent dimensions that
    are contiguous in both arrays merged. Returns the number of dimensions (0: one
    element), or -1 if the copy is empty."""
    cdef int nd = 0, i, j
    cdef Py_ssize_t n, s, o
    soff[0] = 0
    ooff[0] = 0
    for i in range(m.nd):
        n = m.shape[i]
        if n == 0:
            return -1
        if n == 1:
            continue
        s = m.sstr[i]
        o = m.ostr[i]
        if o < 0:
            soff[0] += (n - 1) * s
            ooff[0] += (n - 1) * o
            s = -s
            o = -o
        # insertion sort by decreasing out stride (ties: decreasing |src stride|)
        j = nd
        while j > 0 and (os[j - 1] < o or (os[j - 1] == o and _abs(ss[j - 1]) < _abs(s))):
            shp[j] = shp[j - 1]
            ss[j] = ss[j - 1]
            os[j] = os[j - 1]
            j -= 1
        shp[j] = n
        ss[j] = s
        os[j] = o
        nd += 1
    if nd <= 1:
        return nd
    # merge dimension i into its inner neighbour when both arrays are contiguous across
    j = nd - 1          # the last kept (innermost) dimension
    for i in range(nd - 2, -1, -1):
        if os[i] == shp[j] * os[j] and ss[i] == shp[j] * ss[j]:
            shp[j] *= shp[i]
        else:
            j -= 1
            shp[j] = shp[i]
            ss[j] = ss[i]
            os[j] = os[i]
    # kept dimensions are shp[j:nd]; move them to the front
    n = nd - j
    if j:
        for i in range(n):
            shp[i] = shp[i + j]
            ss[i] = ss[i + j]
            os[i] = os[i + j]
    return <int>n


cdef inline Py_ssize_t _abs(Py_ssize_t x) noexcept nogil:
    return -x if x < 0 else x


cdef void _line(Py_ssize_t n, const floating* s, Py_ssize_t ss,   # IN  n elements, stride ss
                floating* o, Py_ssize_t os,                        # OUT stride os
                floating beta) noexcept nogil:
    """``o = s + beta * o`` along one line (beta is 0 or 1)."""
    cdef Py_ssize_t i
    cdef floating zero = 0
    if ss == 1 and os == 1:
        if beta == zero:
            if s != o:
                memcpy(o, s, n * sizeof(floating))
        else:
            for i in range(n):
                o[i] = o[i] + s[i]
    elif os == 1:
        for i in range(n):
            o[i] = put(s[i * ss], o[i], beta)
    elif ss == 1:
        for i in range(n):
            o[i * os] = put(s[i], o[i * os], beta)
    else:
        for i in range(n):
            o[i * os] = put(s[i * ss], o[i * os], beta)


cdef void _line_par(Py_ssize_t n, const floating* s, floating* o, floating beta,
                    int nt) noexcept nogil:
    """A contiguous line split over ``nt`` threads."""
    cdef Py_ssize_t c, lo, chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        if lo < n:
            _line(chunk if lo + chunk <= n else n - lo, s + lo, 1, o + lo, 1, beta)


cdef void _tiles(Py_ssize_t n0, Py_ssize_t n1,
                 const floating* s, Py_ssize_t s0, Py_ssize_t s1,   # IN  (n0, n1), strides
                 floating* o, Py_ssize_t o0, Py_ssize_t o1,          # OUT (n0, n1), strides
                 floating beta) noexcept nogil:
    """A 2-D strided copy by TILE x TILE tiles (a transpose without cache thrashing)."""
    cdef Py_ssize_t i0, j0, i1, j1, i, j
    cdef const floating* sr
    cdef floating* orow
    cdef Py_ssize_t T = TILE
    i0 = 0
    while i0 < n0:
        i1 = i0 + T if i0 + T < n0 else n0
        j0 = 0
        while j0 < n1:
            j1 = j0 + T if j0 + T < n1 else n1
            for i in range(i0, i1):
                sr = s + i * s0
                orow = o + i * o0
                if o1 == 1:
                    for j in range(j0, j1):
                        orow[j] = put(sr[j * s1], orow[j], beta)
                else:
                    for j in range(j0, j1):
                        orow[j * o1] = put(sr[j * s1], orow[j * o1], beta)
            j0 = j1
        i0 = i1


cdef int k_copy_into(floating* out, Call* c) noexcept nogil:
    """out (strides of c.a[1]) = src (c.a[0]) + beta (c.s[0]) * out."""
    cdef const Strided* m = <const Strided*>c.a[1]
    cdef const floating* src = <const floating*>c.a[0]
    cdef floating beta = <floating>c.s[0]
    cdef Py_ssize_t shp[MAXD]
    cdef Py_ssize_t ss[MAXD]
    cdef Py_ssize_t os[MAXD]
    cdef Py_ssize_t idx[MAXD]
    cdef Py_ssize_t soff, ooff, n, inner, i
    cdef int nd = _collapse(m, shp, ss, os, &soff, &ooff), d, nt
    if nd < 0:
        return 0
    src += soff
    out += ooff
    if nd == 0:
        _line(1, src, 1, out, 1, beta)
        return 0
    if nd == 1:
        n = shp[0]
        if ss[0] == 1 and os[0] == 1:
            nt = threads_for(n * <Py_ssize_t>sizeof(floating),
                             PAR_COPY if beta == 0 else PAR_ARITH)
            if nt > 1:
                _line_par(n, src, out, beta, nt)
                return 0
        _line(n, src, ss[0], out, os[0], beta)
        return 0
    # outer dimensions by an odometer; the innermost as a line, or the innermost two as
    # tiles when src runs along the other one of them (a transpose: both arrays are then
    # read / written a cache line at a time)
    cdef bint tiled = (_abs(ss[nd - 2]) < _abs(ss[nd - 1]) and shp[nd - 2] >= TILE
                       and shp[nd - 1] >= TILE)
    cdef int lines = nd - 2 if tiled else nd - 1
    inner = shp[nd - 1]
    for d in range(lines):
        idx[d] = 0
    while True:
        if tiled:
            _tiles(shp[nd - 2], shp[nd - 1], src, ss[nd - 2], ss[nd - 1],
                   out, os[nd - 2], os[nd - 1], beta)
        else:
            _line(inner, src, ss[nd - 1], out, os[nd - 1], beta)
        d = lines - 1
        while d >= 0:
            idx[d] += 1
            src += ss[d]
            out += os[d]
            if idx[d] < shp[d]:
                break
            src -= ss[d] * shp[d]
            out -= os[d] * shp[d]
            idx[d] = 0
            d -= 1
        if d < 0:
            return 0


cdef Kernel K_COPY_INTO = Kernel(b"copy_into", k_copy_into[float], k_copy_into[double])


cdef void _extent(cnp.ndarray a, char** lo, char** hi) noexcept:
    """First and one-past-last byte addressed by a (non-empty) array of any strides."""
    cdef char* p = <char*>cnp.PyArray_DATA(a)
    cdef char* q = p
    cdef int i
    cdef Py_ssize_t n, s
    for i in range(cnp.PyArray_NDIM(a)):
        n = cnp.PyArray_DIMS(a)[i]
        s = cnp.PyArray_STRIDES(a)[i]
        if s < 0:
            p += (n - 1) * s
        else:
            q += (n - 1) * s
    lo[0] = p
    hi[0] = q + cnp.PyArray_ITEMSIZE(a)


cdef bint _same_layout(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int nd = cnp.PyArray_NDIM(a)
    return (cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b) and same_shape(a, b)
            and (nd == 0 or cnp.PyArray_CompareLists(cnp.PyArray_STRIDES(a),
                                                     cnp.PyArray_STRIDES(b), nd)))


cdef bint _elem_strides(cnp.ndarray a) noexcept:
    """Are the strides of a's non-trivial dimensions whole elements?"""
    cdef int i
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(a)
    for i in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIMS(a)[i] > 1 and cnp.PyArray_STRIDES(a)[i] % isz:
            return False
    return True


def copy_into(cnp.ndarray src not None, cnp.ndarray out not None, double beta=0.0):
    """``out[...] = src + beta * out`` for arrays of one shape and ANY strides.

    ``out`` may be a non-contiguous writeable view (a slice, a transpose, a reversed
    view of a gradient buffer): the backward of slicing and transposition, the forward
    of concatenation. Contiguous dimensions are collapsed; two contiguous arrays with
    ``beta == 0`` are one ``memcpy``.

    Parameters
    ----------
    src : ndarray
        float32 or float64, any strides (byte-swapped / misaligned inputs are copied).
    out : ndarray
        Of src's shape and dtype; writeable, aligned, native byte order, any strides.
        It may be ``src`` itself (identical layout) but must not partly overlap it.
    beta : float
        0.0 (overwrite; out is not read) or 1.0 (accumulate).

    Returns
    -------
    ndarray
        ``out``.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes.
    ValueError
        Shapes differ, ``out`` is read-only, misaligned, byte-swapped or has repeated
        elements (a zero stride), ``out`` partly overlaps ``src``, or ``beta`` not 0/1.
    """
    cdef int t = ftype(src, "src")
    same_type(out, t, "out", src, "src")
    if not same_shape(src, out):
        raise ValueError(f"out has shape {shape_of(out)} but src has shape {shape_of(src)}")
    check_beta(beta)
    if not cnp.PyArray_ISWRITEABLE(out):
        raise ValueError("out is read-only")
    if not (cnp.PyArray_ISALIGNED(out) and cnp.PyArray_ISNOTSWAPPED(out)
            and _elem_strides(out)):
        raise ValueError(
            "out must be an aligned, native-byte-order array (any strides), got strides "
            f"{shape_of(out, True)} for shape {shape_of(out)} and dtype {out.dtype}")
    cdef int nd = cnp.PyArray_NDIM(out), i
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(out)
    if cnp.PyArray_SIZE(out) == 0:
        return out
    for i in range(nd):
        if cnp.PyArray_DIMS(out)[i] > 1 and cnp.PyArray_STRIDES(out)[i] == 0:
            raise ValueError(
                f"out has repeated elements (stride 0 along axis {i}); it cannot be written")
    cdef char *slo
    cdef char *shi
    cdef char *olo
    cdef char *ohi
    if not _same_layout(src, out):
        _extent(src, &slo, &shi)
        _extent(out, &olo, &ohi)
        if slo < ohi and olo < shi and np.shares_memory(src, out):
            raise ValueError("out partly overlaps src; use the same array or a separate buffer")
    cdef cnp.ndarray s = src
    if not (cnp.PyArray_ISALIGNED(src) and cnp.PyArray_ISNOTSWAPPED(src)
            and _elem_strides(src)):
        s = contig(src)
    cdef Strided m
    m.nd = nd
    for i in range(nd):
        m.shape[i] = cnp.PyArray_DIMS(out)[i]
        m.sstr[i] = cnp.PyArray_STRIDES(s)[i] // isz
        m.ostr[i] = cnp.PyArray_STRIDES(out)[i] // isz
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(s)
    c.a[1] = &m
    c.s[0] = beta
    launch_side(&K_COPY_INTO, &c, 1, sizeof(Strided))
    return out


# ==================================================================================
# gather / backprop_gather: leading-axes advanced indexing
# ==================================================================================
ctypedef struct Gidx:
    Py_ssize_t k                    # number of index arrays (leading axes indexed)
    Py_ssize_t nb                   # ndim of the broadcast index shape
    Py_ssize_t n                    # number of positions: prod(bshape)
    Py_ssize_t block                # elements per gathered item: prod(shape[k:])
    Py_ssize_t flat                 # 1: every index array is C-contiguous of bshape
    Py_ssize_t bshape[GMAX]         # the broadcast index shape
    void* ids[GMAX]                 # the index arrays (C-contiguous)
    Py_ssize_t itype[GMAX]          # 0: int32, 1: int64
    Py_ssize_t count[GMAX]          # elements of index array j
    Py_ssize_t size[GMAX]           # length of axis j
    Py_ssize_t mult[GMAX]           # blocks between consecutive values on axis j
    Py_ssize_t stride[GMAX][GMAX]   # element stride of array j along broadcast dim d


cdef inline Py_ssize_t _id(const void* p, Py_ssize_t itype, Py_ssize_t i) noexcept nogil:
    if itype == 0:
        return (<const cnp.int32_t*>p)[i]
    return <Py_ssize_t>(<const cnp.int64_t*>p)[i]


cdef Py_ssize_t _first_bad(const Gidx* g) noexcept nogil:
    """``pos * k + j`` of the first index outside [-size, size) (array by array, as numpy
    checks them), or -1."""
    cdef Py_ssize_t j, i, v, sz, cnt
    cdef const cnp.int32_t* p32
    cdef const cnp.int64_t* p64
    for j in range(g.k):
        sz = g.size[j]
        cnt = g.count[j]
        if g.itype[j] == 0:
            p32 = <const cnp.int32_t*>g.ids[j]
            for i in range(cnt):
                if p32[i] < -sz or p32[i] >= sz:
                    return i * g.k + j
        else:
            p64 = <const cnp.int64_t*>g.ids[j]
            for i in range(cnt):
                if p64[i] < -sz or p64[i] >= sz:
                    return i * g.k + j
    return -1


cdef void _rows(const Gidx* g, Py_ssize_t p0, Py_ssize_t m,
                Py_ssize_t* rows,     # OUT (m,) block numbers of positions p0 .. p0+m-1
                ) noexcept nogil:
    """Block numbers of a run of positions (C order over bshape); ids already checked,
    negative ones wrapped."""
    cdef Py_ssize_t i, j, d, v, q, r, sz, mu
    cdef const cnp.int32_t* p32
    cdef const cnp.int64_t* p64
    cdef Py_ssize_t cnt[GMAX]
    cdef Py_ssize_t off[GMAX]
    if g.flat:
        for i in range(m):
            rows[i] = 0
        for j in range(g.k):
            sz = g.size[j]
            mu = g.mult[j]
            if g.itype[j] == 0:
                p32 = <const cnp.int32_t*>g.ids[j] + p0
                for i in range(m):
                    v = p32[i]
                    rows[i] += (v + sz if v < 0 else v) * mu
            else:
                p64 = <const cnp.int64_t*>g.ids[j] + p0
                for i in range(m):
                    v = <Py_ssize_t>p64[i]
                    rows[i] += (v + sz if v < 0 else v) * mu
        return
    # broadcast index arrays: an odometer over bshape, one offset per index array
    q = p0
    for d in range(g.nb - 1, -1, -1):
        cnt[d] = q % g.bshape[d]
        q = q // g.bshape[d]
    for j in range(g.k):
        off[j] = 0
        for d in range(g.nb):
            off[j] += cnt[d] * g.stride[j][d]
    for i in range(m):
        r = 0
        for j in range(g.k):
            v = _id(g.ids[j], g.itype[j], off[j])
            r += (v + g.size[j] if v < 0 else v) * g.mult[j]
        rows[i] = r
        d = g.nb - 1
        while d >= 0:
            cnt[d] += 1
            for j in range(g.k):
                off[j] += g.stride[j][d]
            if cnt[d] < g.bshape[d]:
                break
            for j in range(g.k):
                off[j] -= g.stride[j][d] * g.bshape[d]
            cnt[d] = 0
            d -= 1


cdef void _gather_chunk(const Gidx* g, const floating* X, floating* out,
                        Py_ssize_t p0, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t rows[CHUNK]
    cdef Py_ssize_t i, e, b = g.block
    cdef const floating* x
    _rows(g, p0, m, rows)
    out += p0 * b
    if b == 1:
        for i in range(m):
            out[i] = X[rows[i]]
    elif b < SMALL:
        for i in range(m):
            x = X + rows[i] * b
            for e in range(b):
                out[e] = x[e]
            out += b
    else:
        for i in range(m):
            memcpy(out + i * b, X + rows[i] * b, b * sizeof(floating))


cdef int k_gather(floating* out, Call* c) noexcept nogil:
    """out (n, block) = blocks of X (c.a[0]) at the index arrays of the Gidx c.a[1]."""
    cdef const Gidx* g = <const Gidx*>c.a[1]
    cdef const floating* X = <const floating*>c.a[0]
    cdef Py_ssize_t n = g.n, nch, ch, p0
    cdef int nt
    if n == 0:
        return 0
    c.info = _first_bad(g)
    if c.info >= 0:
        return KERR_INDEX
    if g.block == 0:
        return 0
    nch = (n + CHUNK - 1) // CHUNK
    nt = threads_for(n * g.block * <Py_ssize_t>sizeof(floating), PAR_COPY)
    if nt > 1 and nch >= 2 * nt:
        for ch in prange(nch, num_threads=nt, schedule='static'):
            p0 = ch * CHUNK
            _gather_chunk(g, X, out, p0, CHUNK if p0 + CHUNK <= n else n - p0)
    else:
        for ch in range(nch):
            p0 = ch * CHUNK
            _gather_chunk(g, X, out, p0, CHUNK if p0 + CHUNK <= n else n - p0)
    return 0


cdef Kernel K_GATHER = Kernel(b"gather", k_gather[float], k_gather[double])


cdef int k_backprop_gather(floating* out, Call* c) noexcept nogil:
    """out (c.n[0] elements) = scatter-add of dY (c.a[0], (n, block)) at the index arrays
    of the Gidx c.a[1], + beta (c.s[0]) * out. Serial: repeated indices accumulate."""
    cdef const Gidx* g = <const Gidx*>c.a[1]
    cdef const floating* dY = <const floating*>c.a[0]
    cdef Py_ssize_t n = g.n, b = g.block, total = c.n[0], p0, m, i, e
    cdef Py_ssize_t rows[CHUNK]
    cdef floating* o
    cdef const floating* d
    if n > 0:
        c.info = _first_bad(g)
        if c.info >= 0:
            return KERR_INDEX
    if c.s[0] == 0:
        memset(out, 0, total * sizeof(floating))
    if n == 0 or b == 0:
        return 0
    p0 = 0
    while p0 < n:
        m = CHUNK if p0 + CHUNK <= n else n - p0
        _rows(g, p0, m, rows)
        d = dY + p0 * b
        if b == 1:
            for i in range(m):
                out[rows[i]] += d[i]
        else:
            for i in range(m):
                o = out + rows[i] * b
                for e in range(b):
                    o[e] += d[e]
                d += b
        p0 += m
    return 0


cdef Kernel K_BACKPROP_GATHER = Kernel(b"backprop_gather", k_backprop_gather[float],
                                       k_backprop_gather[double])


cdef str _fmt_shape(tuple s):
    return "(" + ",".join([str(x) for x in s]) + ("," if len(s) == 1 else "") + ")"


cdef tuple _index_arrays(object index, Py_ssize_t ndim, cnp.npy_intp* shape, str target):
    """The index arrays as a tuple of C-contiguous int32/int64 arrays (TypeError for
    non-integer ones, IndexError if there are more than ``ndim``)."""
    if cnp.PyArray_Check(index):
        index = (index,)
    elif not isinstance(index, (tuple, list)):
        raise TypeError(
            f"index must be a tuple of integer arrays, got {type(index).__name__}")
    cdef Py_ssize_t k = len(index), j
    cdef int it
    if k == 0:
        raise ValueError("index must hold at least one integer array")
    for j in range(k):
        a = index[j]
        if not cnp.PyArray_Check(a):
            raise TypeError(
                f"index[{j}] must be a numpy integer array, got {type(a).__name__}")
        it = cnp.PyArray_TYPE(<cnp.ndarray>a)
        if not (it == cnp.NPY_INT64 or it == cnp.NPY_INT32) and a.dtype.kind not in "iu":
            raise TypeError(f"index[{j}] must be an integer array, got dtype {a.dtype}")
    if k > ndim:
        raise IndexError(f"too many indices for array: {target} is {ndim}-dimensional, "
                         f"but {k} were indexed")
    if k > GMAX:
        raise ValueError(f"at most {GMAX} index arrays are supported, got {k}")
    arrays = []
    for j in range(k):
        a = index[j]
        it = cnp.PyArray_TYPE(<cnp.ndarray>a)
        if (it == cnp.NPY_INT64 or it == cnp.NPY_INT32) and good(<cnp.ndarray>a):
            arrays.append(a)      # read directly (the common case: no Python work)
            continue
        if a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.size:
            big = a.max()
            if big > 9223372036854775807:   # numpy would wrap it to a negative index
                raise IndexError(
                    f"index {big} is out of bounds for axis {j} with size {shape[j]}")
        arrays.append(index_array(a, f"index[{j}]"))
    return tuple(arrays)


cdef int _fill_gidx(Gidx* g, tuple arrays, cnp.npy_intp* shape, int ndim) except -1:
    """Describe the gather of ``arrays`` on the leading axes of ``shape`` in ``g``
    (IndexError naming the shapes if the index arrays do not broadcast, numpy's
    message)."""
    cdef Py_ssize_t k = len(arrays), j, d, dj, nb = 0, nj, sz, st, b
    cdef cnp.ndarray a
    for j in range(k):
        nb = max(nb, cnp.PyArray_NDIM(<cnp.ndarray>arrays[j]))
    if nb > GMAX:
        raise ValueError(f"index arrays of more than {GMAX} dimensions are not supported")
    for d in range(nb):
        g.bshape[d] = 1
    for j in range(k):
        a = arrays[j]
        nj = cnp.PyArray_NDIM(a)
        for dj in range(nj):
            sz = cnp.PyArray_DIMS(a)[dj]
            d = nb - nj + dj
            if sz != 1:
                if g.bshape[d] != 1 and g.bshape[d] != sz:
                    raise IndexError(
                        "shape mismatch: indexing arrays could not be broadcast together "
                        "with shapes " + "".join([_fmt_shape(x.shape) + " " for x in arrays]))
                g.bshape[d] = sz
    g.k = k
    g.nb = nb
    g.n = 1
    for d in range(nb):
        g.n *= g.bshape[d]
    g.flat = 1
    for j in range(k):
        a = arrays[j]
        nj = cnp.PyArray_NDIM(a)
        g.ids[j] = cnp.PyArray_DATA(a)
        g.itype[j] = 0 if cnp.PyArray_TYPE(a) == cnp.NPY_INT32 else 1
        g.count[j] = cnp.PyArray_SIZE(a)
        g.size[j] = shape[j]
        if g.count[j] != g.n or nj != nb:
            g.flat = 0
        st = 1
        for d in range(nb - 1, -1, -1):
            dj = d - (nb - nj)
            if dj < 0 or cnp.PyArray_DIMS(a)[dj] == 1:
                g.stride[j][d] = 0
            else:
                g.stride[j][d] = st
                st *= cnp.PyArray_DIMS(a)[dj]
    b = 1
    for d in range(k, ndim):
        b *= shape[d]
    g.block = b
    b = 1
    for j in range(k - 1, -1, -1):
        g.mult[j] = b
        b *= shape[j]
    return 0


cdef int _launch_indexed(const Kernel* K, Call* c, tuple arrays, cnp.npy_intp* shape) except -1:
    """launch, with numpy's message for an index out of bounds."""
    try:
        launch_side(K, c, 1, sizeof(Gidx))
    except IndexError:
        if c.info < 0:
            raise
        k = len(arrays)
        j, pos = c.info % k, c.info // k
        v = (<cnp.ndarray>arrays[j]).reshape(-1)[pos]
        raise IndexError(f"index {v} is out of bounds for axis {j} with size {shape[j]}") from None
    return 0


def gather(cnp.ndarray X not None, index, cnp.ndarray out=None):
    """``X[index]`` for a tuple of k integer arrays indexing the leading k axes of X.

    The index arrays broadcast together (numpy's rules); the result has shape
    ``broadcast(index shapes) + X.shape[k:]``. Each gathered item is a contiguous block
    of ``prod(X.shape[k:])`` elements (one element for ``X[rows, cols]`` pairs).

    Parameters
    ----------
    X : ndarray
        float32 or float64, any layout (copied to C order if needed), ndim >= k.
    index : tuple of ndarray
        k >= 1 integer arrays of any integer dtype (int32/int64 are read directly);
        negative values count from the end of their axis. A single array means k = 1.
    out : ndarray, optional
        C-contiguous destination of the result's shape and X's dtype.

    Returns
    -------
    ndarray
        ``out``, or a new array.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes, non-integer index arrays.
    ValueError
        ``out`` of the wrong shape, not C-contiguous/writeable, or sharing memory with X.
    IndexError
        More index arrays than dimensions, index arrays that do not broadcast, or an
        index outside ``[-d, d)`` ("index 5 is out of bounds for axis 0 with size 3").
    """
    cdef int t = ftype(X, "X")
    cdef int xnd = cnp.PyArray_NDIM(X), i
    cdef tuple arrays = _index_arrays(index, xnd, cnp.PyArray_DIMS(X), "array")
    cdef Gidx g
    cdef cnp.npy_intp* xs = cnp.PyArray_DIMS(X)
    _fill_gidx(&g, arrays, xs, xnd)
    cdef cnp.npy_intp dims[MAXD + GMAX]
    cdef int nb = <int>g.nb, k = <int>g.k
    for i in range(nb):
        dims[i] = g.bshape[i]
    for i in range(k, xnd):
        dims[nb + i - k] = xs[i]
    out = out_like(out, t, nb + xnd - k, dims, "gather result")
    X = contig(X)
    if overlap(out, X):
        raise ValueError("out shares memory with X; use a separate buffer")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(X)
    c.a[1] = &g
    c.info = -1
    _launch_indexed(&K_GATHER, &c, arrays, xs)
    return out


def backprop_gather(cnp.ndarray dY not None, index, shape, cnp.ndarray out=None,
                    double beta=0.0):
    """The adjoint of :func:`gather`: an array of ``shape``, zero except that ``dY`` is
    scatter-ADDED at ``index`` (repeated indices accumulate), plus ``beta * out``.

    Parameters
    ----------
    dY : ndarray
        float32 or float64 of shape ``broadcast(index shapes) + shape[k:]``, any layout.
    index : tuple of ndarray
        As for :func:`gather`.
    shape : tuple of int
        The shape of the gathered array X (and of the result).
    out : ndarray, optional
        C-contiguous destination of ``shape``; with ``beta == 1`` it is accumulated into.
    beta : float
        0.0 or 1.0.

    Returns
    -------
    ndarray
        ``out``, or a new array.

    Raises
    ------
    TypeError
        Non-float or mixed dtypes, non-integer index arrays.
    ValueError
        dY or out of the wrong shape, a bad ``shape``, ``out`` not C-contiguous /
        writeable or sharing memory with dY, ``beta`` not 0/1.
    IndexError
        As for :func:`gather`.
    """
    cdef int t = ftype(dY, "dY")
    try:
        shp = tuple([operator.index(s) for s in shape])
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    cdef int nd = len(shp), i
    if nd > MAXD or any([s < 0 for s in shp]):
        raise ValueError(f"invalid shape {shp}")
    cdef cnp.npy_intp dims[MAXD]
    for i in range(nd):
        dims[i] = shp[i]
    cdef tuple arrays = _index_arrays(index, nd, dims, "the gathered array")
    cdef Gidx g
    _fill_gidx(&g, arrays, dims, nd)
    cdef tuple bshape = tuple([g.bshape[i] for i in range(g.nb)])
    if shape_of(dY) != bshape + shp[g.k:]:
        raise ValueError(f"dY has shape {shape_of(dY)} but gathering index arrays of "
                         f"broadcast shape {bshape} from shape {shp} gives "
                         f"{bshape + shp[g.k:]}")
    check_beta(beta)
    if out is None:
        beta = 0.0
    out = out_like(out, t, nd, dims, "gradient")
    dY = contig(dY)
    if overlap(out, dY):
        raise ValueError("out shares memory with dY; use a separate buffer")
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = cnp.PyArray_DATA(dY)
    c.a[1] = &g
    c.n[0] = cnp.PyArray_SIZE(out)
    c.s[0] = beta
    c.info = -1
    _launch_indexed(&K_BACKPROP_GATHER, &c, arrays, dims)
    return out


# ==================================================================================
# concatenate
# ==================================================================================
cdef void _concat_rows(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t na, void** src,
                       const Py_ssize_t* blk, Py_ssize_t row, floating* out) noexcept nogil:
    """Rows lo .. hi-1 of the (outer, row) result."""
    cdef Py_ssize_t o, i, e, b
    cdef floating* dst
    cdef const floating* s
    for o in range(lo, hi):
        dst = out + o * row
        for i in range(na):
            b = blk[i]
            s = <const floating*>src[i] + o * b
            if b >= SMALL:
                memcpy(dst, s, b * sizeof(floating))
            else:
                for e in range(b):
                    dst[e] = s[e]
            dst += b


cdef void _copy_par(floating* dst, const floating* s, Py_ssize_t n, int nt) noexcept nogil:
    """memcpy of n elements split over nt threads."""
    cdef Py_ssize_t c, lo, chunk = (n + nt - 1) // nt
    for c in prange(nt, num_threads=nt, schedule='static'):
        lo = c * chunk
        if lo < n:
            memcpy(dst + lo, s + lo, (chunk if lo + chunk <= n else n - lo) * sizeof(floating))


cdef int k_concatenate(floating* out, Call* c) noexcept nogil:
    """out (outer, row) = the inputs c.a[0][i] (outer, blk[i]) side by side; blk is c.a[1],
    the number of inputs c.n[0], outer c.n[1], row = sum(blk) c.n[2]."""
    cdef void** src = <void**>c.a[0]
    cdef const Py_ssize_t* blk = <const Py_ssize_t*>c.a[1]
    cdef Py_ssize_t na = c.n[0], outer = c.n[1], row = c.n[2], o, i, lo, chunk, ch
    cdef floating* dst
    cdef int nt = threads_for(outer * row * <Py_ssize_t>sizeof(floating), PAR_COPY)
    if nt > 1 and outer >= 4 * nt:      # whole rows per thread
        chunk = (outer + nt - 1) // nt
        for ch in prange(nt, num_threads=nt, schedule='static'):
            lo = ch * chunk
            if lo < outer:
                _concat_rows(lo, lo + chunk if lo + chunk <= outer else outer, na, src, blk,
                             row, out)
        return 0
    if nt > 1:                          # few long rows: split each block's copy
        for o in range(outer):
            dst = out + o * row
            for i in range(na):
                if blk[i] * <Py_ssize_t>sizeof(floating) >= 2 * 262144:
                    _copy_par(dst, <const floating*>src[i] + o * blk[i], blk[i], nt)
                else:
                    memcpy(dst, <const floating*>src[i] + o * blk[i], blk[i] * sizeof(floating))
                dst += blk[i]
        return 0
    _concat_rows(0, outer, na, src, blk, row, out)
    return 0


cdef Kernel K_CONCATENATE = Kernel(b"concatenate", k_concatenate[float],
                                   k_concatenate[double])


def concatenate(arrays, axis=0, cnp.ndarray out=None):
    """``np.concatenate(arrays, axis)`` for a sequence of arrays of one float dtype.

    Parameters
    ----------
    arrays : sequence of ndarray
        At least one array, all of one dtype (float32 or float64) and ndim >= 1, with
        equal shapes except along ``axis``; any layout.
    axis : int
        In ``[-ndim, ndim)``.
    out : ndarray, optional
        C-contiguous destination of the result's shape and dtype, sharing no memory
        with the inputs.

    Returns
    -------
    ndarray
        ``out``, or a new array.

    Raises
    ------
    TypeError
        Non-array items, non-float or mixed dtypes.
    ValueError
        No arrays, 0-d arrays, different ndims or shapes (numpy's messages), a bad
        ``out``; ``numpy.exceptions.AxisError`` (a ValueError and IndexError) for an
        axis out of range.
    """
    if cnp.PyArray_Check(arrays) or not hasattr(arrays, "__len__"):
        raise TypeError(f"arrays must be a sequence of arrays, got {type(arrays).__name__}")
    cdef Py_ssize_t na = len(arrays), i, outer = 1, inner = 1, total = 0
    if na == 0:
        raise ValueError("need at least one array to concatenate")
    seq = list(arrays)
    for i in range(na):
        if not cnp.PyArray_Check(seq[i]):
            raise TypeError(f"arrays[{i}] must be a numpy array, got {type(seq[i]).__name__}")
    cdef cnp.ndarray first = seq[0], a
    cdef int t = ftype(first, "arrays[0]")
    cdef int nd = cnp.PyArray_NDIM(first), d
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    try:
        ax = int(axis)
    except TypeError:
        raise TypeError(f"axis must be an int, got {type(axis).__name__}") from None
    if not -nd <= ax < nd:
        raise np.exceptions.AxisError(ax, nd)
    if ax < 0:
        ax += nd
    cdef int axi = ax
    for i in range(1, na):
        a = seq[i]
        same_type(a, t, f"arrays[{i}]", first, "arrays[0]")
        if cnp.PyArray_NDIM(a) != nd:
            raise ValueError(
                "all the input arrays must have same number of dimensions, but the array "
                f"at index 0 has {nd} dimension(s) and the array at index {i} has "
                f"{cnp.PyArray_NDIM(a)} dimension(s)")
        for d in range(nd):
            if d != axi and dim(a, d) != dim(first, d):
                raise ValueError(
                    "all the input array dimensions except for the concatenation axis "
                    f"must match exactly, but along dimension {d}, the array at index 0 "
                    f"has size {dim(first, d)} and the array at index {i} has size "
                    f"{dim(a, d)}")
    cdef cnp.npy_intp dims[MAXD]
    for d in range(nd):
        dims[d] = dim(first, d)
    for i in range(na):
        total += dim(<cnp.ndarray>seq[i], axi)
    dims[axi] = total
    out = out_like(out, t, nd, dims, "concatenation")
    for d in range(axi):
        outer *= dims[d]
    for d in range(axi + 1, nd):
        inner *= dims[d]
    cdef void* sp[NSTACK]
    cdef Py_ssize_t sb[NSTACK]
    cdef void** ptrs = sp
    cdef Py_ssize_t* blk = sb
    cdef cnp.ndarray buf
    if na > NSTACK or active_recording() != NULL:  # a recording keeps numpy buffers
        buf = np.empty(2 * na, np.intp)
        ptrs = <void**>cnp.PyArray_DATA(buf)
        blk = <Py_ssize_t*>cnp.PyArray_DATA(buf) + na
    keep = []
    for i in range(na):
        a = contig(<cnp.ndarray>seq[i])
        if overlap(out, a):
            raise ValueError(f"out shares memory with arrays[{i}]; use a separate buffer")
        keep.append(a)
        ptrs[i] = cnp.PyArray_DATA(a)
        blk[i] = dim(a, axi) * inner
    cdef Call c
    memset(&c, 0, sizeof(Call))
    c.dtype = call_dtype(t)
    c.out = cnp.PyArray_DATA(out)
    c.a[0] = ptrs
    c.a[1] = blk
    c.n[0] = na
    c.n[1] = outer
    c.n[2] = total * inner
    launch(&K_CONCATENATE, &c)
    return out
