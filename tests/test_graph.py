"""Graph semantics (topological order, accumulation, freeing, no_grad), dtypes and the
errors raised for bad input — on both backends."""

import gc
import weakref

import numpy as np
import pytest

import fastbp as fb


def test_long_chain_backpropagates_without_recursion(backend):
    x = fb.Parameter(np.array(1.0))
    t = x
    for _ in range(10_000):
        t = t * 1.0001
    t.backward()
    assert x.grad == pytest.approx(1.0001**10_000, rel=1e-9)


def test_node_used_twice_accumulates(backend):
    a = fb.Parameter(np.array([1.0, -2.0, 3.0]))
    ((a + a) * a).sum().backward()  # d/da 2a^2 = 4a
    np.testing.assert_allclose(a.grad, 4 * a.data)


def test_leaf_grad_accumulates_across_backward_calls_until_zero_grad(backend):
    W = fb.Parameter(np.ones((2, 3)))
    x = fb.Tensor(np.arange(3.0))
    for _ in range(3):
        (W @ x).sum().backward()
    np.testing.assert_allclose(W.grad, 3 * np.tile(np.arange(3.0), (2, 1)))
    opt = fb.optim.SGD([W], lr=0.1)
    opt.zero_grad()
    assert W.grad is None
    (W @ x).sum().backward()
    np.testing.assert_allclose(W.grad, np.tile(np.arange(3.0), (2, 1)))


def test_backward_twice_raises_and_retain_graph_allows_it(backend):
    a = fb.Parameter(np.array([1.0, 2.0]))
    loss = (fb.tanh(a) * a).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    a.zero_grad()
    loss = (fb.tanh(a) * a).sum()
    loss.backward(retain_graph=True)
    first = a.grad.copy()
    loss.backward()
    np.testing.assert_allclose(a.grad, 2 * first)


def test_graph_is_freed_after_backward(backend):
    W = fb.Parameter(np.ones((3, 3)))
    h = fb.tanh(W @ np.ones(3))
    ref = weakref.ref(h)
    loss = h.sum()
    del h
    loss.backward()
    gc.collect()
    assert ref() is None  # the loss no longer keeps the intermediate alive


def test_no_grad_builds_no_graph(backend):
    W = fb.Parameter(np.ones((2, 2)))
    with fb.no_grad():
        out = fb.tanh(W @ W)
        assert not fb.is_grad_enabled()
    assert fb.is_grad_enabled()
    assert not out.requires_grad and out.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.sum().backward()

    @fb.no_grad()
    def infer():
        return W @ W

    assert not infer().requires_grad


