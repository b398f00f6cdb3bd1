"""The generic-ops MLP step of issue 7 (``bench/mlp_step.py``): fastbp on both backends
against the same step hand-written in pure numpy, float32, D=300, H=512, C=256.

Groups ``mlp-B16`` and ``mlp-B256`` put the implementations side by side;
``extra_info["examples_per_s"]`` is ``B / median step time``. The acceptance targets
(fastbp-cython / pure-numpy >= 1.0x at B=16, >= 1.3x at B=256) are read from these
tables or from ``python bench/report.py --workload mlp`` (one process per
implementation) -- never asserted here. With ``--benchmark-disable`` every body runs one
step.
"""

import math

import numpy as np
import pytest
from mlp_step import IMPLS, init_mlp_params, make_mlp_step, mlp_param_diffs
from test_bench_step import _rounds

from fastbp import benchmark as bm

BATCH_SIZES = (16, 256)


def _require(impl):
    if impl in ("fastbp-cython", "fastbp-compiled") and not bm.cython_available():
        pytest.skip("fastbp's compiled kernels are not built")


@pytest.fixture(scope="module")
def mlp_params():
    return init_mlp_params(np.float32, seed=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("B", BATCH_SIZES)
def test_mlp_step(benchmark, mlp_params, threads, B, impl):
    _require(impl)
    step = make_mlp_step(impl, B, np.float32, params=mlp_params)
    benchmark.group = f"mlp-B{B}"
    benchmark.extra_info.update(workload="mlp", B=B, impl=impl, dtype="float32")
    if not benchmark.enabled:
        benchmark(step.step)
    else:
        rounds, iterations = _rounds(step)
        benchmark.pedantic(step.step, rounds=rounds, iterations=iterations, warmup_rounds=1)
        benchmark.extra_info["examples_per_s"] = B / benchmark.stats.stats.median
    loss = step.loss if isinstance(step.loss, float) else float(step.loss.item())
    assert math.isfinite(loss)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("impl", ["fastbp-cython", "fastbp-numpy", "fastbp-compiled"])
def test_mlp_matches_numpy_baseline(impl, B, dtype, tol, threads):
    """The benchmarked fastbp step computes the same update as the numpy baseline."""
    _require(impl)
    diffs = mlp_param_diffs(impl.split("-", 1)[1], B, steps=3, dtype=dtype)
    for name, (diff, scale) in diffs.items():
        assert diff <= tol * max(scale, 1.0), (name, diff, scale)
