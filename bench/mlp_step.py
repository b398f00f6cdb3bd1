"""The generic-ops benchmark of issue 7: one training step of a two-layer MLP classifier.

::

    h    = fb.maximum(X @ W1 + b1, 0.0)              # (B, H)
    logp = fb.log_softmax(h @ W2 + b2, axis=1)       # (B, C)
    loss = -(logp[np.arange(B), y]).mean()
    loss.backward(); opt.step(); opt.zero_grad()     # fb.optim.SGD

written only with fastbp's generic ops (no fused ``linear`` / ``relu`` /
``cross_entropy``), at D=300, H=512, C=256, against the same step hand-written in pure
numpy. Implementations (same interface as :mod:`fastbp.benchmark`: ``setup(...)`` then
``step()`` cycling through a pool of random batches, so timing excludes setup):

* :class:`NumpyMLPStep` (``pure-numpy``) -- careful, vectorised numpy: ``@`` (numpy's
  BLAS), ``np.maximum`` in place, a stable log-softmax (shift by the row max), the
  backward written out (``dS = (softmax - onehot) / B``, ``dZ1 = dh * [Z1 > 0]``) and
  in-place SGD updates ``p -= lr * dp``.
* :class:`FastbpMLPStep` (``fastbp-cython`` / ``fastbp-numpy``) -- the code above on the
  compiled or the reference backend.
* :class:`CompiledMLPStep` (``fastbp-compiled``) -- the same code as one function under
  ``@fb.compile`` (traced once, then replayed as a plan of kernel calls).

Both implementations build ``np.arange(B)`` once per setup (not per step).
``python bench/mlp_step.py 16 256`` prints where a fastbp step's time goes (every
backend op call replayed alone, 1 thread), as ``fastbp.benchmark.profile_step`` does for
the window classifier.

fastbp's ``maximum`` splits the gradient evenly on ties (``Z1 == 0``); the numpy step
uses ``[Z1 > 0]``. With continuous random data an exact zero pre-activation does not
occur, and :func:`mlp_param_diffs` checks that both compute the same parameters.
"""

from __future__ import annotations

import numpy as np

from fastbp import benchmark as bm

__all__ = ["MLP", "IMPLS", "init_mlp_params", "make_mlp_batches", "NumpyMLPStep",
           "FastbpMLPStep", "CompiledMLPStep", "make_mlp_step", "mlp_param_diffs"]

#: The issue's sizes: input D, hidden H, classes C.
MLP = dict(D=300, H=512, C=256)
IMPLS = ("pure-numpy", "fastbp-numpy", "fastbp-cython", "fastbp-compiled")
NAMES = ("W1", "b1", "W2", "b2")
LR = 0.05


def init_mlp_params(dtype=np.float32, seed=0, sizes=MLP):
    """Glorot-uniform ``W1`` (D, H), ``W2`` (H, C), small random biases."""
    D, H, C = sizes["D"], sizes["H"], sizes["C"]
    rng = np.random.default_rng(seed)
    lim1, lim2 = np.sqrt(6.0 / (D + H)), np.sqrt(6.0 / (H + C))
    return {
        "W1": rng.uniform(-lim1, lim1, (D, H)).astype(dtype),
        "b1": rng.uniform(-0.1, 0.1, H).astype(dtype),
        "W2": rng.uniform(-lim2, lim2, (H, C)).astype(dtype),
        "b2": rng.uniform(-0.1, 0.1, C).astype(dtype),
    }


def make_mlp_batches(B, dtype=np.float32, n_batches=bm.N_BATCHES, seed=0, sizes=MLP):
    """A pool of ``(X (B, D), y (B,) intp)`` batches."""
    rng = np.random.default_rng(seed + 1)
    return [
        (rng.standard_normal((B, sizes["D"])).astype(dtype),
         rng.integers(0, sizes["C"], B).astype(np.intp))
        for _ in range(n_batches)
    ]


