"""Numpy reference of the backend ops added for issue 7 (the general engine).

:class:`~fastbp.backends.numpy_ops.NumpyOps` inherits these methods from
:class:`_Issue7Reference`; the names, signatures and semantics are the contract of
``spec/OPS.md`` ("The backend ops"). Conventions as in ``numpy_ops``: one float dtype
per call (mixing raises TypeError, never an upcast), inputs of any strides, results
C-contiguous, gradient ops write ``out = result + beta * out``. No RuntimeWarnings:
``log(-1)`` is NaN silently (the graph layer's anomaly mode reports it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["_Issue7Reference"]


def _same(what, *arrays):
    """The common float dtype of ``arrays``; TypeError when they differ."""
    dt = arrays[0].dtype
    for a in arrays[1:]:
        if a.dtype != dt:
            raise TypeError(
                f"{what}: mixed dtypes {dt} and {a.dtype}; cast one side explicitly"
            )
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise TypeError(f"{what}: expected float32 or float64 arrays, got dtype {dt}")
    return dt


def _put(out, result, beta):
    """``out = result + beta * out``; allocate a C-contiguous array when ``out`` is None."""
    if out is None:
        result = np.asarray(result)
        return result if result.flags.c_contiguous else np.ascontiguousarray(result)
    if beta == 0.0:
        np.copyto(out, result)
    else:
        with np.errstate(all="ignore"):
            out += result
    return out


def _axis(axis, ndim, what):
    """Normalise one axis (negative counts from the end); ValueError when out of range."""
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ValueError(f"{what}: axis {axis} is out of range for {ndim} dimensions")
    return a % ndim


def _keep(A, axis, keepdims, ndim):
    """View of a reduced array ``A`` with the reduced axes kept as size 1."""
    if keepdims:
        return A
    if axis is None:
        return A.reshape((1,) * ndim)
    return np.expand_dims(A, axis)


def _hit(X, Y):
    """Where ``X`` equals the maximum ``Y`` (NaN matching NaN)."""
    return (X == Y) | (np.isnan(X) & np.isnan(Y))


def _bcast(what, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{what}: shapes {' and '.join(str(s) for s in shapes)} cannot be broadcast together"
        ) from None


def _index_tuple(index, ndim, what):
    if not isinstance(index, tuple) or not index:
        raise TypeError(f"{what}: index must be a non-empty tuple of integer arrays")
    idx = tuple(np.asarray(i) for i in index)
    for i in idx:
        if i.dtype.kind not in "iu":
            raise TypeError(f"{what}: index arrays must be integer, got dtype {i.dtype}")
    if len(idx) > ndim:
        raise IndexError(
            f"{what}: too many indices: {len(idx)} index arrays for an array of {ndim} dimensions"
        )
    return idx


class _Issue7Reference:
    """Numpy reference of the issue-7 ops (elementwise, reductions/softmax, indexing)."""

    # ------------------------------------------------------------------ elementwise
    def div(self, X, Y, out=None):
        """``X / Y`` with numpy broadcasting."""
        _same("div", X, Y)
        _bcast("div", X.shape, Y.shape)
        with np.errstate(all="ignore"):
            return _put(out, X / Y, 0.0)

    def maximum(self, X, Y, out=None):
        """Elementwise maximum with numpy broadcasting (NaN propagates)."""
        _same("maximum", X, Y)
        _bcast("maximum", X.shape, Y.shape)
        return _put(out, np.maximum(X, Y), 0.0)

    def minimum(self, X, Y, out=None):
        """Elementwise minimum with numpy broadcasting (NaN propagates)."""
        _same("minimum", X, Y)
        _bcast("minimum", X.shape, Y.shape)
        return _put(out, np.minimum(X, Y), 0.0)

    def backprop_div(self, dZ, X, Y, wrt, out=None, beta=0.0):
        """Gradient of ``Z = X / Y`` at ``dZ.shape``: ``dZ / Y`` (wrt=0) or
        ``-dZ * X / (Y * Y)`` (wrt=1)."""
        _same("backprop_div", dZ, X, Y)
        with np.errstate(all="ignore"):
            r = dZ / Y if wrt == 0 else -dZ * X / (Y * Y)
        return _put(out, np.broadcast_to(r, dZ.shape), beta)

    def _backprop_choice(self, dZ, X, Y, wrt, greater):
        first, second = (X, Y) if wrt == 0 else (Y, X)
        chosen = (first > second) if greater else (first < second)
        zero = dZ.dtype.type(0)
        with np.errstate(all="ignore"):
            r = np.where(chosen, dZ, np.where(X == Y, dZ * dZ.dtype.type(0.5), zero))
        return np.broadcast_to(r, dZ.shape)

    def backprop_maximum(self, dZ, X, Y, wrt, out=None, beta=0.0):
        """Gradient of ``maximum(X, Y)``: to the input chosen, ``dZ / 2`` to each on ties
        (wrt=0: ``dZ * ([X > Y] + 0.5 [X == Y])``)."""
        _same("backprop_maximum", dZ, X, Y)
        return _put(out, self._backprop_choice(dZ, X, Y, wrt, True), beta)

    def backprop_minimum(self, dZ, X, Y, wrt, out=None, beta=0.0):
        """Gradient of ``minimum(X, Y)``: to the input chosen, ``dZ / 2`` to each on ties
        (wrt=0: ``dZ * ([X < Y] + 0.5 [X == Y])``)."""
        _same("backprop_minimum", dZ, X, Y)
        return _put(out, self._backprop_choice(dZ, X, Y, wrt, False), beta)

    def exp(self, X, out=None):
        """Elementwise ``exp(X)``."""
        _same("exp", X)
        with np.errstate(all="ignore"):
            return _put(out, np.exp(X), 0.0)

    def log(self, X, out=None):
        """Elementwise natural logarithm (NaN for negatives, -inf at 0, no warning)."""
        _same("log", X)
        with np.errstate(all="ignore"):
            return _put(out, np.log(X), 0.0)

    def sqrt(self, X, out=None):
        """Elementwise square root (NaN for negatives, no warning)."""
        _same("sqrt", X)
        with np.errstate(all="ignore"):
            return _put(out, np.sqrt(X), 0.0)

    def power(self, X, p, out=None):
        """Elementwise ``X ** p`` for a Python float constant ``p``."""
        _same("power", X)
        with np.errstate(all="ignore"):
            return _put(out, np.power(X, X.dtype.type(p)), 0.0)

    def backprop_exp(self, dY, Y, out=None, beta=0.0):
        """``dX = dY * Y`` with ``Y = exp(X)``."""
        _same("backprop_exp", dY, Y)
        with np.errstate(all="ignore"):
            return _put(out, dY * Y, beta)

    def backprop_log(self, dY, X, out=None, beta=0.0):
        """``dX = dY / X`` (``X`` the saved input)."""
        _same("backprop_log", dY, X)
        with np.errstate(all="ignore"):
            return _put(out, dY / X, beta)

    def backprop_sqrt(self, dY, Y, out=None, beta=0.0):
        """``dX = dY * 0.5 / Y`` with ``Y = sqrt(X)``."""
        _same("backprop_sqrt", dY, Y)
        with np.errstate(all="ignore"):
            return _put(out, dY * dY.dtype.type(0.5) / Y, beta)

    def backprop_power(self, dY, X, p, out=None, beta=0.0):
        """``dX = dY * p * X ** (p - 1)``; exactly 0 for ``p == 0`` and ``dY`` for
        ``p == 1``."""
        _same("backprop_power", dY, X)
        if p == 0:
            r = np.zeros(dY.shape, dY.dtype)
        elif p == 1:
            r = dY
        else:
            t = dY.dtype.type
            with np.errstate(all="ignore"):
                r = dY * (t(p) * np.power(X, t(p - 1)))
        return _put(out, r, beta)

    def scale_by(self, X, s, out=None, beta=0.0):
        """``X * s`` with ``s`` a one-element array (a run-time scalar)."""
        _same("scale_by", X, s)
        if s.size != 1:
            raise ValueError(f"scale_by: s must have one element, got shape {s.shape}")
        with np.errstate(all="ignore"):
            return _put(out, X * s.reshape(()), beta)

    # ------------------------------------------------------------------ reductions
    def expand(self, dY, shape, out=None, beta=0.0):
        """``broadcast_to(dY, shape) + beta * out`` (the adjoint of :meth:`unbroadcast`)."""
        _same("expand", dY)
        shape = tuple(int(n) for n in shape)
        if _bcast("expand", dY.shape, shape) != shape:
            raise ValueError(f"expand: shape {dY.shape} cannot be broadcast to {shape}")
        return _put(out, np.broadcast_to(dY, shape), beta)

    def reduce_max(self, X, axis=None, keepdims=False):
        """Maximum over all elements (``axis=None``) or one axis; NaN propagates; an empty
        reduction raises ValueError."""
        _same("reduce_max", X)
        if axis is not None:
            axis = _axis(axis, X.ndim, "reduce_max")
        if X.size == 0 and (axis is None or X.shape[axis] == 0):
            raise ValueError(f"reduce_max: empty reduction over an array of shape {X.shape}")
        return _put(None, np.asarray(np.max(X, axis=axis, keepdims=keepdims)), 0.0)

    def backprop_reduce_max(self, dY, X, Y, axis=None, keepdims=False, out=None, beta=0.0):
        """Route each reduced slot's ``dY`` to the first position where ``X == Y`` along
        ``axis`` (C order over all elements for ``axis=None``; NaN matches NaN, which is
        ``np.argmax``'s choice); 0 elsewhere."""
        _same("backprop_reduce_max", dY, X, Y)
        r = np.zeros(X.shape, X.dtype)
        if axis is None:
            eq = _hit(X, Y.reshape(())).reshape(-1)
            if eq.size:
                i = int(np.argmax(eq))
                if eq[i]:
                    r.reshape(-1)[i] = dY.reshape(())
            return _put(out, r, beta)
        axis = _axis(axis, X.ndim, "backprop_reduce_max")
        eq = _hit(X, _keep(Y, axis, keepdims, X.ndim))
        if X.shape[axis]:
            idx = np.argmax(eq, axis=axis, keepdims=True)
            hit = np.take_along_axis(eq, idx, axis)
            g = np.where(hit, _keep(dY, axis, keepdims, X.ndim), X.dtype.type(0))
            np.put_along_axis(r, idx, g, axis)
        return _put(out, r, beta)

    def logsumexp(self, X, axis=-1, keepdims=False):
        """``m + log(sum(exp(X - m)))`` with ``m`` the max over ``axis`` (None: all);
        rows whose max is +-inf give that inf; NaN propagates; an empty reduction gives
        -inf."""
        dt = _same("logsumexp", X)
        if axis is not None:
            axis = _axis(axis, X.ndim, "logsumexp")
        if X.size == 0 and (axis is None or X.shape[axis] == 0):  # log(0)
            shape = (1,) * X.ndim if axis is None else X.shape[:axis] + (1,) + X.shape[axis + 1:]
            r = np.full(shape, -np.inf, dt)
            if not keepdims:
                r = r.reshape(()) if axis is None else np.squeeze(r, axis)
            return r
        m = np.max(X, axis=axis, keepdims=True)
        with np.errstate(all="ignore"):
            m = np.where(np.isfinite(m), m, dt.type(0))
            s = np.sum(np.exp(X - m), axis=axis, keepdims=True, dtype=np.float64)
            r = (np.log(s).astype(dt) + m).astype(dt)
        if not keepdims:
            r = r.reshape(()) if axis is None else np.squeeze(r, axis)
        return _put(None, np.asarray(r), 0.0)

    def backprop_logsumexp(self, dY, X, Y, axis=-1, keepdims=False, out=None, beta=0.0):
        """``dY * exp(X - Y)`` broadcast along ``axis``; ``out`` of ``X.shape``."""
        _same("backprop_logsumexp", dY, X, Y)
        if axis is not None:
            axis = _axis(axis, X.ndim, "backprop_logsumexp")
        with np.errstate(all="ignore"):
            r = _keep(dY, axis, keepdims, X.ndim) * np.exp(X - _keep(Y, axis, keepdims, X.ndim))
        return _put(out, r, beta)

    def softmax(self, X, axis=-1, out=None):
        """Softmax along ``axis``, shifted by the max (stable for any magnitude)."""
        dt = _same("softmax", X)
        axis = _axis(axis, X.ndim, "softmax")
        with np.errstate(all="ignore"):
            e = np.exp(X - np.max(X, axis=axis, keepdims=True)) if X.size else X.copy()
            s = np.sum(e, axis=axis, keepdims=True, dtype=np.float64).astype(dt)
            return _put(out, e / s, 0.0)

    def backprop_softmax(self, dY, Y, axis=-1, out=None, beta=0.0):
        """``Y * (dY - sum(dY * Y, axis, keepdims=True))`` (``Y`` the saved output)."""
        dt = _same("backprop_softmax", dY, Y)
        axis = _axis(axis, Y.ndim, "backprop_softmax")
        with np.errstate(all="ignore"):
            s = np.sum(dY * Y, axis=axis, keepdims=True, dtype=np.float64).astype(dt)
            return _put(out, Y * (dY - s), beta)

    def log_softmax(self, X, axis=-1, out=None):
        """``X - logsumexp(X, axis, keepdims=True)``; a row whose maximum is +-inf or NaN
        gives NaN (as :meth:`softmax`)."""
        _same("log_softmax", X)
        axis = _axis(axis, X.ndim, "log_softmax")
        if X.size == 0:
            return _put(out, X, 0.0)
        with np.errstate(all="ignore"):
            m = np.max(X, axis=axis, keepdims=True)
            r = X - self.logsumexp(X, axis, True)
            r = np.where(np.isfinite(m), r, X.dtype.type(np.nan))  # as softmax: NaN rows
            return _put(out, r, 0.0)

    def backprop_log_softmax(self, dY, Y, axis=-1, out=None, beta=0.0):
        """``dY - exp(Y) * sum(dY, axis, keepdims=True)`` (``Y`` the saved output)."""
        dt = _same("backprop_log_softmax", dY, Y)
        axis = _axis(axis, Y.ndim, "backprop_log_softmax")
        with np.errstate(all="ignore"):
            s = np.sum(dY, axis=axis, keepdims=True, dtype=np.float64).astype(dt)
            return _put(out, dY - np.exp(Y) * s, beta)

    # ------------------------------------------------------------------ indexing
    def copy_into(self, src, out, beta=0.0):
        """``out[...] = src + beta * out`` for arrays of one shape and any strides (``out``
        may be a non-contiguous writeable view). Returns ``out``."""
        _same("copy_into", src, out)
        if src.shape != out.shape:
            raise ValueError(f"copy_into: src of shape {src.shape} for out of shape {out.shape}")
        if beta == 0.0:
            np.copyto(out, src)
        else:
            with np.errstate(all="ignore"):
                out += src
        return out

    def gather(self, X, index, out=None):
        """``X[index]`` for a tuple of integer arrays indexing the leading axes of ``X``
        (negative indices count from the end; out of range raises IndexError)."""
        _same("gather", X)
        idx = _index_tuple(index, X.ndim, "gather")
        r = X[idx]
        if np.may_share_memory(r, X):  # 0-d index arrays act as integers: a view
            r = np.array(r, order="C", copy=True)
        return _put(out, np.asarray(r), 0.0)

    def backprop_gather(self, dY, index, shape, out=None, beta=0.0):
        """Adjoint of :meth:`gather`: zeros of ``shape`` with ``dY`` scatter-added at
        ``index`` (repeated indices accumulate), plus ``beta * out``."""
        _same("backprop_gather", dY)
        shape = tuple(int(n) for n in shape)
        idx = _index_tuple(index, len(shape), "backprop_gather")
        r = np.zeros(shape, dY.dtype)
        np.add.at(r, idx, dY)
        return _put(out, r, beta)

    def concatenate(self, arrays, axis=0, out=None):
        """Join arrays of one dtype along ``axis`` (numpy semantics; mismatched shapes or
        0-d arrays raise ValueError naming the shapes)."""
        arrays = list(arrays)
        if not arrays:
            raise ValueError("concatenate: need at least one array")
        _same("concatenate", *arrays)
        shapes = [a.shape for a in arrays]
        if any(len(s) == 0 for s in shapes):
            raise ValueError(f"concatenate: 0-d arrays cannot be concatenated (shapes {shapes})")
        ndim = len(shapes[0])
        ax = _axis(axis, ndim, "concatenate")
        for s in shapes:
            if len(s) != ndim or s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]:
                raise ValueError(
                    f"concatenate: shapes {shapes} must match except along axis {axis}"
                )
        if out is not None:
            return np.concatenate(arrays, axis=ax, out=out)
        return np.ascontiguousarray(np.concatenate(arrays, axis=ax))
