"""The reductions kernels (:mod:`fastbp_ext._reductions`): sums over any axes, every
unbroadcast pattern, expand, max, logsumexp, softmax, log_softmax and their backprops,
against plain numpy / scipy.special expressions and against the NumpyOps reference.

float32 to ~1e-5, float64 to ~1e-12; axis None / 0 / 1 / -1 / the middle of a 3-D array;
keepdims both ways; ties, extreme rows (+-1e4, +-inf, NaN, all -inf); strided,
transposed and byte-swapped inputs; out / beta; empty arrays; error cases.
"""

from __future__ import annotations

import ast
import pathlib
import warnings

import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp_ext._kernels as K
import fastbp_ext._reductions as R
from fastbp.backends.cython_ops import CythonOps
from fastbp.backends.numpy_ops import NumpyOps

NP = NumpyOps()
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
NAN, INF = np.nan, np.inf


def close(got, want, dt, scale=1.0):
    want = np.asarray(want)
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.dtype(dt), got.dtype
    assert got.flags.c_contiguous
    np.testing.assert_allclose(got, want.astype(dt), rtol=RTOL[dt], atol=RTOL[dt] * scale)


def rnd(shape, dt, seed=0, lo=-2.0, hi=2.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dt)


def layouts(a):
    """``a`` and views of equal value with other layouts (inputs may have any strides)."""
    out = {"C": a}
    if a.ndim >= 2:
        out["transposed"] = np.ascontiguousarray(a.T).T
    if a.ndim >= 1 and a.size:
        buf = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        buf[..., ::2] = a
        out["strided"] = buf[..., ::2]
    out["swapped"] = a.astype(a.dtype.newbyteorder("S"))
    for v in out.values():
        np.testing.assert_array_equal(v, a)
    return out


@pytest.fixture(autouse=True)
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def extreme(dt):
    return np.array([[1e4, -1e4, 0.0, 1.0], [-1e4, -1e4, -1e4, -1e4], [INF, 1.0, 2.0, 3.0],
                     [-INF, -INF, -INF, -INF], [NAN, 1.0, 2.0, 3.0], [-INF, 0.0, 1.0, -INF],
                     [1e4, 1e4, 1e4 - 1, 0.0], [3.0, 3.0, 3.0, 3.0]], dt)


AXES_3D = [None, 0, 1, 2, -1, -2]


# ============================================================================ module
def test_module_exports_and_namespace():
    assert set(R.__all__) == {
        "reduce_sum", "unbroadcast", "backprop_bias", "expand", "reduce_max",
        "backprop_reduce_max", "logsumexp", "backprop_logsumexp", "softmax",
        "backprop_softmax", "log_softmax", "backprop_log_softmax"}
    for name in R.__all__:
        fn = getattr(R, name)
        assert getattr(K, name) is fn, name          # _kernels gathers the kind module
        assert getattr(CythonOps, name) is fn, name  # the backend op *is* the kernel
        assert fn.__doc__ and "Raises" in fn.__doc__, name
        assert callable(getattr(NumpyOps, name)), name


def test_stub_declares_every_kernel():
    stub = pathlib.Path(R.__file__).with_name("_reductions.pyi")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert declared == set(R.__all__)


