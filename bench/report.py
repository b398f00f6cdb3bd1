"""Measure the training-step throughput of every implementation and print a Markdown table.

    python bench/report.py                       # full grid, ~3-4 minutes on 2 cores
    python bench/report.py --quick               # lecture config only, fewer repeats
    python bench/report.py --configs lecture --batch-sizes 1 256 --repeats 9
    python bench/report.py --workload mlp        # issue 7's generic-ops MLP, B=16 and 256

Columns: pure numpy, fastbp (numpy backend), fastbp (cython backend), the ratio
cython / pure numpy; when ``fb.compile`` exists, fastbp compiled (``bench/compiled_step.py``)
and compiled / pure numpy; when torch is importable, torch eager and cython / torch; when
jax is importable, jax.jit (``bench/jax_step.py``: the whole step as one jitted function
with donated parameters) and cython / jax (and compiled / jax). A column whose
implementation cannot run here is left out, and a note under the table says why.

The sgemm ceiling: a 2048x2048x2048 float32 matmul through numpy's BLAS (``np.matmul``
with ``out``) and through the BLAS fastbp's kernels use (scipy's OpenBLAS, called by
fastbp's ``gemm`` kernel), each in its own worker, before and after the grid (the best
of the two is kept). The second table gives each cell's FLOP rate, ``6 * (w*d*H + H*C)``
FLOPs per window (PERF.md), as a percentage of the ceiling of the BLAS the
implementation uses (numpy's for pure numpy, fastbp numpy, torch and jax; scipy's for
fastbp cython and compiled). ``--no-ceiling`` skips it.

Workloads: ``window`` (default) is the PERF.md window-classifier step (configs lecture
and large, windows/s); ``mlp`` is the two-layer MLP step of issue 7 written only with
the generic ops (``bench/mlp_step.py``: D=300, H=512, C=256, examples/s; no torch
column).

How (PERF.md "How to measure"):

* Each implementation runs in its own worker process (``--same-process`` to compare),
  set up once per (config, B). Worker processes take turns: the parent asks one worker
  at a time to time ``n`` steps (``n`` calibrated so that a timing lasts ``--seconds``),
  in the order A B C, C B A, A B C ... for ``--repeats`` rounds; the table shows medians.
  Only one worker computes at any moment.
* BLAS (numpy's and scipy's OpenBLAS), fastbp's OpenMP kernels and torch are limited to
  ``--threads`` threads (default 2).
* Before each timing the parent waits ``--pause`` seconds (default 0.15 s), long enough
  for the idle OpenBLAS threads of the worker that just ran to stop spinning (OpenBLAS
  busy-waits ~2**28 cycles, ~0.1 s, after each call before it sleeps). Without it the
  spinning threads of one worker steal a core from the next. See README.md for the
  measurements behind this; ``--openblas-timeout N`` sets ``OPENBLAS_THREAD_TIMEOUT`` in
  the workers instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def _import_fastbp():
    """Import fastbp from an install or from this checkout; fall back to the numpy backend
    when the compiled kernels are not built (fastbp-cython is then reported missing)."""
    try:
        import fastbp  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "fastbp" or str(ROOT) in sys.path:
            raise
        sys.path.insert(0, str(ROOT))
        return _import_fastbp()
    except ImportError as exc:
        if "compiled kernels" not in str(exc) or os.environ.get("FASTBP_BACKEND") == "numpy":
            raise
        for name in [m for m in sys.modules if m == "fastbp" or m.startswith("fastbp.")]:
            del sys.modules[name]
        os.environ["FASTBP_BACKEND"] = "numpy"
        import fastbp  # noqa: F401


IMPLS = ("pure-numpy", "fastbp-numpy", "fastbp-cython", "fastbp-compiled", "torch", "jax")
CEILINGS = ("sgemm-numpy", "sgemm-scipy")  # pseudo-implementations: one sgemm per step
SGEMM_N = 2048


def torch_available():
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def jax_available():
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def unavailable(impl):
    """Why ``impl`` cannot run here (None when it can)."""
    if impl == "torch" and not torch_available():
        return "torch is not installed (pip install torch==2.13.0)"
    if impl == "jax" and not jax_available():
        return 'jax is not installed (pip install "jax[cpu]")'
    if impl == "fastbp-compiled":
        import fastbp as fb

        if not hasattr(fb, "compile"):
            return ("this fastbp has no fb.compile (compiled step plans, issue 9, not "
                    "merged yet)")
    if impl in ("fastbp-cython", "fastbp-compiled"):
        from fastbp import benchmark as bm

        if not bm.cython_available():
            return "fastbp's compiled kernels are not built"
    return None


def flops_per_window(config):
    """PERF.md: ~6 * (w*d*H + H*C) FLOPs per window for a step."""
    from fastbp import benchmark as bm

    c = bm.CONFIGS[config]
    return 6 * (c["w"] * c["d"] * c["H"] + c["H"] * c["C"])


class SgemmStep:
    """One ``SGEMM_N``^3 float32 matmul per :meth:`step`: numpy's BLAS (``np.matmul``
    into a preallocated ``out``) or scipy's, the one fastbp's kernels call (through
    fastbp's ``gemm`` kernel with ``out`` and ``beta = 0``; through
    ``scipy.linalg.blas.sgemm`` when the kernels are not built)."""

    def __init__(self, which, n=SGEMM_N):
        import numpy as np

        rng = np.random.default_rng(0)
        self.A = rng.standard_normal((n, n), dtype=np.float32)
        self.B = rng.standard_normal((n, n), dtype=np.float32)
        self.C = np.empty((n, n), np.float32)
        self.loss = 0.0
        if which == "sgemm-numpy":
            A, B, C = self.A, self.B, self.C
            self._fn = lambda: np.matmul(A, B, out=C)
            return
        from fastbp import benchmark as bm

        if bm.cython_available():
            from fastbp_ext import _kernels as K

            A, B, C = self.A, self.B, self.C
            self._fn = lambda: K.gemm(A, B, C, False, False, 0.0)
        else:
            from scipy.linalg.blas import sgemm

            A, B = np.asfortranarray(self.A), np.asfortranarray(self.B)
            C = self.C = np.asfortranarray(self.C)
            self._fn = lambda: sgemm(1.0, A, B, beta=0.0, c=C, overwrite_c=1)

    def step(self):
        self._fn()


# ---------------------------------------------------------------------- machine noise
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy():
    """Jiffies all CPUs spent busy (including steal: time the hypervisor gave to other
    machines), or None where /proc/stat does not exist."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return None
    return sum(v) - v[3] - v[4]  # minus idle and iowait


