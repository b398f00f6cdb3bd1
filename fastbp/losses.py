"""Graph rules of the fused losses: softmax cross-entropy and sigmoid BCE."""

from __future__ import annotations

import numpy as np

from . import backends
from .tensor import Tensor, _int_array, _result

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits"]


def cross_entropy(logits, y):
    """Mean softmax cross-entropy of ``logits`` (n, C) against class ids ``y`` (n,).

    Fused and stable (log-sum-exp); returns a 0-d tensor. Its backward is
    ``(softmax(logits) - onehot(y)) / n`` times the upstream gradient (passed to the
    kernel as an array).

    Parameters
    ----------
    logits : Tensor
        (n, C) scores.
    y : array_like of int
        (n,) class ids in [0, C).

    Returns
    -------
    Tensor
        The 0-d mean loss.
    """
    if not isinstance(logits, Tensor):
        raise TypeError("cross_entropy: logits must be a fastbp Tensor")
    Z = logits.data
    if Z.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be 2-D (n, C), got shape {Z.shape}")
    y = _int_array(y, "cross_entropy targets (class ids)")
    if y.shape != (Z.shape[0],):
        raise ValueError(
            f"cross_entropy: targets of shape {y.shape} do not match logits of shape {Z.shape}"
        )
    st = backends._state
    loss, P = st.ops.softmax_cross_entropy(Z, y)
    out, track = _result(loss, (logits,), "cross_entropy", st)
    if track:

        def backward(g):
            buf, beta = logits._grad_target()
            backends._state.ops.backprop_softmax_cross_entropy(P, y, g, buf, beta)

        out._backward = backward
    return out


def binary_cross_entropy_with_logits(s, y):
    """Mean binary cross-entropy of scores ``s`` against targets ``y`` in [0, 1] (same
    shape): the lecture's ``sigmoid(u^T h)`` "is the centre word a LOC?" loss, fused and
    stable for any score magnitude. Integer/bool targets are cast to the dtype of ``s``.

    Parameters
    ----------
    s : Tensor
        Scores (logits) of any shape.
    y : array_like
        Targets in [0, 1] of the same shape.

    Returns
    -------
    Tensor
        The 0-d mean loss; its backward is ``(sigmoid(s) - y) / n`` times the upstream
        gradient (passed to the kernel as an array).
    """
    if not isinstance(s, Tensor):
        raise TypeError("binary_cross_entropy_with_logits: s must be a fastbp Tensor")
    S = s.data
    T = np.asarray(y.data if isinstance(y, Tensor) else y)
    if T.dtype.kind in "biu":
        if backends._state.trace is not None and backends._state.trace.is_input(T):
            raise TypeError(
                "binary_cross_entropy_with_logits in a compiled step: targets of dtype "
                f"{T.dtype} would be converted once, at trace time; pass targets of the "
                f"scores' dtype ({S.dtype}) as an argument of the step")
        T = T.astype(S.dtype)
    elif T.dtype != S.dtype:
        raise TypeError(
            f"binary_cross_entropy_with_logits: targets of dtype {T.dtype} for scores of dtype "
            f"{S.dtype}; fastbp never upcasts silently"
        )
    if T.shape != S.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: targets of shape {T.shape} for scores of "
            f"shape {S.shape}"
        )
    if not T.flags.c_contiguous:
        T = backends._state.ops.copy_into(T, np.empty(T.shape, T.dtype), 0.0)
    if T.size and not ((T >= 0) & (T <= 1)).all():
        raise ValueError("binary_cross_entropy_with_logits: targets must lie in [0, 1]")
    st = backends._state
    loss, Sig = st.ops.sigmoid_bce(S, T)
    out, track = _result(loss, (s,), "binary_cross_entropy_with_logits", st)
    if track:

        def backward(g):
            buf, beta = s._grad_target()
            backends._state.ops.backprop_sigmoid_bce(Sig, T, g, buf, beta)

        out._backward = backward
    return out
