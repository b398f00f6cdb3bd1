"""The elementwise kernels (:mod:`fastbp_ext._elementwise`) against plain numpy and the
NumpyOps reference: numpy broadcasting in every pattern (same shape, row, column, scalar,
N-d mixes, empty), any input layout, ``out``/``beta``, the tie and NaN rules of
maximum/minimum, the exponent rules of power, and the error contract."""

from __future__ import annotations

import ast
import pathlib
import warnings

import numpy as np
import pytest

import fastbp_ext._elementwise as E
import fastbp_ext._kernels as K
from fastbp.backends.cython_ops import CythonOps
from fastbp.backends.numpy_ops import NumpyOps

NP = NumpyOps()
CY = CythonOps()
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}

BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
          "maximum": np.maximum, "minimum": np.minimum}

PATTERNS = [
    ((3, 4), (3, 4)),            # same shape
    ((5, 7), (7,)),              # row bias
    ((7,), (5, 7)),
    ((5, 1), (5, 7)),            # column
    ((5, 7), (5, 1)),
    ((5, 7), ()),                # scalar
    ((), (5, 7)),
    ((5, 7), (1,)),
    ((1, 1), (5, 7)),
    ((), ()),
    ((3, 1), (1, 4)),            # outer
    ((2, 1, 4), (3, 1)),         # 3-D mixes
    ((3, 1), (2, 1, 4)),
    ((2, 3, 4), (3, 4)),
    ((2, 3, 4), (2, 1, 4)),
    ((2, 1, 3, 1), (4, 1, 5)),
    ((1, 2, 1, 3, 1), (2, 5, 3, 4)),
    ((0,), (0,)),                # empty
    ((0, 4), (4,)),
    ((4, 1), (1, 0)),
    ((0, 3), ()),
    ((40, 300), (300,)),
    ((1000,), (1000,)),
]


def arr(shape, dt, rng, lo=-2.0, hi=2.0):
    return np.asarray(rng.uniform(lo, hi, size=shape), dt)


def away(shape, dt, rng):
    """Values in +-[0.5, 2] (safe divisors)."""
    return np.asarray(rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape),
                      dt)


def close(got, want, dt):
    want = np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == np.dtype(dt)
    assert got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=RTOL[dt], atol=RTOL[dt])


def operands(op, sx, sy, dt, rng):
    X = arr(sx, dt, rng)
    Y = away(sy, dt, rng) if op == "div" else arr(sy, dt, rng)
    if op in ("maximum", "minimum"):
        X, Y = np.round(X), np.round(Y)  # ties
    return np.asarray(X, dt), np.asarray(Y, dt)


# ----------------------------------------------------------------------- binary ops
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("sx, sy", PATTERNS, ids=[f"{a}-{b}" for a, b in PATTERNS])
def test_binary_broadcasting_matches_numpy(op, sx, sy, dt):
    rng = np.random.default_rng(0)
    X, Y = operands(op, sx, sy, dt, rng)
    want = BINARY[op](X, Y)
    close(getattr(K, op)(X, Y), want, dt)
    close(getattr(NP, op)(X, Y), want, dt)
    out = np.full(np.broadcast_shapes(sx, sy), np.nan, dt)
    assert getattr(K, op)(X, Y, out) is out
    close(out, want, dt)
    assert getattr(CY, op) is getattr(K, op)


