"""Per-kernel micro-benchmarks: the backend ops of one training step, cython against the
numpy reference backend, float32, with the shapes of the ``lecture`` config (and the
``large`` one for the memory-bound optimiser updates); the reductions / softmax groups
use 1e3 and 1e6 elements ((10, 100) and (1000, 1000), over the last axis).

One group per kernel and size (``pytest bench/test_bench_kernels.py
--benchmark-group-by=group``), e.g. ``tanh-fwd-B256`` holds ``[cython]`` and ``[numpy]``.
Each case first checks that both backends agree on its inputs, so a fast wrong kernel
cannot pass unnoticed.
"""

import numpy as np
import pytest

import fastbp as fb
from fastbp import benchmark as bm

BACKENDS = ("cython", "numpy")
F32 = np.float32
LEC = bm.CONFIGS["lecture"]


def _ops(name):
    if name == "cython" and not bm.cython_available():
        pytest.skip("fastbp's compiled kernels are not built")
    return fb.backends._resolve(name)


def _rng():
    return np.random.default_rng(0)


def _arr(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=F32) * F32(scale))


def _run(benchmark, group, fn):
    benchmark.group = group
    return benchmark(fn)


# ---------------------------------------------------------------- linear / gemm forward
@pytest.mark.parametrize("B", [1, 256])
@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_fwd(benchmark, backend, B):
    ops = _ops(backend)
    rng = _rng()
    k, m = LEC["w"] * LEC["d"], LEC["H"]
    X, W, b = _arr(rng, B, k), _arr(rng, k, m, scale=0.1), _arr(rng, m)
    np.testing.assert_allclose(ops.linear(X, W, b), X @ W + b, rtol=1e-4, atol=1e-4)
    _run(benchmark, f"linear-fwd-B{B}", lambda: ops.linear(X, W, b))


@pytest.mark.parametrize("B", [1, 256])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gemm_fwd(benchmark, backend, B):
    ops = _ops(backend)
    rng = _rng()
    k, m = LEC["w"] * LEC["d"], LEC["H"]
    X, W = _arr(rng, B, k), _arr(rng, k, m, scale=0.1)
    np.testing.assert_allclose(ops.gemm(X, W), X @ W, rtol=1e-4, atol=1e-4)
    _run(benchmark, f"gemm-fwd-B{B}", lambda: ops.gemm(X, W))


