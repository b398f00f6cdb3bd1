"""Optimisers: exact update rules, sparse rows, both backends agree, loss decreases."""

import numpy as np
import pytest

import fastbp as fb


def test_sgd_dense_and_sparse_rule(backend, rng):
    W0 = rng.standard_normal((4, 3))
    E0 = rng.standard_normal((6, 3))
    W, E = fb.Parameter(W0.copy()), fb.Parameter(E0.copy())
    ids = np.array([[1, 1, 4]])
    x = fb.embedding(E, ids)
    (x @ np.ones((9, 4)) @ W).sum().backward()
    gW = W.grad.copy()
    gE = E.grad.toarray()
    fb.optim.SGD([W, E], lr=0.5).step()
    np.testing.assert_allclose(W.data, W0 - 0.5 * gW, rtol=1e-13)
    np.testing.assert_allclose(E.data, E0 - 0.5 * gE, rtol=1e-13)
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(E.data[untouched], E0[untouched])


def adam_reference(w, grads, lr, b1, b2, eps):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1**t)
        vhat = v / (1 - b2**t)
        w = w - lr * mhat / (np.sqrt(vhat) + eps)
    return w


def test_adam_dense_matches_textbook(backend, rng):
    w0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    p = fb.Parameter(w0.copy())
    opt = fb.optim.Adam([p], lr=0.01, betas=(0.8, 0.9), eps=1e-6)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    np.testing.assert_allclose(p.data, adam_reference(w0, grads, 0.01, 0.8, 0.9, 1e-6), rtol=1e-12)


def test_adam_rows_is_lazy(backend, rng):
    E0 = rng.standard_normal((5, 2))
    E = fb.Parameter(E0.copy())
    opt = fb.optim.Adam([E], lr=0.1)
    (fb.embedding(E, np.array([[3, 3, 1]])) * 1.0).sum().backward()
    opt.step()
    np.testing.assert_array_equal(E.data[[0, 2, 4]], E0[[0, 2, 4]])
    expected = adam_reference(E0[[1, 3]], [np.array([[1.0, 1.0], [2.0, 2.0]])], 0.1, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(E.data[[1, 3]], expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_backends_train_identically(dtype, opt_name):
    rng = np.random.default_rng(0)
    init = {
        "E": rng.standard_normal((30, 4)),
        "W": rng.standard_normal((12, 8)) * 0.3,
        "b": np.zeros(8),
        "U": rng.standard_normal((8, 3)) * 0.3,
        "c": np.zeros(3),
    }
    batches = [(rng.integers(0, 30, (16, 3)), rng.integers(0, 3, 16)) for _ in range(20)]
    results = {}
    for name in ("cython", "numpy"):
        with fb.use_backend(name):
            ps = {k: fb.Parameter(v.astype(dtype)) for k, v in init.items()}
            opt = getattr(fb.optim, opt_name)(list(ps.values()), lr=0.05)
            losses = []
            for ids, y in batches:
                h = fb.tanh(fb.embedding(ps["E"], ids) @ ps["W"] + ps["b"])
                loss = fb.cross_entropy(h @ ps["U"] + ps["c"], y)
                loss.backward()
                opt.step()
                opt.zero_grad()
                losses.append(loss.item())
            results[name] = (losses, {k: p.data for k, p in ps.items()})
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(results["cython"][0], results["numpy"][0], rtol=rtol)
    for k in init:
        np.testing.assert_allclose(results["cython"][1][k], results["numpy"][1][k], rtol=rtol, atol=rtol)
    assert results["cython"][0][-1] < results["cython"][0][0]


def test_optimizer_argument_errors():
    p = fb.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="empty"):
        fb.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="require grad"):
        fb.optim.SGD([fb.Tensor(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        fb.optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        fb.optim.Adam([p], betas=(1.5, 0.9))
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match="shape"):
        fb.optim.SGD([p], lr=0.1).step()


def test_zero_grad_reuses_buffer(backend):
    W = fb.Parameter(np.ones((3, 3)))
    (W @ np.ones(3)).sum().backward()
    buf = W.grad
    fb.optim.SGD([W], lr=0.1).zero_grad()
    (W @ np.ones(3)).sum().backward()
    assert W.grad is buf  # no allocation in the steady state