def layouts(a):
    """The same values in other memory layouts."""
    yield "C", a
    if a.ndim >= 2:
        yield "transposed", np.ascontiguousarray(a.T).T
        yield "F", np.asfortranarray(a)
    if a.ndim >= 1:
        buf = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
        v = buf[tuple(slice(1, None, 2) for _ in a.shape)]
        v[...] = a
        yield "strided", v
        r = np.array(a[(slice(None, None, -1),) * a.ndim])[(slice(None, None, -1),) * a.ndim]
        yield "reversed", r
    yield "swapped", a.astype(a.dtype.newbyteorder("S"))
    raw = np.zeros(a.nbytes + a.itemsize + 1, np.uint8)
    mis = raw[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
    mis[...] = a
    yield "misaligned", mis
    ro = a.copy()
    ro.flags.writeable = False
    yield "readonly", ro


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("op", ["add", "sub", "div", "maximum"])
@pytest.mark.parametrize("sx, sy", [((6, 5), (6, 5)), ((6, 5), (5,)), ((6, 1), (6, 5)),
                                    ((2, 3, 4), (3, 1)), ((6, 5), ())])
def test_binary_any_input_layout(op, sx, sy, dt):
    rng = np.random.default_rng(1)
    X, Y = operands(op, sx, sy, dt, rng)
    want = BINARY[op](X, Y)
    for kx, x in layouts(X):
        for ky, y in layouts(Y):
            bx, by = x.copy(), y.copy()
            close(getattr(K, op)(x, y), want, dt)
            np.testing.assert_array_equal(x, bx, err_msg=f"{kx} input modified")
            np.testing.assert_array_equal(y, by, err_msg=f"{ky} input modified")


@pytest.mark.parametrize("dt", DTYPES)
def test_binary_views_with_zero_and_odd_strides(dt):
    rng = np.random.default_rng(2)
    base = arr((8, 9, 10), dt, rng)
    X = base[::2, 1::3, ::-1]                         # (4, 3, 10), negative inner stride
    Y = np.broadcast_to(arr((10,), dt, rng), (3, 10))  # a 0-stride view
    close(K.mul(X, Y), X * Y, dt)
    T = base.transpose(2, 0, 1)[:, :, ::4]
    close(K.sub(T, T[:1]), T - T[:1], dt)
    close(K.add(base[:, :1, ::3], base[0, :, ::3]), base[:, :1, ::3] + base[0, :, ::3], dt)



@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dt", DTYPES)
def test_transposed_operands_tiled_walk(dt, threads):
    """Operands read across memory (transposes) take the tiled walk: odd sizes, 3-D
    stacks whose tiles must not cross the outer axis, serial and split over threads."""
    rng = np.random.default_rng(14)
    old_n, old_t = K.get_num_threads(), K._parallel_thresholds()
    try:
        K.set_num_threads(threads)
        if threads > 1:
            K._parallel_thresholds(arith=64)
        for shape in [(37, 53), (16, 16), (1, 40), (40, 1), (3, 17, 33), (5, 2, 31)]:
            A = arr(shape, dt, rng)
            T = A.T                                      # strides reversed
            B = arr(T.shape, dt, rng)
            close(K.add(T, B), T + B, dt)
            close(K.maximum(B, T), np.maximum(B, T), dt)
            close(K.mul(T, B[..., :1]), T * B[..., :1], dt)
            close(K.sub(T, T[:1]), T - T[:1], dt)
            dZ = arr(T.shape, dt, rng)
            close(K.backprop_div(dZ, T, np.asarray(B + 3, dt), 1),
                  np.asarray(-dZ * T / ((B + 3) * (B + 3)), dt), dt)
            P = A.transpose(*reversed(range(A.ndim)))[::-1]  # and a negative stride
            close(K.add(P, P), P + P, dt)
    finally:
        K.set_num_threads(old_n)
        K._parallel_thresholds(*old_t)

@pytest.mark.parametrize("dt", DTYPES)
def test_binary_in_place_and_overlap(dt):
    rng = np.random.default_rng(3)
    X, b = arr((5, 4), dt, rng), arr((4,), dt, rng)
    want = X + b
    assert K.add(X, b, X) is X
    close(X, want, dt)
    Y = arr((5, 4), dt, rng)
    want = Y * Y
    K.mul(Y, Y, out=Y)
    close(Y, want, dt)
    Z = arr((4, 4), dt, rng)
    with pytest.raises(ValueError, match="partly overlaps"):
        K.add(Z.T, Z, out=Z)          # a transposed view of out: order-dependent
    with pytest.raises(ValueError, match="partly overlaps"):
        K.add(Z, Z[0], out=Z)         # a row of out broadcast over it
    buf = arr((9,), dt, rng)
    with pytest.raises(ValueError, match="partly overlaps"):
        K.add(buf[:-1], buf[:-1], out=buf[1:])


def test_add_bias_and_the_training_patterns():
    rng = np.random.default_rng(4)
    for dt in DTYPES:
        X, b = arr((32, 200), dt, rng), arr((200,), dt, rng)
        close(K.add_bias(X, b), X + b, dt)
        close(K.add(X, b), X + b, dt)
        close(K.add(X, X), X + X, dt)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2,\)"):
        K.add_bias(np.ones((2, 3)), np.ones(2))


