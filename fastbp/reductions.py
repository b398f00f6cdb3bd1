"""Graph rules of the reductions: sum and mean."""

from __future__ import annotations

import numpy as np

from . import backends
from .tensor import _result

__all__ = ["tensor_sum"]


def tensor_sum(x, axis=None, keepdims=False):
    """Sum of ``x`` over ``axis`` (None: all elements, giving a 0-d tensor)."""
    st = backends._state
    X = x.data
    if axis is not None:
        axes = tuple(int(a) for a in np.atleast_1d(axis))
        for a in axes:
            if not -X.ndim <= a < X.ndim:
                raise ValueError(f"sum: axis {a} is out of range for shape {X.shape}")
        axis = tuple(a % X.ndim for a in axes)
    out, track = _result(st.ops.reduce_sum(X, axis, keepdims), (x,), "sum", st)
    if track:
        shape = X.shape

        def backward(g):
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            full = np.empty(shape, g.dtype)
            full[...] = g
            x._accumulate(full, False)

        out._backward = backward
    return out