# ============================================================================ reduce_sum
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D + [(0, 2), (2, 0), (0, 1), (1, 2), (), (0, 1, 2),
                                            (-1, 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_sum_any_axes(dt, axis, keepdims):
    X = rnd((3, 4, 5), dt)
    for kind, a in layouts(X).items():
        got = K.reduce_sum(a, axis, keepdims)
        close(got, X.astype(np.float64).sum(axis=axis, keepdims=keepdims), dt, 10)
        close(got, NP.reduce_sum(X, axis, keepdims), dt, 10)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", [(0, 2), (1, 3), (0, 3), (0, 1, 3), (1, 2), 1, 2, (0, 2, 3)])
def test_reduce_sum_4d_alternating_patterns(dt, axis):
    X = rnd((2, 3, 4, 5), dt, seed=3)
    close(K.reduce_sum(X, axis), X.astype(np.float64).sum(axis=axis), dt, 10)
    close(K.reduce_sum(X, axis, True), X.astype(np.float64).sum(axis=axis, keepdims=True),
          dt, 10)


@pytest.mark.parametrize("dt", DTYPES)
def test_reduce_sum_full_sum_is_accurate_and_empty(dt):
    X = np.full(1_000_003, 0.1, dt)
    got = K.reduce_sum(X)
    assert got.shape == ()
    # double partial sums: float32 keeps ~7 digits even for a million terms
    np.testing.assert_allclose(float(got), float(X.astype(np.float64).sum()), rtol=1e-7)
    assert K.reduce_sum(np.zeros((0, 3), dt), 0).tolist() == [0, 0, 0]
    assert K.reduce_sum(np.zeros((0, 3), dt), 1).shape == (0,)
    assert K.reduce_sum(np.zeros((0, 3), dt)).tolist() == 0
    assert K.reduce_sum(np.array(2.5, dt)).tolist() == 2.5
    assert K.reduce_sum(np.zeros((2, 0, 3), dt), (0, 1), True).shape == (1, 1, 3)


def test_reduce_sum_axis_errors():
    X = np.ones((2, 3))
    with pytest.raises(np.exceptions.AxisError, match="axis 2 is out of bounds"):
        K.reduce_sum(X, 2)
    with pytest.raises(np.exceptions.AxisError, match="axis -3"):
        K.reduce_sum(X, (0, -3))
    with pytest.raises(ValueError, match="duplicate value in axis"):
        K.reduce_sum(X, (1, -1))
    for bad in ("rows", 1.0, [0.5], (0, None)):
        with pytest.raises(TypeError, match="axis must be an int"):
            K.reduce_sum(X, bad)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.reduce_sum(np.ones(3, np.int64))


# ------------------------------------------------------------------ random N-d patterns
_SHAPES = st.lists(st.integers(0, 4), min_size=0, max_size=5).map(tuple)


@settings(max_examples=150, deadline=None)
@given(shape=_SHAPES, data=st.data())
def test_sum_unbroadcast_expand_random_patterns(shape, data):
    """Any subset of axes (the generic group walk included), as numpy."""
    dt = data.draw(st.sampled_from(DTYPES))
    X = rnd(shape, dt, seed=data.draw(st.integers(0, 99)))
    nd = len(shape)
    axes = tuple(data.draw(st.sets(st.integers(0, nd - 1))) if nd else ())
    keepdims = data.draw(st.booleans())
    close(K.reduce_sum(X, axes, keepdims),
          X.astype(np.float64).sum(axis=axes, keepdims=keepdims), dt, 10)
    # a shape that broadcasts to X.shape: drop leading axes, set others to 1
    lead = data.draw(st.integers(0, nd))
    small = tuple(1 if data.draw(st.booleans()) else n for n in shape[lead:])
    close(K.unbroadcast(X, small), _unbroadcast_ref(X, small), dt, 10)
    d = rnd(small, dt, seed=1)
    close(K.expand(d, shape), np.broadcast_to(d, shape), dt)


# ============================================================================ unbroadcast
UNBROADCAST = [
    ((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (1, 4)), ((3, 4), (3, 1)), ((3, 4), ()),
    ((3, 4), (1,)), ((3, 4), (1, 1)), ((2, 3, 4), (3, 4)), ((2, 3, 4), (4,)),
    ((2, 3, 4), (2, 1, 4)), ((2, 3, 4), (1, 3, 1)), ((2, 3, 4), (2, 3, 1)),
    ((2, 3, 4), (3, 1)), ((2, 3, 4), (1, 1, 1)), ((2, 3, 4, 5), (3, 1, 5)),
    ((2, 3, 4, 5), (2, 1, 4, 1)), ((2, 1, 4), (1, 4)), ((0, 4), (4,)), ((0, 4), ()),
    ((2, 0, 4), (1, 0, 1)), ((3, 0), (3, 1)), ((6,), ()), ((), ()), ((500, 7), (7,)),
]


def _unbroadcast_ref(dY, shape):
    lead = dY.ndim - len(shape)
    g = dY.astype(np.float64).sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("sy, shape", UNBROADCAST, ids=[f"{a}->{b}" for a, b in UNBROADCAST])
def test_unbroadcast_every_pattern(dt, sy, shape):
    dY = rnd(sy, dt, seed=1)
    want = _unbroadcast_ref(dY, shape)
    for kind, a in layouts(dY).items():
        close(K.unbroadcast(a, shape), want, dt, 10)
    close(K.unbroadcast(dY, shape), NP.unbroadcast(dY, shape), dt, 10)
    out = np.full(shape, np.nan, dt)
    assert K.unbroadcast(dY, shape, out, 0.0) is out
    close(out, want, dt, 10)
    out = rnd(shape, dt, seed=2)
    base = out.copy()
    K.unbroadcast(dY, shape, out, 1.0)
    close(out, want + base, dt, 10)


def test_unbroadcast_errors():
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) to \(3, 5\)"):
        K.unbroadcast(np.ones((2, 3, 4)), (3, 5))
    with pytest.raises(ValueError, match="more dimensions"):
        K.unbroadcast(np.ones(3), (1, 3))
    with pytest.raises(TypeError, match="mixed dtypes: out is float32"):
        K.unbroadcast(np.ones((2, 3)), (3,), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="beta"):
        K.unbroadcast(np.ones((2, 3)), (3,), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"out has shape \(4,\)"):
        K.unbroadcast(np.ones((2, 3)), (3,), np.zeros(4))


# ============================================================================ backprop_bias
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n, m", [(0, 4), (1, 1), (1, 200), (5, 3), (256, 512), (7, 1)])
def test_backprop_bias(dt, n, m):
    dY = rnd((n, m), dt)
    want = dY.astype(np.float64).sum(0)
    for a in layouts(dY).values():
        close(K.backprop_bias(a), want, dt, max(n, 1))
    out = rnd(m, dt, seed=5)
    base = out.copy()
    assert K.backprop_bias(dY, out, 1.0) is out
    close(out, want + base, dt, max(n, 1))
    with pytest.raises(ValueError, match=r"2-D.*\(3,\)"):
        K.backprop_bias(np.ones(3, dt))


# ============================================================================ expand
EXPAND = [((), (3, 4)), ((4,), (3, 4)), ((1, 4), (3, 4)), ((3, 1), (3, 4)), ((3, 4), (3, 4)),
          ((2, 1, 4), (2, 3, 4)), ((1, 3, 1), (2, 3, 4)), ((4,), (2, 3, 4)), ((1,), (0, 4)),
          ((0, 4), (2, 0, 4)), ((5,), (1, 5)), ((3, 1, 1), (3, 2, 2)), ((), ()),
          ((2, 1, 3, 1), (2, 4, 3, 5)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("sy, shape", EXPAND, ids=[f"{a}->{b}" for a, b in EXPAND])
def test_expand(dt, sy, shape):
    dY = rnd(sy, dt, seed=4)
    want = np.broadcast_to(dY, shape)
    for a in layouts(dY).values():
        got = K.expand(a, shape)
        close(got, want, dt)
    close(K.expand(dY, shape), NP.expand(dY, shape), dt)
    out = np.full(shape, np.nan, dt)
    assert K.expand(dY, list(shape), out, 0.0) is out
    close(out, want, dt)
    out = rnd(shape, dt, seed=6)
    base = out.copy()
    K.expand(dY, shape, out, 1.0)
    close(out, want + base, dt)
    # the adjoint of unbroadcast: <expand(g), h> == <g, unbroadcast(h)>
    h = rnd(shape, np.float64, seed=7)
    g = dY.astype(np.float64)
    np.testing.assert_allclose(np.sum(K.expand(g, shape) * h),
                               np.sum(g * K.unbroadcast(h, sy)), rtol=1e-12, atol=1e-12)


def test_expand_errors():
    with pytest.raises(ValueError, match=r"\(3,\) to \(3, 4\)"):
        K.expand(np.ones(3), (3, 4))
    with pytest.raises(ValueError, match=r"\(2, 3\) to \(3,\)"):
        K.expand(np.ones((2, 3)), (3,))
    with pytest.raises(ValueError, match="negative"):
        K.expand(np.ones(1), (-1,))
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.expand(np.ones(3), (2, 3), np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        K.expand(np.ones(3, np.int32), (2, 3))


# ============================================================================ reduce_max
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_max(dt, axis, keepdims):
    X = rnd((3, 4, 5), dt)
    X[1, 2, 3] = NAN
    for a in layouts(X).values():
        close(K.reduce_max(a, axis, keepdims), np.max(X, axis=axis, keepdims=keepdims), dt)
    close(K.reduce_max(X, axis, keepdims), NP.reduce_max(X, axis, keepdims), dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_reduce_max_extremes_and_empty(dt):
    E = extreme(dt)
    close(K.reduce_max(E, 1), np.max(E, axis=1), dt)
    close(K.reduce_max(E.T, 0), np.max(E, axis=1), dt)
    assert K.reduce_max(E).tolist() != K.reduce_max(E).tolist()  # NaN anywhere -> NaN
    assert K.reduce_max(np.zeros((0, 3), dt), 1).shape == (0,)
    assert K.reduce_max(np.array(-INF, dt)).tolist() == -INF
    for X, axis in [(np.zeros((0, 3), dt), 0), (np.zeros(0, dt), None),
                    (np.zeros((2, 0), dt), -1), (np.zeros((0, 0), dt), 1)]:
        with pytest.raises(ValueError, match="empty"):
            K.reduce_max(X, axis)
        with pytest.raises(ValueError):
            NP.reduce_max(X, axis)


def test_reduce_max_axis_errors():
    with pytest.raises(np.exceptions.AxisError, match="axis 3 is out of bounds"):
        K.reduce_max(np.ones((2, 3)), 3)
    with pytest.raises(np.exceptions.AxisError, match="axis -1"):
        K.reduce_max(np.array(1.0), -1)
    with pytest.raises(TypeError, match="axis must be None or an int"):
        K.reduce_max(np.ones((2, 3)), (0, 1))
    with pytest.raises(TypeError, match="axis must be None or an int"):
        K.reduce_max(np.ones((2, 3)), True)


# ------------------------------------------------------------------ backprop_reduce_max
def _max_bwd_ref(dY, X, axis, keepdims):
    """Loop reference: dY of each slot to np.argmax's position."""
    if axis is None:
        g = np.zeros(X.size)
        g[np.argmax(X.reshape(-1))] = np.asarray(dY).reshape(-1)[0]
        return g.reshape(X.shape)
    ax = axis % X.ndim
    idx = np.expand_dims(np.argmax(X, axis=ax), ax)
    g = np.zeros(X.shape)
    d = dY if keepdims else np.expand_dims(dY, ax)
    np.put_along_axis(g, idx, d.astype(np.float64), axis=ax)
    return g


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D)
@pytest.mark.parametrize("keepdims", [False, True])
def test_backprop_reduce_max_routes_to_first_argmax(dt, axis, keepdims):
    X = np.random.default_rng(2).integers(-2, 3, (3, 4, 5)).astype(dt)  # many ties
    X[0, 1, 2] = NAN
    Y = np.asarray(np.max(X, axis=axis, keepdims=keepdims))
    dY = rnd(Y.shape, dt, seed=8)
    want = _max_bwd_ref(dY, X, axis, keepdims)
    for a in layouts(X).values():
        close(K.backprop_reduce_max(dY, a, Y, axis, keepdims), want, dt)
    close(K.backprop_reduce_max(dY, X, Y, axis, keepdims),
          NP.backprop_reduce_max(dY, X, Y, axis, keepdims), dt)
    out = rnd(X.shape, dt, seed=9)
    base = out.copy()
    assert K.backprop_reduce_max(dY, X, Y, axis, keepdims, out, 1.0) is out
    close(out, want + base, dt)
    out[...] = NAN
    K.backprop_reduce_max(dY, X, Y, axis, keepdims, out, 0.0)
    close(out, want, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_backprop_reduce_max_extremes(dt):
    E = extreme(dt)
    Y = K.reduce_max(E, 1)
    dY = np.arange(1, 9, dtype=dt)
    got = K.backprop_reduce_max(dY, E, Y, 1)
    assert (got != 0).sum(axis=1).tolist() == [1] * 8  # exactly one slot per row
    assert got[3].tolist() == [4, 0, 0, 0]  # all -inf: the first
    assert got[4].tolist() == [5, 0, 0, 0]  # NaN row: the first NaN
    assert got[6].tolist() == [7, 0, 0, 0]  # tie at 1e4: the first
    assert got[7].tolist() == [8, 0, 0, 0]
    close(got, NP.backprop_reduce_max(dY, E, Y, 1), dt)
    # column version (inner > 1) agrees
    close(K.backprop_reduce_max(dY, np.ascontiguousarray(E.T), Y, 0), got.T, dt)


def test_backprop_reduce_max_errors():
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"dY of shape \(3,\).*reduced shape \(2,\)"):
        K.backprop_reduce_max(np.ones(3), X, np.ones(2), 1)
    with pytest.raises(ValueError, match=r"Y of shape \(2,\).*\(2, 1\)"):
        K.backprop_reduce_max(np.ones((2, 1)), X, np.ones(2), 1, True)
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.backprop_reduce_max(np.ones(2), X.astype(np.float32), np.ones(2), 1)
    with pytest.raises(ValueError, match="shares memory with X"):
        K.backprop_reduce_max(np.ones(2), X, np.ones(2), 1, False, X, 1.0)
    with pytest.raises(np.exceptions.AxisError):
        K.backprop_reduce_max(np.ones(2), X, np.ones(2), 2)


# ============================================================================ logsumexp
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp(dt, axis, keepdims):
    X = rnd((3, 4, 5), dt, lo=-30, hi=30)
    want = sps.logsumexp(X.astype(np.float64), axis=axis, keepdims=keepdims)
    for a in layouts(X).values():
        close(K.logsumexp(a, axis, keepdims), want, dt, 30)
    close(K.logsumexp(X, axis, keepdims), NP.logsumexp(X, axis, keepdims), dt, 30)


@pytest.mark.parametrize("dt", DTYPES)
def test_logsumexp_extremes_and_empty(dt):
    E = extreme(dt)
    want = [1e4, -1e4 + np.log(4), INF, -INF, NAN, 1 + np.log1p(np.exp(-1)),
            1e4 + np.log(2 + np.exp(-1)), 3 + np.log(4)]
    close(K.logsumexp(E), np.array(want), dt, 1e4)
    close(K.logsumexp(np.ascontiguousarray(E.T), 0), np.array(want), dt, 1e4)
    close(NP.logsumexp(E), np.array(want), dt, 1e4)
    close(K.logsumexp(np.zeros((3, 0), dt)), np.full(3, -INF), dt)
    close(K.logsumexp(np.zeros((0, 3), dt), 0, True), np.full((1, 3), -INF), dt)
    close(NP.logsumexp(np.zeros((3, 0), dt)), np.full(3, -INF), dt)
    assert K.logsumexp(np.zeros((4, 5), dt), None).shape == ()
    close(K.logsumexp(np.zeros((4, 5), dt), None), np.log(20.0), dt)
    with pytest.raises(np.exceptions.AxisError):
        K.logsumexp(np.array(1.0, dt))  # default axis -1 of a 0-d array


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D)
@pytest.mark.parametrize("keepdims", [False, True])
def test_backprop_logsumexp(dt, axis, keepdims):
    X = rnd((3, 4, 5), dt, lo=-5, hi=5)
    Y = K.logsumexp(X, axis, keepdims)
    dY = rnd(Y.shape, dt, seed=3)
    ax = tuple(range(X.ndim)) if axis is None else axis
    want = np.expand_dims(dY, ax) if not keepdims else dY
    want = want * np.exp(X.astype(np.float64) - (Y if keepdims else np.expand_dims(Y, ax)))
    for a in layouts(X).values():
        close(K.backprop_logsumexp(dY, a, Y, axis, keepdims), want, dt)
    close(K.backprop_logsumexp(dY, X, Y, axis, keepdims),
          NP.backprop_logsumexp(dY, X, Y, axis, keepdims), dt)
    out = rnd(X.shape, dt, seed=4)
    base = out.copy()
    K.backprop_logsumexp(dY, X, Y, axis, keepdims, out, 1.0)
    close(out, want + base, dt)
    # the gradient of logsumexp is the softmax
    if axis is not None and dt == np.float64:
        close(K.backprop_logsumexp(np.ones_like(Y), X, Y, axis, keepdims),
              sps.softmax(X, axis=axis), dt)


# ============================================================================ softmax
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D)
@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
def test_softmax_forward(dt, axis, fwd):
    X = rnd((3, 4, 5), dt, lo=-20, hi=20)
    want = getattr(sps, fwd)(X.astype(np.float64), axis=axis)
    scale = 20 if fwd == "log_softmax" else 1
    for a in layouts(X).values():
        close(getattr(K, fwd)(a, axis), want, dt, scale)
    close(getattr(K, fwd)(X, axis), getattr(NP, fwd)(X, axis), dt, scale)
    out = np.full(X.shape, NAN, dt)
    assert getattr(K, fwd)(X, axis, out) is out
    close(out, want, dt, scale)
    Xc = X.copy()
    getattr(K, fwd)(Xc, axis, Xc)  # in place
    close(Xc, want, dt, scale)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
def test_softmax_extremes(dt, fwd):
    E = extreme(dt)
    if fwd == "softmax":
        want = [[1, 0, 0, 0], [0.25] * 4, [NAN] * 4, [NAN] * 4, [NAN] * 4,
                [0, 1 / (1 + np.e), np.e / (1 + np.e), 0]]
    else:
        want = [[0, -2e4, -1e4, 1 - 1e4], [-np.log(4)] * 4, [NAN] * 4, [NAN] * 4, [NAN] * 4,
                [-INF, -np.log1p(np.e), -np.log1p(np.exp(-1)), -INF]]
    fw = getattr(K, fwd)
    got = fw(E)
    close(got[:6], np.array(want), dt, 2e4)
    close(np.ascontiguousarray(fw(np.ascontiguousarray(E.T), 0).T), got, dt, 2e4)
    close(getattr(NP, fwd)(E), got, dt, 2e4)
    if fwd == "softmax":
        np.testing.assert_allclose(got[[0, 1, 5, 6, 7]].sum(1), 1, rtol=RTOL[dt])


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
def test_softmax_empty_and_0d(dt, fwd):
    fw = getattr(K, fwd)
    assert fw(np.zeros((0, 3), dt)).shape == (0, 3)
    assert fw(np.zeros((3, 0), dt)).shape == (3, 0)
    assert fw(np.zeros((3, 0), dt), 0).shape == (3, 0)
    assert fw(np.array(2.0, dt), None).tolist() == (1.0 if fwd == "softmax" else 0.0)
    with pytest.raises(np.exceptions.AxisError):
        fw(np.array(2.0, dt))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("axis", AXES_3D)
@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
def test_softmax_backward(dt, axis, fwd):
    X = rnd((3, 4, 5), dt, lo=-3, hi=3)
    Y = getattr(K, fwd)(X, axis)
    dY = rnd(X.shape, dt, seed=11)
    y, g = Y.astype(np.float64), dY.astype(np.float64)
    ax = tuple(range(3)) if axis is None else axis
    if fwd == "softmax":
        want = y * (g - (g * y).sum(axis=ax, keepdims=True))
    else:
        want = g - np.exp(y) * g.sum(axis=ax, keepdims=True)
    bw = getattr(K, "backprop_" + fwd)
    for a in layouts(dY).values():
        for b in layouts(Y).values():
            close(bw(a, b, axis), want, dt, 10)
    close(bw(dY, Y, axis), getattr(NP, "backprop_" + fwd)(dY, Y, axis), dt, 10)
    out = rnd(X.shape, dt, seed=12)
    base = out.copy()
    assert bw(dY, Y, axis, out, 1.0) is out
    close(out, want + base, dt, 10)
    d2 = dY.copy()
    bw(d2, Y, axis, d2, 0.0)  # in place into dY
    close(d2, want, dt, 10)
    # against a finite-difference check of the forward (float64)
    if dt == np.float64:
        Xd = X.astype(np.float64)
        eps = 1e-6
        V = rnd(X.shape, np.float64, seed=13)
        f = getattr(K, fwd)
        num = (np.sum(f(Xd + eps * V, axis) * g) - np.sum(f(Xd - eps * V, axis) * g)) / (2 * eps)
        np.testing.assert_allclose(np.sum(want * V), num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("inner", [2, 300])   # the column loops, incl. > one 256 block
def test_softmax_family_inner_gt_1(dt, inner):
    X = rnd((2, 7, inner), dt, seed=21, lo=-10, hi=10)
    dY = rnd(X.shape, dt, seed=22)
    for fwd in ("softmax", "log_softmax"):
        Y = getattr(K, fwd)(X, 1)
        close(Y, getattr(sps, fwd)(X.astype(np.float64), axis=1), dt, 10)
        close(getattr(K, "backprop_" + fwd)(dY, Y, 1),
              getattr(NP, "backprop_" + fwd)(dY, Y, 1), dt, 10)
    close(K.logsumexp(X, 1), sps.logsumexp(X.astype(np.float64), axis=1), dt, 10)
    close(K.reduce_max(X, 1), X.max(1), dt)


def test_softmax_errors():
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.backprop_softmax(np.ones(3), np.ones(3, np.float32))
    with pytest.raises(TypeError, match="mixed dtypes: out is float32"):
        K.softmax(np.ones(3), -1, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"dY of shape \(3,\).*Y of shape \(4,\)"):
        K.backprop_log_softmax(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"out has shape \(4,\)"):
        K.log_softmax(np.ones(3), -1, np.zeros(4))
    with pytest.raises(ValueError, match="C-contiguous"):
        K.softmax(np.ones((3, 4)), -1, np.zeros((4, 3)).T)
    a = np.arange(6.0)
    with pytest.raises(ValueError, match="partly overlaps"):
        K.softmax(a[:5], -1, a[1:])
    with pytest.raises(np.exceptions.AxisError, match="axis 2 is out of bounds"):
        K.softmax(np.ones((3, 4)), 2)
    with pytest.raises(ValueError, match="beta"):
        K.backprop_softmax(np.ones(3), np.ones(3), -1, np.zeros(3), 2.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.log_softmax(np.ones(3, np.int64))


# ============================================================================ threads
@pytest.mark.parametrize("dt", DTYPES)
def test_threaded_rows_match_one_thread(dt):
    X = rnd((600, 300), dt, seed=31, lo=-5, hi=5)
    dY = rnd(X.shape, dt, seed=32)
    n = K.get_num_threads()
    calls = {
        "softmax": lambda: K.softmax(X), "log_softmax": lambda: K.log_softmax(X),
        "logsumexp": lambda: K.logsumexp(X), "reduce_max": lambda: K.reduce_max(X, 1),
        "backprop_softmax": lambda: K.backprop_softmax(dY, K.softmax(X)),
        "backprop_log_softmax": lambda: K.backprop_log_softmax(dY, K.log_softmax(X)),
        "backprop_logsumexp": lambda: K.backprop_logsumexp(dY[:, 0], X, K.logsumexp(X)),
    }
    try:
        K.set_num_threads(1)
        one = {k: f() for k, f in calls.items()}
        K.set_num_threads(2)
        two = {k: f() for k, f in calls.items()}
    finally:
        K.set_num_threads(n)
    for k in calls:
        np.testing.assert_array_equal(one[k], two[k], err_msg=k)


# ============================================================================ reference
@pytest.mark.parametrize("dt", DTYPES)
def test_reference_has_no_warnings_on_extremes(dt):
    E = extreme(dt)
    for axis in (None, 0, 1):
        for op in ("softmax", "log_softmax"):
            Y = getattr(NP, op)(E, axis)
            getattr(NP, "backprop_" + op)(np.ones_like(E), Y, axis)
        Y = NP.logsumexp(E, axis)
        NP.backprop_logsumexp(np.ones_like(Y), E, Y, axis)
        Y = NP.reduce_max(E, axis)
        NP.backprop_reduce_max(np.ones_like(Y), E, Y, axis)
