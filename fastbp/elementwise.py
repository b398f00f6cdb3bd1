"""Graph rules of the elementwise ops: each forward next to its backward closure.

Binary ops follow numpy broadcasting; their backward sums a gradient down to each
input's shape (:func:`fastbp.tensor._send`).
"""

from __future__ import annotations

import numbers

from . import backends
from .tensor import Tensor, _broadcast_shape, _pair, _result, _send

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "power",
    "exp",
    "log",
    "sqrt",
    "maximum",
    "minimum",
]


def _unary_input(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a fastbp Tensor, got {type(x).__name__}")
    return x


def _give(x, ops, g, grad_at):
    """Hand ``x`` its gradient ``grad_at(out, beta)``, computed at the child's shape
    ``g.shape``: written straight into ``x``'s gradient buffer when the shapes agree, else
    computed out of place and summed down over the broadcast axes."""
    if x.data.shape == g.shape:
        buf, beta = x._grad_target()
        grad_at(buf, beta)
    else:
        _send(x, ops, grad_at(None, 0.0), False)


def _unary(x, op, saved):
    """A same-shape elementwise op whose backward ``backprop_<op>(g, S, out, beta)`` reads
    the saved input (``saved="input"``) or output (``saved="output"``) ``S``."""
    x = _unary_input(x, op)
    st = backends._state
    X = x.data
    Y = getattr(st.ops, op)(X)
    out, track = _result(Y, (x,), op, st)
    if track:
        S = X if saved == "input" else Y
        backprop = "backprop_" + op

        def backward(g):
            buf, beta = x._grad_target()
            getattr(backends._state.ops, backprop)(g, S, buf, beta)

        out._backward = backward
    return out


def add(a, b):
    """Elementwise ``a + b`` with numpy broadcasting (e.g. a (n, m) matrix plus a (m,)
    bias).

    Parameters
    ----------
    a, b : Tensor or float
        At least one is a Tensor; a Python number takes the tensor's dtype.

    Returns
    -------
    Tensor
        Of the broadcast shape; its backward passes ``dZ`` to both inputs, summed down to
        each input's shape.
    """
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
    """Elementwise ``a - b`` with numpy broadcasting.

    Parameters
    ----------
    a, b : Tensor or float
        At least one is a Tensor.

    Returns
    -------
    Tensor
        Of the broadcast shape; its backward passes ``dZ`` to ``a`` and ``-dZ`` to ``b``.
    """
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
    """Elementwise ``a * b`` with numpy broadcasting.

    Parameters
    ----------
    a, b : Tensor or float
        At least one is a Tensor.

    Returns
    -------
    Tensor
        Of the broadcast shape; its backward passes ``dZ * b`` to ``a`` and ``dZ * a`` to
        ``b``, summed down to each input's shape.
    """
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


def div(a, b):
    """Elementwise ``a / b`` with numpy broadcasting.

    Parameters
    ----------
    a, b : Tensor or float
        At least one is a Tensor; a Python number takes the tensor's dtype.

    Returns
    -------
    Tensor
        Of the broadcast shape. The backward gives ``dZ / b`` to ``a`` and
        ``-dZ * a / b**2`` to ``b``, each summed down to its input's shape.
    """
    a, b = _pair(a, b, "div")
    st = backends._state
    A, B = a.data, b.data
    _broadcast_shape(A.shape, B.shape, "div")
    out, track = _result(st.ops.div(A, B), (a, b), "div", st)
    if track:

        def backward(g):
            ops = backends._state.ops
            if a.requires_grad:
                _give(a, ops, g, lambda buf, beta: ops.backprop_div(g, A, B, 0, buf, beta))
            if b.requires_grad:
                _give(b, ops, g, lambda buf, beta: ops.backprop_div(g, A, B, 1, buf, beta))

        out._backward = backward
    return out


def neg(x):
    """Elementwise ``-x``.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    Tensor
        ``-x``; its backward is ``-dY``.
    """
    x = _unary_input(x, "neg")
    st = backends._state
    out, track = _result(st.ops.scale(x.data, -1.0), (x,), "neg", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.scale(g, -1.0, buf, beta)

        out._backward = backward
    return out


def power(x, p):
    """Elementwise ``x ** p`` for a constant exponent.

    Parameters
    ----------
    x : Tensor
    p : int or float
        A Python number (a tensor exponent is not supported).

    Returns
    -------
    Tensor
        ``x ** p``; its backward is ``dY * p * x ** (p - 1)`` (0 for ``p == 0``).
    """
    x = _unary_input(x, "power")
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(
            f"power: the exponent must be a Python number, got {type(p).__name__}"
        )
    p = float(p)
    st = backends._state
    X = x.data
    out, track = _result(st.ops.power(X, p), (x,), "power", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.backprop_power(g, X, p, buf, beta)

        out._backward = backward
    return out


def exp(x):
    """Elementwise exponential.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    Tensor
        ``exp(x)``; its backward is ``dY * Y`` with ``Y`` the saved output.
    """
    return _unary(x, "exp", "output")


def log(x):
    """Elementwise natural logarithm.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    Tensor
        ``log(x)`` (NaN for negative entries, ``-inf`` at 0: :class:`detect_anomaly`
        reports them naming ``'log'``); its backward is ``dY / x``.
    """
    return _unary(x, "log", "input")


def sqrt(x):
    """Elementwise square root.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    Tensor
        ``sqrt(x)``; its backward is ``dY * 0.5 / Y`` with ``Y`` the saved output.
    """
    return _unary(x, "sqrt", "output")


def _choice(a, b, op):
    a, b = _pair(a, b, op)
    st = backends._state
    A, B = a.data, b.data
    _broadcast_shape(A.shape, B.shape, op)
    out, track = _result(getattr(st.ops, op)(A, B), (a, b), op, st)
    if track:
        backprop = "backprop_" + op

        def backward(g):
            ops = backends._state.ops
            fn = getattr(ops, backprop)
            if a.requires_grad:
                _give(a, ops, g, lambda buf, beta: fn(g, A, B, 0, buf, beta))
            if b.requires_grad:
                _give(b, ops, g, lambda buf, beta: fn(g, A, B, 1, buf, beta))

        out._backward = backward
    return out


def maximum(a, b):
    """Elementwise maximum of ``a`` and ``b`` with numpy broadcasting.

    Parameters
    ----------
    a, b : Tensor or float
        At least one is a Tensor (``fb.maximum(z, 0.0)`` is a ReLU).

    Returns
    -------
    Tensor
        Of the broadcast shape. NaN propagates, as in ``np.maximum``.

    Notes
    -----
    The gradient goes to the input that was chosen. On a tie (``a == b``) it is split
    evenly, ``dZ / 2`` to each input, as PyTorch does; so at a tie the gradient is the
    average of the two one-sided derivatives.
    """
    return _choice(a, b, "maximum")


def minimum(a, b):
    """Elementwise minimum of ``a`` and ``b`` with numpy broadcasting.

    Parameters
    ----------
    a, b : Tensor or float
        At least one is a Tensor.

    Returns
    -------
    Tensor
        Of the broadcast shape. NaN propagates, as in ``np.minimum``.

    Notes
    -----
    The gradient goes to the input that was chosen; on a tie (``a == b``) it is split
    evenly, ``dZ / 2`` to each input (PyTorch's rule).
    """
    return _choice(a, b, "minimum")
