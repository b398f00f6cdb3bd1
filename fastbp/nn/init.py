"""Weight initialisation used by :mod:`fastbp.nn` (all draws from a seeded numpy
:class:`~numpy.random.Generator`, in float64, then cast to the layer's dtype).

* :func:`linear_uniform` -- PyTorch's default for ``nn.Linear`` weights and biases:
  ``kaiming_uniform_(a=sqrt(5))``, which works out to ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
* :func:`glorot_uniform` -- Xavier/Glorot: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``
  (what :mod:`fastbp.ner` uses for its hidden and output layers).
* :func:`normal` -- ``N(0, std^2)`` (PyTorch's ``nn.Embedding`` default is std 1).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["as_rng", "as_dtype", "linear_uniform", "glorot_uniform", "normal"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def as_rng(rng):
    """A :class:`numpy.random.Generator` from ``rng``: a Generator (used as it is), an int
    seed, or None (a fresh, unseeded generator: not reproducible)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, got "
                    f"{type(rng).__name__}")


def as_dtype(dtype):
    """``np.dtype(dtype)``, which must be float32 or float64 (ValueError otherwise)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _FLOATS:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def linear_uniform(rng, shape, fan_in, dtype):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` of ``shape`` (zeros when ``fan_in == 0``):
    PyTorch's ``nn.Linear`` init, ``kaiming_uniform_(W, a=sqrt(5))`` for the weight
    (``gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)``, ``bound = gain * sqrt(3 / fan_in)``) and
    the same bound for the bias."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def glorot_uniform(rng, shape, fan_in, fan_out, dtype):
    """Xavier/Glorot uniform: ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``."""
    a = math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out > 0 else 0.0
    return rng.uniform(-a, a, size=shape).astype(dtype)


def normal(rng, shape, std, dtype):
    """``N(0, std^2)`` of ``shape``."""
    return (rng.standard_normal(shape) * std).astype(dtype)
