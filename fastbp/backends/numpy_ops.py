"""Reference backend: every op of fastbp written with plain numpy.

This is the specification the compiled backend (:mod:`fastbp.backends.cython_ops`)
is tested against, and the "fastbp numpy" side of the benchmarks.

Conventions (after thinc's ``Ops``):

* Forward ops are nouns (``tanh``, ``embedding``), their adjoints ``backprop_<op>``.
  Activation adjoints take the saved *output* ``Y``: ``backprop_tanh(dY, Y)`` applies the
  diagonal Jacobian ``f'(z)`` written in terms of ``h = f(z)``.
* Ops that produce a gradient take ``out`` and ``beta``: the result is written as
  ``out = result + beta * out`` (``beta`` is 0.0 or 1.0), so a gradient is either written
  straight into its destination or accumulated into it, without a temporary.
  ``out=None`` allocates.
* Arrays reaching an op are C-contiguous float32/float64 of one dtype (ids: any integer
  dtype); validation of user input happens in :mod:`fastbp.tensor`. The compiled backend
  re-validates at its own boundary because its kernels are also callable directly.
"""

from __future__ import annotations

import numpy as np

from ._numpy_ops_ext import _Issue7Reference

__all__ = ["NumpyOps"]


def _check_act(act):
    if act not in ("tanh", "sigmoid", "relu"):
        raise ValueError(f"unknown activation {act!r}; expected identity, tanh, sigmoid or relu")
    return act


def _check_ids(ids, V):
    """IndexError naming the first id outside [0, V) (numpy would wrap negatives)."""
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be an integer array, got dtype {ids.dtype}")
    if ids.size:
        bad = np.flatnonzero((ids.reshape(-1) < 0) | (ids.reshape(-1) >= V))
        if bad.size:
            raise IndexError(f"id {ids.reshape(-1)[bad[0]]} is out of range for a table of {V} rows")


