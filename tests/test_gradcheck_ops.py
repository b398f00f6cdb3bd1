"""Every op's backward against central finite differences in float64, on both backends,
including shared subexpressions (a node used several times)."""

import numpy as np
import pytest

import fastbp as fb

WORST = {}
WINDOW_IDS = np.array([[1, 2, 1], [6, 6, 6], [0, 3, 5]])  # repeats inside and across windows


def P(rng, *shape, scale=1.0):
    return fb.Parameter(rng.standard_normal(shape) * scale)


def check(fn, inputs, backend):
    result = fb.gradcheck(fn, inputs)
    assert result.passed
    WORST[backend] = max(WORST.get(backend, 0.0), result.max_rel_error)
    return result


CASES = {
    "add_same": (lambda r: [P(r, 3, 4), P(r, 3, 4)], lambda a, b: (a + b).sum()),
    "add_bias": (lambda r: [P(r, 3, 4), P(r, 4)], lambda a, b: ((a + b) * (a + b)).sum()),
    "add_scalar": (lambda r: [P(r, 3, 4)], lambda a: ((2.5 + a) * a).sum()),
    "add_broadcast_col": (lambda r: [P(r, 3, 4), P(r, 3, 1)], lambda a, b: ((a + b) * a).sum()),
    "add_broadcast_0d": (lambda r: [P(r, 3, 4), P(r)], lambda a, b: ((a + b) * a).sum()),
    "sub": (lambda r: [P(r, 3, 4), P(r, 4)], lambda a, b: ((a - b) * a).sum()),
    "rsub_neg": (lambda r: [P(r, 5)], lambda a: ((1.0 - a) * (-a)).sum()),
    "mul_same": (lambda r: [P(r, 3, 4), P(r, 3, 4)], lambda a, b: (a * b).sum()),
    "mul_bias": (lambda r: [P(r, 3, 4), P(r, 4)], lambda a, b: (a * b * a).sum()),
    "truediv": (lambda r: [P(r, 3, 4)], lambda a: ((a / 3.0) * a).sum()),
    "matmul_mm": (lambda r: [P(r, 3, 4), P(r, 4, 2)], lambda a, b: ((a @ b) * (a @ b)).sum()),
    "matmul_mv": (lambda r: [P(r, 3, 4), P(r, 4)], lambda W, x: ((W @ x) * (W @ x)).sum()),
    "matmul_vm": (lambda r: [P(r, 3), P(r, 3, 4)], lambda u, W: ((u @ W) * (u @ W)).sum()),
    "matmul_vv": (lambda r: [P(r, 5), P(r, 5)], lambda u, h: (u @ h) * (u @ h)),
    "linear": (
        lambda r: [P(r, 3, 4), P(r, 4, 2), P(r, 2)],
        lambda x, W, b: (fb.linear(x, W, b) * fb.linear(x, W, b)).sum(),
    ),
    "linear_nobias": (
        lambda r: [P(r, 3, 4), P(r, 4, 2)],
        lambda x, W: (fb.linear(x, W) * fb.linear(x, W)).sum(),
    ),
    "tanh": (lambda r: [P(r, 3, 4)], lambda a: (fb.tanh(a) * a).sum()),
    "sigmoid": (lambda r: [P(r, 3, 4)], lambda a: (fb.sigmoid(a) * a).sum()),
    "relu": (lambda r: [P(r, 3, 4)], lambda a: (fb.relu(a) * a).sum()),
    "dropout": (
        lambda r: [P(r, 6, 5)],
        lambda a: (fb.dropout(a, 0.3, rng=np.random.default_rng(7)) * a).sum(),
    ),
    "sum_axis0": (lambda r: [P(r, 3, 4)], lambda a: (a.sum(axis=0) * a.sum(axis=0)).sum()),
    "sum_axis1_keepdims": (
        lambda r: [P(r, 3, 4)],
        lambda a: (a.sum(axis=1, keepdims=True) * a).sum(),
    ),
    "mean": (lambda r: [P(r, 3, 4)], lambda a: (a * a).mean() * a.mean(axis=0).sum()),
    "embedding_window": (
        lambda r: [P(r, 7, 3)],
        lambda E: (fb.embedding(E, WINDOW_IDS) * fb.embedding(E, WINDOW_IDS)).sum(),
    ),
    "embedding_1d": (
        lambda r: [P(r, 7, 3)],
        lambda E: (fb.embedding(E, np.array([4, 4, 0])) * fb.embedding(E, np.array([4, 1, 4]))).sum(),
    ),
    "cross_entropy": (
        lambda r: [P(r, 6, 5, scale=3.0)],
        lambda z: fb.cross_entropy(z, np.array([0, 4, 2, 2, 1, 3])),
    ),
    "cross_entropy_scaled": (
        lambda r: [P(r, 4, 3)],
        lambda z: fb.cross_entropy(z * z, np.array([0, 1, 2, 1])) * 3.0,
    ),
    "bce": (
        lambda r: [P(r, 8, scale=3.0)],
        lambda s: fb.binary_cross_entropy_with_logits(s, np.array([1, 0, 1, 1, 0, 0, 1, 0])),
    ),
    "bce_soft_targets": (
        lambda r: [P(r, 2, 3)],
        lambda s: fb.binary_cross_entropy_with_logits(s * s, np.full((2, 3), 0.25)),
    ),
    "shared_add_self": (lambda r: [P(r, 4)], lambda a: ((a + a) * a).sum()),
    "shared_diamond": (
        lambda r: [P(r, 3, 4), P(r, 4, 4)],
        lambda x, W: (fb.tanh(x @ W) @ W + fb.tanh(x @ W) * 2.0).sum(),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_gradient(name, backend, rng):
    make, fn = CASES[name]
    check(fn, make(rng), backend)


def window_classifier_inputs(rng, act="tanh"):
    V, d, w, H, C, B = 11, 3, 5, 6, 4, 7
    E = P(rng, V, d)
    W = P(rng, w * d, H, scale=0.5)
    b = P(rng, H)
    U = P(rng, H, C)
    c = P(rng, C)
    ids = rng.integers(0, V, size=(B, w))
    ids[0] = [2, 5, 2, 2, 9]  # an id repeated inside one window
    ids[1] = [2, 3, 4, 5, 6]  # ... and across windows
    y = rng.integers(0, C, size=B)
    return [E, W, b, U, c], ids, y


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
def test_window_classifier_gradient(backend, rng, act):
    params, ids, y = window_classifier_inputs(rng)
    f = getattr(fb, act)

    def model(E, W, b, U, c):
        h = f(fb.embedding(E, ids) @ W + b)
        return fb.cross_entropy(h @ U + c, y)

    check(model, params, backend)


def test_lecture_binary_window_model_gradient(backend, rng):
    """The lecture's per-example form: s = u^T tanh(W x + b), sigmoid score."""
    E, d, w, H = P(rng, 9, 4), 4, 5, 6
    W, b, u = P(rng, H, w * d, scale=0.5), P(rng, H), P(rng, H)
    ids = np.array([[3, 1, 3, 8, 0]])

    def model(E, W, b, u):
        x = fb.embedding(E, ids).sum(axis=0)  # (w*d,)
        s = u @ fb.tanh(W @ x + b)
        return fb.binary_cross_entropy_with_logits(s, np.array(1.0))

    check(model, [E, W, b, u], backend)


def test_report_worst_relative_error():
    """Print the worst relative error measured above (for the closing note)."""
    print("\nworst gradcheck relative error per backend:", WORST)
    for value in WORST.values():
        assert value < 1e-6
