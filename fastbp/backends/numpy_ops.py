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

import math

import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_index


__all__ = ["NumpyOps", "counter_words"]


# ---------------------------------------------------------------- counter-based draws
# The stream of fastbp.Generator (fastbp_ext/_random.h): word j of a generator at
# [key, counter] is splitmix64 seeded with key at position counter + j. numpy's uint64
# arithmetic wraps modulo 2**64 exactly as C's does, so this is bitwise the kernel's.
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def counter_words(key, counter, n):
    """The ``n`` 64-bit words at positions ``counter, counter + 1, ...`` of the stream
    of ``key`` (a uint64 array; the state is not advanced)."""
    z = np.arange(n, dtype=np.uint64)
    z += np.uint64(counter)
    z *= _GAMMA
    z += np.uint64(key)
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def _check_state(state):
    if not isinstance(state, np.ndarray) or state.dtype.kind != "u" or state.itemsize != 8:
        raise TypeError("generator state must be a uint64 array, got "
                        f"{getattr(state, 'dtype', type(state).__name__)}")
    if state.shape != (2,):
        raise ValueError(f"generator state must have shape (2,) ([key, counter]), got {state.shape}")
    if not state.flags.writeable:
        raise ValueError("generator state is read-only (the kernel advances its counter)")


def _keep(state, n, rate):
    """The keep decisions of ``n`` elements (element k: the low / high 32 bits of word
    k // 2 for k even / odd, kept when >= ceil(rate * 2**32)); advances the counter by
    ceil(n / 2)."""
    _check_state(state)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    key, counter = int(state[0]), int(state[1])
    words = (n + 1) // 2
    state[1] = (counter + words) % 2**64
    w = counter_words(key, counter, words)
    halves = np.empty(2 * words, np.uint64)
    halves[0::2] = w & np.uint64(0xFFFFFFFF)
    halves[1::2] = w >> np.uint64(32)
    return halves[:n] >= np.uint64(math.ceil(rate * 4294967296.0))


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


def _ix_same_dtype(a, name, ref, refname):
    """TypeError naming both dtypes when ``a`` and ``ref`` differ (never upcast)."""
    if a.dtype.type != ref.dtype.type:  # (byte order aside)
        raise TypeError(f"mixed dtypes: {refname} is {ref.dtype} but {name} is {a.dtype}; "
                        "fastbp never upcasts silently (cast one of them explicitly)")


def _ix_check_beta(beta):
    if beta != 0.0 and beta != 1.0:
        raise ValueError(f"beta must be 0.0 or 1.0, got {beta!r}")


def _ix_index_tuple(index, shape, target):
    """A gather index as a tuple of integer arrays (a single array means k = 1)."""
    if isinstance(index, np.ndarray):
        index = (index,)
    elif not isinstance(index, (tuple, list)):
        raise TypeError(f"index must be a tuple of integer arrays, got {type(index).__name__}")
    if not index:
        raise ValueError("index must hold at least one integer array")
    ndim = len(shape)
    for j, i in enumerate(index):
        if not isinstance(i, np.ndarray):
            raise TypeError(f"index[{j}] must be a numpy integer array, got {type(i).__name__}")
        if i.dtype.kind not in "iu":
            raise TypeError(f"index[{j}] must be an integer array, got dtype {i.dtype}")
    if len(index) > ndim:
        raise IndexError(f"too many indices for array: {target} is {ndim}-dimensional, "
                         f"but {len(index)} were indexed")
    for j, i in enumerate(index):
        if i.dtype.kind == "u" and i.dtype.itemsize == 8 and i.size:
            big = i.max()
            if big > np.iinfo(np.int64).max:  # numpy would wrap it to a negative index
                raise IndexError(f"index {big} is out of bounds for axis {j} with size "
                                 f"{shape[j]}")
    return tuple(index)


def _write(out, result, beta):
    """``out = result + beta * out``; allocate when ``out`` is None."""
    if out is None:
        result = np.asarray(result)
        return result if result.flags.c_contiguous else result.copy(order="C")
    if beta == 0.0:
        np.copyto(out, result)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is nan, silently
            out += result
    return out


