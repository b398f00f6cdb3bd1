"""Graph rules of the activations (tanh, sigmoid, relu) and dropout.

An activation's backward takes the saved output ``Y``: ``backprop_<act>(dY, Y)``."""

from __future__ import annotations

import numpy as np

from . import backends
from . import random as _random
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

    ``rng`` is where the mask comes from:

    * a :class:`fastbp.Generator` (or None: the default generator,
      :func:`fastbp.random.default_generator`, seeded by ``fb.manual_seed``): the mask is
      drawn inside one fused kernel that also applies it, from the generator's
      counter-based stream (the same bits on both backends; the generator's counter
      advances by ``ceil(x.size / 2)``). This is the path ``fb.compile`` can replay, with
      a fresh mask on every call.
    * a :class:`numpy.random.Generator`: the uniforms are drawn in Python with
      ``rng.random`` (the mask stream fastbp used before its own generator). It works eagerly but is not
      replayable: do not use it inside ``fb.compile``.

    Parameters
    ----------
    x : Tensor
    p : float
        Drop probability in [0, 1).
    training : bool
    rng : fastbp.Generator, numpy.random.Generator or None

    Returns
    -------
    Tensor
        ``x`` itself when not training or ``p == 0``.

    Raises
    ------
    TypeError
        ``x`` not a Tensor, ``rng`` of another type.
    ValueError
        ``p`` outside [0, 1).
    """
    if not isinstance(x, Tensor):
        raise TypeError("dropout: expected a fastbp Tensor")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if rng is None:
        rng = _random.default_generator()
    if isinstance(rng, _random.Generator):
        state = rng.state_array
    elif isinstance(rng, np.random.Generator):
        state = None
    else:
        raise TypeError("dropout: rng must be a fastbp.Generator, a numpy.random.Generator "
                        f"or None, got {type(rng).__name__}")
    if not training or p == 0.0:
        return x
    st = backends._state
    if state is not None:
        Y, mask = st.ops.dropout_forward(x.data, state, p)
    else:
        if st.trace is not None:
            raise RuntimeError(
                "dropout with a numpy Generator cannot be replayed by a compiled step (its "
                "draws happen in Python); pass a fastbp.Generator")
        mask = st.ops.dropout_mask(x.data.shape, p, rng, x.data.dtype)
        Y = st.ops.mul(x.data, mask)
    out, track = _result(Y, (x,), "dropout", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.backprop_mul(g, mask, buf, beta)

        out._backward = backward
    return out
