"""Numerical hardening: losses and activations at extreme magnitudes, and the anomaly
mode, on both backends.

* softmax cross-entropy and sigmoid BCE (values and gradients) are finite and agree with
  a careful long-double reference for logits up to |1e4| in float32 and float64;
* tanh / sigmoid never overflow: no warning, exact saturation at +-1e4 and +-inf, NaN
  propagates, gradients at saturation are 0;
* ``fb.detect_anomaly()`` raises ``fb.AnomalyError`` naming the op that first produced
  NaN/Inf, in the forward or in the backward pass, and nothing otherwise.

The reference is computed from the very same (dtype-rounded) inputs in ``np.longdouble``
(80-bit extended on x86-64), so the only error measured is that of the implementation.
Set ``FASTBP_ROBUST_TALLY=FILE`` to append the measured errors to FILE (JSON lines).
"""

from __future__ import annotations

import json
import os
import threading
import warnings

import numpy as np
import pytest

import fastbp as fb

LD = np.longdouble
DTYPES = [np.float32, np.float64]
MAGNITUDES = [1.0, 30.0, 100.0, 1e3, 1e4]
MEASURED = {}


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    out = os.environ.get("FASTBP_ROBUST_TALLY")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"module": __name__, "measured": MEASURED}) + "\n")