class NumpyOps:
    """Pure numpy implementation of every fastbp op (the reference)."""

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

    def dropout_mask_gen(self, state, shape, rate, dtype):
        """Inverted-dropout mask of ``shape`` drawn from the counter-based generator
        ``state`` ((2,) uint64 ``[key, counter]``, advanced by ``ceil(size / 2)``):
        0 with probability ``rate``, else ``1 / (1 - rate)``."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"mask dtype must be float32 or float64, got {dtype}")
        shape = tuple(shape) if np.iterable(shape) else (operator.index(shape),)
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimensions are not allowed, got shape {shape}")
        n = math.prod(shape)
        keep = _keep(state, n, rate)
        return (keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))).reshape(shape)

    def dropout_forward(self, X, state, rate):
        """Inverted dropout in one call: ``(X * mask, mask)`` with the mask of
        :meth:`dropout_mask_gen` for ``X``'s shape and dtype."""
        mask = self.dropout_mask_gen(state, X.shape, rate, X.dtype)
        with np.errstate(invalid="ignore"):  # inf * 0 = nan, silently, as in the kernel
            return X * mask, mask

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
        (out, in) layout) and ``out = X @ W.T + b``; the transpose is a view, never a copy.

        Raises TypeError for mixed dtypes and ValueError naming the shapes when they are
        not aligned, as the kernel does."""
        for name, a in (("W", W), ("b", b)):
            if a is not None and a.dtype != X.dtype:
                raise TypeError(f"linear: {name} has dtype {a.dtype} but X has dtype "
                                f"{X.dtype}; fastbp never upcasts silently")
        kw = 1 if trans_w else 0
        if X.ndim != 2 or W.ndim != 2 or X.shape[1] != W.shape[kw]:
            raise ValueError(f"linear: shapes {X.shape} and {W.shape}"
                             f"{' (out, in)' if trans_w else ''} are not aligned")
        m = W.shape[1 - kw]
        if b is not None and b.shape != (m,):
            raise ValueError(f"linear: bias of shape {b.shape} for an output of width {m}")
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
        """In-place Adam step (Kingma & Ba, with bias correction). ``step`` is this
        update's number (from 1), or a 1-element int64 counter array that is incremented
        (the update's number is its value + 1)."""
        counter, step = _adam_step(step)
        self._adam(W, dW, m, v, lr, beta1, beta2, eps, step)
        if counter is not None:
            counter[...] = step

    @staticmethod
    def _adam(W, dW, m, v, lr, beta1, beta2, eps, step):
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
        counter, step = _adam_step(step)
        rows, g = self.coalesce_rows(rows, values)
        Wr, mr, vr = W[rows], m[rows], v[rows]
        self._adam(Wr, g, mr, vr, lr, beta1, beta2, eps, step)
        W[rows], m[rows], v[rows] = Wr, mr, vr
        if counter is not None:
            counter[...] = step

    # --- reductions (issue 7) ------------------------------------------------------
    # Single-axis ops view C-order X as (outer, n, inner), n the length of the reduced
    # axis (axis=None: every element); sums accumulate in float64. No floating-point
    # warnings: a row whose maximum is NaN gives NaN, +-inf maxima give that inf in
    # logsumexp and NaN rows in softmax / log_softmax.
    def expand(self, dY, shape, out=None, beta=0.0):
        """``out = broadcast_to(dY, shape) + beta * out`` (the adjoint of
        :meth:`unbroadcast`, the backward of a sum)."""
        b = np.broadcast_to(dY, tuple(shape))
        return _write(out, b if out is not None else np.array(b, order="C"), beta)

    def reduce_max(self, X, axis=None, keepdims=False):
        """Maximum over all elements or one axis (NaN propagates); an empty reduction
        raises ValueError."""
        _axis3(X, axis)
        with np.errstate(all="ignore"):
            return np.asarray(X.max(axis=axis, keepdims=keepdims))

    def backprop_reduce_max(self, dY, X, Y, axis=None, keepdims=False, out=None, beta=0.0):
        """Route each reduced slot's ``dY`` to the first position where ``X == Y`` (NaN
        matching NaN, as ``np.argmax``); 0 elsewhere."""
        x = _axis3(X, axis)
        o, n, i = x.shape
        y, g = _reduced_pair(dY, Y, X, axis, keepdims, (o, 1, i))
        grad = np.zeros(x.shape, X.dtype)
        if n and o and i:
            hit = (x == y) | (np.isnan(x) & np.isnan(y))
            first = hit.argmax(axis=1)[:, None, :]
            np.put_along_axis(grad, first, np.where(hit.any(axis=1)[:, None, :], g, 0), axis=1)
        return _write(out, grad.reshape(X.shape), beta)

    def logsumexp(self, X, axis=-1, keepdims=False):
        """``m + log(sum(exp(X - m)))`` with ``m`` the maximum; +-inf maxima give that
        inf, an empty reduction -inf."""
        x = _axis3(X, axis)
        with np.errstate(all="ignore"):
            if x.shape[1] == 0:
                r = np.full((x.shape[0], x.shape[2]), -np.inf, X.dtype)
            else:
                m = x.max(axis=1)
                fin = np.isfinite(m)
                ms = np.where(fin, m, 0).astype(X.dtype)
                s = np.exp(x - ms[:, None, :]).sum(axis=1, dtype=np.float64)
                r = np.where(fin, (ms.astype(np.float64) + np.log(s)).astype(X.dtype), m)
        return np.array(r.reshape(_reduced_shape(X, axis, keepdims)), order="C")

    def backprop_logsumexp(self, dY, X, Y, axis=-1, keepdims=False, out=None, beta=0.0):
        """``dX = dY * exp(X - Y)`` with ``dY`` and ``Y`` broadcast along the axis."""
        x = _axis3(X, axis)
        o, n, i = x.shape
        y, g = _reduced_pair(dY, Y, X, axis, keepdims, (o, 1, i))
        with np.errstate(all="ignore"):
            grad = g * np.exp(x - y)
        return _write(out, grad.reshape(X.shape), beta)

    def softmax(self, X, axis=-1, out=None):
        """``exp(X - m) / sum(exp(X - m))`` along ``axis``, ``m`` the maximum."""
        x = _axis3(X, axis)
        if X.size == 0:
            return _write(out, np.empty(X.shape, X.dtype), 0.0)
        with np.errstate(all="ignore"):
            m = x.max(axis=1, keepdims=True)
            e = np.exp(x - m)
            inv = (1.0 / e.sum(axis=1, keepdims=True, dtype=np.float64)).astype(X.dtype)
            r = np.where(np.isfinite(m), e * inv, X.dtype.type(np.nan))
        return _write(out, r.reshape(X.shape), 0.0)

    def backprop_softmax(self, dY, Y, axis=-1, out=None, beta=0.0):
        """``dX = Y * (dY - sum(dY * Y, axis, keepdims=True))``, ``Y`` the saved output."""
        y, g = _same3(dY, Y, axis)
        with np.errstate(all="ignore"):
            d = (g * y).sum(axis=1, keepdims=True, dtype=np.float64).astype(Y.dtype)
            grad = y * (g - d)
        return _write(out, grad.reshape(Y.shape), beta)

    def log_softmax(self, X, axis=-1, out=None):
        """``(X - m) - log(sum(exp(X - m)))`` along ``axis``, ``m`` the maximum."""
        x = _axis3(X, axis)
        if X.size == 0:
            return _write(out, np.empty(X.shape, X.dtype), 0.0)
        with np.errstate(all="ignore"):
            m = x.max(axis=1, keepdims=True)
            s = np.exp(x - m).sum(axis=1, keepdims=True, dtype=np.float64)
            r = np.where(np.isfinite(m), (x - m) - np.log(s).astype(X.dtype),
                         X.dtype.type(np.nan))
        return _write(out, r.reshape(X.shape), 0.0)

    def backprop_log_softmax(self, dY, Y, axis=-1, out=None, beta=0.0):
        """``dX = dY - exp(Y) * sum(dY, axis, keepdims=True)``, ``Y`` the saved output."""
        y, g = _same3(dY, Y, axis)
        with np.errstate(all="ignore"):
            s = g.sum(axis=1, keepdims=True, dtype=np.float64).astype(Y.dtype)
            grad = g - np.exp(y) * s
        return _write(out, grad.reshape(Y.shape), beta)


    # --- indexing (issue 7) -----------------------------------------------------------
    def copy_into(self, src, out, beta=0.0):
        """``out[...] = src + beta * out`` for arrays of one shape and any strides; ``out``
        may be a writeable view (a slice / transpose of a gradient buffer), or ``src``
        itself, but must not partly overlap ``src``. Returns ``out``."""
        _ix_same_dtype(out, "out", src, "src")
        if src.shape != out.shape:
            raise ValueError(f"out has shape {out.shape} but src has shape {src.shape}")
        _ix_check_beta(beta)
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        if not (out.flags.aligned and out.dtype.isnative):
            raise ValueError("out must be an aligned, native-byte-order array (any strides)")
        if out.size and any(s == 0 and n > 1 for n, s in zip(out.shape, out.strides)):
            raise ValueError("out has repeated elements (a zero stride); it cannot be written")
        same = (src.__array_interface__["data"][0] == out.__array_interface__["data"][0]
                and src.strides == out.strides)
        if not same and np.shares_memory(src, out):
            raise ValueError("out partly overlaps src; use the same array or a separate buffer")
        if beta == 0.0:
            np.copyto(out, src)
        else:
            out += src
        return out

    def gather(self, X, index, out=None):
        """``X[index]``: ``index`` a tuple of k integer arrays (any integer dtype, numpy
        broadcasting among them) on the leading k axes; negative indices count from the
        end; IndexError naming an index out of bounds."""
        index = _ix_index_tuple(index, X.shape, "array")
        result = X[index]
        if out is not None:
            _ix_same_dtype(out, "out", X, "X")
            if out.shape != result.shape:
                raise ValueError(f"out has shape {out.shape} but the gather result has "
                                 f"shape {result.shape}")
        return _write(out, result, 0.0)

    def backprop_gather(self, dY, index, shape, out=None, beta=0.0):
        """The adjoint of :meth:`gather`: zeros of ``shape`` with ``dY`` scatter-added at
        ``index`` (repeated indices accumulate, ``np.add.at``), plus ``beta * out``."""
        try:
            shape = tuple(operator.index(s) for s in shape)
        except TypeError:
            raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
        if any(s < 0 for s in shape):
            raise ValueError(f"invalid shape {shape}")
        index = _ix_index_tuple(index, shape, "the gathered array")
        try:
            bshape = np.broadcast_shapes(*(i.shape for i in index))
        except ValueError:
            raise IndexError("shape mismatch: indexing arrays could not be broadcast "
                             "together with shapes "
                             + "".join(f"({','.join(map(str, i.shape))}"
                                       f"{',' if i.ndim == 1 else ''}) " for i in index)) from None
        want = bshape + shape[len(index):]
        if dY.shape != want:
            raise ValueError(f"dY has shape {dY.shape} but gathering index arrays of "
                             f"broadcast shape {bshape} from shape {shape} gives {want}")
        _ix_check_beta(beta)
        if out is not None:
            _ix_same_dtype(out, "out", dY, "dY")
            if out.shape != shape:
                raise ValueError(f"out has shape {out.shape} but the gradient has shape {shape}")
        result = np.zeros(shape, dY.dtype)
        if np.prod(bshape, dtype=np.int64) > 0:
            for axis, i in enumerate(index):  # numpy's bounds error, before any write
                bad = (i < -shape[axis]) | (i >= shape[axis])
                if bad.any():
                    raise IndexError(f"index {i[bad].flat[0]} is out of bounds for axis "
                                     f"{axis} with size {shape[axis]}")
            np.add.at(result, index, dY)
        return _write(out, result, beta)

    def concatenate(self, arrays, axis=0, out=None):
        """``np.concatenate(arrays, axis)`` for a sequence of >= 1 arrays of one dtype
        (mixed dtypes -> TypeError: never upcast)."""
        if isinstance(arrays, np.ndarray) or not hasattr(arrays, "__len__"):
            raise TypeError(f"arrays must be a sequence of arrays, got {type(arrays).__name__}")
        arrays = list(arrays)
        for i, a in enumerate(arrays):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"arrays[{i}] must be a numpy array, got {type(a).__name__}")
            if i:
                _ix_same_dtype(a, f"arrays[{i}]", arrays[0], "arrays[0]")
        if out is not None and arrays:
            _ix_same_dtype(out, "out", arrays[0], "arrays[0]")
        if out is not None or not arrays:
            return np.concatenate(arrays, axis=axis, out=out)
        return np.concatenate(arrays, axis=axis, dtype=arrays[0].dtype.newbyteorder("="))

    # --- elementwise (issue 7) ----------------------------------------------------
    # Binary ops broadcast as numpy does; gradients are taken at the broadcast shape
    # (the graph layer sums them down with ``unbroadcast``). No RuntimeWarnings: log(-1)
    # is NaN and 1/0 is inf, silently. (``add``, ``sub``, ``mul`` and ``backprop_mul``
    # here supersede the definitions above.)
    def add(self, X, Y, out=None):
        """``X + Y`` with numpy broadcasting."""
        _same_dtype(X, Y)
        return _write(out, X + Y, 0.0)

    def sub(self, X, Y, out=None):
        """``X - Y`` with numpy broadcasting."""
        _same_dtype(X, Y)
        return _write(out, X - Y, 0.0)

    def mul(self, X, Y, out=None):
        """``X * Y`` with numpy broadcasting."""
        _same_dtype(X, Y)
        return _write(out, X * Y, 0.0)

    def div(self, X, Y, out=None):
        """``X / Y`` with numpy broadcasting."""
        _same_dtype(X, Y)
        with np.errstate(all="ignore"):
            return _write(out, X / Y, 0.0)

    def maximum(self, X, Y, out=None):
        """``np.maximum(X, Y)`` (NaN propagates)."""
        _same_dtype(X, Y)
        return _write(out, np.maximum(X, Y), 0.0)

    def minimum(self, X, Y, out=None):
        """``np.minimum(X, Y)`` (NaN propagates)."""
        _same_dtype(X, Y)
        return _write(out, np.minimum(X, Y), 0.0)

    def backprop_mul(self, dZ, Other, out=None, beta=0.0):
        """Gradient of ``X * Other`` with respect to ``X`` at ``dZ.shape``:
        ``dZ * Other`` (``Other`` broadcastable to ``dZ.shape``)."""
        _broadcasts_to(dZ, Other)
        return _write(out, dZ * Other, beta)

    def backprop_div(self, dZ, X, Y, wrt, out=None, beta=0.0):
        """Gradient of ``X / Y`` at ``dZ.shape``: ``dZ / Y`` (wrt=0) or
        ``-dZ * X / (Y * Y)`` (wrt=1)."""
        _broadcasts_to(dZ, X, Y)
        _check_wrt(wrt)
        with np.errstate(all="ignore"):
            g = dZ / Y if wrt == 0 else (-dZ * X) / (Y * Y)
        return _write(out, g, beta)

    def backprop_maximum(self, dZ, X, Y, wrt, out=None, beta=0.0):
        """Gradient of ``maximum(X, Y)`` at ``dZ.shape``: to the input that was chosen,
        ties split evenly: ``dZ * ([X > Y] + 0.5 [X == Y])`` (wrt=0, ``Y > X`` for
        wrt=1)."""
        _broadcasts_to(dZ, X, Y)
        _check_wrt(wrt)
        A, B = (X, Y) if wrt == 0 else (Y, X)
        return _write(out, _pick(dZ, A > B, A == B), beta)

    def backprop_minimum(self, dZ, X, Y, wrt, out=None, beta=0.0):
        """Gradient of ``minimum(X, Y)``: as :meth:`backprop_maximum` with ``<``."""
        _broadcasts_to(dZ, X, Y)
        _check_wrt(wrt)
        A, B = (X, Y) if wrt == 0 else (Y, X)
        return _write(out, _pick(dZ, A < B, A == B), beta)

    def exp(self, X, out=None):
        """``np.exp(X)`` (overflow gives inf, silently)."""
        with np.errstate(all="ignore"):
            return _write(out, np.exp(X), 0.0)

    def log(self, X, out=None):
        """``np.log(X)`` (log(0) = -inf, log(x < 0) = NaN, silently)."""
        with np.errstate(all="ignore"):
            return _write(out, np.log(X), 0.0)

    def sqrt(self, X, out=None):
        """``np.sqrt(X)`` (NaN for x < 0, silently)."""
        with np.errstate(all="ignore"):
            return _write(out, np.sqrt(X), 0.0)

    def power(self, X, p, out=None):
        """``X ** p`` for a constant exponent ``p`` (in X's dtype)."""
        with np.errstate(all="ignore"):
            return _write(out, np.power(X, X.dtype.type(p)), 0.0)

    def backprop_exp(self, dY, Y, out=None, beta=0.0):
        """Gradient of ``Y = exp(X)``: ``dY * Y`` (Y the saved output)."""
        _same_shape(dY, Y)
        return _write(out, dY * Y, beta)

    def backprop_log(self, dY, X, out=None, beta=0.0):
        """Gradient of ``log(X)``: ``dY / X`` (X the saved input)."""
        _same_shape(dY, X)
        with np.errstate(all="ignore"):
            return _write(out, dY / X, beta)

    def backprop_sqrt(self, dY, Y, out=None, beta=0.0):
        """Gradient of ``Y = sqrt(X)``: ``dY * 0.5 / Y`` (Y the saved output)."""
        _same_shape(dY, Y)
        with np.errstate(all="ignore"):
            return _write(out, dY * dY.dtype.type(0.5) / Y, beta)

    def backprop_power(self, dY, X, p, out=None, beta=0.0):
        """Gradient of ``X ** p``: ``dY * p * X**(p - 1)``; p == 0 gives 0 everywhere,
        p == 1 gives dY exactly."""
        _same_shape(dY, X)
        t = dY.dtype.type
        if p == 0:
            return _write(out, np.zeros_like(dY), beta)
        if p == 1:
            return _write(out, dY.copy(), beta)
        with np.errstate(all="ignore"):
            return _write(out, dY * t(p) * np.power(X, t(p) - t(1)), beta)

    def scale_by(self, X, s, out=None, beta=0.0):
        """``X * s`` with ``s`` a one-element array (a run-time scalar)."""
        _same_dtype(X, s, "s")
        if s.size != 1:
            raise ValueError(f"s must have exactly one element, got shape {s.shape}")
        return _write(out, X * s.reshape(()), beta)