class _MLPBase:
    name = "?"

    def __init__(self, lr=LR):
        self.lr = float(lr)
        self.loss = None

    def setup(self, B, dtype=np.float32, seed=0, params=None, batches=None,
              n_batches=bm.N_BATCHES):
        if B < 1:
            raise ValueError(f"batch size must be >= 1, got {B}")
        self.B = int(B)
        self.dtype = np.dtype(dtype)
        params = init_mlp_params(dtype, seed) if params is None else params
        params = {k: np.array(params[k], dtype=dtype, order="C", copy=True) for k in NAMES}
        self.batches = list(batches) if batches is not None else make_mlp_batches(
            B, dtype, n_batches, seed)
        self._ar = np.arange(self.B)
        self._i = 0
        self._build(params)
        return self

    def _next_batch(self):
        i = self._i
        self._i = (i + 1) % len(self.batches)
        return self.batches[i]

    def __repr__(self):
        return f"{type(self).__name__}({self.name}, B={self.B})"


class NumpyMLPStep(_MLPBase):
    """The baseline: the step hand-written in pure numpy."""

    name = "pure-numpy"

    def _build(self, params):
        self.W1, self.b1, self.W2, self.b2 = (params[k] for k in NAMES)

    def params(self):
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def step(self):
        X, y = self._next_batch()
        ar = self._ar
        W1, b1, W2, b2 = self.W1, self.b1, self.W2, self.b2
        lr = self.dtype.type(self.lr)
        B = X.shape[0]

        # forward
        h = X @ W1
        h += b1
        np.maximum(h, 0, out=h)                     # (B, H) relu
        S = h @ W2
        S += b2                                     # (B, C) logits
        S -= S.max(axis=1, keepdims=True)           # stable log-softmax
        P = np.exp(S)
        sumexp = P.sum(axis=1, keepdims=True)
        self.loss = float(np.log(sumexp[:, 0]).sum() - S[ar, y].sum()) / B

        # backward: dS = (softmax - onehot) / B
        P *= self.dtype.type(1.0 / B) / sumexp
        P[ar, y] -= self.dtype.type(1.0 / B)
        dW2 = h.T @ P
        db2 = P.sum(axis=0)
        dh = P @ W2.T
        dh *= h > 0                                 # dZ1
        dW1 = X.T @ dh
        db1 = dh.sum(axis=0)

        # SGD
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2


class FastbpMLPStep(_MLPBase):
    """The step written with fastbp's generic ops on ``backend`` (selected for the
    duration of each :meth:`step`; the caller's backend is restored)."""

    def __init__(self, backend="cython", lr=LR):
        super().__init__(lr)
        import fastbp.backends as backends

        self.backend = backend
        self.name = f"fastbp-{backend}"
        self._ops = backends._resolve(backend)  # ImportError if not built
        self._state = backends._state

    def _build(self, params):
        import fastbp as fb

        self._fb = fb
        self.W1, self.b1, self.W2, self.b2 = (fb.Parameter(params[k]) for k in NAMES)
        self.opt = fb.optim.SGD([self.W1, self.b1, self.W2, self.b2], lr=self.lr)
        self.batches = [(fb.Tensor(X), y) for X, y in self.batches]

    def params(self):
        return {"W1": self.W1.data, "b1": self.b1.data, "W2": self.W2.data,
                "b2": self.b2.data}

    def step(self):
        fb = self._fb
        st = self._state
        previous = st.ops
        st.ops = self._ops
        try:
            X, y = self._next_batch()
            W1, b1, W2, b2 = self.W1, self.b1, self.W2, self.b2
            h = fb.maximum(X @ W1 + b1, 0.0)
            logp = fb.log_softmax(h @ W2 + b2, axis=1)
            loss = -(logp[self._ar, y]).mean()
            loss.backward()
            self.opt.step()
            self.opt.zero_grad()
            self.loss = loss
        finally:
            st.ops = previous


class CompiledMLPStep(FastbpMLPStep):
    """:class:`FastbpMLPStep`'s step as one ``@fb.compile`` function (cython backend)."""

    def __init__(self, lr=LR):
        super().__init__("cython", lr)
        self.name = "fastbp-compiled"

    def _build(self, params):
        super()._build(params)
        fb = self._fb
        W1, b1, W2, b2, opt, ar = self.W1, self.b1, self.W2, self.b2, self.opt, self._ar
        self.batches = [(X.data, y) for X, y in self.batches]

        @fb.compile
        def step(X, y):
            h = fb.maximum(fb.Tensor(X) @ W1 + b1, 0.0)
            logp = fb.log_softmax(h @ W2 + b2, axis=1)
            loss = -(logp[ar, y]).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        self._compiled = step

    def step(self):
        st = self._state
        previous = st.ops
        st.ops = self._ops
        try:
            self.loss = self._compiled(*self._next_batch())
        finally:
            st.ops = previous