@pytest.mark.parametrize("dt", DTYPES)
def test_maximum_minimum_nan_propagate(dt):
    nan = np.nan
    X = np.array([1.0, nan, 3.0, nan, -np.inf, 0.0], dt)
    Y = np.array([2.0, 2.0, nan, nan, np.inf, -0.0], dt)
    for op in ("maximum", "minimum"):
        np.testing.assert_array_equal(getattr(K, op)(X, Y), BINARY[op](X, Y))
        np.testing.assert_array_equal(getattr(K, op)(Y, X), BINARY[op](Y, X))


def test_div_by_zero_is_silent_ieee():
    X = np.array([1.0, -1.0, 0.0, np.nan])
    Y = np.zeros(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = K.div(X, Y)
        ref = NP.div(X, Y)
    np.testing.assert_array_equal(got, [np.inf, -np.inf, np.nan, np.nan])
    np.testing.assert_array_equal(ref, got)


# ----------------------------------------------------------------------- gradients
def grad_ref(op, dZ, X, Y, wrt):
    """Plain numpy formulas of the spec."""
    if op == "div":
        return dZ / Y if wrt == 0 else -dZ * X / (Y * Y)
    A, B = (X, Y) if wrt == 0 else (Y, X)
    chosen = A > B if op == "maximum" else A < B
    return dZ * (chosen + 0.5 * (A == B))


GRAD_PATTERNS = [p for p in PATTERNS if p[0] != (0, 3)]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("op", ["div", "maximum", "minimum"])
@pytest.mark.parametrize("sx, sy", GRAD_PATTERNS, ids=[f"{a}-{b}" for a, b in GRAD_PATTERNS])
def test_binary_gradients(op, sx, sy, dt):
    rng = np.random.default_rng(5)
    X, Y = operands(op, sx, sy, dt, rng)
    shape = np.broadcast_shapes(sx, sy)
    dZ = arr(shape, dt, rng)
    fn = getattr(K, "backprop_" + op)
    for wrt in (0, 1):
        want = np.asarray(grad_ref(op, dZ, X, Y, wrt), dt)
        close(fn(dZ, X, Y, wrt), want, dt)
        close(getattr(NP, "backprop_" + op)(dZ, X, Y, wrt), want, dt)
        out = np.full(shape, np.nan, dt)
        assert fn(dZ, X, Y, wrt, out, 0.0) is out
        close(out, want, dt)
        acc = arr(shape, dt, rng)
        want1 = acc + want
        fn(dZ, X, Y, wrt, out=acc, beta=1.0)
        close(acc, want1, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_max_min_ties_split_evenly(dt):
    X = np.array([[1.0, 2.0, 3.0]], dt)
    Y = np.array([2.0], dt)
    dZ = np.array([[4.0, 4.0, 4.0]], dt)
    np.testing.assert_array_equal(K.backprop_maximum(dZ, X, Y, 0), [[0, 2, 4]])
    np.testing.assert_array_equal(K.backprop_maximum(dZ, X, Y, 1), [[4, 2, 0]])
    np.testing.assert_array_equal(K.backprop_minimum(dZ, X, Y, 0), [[4, 2, 0]])
    np.testing.assert_array_equal(K.backprop_minimum(dZ, X, Y, 1), [[0, 2, 4]])
    # the two halves add up to dZ (summed down to Y's shape by the graph layer)
    total = K.backprop_maximum(dZ, X, Y, 0) + K.backprop_maximum(dZ, X, Y, 1)
    np.testing.assert_array_equal(total, dZ)


def test_max_gradient_with_nan_inputs_does_not_crash():
    X = np.array([np.nan, 1.0, np.nan])
    Y = np.array([0.0, np.nan, np.nan])
    for wrt in (0, 1):
        g = K.backprop_maximum(np.ones(3), X, Y, wrt)
        assert g.shape == (3,)
        np.testing.assert_array_equal(g, NP.backprop_maximum(np.ones(3), X, Y, wrt))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("so", [(4, 5), (5,), (4, 1), (), (1, 1), (3, 1, 5)])
def test_backprop_mul_broadcasts_other(so, dt):
    rng = np.random.default_rng(6)
    sz = np.broadcast_shapes((4, 5), so)
    dZ, O = arr(sz, dt, rng), arr(so, dt, rng)
    close(K.backprop_mul(dZ, O), dZ * O, dt)
    close(NP.backprop_mul(dZ, O), dZ * O, dt)
    acc = arr(sz, dt, rng)
    want = acc + dZ * O
    K.backprop_mul(dZ.T.copy().T, O, acc, 1.0)   # an F-ordered gradient
    close(acc, want, dt)
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(3, 5\)"):
        K.backprop_mul(arr((4, 5), dt, rng), arr((3, 5), dt, rng))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4, 5\)"):
        K.backprop_mul(arr((5,), dt, rng), arr((4, 5), dt, rng))  # would grow dZ



@pytest.mark.parametrize("dt", DTYPES)
def test_gradients_in_place_on_the_upstream_gradient(dt):
    rng = np.random.default_rng(13)
    dZ, O = arr((6, 5), dt, rng), arr((5,), dt, rng)
    want = dZ * O
    assert K.backprop_mul(dZ, O, dZ) is dZ
    close(dZ, want, dt)
    X, zero = arr((6, 5), dt, rng), np.zeros((), dt)
    want = np.asarray(grad_ref("maximum", dZ, X, zero, 0), dt)
    K.backprop_maximum(dZ, X, zero, 0, out=dZ)       # the relu pattern, in place
    close(dZ, want, dt)
    with pytest.raises(ValueError, match="partly overlaps"):
        K.backprop_mul(dZ, dZ[0], out=dZ)

# ----------------------------------------------------------------------- unary ops
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 30.0, -30.0, 100.0, -100.0, 1.0, 2.0]
UNARY = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt}


