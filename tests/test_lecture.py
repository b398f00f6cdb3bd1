"""The lecture's examples (CS224N lecture 3, notes in shared/lecture3/) run through fastbp,
on both backends: the computation-graph slide ``f = (x + y) * max(y, z)``, the window
classifier's probability ``J = sigmoid(u^T tanh(Wx + b))`` written by hand with ``exp``
and ``/``, the "Implementation" slide's ``MultiplyGate`` node type as a custom node, and
the Jacobian identities checked with ``fb.jacobian``. (The README's code blocks, including
its walkthrough of the lecture, are run by ``test_readme.py``.)"""

import numpy as np
import pytest

import fastbp as fb


def scalar(v, dtype=np.float64):
    return fb.Tensor(np.array(v, dtype), requires_grad=True)


# ---------------------------------------------------------------------- the slide
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_slide_example_plus_distributes_max_routes_times_switches(backend, dtype):
    x, y, z = scalar(1.0, dtype), scalar(2.0, dtype), scalar(0.0, dtype)
    a = x + y  # "+" distributes the upstream gradient
    b = fb.maximum(y, z)  # "max" routes it to the larger input
    f = a * b  # "*" switches: each input gets the other's value
    f.backward()
    assert f.item() == 6.0 and f.dtype == dtype
    assert (float(x.grad), float(y.grad), float(z.grad)) == (2.0, 5.0, 0.0)


def test_slide_example_tie_splits_evenly(backend):
    """max(y, z) with y == z: PyTorch's rule, half the upstream gradient to each."""
    x, y, z = scalar(1.0), scalar(2.0), scalar(2.0)
    f = (x + y) * fb.maximum(y, z)
    f.backward()
    assert f.item() == 6.0
    assert (float(x.grad), float(y.grad), float(z.grad)) == (2.0, 2.0 + 1.5, 1.5)


def test_slide_example_gradcheck(backend):
    assert fb.gradcheck(lambda x, y, z: (x + y) * fb.maximum(y, z),
                        [scalar(1.0), scalar(2.0), scalar(0.0)])


# ---------------------------------------------------------------------- J = sigmoid(s)
def _window_classifier(dtype=np.float64, seed=0, d=4, window=5, n=8):
    rng = np.random.default_rng(seed)
    x = fb.Tensor(rng.standard_normal(window * d).astype(dtype), requires_grad=True)
    W = fb.Parameter((rng.standard_normal((n, window * d)) / np.sqrt(window * d)).astype(dtype))
    b = fb.Parameter(rng.standard_normal(n).astype(dtype) * 0.1)
    u = fb.Parameter(rng.standard_normal(n).astype(dtype))
    return x, W, b, u


def score(x, W, b, u):
    h = fb.tanh(W @ x + b)  # h = f(Wx + b)
    return u @ h  # s = u^T h


def J_by_hand(x, W, b, u):
    s = score(x, W, b, u)
    return 1 / (1 + fb.exp(-s))  # sigma(s) = 1 / (1 + e^{-s})


def J_builtin(x, W, b, u):
    return fb.sigmoid(score(x, W, b, u))


def _value_and_grads(fn, params):
    for p in params:
        p.grad = None
    J = fn(*params)
    J.backward()
    return J.item(), [p.grad.copy() for p in params]


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_sigmoid_by_hand_matches_fb_sigmoid(backend, dtype, rtol):
    params = _window_classifier(dtype)
    v1, g1 = _value_and_grads(J_by_hand, params)
    v2, g2 = _value_and_grads(J_builtin, params)
    assert v1 == pytest.approx(v2, rel=rtol)
    for a, b_ in zip(g1, g2):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b_, rtol=rtol, atol=rtol * 1e-3)


def test_sigmoid_by_hand_gradcheck(backend):
    assert fb.gradcheck(J_by_hand, list(_window_classifier(seed=1)))


def test_minus_log_J_is_the_binary_cross_entropy(backend):
    """The lecture's loss -log J, written by hand, equals the fused loss for target 1."""
    params = _window_classifier(seed=2)
    v1, g1 = _value_and_grads(lambda *p: -fb.log(J_by_hand(*p)), params)
    v2, g2 = _value_and_grads(
        lambda *p: fb.binary_cross_entropy_with_logits(score(*p).reshape(1), np.ones(1)),
        params)
    assert v1 == pytest.approx(v2, rel=1e-12)
    for a, b_ in zip(g1, g2):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-14)