# ---------------------------------------------------------------- weight gradient
@pytest.mark.parametrize("kind", ["ger", "gemm"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_grad_B1(benchmark, backend, kind):
    """dW = x^T g at B=1: rank-1 ``ger`` on vectors vs ``gemm`` with trans_a on (1, k)."""
    ops = _ops(backend)
    rng = _rng()
    k, m = LEC["w"] * LEC["d"], LEC["H"]
    x, g = _arr(rng, k), _arr(rng, m)
    out = np.empty((k, m), F32)
    if kind == "ger":
        fn = lambda: ops.ger(x, g, out, 0.0)  # noqa: E731
    else:
        X, G = x.reshape(1, k), g.reshape(1, m)
        fn = lambda: ops.gemm(X, G, out, True, False, 0.0)  # noqa: E731
    fn()
    np.testing.assert_allclose(out, np.outer(x, g), rtol=1e-5, atol=1e-6)
    _run(benchmark, "weight-grad-B1", fn)


@pytest.mark.parametrize("B", [32, 256])
@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_grad_gemm(benchmark, backend, B):
    ops = _ops(backend)
    rng = _rng()
    k, m = LEC["w"] * LEC["d"], LEC["H"]
    X, G = _arr(rng, B, k), _arr(rng, B, m)
    out = np.empty((k, m), F32)
    fn = lambda: ops.gemm(X, G, out, True, False, 0.0)  # noqa: E731
    fn()
    np.testing.assert_allclose(out, X.T @ G, rtol=1e-4, atol=1e-4)
    _run(benchmark, f"weight-grad-B{B}", fn)


# ---------------------------------------------------------------- tanh
@pytest.mark.parametrize("B", [1, 256, 2048])
@pytest.mark.parametrize("backend", BACKENDS)
def test_tanh_fwd(benchmark, backend, B):
    ops = _ops(backend)
    Z = _arr(_rng(), B, LEC["H"])
    np.testing.assert_allclose(ops.tanh(Z), np.tanh(Z), rtol=1e-5, atol=1e-6)
    _run(benchmark, f"tanh-fwd-B{B}", lambda: ops.tanh(Z))


@pytest.mark.parametrize("B", [1, 256, 2048])
@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_tanh_fwd(benchmark, backend, B):
    """Fused ``tanh(X + b)`` (what a fused linear+activation would call)."""
    ops = _ops(backend)
    rng = _rng()
    Z, b = _arr(rng, B, LEC["H"]), _arr(rng, LEC["H"])
    np.testing.assert_allclose(ops.bias_act(Z, b, "tanh"), np.tanh(Z + b), rtol=1e-5, atol=1e-6)
    _run(benchmark, f"bias-tanh-fwd-B{B}", lambda: ops.bias_act(Z, b, "tanh"))


@pytest.mark.parametrize("B", [1, 256, 2048])
@pytest.mark.parametrize("backend", BACKENDS)
def test_tanh_bwd(benchmark, backend, B):
    ops = _ops(backend)
    rng = _rng()
    dY, Y = _arr(rng, B, LEC["H"]), np.tanh(_arr(rng, B, LEC["H"]))
    out = np.empty_like(dY)
    fn = lambda: ops.backprop_tanh(dY, Y, out, 0.0)  # noqa: E731
    fn()
    np.testing.assert_allclose(out, dY * (1 - Y * Y), rtol=1e-5, atol=1e-6)
    _run(benchmark, f"tanh-bwd-B{B}", fn)


# ---------------------------------------------------------------- embedding
@pytest.mark.parametrize("B", [1, 256, 2048])
@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_gather(benchmark, backend, B):
    ops = _ops(backend)
    rng = _rng()
    E = _arr(rng, LEC["V"], LEC["d"])
    ids = rng.integers(0, LEC["V"], (B, LEC["w"])).astype(np.intp)
    np.testing.assert_array_equal(ops.embedding(E, ids), E[ids.reshape(-1)].reshape(B, -1))
    _run(benchmark, f"embedding-gather-B{B}", lambda: ops.embedding(E, ids))


@pytest.mark.parametrize("B", [1, 256, 2048])
@pytest.mark.parametrize("backend", BACKENDS)
def test_embedding_scatter_add(benchmark, backend, B):
    ops = _ops(backend)
    rng = _rng()
    E = np.zeros((LEC["V"], LEC["d"]), F32)
    rows = rng.integers(0, LEC["V"], B * LEC["w"]).astype(np.intp)
    vals = _arr(rng, B * LEC["w"], LEC["d"])
    ops.scatter_add_rows(E, rows, vals, 1.0)
    ref = np.zeros_like(E)
    np.add.at(ref, rows, vals)
    np.testing.assert_allclose(E, ref, rtol=1e-5, atol=1e-6)
    _run(benchmark, f"embedding-scatter-add-B{B}", lambda: ops.scatter_add_rows(E, rows, vals, 1e-3))


# ---------------------------------------------------------------- softmax cross-entropy
@pytest.mark.parametrize("B", [1, 256, 2048])
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_ce_fwd_bwd(benchmark, backend, B):
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    rng = _rng()
    Z = _arr(rng, B, LEC["C"])
    y = rng.integers(0, LEC["C"], B).astype(np.intp)
    out = np.empty_like(Z)

    def fn():
        loss, P = ops.softmax_cross_entropy(Z, y)
        ops.backprop_softmax_cross_entropy(P, y, 1.0, out, 0.0)
        return loss

    loss = fn()
    ref_loss, ref_P = ref.softmax_cross_entropy(Z, y)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)
    np.testing.assert_allclose(out, ref.backprop_softmax_cross_entropy(ref_P, y, 1.0),
                               rtol=1e-5, atol=1e-7)
    _run(benchmark, f"softmax-ce-fwd-bwd-B{B}", fn)


# ---------------------------------------------------------------- optimisers
_DENSE = {"lecture-W": (LEC["w"] * LEC["d"], LEC["H"]),
          "large-W": (5 * 300, 512)}


@pytest.mark.parametrize("which", list(_DENSE))
@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_update_dense(benchmark, backend, which):
    ops = _ops(backend)
    rng = _rng()
    W, dW = _arr(rng, *_DENSE[which]), _arr(rng, *_DENSE[which])
    expect = W - F32(1e-3) * dW
    ops.sgd_update(W, dW, 1e-3)
    np.testing.assert_allclose(W, expect, rtol=1e-6, atol=1e-7)
    _run(benchmark, f"sgd-dense-{which}", lambda: ops.sgd_update(W, dW, 1e-6))


@pytest.mark.parametrize("B", [1, 256])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_update_rows(benchmark, backend, B):
    ops = _ops(backend)
    rng = _rng()
    E = _arr(rng, LEC["V"], LEC["d"])
    rows = rng.integers(0, LEC["V"], B * LEC["w"]).astype(np.intp)
    vals = _arr(rng, B * LEC["w"], LEC["d"])
    expect = E.copy()
    np.add.at(expect, rows, F32(-1e-3) * vals)
    ops.sgd_update_rows(E, rows, vals, 1e-3)
    np.testing.assert_allclose(E, expect, rtol=1e-5, atol=1e-6)
    _run(benchmark, f"sgd-rows-B{B}", lambda: ops.sgd_update_rows(E, rows, vals, 1e-6))


@pytest.mark.parametrize("which", list(_DENSE))
@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_update_dense(benchmark, backend, which):
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    rng = _rng()
    W, dW = _arr(rng, *_DENSE[which]), _arr(rng, *_DENSE[which])
    m, v = np.zeros_like(W), np.zeros_like(W)
    W2, m2, v2 = W.copy(), m.copy(), v.copy()
    ops.adam_update(W, dW, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
    ref.adam_update(W2, dW, m2, v2, 1e-3, 0.9, 0.999, 1e-8, 1)
    np.testing.assert_allclose(W, W2, rtol=1e-5, atol=1e-6)
    _run(benchmark, f"adam-dense-{which}",
         lambda: ops.adam_update(W, dW, m, v, 1e-6, 0.9, 0.999, 1e-8, 2))


@pytest.mark.parametrize("B", [1, 256])
@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_update_rows(benchmark, backend, B):
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    rng = _rng()
    E = _arr(rng, LEC["V"], LEC["d"])
    m, v = np.zeros_like(E), np.zeros_like(E)
    E2, m2, v2 = E.copy(), m.copy(), v.copy()
    rows = rng.integers(0, LEC["V"], B * LEC["w"]).astype(np.intp)
    vals = _arr(rng, B * LEC["w"], LEC["d"])
    ops.adam_update_rows(E, rows, vals, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
    ref.adam_update_rows(E2, rows, vals, m2, v2, 1e-3, 0.9, 0.999, 1e-8, 1)
    np.testing.assert_allclose(E, E2, rtol=1e-5, atol=1e-6)
    _run(benchmark, f"adam-rows-B{B}",
         lambda: ops.adam_update_rows(E, rows, vals, m, v, 1e-6, 0.9, 0.999, 1e-8, 2))


# ---------------------------------------------------------------- reductions / softmax
# 1e3 and 1e6 elements, reduced over the last (contiguous) axis.
_RED = {"1e3": (10, 100), "1e6": (1000, 1000)}


def _red_inputs(shape):
    rng = _rng()
    X = _arr(rng, *shape, scale=3.0)
    return X, _arr(rng, *shape)


@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
@pytest.mark.parametrize("size", list(_RED))
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_fwd(benchmark, backend, size, fwd):
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    X, _ = _red_inputs(_RED[size])
    out = np.empty_like(X)
    fn = lambda: getattr(ops, fwd)(X, -1, out)  # noqa: E731
    fn()
    np.testing.assert_allclose(out, getattr(ref, fwd)(X, -1), rtol=1e-5, atol=1e-6)
    _run(benchmark, f"{fwd.replace('_', '-')}-fwd-{size}", fn)


@pytest.mark.parametrize("fwd", ["softmax", "log_softmax"])
@pytest.mark.parametrize("size", list(_RED))
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_bwd(benchmark, backend, size, fwd):
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    X, dY = _red_inputs(_RED[size])
    Y = getattr(ref, fwd)(X, -1)
    out = np.empty_like(X)
    bwd = "backprop_" + fwd
    fn = lambda: getattr(ops, bwd)(dY, Y, -1, out, 0.0)  # noqa: E731
    fn()
    np.testing.assert_allclose(out, getattr(ref, bwd)(dY, Y, -1), rtol=1e-5, atol=1e-5)
    _run(benchmark, f"{fwd.replace('_', '-')}-bwd-{size}", fn)


@pytest.mark.parametrize("op", ["logsumexp", "reduce_max"])
@pytest.mark.parametrize("size", list(_RED))
@pytest.mark.parametrize("backend", BACKENDS)
def test_reduce_fwd(benchmark, backend, size, op):
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    X, _ = _red_inputs(_RED[size])
    fn = lambda: getattr(ops, op)(X, -1)  # noqa: E731
    np.testing.assert_allclose(fn(), getattr(ref, op)(X, -1), rtol=1e-5, atol=1e-5)
    _run(benchmark, f"{op.replace('_', '-')}-fwd-{size}", fn)


@pytest.mark.parametrize("op", ["logsumexp", "reduce_max"])
@pytest.mark.parametrize("size", list(_RED))
@pytest.mark.parametrize("backend", BACKENDS)
def test_reduce_bwd(benchmark, backend, size, op):
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    X, _ = _red_inputs(_RED[size])
    Y = getattr(ref, op)(X, -1)
    dY = _arr(_rng(), *Y.shape)
    out = np.empty_like(X)
    bwd = "backprop_" + op
    fn = lambda: getattr(ops, bwd)(dY, X, Y, -1, False, out, 0.0)  # noqa: E731
    fn()
    np.testing.assert_allclose(out, getattr(ref, bwd)(dY, X, Y, -1), rtol=1e-5, atol=1e-6)
    _run(benchmark, f"{op.replace('_', '-')}-bwd-{size}", fn)

# ---------------------------------------------------------------- indexing (issue 7)
# The indexing kernels against the numpy reference backend (X[idx], np.add.at,
# np.concatenate, np.copyto) at ~1e3 and ~1e6 elements moved.
_IX_SIZES = {"1e3": 1_000, "1e6": 1_000_000}
_IX_D = 100  # width of a gathered row


def _ix_rows(rng, size):
    n = _IX_SIZES[size] // _IX_D
    X = _arr(rng, 2 * n, _IX_D)
    return X, rng.integers(0, 2 * n, n).astype(np.intp)


def _ix_pairs(rng, size):
    side = 1000 if size == "1e6" else 256
    M = _arr(rng, side, side)
    n = _IX_SIZES[size]
    return M, (rng.integers(0, side, n).astype(np.intp), rng.integers(0, side, n).astype(np.intp))


@pytest.mark.parametrize("size", list(_IX_SIZES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_gather_rows(benchmark, backend, size):
    ops = _ops(backend)
    X, idx = _ix_rows(_rng(), size)
    np.testing.assert_array_equal(ops.gather(X, (idx,)), X[idx])
    _run(benchmark, f"gather-rows-{size}", lambda: ops.gather(X, (idx,)))


@pytest.mark.parametrize("size", list(_IX_SIZES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_gather_pairs(benchmark, backend, size):
    """``x[rows, cols]``: one element per (row, col) pair."""
    ops = _ops(backend)
    M, index = _ix_pairs(_rng(), size)
    np.testing.assert_array_equal(ops.gather(M, index), M[index])
    _run(benchmark, f"gather-pairs-{size}", lambda: ops.gather(M, index))


@pytest.mark.parametrize("B", [256])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gather_pairs_logp(benchmark, backend, B):
    """The loss pick ``logp[np.arange(B), y]`` on a (B, C=256) matrix."""
    ops = _ops(backend)
    rng = _rng()
    logp = _arr(rng, B, 256)
    index = (np.arange(B), rng.integers(0, 256, B))
    np.testing.assert_array_equal(ops.gather(logp, index), logp[index])
    _run(benchmark, f"gather-pairs-logp-B{B}", lambda: ops.gather(logp, index))


@pytest.mark.parametrize("kind", ["rows", "pairs"])
@pytest.mark.parametrize("size", list(_IX_SIZES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_backprop_gather(benchmark, backend, size, kind):
    ops = _ops(backend)
    rng = _rng()
    if kind == "rows":
        X, idx = _ix_rows(rng, size)
        index = (idx,)
    else:
        X, index = _ix_pairs(rng, size)
    dY = _arr(rng, *np.broadcast_shapes(*(i.shape for i in index)), *X.shape[len(index):])
    out = np.empty_like(X)
    fn = lambda: ops.backprop_gather(dY, index, X.shape, out, 0.0)  # noqa: E731
    fn()
    ref = np.zeros_like(X)
    np.add.at(ref, index, dY)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    _run(benchmark, f"backprop-gather-{kind}-{size}", fn)


@pytest.mark.parametrize("kind", ["contiguous", "slice", "transpose"])
@pytest.mark.parametrize("size", list(_IX_SIZES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_copy_into(benchmark, backend, size, kind):
    """``out[...] = src + out`` into a gradient buffer: whole, a column slice of a wider
    buffer (the backward of slicing), or from a transposed src (of a transpose)."""
    ops = _ops(backend)
    rng = _rng()
    n = int(round(np.sqrt(_IX_SIZES[size])))
    buf = _arr(rng, n, 2 * n)
    src = _arr(rng, n, n)
    if kind == "contiguous":
        out = _arr(rng, n, n)
    elif kind == "slice":
        out = buf[:, n // 2: n // 2 + n]
    else:
        out, src = _arr(rng, n, n), src.T
    expect = out + src
    ops.copy_into(src, out, 1.0)
    np.testing.assert_allclose(out, expect, rtol=1e-6, atol=1e-6)
    _run(benchmark, f"copy-into-{kind}-{size}", lambda: ops.copy_into(src, out, 1.0))


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("size", list(_IX_SIZES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_concatenate(benchmark, backend, size, axis):
    ops = _ops(backend)
    rng = _rng()
    n = int(round(np.sqrt(_IX_SIZES[size] / 2)))
    arrays = [_arr(rng, n, n), _arr(rng, n, n // 2), _arr(rng, n, n - n // 2)]
    if axis == 0:
        arrays = [x.T.copy() for x in arrays]
    np.testing.assert_array_equal(ops.concatenate(arrays, axis), np.concatenate(arrays, axis))
    _run(benchmark, f"concatenate-axis{axis}-{size}", lambda: ops.concatenate(arrays, axis))

# ---------------------------------------------------------------- elementwise (issue 7)
# The generic ops at 1e3 and 1e6 elements, float32: (n/1000, 1000) arrays, so that the
# row-bias and scalar cases are the broadcast patterns of an MLP written with them.
_EW_SIZES = [1_000, 1_000_000]


def _ew(rng, n, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, (n // 1000, 1000)).astype(F32)


_EW_BINARY = {
    "add-same": ("add", lambda X, Y, b: (X, Y), lambda X, Y, b: X + Y),
    "add-row": ("add", lambda X, Y, b: (X, b), lambda X, Y, b: X + b),
    "div": ("div", lambda X, Y, b: (X, Y), lambda X, Y, b: X / Y),
    "maximum": ("maximum", lambda X, Y, b: (X, Y), lambda X, Y, b: np.maximum(X, Y)),
    "maximum-0": ("maximum", lambda X, Y, b: (X, np.zeros((), F32)),
                  lambda X, Y, b: np.maximum(X, 0)),
}


@pytest.mark.parametrize("n", _EW_SIZES)
@pytest.mark.parametrize("case", list(_EW_BINARY))
@pytest.mark.parametrize("backend", BACKENDS)
def test_ew_binary(benchmark, backend, case, n):
    ops = _ops(backend)
    rng = _rng()
    op, args, expect = _EW_BINARY[case]
    X, Y, b = _ew(rng, n), _ew(rng, n, 0.5, 2.0), _ew(rng, 1000)[0]
    a = args(X, Y, b)
    np.testing.assert_allclose(getattr(ops, op)(*a), expect(X, Y, b), rtol=1e-5, atol=1e-6)
    _run(benchmark, f"ew-{case}-n{n:.0e}", lambda: getattr(ops, op)(*a))


_EW_UNARY = {
    "exp": (lambda ops, X: ops.exp(X), np.exp),
    "log": (lambda ops, X: ops.log(X), np.log),
    "sqrt": (lambda ops, X: ops.sqrt(X), np.sqrt),
    "power-3": (lambda ops, X: ops.power(X, 3.0), lambda X: X ** 3),
    "power-1.5": (lambda ops, X: ops.power(X, 1.5), lambda X: X ** F32(1.5)),
}


@pytest.mark.parametrize("n", _EW_SIZES)
@pytest.mark.parametrize("case", list(_EW_UNARY))
@pytest.mark.parametrize("backend", BACKENDS)
def test_ew_unary(benchmark, backend, case, n):
    ops = _ops(backend)
    fn, expect = _EW_UNARY[case]
    X = _ew(_rng(), n, 0.1, 3.0)
    np.testing.assert_allclose(fn(ops, X), expect(X), rtol=1e-5, atol=1e-6)
    _run(benchmark, f"ew-{case}-n{n:.0e}", lambda: fn(ops, X))


@pytest.mark.parametrize("n", _EW_SIZES)
@pytest.mark.parametrize("op", ["maximum", "div"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_ew_binary_bwd(benchmark, backend, op, n):
    """The gradient with respect to X, written into an out buffer; Y a broadcast row."""
    ops = _ops(backend)
    ref = fb.backends._resolve("numpy")
    rng = _rng()
    dZ, X, y = _ew(rng, n), _ew(rng, n), _ew(rng, 1000, 0.5, 2.0)[0]
    out = np.empty_like(dZ)
    fn = getattr(ops, "backprop_" + op)
    fn(dZ, X, y, 0, out, 0.0)
    np.testing.assert_allclose(out, getattr(ref, "backprop_" + op)(dZ, X, y, 0), rtol=1e-5,
                               atol=1e-6)
    _run(benchmark, f"ew-{op}-bwd-n{n:.0e}", lambda: fn(dZ, X, y, 0, out, 0.0))


@pytest.mark.parametrize("n", _EW_SIZES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_ew_exp_bwd(benchmark, backend, n):
    ops = _ops(backend)
    rng = _rng()
    dY, Y = _ew(rng, n), np.exp(_ew(rng, n))
    out = np.empty_like(dY)
    ops.backprop_exp(dY, Y, out, 0.0)
    np.testing.assert_allclose(out, dY * Y, rtol=1e-6)
    _run(benchmark, f"ew-exp-bwd-n{n:.0e}", lambda: ops.backprop_exp(dY, Y, out, 0.0))