def unary_input(dt, rng, shape=(50, 31)):
    X = arr(shape, dt, rng, -3, 3)
    X.reshape(-1)[:len(SPECIAL)] = SPECIAL
    return X


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_matches_numpy_without_warnings(op, dt):
    rng = np.random.default_rng(7)
    for shape in [(), (0,), (1,), (17,), (50, 31), (3, 4, 5), (100_003,)]:
        big = np.prod(shape) >= len(SPECIAL)
        X = unary_input(dt, rng, shape) if big else arr(shape, dt, rng, 0.1, 3)
        with np.errstate(all="ignore"):
            want = UNARY[op](X)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = getattr(K, op)(X)
            ref = getattr(NP, op)(X)
        close(got, want, dt)
        close(ref, want, dt)
        out = np.full(X.shape, np.nan, dt)
        assert getattr(K, op)(X, out) is out
        close(out, want, dt)
        # any layout in; in place
        if X.ndim == 2:
            close(getattr(K, op)(np.asfortranarray(X)), want, dt)
            close(getattr(K, op)(X.astype(X.dtype.newbyteorder("S"))), want, dt)
        Xc = X.copy()
        assert getattr(K, op)(Xc, Xc) is Xc
        close(Xc, want, dt)


POWERS = [0.0, 1.0, 2.0, 3.0, 0.5, -1.0, 2.5, -0.5, 1.5, -2.0, 7.0, 1 / 3]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("p", POWERS)
def test_power(p, dt):
    rng = np.random.default_rng(8)
    X = unary_input(dt, rng)
    with np.errstate(all="ignore"):
        want = np.power(X, dt(p))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = K.power(X, p)
        ref = NP.power(X, p)
    close(got, want, dt)
    close(ref, want, dt)
    if p in (0.0, 1.0, 2.0, 0.5, -1.0):   # the exact fast paths
        np.testing.assert_array_equal(got, want)
    out = np.empty_like(X)
    assert K.power(X, p, out) is out