def _proc_cpu(pid):
    """Jiffies (user + system, all threads) used by process ``pid``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


class ForeignLoad:
    """CPU time used on the machine by anything but the given processes, in cores, over
    the span between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids):
        self.pids = sorted(set(pids))

    def start(self):
        self.t0 = time.perf_counter()
        self.busy0 = _machine_busy()
        self.own0 = sum(_proc_cpu(p) for p in self.pids)

    def stop(self):
        if self.busy0 is None:
            return 0.0
        busy = _machine_busy() - self.busy0
        own = sum(_proc_cpu(p) for p in self.pids) - self.own0
        return max(busy - own, 0) / _HZ / max(time.perf_counter() - self.t0, 1e-9)


def wait_quiet(max_foreign, timeout, probe=0.5):
    """Wait (up to ``timeout`` s) until other processes use < ``max_foreign`` cores."""
    fl = ForeignLoad([os.getpid()])
    deadline = time.perf_counter() + timeout
    while True:
        fl.start()
        time.sleep(probe)
        load = fl.stop()
        if load < max_foreign or time.perf_counter() > deadline:
            return load


# ---------------------------------------------------------------------- the worker side
def _make(impl, config, B, dtype, threads, seed=0):
    import numpy as np
    from threadpoolctl import threadpool_limits

    import fastbp as fb
    from fastbp import benchmark as bm

    fb.set_num_threads(threads)
    threadpool_limits(limits=threads, user_api="blas")
    dtype = np.dtype(dtype)
    if impl in CEILINGS:
        return SgemmStep(impl)
    if config == "mlp":
        sys.path.insert(0, str(HERE))
        from mlp_step import make_mlp_step

        return make_mlp_step(impl, B, dtype, seed)
    if impl == "torch":
        sys.path.insert(0, str(HERE))
        from torch_step import TorchStep

        return TorchStep(threads=threads).setup(config, B, dtype, seed)
    if impl == "jax":
        sys.path.insert(0, str(HERE))
        from jax_step import JaxStep

        return JaxStep(threads=threads).setup(config, B, dtype, seed)
    if impl == "fastbp-compiled":
        sys.path.insert(0, str(HERE))
        from compiled_step import CompiledStep

        return CompiledStep().setup(config, B, dtype, seed)
    return bm.make_step(impl, config, B, dtype, seed)


