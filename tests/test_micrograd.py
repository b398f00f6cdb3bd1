"""micrograd's own test suite, ``test/test_engine.py`` of karpathy/micrograd, re-expressed
with fastbp on both backends.

The expressions are copied from micrograd (``Value(x)`` -> a 0-d float64 tensor that
requires grad, ``v.relu()`` -> ``fb.relu(v)``, ``v.tanh()`` / ``v.exp()`` -> ``fb.tanh`` /
``fb.exp``). micrograd compares against PyTorch computed on the fly; here the values
PyTorch computes (float64) are hard-coded: ``test_sanity_check`` gives y = -20.0 and
x.grad = 46.0 (compared with ``==`` as micrograd does); ``test_more_ops`` gives
g = 24.7041, a.grad = 138.8338, b.grad = 645.5773, whose exact values are the rationals
2421/98, 47620/343 and 221433/343 (compared within micrograd's tolerance 1e-6).
``test_unary_tensor_fns`` (in micrograd's current test file) checks tanh and exp, where
PyTorch's values are the exact math ones.

Python augmented assignment (``c += c + 1``) rebinds ``c`` to a new node, as it does for
micrograd's ``Value``.
"""

import math

import numpy as np
import pytest

import fastbp as fb


def Value(x, dtype=np.float64):
    """micrograd's scalar: a 0-d tensor that requires grad."""
    return fb.Tensor(np.array(x, dtype), requires_grad=True)


def sanity_check(x):
    z = 2 * x + 2 + x
    q = fb.relu(z) + z * x
    h = fb.relu(z * z)
    y = h + q + q * x
    return y


def more_ops(a, b):
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + fb.relu(b + a)
    d += 3 * d + fb.relu(b - a)
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g


def test_sanity_check(backend):
    x = Value(-4.0)
    y = sanity_check(x)
    y.backward()
    xmg, ymg = x, y

    # forward pass went well (PyTorch: -20.0)
    assert ymg.shape == () and ymg.item() == -20.0
    # backward pass went well (PyTorch: 46.0)
    assert xmg.grad.shape == () and float(xmg.grad) == 46.0


def test_more_ops(backend):
    a = Value(-4.0)
    b = Value(2.0)
    g = more_ops(a, b)
    g.backward()
    amg, bmg, gmg = a, b, g

    tol = 1e-6
    # forward pass went well (PyTorch: 24.7041)
    assert abs(gmg.item() - 2421 / 98) < tol
    assert round(gmg.item(), 4) == 24.7041
    # backward pass went well (PyTorch: 138.8338 and 645.5773)
    assert abs(float(amg.grad) - 47620 / 343) < tol
    assert abs(float(bmg.grad) - 221433 / 343) < tol
    assert round(float(amg.grad), 4) == 138.8338
    assert round(float(bmg.grad), 4) == 645.5773


def test_unary_tensor_fns(backend):
    def test_unary_tensor_fn(fn, f, df, xs, tol=1e-6):
        for x in xs:
            xv = Value(x)
            yv = fn(xv)
            yv.backward()
            # forward pass went well
            assert abs(yv.item() - f(x)) < tol
            # backward pass went well
            assert abs(float(xv.grad) - df(x)) < tol

    test_unary_tensor_fn(fb.tanh, math.tanh, lambda x: 1 - math.tanh(x) ** 2, [-1.0, 0.123, 2.0])
    test_unary_tensor_fn(fb.exp, math.exp, math.exp, [-1.0, 0.123, 2.0])


# ---------------------------------------------------------------- beyond micrograd
def test_more_ops_float32(backend):
    a = Value(-4.0, np.float32)
    b = Value(2.0, np.float32)
    g = more_ops(a, b)
    g.backward()
    assert g.dtype == np.float32 and a.grad.dtype == np.float32
    assert g.item() == pytest.approx(2421 / 98, rel=1e-5)
    assert float(a.grad) == pytest.approx(47620 / 343, rel=1e-5)
    assert float(b.grad) == pytest.approx(221433 / 343, rel=1e-5)


def test_gradcheck_micrograd_expressions(backend):
    assert fb.gradcheck(sanity_check, [Value(-4.0)])
    # away from relu's kink at 0 (b + a = -2 and b - a = 6 here)
    assert fb.gradcheck(more_ops, [Value(-4.0), Value(2.0)], rtol=1e-6)


def test_more_ops_elementwise_on_vectors(backend):
    """The same expression on vectors: every element behaves like the scalar case."""
    a = fb.Tensor(np.array([-4.0, -4.0, 1.5]), requires_grad=True)
    b = fb.Tensor(np.array([2.0, 2.0, -0.5]), requires_grad=True)
    g = more_ops(a, b)
    g.sum().backward()
    for i in range(3):
        ai, bi = Value(a.data[i]), Value(b.data[i])
        gi = more_ops(ai, bi)
        gi.backward()
        assert g.data[i] == pytest.approx(gi.item(), rel=1e-12)
        assert a.grad[i] == pytest.approx(float(ai.grad), rel=1e-12)
        assert b.grad[i] == pytest.approx(float(bi.grad), rel=1e-12)