def test_power_special_exponents():
    X = np.array([np.nan, np.inf, 0.0, -2.0], np.float32)
    np.testing.assert_array_equal(K.power(X, 0.0), [1, 1, 1, 1])  # as np.power
    r = K.power(X, 1.0)
    np.testing.assert_array_equal(r, X)
    assert r is not X
    assert K.power(X, 2.5).dtype == np.float32


@pytest.mark.parametrize("dt", DTYPES)
def test_unary_gradients(dt):
    rng = np.random.default_rng(9)
    for shape in [(), (0, 3), (7,), (40, 30)]:
        dY = arr(shape, dt, rng)
        S = arr(shape, dt, rng, 0.2, 3.0)
        cases = {"exp": dY * S, "log": dY / S, "sqrt": dY * dt(0.5) / S}
        for op, want in cases.items():
            fn = getattr(K, "backprop_" + op)
            close(fn(dY, S), want, dt)
            close(getattr(NP, "backprop_" + op)(dY, S), want, dt)
            out = np.full(shape, np.nan, dt)
            assert fn(dY, S, out, 0.0) is out
            close(out, want, dt)
            acc = arr(shape, dt, rng)
            want1 = acc + want
            fn(dY, S, acc, 1.0)
            close(acc, want1, dt)
            close(fn(np.asfortranarray(dY) if dY.ndim else dY, S[...]), want, dt)
        with pytest.raises(ValueError, match=r"dY of shape \(7,\) does not match"):
            K.backprop_log(arr((7,), dt, rng), arr((1,), dt, rng))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("p", POWERS)
def test_backprop_power(p, dt):
    rng = np.random.default_rng(10)
    dY, X = arr((30, 20), dt, rng), arr((30, 20), dt, rng, 0.2, 3.0)
    t = np.dtype(dt).type
    want = dY * t(p) * np.power(X, t(p) - t(1))
    close(K.backprop_power(dY, X, p), want, dt)
    close(NP.backprop_power(dY, X, p), want, dt)
    acc = arr((30, 20), dt, rng)
    want1 = acc + want
    assert K.backprop_power(dY, X, p, acc, 1.0) is acc
    close(acc, want1, dt)


def test_backprop_power_exact_rules():
    dY = np.array([1.0, 2.0, np.inf, 3.0])
    X = np.array([0.0, np.inf, 1.0, np.nan])
    np.testing.assert_array_equal(K.backprop_power(dY, X, 0.0), np.zeros(4))
    np.testing.assert_array_equal(NP.backprop_power(dY, X, 0.0), np.zeros(4))
    g = K.backprop_power(dY, X, 1.0)
    np.testing.assert_array_equal(g, dY)
    assert g is not dY
    np.testing.assert_array_equal(NP.backprop_power(dY, X, 1.0), dY)
    acc = np.ones(4)
    K.backprop_power(dY, X, 0.0, acc, 1.0)
    np.testing.assert_array_equal(acc, np.ones(4))


@pytest.mark.parametrize("dt", DTYPES)
def test_scale_by_reads_the_scalar_at_run_time(dt):
    rng = np.random.default_rng(11)
    X = arr((6, 5), dt, rng)
    for s in (np.array([0.5], dt), np.array(-2.0, dt), np.array([[3.0]], dt)):
        close(K.scale_by(X, s), X * s.reshape(()), dt)
        close(NP.scale_by(X, s), X * s.reshape(()), dt)
        close(K.scale_by(X.T, s), X.T * s.reshape(()), dt)
    s = np.array([2.0], dt)
    out = np.full((6, 5), np.nan, dt)
    K.scale_by(X, s, out)
    s[0] = 3.0
    acc = out.copy()
    K.scale_by(X, s, acc, 1.0)
    close(acc, X * dt(2) + X * dt(3), dt)
    with pytest.raises(ValueError, match="one element"):
        K.scale_by(X, np.ones(2, dt))


