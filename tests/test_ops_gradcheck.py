"""Every op of the general engine (issue 7) against float64 central differences
(``fb.gradcheck``) on both backends: broadcasting both ways, scalars, 3-D operands,
axis variants, repeated indices, views (slices with negative steps, None, Ellipsis,
transpose/reshape chains), concatenate/stack on several axes and nodes used several
times. The cases are in tests/_ops_cases.py."""

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: find the cases
from _ops_cases import CASES  # noqa: E402


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name, backend):
    build, fn = CASES[name]
    inputs = build(np.random.default_rng(zlib.crc32(name.encode())), np.float64)
    result = fb.gradcheck(fn, inputs)
    assert result.passed, name


def test_every_new_public_op_has_a_case():
    """A case name mentions each public op of the new API."""
    names = " ".join(CASES)
    for op in ("add", "sub", "mul", "div", "rdiv", "neg", "pow", "exp", "log", "sqrt",
               "maximum", "minimum", "sum", "mean", "max", "logsumexp", "softmax",
               "log_softmax", "reshape", "transpose", "getitem", "concatenate", "stack"):
        assert op in names, op


def test_micrograd_sanity_check(backend):
    """micrograd's test_engine.py::test_sanity_check (values PyTorch computes)."""
    x = fb.Tensor(-4.0, requires_grad=True)
    z = 2 * x + 2 + x
    q = fb.relu(z) + z * x
    h = fb.relu(z * z)
    y = h + q + q * x
    y.backward()
    assert y.item() == pytest.approx(-20.0)
    assert float(x.grad) == pytest.approx(46.0)


def test_micrograd_more_ops(backend):
    """micrograd's test_engine.py::test_more_ops: 24.7041, 138.8338, 645.5773."""
    a = fb.Tensor(-4.0, requires_grad=True)
    b = fb.Tensor(2.0, requires_grad=True)
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + fb.relu(b + a)
    d = d + 3 * d + fb.relu(b - a)
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    assert g.item() == pytest.approx(24.70408163265306, abs=1e-12)
    assert float(a.grad) == pytest.approx(138.83381924198252, abs=1e-9)
    assert float(b.grad) == pytest.approx(645.5772594752186, abs=1e-9)


def test_lecture_slide_example(backend):
    """(x + y) * max(y, z) at (1, 2, 0): 6, gradients 2, 5, 0 (max routes the gradient)."""
    x, y, z = (fb.Tensor(v, requires_grad=True) for v in (1.0, 2.0, 0.0))
    f = (x + y) * fb.maximum(y, z)
    f.backward()
    assert f.item() == 6.0
    assert (float(x.grad), float(y.grad), float(z.grad)) == (2.0, 5.0, 0.0)


def test_lecture_sigmoid_by_hand_matches_fb_sigmoid(backend, rng):
    """J = sigmoid(u^T tanh(Wx + b)) with exp and / gives fb.sigmoid's gradients."""
    u, W, x, b = (rng.standard_normal(s) for s in ((4,), (4, 3), (3,), (4,)))
    grads = []
    for by_hand in (True, False):
        ps = [fb.Parameter(a.copy()) for a in (u, W, x, b)]
        s = ps[0] @ fb.tanh(ps[1] @ ps[2] + ps[3])
        J = 1.0 / (1.0 + fb.exp(-s)) if by_hand else fb.sigmoid(s)
        J.backward()
        grads.append([J.item()] + [p.grad.copy() for p in ps])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
