"""Whole-function derivatives built on the engine: :func:`jacobian`."""

from __future__ import annotations

import numpy as np

from .sparse import RowSparseGrad
from .tensor import Tensor, _as_float_array, _topo_order, enable_grad

__all__ = ["jacobian"]


def jacobian(f, *inputs):
    """The Jacobian of ``f`` at ``inputs``, as ``torch.autograd.functional.jacobian``.

    Parameters
    ----------
    f : callable
        ``f(*tensors) -> Tensor``, built from fastbp ops.
    *inputs : numpy.ndarray, Tensor or number
        Where to evaluate it. Each is passed to ``f`` as a new leaf tensor that requires
        grad and shares the input's data (a tensor's own ``.grad`` is left alone); its
        dtype (float32 or float64) is kept; Python numbers become float64.

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        For one input, ``J`` of shape ``out.shape + input.shape`` with
        ``J[i..., j...] = d out[i...] / d input[j...]``, in the input's dtype; for several
        inputs a tuple with one such array per input. An output that does not depend on
        an input gives zeros.

    Notes
    -----
    One backward pass per output element (the graph is kept between them), so the cost is
    ``out.size`` backward passes: meant for checking derivations on small examples, e.g.
    that the Jacobian of an elementwise ``f`` is ``diag(f'(z))``, ``d(Wx + b)/dx = W`` and
    ``d(u^T h)/du = h^T``. Other tensors that ``f`` uses (parameters it closes over) do
    not see their ``.grad`` change.
    """
    if not callable(f):
        raise TypeError(f"jacobian: f must be callable, got {type(f).__name__}")
    if not inputs:
        raise ValueError("jacobian: give at least one input")
    xs = [
        Tensor(_as_float_array(x, f"jacobian input {i}"), requires_grad=True)
        for i, x in enumerate(inputs)
    ]
    with enable_grad():
        out = f(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"jacobian: f must return a fastbp Tensor, got {type(out).__name__}"
            + (" (one output only)" if isinstance(out, (tuple, list)) else "")
        )
    jac = [np.zeros(out.shape + x.shape, x.dtype) for x in xs]
    if out.requires_grad and out.data.size:
        ours = {id(x) for x in xs}
        foreign = _foreign_leaves(out, ours)
        stash = [(t, t.grad, t._grad_buf) for t in foreign]
        for t in foreign:  # backward must not accumulate into the caller's gradients
            t.grad = None
            t._grad_buf = None
        try:
            _fill(out, xs, jac)
        finally:
            for t, g, buf in stash:
                t.grad, t._grad_buf = g, buf
    return jac[0] if len(jac) == 1 else tuple(jac)


def _foreign_leaves(out, ours):
    """The leaves requiring grad that ``out`` depends on, other than the inputs."""
    if out.is_leaf:
        return [] if id(out) in ours else [out]
    found = {}
    for node in _topo_order(out):
        for p in node._parents:
            if p.is_leaf and p.requires_grad and id(p) not in ours:
                found[id(p)] = p
    return list(found.values())


def _fill(out, xs, jac):
    m = out.data.size
    seed = np.zeros(out.shape, out.dtype)
    flat_seed = seed.reshape(-1)
    rows = [J.reshape((m,) + x.shape) for J, x in zip(jac, xs)]
    for i in range(m):
        for x in xs:
            x.grad = None
        flat_seed[i] = 1
        out.backward(seed, retain_graph=True)
        flat_seed[i] = 0
        for x, R in zip(xs, rows):
            g = x.grad
            if g is None:
                continue  # row stays zero: out[i] does not depend on x
            R[i] = g.toarray() if isinstance(g, RowSparseGrad) else g
    for x in xs:
        x.grad = None