def test_non_scalar_backward_needs_grad(backend):
    a = fb.Parameter(np.ones(3))
    with pytest.raises(RuntimeError, match="one-element"):
        (a * 2.0).backward()
    (a * 2.0).backward(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(a.grad, [2.0, 0.0, 4.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_end_to_end(backend, dtype, rng):
    E = fb.Parameter(rng.standard_normal((10, 4)).astype(dtype))
    W = fb.Parameter(rng.standard_normal((8, 5)).astype(dtype))
    b = fb.Parameter(np.zeros(5, dtype))
    U = fb.Parameter(rng.standard_normal((5, 3)).astype(dtype))
    ids = np.array([[1, 2], [3, 3]])
    x = fb.embedding(E, ids)
    h = fb.sigmoid(x @ W + b) * 2.0 - 1.0
    loss = fb.cross_entropy(h @ U, np.array([0, 2])) + fb.binary_cross_entropy_with_logits(
        (h @ U).sum(axis=1), np.array([1, 0])
    )
    for t in (x, h, loss):
        assert t.dtype == dtype
    loss.backward()
    for p in (W, b, U):
        assert p.grad.dtype == dtype
    assert E.grad.dtype == dtype and E.grad.toarray().dtype == dtype
    opt = fb.optim.Adam([E, W, b, U])
    opt.step()
    for p in (E, W, b, U):
        assert p.data.dtype == dtype


def test_mixed_dtypes_raise_type_error(backend):
    a = fb.Parameter(np.ones((2, 2), np.float32))
    b = fb.Parameter(np.ones((2, 2), np.float64))
    for op in (lambda: a + b, lambda: a * b, lambda: a @ b, lambda: a - np.ones(2)):
        with pytest.raises(TypeError, match="float32 vs float64|float32.*float64"):
            op()


def test_integer_data_rejected():
    with pytest.raises(TypeError, match="float32 or float64"):
        fb.Tensor(np.arange(3))
    assert fb.Tensor([1, 2]).dtype == np.float64  # Python numbers are fine


def test_shape_mismatch_names_both_shapes(backend):
    a = fb.Parameter(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 3\)"):
        a @ a
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        a + np.ones(4)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(5, 2\)"):
        fb.linear(a, fb.Parameter(np.ones((5, 2))))


def test_embedding_bad_ids(backend):
    E = fb.Parameter(np.ones((5, 2)))
    with pytest.raises(IndexError, match="7"):
        fb.embedding(E, np.array([[0, 7]]))
    with pytest.raises(IndexError, match="-1"):
        fb.embedding(E, np.array([[0, -1]]))
    with pytest.raises(TypeError, match="integer"):
        fb.embedding(E, np.array([[0.0, 1.0]]))
    assert E.grad is None


def test_cross_entropy_bad_targets(backend):
    z = fb.Parameter(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="4"):
        fb.cross_entropy(z, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="-1"):
        fb.cross_entropy(z, np.array([0, -1, 2]))
    with pytest.raises(TypeError, match="integer"):
        fb.cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        fb.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fb.binary_cross_entropy_with_logits(z, np.full((3, 4), 2.0))


def test_embedding_gradient_is_row_sparse_and_v_independent(backend, rng):
    B, w, d = 4, 3, 5
    ids = rng.integers(0, 50, size=(B, w))
    ids[0] = [7, 7, 7]
    grads = []
    for V in (50, 200_000):
        E = fb.Parameter(np.zeros((V, d)))
        E.data[:50] = rng.standard_normal((50, d)) if V == 50 else grads[0][1]
        out = fb.embedding(E, ids)
        (out * out).sum().backward()
        g = E.grad
        assert isinstance(g, fb.RowSparseGrad)
        assert g.rows.shape == (B * w,) and g.values.shape == (B * w, d)  # nothing of size V
        dense = g.toarray()
        assert dense.shape == (V, d)
        np.testing.assert_allclose(np.asarray(g), dense)
        grads.append((dense, E.data[:50].copy()))
        # row 7 collects three contributions
        np.testing.assert_allclose(dense[7], 2 * 3 * E.data[7])
    np.testing.assert_allclose(grads[0][0], grads[1][0][:50])
    co = E.grad.coalesce()
    assert np.unique(co.rows).size == co.rows.size
    np.testing.assert_allclose(co.toarray(), E.grad.toarray())


def test_embedding_table_used_densely_and_sparsely(backend, rng):
    E = fb.Parameter(rng.standard_normal((6, 2)))
    ids = np.array([[1, 1]])
    loss = (fb.embedding(E, ids) * 2.0).sum() + (E * E).sum()
    loss.backward()
    expected = 2 * E.data
    expected[1] += 4.0
    np.testing.assert_allclose(np.asarray(E.grad), expected)


def test_detect_anomaly_names_op(backend):
    a = fb.Parameter(np.array([1.0, -1.0]))
    with fb.detect_anomaly():
        with pytest.raises(fb.AnomalyError, match="'mul'.*forward"):
            a * np.inf
        h = fb.tanh(a) * 2.0
        with pytest.raises(fb.AnomalyError, match="'mul'.*gradient"):
            h.backward(np.array([np.inf, 1.0]))
    fb.tanh(a * np.inf)  # outside the context nothing is checked


@pytest.mark.parametrize("op", ["tanh", "mul", "matmul", "linear", "sum"])
def test_backward_from_one_element_non_scalar(backend, op):
    a = fb.Parameter(np.full((1, 1), 0.5))
    fns = {
        "tanh": lambda t: fb.tanh(t),
        "mul": lambda t: t * 2.0,
        "matmul": lambda t: t @ np.full((1, 1), 3.0),
        "linear": lambda t: fb.linear(t, fb.Tensor(np.full((1, 1), 3.0))),
        "sum": lambda t: t.sum(axis=0),
    }
    expected = {"tanh": 1 - np.tanh(0.5) ** 2, "mul": 2.0, "matmul": 3.0, "linear": 3.0, "sum": 1.0}
    fns[op](a).backward()
    np.testing.assert_allclose(a.grad, [[expected[op]]])


@pytest.mark.parametrize("kind", ["byteswapped", "misaligned", "strided"])
def test_unusual_layouts_are_normalised(backend, kind):
    base = np.arange(1.0, 7.0)
    if kind == "byteswapped":
        arr = base.astype(">f8")
    elif kind == "misaligned":
        raw = np.zeros(base.nbytes + 1, np.uint8)[1:]
        arr = raw.view(np.float64)
        arr[:] = base
    else:
        arr = np.repeat(base, 2)[::2]
    t = fb.Parameter(arr)
    assert t.dtype == np.float64 and t.data.flags.c_contiguous and t.data.flags.aligned
    (fb.tanh(t) * t).sum().backward()
    np.testing.assert_allclose(t.grad, np.tanh(base) + base * (1 - np.tanh(base) ** 2))


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
def test_zero_d_activation_data_is_an_array(backend, act):
    t = getattr(fb, act)(fb.Tensor(np.array(0.5, np.float32)))
    assert isinstance(t.data, np.ndarray) and t.shape == () and t.dtype == np.float32


def test_no_grad_decorator_is_reentrant(backend):
    W = fb.Parameter(np.ones(2))

    @fb.no_grad()
    def nested(depth):
        if depth:
            nested(depth - 1)
        assert not fb.is_grad_enabled()
        return W * 2.0

    assert not nested(3).requires_grad
    assert fb.is_grad_enabled() and (W * 2.0).requires_grad
    with fb.no_grad():
        with fb.enable_grad():
            assert (W * 2.0).requires_grad
        assert not (W * 2.0).requires_grad
