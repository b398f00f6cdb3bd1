"""Graph rules of the reductions and of softmax: sum, mean, max, logsumexp, softmax and
log_softmax, each forward next to its backward closure."""

from __future__ import annotations

import numpy as np

from . import backends
from .tensor import Tensor, _result

__all__ = ["tensor_sum", "mean", "tensor_max", "logsumexp", "softmax", "log_softmax"]


def _tensor_input(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a fastbp Tensor, got {type(x).__name__}")
    return x


def _axes(axis, shape, op):
    """``axis`` (None, an int or a tuple of ints) as None or a tuple of distinct axes in
    [0, ndim); ValueError naming the axis when out of range."""
    if axis is None:
        return None
    ndim = len(shape)
    axes = tuple(int(a) for a in np.atleast_1d(axis))
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of range for shape {shape}")
    axes = tuple(a % ndim for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return axes


def _one_axis(axis, shape, op):
    if isinstance(axis, (tuple, list)) or axis is None:
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    return _axes(axis, shape, op)[0]


def tensor_sum(x, axis=None, keepdims=False):
    """Sum of ``x`` over ``axis``.

    Parameters
    ----------
    x : Tensor
    axis : None, int or tuple of int
        None sums all elements (a 0-d tensor); negative axes count from the end.
    keepdims : bool
        Keep the reduced axes with size 1.

    Returns
    -------
    Tensor
        The sum; its backward broadcasts ``dY`` back to ``x.shape`` (the ``expand`` op).
    """
    st = backends._state
    X = x.data
    axis = _axes(axis, X.shape, "sum")
    out, track = _result(st.ops.reduce_sum(X, axis, keepdims), (x,), "sum", st)
    if track:
        shape = X.shape

        def backward(g):
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)  # a view
            buf, beta = x._grad_target()
            backends._state.ops.expand(g, shape, buf, beta)

        out._backward = backward
    return out


def mean(x, axis=None, keepdims=False):
    """Mean of ``x`` over ``axis`` (None, an int or a tuple of ints): ``sum * (1 / n)``.

    Parameters
    ----------
    x : Tensor
    axis : None, int or tuple of int
    keepdims : bool

    Returns
    -------
    Tensor
    """
    from .elementwise import mul

    axes = _axes(axis, x.shape, "mean")
    n = x.data.size if axes is None else int(np.prod([x.shape[a] for a in axes]))
    return mul(tensor_sum(x, axis, keepdims), 1.0 / max(n, 1))


def _max_node(x, axis, keepdims):
    st = backends._state
    X = x.data
    Y = st.ops.reduce_max(X, axis, keepdims)
    out, track = _result(Y, (x,), "max", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.backprop_reduce_max(g, X, Y, axis, keepdims, buf, beta)

        out._backward = backward
    return out


def tensor_max(x, axis=None, keepdims=False):
    """Maximum of ``x`` over ``axis``.

    Parameters
    ----------
    x : Tensor
    axis : None, int or tuple of int
        None reduces all elements; a tuple reduces one axis after another.
    keepdims : bool
        Keep the reduced axes with size 1.

    Returns
    -------
    Tensor
        The maximum (NaN propagates; an empty reduction raises ValueError).

    Notes
    -----
    The gradient of each reduced slot goes to the first position of the maximum (the
    arg-max that ``np.argmax`` picks: C order for ``axis=None``); on ties the other
    maximal positions get 0 (unlike :func:`maximum`, which splits ties evenly). For a
    tuple of axes the rule applies to each single-axis reduction in turn.
    """
    x = _tensor_input(x, "max")
    axes = _axes(axis, x.shape, "max")
    if axes is None:
        return _max_node(x, None, keepdims)
    if not axes:
        return _max_node(x, None, keepdims) if x.ndim == 0 else x
    out = x
    # reduce the highest axis first so the remaining axis numbers stay valid
    for a in sorted(axes, reverse=True):
        out = _max_node(out, a, keepdims)
    return out


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x), axis))``, computed stably around the maximum.

    Parameters
    ----------
    x : Tensor
    axis : int or None
        The axis to reduce (None: all elements).
    keepdims : bool

    Returns
    -------
    Tensor
        Rows whose maximum is +-inf give that inf; its backward is
        ``dY * exp(x - Y)`` (the softmax).
    """
    x = _tensor_input(x, "logsumexp")
    X = x.data
    if axis is not None:
        axis = _one_axis(axis, X.shape, "logsumexp")
    st = backends._state
    Y = st.ops.logsumexp(X, axis, keepdims)
    out, track = _result(Y, (x,), "logsumexp", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.backprop_logsumexp(g, X, Y, axis, keepdims, buf, beta)

        out._backward = backward
    return out


def softmax(x, axis=-1):
    """Softmax along ``axis``, stable for any magnitude (shifted by the maximum).

    Parameters
    ----------
    x : Tensor
    axis : int

    Returns
    -------
    Tensor
        ``Y = exp(x) / sum(exp(x), axis)``; its backward is
        ``Y * (dY - sum(dY * Y, axis))``.
    """
    x = _tensor_input(x, "softmax")
    axis = _one_axis(axis, x.shape, "softmax")
    st = backends._state
    Y = st.ops.softmax(x.data, axis)
    out, track = _result(Y, (x,), "softmax", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.backprop_softmax(g, Y, axis, buf, beta)

        out._backward = backward
    return out


def log_softmax(x, axis=-1):
    """Logarithm of the softmax along ``axis``: ``x - logsumexp(x, axis)``, stable.

    Parameters
    ----------
    x : Tensor
    axis : int

    Returns
    -------
    Tensor
        ``Y``; its backward is ``dY - exp(Y) * sum(dY, axis)``.
    """
    x = _tensor_input(x, "log_softmax")
    axis = _one_axis(axis, x.shape, "log_softmax")
    st = backends._state
    Y = st.ops.log_softmax(x.data, axis)
    out, track = _result(Y, (x,), "log_softmax", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.backprop_log_softmax(g, Y, axis, buf, beta)

        out._backward = backward
    return out