def _calibrate(step, min_seconds=0.05):
    """Warm up, then seconds per step (averaged over >= min_seconds)."""
    step.step()
    step.step()
    n, total = 0, 0.0
    while total < min_seconds:
        t0 = time.perf_counter()
        step.step()
        total += time.perf_counter() - t0
        n += 1
    return total / n


def _time(step, n):
    fn = step.step
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def worker_main(impl, config, B, dtype, threads):
    """Line protocol on stdin/stdout: ``calib`` -> seconds per step; ``time N`` ->
    seconds for N steps; ``quit``."""
    _import_fastbp()
    step = _make(impl, config, B, dtype, threads)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "calib":
            out.write(f"{_calibrate(step)!r}\n")
        elif cmd[0] == "time":
            out.write(f"{_time(step, int(cmd[1]))!r}\n")
        out.flush()


class ProcRunner:
    """An implementation set up in its own process."""

    def __init__(self, impl, config, B, dtype, threads, env):
        self.impl = impl
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", impl, config, str(B),
             dtype, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1,
        )
        self.pid = self.proc.pid

    def wait_ready(self):
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"worker {self.impl} failed to start (see its stderr above)")

    def _ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def calibrate(self):
        return self._ask("calib")

    def time(self, n):
        return self._ask(f"time {n}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LocalRunner:
    """An implementation set up in this process (``--same-process``)."""

    def __init__(self, impl, config, B, dtype, threads, env=None):
        self.impl = impl
        self.pid = os.getpid()
        self.step = _make(impl, config, B, dtype, threads)

    def wait_ready(self):
        pass

    def calibrate(self):
        return _calibrate(self.step)

    def time(self, n):
        return _time(self.step, n)

    def close(self):
        self.step = None


# ---------------------------------------------------------------------- the parent side
def measure_cell(impls, config, B, args, env):
    Runner = LocalRunner if args.same_process else ProcRunner
    runners = []
    try:
        for impl in impls:
            runners.append(Runner(impl, config, B, args.dtype, args.threads, env))
        for r in runners:  # processes set up concurrently; timing starts when all are ready
            r.wait_ready()
        steps = {}
        for r in runners:
            time.sleep(args.pause)
            steps[r.impl] = max(1, round(args.seconds / r.calibrate()))
        rates = {r.impl: [] for r in runners}
        fl = ForeignLoad([os.getpid()] + [r.pid for r in runners])
        noise = {"discarded": 0, "accepted_noisy": 0, "foreign": []}
        order = list(runners)
        for _ in range(args.repeats):
            for r in order:
                n = steps[r.impl]
                for attempt in range(args.max_retries + 1):
                    time.sleep(args.pause if attempt == 0 else args.retry_pause)
                    fl.start()
                    t = r.time(n)
                    load = fl.stop()
                    if load <= args.max_foreign:
                        break
                    if attempt == args.max_retries:
                        noise["accepted_noisy"] += 1
                    else:
                        noise["discarded"] += 1
                noise["foreign"].append(round(load, 3))
                rates[r.impl].append(B * n / t)
            order.reverse()
        return rates, steps, noise
    finally:
        for r in runners:
            r.close()


def _fmt(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


_LABELS = {"pure-numpy": "pure numpy", "fastbp-numpy": "fastbp numpy",
           "fastbp-cython": "fastbp cython", "fastbp-compiled": "fastbp compiled",
           "torch": "torch eager", "jax": "jax.jit"}
# ratio columns: (label, numerator, denominator), shown when both are measured
_RATIOS = {"fastbp-cython": [("cython / numpy", "fastbp-cython", "pure-numpy")],
           "fastbp-compiled": [("compiled / numpy", "fastbp-compiled", "pure-numpy")],
           "torch": [("cython / torch", "fastbp-cython", "torch")],
           "jax": [("cython / jax", "fastbp-cython", "jax"),
                   ("compiled / jax", "fastbp-compiled", "jax")]}
# which sgemm ceiling an implementation is measured against (the BLAS it calls)
_CEILING_OF = {"fastbp-cython": "sgemm-scipy", "fastbp-compiled": "sgemm-scipy"}


def _columns(impls):
    cols = []
    for impl in IMPLS:
        if impl not in impls:
            continue
        cols.append((_LABELS[impl], ("rate", impl)))
        for label, a, b in _RATIOS.get(impl, []):
            if a in impls and b in impls:
                cols.append((label, ("ratio", a, b)))
    return cols


def markdown(results, impls):
    cols = _columns(impls)
    head = ["config", "B"] + [label for label, _ in cols]
    lines = ["| " + " | ".join(head) + " |",
             "|---|---:|" + "---:|" * (len(head) - 2)]

    def ratio(a, b):
        return "-" if a is None or b is None else f"{a / b:.2f}x"

    for res in results:
        med = {k: statistics.median(v) for k, v in res["rates"].items()}
        noisy = res.get("noise", {}).get("accepted_noisy", 0)
        row = [res["config"], str(res["B"]) + (" (noisy)" if noisy else "")]
        for _, what in cols:
            if what[0] == "rate":
                row.append(_fmt(med.get(what[1])))
            else:
                row.append(ratio(med.get(what[1]), med.get(what[2])))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ceiling_markdown(results, impls, ceiling):
    """Each cell's FLOP rate as a percentage of the sgemm ceiling of its BLAS."""
    shown = [i for i in IMPLS if i in impls]
    head = ["config", "B"] + [_LABELS[i] for i in shown]
    lines = ["| " + " | ".join(head) + " |",
             "|---|---:|" + "---:|" * (len(head) - 2)]
    for res in results:
        fpw = flops_per_window(res["config"])
        row = [res["config"], str(res["B"])]
        for impl in shown:
            v = res["rates"].get(impl)
            c = ceiling.get(_CEILING_OF.get(impl, "sgemm-numpy"))
            row.append("-" if not v or not c else
                       f"{100 * statistics.median(v) * fpw / c:.0f}%")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def blas_line(env):
    """Which kernels the workers' BLAS libraries run: a DYNAMIC_ARCH OpenBLAS picks them
    from the CPU when it loads unless ``OPENBLAS_CORETYPE`` names them (on an AVX-512
    machine, ``Haswell`` means AVX2 kernels at about half the sgemm rate)."""
    code = ("import json, numpy, fastbp, scipy.linalg.cython_blas; "
            "from threadpoolctl import threadpool_info; "
            "print(json.dumps([(i['filepath'], i.get('version'), i.get('architecture')) "
            "for i in threadpool_info() if i.get('user_api') == 'blas']))")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        libs = json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        return f"BLAS kernels: unknown ({exc})"
    return (f"BLAS kernels (OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', 'unset')}): "
            + "; ".join(f"{Path(f).parent.name}/{Path(f).name} {v}: {a}" for f, v, a in libs))


def measure_ceiling(args, env):
    """FLOP/s of a SGEMM_N^3 sgemm through numpy's and scipy's BLAS (median of the
    alternating timings), ``{name: flop/s}``."""
    rates, _, noise = measure_cell(list(CEILINGS), "sgemm", 1, args, env)
    flop = 2.0 * SGEMM_N ** 3
    return {k: statistics.median(v) * flop for k, v in rates.items()}, noise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=("window", "mlp"), default="window",
                   help="window: the PERF.md window classifier (configs lecture, large); "
                   "mlp: issue 7's generic-ops MLP step (default batch sizes 16 256)")
    p.add_argument("--configs", nargs="+", default=None,
                   help="window configs (default: lecture large)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None,
                   help="default: 1 32 256 2048 (window), 16 256 (mlp)")
    p.add_argument("--impls", nargs="+", default=None, choices=IMPLS,
                   help="default: all that are available")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seconds", type=float, default=0.25, help="duration of one timing")
    p.add_argument("--pause", type=float, default=0.15,
                   help="seconds between timings (idle BLAS threads spin down)")
    p.add_argument("--max-foreign", type=float, default=0.2,
                   help="redo a timing when other processes used more than this many cores "
                   "during it (read from /proc; 2 or more disables the check)")
    p.add_argument("--max-retries", type=int, default=8)
    p.add_argument("--retry-pause", type=float, default=1.0)
    p.add_argument("--wait-quiet", type=float, default=120.0,
                   help="before each cell, wait up to this many seconds for a quiet machine")
    p.add_argument("--openblas-timeout", default=None,
                   help="OPENBLAS_THREAD_TIMEOUT for the workers (4..30; default: unset)")
    p.add_argument("--env", nargs="+", default=[], metavar="KEY=VALUE",
                   help="extra environment for the workers, e.g. OMP_WAIT_POLICY=PASSIVE "
                   "MALLOC_TRIM_THRESHOLD_=1000000000; KEY= removes KEY (OPENBLAS_CORETYPE= "
                   "lets OpenBLAS choose its kernels for the CPU)")
    p.add_argument("--same-process", action="store_true",
                   help="run all implementations in this process (for comparison)")
    p.add_argument("--quick", action="store_true", help="lecture only, 3 repeats")
    p.add_argument("--no-ceiling", action="store_true",
                   help="skip the sgemm ceiling measurement and the %% of ceiling table")
    p.add_argument("--json", help="also write the raw timings here")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        impl, config, B, dtype, threads = args.worker
        worker_main(impl, config, int(B), dtype, int(threads))
        return 0

    env = dict(os.environ)
    for kv in args.env:
        key, _, value = kv.partition("=")
        if value:
            env[key] = value
            if args.same_process:
                os.environ[key] = value
        else:  # KEY= removes KEY (e.g. OPENBLAS_CORETYPE= lets OpenBLAS pick its kernels)
            env.pop(key, None)
            if args.same_process:
                os.environ.pop(key, None)
    if args.openblas_timeout:
        env["OPENBLAS_THREAD_TIMEOUT"] = str(args.openblas_timeout)
        if args.same_process:
            os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(args.openblas_timeout)
    _import_fastbp()
    from fastbp import benchmark as bm

    if args.workload == "mlp":
        if args.configs:
            p.error("--configs applies to the window workload only")
        args.configs = ["mlp"]
        args.batch_sizes = args.batch_sizes or [16, 256]
        if args.quick:
            args.repeats = 3
        unit = "examples/s"
        available = ["pure-numpy", "fastbp-numpy", "fastbp-cython", "fastbp-compiled"]
        if args.impls and set(args.impls) - set(available):
            p.error(f"the mlp workload has only the implementations {', '.join(available)}")
        args.no_ceiling = True
    else:
        args.configs = args.configs or ["lecture", "large"]
        args.batch_sizes = args.batch_sizes or [1, 32, 256, 2048]
        if args.quick:
            args.configs, args.repeats = ["lecture"], 3
        unit = "windows/s"
        available = list(IMPLS)
    skipped = {}
    impls = []
    for impl in args.impls or available:
        why = unavailable(impl)
        if why is None:
            impls.append(impl)
        else:
            skipped[impl] = why
            print(f"note: {_LABELS[impl]} skipped: {why}", file=sys.stderr)

    ceiling, ceiling_runs = {}, []

    def ceiling_run():
        if args.max_foreign < 2:
            wait_quiet(args.max_foreign, args.wait_quiet)
        c, noise = measure_ceiling(args, env)
        ceiling_runs.append({"flops": c, "noise": noise})
        for k, v in c.items():
            ceiling[k] = max(ceiling.get(k, 0.0), v)
        print("  sgemm ceiling: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in c.items()),
              file=sys.stderr, flush=True)

    results = []
    t_start = time.perf_counter()
    if not args.no_ceiling:
        ceiling_run()
    for config in args.configs:
        for B in args.batch_sizes:
            if args.max_foreign < 2:
                wait_quiet(args.max_foreign, args.wait_quiet)
            rates, steps, noise = measure_cell(impls, config, B, args, env)
            results.append({"config": config, "B": B, "rates": rates, "steps": steps,
                            "noise": noise})
            med = ", ".join(f"{k} {_fmt(statistics.median(v))}" for k, v in rates.items())
            print(f"  {config} B={B}: {med} (timings discarded for foreign load: "
                  f"{noise['discarded']}, kept although noisy: {noise['accepted_noisy']})",
                  file=sys.stderr, flush=True)
    if not args.no_ceiling:
        ceiling_run()
    mode = "same process" if args.same_process else "one process per implementation"
    print(markdown(results, impls))
    for impl, why in skipped.items():
        print(f"\n{_LABELS[impl]}: not measured: {why}.")
    if ceiling:
        print()
        print(f"% of the sgemm ceiling ({SGEMM_N}^3 float32, best of before / after the grid: "
              f"numpy's BLAS {ceiling['sgemm-numpy'] / 1e9:.0f} GFLOP/s, scipy's BLAS "
              f"(fastbp's gemm) {ceiling['sgemm-scipy'] / 1e9:.0f} GFLOP/s; "
              "6*(w*d*H + H*C) FLOPs per window; fastbp cython / compiled against scipy's, "
              "the others against numpy's):")
        print()
        print(ceiling_markdown(results, impls, ceiling))
    print()
    print(f"{unit}, {args.dtype}, {args.threads} threads, median of {args.repeats} "
          f"alternating timings of ~{args.seconds}s ({mode}; "
          f"OPENBLAS_THREAD_TIMEOUT={env.get('OPENBLAS_THREAD_TIMEOUT', 'unset')}"
          + "".join(f", {kv}" for kv in args.env) + "); "
          f"{time.perf_counter() - t_start:.0f} s")
    print(blas_line(env))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": vars(args), "results": results, "ceiling": ceiling,
             "ceiling_runs": ceiling_runs, "skipped": skipped}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
