"""The loss kernels of ``fastbp_ext._losses`` against plain numpy, including the upstream
gradient ``dloss`` given as a one-element array (read through a pointer by the kernel)
instead of a Python float."""

from __future__ import annotations

import numpy as np
import pytest

import fastbp_ext._kernels as K
from fastbp_ext import _losses

f32, f64 = np.float32, np.float64
RTOL = {f32: 1e-5, f64: 1e-12}


def _softmax(Z):
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_namespace_exports_the_module_kernels():
    for name in _losses.__all__:
        assert getattr(K, name) is getattr(_losses, name)


@pytest.mark.parametrize("dt", [f32, f64])
def test_softmax_cross_entropy_matches_numpy(dt):
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((7, 5)).astype(dt)
    y = rng.integers(0, 5, 7)
    loss, P = K.softmax_cross_entropy(Z, y.astype(np.int32))
    P_ref = _softmax(Z.astype(f64))
    assert loss.shape == () and loss.dtype == dt and P.dtype == dt
    np.testing.assert_allclose(P, P_ref, rtol=RTOL[dt] * 10)
    np.testing.assert_allclose(loss, -np.log(P_ref[np.arange(7), y]).mean(), rtol=RTOL[dt] * 10)


@pytest.mark.parametrize("dt", [f32, f64])
@pytest.mark.parametrize("make", [
    lambda v, dt: v,                                  # Python float (compat)
    lambda v, dt: np.array(v, dt),                    # 0-d array
    lambda v, dt: np.array([v], dt),                  # (1,) array
    lambda v, dt: np.array([[v]], dt),                # (1, 1) array
    lambda v, dt: np.array([v], f64 if dt == f32 else f32),   # the other float dtype
    lambda v, dt: np.array([v, 0.0], dt)[::2],        # a strided one-element view
    lambda v, dt: np.array([v], np.dtype(dt).newbyteorder()),  # byte-swapped
], ids=["float", "0d", "1", "1x1", "otherdtype", "strided", "swapped"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_backprops_take_dloss_as_array_or_float(dt, make, beta):
    rng = np.random.default_rng(1)
    n, C = 6, 4
    P = _softmax(rng.standard_normal((n, C))).astype(dt)
    y = rng.integers(0, C, n)
    dloss = make(0.25, dt)
    onehot = np.eye(C, dtype=dt)[y]
    out0 = rng.standard_normal((n, C)).astype(dt)
    out = out0.copy()
    got = K.backprop_softmax_cross_entropy(P, y, dloss, out=out, beta=beta)
    assert got is out
    ref = (P - onehot) * dt(0.25 / n) + beta * out0
    np.testing.assert_allclose(got, ref, rtol=RTOL[dt], atol=RTOL[dt])

    Sig = rng.random((3, 5)).astype(dt)
    T = (rng.random((3, 5)) > 0.5).astype(dt)
    out0 = rng.standard_normal((3, 5)).astype(dt)
    out = out0.copy()
    got = K.backprop_sigmoid_bce(Sig, T, make(0.25, dt), out=out, beta=beta)
    ref = (Sig - T) * dt(0.25 / 15) + beta * out0
    np.testing.assert_allclose(got, ref, rtol=RTOL[dt], atol=RTOL[dt])


@pytest.mark.parametrize("dt", [f32, f64])
def test_dloss_array_equals_float_bitwise(dt):
    """The array path reads the same value the float path stores: same bits."""
    rng = np.random.default_rng(2)
    P = _softmax(rng.standard_normal((5, 3))).astype(dt)
    y = rng.integers(0, 3, 5)
    g = np.array(0.3, f64)
    np.testing.assert_array_equal(K.backprop_softmax_cross_entropy(P, y, g),
                                  K.backprop_softmax_cross_entropy(P, y, 0.3))
    Sig, T = P, P[::-1].copy()
    np.testing.assert_array_equal(K.backprop_sigmoid_bce(Sig, T, g),
                                  K.backprop_sigmoid_bce(Sig, T, 0.3))


def test_dloss_array_is_read_when_the_kernel_runs():
    P = np.full((2, 2), 0.5)
    y = np.array([0, 1])
    g = np.ones(1)
    a = K.backprop_softmax_cross_entropy(P, y, g).copy()
    g[0] = 2.0
    np.testing.assert_array_equal(K.backprop_softmax_cross_entropy(P, y, g), 2 * a)


def test_bad_dloss():
    P = np.full((2, 2), 0.5)
    y = np.array([0, 1])
    with pytest.raises(ValueError, match=r"one-element array.*\(2,\)"):
        K.backprop_softmax_cross_entropy(P, y, np.ones(2))
    with pytest.raises(ValueError, match=r"one-element array.*\(0,\)"):
        K.backprop_sigmoid_bce(P, P, np.ones(0))
    with pytest.raises(TypeError, match="dloss must be a float32 or float64 array"):
        K.backprop_softmax_cross_entropy(P, y, np.ones(1, np.int64))
    with pytest.raises(TypeError):
        K.backprop_sigmoid_bce(P, P, "1.0")


@pytest.mark.parametrize("dt", [f32, f64])
def test_empty_batches(dt):
    loss, P = K.softmax_cross_entropy(np.zeros((0, 3), dt), np.zeros(0, np.int64))
    assert loss == 0 and P.shape == (0, 3)
    loss, Sig = K.sigmoid_bce(np.zeros(0, dt), np.zeros(0, dt))
    assert loss == 0 and Sig.shape == (0,)
    g = K.backprop_softmax_cross_entropy(np.zeros((0, 3), dt), np.zeros(0, np.int64),
                                         np.ones(1, dt))
    assert g.shape == (0, 3)
