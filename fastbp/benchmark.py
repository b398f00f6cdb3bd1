"""Benchmark of one training step of the lecture-3 window classifier (``fastbp bench``).

The workload (see ``PERF.md``): gather a window of ``w`` embedding rows per example,
``h = tanh(X @ W + b)``, mean softmax cross-entropy of ``h @ U + c``, backward for all five
parameters (only the used rows of ``E``) and one SGD update.

Implementations, all objects with ``setup(config, B, dtype, seed)`` (parameters and a
pool of random batches, built once) and ``step()`` (one training step on the next batch
of the pool), so that timing excludes setup:

* :class:`NumpyStep` -- the baseline: a careful, hand-vectorised pure numpy step.
* :class:`FastbpStep` -- fastbp's public API on the ``"cython"`` or ``"numpy"`` backend.

:func:`measure` times one implementation; :func:`speed_table` times several of them
alternately in the same run and reports throughput ratios; :func:`max_param_diff` checks
that fastbp and the numpy baseline compute the same step (so a benchmark can never
silently measure a wrong implementation).

Throughput is in *windows per second* (examples per second): ``B * steps / seconds``.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

__all__ = [
    "CONFIGS",
    "IMPLEMENTATIONS",
    "init_params",
    "make_batches",
    "NumpyStep",
    "FastbpStep",
    "make_step",
    "max_param_diff",
    "param_diffs",
    "measure",
    "speed_table",
    "format_speed_table",
    "profile_step",
    "format_profile",
]

CONFIGS = {
    "lecture": dict(V=20000, d=50, w=5, H=200, C=5),
    "large": dict(V=100000, d=300, w=5, H=512, C=9),
}

#: Implementation names, in the order tables list them.
IMPLEMENTATIONS = ("pure-numpy", "fastbp-numpy", "fastbp-cython")

PARAM_NAMES = ("E", "W", "b", "U", "c")
LR = 0.05
N_BATCHES = 8


def _config(config):
    if isinstance(config, dict):
        return dict(config)
    try:
        return dict(CONFIGS[config])
    except KeyError:
        raise ValueError(f"unknown config {config!r}; expected one of {', '.join(CONFIGS)}") from None


def init_params(config, dtype=np.float32, seed=0):
    """Initial weights ``{"E", "W", "b", "U", "c"}`` as C-contiguous arrays of ``dtype``.

    ``E`` ~ N(0, 1) / sqrt(d) and Glorot-uniform ``W``, ``U`` keep ``tanh`` out of
    saturation, so the step exercises real gradients."""
    cfg = _config(config)
    V, d, w, H, C = cfg["V"], cfg["d"], cfg["w"], cfg["H"], cfg["C"]
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((V, d), dtype=dtype)
    E *= dtype.type(1.0 / np.sqrt(d))
    lim_w = np.sqrt(6.0 / (w * d + H))
    lim_u = np.sqrt(6.0 / (H + C))
    W = rng.uniform(-lim_w, lim_w, (w * d, H)).astype(dtype)
    U = rng.uniform(-lim_u, lim_u, (H, C)).astype(dtype)
    b = np.zeros(H, dtype)
    c = np.zeros(C, dtype)
    return {"E": E, "W": W, "b": b, "U": U, "c": c}


def make_batches(config, B, n_batches=N_BATCHES, seed=0):
    """A pool of ``n_batches`` random batches ``(ids (B, w) intp, y (B,) intp)``."""
    cfg = _config(config)
    rng = np.random.default_rng(seed + 1)
    return [
        (
            rng.integers(0, cfg["V"], (B, cfg["w"])).astype(np.intp),
            rng.integers(0, cfg["C"], B).astype(np.intp),
        )
        for _ in range(n_batches)
    ]


class _StepBase:
    """Parameters, a batch pool cycled by :meth:`step`, and the bookkeeping of both."""

    name = "?"

    def __init__(self, lr=LR):
        self.lr = float(lr)
        self.B = None
        self.config = None
        self.batches = []
        self._i = 0

    def setup(self, config, B, dtype=np.float32, seed=0, n_batches=N_BATCHES, params=None,
              batches=None):
        """Create the parameters (copies of ``params`` if given, else :func:`init_params`)
        and the batch pool (``batches`` if given, else :func:`make_batches`)."""
        if B < 1:
            raise ValueError(f"batch size must be >= 1, got {B}")
        self.config = config if isinstance(config, str) else "custom"
        self.cfg = _config(config)
        self.B = int(B)
        self.dtype = np.dtype(dtype)
        if params is None:
            params = init_params(config, dtype, seed)
        else:
            params = {k: np.array(params[k], dtype=dtype, order="C", copy=True)
                      for k in PARAM_NAMES}
        self.batches = list(batches) if batches is not None else make_batches(
            config, B, n_batches, seed
        )
        self._i = 0
        self._build(params)
        return self

    def _next_batch(self):
        i = self._i
        self._i = (i + 1) % len(self.batches)
        return self.batches[i]

    def params(self):
        """The current parameter arrays (live, not copies)."""
        raise NotImplementedError

    def _build(self, params):
        raise NotImplementedError

    def step(self):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name}, config={self.config}, B={self.B})"


class NumpyStep(_StepBase):
    """The baseline of PERF.md: a careful, vectorised pure numpy training step.

    Fancy-index gather, ``@`` (numpy's BLAS), in-place elementwise ops where numpy allows
    them, a stable softmax cross-entropy, ``np.add.at`` for the embedding rows and the
    SGD update ``p -= lr * dp`` of all five parameters (only the used rows of ``E``)."""

    name = "pure-numpy"

    def _build(self, params):
        self.E, self.W, self.b, self.U, self.c = (params[k] for k in PARAM_NAMES)
        # Per-batch flat ids and the row index used by the loss, computed once.
        self._pool = [(ids.reshape(-1), y, np.arange(len(y))) for ids, y in self.batches]
        self.loss = None

    def params(self):
        return {"E": self.E, "W": self.W, "b": self.b, "U": self.U, "c": self.c}

    def step(self):
        i = self._i
        self._i = (i + 1) % len(self._pool)
        flat, y, ar = self._pool[i]
        E, W, b, U, c = self.E, self.W, self.b, self.U, self.c
        lr = self.dtype.type(self.lr)
        B = y.shape[0]
        d = E.shape[1]

        # forward
        X = E[flat].reshape(B, -1)                 # (B, w*d) window gather
        h = X @ W
        h += b
        np.tanh(h, out=h)                          # (B, H)
        S = h @ U
        S += c                                     # (B, C) logits
        S -= S.max(axis=1, keepdims=True)
        zy = S[ar, y]
        np.exp(S, out=S)
        sumexp = S.sum(axis=1)
        self.loss = float(np.log(sumexp).sum() - zy.sum()) / B
        S /= sumexp[:, None]                       # softmax P

        # backward
        S[ar, y] -= 1
        S *= self.dtype.type(1.0 / B)              # dS
        dU = h.T @ S
        dc = S.sum(axis=0)
        dh = S @ U.T
        h *= h
        np.subtract(1, h, out=h)
        dh *= h                                    # dZ = dh * (1 - h^2)
        dW = X.T @ dh
        db = dh.sum(axis=0)
        dX = dh @ W.T                              # (B, w*d)

        # SGD
        W -= lr * dW
        b -= lr * db
        U -= lr * dU
        c -= lr * dc
        dX *= -lr
        np.add.at(E, flat, dX.reshape(-1, d))


class FastbpStep(_StepBase):
    """The same step written with fastbp's public API (the issue's example)::

        x = fb.embedding(E, ids)
        h = fb.tanh(x @ W + b)
        loss = fb.cross_entropy(h @ U + c, y)
        loss.backward(); opt.step(); opt.zero_grad()

    ``backend`` is ``"cython"`` or ``"numpy"``; it is selected for the duration of each
    :meth:`step` only (the caller's backend is restored afterwards)."""

    def __init__(self, backend="cython", lr=LR):
        super().__init__(lr)
        import fastbp.backends as backends

        self.backend = backend
        self.name = f"fastbp-{backend}"
        self._ops = backends._resolve(backend)  # raises ImportError if not built
        self._state = backends
        self.loss = None

    def _build(self, params):
        import fastbp as fb

        self._fb = fb
        self.E, self.W, self.b, self.U, self.c = (fb.Parameter(params[k]) for k in PARAM_NAMES)
        self.opt = fb.optim.SGD([self.E, self.W, self.b, self.U, self.c], lr=self.lr)
        self.loss = None

    def params(self):
        return {"E": self.E.data, "W": self.W.data, "b": self.b.data, "U": self.U.data,
                "c": self.c.data}

    def step(self):
        fb = self._fb
        st = self._state._state
        previous = st.ops
        st.ops = self._ops
        try:
            ids, y = self._next_batch()
            E, W, b, U, c, opt = self.E, self.W, self.b, self.U, self.c, self.opt
            x = fb.embedding(E, ids)
            h = fb.tanh(x @ W + b)
            loss = fb.cross_entropy(h @ U + c, y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            self.loss = loss
        finally:
            st.ops = previous


def make_step(impl, config, B, dtype=np.float32, seed=0, **kw):
    """Build and set up an implementation by name (see :data:`IMPLEMENTATIONS`)."""
    if impl == "pure-numpy":
        step = NumpyStep()
    elif impl in ("fastbp-cython", "fastbp-numpy"):
        step = FastbpStep(impl.split("-", 1)[1])
    else:
        raise ValueError(f"unknown implementation {impl!r}; expected one of "
                         f"{', '.join(IMPLEMENTATIONS)}")
    return step.setup(config, B, dtype, seed, **kw)


def cython_available():
    """Whether fastbp's compiled backend can be loaded."""
    import fastbp.backends as backends

    try:
        backends._resolve("cython")
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------- equivalence
def param_diffs(backend="cython", config="lecture", B=32, steps=3, dtype=np.float32, seed=0):
    """Run ``steps`` steps of :class:`NumpyStep` and :class:`FastbpStep` from identical
    weights and batches; return ``{name: (max abs difference, max abs value)}`` per
    parameter, plus ``"loss"``: the two last losses' absolute difference."""
    params = init_params(config, dtype, seed)
    batches = make_batches(config, B, max(steps, 1), seed)
    ref = NumpyStep().setup(config, B, dtype, params=params, batches=batches)
    fbs = FastbpStep(backend).setup(config, B, dtype, params=params, batches=batches)
    for _ in range(steps):
        ref.step()
        fbs.step()
    out = {}
    pf = fbs.params()
    for k, a in ref.params().items():
        out[k] = (float(np.max(np.abs(a - pf[k]))), float(np.max(np.abs(a))))
    out["loss"] = (abs(ref.loss - float(fbs.loss.item())), abs(ref.loss))
    return out


def max_param_diff(backend="cython", config="lecture", B=32, steps=3, dtype=np.float32, seed=0):
    """Largest absolute difference, over all five parameters, between ``steps`` steps of
    fastbp (``backend``) and of the pure numpy baseline from identical initial weights and
    batches. Parameters are O(0.1-1), so float32 agreement is ~1e-6 and float64 ~1e-14."""
    diffs = param_diffs(backend, config, B, steps, dtype, seed)
    return max(v[0] for k, v in diffs.items() if k != "loss")


# ---------------------------------------------------------------------- timing
def _time_steps(impl, steps):
    step = impl.step
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


def measure(impl, steps=20, repeats=5, warmup=1):
    """Throughput of ``impl`` (set up) in windows per second: the median over ``repeats``
    timings (``time.perf_counter``) of ``steps`` consecutive steps, after ``warmup``
    untimed steps (the first step allocates the gradient buffers)."""
    for _ in range(warmup):
        impl.step()
    rates = [impl.B * steps / _time_steps(impl, steps) for _ in range(repeats)]
    return statistics.median(rates)


def _calibrate(impls, seconds):
    """Steps per timing so that one timing of the slowest impl lasts about ``seconds``."""
    worst = 0.0
    for impl in impls:
        impl.step()  # warm up: allocates gradient buffers, faults pages in
        t = _time_steps(impl, 1)
        if t < 1e-3:  # short steps: a more stable estimate
            t = _time_steps(impl, 10) / 10
        worst = max(worst, t)
    return max(1, int(seconds / max(worst, 1e-9)))


def compare(impls, seconds=1.0, repeats=5, pause=0.0):
    """Time several set-up implementations alternately (ABC, CBA, ABC, ... so that none
    always runs first) in the same run. Returns ``{name: median windows/s}``.

    ``pause`` seconds are slept before each timing: long enough (~0.1 s) for the idle
    BLAS / OpenMP threads of the implementation that just ran to stop spinning, which
    otherwise slows down the next one (numpy and fastbp's kernels use two different
    OpenBLAS libraries)."""
    steps = _calibrate(impls, seconds / (repeats * len(impls)))
    rates = {impl.name: [] for impl in impls}
    order = list(impls)
    for r in range(repeats):
        for impl in order:
            if pause:
                time.sleep(pause)
            rates[impl.name].append(impl.B * steps / _time_steps(impl, steps))
        order.reverse()
    return {name: statistics.median(v) for name, v in rates.items()}


def speed_table(configs=("lecture", "large"), batch_sizes=(1, 32, 256, 2048), dtype=np.float32,
                budget_seconds=None, quick=False, impls=None, repeats=None, threads=None,
                seed=0, progress=None, pause=0.1):
    """Measure windows/s of each implementation for every (config, batch size), the
    implementations alternating in the same run, and the speed-up of fastbp-cython over
    the pure numpy baseline.

    Parameters
    ----------
    configs, batch_sizes : sequences
        Names in :data:`CONFIGS` and batch sizes.
    dtype : numpy dtype
    budget_seconds : float, optional
        Approximate total time spent timing (default 30 s, or 8 s with ``quick``). Setup
        (the large config's 100k x 300 table) comes on top: the defaults finish in under a
        minute on 2 cores.
    quick : bool
        Fewer repeats and a smaller budget (a smoke run, ~15 s).
    impls : sequence of str, optional
        Default: ``pure-numpy`` and ``fastbp-cython`` (``fastbp-numpy`` is not timed by
        default; add it explicitly). Unavailable ``fastbp-cython`` is dropped.
    repeats : int, optional
        Timings per implementation per cell (median reported; default 5, 3 with quick).
    threads : int, optional
        Limit BLAS and fastbp's kernels to this many threads for the run.
    progress : callable, optional
        Called with each finished row (e.g. to print as the table fills).
    pause : float
        Seconds slept before each timing so the previous implementation's idle thread
        pools stop spinning (see :func:`compare`); counted in the budget.

    Returns
    -------
    list of dict
        One row per cell: ``config``, ``B``, ``dtype``, ``steps``, ``windows_per_s`` (a
        dict implementation -> windows/s) and ``ratio`` (fastbp-cython / pure-numpy, or
        None when either is missing).
    """
    import fastbp as fb

    if budget_seconds is None:
        budget_seconds = 8.0 if quick else 30.0
    if repeats is None:
        repeats = 3 if quick else 5
    if impls is None:
        impls = ("pure-numpy", "fastbp-cython")
    impls = [i for i in impls if i != "fastbp-cython" or cython_available()]
    cells = [(cfg, B) for cfg in configs for B in batch_sizes]
    pauses = len(cells) * repeats * len(impls) * pause
    per_cell = max(budget_seconds - pauses, budget_seconds / 2) / max(len(cells), 1)
    if pauses > budget_seconds / 2:
        pause = 0.0

    previous_threads = None
    if threads is not None:
        previous_threads = fb.get_num_threads()
        fb.set_num_threads(int(threads))
    rows = []
    try:
        for cfg in configs:
            base = init_params(cfg, dtype, seed)
            for B in batch_sizes:
                batches = make_batches(cfg, B, N_BATCHES, seed)
                steps = [make_step(name, cfg, B, dtype, params=base, batches=batches)
                         for name in impls]
                rates = compare(steps, per_cell, repeats, pause)
                cy, ref = rates.get("fastbp-cython"), rates.get("pure-numpy")
                row = {
                    "config": cfg,
                    "B": B,
                    "dtype": np.dtype(dtype).name,
                    "windows_per_s": rates,
                    "ratio": (cy / ref) if cy and ref else None,
                }
                rows.append(row)
                if progress is not None:
                    progress(row)
                del steps
            del base
    finally:
        if previous_threads is not None:
            fb.set_num_threads(previous_threads)
    return rows


def _fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def format_speed_table(rows):
    """Render :func:`speed_table` rows as a Markdown table (windows per second)."""
    names = []
    for row in rows:
        for n in row["windows_per_s"]:
            if n not in names:
                names.append(n)
    names.sort(key=lambda n: IMPLEMENTATIONS.index(n) if n in IMPLEMENTATIONS else 99)
    head = ["config", "B"] + names + ["cython / numpy"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---------", "-----:"] + ["-----:"] * (len(head) - 2)) + "|",
    ]
    for row in rows:
        cells = [row["config"], str(row["B"])]
        cells += [_fmt_rate(row["windows_per_s"].get(n)) for n in names]
        cells.append("-" if row["ratio"] is None else f"{row['ratio']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    dtype = rows[0]["dtype"] if rows else "float32"
    lines.append("")
    lines.append(f"windows per second ({dtype}; one step = forward + backward + SGD update; "
                 "median of alternating timings in the same run)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- profile
class _RecordingOps:
    """Wraps a backend's ops object and records every method call (name, arguments)."""

    def __init__(self, ops):
        self._ops = ops
        self.name = ops.name
        self.calls = []

    def __getattr__(self, attr):
        fn = getattr(self._ops, attr)
        if not callable(fn):
            return fn
        calls = self.calls

        def record(*args, **kwargs):
            calls.append((attr, fn, args, kwargs))
            return fn(*args, **kwargs)

        return record


def _median_call_us(fn, args, kwargs, target=0.02):
    fn(*args, **kwargs)
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    once = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(target / once))
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(*args, **kwargs)
        runs.append((time.perf_counter() - t0) / n)
    return statistics.median(runs) * 1e6


def profile_step(backend="cython", config="lecture", B=1, steps=2000, dtype=np.float32,
                 seed=0, threads=None):
    """Where the time of one fastbp training step goes: backend op calls vs the graph
    layer.

    1. Times ``steps`` plain steps of :class:`FastbpStep` (``step_us``, median of 5
       timings) and of :class:`NumpyStep` on the same batches (``numpy_step_us``).
    2. Records every backend op call of one step (name and arguments), then replays each
       call alone, many times, with the same arguments: its time is the whole
       ``ops.<name>(...)`` call (argument checks, allocation, the loop / BLAS call), warm
       in cache. Their sum is ``kernel_us``.
    3. ``graph_us = step_us - kernel_us``: the graph layer (tensor wrapping, closures,
       topological sort, gradient plumbing, the optimiser loop, Python glue).

    Returns a dict with those numbers and ``kernels``: ``[(name, shapes, us per call)]``
    in call order.
    """
    import fastbp as fb

    prev_threads = None
    if threads is not None:
        prev_threads = fb.get_num_threads()
        fb.set_num_threads(int(threads))
    try:
        params = init_params(config, dtype, seed)
        batches = make_batches(config, B, N_BATCHES, seed)
        step = FastbpStep(backend).setup(config, B, dtype, params=params, batches=batches)
        ref = NumpyStep().setup(config, B, dtype, params=params, batches=batches)

        def med_us(impl, n):
            impl.step()
            return statistics.median(_time_steps(impl, n) / n for _ in range(5)) * 1e6

        n = max(1, steps // 5)
        step_us = med_us(step, n)
        numpy_us = med_us(ref, n)
        plain = step._ops
        rec = _RecordingOps(plain)
        step._ops = rec
        step.step()
        step._ops = plain
        kernels = []
        for name, fn, args, kwargs in rec.calls:
            shapes = "x".join(
                str(a.shape).replace(" ", "") for a in args if isinstance(a, np.ndarray)
            )
            kernels.append((name, shapes, _median_call_us(fn, args, kwargs)))
        kernel_us = sum(k[2] for k in kernels)
        return {
            "backend": backend, "config": config, "B": B, "step_us": step_us,
            "numpy_step_us": numpy_us, "kernels": kernels, "kernel_us": kernel_us,
            "graph_us": step_us - kernel_us,
        }
    finally:
        if prev_threads is not None:
            fb.set_num_threads(prev_threads)


def format_profile(prof):
    """Text rendering of :func:`profile_step`."""
    lines = [
        f"fastbp-{prof['backend']} {prof['config']} B={prof['B']}: step {prof['step_us']:.1f} us "
        f"(pure numpy {prof['numpy_step_us']:.1f} us); backend ops {prof['kernel_us']:.1f} us, "
        f"graph layer / Python {prof['graph_us']:.1f} us",
    ]
    for name, shapes, us in prof["kernels"]:
        lines.append(f"  {name:32s} {shapes:38s} {us:9.2f} us")
    return "\n".join(lines)
