"""The fused linear kernel ``_k.linear(X, W, b, out, trans_w)`` against the numpy
reference: ``X @ W + b`` and, with ``trans_w=True``, ``X @ W.T + b`` for ``W`` in the
(out, in) layout of ``nn.Linear`` -- bias rows and one gemm on the transposed operand,
both inside the C entry point ``k_linear`` (the flag is read from the Call record)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import fastbp_ext._kernels as K
from fastbp.backends.cython_ops import CythonOps
from fastbp.backends.numpy_ops import NumpyOps

REF = NumpyOps()
TOL = {np.float32: 2e-5, np.float64: 1e-12}

# (n, k, m): the BLAS kernel's degenerate branches (one row -> gemv, one column -> gemv,
# k == 1 -> outer product, empty sizes) and ordinary shapes.
SHAPES = [(1, 7, 5), (6, 7, 1), (6, 1, 5), (1, 1, 1), (0, 3, 4), (4, 0, 3), (5, 3, 0),
          (33, 50, 9), (64, 300, 200)]


def _case(rng, n, k, m, dtype, trans_w):
    X = rng.standard_normal((n, k)).astype(dtype)
    W = rng.standard_normal((m, k) if trans_w else (k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    return X, W, b


def test_cython_ops_linear_is_the_kernel():
    assert CythonOps.linear is K.linear


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_w", [False, True])
@pytest.mark.parametrize("n, k, m", SHAPES)
def test_kernel_matches_reference(n, k, m, trans_w, dtype):
    rng = np.random.default_rng(n * 10_000 + k * 100 + m)
    X, W, b = _case(rng, n, k, m, dtype, trans_w)
    Wm = W.astype(np.float64).T if trans_w else W.astype(np.float64)
    want = X.astype(np.float64) @ Wm + b
    tol = TOL[dtype]
    for bias in (b, None):
        got = K.linear(X, W, bias, None, trans_w)
        ref = REF.linear(X, W, bias, None, trans_w)
        assert got.dtype == dtype and ref.dtype == dtype and got.shape == (n, m)
        expect = want if bias is not None else want - b
        np.testing.assert_allclose(got, expect, rtol=tol, atol=tol * max(k, 1))
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(k, 1))
    # into a given out, whatever it held (the bias fill / beta = 0 overwrite it)
    out = np.full((n, m), np.nan, dtype)
    assert K.linear(X, W, b, out, trans_w) is out
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol * max(k, 1))
    out[...] = np.nan
    K.linear(X, W, None, out, trans_w)
    np.testing.assert_allclose(out, want - b, rtol=tol, atol=tol * max(k, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_w", [False, True])
def test_non_contiguous_weight(trans_w, dtype):
    rng = np.random.default_rng(7)
    n, k, m = 9, 6, 4
    X, W, b = _case(rng, n, k, m, dtype, trans_w)
    want = REF.linear(X, W, b, None, trans_w)
    tol = TOL[dtype]
    views = {
        "transposed view": np.ascontiguousarray(W.T).T,
        "strided slice": np.repeat(W, 2, axis=1)[:, ::2],
        "reversed rows": np.ascontiguousarray(W[::-1])[::-1],
    }
    for name, Wv in views.items():
        assert not Wv.flags.c_contiguous, name
        np.testing.assert_array_equal(Wv, W)
        np.testing.assert_allclose(K.linear(X, Wv, b, None, trans_w), want, rtol=tol,
                                   atol=tol, err_msg=name)
        np.testing.assert_allclose(REF.linear(X, Wv, b, None, trans_w), want, rtol=tol,
                                   atol=tol, err_msg=name)
    # a non-contiguous X and bias too
    Xv = np.ascontiguousarray(X.T).T
    bv = np.repeat(b, 3)[::3]
    np.testing.assert_allclose(K.linear(Xv, W, bv, None, trans_w), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("trans_w", [False, True])
def test_weight_is_never_copied(trans_w):
    """Neither the stored (out, in) weight nor a transposed view of one is copied: the
    call allocates only the (small) output."""
    rng = np.random.default_rng(3)
    k = m = 1000  # 8 MB of weights
    X = rng.standard_normal((2, k))
    Wc = rng.standard_normal((m, k))
    for W in (Wc, Wc.T):
        K.linear(X, W, None, None, trans_w)  # warm up
        tracemalloc.start()
        try:
            K.linear(X, W, None, None, trans_w)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < Wc.nbytes // 10, (W.flags.c_contiguous, peak)


@pytest.mark.parametrize("ops", [K, REF], ids=["kernel", "numpy"])
def test_misaligned_shapes_name_them(ops):
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(3, 5\) \(out, in\) are not aligned"):
        ops.linear(X, np.ones((3, 5)), None, None, True)   # (out, in) needs W of (m, 3)
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(5, 3\) are not aligned"):
        ops.linear(X, np.ones((5, 3)), None, None, False)  # (in, out) needs W of (3, m)
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(5,\) \(out, in\)"):
        ops.linear(X, np.ones(5), None, None, True)
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) for an output of width 5"):
        ops.linear(X, np.ones((5, 3)), np.ones(3), None, True)
    with pytest.raises(ValueError, match=r"bias of shape \(1,\) for an output of width 5"):
        ops.linear(X, np.ones((5, 3)), np.ones(1), None, True)  # never broadcast


@pytest.mark.parametrize("ops", [K, REF], ids=["kernel", "numpy"])
def test_mixed_dtypes_are_type_errors(ops):
    X = np.ones((4, 3), np.float32)
    with pytest.raises(TypeError):
        ops.linear(X, np.ones((5, 3)), None, None, True)
    with pytest.raises(TypeError):
        ops.linear(X, np.ones((5, 3), np.float32), np.ones(5), None, True)


def test_bad_out_is_rejected_and_not_written():
    X, W, b = np.ones((4, 3)), np.ones((5, 3)), np.ones(5)
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(4, 5\)"):
        K.linear(X, W, b, np.zeros((5, 4)), True)
    out = np.zeros((4, 5), np.float32)
    with pytest.raises(TypeError):
        K.linear(X, W, b, out, True)
    assert not out.any()
    W2 = np.ones((5, 5))
    with pytest.raises(ValueError, match="W"):  # out aliasing the weight
        K.linear(np.ones((5, 5)), W2, None, W2, True)
