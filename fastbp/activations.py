"""Graph rules of the activations (tanh, sigmoid, relu) and dropout.

An activation's backward takes the saved output ``Y``: ``backprop_<act>(dY, Y)``."""

from __future__ import annotations

import numpy as np

from . import backends
from .tensor import Tensor, _result

__all__ = ["tanh", "sigmoid", "relu", "dropout"]


def _activation(x, act):
    if not isinstance(x, Tensor):
        raise TypeError(f"{act}: expected a fastbp Tensor, got {type(x).__name__}")
    st = backends._state
    Y = getattr(st.ops, act)(x.data)
    out, track = _result(Y, (x,), act, st)
    if track:
        backprop = "backprop_" + act

        def backward(g):
            buf, beta = x._grad_target()
            getattr(backends._state.ops, backprop)(g, Y, buf, beta)  # dX = dY * f'(z)

        out._backward = backward
    return out


def tanh(x):
    """Elementwise hyperbolic tangent.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    Tensor
        ``Y``; its backward is ``dY * (1 - Y**2)``, written in terms of the saved output.
    """
    return _activation(x, "tanh")


def sigmoid(x):
    """Elementwise logistic sigmoid.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    Tensor
        ``Y``; its backward is ``dY * Y * (1 - Y)``, written in terms of the saved output.
    """
    return _activation(x, "sigmoid")


def relu(x):
    """Elementwise ``max(x, 0)``.

    Parameters
    ----------
    x : Tensor

    Returns
    -------
    Tensor
        ``Y``; its backward is ``dY * [Y > 0]``, written in terms of the saved output.
    """
    return _activation(x, "relu")


def dropout(x, p=0.5, training=True, rng=None):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)`` (identity when ``training`` is False or ``p == 0``).

    ``rng`` is a :class:`numpy.random.Generator` (default: a fresh unseeded one); pass a
    seeded generator for reproducible training.

    Parameters
    ----------
    x : Tensor
    p : float
        Drop probability in [0, 1).
    training : bool
    rng : numpy.random.Generator, optional

    Returns
    -------
    Tensor
        ``x`` itself when not training or ``p == 0``.
    """
    if not isinstance(x, Tensor):
        raise TypeError("dropout: expected a fastbp Tensor")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    st = backends._state
    rng = np.random.default_rng() if rng is None else rng
    if st.trace is not None:
        raise RuntimeError(
            "dropout with a numpy Generator cannot be replayed by a compiled step (its "
            "draws happen in Python); pass a fastbp.Generator")
    mask = st.ops.dropout_mask(x.data.shape, p, rng, x.data.dtype)
    out, track = _result(st.ops.mul(x.data, mask), (x,), "dropout", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.backprop_mul(g, mask, buf, beta)

        out._backward = backward
    return out