# ----------------------------------------------------------------------- threads
def test_parallel_paths_agree_with_serial():
    """Both parallel splits (rows; chunks of one long row) give the serial result."""
    rng = np.random.default_rng(12)
    old_n, old_t = K.get_num_threads(), K._parallel_thresholds()
    try:
        K.set_num_threads(2)
        K._parallel_thresholds(transc=64, arith=64)
        for dt in DTYPES:
            X, b = arr((300, 200), dt, rng), arr((200,), dt, rng)
            close(K.add(X, b), X + b, dt)
            close(K.maximum(X, X.T[:200, :1].T), np.maximum(X, X.T[:200, :1].T), dt)
            close(K.mul(X, X), X * X, dt)
            close(K.sub(X, np.array(1.5, dt)), X - dt(1.5), dt)
            close(K.backprop_maximum(X, X, b, 0), np.asarray(grad_ref("maximum", X, X, b, 0), dt),
                  dt)
            close(K.exp(X), np.exp(X), dt)
            close(K.power(np.abs(X), 2.5), np.power(np.abs(X), dt(2.5)), dt)
            close(K.backprop_power(X, np.abs(X) + 1, 1.5),
                  X * dt(1.5) * np.power(np.abs(X) + 1, dt(0.5)), dt)
    finally:
        K.set_num_threads(old_n)
        K._parallel_thresholds(*old_t)


# ----------------------------------------------------------------------- errors
def test_mixed_dtypes_name_both():
    a32, a64 = np.ones(3, np.float32), np.ones(3)
    for op in BINARY:
        with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
            getattr(K, op)(a32, a64)
    with pytest.raises(TypeError, match="dZ is float32 but Y is float64"):
        K.backprop_maximum(a32, a32, a64, 0)
    with pytest.raises(TypeError, match="dY is float64 but Y is float32"):
        K.backprop_exp(a64, a32)
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.exp(a64, out=np.ones(3, np.float32))
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.add(a64, a64, out=np.ones(3, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        K.add(np.ones(3, np.int64), np.ones(3, np.int64))
    with pytest.raises(TypeError, match="float32 or float64"):
        K.log(np.ones(3, np.float16))
    with pytest.raises(TypeError, match="mixed dtypes"):
        NP.add(a32, a64)


def test_incompatible_shapes_name_both():
    for op in BINARY:
        with pytest.raises(ValueError, match=r"X has shape \(2, 3\) and Y has shape \(2,\)"):
            getattr(K, op)(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"\(2, 1, 4\).*\(3, 2\)"):
        K.mul(np.ones((2, 1, 4)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"dZ of shape \(2, 3\) and Y of shape \(4,\)"):
        K.backprop_div(np.ones((2, 3)), np.ones(3), np.ones(4), 0)


def test_bad_out_beta_and_wrt():
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"out has shape \(3, 2\)"):
        K.add(X, X, out=np.ones((3, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        K.maximum(X, X, out=np.ones((3, 2)).T)
    ro = np.ones((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.exp(X, out=ro)
    with pytest.raises(ValueError, match="beta must be 0.0 or 1.0"):
        K.backprop_div(X, X, X, 0, np.ones((2, 3)), 0.5)
    with pytest.raises(ValueError, match="wrt must be 0"):
        K.backprop_maximum(X, X, X, 2)
    with pytest.raises(ValueError, match="wrt must be 0"):
        NP.backprop_maximum(X, X, X, 2)
    with pytest.raises(TypeError):
        K.add(X, 1.0)


# ----------------------------------------------------------------------- module
def test_module_exports_and_stub():
    for name in E.__all__:
        assert getattr(K, name) is getattr(E, name), name
        assert getattr(E, name).__doc__, name
        assert getattr(CythonOps, name) is getattr(E, name), name
        assert callable(getattr(NumpyOps, name)), name
    stub = pathlib.Path(E.__file__).with_name("_elementwise.pyi")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(E.__all__) <= declared
    assert isinstance(E.LIBMVEC_MATH, bool)
