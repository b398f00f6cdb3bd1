"""The PERF.md training step as a compiled fastbp step plan (issue 9's "fastbp compiled"
column): the step of :class:`fastbp.benchmark.FastbpStep` written as the issue's
example, a function decorated with ``@fb.compile`` that runs forward, backward,
``opt.step()`` and ``opt.zero_grad()``::

    @fb.compile
    def step(ids, y):
        x = fb.embedding(E, ids)
        h = fb.tanh(x @ W + b)
        loss = fb.cross_entropy(h @ U + c, y)
        loss.backward()
        opt.step(); opt.zero_grad()
        return loss

The first call traces the plan, later calls replay it (``setup`` does not call it: the
benchmarks' warm-up does). Only usable when fastbp has ``fb.compile``
(:func:`compiled_available`); the benchmarks skip the column otherwise, naming why.
"""

from __future__ import annotations

import fastbp as fb
from fastbp import benchmark as bm

__all__ = ["CompiledStep", "compiled_available", "max_param_diff_compiled", "COMPILED_MISSING"]

COMPILED_MISSING = ("this fastbp has no fb.compile (compiled step plans, issue 9, are not "
                    "merged yet)")


def compiled_available():
    return hasattr(fb, "compile") and bm.cython_available()


class CompiledStep(bm.FastbpStep):
    """:class:`fastbp.benchmark.FastbpStep` (cython backend) with its step compiled."""

    def __init__(self, lr=bm.LR):
        if not hasattr(fb, "compile"):
            raise RuntimeError(COMPILED_MISSING)
        super().__init__("cython", lr)
        self.name = "fastbp-compiled"

    def _build(self, params):
        super()._build(params)
        E, W, b, U, c, opt = self.E, self.W, self.b, self.U, self.c, self.opt

        @fb.compile
        def step(ids, y):
            x = fb.embedding(E, ids)
            h = fb.tanh(x @ W + b)
            loss = fb.cross_entropy(h @ U + c, y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        self._compiled = step
        self._traced = False

    def step(self):
        ids, y = self._next_batch()
        if self._traced:  # replay: the backend was fixed when the plan was traced
            self.loss = self._compiled(ids, y)
            return
        with fb.use_backend("cython"):  # the first call of the signature traces
            self.loss = self._compiled(ids, y)
        self._traced = True


def max_param_diff_compiled(config="lecture", B=32, steps=3, dtype=None, seed=0):
    """Largest absolute parameter difference between ``steps`` compiled steps and the
    pure numpy baseline from identical weights and batches."""
    import numpy as np

    dtype = np.float32 if dtype is None else dtype
    params = bm.init_params(config, dtype, seed)
    batches = bm.make_batches(config, B, max(steps, 1), seed)
    ref = bm.NumpyStep().setup(config, B, dtype, params=params, batches=batches)
    cs = CompiledStep().setup(config, B, dtype, params=params, batches=batches)
    for _ in range(steps):
        ref.step()
        cs.step()
    pc = cs.params()
    return max(float(np.max(np.abs(a - pc[k]))) for k, a in ref.params().items())
