"""The PERF.md training step as one ``jax.jit`` function (XLA on the CPU), the whole-step
compiler a CPU user would pick instead of fastbp (issue 9's "jax.jit" column).

Only imported when jax is installed; jax is never a dependency of fastbp (install it in
a benchmark environment only: ``pip install "jax[cpu]"``).

One jitted function does the whole step: the window gather ``E[ids]``, ``tanh(X @ W +
b)``, the mean softmax cross-entropy (``jax.nn.log_softmax``), ``jax.value_and_grad``
for ``W, b, U, c`` and the gathered windows ``X``, the SGD update of the four dense
parameters and the sparse update of the table, ``E.at[ids].add(-lr * dX)`` (repeated ids
accumulate, like ``np.add.at``). The five parameters are donated (``donate_argnums``),
so XLA updates them in place instead of allocating new ones. Each :meth:`JaxStep.step`
waits for its result (``block_until_ready``): jax dispatches asynchronously, and fastbp,
numpy and torch return only when the step is done.

Threads: XLA's CPU thread pool uses every core by default; with ``threads=1`` the
``XLA_FLAGS`` of a single-threaded run are set before jax is first imported (jax reads
them then; in a process that already imported jax they do not change).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from fastbp import benchmark as bm

__all__ = ["JaxStep", "jax_available", "max_param_diff_jax"]

_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def jax_available():
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def _import_jax(threads, x64):
    if threads == 1 and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _ONE_THREAD).strip()
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    return jax


class JaxStep(bm._StepBase):
    name = "jax"

    def __init__(self, lr=bm.LR, threads=None):
        super().__init__(lr)
        self.threads = threads

    def _build(self, params):
        jax = _import_jax(self.threads, self.dtype == np.float64)
        jnp = jax.numpy
        dt = self.dtype
        B, d = self.B, self.cfg["d"]
        lr = dt.type(self.lr)

        def loss_fn(W, b, U, c, X, y):
            h = jnp.tanh(X @ W + b)
            logp = jax.nn.log_softmax(h @ U + c, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        grads = jax.value_and_grad(loss_fn, argnums=(0, 1, 2, 3, 4))

        def step(E, W, b, U, c, flat, y):
            X = E[flat].reshape(B, -1)
            loss, (gW, gb, gU, gc, gX) = grads(W, b, U, c, X, y)
            E = E.at[flat].add(-lr * gX.reshape(-1, d))
            return loss, E, W - lr * gW, b - lr * gb, U - lr * gU, c - lr * gc

        self._step = jax.jit(step, donate_argnums=(0, 1, 2, 3, 4))
        self._p = [jnp.array(params[k], copy=True) for k in bm.PARAM_NAMES]  # device copies
        self._pool = [(jnp.asarray(ids.reshape(-1).astype(np.int32)),
                       jnp.asarray(y.astype(np.int32))) for ids, y in self.batches]
        self.loss = None

    def params(self):
        return {k: np.asarray(v) for k, v in zip(bm.PARAM_NAMES, self._p)}

    def step(self):
        i = self._i
        self._i = (i + 1) % len(self._pool)
        flat, y = self._pool[i]
        loss, *self._p = self._step(*self._p, flat, y)
        self.loss = loss.block_until_ready()


def max_param_diff_jax(config="lecture", B=32, steps=3, dtype=np.float32, seed=0):
    """Largest absolute parameter difference between ``steps`` jax steps and the pure
    numpy baseline from identical weights and batches."""
    params = bm.init_params(config, dtype, seed)
    batches = bm.make_batches(config, B, max(steps, 1), seed)
    ref = bm.NumpyStep().setup(config, B, dtype, params=params, batches=batches)
    js = JaxStep().setup(config, B, dtype, params=params, batches=batches)
    for _ in range(steps):
        ref.step()
        js.step()
    pj = js.params()
    return max(float(np.max(np.abs(a - pj[k]))) for k, a in ref.params().items())