# --- elementwise (issue 7) helpers
# --- reductions (issue 7): helpers ---------------------------------------------------
def _axis3(X, axis):
    """The (outer, n, inner) view of C-order ``X`` for one axis (None: all elements)."""
    if axis is None:
        return X.reshape(1, -1, 1)
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be None or an int, got {axis!r}")
    ax = normalize_axis_index(operator.index(axis), X.ndim)
    s = X.shape
    return X.reshape(math.prod(s[:ax]), s[ax], math.prod(s[ax + 1:]))


def _reduced_shape(X, axis, keepdims):
    if axis is None:
        return (1,) * X.ndim if keepdims else ()
    ax = normalize_axis_index(operator.index(axis), X.ndim)
    return X.shape[:ax] + ((1,) if keepdims else ()) + X.shape[ax + 1:]


def _reduced_pair(dY, Y, X, axis, keepdims, shape3):
    want = _reduced_shape(X, axis, keepdims)
    for a, name in ((dY, "dY"), (Y, "Y")):
        if a.shape != want:
            raise ValueError(f"{name} of shape {a.shape} does not match the reduced shape "
                             f"{want} of X of shape {X.shape} (axis={axis!r}, "
                             f"keepdims={bool(keepdims)})")
    return Y.reshape(shape3), dY.reshape(shape3)


