"""The PyTorch baseline of PERF.md: an expert's CPU eager training step.

Only imported when torch is installed; torch is never a dependency of fastbp (install it
locally for comparisons: ``pip install torch==2.13.0``).

The embedding table is a plain tensor outside autograd: the window rows are gathered with
``index_select`` into a leaf that requires grad, and the table is updated sparsely with
``index_add_`` (what ``nn.Embedding(sparse=True)`` + SGD amounts to, without the sparse
tensor overhead). ``addmm`` fuses the bias into the matmuls; ``F.cross_entropy`` is the
fused log-softmax + NLL; SGD is ``p.add_(p.grad, alpha=-lr)``; gradients are reset to
None (``zero_grad(set_to_none=True)``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fastbp import benchmark as bm

__all__ = ["TorchStep", "max_param_diff_torch"]


class TorchStep(bm._StepBase):
    name = "torch"

    def __init__(self, lr=bm.LR, threads=None):
        super().__init__(lr)
        if threads is not None:
            torch.set_num_threads(int(threads))

    def _build(self, params):
        t = {k: torch.from_numpy(params[k]) for k in bm.PARAM_NAMES}  # shares the copies
        self.E = t["E"]
        self.W, self.b, self.U, self.c = (t[k].requires_grad_() for k in "WbUc")
        self._dense = (self.W, self.b, self.U, self.c)
        self._pool = [
            (torch.from_numpy(ids.reshape(-1).astype(np.int64)), torch.from_numpy(y.astype(np.int64)))
            for ids, y in self.batches
        ]
        self._np = params
        self.loss = None

    def params(self):
        return {k: v for k, v in self._np.items()}

    def step(self):
        i = self._i
        self._i = (i + 1) % len(self._pool)
        flat, y = self._pool[i]
        B = y.shape[0]
        E, W, b, U, c = self.E, self.W, self.b, self.U, self.c
        lr = self.lr
        x = E.index_select(0, flat).view(B, -1).requires_grad_()
        h = torch.tanh(torch.addmm(b, x, W))
        loss = F.cross_entropy(torch.addmm(c, h, U), y)
        loss.backward()
        with torch.no_grad():
            for p in self._dense:
                p.add_(p.grad, alpha=-lr)
                p.grad = None
            E.index_add_(0, flat, x.grad.view(-1, E.shape[1]), alpha=-lr)
        self.loss = loss.detach()


def max_param_diff_torch(config="lecture", B=32, steps=3, dtype=np.float32, seed=0):
    """Largest absolute parameter difference between ``steps`` torch steps and the pure
    numpy baseline from identical weights and batches."""
    params = bm.init_params(config, dtype, seed)
    batches = bm.make_batches(config, B, max(steps, 1), seed)
    ref = bm.NumpyStep().setup(config, B, dtype, params=params, batches=batches)
    ts = TorchStep().setup(config, B, dtype, params=params, batches=batches)
    for _ in range(steps):
        ref.step()
        ts.step()
    pt = ts.params()
    return max(float(np.max(np.abs(a - pt[k]))) for k, a in ref.params().items())
