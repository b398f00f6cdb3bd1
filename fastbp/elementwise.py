"""Graph rules of the elementwise ops: each forward next to its backward closure.

Binary ops follow numpy broadcasting; their backward sums a gradient down to each
input's shape (:func:`fastbp.tensor._send`).
"""

from __future__ import annotations

from . import backends
from .tensor import _broadcast_shape, _pair, _result, _send

__all__ = ["add", "sub", "mul"]


def add(a, b):
    """Elementwise ``a + b`` with numpy broadcasting (e.g. a (n, m) matrix plus a (m,)
    bias)."""
    a, b = _pair(a, b, "add")
    st = backends._state
    ops = st.ops
    A, B = a.data, b.data
    if A.shape == B.shape:
        Y = ops.add(A, B)
    elif A.ndim == 2 and B.shape == (A.shape[1],):
        Y = ops.add_bias(A, B)
    else:
        _broadcast_shape(A.shape, B.shape, "add")
        Y = ops.add(A, B)
    out, track = _result(Y, (a, b), "add", st)
    if track:

        def backward(g):
            ops = backends._state.ops
            if a.requires_grad:
                _send(a, ops, g, True)
            if b.requires_grad:
                _send(b, ops, g, True)

        out._backward = backward
    return out


def sub(a, b):
    """Elementwise ``a - b`` with numpy broadcasting."""
    a, b = _pair(a, b, "sub")
    st = backends._state
    ops = st.ops
    _broadcast_shape(a.data.shape, b.data.shape, "sub")
    out, track = _result(ops.sub(a.data, b.data), (a, b), "sub", st)
    if track:

        def backward(g):
            ops = backends._state.ops
            if a.requires_grad:
                _send(a, ops, g, True)
            if b.requires_grad:
                _send(b, ops, ops.scale(g, -1.0), False)

        out._backward = backward
    return out


def mul(a, b):
    """Elementwise ``a * b`` with numpy broadcasting."""
    a, b = _pair(a, b, "mul")
    st = backends._state
    ops = st.ops
    A, B = a.data, b.data
    _broadcast_shape(A.shape, B.shape, "mul")
    out, track = _result(ops.mul(A, B), (a, b), "mul", st)
    if track:

        def backward(g):
            ops = backends._state.ops
            for x, other in ((a, B), (b, A)):
                if not x.requires_grad:
                    continue
                if other.shape == g.shape and x.data.shape == g.shape:
                    buf, beta = x._grad_target()
                    ops.backprop_mul(g, other, buf, beta)
                else:
                    _send(x, ops, ops.mul(g, other), False)

        out._backward = backward
    return out
