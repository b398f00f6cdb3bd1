"""Row-sparse gradients of embedding tables."""

from __future__ import annotations

import numpy as np

from . import backends

__all__ = ["RowSparseGrad"]


class RowSparseGrad:
    """Gradient of a ``(V, d)`` table that is non-zero only in some rows.

    It stores the rows touched by the backward pass and one value row per touch:
    ``rows`` (n,) and ``values`` (n, d), with repeated rows meaning "add them up". Nothing
    of size ``V`` is allocated, so an embedding step costs the same whatever the
    vocabulary size. The optimisers apply it row by row.

    Use :meth:`toarray` (or ``np.asarray(grad)``) for the dense ``(V, d)`` array and
    :meth:`coalesce` for one summed row per distinct id.
    """

    __slots__ = ("rows", "values", "shape")

    def __init__(self, rows, values, shape):
        self.rows = rows
        self.values = values
        self.shape = tuple(shape)

    @property
    def dtype(self):
        return self.values.dtype

    def toarray(self):
        """The dense ``(V, d)`` gradient as a new numpy array."""
        from .tensor import _zeros

        out = _zeros(self.shape, self.values.dtype)
        if self.rows.size:
            backends.get_ops().scatter_add_rows(out, self.rows, self.values, 1.0)
        return out

    def __array__(self, dtype=None, copy=None):
        dense = self.toarray()
        return dense if dtype is None else dense.astype(dtype)

    def coalesce(self):
        """A new RowSparseGrad with one row per distinct id (values summed)."""
        rows, values = backends.get_ops().coalesce_rows(self.rows, self.values)
        return RowSparseGrad(rows, values, self.shape)

    def _add_rows(self, rows, values):
        """Accumulate more row contributions (returns a new object; nothing in place)."""
        ops = backends.get_ops()
        return RowSparseGrad(
            _concat_ids(self.rows, rows), ops.concatenate([self.values, values]), self.shape
        )

    def __repr__(self):
        return (
            f"RowSparseGrad(shape={self.shape}, rows={self.rows.size}, "
            f"distinct={np.unique(self.rows).size}, dtype={self.dtype})"
        )


_AS_FLOAT = {np.dtype(np.int64): np.float64, np.dtype(np.int32): np.float32}


def _concat_ids(a, b):
    """Concatenate two id arrays with the backend's ``concatenate`` kernel (their bytes
    viewed as floats of the same width: the kernel copies, never converts), so that a
    compiled step plan repeats the copy on every replay."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.dtype != b.dtype or a.dtype not in _AS_FLOAT:
        if backends._state.trace is not None:
            raise TypeError("a compiled step cannot concatenate row ids of dtypes "
                            f"{a.dtype} and {b.dtype}: use int64 ids throughout")
        return np.concatenate([a.astype(np.int64), b.astype(np.int64)])
    f = _AS_FLOAT[a.dtype]
    return backends.get_ops().concatenate([a.view(f), b.view(f)]).view(a.dtype)
