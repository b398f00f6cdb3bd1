"""The indexing kernels (``fastbp_ext/_indexing.pyx``): ``copy_into``, ``gather``,
``backprop_gather`` and ``concatenate`` against plain numpy and against the reference
:class:`NumpyOps`, float32 and float64, odd layouts on every side, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp_ext._kernels as K
from fastbp.backends.numpy_ops import NumpyOps

NP = NumpyOps()
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
              np.uint64]
PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def a(rng, shape, dt):
    return rng.standard_normal(shape).astype(dt)


def ids(rng, d, shape, it=np.int64, neg=True):
    """Ids in [-d, d) (non-negative for unsigned dtypes)."""
    lo = -d if neg and np.dtype(it).kind == "i" else 0
    lo = max(lo, np.iinfo(it).min)
    return rng.integers(lo, d, shape).astype(it)


def close(got, want, dt):
    assert got.shape == want.shape and got.dtype == np.dtype(dt)
    np.testing.assert_allclose(got, want, **TOL[dt])


def swapped(x):
    return x.astype(x.dtype.newbyteorder("S"))


def misaligned(x):
    raw = np.zeros(x.nbytes + 1, np.uint8)
    y = raw[1:].view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ====================================================================== gather
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("it", INT_DTYPES)
def test_gather_rows_every_index_dtype(dt, it, rng):
    X = a(rng, (9, 4, 3), dt)
    i = ids(rng, 9, (5, 2), it)
    want = X[i]
    np.testing.assert_array_equal(K.gather(X, (i,)), want)
    np.testing.assert_array_equal(NP.gather(X, (i,)), want)
    np.testing.assert_array_equal(K.gather(X, i), want)  # a bare array means k = 1


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("ishapes", [[(7,)] * 3, [(2, 3)] * 3, [(4, 1), (3,), (1, 3)],
                                     [(), (5,), (2, 1)], [(0,)] * 3, [(3, 0), (1,), (0,)]])
def test_gather_k_and_broadcasting(dt, k, ishapes, rng):
    X = a(rng, (5, 6, 4, 3), dt)
    index = tuple(ids(rng, X.shape[j], ishapes[j]) for j in range(k))
    want = X[index]
    got = K.gather(X, index)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(NP.gather(X, index), want)
    out = np.full(want.shape, np.nan, dt)
    assert K.gather(X, index, out) is out
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dt", DTYPES)
def test_gather_pairs_matrix(dt, rng):
    """The ``x[rows, cols]`` case: B = 256 pairs on a (256, 256) matrix."""
    X = a(rng, (256, 256), dt)
    r, c = ids(rng, 256, 256), ids(rng, 256, 256, np.int32)
    np.testing.assert_array_equal(K.gather(X, (r, c)), X[r, c])
    r[:10] = 3  # repeated pairs
    c[:10] = -1
    np.testing.assert_array_equal(K.gather(X, (r, c)), X[r, c])


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape, k, ishapes", [
    ((1000, 7), 2, [(600, 1), (7,)]),         # broadcast odometer over many chunks
    ((50, 40, 30), 3, [(30, 1, 1), (1, 20, 1), (17,)]),
    ((3000, 300), 1, [(3000,)]),              # parallel path (above the copy threshold)
    ((700, 700), 2, [(300_000,), (300_000,)]),
])
def test_gather_large(dt, shape, k, ishapes, rng):
    X = a(rng, shape, dt)
    index = tuple(ids(rng, shape[j], ishapes[j]) for j in range(k))
    old = K.get_num_threads()
    try:
        for nt in (1, 2):
            K.set_num_threads(nt)
            np.testing.assert_array_equal(K.gather(X, index), X[index])
    finally:
        K.set_num_threads(old)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("layout", ["T", "strided", "reversed", "swapped", "misaligned"])
def test_gather_odd_layouts(dt, layout, rng):
    base = a(rng, (8, 6), dt)
    X = {"T": base.T.copy().T, "strided": np.repeat(base, 2, axis=1)[:, ::2],
         "reversed": base[::-1].copy()[::-1], "swapped": swapped(base),
         "misaligned": misaligned(base)}[layout]
    np.testing.assert_array_equal(X, base)
    r = ids(rng, 8, 10)[::-1]                    # non-contiguous index arrays
    c = swapped(ids(rng, 6, 10, np.int32))      # byte-swapped index arrays
    got = K.gather(X, (r, c))
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, base[r, c])
    np.testing.assert_array_equal(K.gather(X, (r,)), base[r])
    np.testing.assert_array_equal(NP.gather(X, (r, c)), base[r, c])


@pytest.mark.parametrize("bad, axis, size", [(5, 0, 5), (-6, 0, 5), (4, 1, 4), (-5, 1, 4),
                                             (2**40, 0, 5)])
@pytest.mark.parametrize("where", [0, -1])
def test_gather_out_of_range_names_the_index(bad, axis, size, where):
    X = np.ones((5, 4))
    index = [np.array([0, 1, 2]), np.array([0, 1, 3])]
    index[axis][where] = bad
    msg = f"index {bad} is out of bounds for axis {axis} with size {size}"
    with pytest.raises(IndexError) as np_err:
        X[tuple(index)]
    assert str(np_err.value) == msg
    out = np.full(3, 7.0)
    for ops in (K, NP):
        with pytest.raises(IndexError, match=f"^{msg}$"):
            ops.gather(X, tuple(index), out)
        np.testing.assert_array_equal(out, 7.0)  # nothing written
    with pytest.raises(IndexError, match=f"^{msg}$"):
        K.gather(X, tuple(i.astype(np.int32) if abs(bad) < 2**31 else i for i in index))


def test_gather_out_of_range_in_an_empty_result_is_not_checked():
    """numpy checks indices only when the broadcast result is non-empty."""
    X = np.ones((5, 4))
    index = (np.array([9]), np.zeros(0, np.int64))
    assert K.gather(X, index).shape == NP.gather(X, index).shape == X[index].shape == (0,)
    with pytest.raises(IndexError, match="index 9 is out of bounds for axis 0 with size 0"):
        K.gather(np.ones((0, 3)), (np.array([9]),))


def test_gather_uint64_above_int64_max():
    for ops in (K, NP):
        with pytest.raises(IndexError):
            ops.gather(np.ones((5, 3)), (np.array([2**64 - 1], np.uint64),))


def test_gather_errors():
    X = np.ones((4, 3))
    i = np.array([0, 1])
    for ops in (K, NP):
        with pytest.raises(IndexError, match="shape mismatch: indexing arrays could not be "
                                             r"broadcast together with shapes \(4,\) \(3,\)"):
            ops.gather(X, (np.zeros(4, int), np.zeros(3, int)))
        with pytest.raises(IndexError, match="too many indices"):
            ops.gather(X, (i, i, i))
        with pytest.raises(TypeError, match="integer"):
            ops.gather(X, (i.astype(float),))
        with pytest.raises(TypeError, match="integer"):
            ops.gather(X, (np.array([True, False, True, True]),))
        with pytest.raises(TypeError):
            ops.gather(X, ([0, 1],))
        with pytest.raises(TypeError):
            ops.gather(X, 0)
        with pytest.raises(ValueError):
            ops.gather(X, ())
        with pytest.raises(TypeError, match="mixed dtypes"):
            ops.gather(X, (i,), np.zeros((2, 3), np.float32))
        with pytest.raises(ValueError, match="shape"):
            ops.gather(X, (i,), np.zeros((3, 3)))
    with pytest.raises(TypeError):
        K.gather(X.astype(np.int64), (i,))
    with pytest.raises(ValueError):
        K.gather(X, (i,), np.zeros((3, 2)).T)  # out must be C-contiguous
    with pytest.raises(ValueError, match="shares memory"):
        K.gather(X, (np.array([0]),), X[1:2])
    with pytest.raises(IndexError):  # 0-d X: no axis to index
        K.gather(np.array(1.0), (i,))


# ====================================================================== backprop_gather
def scatter_ref(dY, index, shape):
    r = np.zeros(shape, dY.dtype)
    np.add.at(r, index, dY)
    return r


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("ishapes", [[(7,)] * 3, [(4, 1), (3,), (1, 3)], [(), (5,), (2, 1)],
                                     [(0,)] * 3])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_backprop_gather_matches_add_at(dt, k, ishapes, beta, rng):
    shape = (4, 5, 3, 2)
    index = tuple(ids(rng, shape[j], ishapes[j]) for j in range(k))
    dshape = np.broadcast_shapes(*(i.shape for i in index)) + shape[k:]
    dY = a(rng, dshape, dt)
    want = scatter_ref(dY, index, shape)
    close(K.backprop_gather(dY, index, shape), want, dt)
    close(NP.backprop_gather(dY, index, shape), want, dt)
    o = a(rng, shape, dt) if beta else np.full(shape, np.nan, dt)
    expect = want + beta * o if beta else want
    o2 = o.copy()
    assert K.backprop_gather(dY, index, shape, o, beta) is o
    close(o, expect, dt)
    NP.backprop_gather(dY, index, shape, o2, beta)
    close(o2, expect, dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("it", INT_DTYPES)
def test_backprop_gather_repeated_indices_accumulate(dt, it, rng):
    rows = np.array([3, 3, 3, 0, 1, 3], it)
    cols = np.array([2, 2, 2, 0, 1, 2], it)
    dY = a(rng, 6, dt)
    got = K.backprop_gather(dY, (rows, cols), (5, 4))
    assert got[3, 2] == pytest.approx(dY[[0, 1, 2, 5]].sum(), rel=1e-5)
    close(got, scatter_ref(dY, (rows, cols), (5, 4)), dt)
    dY2 = a(rng, (6, 4), dt)
    close(K.backprop_gather(dY2, (rows,), (5, 4)), scatter_ref(dY2, (rows,), (5, 4)), dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_backprop_gather_large_and_odd_layouts(dt, rng):
    shape = (300, 200)
    r, c = ids(rng, 300, (500, 1)), ids(rng, 200, (37,))
    dY = a(rng, (500, 37), dt)
    want = scatter_ref(dY, (r, c), shape)
    close(K.backprop_gather(dY, (r, c), shape), want, dt)
    close(K.backprop_gather(dY.T.copy().T, (r, c), shape), want, dt)
    close(K.backprop_gather(swapped(dY), (swapped(r), c[::-1][::-1]), shape), want, dt)
    dY3 = a(rng, (4000, 64), dt)
    rows = ids(rng, 50, 4000)
    close(K.backprop_gather(dY3[:, ::-1], (rows,), (50, 64)),
          scatter_ref(dY3[:, ::-1], (rows,), (50, 64)), dt)


def test_backprop_gather_errors():
    dY = np.ones(3)
    i = np.array([0, 1, 2])
    for ops in (K, NP):
        with pytest.raises(IndexError, match="^index 7 is out of bounds for axis 1 with size 4$"):
            ops.backprop_gather(dY, (i, np.array([0, 7, 1])), (3, 4))
        with pytest.raises(IndexError, match="^index -4 is out of bounds for axis 0 with size 3$"):
            ops.backprop_gather(dY, (np.array([0, -4, 1]),), (3,))
        with pytest.raises(ValueError, match="dY has shape"):
            ops.backprop_gather(np.ones(4), (i,), (3,))
        with pytest.raises(ValueError, match="dY has shape"):
            ops.backprop_gather(dY, (i,), (3, 2))
        with pytest.raises(IndexError, match="too many indices"):
            ops.backprop_gather(dY, (i, i), (3,))
        with pytest.raises(IndexError, match="shape mismatch"):
            ops.backprop_gather(dY, (i, np.zeros(2, int)), (3, 3))
        with pytest.raises(ValueError, match="beta"):
            ops.backprop_gather(dY, (i,), (3,), np.zeros(3), 0.5)
        with pytest.raises(ValueError):
            ops.backprop_gather(dY, (i,), (3,), np.zeros(4), 1.0)
        with pytest.raises(TypeError, match="mixed dtypes"):
            ops.backprop_gather(dY, (i,), (3,), np.zeros(3, np.float32), 1.0)
        with pytest.raises(TypeError):
            ops.backprop_gather(dY, (i.astype(np.float64),), (3,))
    out = np.full((3, 4), 5.0)
    with pytest.raises(IndexError):
        K.backprop_gather(dY, (i, np.array([0, 9, 1])), (3, 4), out, 0.0)
    np.testing.assert_array_equal(out, 5.0)  # nothing written, not even the zero-fill
    buf = np.zeros(6)
    with pytest.raises(ValueError, match="shares memory"):
        K.backprop_gather(buf[:3], (i,), (3,), buf[1:4], 0.0)
    for ops in (K, NP):
        with pytest.raises(ValueError):
            ops.backprop_gather(dY, (i,), (-3,))
        with pytest.raises(TypeError):
            ops.backprop_gather(dY, (i,), 3)
        with pytest.raises(TypeError):
            ops.backprop_gather(dY, (i,), (3.0,))
    np.testing.assert_array_equal(K.backprop_gather(dY, (i,), np.array([3])), dY)


# ====================================================================== copy_into
def views(buf):
    """(name, view) pairs of writeable views of a (6, 8) buffer with shape (4, 3)."""
    return [
        ("slice", buf[1:5, 2:5]),
        ("step", buf[::-1][1:5, ::2][:, :3]),
        ("transpose", buf.T[2:5, :4].T),
        ("reversed", buf[4:0:-1, 5:2:-1]),
        ("contiguous", buf.reshape(-1)[:12].reshape(4, 3)),
    ]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("si", range(5))
@pytest.mark.parametrize("oi", range(5))
def test_copy_into_views_on_both_sides(dt, beta, si, oi, rng):
    sbuf = a(rng, (6, 8), dt)
    name, src = views(sbuf)[si]
    obuf = a(rng, (6, 8), dt)
    obuf2 = obuf.copy()
    out, out2 = views(obuf)[oi][1], views(obuf2)[oi][1]
    want = obuf.copy()
    views(want)[oi][1][...] = src + beta * out
    assert K.copy_into(src, out, beta) is out
    close(obuf, want, dt)  # and nothing outside the view was touched
    assert NP.copy_into(src, out2, beta) is out2
    close(obuf2, want, dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape, sperm, operm", [
    ((), None, None), ((0, 5), (1, 0), None), ((1,), None, None), ((7,), None, None),
    ((40, 50), (1, 0), None), ((40, 50), None, (1, 0)), ((3, 40, 50), (0, 2, 1), (2, 0, 1)),
    ((2, 3, 4, 5), (3, 1, 0, 2), (1, 3, 2, 0)), ((64, 1, 33), (2, 1, 0), None),
    ((300_000,), None, None), ((500, 700), (1, 0), (1, 0)),
])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_copy_into_transposes(dt, shape, sperm, operm, beta, rng):
    def make(perm):
        if perm is None:
            return a(rng, shape, dt)
        inv = np.argsort(perm)
        return a(rng, tuple(np.array(shape)[list(perm)]), dt).transpose(inv)
    src, out = make(sperm), make(operm)
    assert src.shape == out.shape == shape
    want = src + beta * out if beta else src.copy()
    old = K.get_num_threads()
    try:
        K.set_num_threads(2)
        K.copy_into(src, out, beta)
    finally:
        K.set_num_threads(old)
    close(out, want, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_copy_into_odd_inputs(dt, rng):
    src = a(rng, (5, 6), dt)
    for s in (swapped(src), misaligned(src), swapped(src)[::-1, ::2], src.T.copy().T):
        out = np.zeros(s.shape, dt)
        K.copy_into(s, out)
        np.testing.assert_array_equal(out, np.asarray(s))
        K.copy_into(s, out, 1.0)
        close(out, 2 * np.asarray(s, dt), dt)


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_copy_into_in_place(beta):
    x = np.arange(12.0).reshape(3, 4)
    for ops in (K, NP):
        y = x.copy()
        assert ops.copy_into(y, y, beta) is y
        np.testing.assert_array_equal(y, x * (1 + beta))
        y = x.copy()
        ops.copy_into(y[:, ::-1], y[:, ::-1], beta)  # same view: identical layout
        np.testing.assert_array_equal(y, x * (1 + beta))


def test_copy_into_errors():
    x = np.arange(10.0)
    for ops in (K, NP):
        with pytest.raises(ValueError, match="overlaps"):
            ops.copy_into(x[:-1], x[1:])
        with pytest.raises(ValueError, match="overlaps"):
            ops.copy_into(x[::-1], x)
        with pytest.raises(ValueError, match="overlaps"):
            ops.copy_into(x[:5], x[::2])
        raw = np.zeros(81, np.uint8)
        m = raw[1:].view(np.float64)  # misaligned (copied by the kernel), overlapping out
        with pytest.raises(ValueError, match="overlaps"):
            ops.copy_into(m[:5], raw[:80].view(np.float64)[2:7])
        with pytest.raises(ValueError, match="shape"):
            ops.copy_into(np.ones(3), np.ones(4))
        with pytest.raises(ValueError, match="shape"):
            ops.copy_into(np.ones((3, 1)), np.ones(3))
        with pytest.raises(TypeError, match="mixed dtypes"):
            ops.copy_into(np.ones(3, np.float32), np.ones(3))
        with pytest.raises(ValueError, match="beta"):
            ops.copy_into(np.ones(3), np.ones(3), 2.0)
        ro = np.ones(3)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            ops.copy_into(np.ones(3), ro)
        with pytest.raises(ValueError):
            ops.copy_into(np.ones(3), swapped(np.ones(3)))
        with pytest.raises(ValueError):
            ops.copy_into(np.ones(3), np.lib.stride_tricks.as_strided(np.zeros(1), (3,), (0,)))
    # disjoint interleaved views are fine (their extents overlap, their elements do not)
    y = np.arange(10.0)
    K.copy_into(y[::2], y[1::2], 1.0)
    np.testing.assert_array_equal(y[1::2], np.arange(0, 10, 2) + np.arange(1, 10, 2))
    with pytest.raises(TypeError):
        K.copy_into(np.ones(3, np.int64), np.ones(3))
    with pytest.raises(TypeError):
        K.copy_into(np.ones(3), None)


# ====================================================================== concatenate
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1, 2, -3])
def test_concatenate_axes(dt, axis, rng):
    base = [3, 4, 5]
    arrays = []
    for n in (2, 0, 1, 3):
        shape = list(base)
        shape[axis] = n
        arrays.append(a(rng, shape, dt))
    want = np.concatenate(arrays, axis=axis)
    np.testing.assert_array_equal(K.concatenate(arrays, axis), want)
    np.testing.assert_array_equal(NP.concatenate(arrays, axis), want)
    out = np.full(want.shape, np.nan, dt)
    assert K.concatenate(tuple(arrays), axis=axis, out=out) is out
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dt", DTYPES)
def test_concatenate_layouts_and_many(dt, rng):
    x = a(rng, (6, 8), dt)
    parts = [x.T, swapped(x.T), x[::-1].T, np.repeat(x, 2, axis=1)[:, ::2].T,
             misaligned(x.T), x.T[:, 1:]]
    axis = 1
    want = np.concatenate([np.asarray(p, dt) for p in parts], axis=axis)
    got = K.concatenate(parts, axis)
    assert got.dtype == np.dtype(dt) and got.dtype.isnative
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(NP.concatenate(parts, axis), want)
    many = [a(rng, (3, i % 4), dt) for i in range(200)]  # more than the stack buffers
    np.testing.assert_array_equal(K.concatenate(many, -1), np.concatenate(many, -1))
    one = [a(rng, (1000, 1000), dt)]
    np.testing.assert_array_equal(K.concatenate(one + one, 0), np.concatenate(one + one, 0))
    np.testing.assert_array_equal(K.concatenate([x[0]], 0), x[0])


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("nt", [1, 2])
def test_concatenate_large_threads(dt, nt, rng):
    """Above the copy threshold: rows split over threads (axis 1), or each long block's
    copy split (axis 0)."""
    parts = [a(rng, (2000, 300), dt), a(rng, (2000, 7), dt), a(rng, (2000, 293), dt)]
    old = K.get_num_threads()
    try:
        K.set_num_threads(nt)
        np.testing.assert_array_equal(K.concatenate(parts, 1), np.concatenate(parts, 1))
        tall = [p.T.copy() for p in parts]
        np.testing.assert_array_equal(K.concatenate(tall, 0), np.concatenate(tall, 0))
    finally:
        K.set_num_threads(old)


def test_concatenate_errors():
    x = np.ones((2, 3))
    for ops in (K, NP):
        with pytest.raises(ValueError, match="along dimension 1, the array at index 0 has size 3 "
                                             "and the array at index 1 has size 4"):
            ops.concatenate([x, np.ones((2, 4))])
        with pytest.raises(ValueError, match="same number of dimensions"):
            ops.concatenate([x, np.ones(3)])
        with pytest.raises(ValueError, match="zero-dimensional"):
            ops.concatenate([np.array(1.0), np.array(2.0)])
        with pytest.raises(ValueError, match="at least one"):
            ops.concatenate([])
        with pytest.raises(np.exceptions.AxisError):
            ops.concatenate([x, x], axis=2)
        with pytest.raises(np.exceptions.AxisError):
            ops.concatenate([x, x], axis=-3)
        with pytest.raises(TypeError, match="mixed dtypes"):
            ops.concatenate([x, x.astype(np.float32)])
        with pytest.raises(TypeError, match="mixed dtypes"):
            ops.concatenate([x, x], out=np.zeros((4, 3), np.float32))
        with pytest.raises(TypeError):
            ops.concatenate([x, [[1.0, 2.0, 3.0]]])
        with pytest.raises(TypeError):
            ops.concatenate(x)
        with pytest.raises(ValueError):
            ops.concatenate([x, x], out=np.zeros((4, 4)))
    with pytest.raises(TypeError):
        K.concatenate([x.astype(np.int64)])
    with pytest.raises(ValueError):
        K.concatenate([x, x], out=np.zeros((3, 4)).T)
    buf = np.zeros((4, 3))
    with pytest.raises(ValueError, match="shares memory"):
        K.concatenate([buf[:2], x], out=buf)


# ====================================================================== properties
@given(data=st.data())
@PROPS
def test_gather_and_its_adjoint_match_numpy(data):
    """Random shapes, k, broadcast patterns, index dtypes and signs: gather is X[index]
    and backprop_gather is its adjoint (<gather(X), dY> == <X, backprop_gather(dY)>)."""
    dt = data.draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shape = tuple(data.draw(st.integers(1, 5)) for _ in range(data.draw(st.integers(1, 4))))
    k = data.draw(st.integers(1, len(shape)))
    nb = data.draw(st.integers(0, 3))
    bshape = tuple(data.draw(st.integers(0, 4)) for _ in range(nb))
    index = []
    for j in range(k):
        sub = tuple(s if data.draw(st.booleans()) else 1 for s in bshape)
        sub = sub[data.draw(st.integers(0, len(sub))):]
        index.append(ids(rng, shape[j], sub, data.draw(st.sampled_from(INT_DTYPES))))
    index = tuple(index)
    X = a(rng, shape, dt)
    want = X[index]
    np.testing.assert_array_equal(K.gather(X, index), want)
    dY = a(rng, want.shape, dt)
    g = K.backprop_gather(dY, index, shape)
    close(g, scatter_ref(dY, index, shape), dt)
    np.testing.assert_allclose(float(np.vdot(want, dY)), float(np.vdot(X, g)),
                               rtol=1e-4 if dt == np.float32 else 1e-10, atol=1e-4)


@given(data=st.data())
@PROPS
def test_copy_into_random_views(data):
    """Random shapes; src and out each a stepped / reversed / transposed view of a larger
    buffer: out's view gets src + beta * out and nothing else in its buffer changes."""
    dt = data.draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    nd = data.draw(st.integers(0, 4))
    shape = tuple(data.draw(st.integers(0, 5)) for _ in range(nd))

    def layout():
        perm = tuple(data.draw(st.permutations(range(nd))))
        pshape = tuple(shape[p] for p in perm)      # the view is buf-view.transpose(inv)
        steps = [data.draw(st.sampled_from([1, 2, -1, -3])) for _ in range(nd)]
        bshape = tuple(abs(s) * n + 1 for s, n in zip(steps, pshape))

        def view(buf):
            v = buf[(Ellipsis,) + tuple(slice(None, None, s) for s in steps)]
            v = v[(Ellipsis,) + tuple(slice(0, n) for n in pshape)]
            return v.transpose(np.argsort(perm))
        return bshape, view

    sshape, sview = layout()
    oshape, oview = layout()
    src = sview(a(rng, sshape, dt))
    obuf = a(rng, oshape, dt)
    expect_buf = obuf.copy()
    out = oview(obuf)
    assert src.shape == out.shape == shape
    beta = data.draw(st.sampled_from([0.0, 1.0]))
    oview(expect_buf)[...] = src + beta * out if beta else src
    assert K.copy_into(src, out, beta) is out
    close(obuf, expect_buf, dt)