def _check_labels(y, n, C):
    if y.dtype.kind not in "iu":
        raise TypeError(f"class ids must be an integer array, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"class ids of shape {y.shape} do not match logits with {n} rows")
    if n:
        bad = np.flatnonzero((y < 0) | (y >= C))
        if bad.size:
            raise ValueError(f"class id {y[bad[0]]} is outside [0, {C})")


def _write(out, result, beta):
    """``out = result + beta * out``; allocate when ``out`` is None."""
    if out is None:
        result = np.asarray(result)
        return result if result.flags.c_contiguous else result.copy(order="C")
    if beta == 0.0:
        np.copyto(out, result)
    else:
        out += result
    return out


class NumpyOps(_Issue7Reference):
    """Pure numpy implementation of every fastbp op (the reference).

    The ops added for issue 7 (div, exp, reduce_max, softmax, gather, ...) are inherited
    from :class:`~fastbp.backends._numpy_ops_ext._Issue7Reference`."""

    name = "numpy"

    # ------------------------------------------------------------------ BLAS-like
    def gemm(self, A, B, out=None, trans_a=False, trans_b=False, beta=0.0):
        """``out = op(A) @ op(B) + beta * out`` with ``op`` an optional transpose."""
        a = A.T if trans_a else A
        b = B.T if trans_b else B
        return _write(out, a @ b, beta)

    def gemv(self, A, x, out=None, trans=False, beta=0.0):
        """``out = op(A) @ x + beta * out``."""
        a = A.T if trans else A
        return _write(out, a @ x, beta)

    def ger(self, x, y, out=None, beta=0.0):
        """Rank-1 update ``out = x y^T + beta * out`` (the weight gradient of one example)."""
        return _write(out, np.outer(x, y), beta)

    def dot(self, x, y):
        """Inner product of two vectors, as a 0-d array of their dtype."""
        return np.asarray(np.dot(x, y), dtype=x.dtype)

    def scale(self, X, alpha, out=None, beta=0.0):
        """``out = alpha * X + beta * out``."""
        return _write(out, X * X.dtype.type(alpha), beta)

    # ------------------------------------------------------------------ elementwise
    def add(self, X, Y):
        """``X + Y`` with numpy broadcasting."""
        return np.asarray(X + Y)

    def sub(self, X, Y):
        """``X - Y`` with numpy broadcasting."""
        return np.asarray(X - Y)

    def mul(self, X, Y):
        """``X * Y`` with numpy broadcasting."""
        return np.asarray(X * Y)

    def add_bias(self, X, b):
        """``X + b`` for ``X`` of shape (n, m) and a bias ``b`` of shape (m,)."""
        return X + b

    def reduce_sum(self, X, axis=None, keepdims=False):
        return np.asarray(X.sum(axis=axis, keepdims=keepdims), dtype=X.dtype)

    def unbroadcast(self, dY, shape, out=None, beta=0.0):
        """Sum ``dY`` down to ``shape`` (the adjoint of broadcasting to ``dY.shape``)."""
        g = dY
        lead = g.ndim - len(shape)
        if lead > 0:
            g = g.sum(axis=tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
        if axes:
            g = g.sum(axis=axes, keepdims=True)
        return _write(out, g.reshape(shape), beta)

    def backprop_bias(self, dY, out=None, beta=0.0):
        """Bias gradient: ``out = dY.sum(axis=0) + beta * out`` for ``dY`` of shape (n, m)."""
        return _write(out, dY.sum(axis=0), beta)

    def backprop_mul(self, dY, Other, out=None, beta=0.0):
        """Gradient of ``X * Other`` with respect to ``X`` (same shapes)."""
        return _write(out, dY * Other, beta)

    # ------------------------------------------------------------------ activations
    def tanh(self, X):
        return np.asarray(np.tanh(X))

    def backprop_tanh(self, dY, Y, out=None, beta=0.0):
        """``dX = dY * (1 - Y**2)`` with ``Y = tanh(X)``."""
        return _write(out, dY * (1 - Y * Y), beta)

    def sigmoid(self, X):
        # Two branches so that exp never overflows.
        out = np.empty_like(X)
        pos = X >= 0
        out[pos] = 1 / (1 + np.exp(-X[pos]))
        ex = np.exp(X[~pos])
        out[~pos] = ex / (1 + ex)
        return out

    def backprop_sigmoid(self, dY, Y, out=None, beta=0.0):
        """``dX = dY * Y * (1 - Y)`` with ``Y = sigmoid(X)``."""
        return _write(out, dY * Y * (1 - Y), beta)

    def relu(self, X):
        return np.asarray(np.maximum(X, X.dtype.type(0)))

    def backprop_relu(self, dY, Y, out=None, beta=0.0):
        """``dX = dY * [Y > 0]`` with ``Y = relu(X)``."""
        return _write(out, dY * (Y > 0), beta)

    def dropout_mask(self, shape, rate, rng, dtype):
        """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
        keep = rng.random(shape) >= rate
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))

    _ACTS = ("identity", "tanh", "sigmoid", "relu")

    def bias_act(self, X, b, act):
        """Fused ``f(X + b)`` for ``act`` in ``identity, tanh, sigmoid, relu`` (``b`` may be
        None)."""
        Z = X if b is None else X + b
        if act == "identity":
            return Z.copy() if Z is X else Z
        return getattr(self, _check_act(act))(Z)

    def backprop_act(self, dY, Y, act, out=None, beta=0.0):
        """Adjoint of :meth:`bias_act` with respect to its pre-activation input."""
        if act == "identity":
            return _write(out, dY, beta)
        return getattr(self, "backprop_" + _check_act(act))(dY, Y, out, beta)

    def linear(self, X, W, b=None, out=None, trans_w=False):
        """Fused affine map ``out = X @ W + b`` for ``X`` (n, k), ``W`` (k, m), ``b`` (m,).

        With ``trans_w=True``, ``W`` is stored (m, k) (``nn.Linear``'s and PyTorch's
        (out, in) layout) and ``out = X @ W.T + b``; the transpose is a view, never a copy."""
        Y = X @ (W.T if trans_w else W)
        if b is not None:
            Y += b
        return _write(out, Y, 0.0)

    # ------------------------------------------------------------------ embedding
    def embedding(self, E, ids):
        """Gather and concatenate window rows: ``(B, w)`` ids -> ``(B, w * d)`` (1-D ids
        ``(n,)`` -> ``(n, d)``).

        Raises IndexError naming the first id outside ``[0, V)``."""
        _check_ids(ids, E.shape[0])
        w = ids.shape[1] if ids.ndim == 2 else 1
        return E[ids.reshape(-1)].reshape(ids.shape[0], w * E.shape[1])

    def scatter_add_rows(self, out, rows, values, alpha=1.0):
        """``out[rows[i]] += alpha * values[i]`` with repeated rows summed (the adjoint of
        :meth:`embedding`, and the row-sparse SGD update with ``alpha = -lr``)."""
        _check_ids(rows, out.shape[0])
        np.add.at(out, rows, values * out.dtype.type(alpha))
        return out

    def coalesce_rows(self, rows, values):
        """Sum the values of repeated rows: returns ``(unique_rows, summed_values)``.

        Rows come out in order of first appearance."""
        uniq, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        summed = np.zeros((uniq.size, values.shape[1]), dtype=values.dtype)
        np.add.at(summed, rank[inverse.reshape(-1)], values)
        return uniq[order].astype(np.intp), summed

    # ------------------------------------------------------------------ losses
    def softmax_cross_entropy(self, Z, y):
        """Mean softmax cross-entropy of logits ``Z`` (n, C) against class ids ``y`` (n,).

        Returns ``(loss, P)``: the 0-d loss (dtype of ``Z``) and the softmax ``P``, saved
        for the backward pass. Stable: log-sum-exp around the row maximum."""
        n = Z.shape[0]
        _check_labels(y, n, Z.shape[1])
        shifted = Z - Z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1))
        P = np.exp(shifted - lse[:, None])
        loss = (lse - shifted[np.arange(n), y]).sum() / max(n, 1)
        return np.asarray(loss, dtype=Z.dtype), P

    def backprop_softmax_cross_entropy(self, P, y, dloss, out=None, beta=0.0):
        """``dZ = dloss * (P - onehot(y)) / n``."""
        n = P.shape[0]
        g = P.copy()
        g[np.arange(n), y] -= 1
        g *= P.dtype.type(float(dloss) / max(n, 1))
        return _write(out, g, beta)

    def sigmoid_bce(self, S, T):
        """Mean binary cross-entropy of logits ``S`` against targets ``T`` in [0, 1]
        (same shape). Returns ``(loss, sigmoid(S))``. Stable for any magnitude:
        ``max(s, 0) - s*t + log1p(exp(-|s|))``."""
        n = S.size
        loss = (np.maximum(S, 0) - S * T + np.log1p(np.exp(-np.abs(S)))).sum() / max(n, 1)
        return np.asarray(loss, dtype=S.dtype), self.sigmoid(S)

    def backprop_sigmoid_bce(self, Sig, T, dloss, out=None, beta=0.0):
        """``dS = dloss * (sigmoid(S) - T) / n``."""
        n = Sig.size
        return _write(out, (Sig - T) * Sig.dtype.type(float(dloss) / max(n, 1)), beta)

    # ------------------------------------------------------------------ optimisers
    def sgd_update(self, W, dW, lr):
        """In place: ``W -= lr * dW``."""
        W -= W.dtype.type(lr) * dW

    def sgd_update_rows(self, W, rows, values, lr):
        """Row-sparse SGD: ``W[rows[i]] -= lr * values[i]`` (repeated rows summed)."""
        self.scatter_add_rows(W, rows, values, -lr)

    def adam_update(self, W, dW, m, v, lr, beta1, beta2, eps, step):
        """In-place Adam step (Kingma & Ba, with bias correction; ``step`` counts from 1)."""
        t = W.dtype.type
        m *= t(beta1)
        m += t(1 - beta1) * dW
        v *= t(beta2)
        v += t(1 - beta2) * dW * dW
        lr_t = lr * np.sqrt(1 - beta2**step) / (1 - beta1**step)
        eps_t = eps * np.sqrt(1 - beta2**step)
        W -= t(lr_t) * m / (np.sqrt(v) + t(eps_t))

    def adam_update_rows(self, W, rows, values, m, v, lr, beta1, beta2, eps, step):
        """Lazy (row-sparse) Adam: only the rows present in the gradient have their moments
        and weights updated, as in ``torch.optim.SparseAdam``. Repeated rows are summed
        first."""
        rows, g = self.coalesce_rows(rows, values)
        Wr, mr, vr = W[rows], m[rows], v[rows]
        self.adam_update(Wr, g, mr, vr, lr, beta1, beta2, eps, step)
        W[rows], m[rows], v[rows] = Wr, mr, vr
