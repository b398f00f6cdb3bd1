"""Optimisers that update parameters in place with the backend's fused kernels.

Dense gradients use one fused pass per parameter (``W -= lr * dW`` as an axpy; Adam's
moment and weight updates in one loop). Row-sparse gradients of embedding tables
(:class:`~fastbp.sparse.RowSparseGrad`) update only the rows present, so a step costs the
same whatever the vocabulary size.
"""

from __future__ import annotations

import math

import numpy as np

from . import backends
from .sparse import RowSparseGrad
from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Base class: holds the parameters and clears their gradients."""

    def __init__(self, params, lr):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for p in params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(
                    "optimizer parameters must be tensors that require grad "
                    f"(fastbp.Parameter), got {type(p).__name__}"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer got the same parameter twice")
        lr = float(lr)
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"learning rate must be a finite number >= 0, got {lr}")
        self.params = params
        self.lr = lr

    def zero_grad(self):
        """Set every parameter's ``.grad`` to None (its buffer is reused, not freed)."""
        trace = backends._state.trace
        for p in self.params:
            if trace is not None:
                trace.touch(p, True)
            p.grad = None

    def _traced(self):
        """Tell a compiled-step trace in progress which gradients this step reads and to
        keep this optimiser (its state arrays) alive with the plan."""
        trace = backends._state.trace
        if trace is not None:
            trace.hold(self)
            for p in self.params:
                trace.touch(p)

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _check_grad(p, g):
        if g.shape != p.data.shape or g.dtype != p.data.dtype:
            raise ValueError(
                f"gradient of shape {g.shape} and dtype {g.dtype} for a parameter of shape "
                f"{p.data.shape} and dtype {p.data.dtype}"
            )


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``p -= lr * p.grad``."""

    def step(self):
        ops = backends.get_ops()
        self._traced()
        lr = self.lr
        for p in self.params:
            g = p.grad
            if g is None:
                continue
            if type(g) is RowSparseGrad:
                self._check_grad(p, g)
                ops.sgd_update_rows(p.data, g.rows, g.values, lr)
            else:
                self._check_grad(p, g)
                ops.sgd_update(p.data, g, lr)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    Row-sparse gradients get the lazy update of ``torch.optim.SparseAdam``: only the rows
    present in the batch have their moments and weights updated.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        b1, b2 = (float(b) for b in betas)
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam betas must lie in [0, 1), got {betas}")
        if not eps > 0:
            raise ValueError(f"Adam eps must be > 0, got {eps}")
        self.betas = (b1, b2)
        self.eps = float(eps)
        self.state = {}

    def step(self):
        ops = backends.get_ops()
        self._traced()
        b1, b2 = self.betas
        for p in self.params:
            g = p.grad
            if g is None:
                continue
            self._check_grad(p, g)
            st = self.state.get(id(p))
            if st is None:
                # the step counter is an array that the kernel increments, so that a
                # compiled step replaying this update counts its own steps
                st = self.state[id(p)] = {
                    "step": np.zeros(1, np.int64),
                    "m": np.zeros_like(p.data),
                    "v": np.zeros_like(p.data),
                }
            elif type(st["step"]) is not np.ndarray:  # a count restored as an int
                st["step"] = np.full(1, int(st["step"]), np.int64)
            if type(g) is RowSparseGrad:
                ops.adam_update_rows(
                    p.data, g.rows, g.values, st["m"], st["v"], self.lr, b1, b2, self.eps,
                    st["step"],
                )
            else:
                ops.adam_update(p.data, g, st["m"], st["v"], self.lr, b1, b2, self.eps, st["step"])