def make_mlp_step(impl, B, dtype=np.float32, seed=0, **kw):
    """Build and set up an implementation by name (see :data:`IMPLS`)."""
    if impl == "pure-numpy":
        step = NumpyMLPStep()
    elif impl == "fastbp-compiled":
        step = CompiledMLPStep()
    elif impl in ("fastbp-cython", "fastbp-numpy"):
        step = FastbpMLPStep(impl.split("-", 1)[1])
    else:
        raise ValueError(f"unknown implementation {impl!r}; expected one of {', '.join(IMPLS)}")
    return step.setup(B, dtype, seed, **kw)


def mlp_param_diffs(backend="cython", B=16, steps=3, dtype=np.float32, seed=0):
    """``{name: (max abs difference, max abs value)}`` between ``steps`` steps of the
    numpy baseline and of fastbp on ``backend`` from identical weights and batches, plus
    ``"loss"`` (the last losses)."""
    params = init_mlp_params(dtype, seed)
    batches = make_mlp_batches(B, dtype, max(steps, 1), seed)
    ref = NumpyMLPStep().setup(B, dtype, params=params, batches=batches)
    fbs = (CompiledMLPStep() if backend == "compiled" else FastbpMLPStep(backend)).setup(
        B, dtype, params=params, batches=batches)
    for _ in range(steps):
        ref.step()
        fbs.step()
    pf = fbs.params()
    out = {k: (float(np.max(np.abs(a - pf[k]))), float(np.max(np.abs(a))))
           for k, a in ref.params().items()}
    out["loss"] = (abs(ref.loss - float(fbs.loss.item())), abs(ref.loss))
    return out


def profile_mlp(backend="cython", B=16, steps=200, dtype=np.float32, seed=0):
    """Where a fastbp MLP step's time goes (as :func:`fastbp.benchmark.profile_step`):
    ``step_us`` and ``numpy_step_us`` (medians of 5 timings of ``steps // 5`` steps),
    ``kernels`` = ``[(op, shapes, us per call)]`` for every backend op call of one step,
    each replayed alone with the same arguments, and ``graph_us`` = step - kernels."""
    import statistics

    params = init_mlp_params(dtype, seed)
    batches = make_mlp_batches(B, dtype, bm.N_BATCHES, seed)
    step = FastbpMLPStep(backend).setup(B, dtype, params=params, batches=batches)
    ref = NumpyMLPStep().setup(B, dtype, params=params, batches=batches)

    def med_us(impl, n):
        impl.step()
        return statistics.median(bm._time_steps(impl, n) / n for _ in range(5)) * 1e6

    n = max(1, steps // 5)
    step_us, numpy_us = med_us(step, n), med_us(ref, n)
    plain = step._ops
    step._ops = rec = bm._RecordingOps(plain)
    step.step()
    step._ops = plain
    kernels = []
    for name, fn, args, kwargs in rec.calls:
        shapes = "x".join(str(a.shape).replace(" ", "") for a in args
                          if isinstance(a, np.ndarray))
        kernels.append((name, shapes, bm._median_call_us(fn, args, kwargs)))
    kernel_us = sum(k[2] for k in kernels)
    return {"backend": backend, "config": "mlp", "B": B, "step_us": step_us,
            "numpy_step_us": numpy_us, "kernels": kernels, "kernel_us": kernel_us,
            "graph_us": step_us - kernel_us}


if __name__ == "__main__":  # python bench/mlp_step.py [B ...]: per-op profile, 1 thread
    import sys

    import fastbp as fb
    from threadpoolctl import threadpool_limits

    fb.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        for B in [int(a) for a in sys.argv[1:]] or [16, 256]:
            print(bm.format_profile(profile_mlp("cython", B)))
            print()
