"""Graph rule of the embedding lookup (row-sparse gradient of the table)."""

from __future__ import annotations

from . import backends
from .tensor import Tensor, _int_array, _result

__all__ = ["embedding"]


def embedding(E, ids):
    """Look up rows of the table ``E`` (V, d).

    ``ids`` of shape (B, w) gives (B, w*d): the w window rows of each example concatenated
    (the lecture's ``x = [x_{t-2}, ..., x_{t+2}]``); ids of shape (n,) give (n, d). The
    gradient of ``E`` is row-sparse (:class:`~fastbp.sparse.RowSparseGrad`).

    Parameters
    ----------
    E : Tensor
        The (V, d) table.
    ids : array_like of int
        (n,) or (B, w) row ids in [0, V).

    Returns
    -------
    Tensor
        (n, d) or (B, w * d).

    Raises
    ------
    IndexError
        An id outside [0, V).
    """
    if not isinstance(E, Tensor):
        raise TypeError("embedding: E must be a fastbp Tensor (e.g. a Parameter)")
    if E.data.ndim != 2:
        raise ValueError(f"embedding: table must be 2-D (V, d), got shape {E.shape}")
    ids = _int_array(ids, "embedding ids")
    if ids.ndim not in (1, 2):
        raise ValueError(f"embedding: ids must be 1-D (n,) or 2-D (B, w), got shape {ids.shape}")
    st = backends._state
    ids2 = ids if ids.ndim == 2 else ids.reshape(-1, 1)
    Y = st.ops.embedding(E.data, ids2)
    out, track = _result(Y, (E,), "embedding", st)
    if track:
        rows = ids2.reshape(-1)
        d = E.data.shape[1]

        def backward(g):
            E._accumulate_rows(rows, g.reshape(-1, d))

        out._backward = backward
    return out
