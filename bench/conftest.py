"""Fixtures of the benchmark suite (``pytest bench``); see bench/README.md.

* The folder has no ``__init__``: pytest imports these modules with
  ``--import-mode=importlib`` (set in pyproject.toml), and this file puts the folder on
  ``sys.path`` so that ``import torch_step`` / ``import report`` work from the tests.
* Threads: every benchmark runs with BLAS (numpy's *and* scipy's OpenBLAS, which are two
  separate libraries with separate thread pools) and fastbp's kernels limited to
  ``--threads`` threads (default 2, the size of the reference machine), via threadpoolctl
  and :func:`fastbp.set_num_threads`.
* Idle OpenBLAS worker threads busy-wait (``sched_yield`` loop) for ~2**28 cycles after
  each call before they sleep, and libgomp (fastbp's OpenMP loops, torch) spins too.
  One process here holds up to four pools: numpy's OpenBLAS, scipy's OpenBLAS (fastbp's
  kernels), libgomp, torch's. The pool that just ran spins on the core the next one
  needs; measured (README.md), a fastbp-cython step at 2 threads gets 10-100x slower.
  We therefore set ``OPENBLAS_THREAD_TIMEOUT=4`` (spin 2**4 cycles) and
  ``OMP_WAIT_POLICY=PASSIVE`` unless already set. Both are read when the libraries
  load, so they take effect because this file runs before numpy/fastbp are imported.
  The suite thus measures fastbp *with* this mitigation; ``bench/report.py`` (one
  process per implementation) measures the library defaults unless told otherwise.
  To run the suite with the defaults: ``OPENBLAS_THREAD_TIMEOUT=28 OMP_WAIT_POLICY=
  pytest bench`` (28 is OpenBLAS's default).
* If fastbp's compiled kernels are not built, the suite falls back to
  ``FASTBP_BACKEND=numpy`` and skips the ``fastbp-cython`` cases (instead of failing to
  import fastbp).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Read by OpenBLAS and libgomp when they load, i.e. before numpy / fastbp are imported.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _import_fastbp():
    try:
        import fastbp  # noqa: F401
    except ImportError as exc:
        if "compiled kernels" not in str(exc) or os.environ.get("FASTBP_BACKEND") == "numpy":
            raise
        for name in [m for m in sys.modules if m == "fastbp" or m.startswith("fastbp.")]:
            del sys.modules[name]
        os.environ["FASTBP_BACKEND"] = "numpy"
        import fastbp  # noqa: F401


_import_fastbp()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import fastbp as fb  # noqa: E402
from fastbp import benchmark as bm  # noqa: E402

CYTHON = bm.cython_available()


def pytest_addoption(parser):
    group = parser.getgroup("fastbp bench")
    group.addoption(
        "--threads",
        type=int,
        default=int(os.environ.get("FASTBP_BENCH_THREADS", "2")),
        help="threads for BLAS (numpy's and scipy's) and fastbp's kernels (default 2, "
        "or $FASTBP_BENCH_THREADS)",
    )


def pytest_report_header(config):
    from threadpoolctl import threadpool_info

    libs = ", ".join(
        f"{i['prefix']} {i['version']} ({Path(i['filepath']).parent.name})"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )
    return [
        f"fastbp bench: threads={config.getoption('threads')}, cython backend "
        f"{'available' if CYTHON else 'NOT BUILT (fastbp-cython cases skipped)'}, "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}",
        f"BLAS libraries: {libs}",
    ]


@pytest.fixture(scope="session", autouse=True)
def threads(pytestconfig):
    """Pin BLAS and fastbp's kernels to ``--threads`` threads for the whole session."""
    n = pytestconfig.getoption("threads")
    previous = fb.get_num_threads()
    fb.set_num_threads(n)
    with threadpool_limits(limits=n, user_api="blas"):
        yield n
    fb.set_num_threads(previous)


def require_impl(impl):
    """Skip the calling test when ``impl`` cannot run here."""
    if impl in ("fastbp-cython", "fastbp-compiled") and not CYTHON:
        pytest.skip("fastbp's compiled kernels are not built")
    if impl == "fastbp-compiled" and not hasattr(fb, "compile"):
        from compiled_step import COMPILED_MISSING

        pytest.skip(COMPILED_MISSING)
    if impl == "torch":
        pytest.importorskip("torch")
    if impl == "jax":
        pytest.importorskip("jax", reason='jax is not installed (pip install "jax[cpu]")')


@pytest.fixture(scope="session")
def base_params():
    """Initial weights per (config, dtype), built once (the large table is 120 MB)."""
    cache = {}

    def get(config, dtype=np.float32):
        key = (config, np.dtype(dtype).name)
        if key not in cache:
            cache.clear()  # keep at most one large table alive
            cache[key] = bm.init_params(config, dtype, seed=0)
        return cache[key]

    return get


@pytest.fixture
def make_step(base_params, threads):
    """``make_step(impl, config, B, dtype=float32)``: a set-up implementation, skipping
    when it is unavailable. ``impl`` is one of fastbp.benchmark.IMPLEMENTATIONS,
    ``"fastbp-compiled"`` (``bench/compiled_step.py``), ``"torch"`` or ``"jax"``
    (``bench/jax_step.py``)."""

    def make(impl, config, B, dtype=np.float32):
        require_impl(impl)
        params = base_params(config, dtype)
        if impl == "torch":
            from torch_step import TorchStep

            return TorchStep(threads=threads).setup(config, B, dtype, params=params)
        if impl == "jax":
            from jax_step import JaxStep

            return JaxStep(threads=threads).setup(config, B, dtype, params=params)
        if impl == "fastbp-compiled":
            from compiled_step import CompiledStep

            return CompiledStep().setup(config, B, dtype, params=params)
        return bm.make_step(impl, config, B, dtype, params=params)

    return make
