"""One training step of the window classifier: fastbp (cython and numpy backends, and the
compiled step plan when ``fb.compile`` exists) against the pure numpy baseline (and torch
eager and the step as one ``jax.jit`` function when those are installed), float32.

Groups are ``{config}-B{B}``, so ``pytest bench --benchmark-group-by=group`` (the default
here) puts the implementations of one cell side by side. ``extra_info["windows_per_s"]``
is ``B / median step time``.

With ``--benchmark-disable`` every benchmark body runs one step (a smoke test).
"""

import math
import time

import numpy as np
import pytest

import fastbp as fb
from fastbp import benchmark as bm

CONFIGS = ("lecture", "large")
BATCH_SIZES = (1, 32, 256, 2048)
IMPLS = ("fastbp-compiled", "fastbp-cython", "fastbp-numpy", "pure-numpy", "torch", "jax")

TARGET_SECONDS = 1.0  # per benchmark, so the whole grid takes ~1-2 minutes plus setup


def _rounds(step):
    """(rounds, iterations) so that one benchmark lasts ~TARGET_SECONDS."""
    step.step()  # warm up: gradient buffers, page faults
    t0 = time.perf_counter()
    step.step()
    t = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, int(0.01 / t))  # rounds of >= ~10 ms
    rounds = int(min(200, max(5, TARGET_SECONDS / (t * iterations))))
    return rounds, iterations


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("config", CONFIGS)
def test_step(benchmark, make_step, config, B, impl):
    step = make_step(impl, config, B)
    benchmark.group = f"{config}-B{B}"
    benchmark.extra_info.update(config=config, B=B, impl=impl, dtype="float32")
    if not benchmark.enabled:
        benchmark(step.step)
    else:
        rounds, iterations = _rounds(step)
        benchmark.pedantic(step.step, rounds=rounds, iterations=iterations, warmup_rounds=1)
        benchmark.extra_info["windows_per_s"] = B / benchmark.stats.stats.median
    loss = step.loss if isinstance(step.loss, float) else float(step.loss.item())
    assert math.isfinite(loss)


# ---------------------------------------------------------------- correctness guard
@pytest.mark.parametrize("B", [1, 16])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("impl", ["fastbp-cython", "fastbp-numpy"])
def test_fastbp_matches_numpy_baseline(impl, config, B, threads):
    """The benchmarked fastbp step computes the same update as the numpy baseline."""
    if impl == "fastbp-cython" and not bm.cython_available():
        pytest.skip("fastbp's compiled kernels are not built")
    diffs = bm.param_diffs(impl.split("-", 1)[1], config, B, steps=3, dtype=np.float32)
    for name, (diff, scale) in diffs.items():
        assert diff <= 1e-5 * max(scale, 1.0), (name, diff, scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_param_diff_api(dtype):
    impl = "cython" if bm.cython_available() else "numpy"
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert bm.max_param_diff(impl, "lecture", 8, steps=2, dtype=dtype) < tol


@pytest.mark.parametrize("config", CONFIGS)
def test_torch_matches_numpy_baseline(config, threads):
    pytest.importorskip("torch")
    from torch_step import max_param_diff_torch

    assert max_param_diff_torch(config, 16, steps=3) < 1e-5


@pytest.mark.parametrize("config", CONFIGS)
def test_jax_matches_numpy_baseline(config, threads):
    pytest.importorskip("jax", reason='jax is not installed (pip install "jax[cpu]")')
    from jax_step import max_param_diff_jax

    assert max_param_diff_jax(config, 16, steps=3) < 1e-5


@pytest.mark.parametrize("B", [1, 16])
@pytest.mark.parametrize("config", CONFIGS)
def test_compiled_matches_numpy_baseline(config, B, threads):
    from compiled_step import COMPILED_MISSING, max_param_diff_compiled

    if not bm.cython_available():
        pytest.skip("fastbp's compiled kernels are not built")
    if not hasattr(fb, "compile"):
        pytest.skip(COMPILED_MISSING)

    assert max_param_diff_compiled(config, B, steps=3) < 1e-5


def test_sgemm_ceiling_steps_compute_the_product():
    """The two ceiling workloads of report.py multiply what they are given."""
    from report import SgemmStep

    for which in ("sgemm-numpy", "sgemm-scipy"):
        s = SgemmStep(which, n=64)
        s.step()
        np.testing.assert_allclose(s.C, s.A @ s.B, rtol=1e-4, atol=1e-3, err_msg=which)


def test_speed_table_smoke():
    """The code behind ``fastbp bench`` runs end to end and formats every cell."""
    rows = bm.speed_table(configs=("lecture",), batch_sizes=(1, 8), budget_seconds=0.05,
                          repeats=1)
    text = bm.format_speed_table(rows)
    assert len(rows) == 2 and "| lecture | 8 |" in text
    for row in rows:
        assert all(v > 0 for v in row["windows_per_s"].values())
        assert (row["ratio"] is not None) == bm.cython_available()