def _same3(dY, Y, axis):
    if dY.shape != Y.shape:
        raise ValueError(f"dY of shape {dY.shape} does not match Y of shape {Y.shape}")
    y = _axis3(Y, axis)
    return y, dY.reshape(y.shape)

def _same_dtype(X, Y, name="Y"):
    if X.dtype.type is not Y.dtype.type:
        raise TypeError(f"mixed dtypes: X is {X.dtype} but {name} is {Y.dtype}; "
                        "fastbp never upcasts silently")


def _same_shape(dY, A):
    _same_dtype(dY, A, "the saved array")
    if dY.shape != A.shape:
        raise ValueError(f"dY of shape {dY.shape} does not match an input of shape {A.shape}")


def _broadcasts_to(dZ, *inputs):
    for A in inputs:
        _same_dtype(dZ, A, "an input")
        if np.broadcast_shapes(dZ.shape, A.shape) != dZ.shape:
            raise ValueError(f"dZ of shape {dZ.shape} and an input of shape {A.shape}: the "
                             "input does not broadcast to dZ's shape")


def _check_wrt(wrt):
    if wrt not in (0, 1):
        raise ValueError(f"wrt must be 0 (X) or 1 (Y), got {wrt}")


def _pick(dZ, chosen, tie):
    """``dZ * ([chosen] + 0.5 [tie])`` in dZ's dtype, at dZ's shape."""
    t = dZ.dtype.type
    w = np.where(chosen, t(1), np.where(tie, t(0.5), t(0)))
    return dZ * w


def _adam_step(step):
    """``(counter or None, this update's number)`` for an Adam ``step`` argument: an int
    from 1, or a 1-element int64 counter array (the update's number is its value + 1)."""
    if isinstance(step, np.ndarray):
        if step.dtype != np.int64 or step.size != 1:
            raise TypeError("an Adam step counter must be a writeable 1-element int64 "
                            f"array, got dtype {step.dtype} and shape {step.shape}")
        if int(step.reshape(-1)[0]) < 0:
            raise ValueError(f"Adam step counter must be >= 0, got {int(step.reshape(-1)[0])}")
        return step, int(step.reshape(-1)[0]) + 1
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"Adam step must be an int or an int64 counter array, got {step!r}")
    if step < 1:
        raise ValueError(f"Adam step counts from 1, got {step}")
    return None, int(step)