@pytest.fixture
def strict_fp():
    """Any numpy warning or floating-point overflow / invalid / divide-by-zero is an error
    (underflow to 0 is how exp saturates, so it stays allowed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            yield


def eps(dtype):
    return float(np.finfo(dtype).eps)


# ----------------------------------------------------------------------- references
def ref_softmax_xent(Z, y):
    """Mean cross-entropy and its gradient (dloss = 1) in long double."""
    z = Z.astype(LD)
    n = z.shape[0]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(s[:, 0])
    loss = (lse - z[np.arange(n), y]).sum() / max(n, 1)
    G = e / s
    G[np.arange(n), y] -= 1
    return loss, G / max(n, 1)


def ref_bce(S, T):
    s, t = S.astype(LD), T.astype(LD)
    n = s.size
    loss = (np.maximum(s, 0) - s * t + np.log1p(np.exp(-np.abs(s)))).sum() / max(n, 1)
    sig = np.where(s >= 0, 1 / (1 + np.exp(-np.abs(s))), np.exp(-np.abs(s)) / (1 + np.exp(-np.abs(s))))
    return loss, (sig - t) / max(n, 1)


def logits_at(mag, dtype, rng, n=64, C=9):
    """Rows mixing the nasty cases at magnitude ``mag``: +-mag, ties at the maximum,
    one dominant logit, all equal, and random values in [-mag, mag]."""
    Z = rng.uniform(-mag, mag, size=(n, C))
    Z[0] = mag
    Z[1] = -mag
    Z[2] = [mag, -mag] * (C // 2) + [0.0] * (C % 2)
    Z[3, :] = -mag
    Z[3, 4] = mag
    Z[4] = mag
    Z[4, 0] = mag - 1
    return Z.astype(dtype)


# ----------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mag", MAGNITUDES)
def test_cross_entropy_extreme_logits(backend, dtype, mag, rng, strict_fp):
    Z = logits_at(mag, dtype, rng)
    y = rng.integers(0, Z.shape[1], size=Z.shape[0])
    y[0], y[1], y[3], y[4] = 0, 3, 0, 0  # targets at the max, at a tie, far below the max
    ref_loss, ref_grad = ref_softmax_xent(Z, y)

    logits = fb.Parameter(Z.copy())
    loss = fb.cross_entropy(logits, y)
    loss.backward()
    got, grad = float(loss.data), logits.grad

    assert loss.dtype == dtype and grad.dtype == dtype
    assert np.isfinite(got) and np.isfinite(grad).all()
    err = abs(got - float(ref_loss))
    gerr = float(np.abs(grad.astype(LD) - ref_grad).max())
    # The loss is a mean of terms up to 2*mag: a few roundings of numbers of that size.
    assert err <= 8 * eps(dtype) * (2 * mag + 1), (got, float(ref_loss))
    # softmax probabilities in [0, 1]: error a few eps times the largest exp argument
    # that is not negligible (< ~100), divided by n
    assert gerr <= 200 * eps(dtype) / Z.shape[0], gerr
    # gradient rows sum to 0 and each row's softmax is in [0, 1]
    np.testing.assert_allclose(grad.astype(np.float64).sum(axis=1), 0,
                               atol=8 * eps(dtype) / Z.shape[0])
    MEASURED[f"xent/{backend}/{np.dtype(dtype).name}/{mag:g}"] = {
        "loss": got, "ref": float(ref_loss), "abs_err": err, "grad_max_abs_err": gerr}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cross_entropy_extreme_rows_exact_values(backend, dtype, strict_fp):
    """Known values at |logit| = 1e4: a correct dominant class costs 0, a wrong one costs
    exactly the gap, a tie costs log 2, and all-equal rows cost log C."""
    Z = np.array([[1e4, -1e4, -1e4], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4],
                  [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4]], dtype)
    for row, target, expected in [(0, 0, 0.0), (1, 0, 2e4), (2, 1, np.log(2)),
                                  (3, 2, np.log(3)), (4, 1, np.log(3))]:
        x = fb.Parameter(Z[row:row + 1].copy())
        loss = fb.cross_entropy(x, np.array([target]))
        loss.backward()
        np.testing.assert_allclose(float(loss.data), expected, rtol=4 * eps(dtype),
                                   atol=4 * eps(dtype))
        assert np.isfinite(x.grad).all() and np.abs(x.grad).max() <= 1


def test_cross_entropy_backends_agree_at_1e4(rng):
    for dtype in DTYPES:
        Z = logits_at(1e4, dtype, rng, n=200, C=50)
        y = rng.integers(0, 50, 200)
        out = {}
        for name in fb.backends.BACKENDS:
            with fb.use_backend(name):
                x = fb.Parameter(Z.copy())
                loss = fb.cross_entropy(x, y)
                loss.backward()
                out[name] = (float(loss.data), x.grad.copy())
        a, b = out["cython"], out["numpy"]
        assert abs(a[0] - b[0]) <= 16 * eps(dtype) * 2e4
        np.testing.assert_allclose(a[1], b[1], atol=300 * eps(dtype) / 200)


# ----------------------------------------------------------------------- sigmoid BCE
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mag", MAGNITUDES)
def test_bce_extreme_logits(backend, dtype, mag, rng, strict_fp):
    S = np.concatenate([
        np.array([mag, -mag, mag, -mag, mag, -mag, 0.0, mag / 2, -mag / 2]),
        rng.uniform(-mag, mag, 55),
    ]).astype(dtype)
    T = np.concatenate([
        np.array([1, 0, 0, 1, 0.5, 0.5, 0.25, 1, 0]),
        rng.choice([0.0, 1.0, 0.5, 0.3], 55),
    ]).astype(dtype)
    ref_loss, ref_grad = ref_bce(S, T)
    s = fb.Parameter(S.copy())
    loss = fb.binary_cross_entropy_with_logits(s, T)
    loss.backward()
    got, grad = float(loss.data), s.grad
    assert np.isfinite(got) and np.isfinite(grad).all()
    err = abs(got - float(ref_loss))
    gerr = float(np.abs(grad.astype(LD) - ref_grad).max())
    # each term max(s,0) - s*t rounds numbers of size |s|
    assert err <= 8 * eps(dtype) * (mag + 1), (got, float(ref_loss))
    assert gerr <= 4 * eps(dtype) / S.size, gerr
    MEASURED[f"bce/{backend}/{np.dtype(dtype).name}/{mag:g}"] = {
        "loss": got, "ref": float(ref_loss), "abs_err": err, "grad_max_abs_err": gerr}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bce_exact_values_at_1e4(backend, dtype, strict_fp):
    # s = 1e4, t = 1: loss log1p(exp(-1e4)) = 0; s = -1e4, t = 1: loss 1e4; t = 0.5: 5e3
    for sv, tv, expected, dexp in [(1e4, 1, 0.0, 0.0), (-1e4, 1, 1e4, -1.0),
                                   (1e4, 0, 1e4, 1.0), (-1e4, 0, 0.0, 0.0),
                                   (1e4, 0.5, 5e3, 0.5), (-1e4, 0.5, 5e3, -0.5)]:
        s = fb.Parameter(np.array([sv], dtype))
        loss = fb.binary_cross_entropy_with_logits(s, np.array([tv], dtype))
        loss.backward()
        assert float(loss.data) == expected
        assert float(s.grad[0]) == dexp


# ----------------------------------------------------------------------- activations
def special_inputs(dtype):
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, 1e-3, -1e-3, 1.0, -1.0, 20.0, -20.0, 40.0, -40.0, 88.0, -88.0, 89.0,
            -89.0, 100.0, -100.0, 710.0, -710.0, 745.0, -746.0, 1e4, -1e4, 1e30, -1e30,
            float(fi.max), -float(fi.max), float(fi.tiny), -float(fi.tiny),
            float(fi.smallest_subnormal), np.inf, -np.inf]
    return np.array(vals, dtype=dtype)


def ref_sigmoid(x):
    x = x.astype(LD)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "2-D"])
def test_tanh_sigmoid_relu_saturate_without_warnings(backend, dtype, layout, strict_fp):
    X = special_inputs(dtype)
    if layout == "strided":
        X = np.repeat(X, 2)[::2]
        assert not X.flags.c_contiguous
    elif layout == "2-D":
        X = np.tile(X, (3, 1))
    ops = fb.backends.get_ops()
    th, sg, rl = ops.tanh(X), ops.sigmoid(X), ops.relu(X)
    for Y in (th, sg, rl):
        assert Y.shape == X.shape and Y.dtype == dtype
    # tanh: exactly +-1 past the saturation point, sign-correct everywhere, accurate
    assert np.isfinite(th).all() and (np.abs(th) <= 1).all()
    big = np.abs(X) >= 20
    np.testing.assert_array_equal(th[big], np.sign(X[big]))
    np.testing.assert_allclose(th.astype(LD), np.tanh(X.astype(LD)), rtol=4 * eps(dtype),
                               atol=0)
    # sigmoid: in [0, 1], exactly 1 / 0 at +-1e4 and +-inf, relatively accurate elsewhere
    assert np.isfinite(sg).all() and ((sg >= 0) & (sg <= 1)).all()
    np.testing.assert_array_equal(sg[X >= 1e4], 1)
    np.testing.assert_array_equal(sg[X <= -1e4], 0)
    ref = ref_sigmoid(X)
    normal = ref >= float(np.finfo(dtype).tiny)
    np.testing.assert_allclose(sg[normal].astype(LD), ref[normal], rtol=8 * eps(dtype))
    # below the normal range: absolutely accurate (0 or a subnormal close to the truth)
    assert (np.abs(sg.astype(LD) - ref)[~normal] <= 2 * float(np.finfo(dtype).tiny)).all()
    # relu
    np.testing.assert_array_equal(rl, np.where(X > 0, X, 0))
    # the backward at saturation is exactly 0 (never inf * 0 = NaN)
    dY = np.ones_like(X)
    for back, Y in ((ops.backprop_tanh, th), (ops.backprop_sigmoid, sg), (ops.backprop_relu, rl)):
        g = back(dY, np.ascontiguousarray(Y))
        assert np.isfinite(g).all()
    assert (ops.backprop_tanh(dY, np.ascontiguousarray(th))[np.abs(X) >= 1e4] == 0).all()
    assert (ops.backprop_sigmoid(dY, np.ascontiguousarray(sg))[np.abs(X) >= 1e4] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_activations_propagate_nan(backend, dtype):
    X = np.array([np.nan, 1.0, -np.nan, np.inf], dtype)
    ops = fb.backends.get_ops()
    for f in (ops.tanh, ops.sigmoid, ops.relu):
        Y = f(X)
        assert np.isnan(Y[0]) and np.isnan(Y[2]) and not np.isnan(Y[1]) and not np.isnan(Y[3])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
def test_graph_activations_at_extremes(backend, dtype, act, strict_fp):
    x = fb.Parameter(special_inputs(dtype)[:-2])  # finite values only
    y = getattr(fb, act)(x)
    y.sum().backward()
    assert np.isfinite(y.data).all() and np.isfinite(x.grad).all()
    assert (x.grad[np.abs(x.data) >= 1e4] == (1 if act == "relu" else 0) *
            (x.data[np.abs(x.data) >= 1e4] > 0)).all()


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "identity"])
def test_fused_bias_act_at_extremes(backend, act, strict_fp):
    ops = fb.backends.get_ops()
    for dtype in DTYPES:
        X = np.tile(special_inputs(dtype)[:-2], (4, 1))
        b = np.linspace(-1e4, 1e4, X.shape[1]).astype(dtype)
        with np.errstate(over="ignore"):  # X + b overflows to inf for +-max: that is fine
            Y = ops.bias_act(X, b, act)
            ref = fb.backends.NumpyOps().bias_act(X, b, act)
        np.testing.assert_allclose(Y, ref, rtol=8 * eps(dtype), atol=0)


# ----------------------------------------------------------------------- anomaly mode
def _nan_leaf(shape=(2, 3), dtype=np.float64, where=(0, 0), value=np.nan):
    a = np.ones(shape, dtype)
    a[where] = value
    return a


ANOMALY_FORWARD = {
    # op name: a function building a graph whose FIRST non-finite output comes from it
    "add": lambda dt: (fb.Parameter(np.full((2, 2), 3e38 if dt == np.float32 else 1.7e308, dt))
                       + fb.Tensor(np.full((2, 2), 3e38 if dt == np.float32 else 1.7e308, dt))),
    "sub": lambda dt: fb.Parameter(np.full((2,), np.inf, dt)) - fb.Tensor(np.full((2,), np.inf, dt)),
    "mul": lambda dt: fb.Parameter(np.full((3,), 1e30 if dt == np.float32 else 1e300, dt))
    * fb.Tensor(np.full((3,), 1e30 if dt == np.float32 else 1e300, dt)),
    "matmul": lambda dt: fb.Parameter(np.full((2, 4), 1e20 if dt == np.float32 else 1e160, dt))
    @ fb.Tensor(np.full((4, 2), 1e20 if dt == np.float32 else 1e160, dt)),
    "linear": lambda dt: fb.linear(fb.Parameter(_nan_leaf((2, 3), dt)),
                                   fb.Parameter(np.ones((3, 4), dt)),
                                   fb.Parameter(np.zeros(4, dt))),
    "tanh": lambda dt: fb.tanh(fb.Parameter(_nan_leaf((2, 3), dt))),
    "sigmoid": lambda dt: fb.sigmoid(fb.Parameter(_nan_leaf((2, 3), dt))),
    "relu": lambda dt: fb.relu(fb.Parameter(_nan_leaf((2, 3), dt, value=np.inf))),
    "embedding": lambda dt: fb.embedding(fb.Parameter(_nan_leaf((5, 3), dt, where=(2, 1))),
                                         np.array([[0, 2], [1, 4]])),
    "cross_entropy": lambda dt: fb.cross_entropy(fb.Parameter(_nan_leaf((2, 3), dt)),
                                                 np.array([0, 1])),
    "binary_cross_entropy_with_logits": lambda dt: fb.binary_cross_entropy_with_logits(
        fb.Parameter(_nan_leaf((2, 3), dt)), np.zeros((2, 3), dt)),
    "sum": lambda dt: fb.Parameter(np.full((4,), 3e38 if dt == np.float32 else 1.7e308, dt)).sum(),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", sorted(ANOMALY_FORWARD))
def test_anomaly_forward_names_the_first_op(backend, op, dtype):
    build = ANOMALY_FORWARD[op]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow warnings
        with pytest.raises(fb.AnomalyError, match=rf"op '{op}' produced (nan|inf) values in its forward"):
            with fb.detect_anomaly():
                build(dtype)
        # the same graph without the mode: no error, the non-finite value propagates
        out = build(dtype)
    assert not np.isfinite(out.data).all()
    assert not backends_anomaly_flag()


def backends_anomaly_flag():
    return fb.backends._state.anomaly


def test_anomaly_forward_first_offender_wins_over_later_ops(backend):
    """NaN produced by ``mul`` and then flowing through linear, tanh and the loss: the
    error names ``mul``, not a later op."""
    x = fb.Parameter(np.ones((2, 3)))
    W = fb.Parameter(np.ones((3, 4)))
    with pytest.raises(fb.AnomalyError, match=r"op 'mul'"):
        with fb.detect_anomaly():
            h = fb.tanh(fb.linear(x, W))
            z = h * float("inf")  # inf (tanh > 0) ...
            fb.cross_entropy(fb.linear(z, fb.Parameter(np.ones((4, 2)))), np.array([0, 1]))


def test_anomaly_does_not_fire_on_finite_graphs(backend, rng):
    """A whole training step at extreme but finite values: no false alarm."""
    with fb.detect_anomaly():
        for dtype in DTYPES:
            E = fb.Parameter(rng.standard_normal((20, 4)).astype(dtype) * 1e3)
            W = fb.Parameter(rng.standard_normal((12, 6)).astype(dtype))
            U = fb.Parameter(rng.standard_normal((6, 5)).astype(dtype) * 1e3)
            h = fb.tanh(fb.linear(fb.embedding(E, rng.integers(0, 20, (8, 3))), W))
            loss = fb.cross_entropy(h @ U, rng.integers(0, 5, 8))
            loss.backward()
            assert np.isfinite(loss.data)


def _backward_overflow(dt, via):
    """Forward values underflow to 0 (finite) while the backward multiplies two huge
    factors: the gradient overflows to inf in the backward of op ``via``."""
    big, small = (1e30, 1e-30) if dt == np.float32 else (1e200, 1e-200)
    x = fb.Parameter(np.ones((1, 1), dt))
    a = (x * small) * small  # 0 in the forward (underflow), finite
    if via == "matmul":
        b = a @ fb.Tensor(np.full((1, 1), big, dt))
    elif via == "linear":
        b = fb.linear(a, fb.Tensor(np.full((1, 1), big, dt)))
    else:  # mul
        b = a * fb.Tensor(np.full((1, 1), big, dt))
    return x, (b * big).sum()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("via", ["matmul", "linear", "mul"])
def test_anomaly_backward_names_the_op(backend, dtype, via):
    with fb.detect_anomaly():
        x, loss = _backward_overflow(dtype, via)
        assert np.isfinite(loss.data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(fb.AnomalyError,
                               match=rf"backward of op '{via}' produced (inf|nan) values"):
                loss.backward()
    # without the mode the same backward silently yields a non-finite gradient
    x, loss = _backward_overflow(dtype, via)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loss.backward()
    assert not np.isfinite(x.grad).all()


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "relu", "cross_entropy", "bce", "embedding"])
def test_anomaly_backward_nan_seed_names_the_root_op(backend, op):
    """A NaN gradient handed to backward() is reported by the first op it reaches."""
    x = fb.Parameter(np.full((2, 3), 0.5))
    with fb.detect_anomaly():
        if op == "cross_entropy":
            y = fb.cross_entropy(x, np.array([0, 1]))
        elif op == "bce":
            y = fb.binary_cross_entropy_with_logits(x, np.ones((2, 3)))
        elif op == "embedding":
            y = fb.embedding(x, np.array([[0, 1], [1, 1]]))
        else:
            y = getattr(fb, op)(x)
        grad = np.ones(y.shape)
        grad.reshape(-1)[0] = np.nan
        name = "binary_cross_entropy_with_logits" if op == "bce" else op
        with pytest.raises(fb.AnomalyError, match=rf"backward of op '{name}' produced nan"):
            y.backward(grad)


def test_anomaly_mode_is_scoped_nested_and_thread_local(backend):
    assert not backends_anomaly_flag()
    with fb.detect_anomaly():
        with fb.detect_anomaly():
            assert backends_anomaly_flag()
        assert backends_anomaly_flag()
        seen = []
        t = threading.Thread(target=lambda: seen.append(fb.backends._state.anomaly))
        t.start()
        t.join()
        assert seen == [False]  # another thread is not slowed down / affected
    assert not backends_anomaly_flag()
    # restored after an AnomalyError escapes the block
    with pytest.raises(fb.AnomalyError):
        with fb.detect_anomaly():
            fb.tanh(fb.Parameter(np.array([np.nan])))
    assert not backends_anomaly_flag()

    @fb.detect_anomaly()
    def step():
        return fb.sigmoid(fb.Parameter(np.array([np.nan])))

    with pytest.raises(fb.AnomalyError, match="'sigmoid'"):
        step()
    assert not backends_anomaly_flag()


def test_anomaly_error_is_a_runtime_error_and_graph_state_is_clean(backend):
    """After an AnomalyError in the backward, the leaves' grads are not half-written
    garbage for the next (finite) step: a new graph works."""
    assert issubclass(fb.AnomalyError, RuntimeError)
    W = fb.Parameter(np.ones((3, 3)))
    with fb.detect_anomaly():
        loss = (fb.Tensor(np.ones((1, 3))) @ W).sum()
        with pytest.raises(fb.AnomalyError):
            loss.backward(np.array(np.nan))
        W.zero_grad()
        loss = (fb.Tensor(np.ones((1, 3))) @ W).sum()
        loss.backward()
    np.testing.assert_array_equal(W.grad, np.ones((3, 3)))