def test_score_gradients_are_the_lectures_formulas(backend):
    """ds/db = delta = u o f'(z), ds/dW = delta x^T, ds/du = h, ds/dx = W^T delta."""
    x, W, b, u = _window_classifier(seed=3)
    score(x, W, b, u).backward()
    h = np.tanh(W.data @ x.data + b.data)
    delta = u.data * (1 - h**2)
    np.testing.assert_allclose(b.grad, delta, rtol=1e-12)
    np.testing.assert_allclose(W.grad, np.outer(delta, x.data), rtol=1e-12)
    np.testing.assert_allclose(u.grad, h, rtol=1e-12)
    np.testing.assert_allclose(x.grad, W.data.T @ delta, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------- MultiplyGate
class MultiplyGate(fb.Function):
    """The lecture's node type: forward computes z = x * y, backward takes dz (the
    upstream gradient) and returns [dx, dy] = [dz * y, dz * x]."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, dz):
        x, y = ctx.saved_tensors
        return dz * y, dz * x


def test_multiply_gate_used_twice_in_one_graph(backend):
    rng = np.random.default_rng(4)
    x, y, z = (fb.Parameter(rng.standard_normal(3)) for _ in range(3))
    # two MultiplyGate nodes; x feeds both
    f = fb.tanh(MultiplyGate.apply(x, y) + MultiplyGate.apply(x, z)).sum()
    f.backward()
    grads = [p.grad.copy() for p in (x, y, z)]
    for p in (x, y, z):
        p.zero_grad()
    fb.tanh(x * y + x * z).sum().backward()  # the same with the built-in "*"
    for g, p in zip(grads, (x, y, z)):
        np.testing.assert_allclose(g, p.grad, rtol=1e-12)


def test_multiply_gate_chained_and_gradchecked(backend):
    rng = np.random.default_rng(5)
    x, y = fb.Parameter(rng.standard_normal((2, 3))), fb.Parameter(rng.standard_normal((2, 3)))

    def f(x, y):
        z = MultiplyGate.apply(x, y)
        return MultiplyGate.apply(z, z + x)  # the first node's output used twice

    assert fb.gradcheck(f, [x, y])
    f(x, y).sum().backward()
    # d/dx (xy (xy + x)) = 2 x y^2 + 2 x y ; d/dy = 2 x^2 y + x^2
    X, Y = x.data, y.data
    np.testing.assert_allclose(x.grad, 2 * X * Y**2 + 2 * X * Y, rtol=1e-12)
    np.testing.assert_allclose(y.grad, 2 * X**2 * Y + X**2, rtol=1e-12)


def test_multiply_gate_float32(backend):
    x = fb.Parameter(np.array([1.0, 2.0], np.float32))
    y = fb.Parameter(np.array([3.0, -1.0], np.float32))
    z = MultiplyGate.apply(x, y)
    assert z.dtype == np.float32
    z.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, y.data)


# ---------------------------------------------------------------------- Jacobians
@pytest.mark.parametrize(
    "f, df",
    [
        (fb.tanh, lambda z: 1 - np.tanh(z) ** 2),
        (fb.sigmoid, lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
        (fb.exp, np.exp),
        (lambda z: z**3, lambda z: 3 * z**2),
        (fb.relu, lambda z: (z > 0).astype(z.dtype)),
    ],
)
def test_jacobian_of_elementwise_f_is_diagonal(backend, f, df):
    z = np.array([-1.5, -0.2, 0.3, 2.0])
    J = fb.jacobian(f, z)
    np.testing.assert_allclose(J, np.diag(df(z)), rtol=1e-12, atol=1e-15)


def test_jacobian_of_affine_map(backend, rng):
    W = rng.standard_normal((3, 5))
    x = rng.standard_normal(5)
    b = rng.standard_normal(3)
    Jx, Jb, JW = fb.jacobian(lambda x, b, W: W @ x + b, x, b, W)
    np.testing.assert_allclose(Jx, W, rtol=1e-12)  # d(Wx + b)/dx = W
    np.testing.assert_array_equal(Jb, np.eye(3))  # d(Wx + b)/db = I
    # d(Wx + b)_i / dW_jk = [i == j] x_k
    np.testing.assert_allclose(JW, np.einsum("ij,k->ijk", np.eye(3), x), rtol=1e-12)


def test_jacobian_of_score(backend, rng):
    u = rng.standard_normal(4)
    h = rng.standard_normal(4)
    Ju, Jh = fb.jacobian(lambda u, h: u @ h, u, h)
    np.testing.assert_allclose(Ju, h, rtol=1e-12)  # d(u^T h)/du = h^T
    np.testing.assert_allclose(Jh, u, rtol=1e-12)  # d(u^T h)/dh = u^T


def test_chain_rule_multiplies_jacobians(backend):
    """ds/dx = (ds/dh)(dh/dz)(dz/dx) = u^T diag(f'(z)) W, and ds/dW is delta x^T in the
    shape convention."""
    x, W, b, u = _window_classifier(seed=6)
    z = W.data @ x.data + b.data
    ds_dh = fb.jacobian(lambda h: fb.Tensor(u.data) @ h, np.tanh(z))
    dh_dz = fb.jacobian(fb.tanh, z)
    dz_dx = fb.jacobian(lambda x: fb.Tensor(W.data) @ x + fb.Tensor(b.data), x)
    ds_dx = fb.jacobian(lambda x: score(x, W, b, u), x)
    np.testing.assert_allclose(ds_dx, ds_dh @ dh_dz @ dz_dx, rtol=1e-12, atol=1e-15)
    ds_dW = fb.jacobian(lambda W_: score(x, W_, b, u), W)
    delta = u.data * (1 - np.tanh(z) ** 2)
    np.testing.assert_allclose(ds_dW, np.outer(delta, x.data), rtol=1e-12, atol=1e-15)
    assert W.grad is None and x.grad is None  # jacobian leaves the tensors' grads alone
