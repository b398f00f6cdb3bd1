"""Kernel boundaries: every Python-callable op of the compiled backend validates what
it is given before it enters ``nogil`` code, and never misreads memory.

* Property tests (hypothesis) draw shapes (including empty batches), dtypes and memory
  layouts -- C / Fortran order, strided and reversed views, byte-swapped, misaligned and
  read-only buffers -- for every op of :class:`CythonOps` and compare it with the
  reference :class:`NumpyOps` run on plain C-contiguous copies. Inputs must come back
  unmodified.
* Table-driven tests feed every kernel wrong dtypes, mixed precisions, wrong shapes,
  out-of-range ids, bad ``out``/``beta`` arguments and non-arrays, and check the one
  exception type promised by the kernels' docstrings -- with nothing written.
* Random compositions of graph ops are checked with ``fb.gradcheck`` (float64) on both
  backends, and the two backends must agree on values and gradients.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp as fb
from fastbp.backends.numpy_ops import NumpyOps

_kernels = pytest.importorskip("fastbp_ext._kernels")
from fastbp.backends.cython_ops import CythonOps  # noqa: E402

CY, NP = CythonOps(), NumpyOps()
DTYPES = [np.float32, np.float64]
# FASTBP_ROBUST_EXAMPLES lowers the example counts (tools/valgrind_kernels.sh runs this
# file under valgrind, ~50x slower)
EXAMPLES = int(os.environ.get("FASTBP_ROBUST_EXAMPLES", "60"))
PROPS = settings(max_examples=EXAMPLES, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LAYOUTS = ["C", "F", "strided", "reversed", "swapped", "misaligned", "readonly"]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


# =========================================================================== layouts
def relayout(a, kind):
    """An array equal to ``a`` in value with the memory layout ``kind``."""
    a = np.asarray(a)
    if kind == "C":
        out = np.array(a, order="C")  # (np.ascontiguousarray makes 0-d arrays 1-d)
    elif kind == "F":
        out = np.asfortranarray(a) if a.ndim else a.copy()
    elif kind == "strided":  # every other element of a wider buffer, along every axis
        if a.ndim == 0:
            return a.copy()
        buf = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
        out = buf[tuple(slice(1, None, 2) for _ in a.shape)]
        out[...] = a
    elif kind == "reversed":  # negative strides
        if a.ndim == 0:
            return a.copy()
        idx = tuple(slice(None, None, -1) for _ in a.shape)
        out = np.array(a[idx], order="C")[idx]
    elif kind == "swapped":  # non-native byte order
        out = a.astype(a.dtype.newbyteorder("S"))
    elif kind == "misaligned":
        raw = np.zeros(a.nbytes + a.itemsize + 1, np.uint8)
        out = raw[1 : 1 + a.nbytes].view(a.dtype).reshape(a.shape)
        out[...] = a
        assert a.itemsize == 1 or a.nbytes == 0 or not out.flags.aligned
    elif kind == "readonly":
        out = a.copy()
        out.flags.writeable = False
    else:
        raise AssertionError(kind)
    np.testing.assert_array_equal(out, a)
    return out


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if np.dtype(dtype) == np.float32 else dict(rtol=1e-11, atol=1e-11)


def assert_close(got, ref, dtype, what=""):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    if ref.dtype.kind == "f":
        assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != {ref.dtype}"
        np.testing.assert_allclose(got, ref, err_msg=what, **tol(dtype))
    else:
        np.testing.assert_array_equal(got, ref, err_msg=what)


# =========================================================================== op cases
# A case builder draws one call of an op: ``(args, inplace)`` where ``args`` is the
# positional argument list and ``inplace`` the positions the op writes (they are given
# as C-contiguous arrays and compared after the call). Every other ndarray argument is
# an input and gets a random layout.
def dim(draw, lo=0, hi=5):
    return draw(st.integers(lo, hi))


def out_and_beta(draw, shape, dtype, rng):
    """(out, beta) for a gradient op: allocate, overwrite or accumulate."""
    mode = draw(st.sampled_from(["alloc", "overwrite", "accumulate"]))
    if mode == "alloc":
        return None, 0.0
    out = np.asarray(rng.standard_normal(shape), dtype)
    if mode == "overwrite":
        out[...] = np.nan  # beta = 0 must never read out
    return out, (0.0 if mode == "overwrite" else 1.0)


def case_gemm(draw, dt, rng):
    ta, tb = draw(st.booleans()), draw(st.booleans())
    M, N, K = dim(draw), dim(draw), dim(draw)
    A = rng.standard_normal((K, M) if ta else (M, K)).astype(dt)
    B = rng.standard_normal((N, K) if tb else (K, N)).astype(dt)
    out, beta = out_and_beta(draw, (M, N), dt, rng)
    return [A, B, out, ta, tb, beta], [2] if out is not None else []


def case_gemv(draw, dt, rng):
    trans = draw(st.booleans())
    M, N = dim(draw), dim(draw)
    A = np.asarray(rng.standard_normal((M, N)), dt)
    x = np.asarray(rng.standard_normal(M if trans else N), dt)
    out, beta = out_and_beta(draw, (N if trans else M,), dt, rng)
    return [A, x, out, trans, beta], [2] if out is not None else []


def case_ger(draw, dt, rng):
    M, N = dim(draw), dim(draw)
    out, beta = out_and_beta(draw, (M, N), dt, rng)
    return [np.asarray(rng.standard_normal(M), dt), np.asarray(rng.standard_normal(N), dt), out,
            beta], [2] if out is not None else []


def case_dot(draw, dt, rng):
    n = dim(draw, 0, 40)
    return [np.asarray(rng.standard_normal(n), dt), np.asarray(rng.standard_normal(n), dt)], []


def any_shape(draw, max_nd=3):
    return tuple(dim(draw) for _ in range(draw(st.integers(0, max_nd))))


def case_scale(draw, dt, rng):
    shape = any_shape(draw)
    out, beta = out_and_beta(draw, shape, dt, rng)
    return [np.asarray(rng.standard_normal(shape), dt), draw(st.sampled_from([-1.0, 0.0, 2.5])),
            out, beta], [2] if out is not None else []


def case_linear(draw, dt, rng):
    n, k, m = dim(draw), dim(draw), dim(draw)
    b = np.asarray(rng.standard_normal(m), dt) if draw(st.booleans()) else None
    return [np.asarray(rng.standard_normal((n, k)), dt), np.asarray(rng.standard_normal((k, m)), dt),
            b], []


def binary_shapes(draw):
    n, m = dim(draw), dim(draw)
    return draw(st.sampled_from([
        ((n, m), (n, m)), ((n, m), (m,)), ((m,), (n, m)), ((n, m), ()), ((), (n, m)),
        ((n, m), (1,)), ((1,), (n,)), ((n, 1), (1, m)), ((n, m, 2), (m, 2)), ((), ()),
        ((n, m, 2), (n, m, 2)), ((1, m), (n, m)),
    ]))


def case_binary(draw, dt, rng):
    sx, sy = binary_shapes(draw)
    return [np.asarray(rng.standard_normal(sx), dt), np.asarray(rng.standard_normal(sy), dt)], []


def case_add_bias(draw, dt, rng):
    n, m = dim(draw), dim(draw)
    return [np.asarray(rng.standard_normal((n, m)), dt), np.asarray(rng.standard_normal(m), dt)], []


def case_reduce_sum(draw, dt, rng):
    shape = any_shape(draw)
    nd = len(shape)
    axes = [None] + list(range(-nd, nd)) + ([(0, 1), (1, 0)] if nd >= 2 else []) + (
        [tuple(range(nd))] if nd else [])
    return [np.asarray(rng.standard_normal(shape), dt), draw(st.sampled_from(axes)),
            draw(st.booleans())], []


def case_unbroadcast(draw, dt, rng):
    n, m = dim(draw), dim(draw)
    dshape, shape = draw(st.sampled_from([
        ((n, m), (n, m)), ((n, m), (m,)), ((n, m), (1, m)), ((n, m), (n, 1)), ((n, m), (1,)),
        ((n, m), ()), ((n, m), (1, 1)), ((n,), (1,)), ((2, n, m), (n, m)), ((2, n, m), (1, m)),
        ((2, n, m), (2, 1, m)), ((), ()),
    ]))
    out, beta = out_and_beta(draw, shape, dt, rng)
    return [np.asarray(rng.standard_normal(dshape), dt), shape, out, beta], \
        [2] if out is not None else []


def case_backprop_bias(draw, dt, rng):
    n, m = dim(draw), dim(draw)
    out, beta = out_and_beta(draw, (m,), dt, rng)
    return [np.asarray(rng.standard_normal((n, m)), dt), out, beta], [1] if out is not None else []


def case_backprop_mul(draw, dt, rng):
    shape = any_shape(draw)
    out, beta = out_and_beta(draw, shape, dt, rng)
    return [np.asarray(rng.standard_normal(shape), dt), np.asarray(rng.standard_normal(shape), dt),
            out, beta], [2] if out is not None else []


def case_act(draw, dt, rng):
    return [np.asarray(rng.standard_normal(any_shape(draw)) * 10, dt)], []


def _backprop_act_case(act):
    def case(draw, dt, rng):
        shape = any_shape(draw)
        Y = np.asarray(getattr(NP, act)(np.asarray(rng.standard_normal(shape) * 3, dt)))
        out, beta = out_and_beta(draw, shape, dt, rng)
        return [np.asarray(rng.standard_normal(shape), dt), Y, out, beta], \
            [2] if out is not None else []
    return case


def case_backprop_act(draw, dt, rng):
    act = draw(st.sampled_from(["identity", "tanh", "sigmoid", "relu"]))
    shape = any_shape(draw)
    Z = np.asarray(rng.standard_normal(shape) * 3, dt)
    Y = Z if act == "identity" else np.asarray(getattr(NP, act)(Z))
    out, beta = out_and_beta(draw, shape, dt, rng)
    return [np.asarray(rng.standard_normal(shape), dt), Y, act, out, beta], \
        [3] if out is not None else []


def case_bias_act(draw, dt, rng):
    act = draw(st.sampled_from(["identity", "tanh", "sigmoid", "relu"]))
    n, m = dim(draw), dim(draw)
    b = np.asarray(rng.standard_normal(m), dt) if draw(st.booleans()) else None
    return [np.asarray(rng.standard_normal((n, m)) * 3, dt), b, act], []


def ids_array(draw, rng, V, shape):
    it = draw(st.sampled_from(INT_DTYPES))
    hi = min(V, np.iinfo(it).max + 1)
    return rng.integers(0, max(hi, 1), size=shape).astype(it) if hi else np.zeros(shape, it)


def case_embedding(draw, dt, rng):
    V, d = dim(draw, 1, 6), dim(draw)
    shape = draw(st.sampled_from([(dim(draw, 1), dim(draw, 1, 4)), (dim(draw, 1),)]))
    return [np.asarray(rng.standard_normal((V, d)), dt), ids_array(draw, rng, V, shape)], []


def case_scatter_add_rows(draw, dt, rng):
    V, d = dim(draw, 1, 6), dim(draw)
    shape = draw(st.sampled_from([(dim(draw), dim(draw, 1, 3)), (dim(draw, 0, 12),)]))
    rows = ids_array(draw, rng, V, shape)
    vshape = shape + (d,)  # (n, d) for 1-D rows, (B, w, d) for 2-D rows (numpy's add.at)
    return [np.asarray(rng.standard_normal((V, d)), dt), rows,
            np.asarray(rng.standard_normal(vshape), dt), draw(st.sampled_from([1.0, -0.5]))], [0]


def case_coalesce_rows(draw, dt, rng):
    V, d = dim(draw, 1, 6), dim(draw)
    rows = ids_array(draw, rng, V, (dim(draw, 0, 12),))
    return [rows, np.asarray(rng.standard_normal((rows.size, d)), dt)], []


def case_softmax_xent(draw, dt, rng):
    n, C = dim(draw), dim(draw, 1, 6)
    return [np.asarray(rng.standard_normal((n, C)) * 5, dt), ids_array(draw, rng, C, (n,))], []


def case_backprop_softmax_xent(draw, dt, rng):
    n, C = dim(draw), dim(draw, 1, 6)
    P = NP.softmax_cross_entropy(np.asarray(rng.standard_normal((n, C)), dt),
                                 np.zeros(n, np.int64))[1]
    out, beta = out_and_beta(draw, (n, C), dt, rng)
    return [P, ids_array(draw, rng, C, (n,)), draw(st.sampled_from([1.0, 0.5, -2.0])),
            out, beta], [3] if out is not None else []


def case_sigmoid_bce(draw, dt, rng):
    shape = any_shape(draw)
    return [np.asarray(rng.standard_normal(shape) * 5, dt), np.asarray(rng.random(shape), dt)], []


def case_backprop_sigmoid_bce(draw, dt, rng):
    shape = any_shape(draw)
    out, beta = out_and_beta(draw, shape, dt, rng)
    return [np.asarray(rng.random(shape), dt), np.asarray(rng.random(shape), dt),
            draw(st.sampled_from([1.0, 3.0])), out, beta], [3] if out is not None else []


def case_sgd_update(draw, dt, rng):
    shape = any_shape(draw)
    return [np.asarray(rng.standard_normal(shape), dt), np.asarray(rng.standard_normal(shape), dt),
            0.1], [0]


def case_sgd_update_rows(draw, dt, rng):
    args, _ = case_scatter_add_rows(draw, dt, rng)
    return args[:3] + [0.1], [0]


def case_adam_update(draw, dt, rng):
    shape = any_shape(draw)
    W, g = np.asarray(rng.standard_normal(shape), dt), np.asarray(rng.standard_normal(shape), dt)
    m, v = np.asarray(rng.standard_normal(shape), dt), np.asarray(rng.random(shape), dt)
    return [W, g, m, v, 1e-2, 0.9, 0.999, 1e-8, draw(st.integers(1, 5))], [0, 2, 3]


def case_adam_update_rows(draw, dt, rng):
    args, _ = case_scatter_add_rows(draw, dt, rng)
    W, rows, values = args[:3]
    values = values.reshape(rows.size, W.shape[1])  # the reference takes (n, d) values
    m, v = np.asarray(rng.standard_normal(W.shape), dt), np.asarray(rng.random(W.shape), dt)
    return [W, rows, values, m, v, 1e-2, 0.9, 0.999, 1e-8, draw(st.integers(1, 5))], [0, 3, 4]


CASES = {
    "gemm": case_gemm, "gemv": case_gemv, "ger": case_ger, "dot": case_dot,
    "scale": case_scale, "linear": case_linear, "add": case_binary, "sub": case_binary,
    "mul": case_binary, "add_bias": case_add_bias, "reduce_sum": case_reduce_sum,
    "unbroadcast": case_unbroadcast, "backprop_bias": case_backprop_bias,
    "backprop_mul": case_backprop_mul, "tanh": case_act, "sigmoid": case_act, "relu": case_act,
    "backprop_tanh": _backprop_act_case("tanh"),
    "backprop_sigmoid": _backprop_act_case("sigmoid"),
    "backprop_relu": _backprop_act_case("relu"), "backprop_act": case_backprop_act,
    "bias_act": case_bias_act, "embedding": case_embedding,
    "scatter_add_rows": case_scatter_add_rows, "coalesce_rows": case_coalesce_rows,
    "softmax_cross_entropy": case_softmax_xent,
    "backprop_softmax_cross_entropy": case_backprop_softmax_xent,
    "sigmoid_bce": case_sigmoid_bce, "backprop_sigmoid_bce": case_backprop_sigmoid_bce,
    "sgd_update": case_sgd_update, "sgd_update_rows": case_sgd_update_rows,
    "adam_update": case_adam_update, "adam_update_rows": case_adam_update_rows,
}


# --- reductions (issue 7) --------------------------------------------------------------
def _red_x(draw, dt, rng, nonempty_axis=False):
    """(X, axis) with X of any shape (ties sometimes), axis None or any valid int."""
    shape = tuple(dim(draw, 1 if nonempty_axis else 0) for _ in range(draw(st.integers(0, 3))))
    axis = draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
    if draw(st.booleans()):
        X = np.asarray(rng.integers(-2, 3, shape), dt)   # ties at the maximum
    else:
        X = np.asarray(rng.standard_normal(shape), dt)
    return X, axis


def case_expand(draw, dt, rng):
    shape = any_shape(draw)
    lead = draw(st.integers(0, len(shape)))
    sy = tuple(1 if draw(st.booleans()) else n for n in shape[lead:])
    out, beta = out_and_beta(draw, shape, dt, rng)
    return [np.asarray(rng.standard_normal(sy), dt), shape, out, beta], \
        [2] if out is not None else []


def case_reduce_max(draw, dt, rng):
    X, axis = _red_x(draw, dt, rng, nonempty_axis=True)
    return [X, axis, draw(st.booleans())], []


def case_logsumexp(draw, dt, rng):
    X, axis = _red_x(draw, dt, rng)
    return [X, axis, draw(st.booleans())], []


def _case_reduced_bwd(fwd, nonempty):
    def case(draw, dt, rng):
        X, axis = _red_x(draw, dt, rng, nonempty_axis=nonempty)
        keepdims = draw(st.booleans())
        Y = getattr(NP, fwd)(X, axis, keepdims)
        out, beta = out_and_beta(draw, X.shape, dt, rng)
        return [np.asarray(rng.standard_normal(Y.shape), dt), X, Y, axis, keepdims, out,
                beta], [5] if out is not None else []
    return case


def case_softmax_fwd(draw, dt, rng):
    X, axis = _red_x(draw, dt, rng)
    return [X, axis], []


def _case_softmax_bwd(fwd):
    def case(draw, dt, rng):
        X, axis = _red_x(draw, dt, rng)
        Y = getattr(NP, fwd)(X, axis)
        out, beta = out_and_beta(draw, X.shape, dt, rng)
        return [np.asarray(rng.standard_normal(X.shape), dt), Y, axis, out, beta], \
            [3] if out is not None else []
    return case


CASES.update({
    "expand": case_expand, "reduce_max": case_reduce_max, "logsumexp": case_logsumexp,
    "backprop_reduce_max": _case_reduced_bwd("reduce_max", True),
    "backprop_logsumexp": _case_reduced_bwd("logsumexp", False),
    "softmax": case_softmax_fwd, "log_softmax": case_softmax_fwd,
    "backprop_softmax": _case_softmax_bwd("softmax"),
    "backprop_log_softmax": _case_softmax_bwd("log_softmax"),
})


# --- indexing (issue 7) ------------------------------------------------------------
def _ix_index(draw, rng, sizes):
    """A tuple of index arrays for axes of the given sizes, broadcasting together
    (a common shape, or (n, 1) against (m,)), any integer dtype, negative ids too."""
    k = len(sizes)
    n, m = dim(draw), dim(draw, 1, 4)
    pattern = draw(st.sampled_from(["same", "outer"] if k > 1 else ["same"]))
    out = []
    for j, d in enumerate(sizes):
        shape = (n,) if pattern == "same" else ((n, 1) if j == 0 else (m,))
        ids = ids_array(draw, rng, d, shape)
        if ids.dtype.kind == "i" and ids.size and draw(st.booleans()):
            ids = (ids.astype(np.int64) - d).astype(ids.dtype)   # the same ids, wrapped
        out.append(ids)
    return tuple(out)


def case_copy_into(draw, dt, rng):
    shape = any_shape(draw)
    out, beta = out_and_beta(draw, shape, dt, rng)
    if out is None:
        out = np.zeros(shape, dt)
    return [np.asarray(rng.standard_normal(shape), dt), out, beta], [1]


def case_gather(draw, dt, rng):
    shape = tuple(dim(draw, 1, 5) for _ in range(draw(st.integers(1, 3))))
    k = draw(st.integers(1, len(shape)))
    index = _ix_index(draw, rng, shape[:k])
    X = np.asarray(rng.standard_normal(shape), dt)
    if draw(st.booleans()):
        return [X, index], []
    out = np.full(np.broadcast_shapes(*(i.shape for i in index)) + shape[k:], np.nan, dt)
    return [X, index, out], [2]


def case_backprop_gather(draw, dt, rng):
    shape = tuple(dim(draw, 1, 5) for _ in range(draw(st.integers(1, 3))))
    k = draw(st.integers(1, len(shape)))
    index = _ix_index(draw, rng, shape[:k])
    dshape = np.broadcast_shapes(*(i.shape for i in index)) + shape[k:]
    out, beta = out_and_beta(draw, shape, dt, rng)
    return ([np.asarray(rng.standard_normal(dshape), dt), index, shape, out, beta],
            [3] if out is not None else [])


def case_concatenate(draw, dt, rng):
    nd = draw(st.integers(1, 3))
    axis = draw(st.integers(-nd, nd - 1))
    base = [dim(draw) for _ in range(nd)]
    arrays = []
    for _ in range(draw(st.integers(1, 4))):
        shape = list(base)
        shape[axis] = dim(draw)
        a = np.asarray(rng.standard_normal(shape), dt)
        arrays.append(relayout(a, draw(st.sampled_from(LAYOUTS))))
    return [arrays, axis], []


CASES.update({
    "copy_into": case_copy_into, "gather": case_gather,
    "backprop_gather": case_backprop_gather, "concatenate": case_concatenate,
})

# --- elementwise (issue 7): the new broadcasting / unary ops and their gradients
def ew_shapes(draw):
    sx, sy = binary_shapes(draw)
    return draw(st.sampled_from([(sx, sy), (sx, sy), ((2, 1, dim(draw)), (dim(draw), 1)),
                                 ((dim(draw), 1, 3), (1, dim(draw), 1))]))


def _away(rng, shape, dt):
    return np.asarray(rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], size=shape), dt)


def _ties(rng, shape, dt):
    return np.asarray(np.round(rng.standard_normal(shape) * 2), dt)


def case_ew_binary(op):
    def case(draw, dt, rng):
        sx, sy = ew_shapes(draw)
        pick = op in ("maximum", "minimum")
        X = _ties(rng, sx, dt) if pick else np.asarray(rng.standard_normal(sx), dt)
        Y = _away(rng, sy, dt) if op == "div" else (
            _ties(rng, sy, dt) if pick else np.asarray(rng.standard_normal(sy), dt))
        if draw(st.booleans()):
            return [X, Y], []
        return [X, Y, np.full(np.broadcast_shapes(sx, sy), np.nan, dt)], [2]
    return case


def case_ew_backprop_binary(op):
    def case(draw, dt, rng):
        sx, sy = ew_shapes(draw)
        shape = np.broadcast_shapes(sx, sy)
        if op == "div":
            X, Y = np.asarray(rng.standard_normal(sx), dt), _away(rng, sy, dt)
        else:
            X, Y = _ties(rng, sx, dt), _ties(rng, sy, dt)
        out, beta = out_and_beta(draw, shape, dt, rng)
        return [np.asarray(rng.standard_normal(shape), dt), X, Y, draw(st.sampled_from([0, 1])),
                out, beta], [4] if out is not None else []
    return case


def case_ew_backprop_mul(draw, dt, rng):
    sx, sy = ew_shapes(draw)
    shape = np.broadcast_shapes(sx, sy)
    out, beta = out_and_beta(draw, shape, dt, rng)
    return [np.asarray(rng.standard_normal(shape), dt), np.asarray(rng.standard_normal(sy), dt),
            out, beta], [2] if out is not None else []


def case_ew_unary(op):
    def case(draw, dt, rng):
        shape = any_shape(draw)
        X = rng.standard_normal(shape) * 3
        if op in ("log", "sqrt", "power"):
            X = np.abs(X) + 0.1
        args = [np.asarray(X, dt)]
        if op == "power":
            args.append(draw(st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, -1.0, 2.5, -0.5])))
        if draw(st.booleans()):
            return args, []
        return args + [np.full(shape, np.nan, dt)], [len(args)]
    return case


def case_ew_backprop_unary(op):
    def case(draw, dt, rng):
        shape = any_shape(draw)
        S = np.asarray(np.abs(rng.standard_normal(shape)) + 0.2, dt)
        args = [np.asarray(rng.standard_normal(shape), dt), S]
        if op == "power":
            args.append(draw(st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, -1.0, 2.5, -0.5])))
        out, beta = out_and_beta(draw, shape, dt, rng)
        return args + [out, beta], [len(args)] if out is not None else []
    return case


def case_ew_scale_by(draw, dt, rng):
    shape = any_shape(draw)
    out, beta = out_and_beta(draw, shape, dt, rng)
    s = np.asarray(rng.standard_normal(draw(st.sampled_from([(), (1,), (1, 1)]))), dt)
    return [np.asarray(rng.standard_normal(shape), dt), s, out, beta], \
        [2] if out is not None else []


CASES.update({
    "div": case_ew_binary("div"), "maximum": case_ew_binary("maximum"),
    "minimum": case_ew_binary("minimum"),
    "backprop_div": case_ew_backprop_binary("div"),
    "backprop_maximum": case_ew_backprop_binary("maximum"),
    "backprop_minimum": case_ew_backprop_binary("minimum"),
    "exp": case_ew_unary("exp"), "log": case_ew_unary("log"), "sqrt": case_ew_unary("sqrt"),
    "power": case_ew_unary("power"),
    "backprop_exp": case_ew_backprop_unary("exp"), "backprop_log": case_ew_backprop_unary("log"),
    "backprop_sqrt": case_ew_backprop_unary("sqrt"),
    "backprop_power": case_ew_backprop_unary("power"), "scale_by": case_ew_scale_by,
})


# --- counter-based generator: the state (2,) uint64 [key, counter] is written in place
def _gen_state(draw):
    return np.array([draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**64 - 1))],
                    np.uint64)


def case_dropout_forward(draw, dt, rng):
    shape = any_shape(draw)
    rate = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    return [np.asarray(rng.standard_normal(shape), dt), _gen_state(draw), rate], [1]


def case_dropout_mask_gen(draw, dt, rng):
    shape = any_shape(draw)
    rate = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    return [_gen_state(draw), shape, rate, np.dtype(dt)], [0]


CASES.update({"dropout_forward": case_dropout_forward,
              "dropout_mask_gen": case_dropout_mask_gen})
# ops whose in-place argument is a generator state, not a returned out array
_RETURNS_NEW = ("scatter_add_rows", "dropout_forward", "dropout_mask_gen")
# the broadcast-generalised ops, on the new patterns too (the old cases stay in the draw)
for _op in ("add", "sub", "mul"):
    CASES[_op] = (lambda old, new: lambda draw, dt, rng: (
        old if draw(st.booleans()) else new)(draw, dt, rng))(CASES[_op], case_ew_binary(_op))
CASES["backprop_mul"] = (lambda old, new: lambda draw, dt, rng: (
    old if draw(st.booleans()) else new)(draw, dt, rng))(CASES["backprop_mul"],
                                                        case_ew_backprop_mul)

def test_every_kernel_op_has_a_property_test():
    """Every op the compiled backend defines (beyond the reference's dropout_mask, which
    has its own test) is in CASES: a new kernel cannot skip the boundary tests."""
    ops = {n for n in dir(CythonOps) if not n.startswith("_") and callable(getattr(CY, n))}
    assert ops - set(CASES) == {"dropout_mask"}


@pytest.mark.parametrize("op", sorted(CASES))
@given(data=st.data())
@PROPS
def test_kernel_matches_reference_for_any_layout(op, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    args, inplace = CASES[op](data.draw, dtype, rng)
    ref_args = [np.array(a, order="C") if isinstance(a, np.ndarray) else a
                for a in args]
    cy_args, originals = [], {}
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and i not in inplace:
            kind = data.draw(st.sampled_from(LAYOUTS), label=f"layout of arg {i}")
            a = relayout(a, kind)
            originals[i] = a.copy()
        elif isinstance(a, np.ndarray):
            a = a.copy()
        cy_args.append(a)
    ref = getattr(NP, op)(*ref_args)
    got = getattr(CY, op)(*cy_args)
    if isinstance(ref, tuple):
        for g, r in zip(got, ref):
            assert_close(g, r, dtype, op)
    elif ref is not None:
        assert_close(got, ref, dtype, op)
    for i in inplace:  # in-place results (out, parameters, optimiser state)
        assert_close(cy_args[i], ref_args[i], dtype, f"{op}: argument {i} after the call")
    if inplace and ref is not None and args[inplace[0]] is not None and op not in _RETURNS_NEW:
        assert got is cy_args[inplace[0]]  # the out array is returned, no copy
    for i, orig in originals.items():  # inputs are never written
        np.testing.assert_array_equal(cy_args[i], orig, err_msg=f"{op}: input {i} modified")


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.tuples(st.integers(0, 6), st.integers(0, 6)), rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
       seed=st.integers(0, 1000))
@PROPS
def test_dropout_mask_matches_reference(dtype, shape, rate, seed):
    a = CY.dropout_mask(shape, rate, np.random.default_rng(seed), np.dtype(dtype))
    b = NP.dropout_mask(shape, rate, np.random.default_rng(seed), np.dtype(dtype))
    assert a.dtype == b.dtype == dtype
    np.testing.assert_array_equal(a, b)


# =========================================================================== bad input
def sample_calls(dt=np.float64):
    """One valid call per kernel: name -> (args, index of the array the kernel writes or
    None)."""
    r = np.random.default_rng(0)

    def f(*shape):
        return r.standard_normal(shape).astype(dt)

    ids = np.array([[0, 3], [2, 1]])
    return {
        "gemm": ([f(2, 3), f(3, 4), np.zeros((2, 4), dt), False, False, 1.0], 2),
        "gemv": ([f(2, 3), f(3), np.zeros(2, dt), False, 1.0], 2),
        "ger": ([f(2), f(3), np.zeros((2, 3), dt), 1.0], 2),
        "dot": ([f(3), f(3)], None),
        "scale": ([f(2, 3), 2.0, np.zeros((2, 3), dt), 1.0], 2),
        "linear": ([f(2, 3), f(3, 4), f(4)], None),
        "add": ([f(2, 3), f(2, 3)], None),
        "sub": ([f(2, 3), f(3)], None),
        "mul": ([f(2, 3), f(2, 3)], None),
        "add_bias": ([f(2, 3), f(3)], None),
        "reduce_sum": ([f(2, 3), 0], None),
        "unbroadcast": ([f(2, 3), (3,), np.zeros(3, dt), 1.0], 2),
        "backprop_bias": ([f(2, 3), np.zeros(3, dt), 1.0], 1),
        "backprop_mul": ([f(2, 3), f(2, 3), np.zeros((2, 3), dt), 1.0], 2),
        "tanh": ([f(2, 3)], None),
        "sigmoid": ([f(2, 3)], None),
        "relu": ([f(2, 3)], None),
        "backprop_tanh": ([f(2, 3), f(2, 3), np.zeros((2, 3), dt), 1.0], 2),
        "backprop_sigmoid": ([f(2, 3), f(2, 3), np.zeros((2, 3), dt), 1.0], 2),
        "backprop_relu": ([f(2, 3), f(2, 3), np.zeros((2, 3), dt), 1.0], 2),
        "backprop_act": ([f(2, 3), f(2, 3), "tanh", np.zeros((2, 3), dt), 1.0], 3),
        "bias_act": ([f(2, 3), f(3), "relu"], None),
        "embedding": ([f(5, 3), ids], None),
        "scatter_add_rows": ([np.zeros((5, 3), dt), ids, f(4, 3), 1.0], 0),
        "coalesce_rows": ([ids.reshape(-1), f(4, 3)], None),
        "softmax_cross_entropy": ([f(4, 3), np.array([0, 2, 1, 1])], None),
        "backprop_softmax_cross_entropy": ([np.full((4, 3), 1 / 3, dt), np.array([0, 2, 1, 1]),
                                            1.0, np.zeros((4, 3), dt), 1.0], 3),
        "sigmoid_bce": ([f(2, 3), np.full((2, 3), 0.5, dt)], None),
        "backprop_sigmoid_bce": ([np.full((2, 3), 0.5, dt), np.ones((2, 3), dt), 1.0,
                                  np.zeros((2, 3), dt), 1.0], 3),
        "sgd_update": ([f(2, 3), f(2, 3), 0.1], 0),
        "sgd_update_rows": ([f(5, 3), ids, f(2, 2, 3), 0.1], 0),
        "adam_update": ([f(2, 3), f(2, 3), np.zeros((2, 3), dt), np.zeros((2, 3), dt), 1e-3,
                         0.9, 0.999, 1e-8, 1], 0),
        "adam_update_rows": ([f(5, 3), ids, f(4, 3), np.zeros((5, 3), dt),
                              np.zeros((5, 3), dt), 1e-3, 0.9, 0.999, 1e-8, 1], 0),
        # --- indexing (issue 7); copy_into writes a view of any strides (no w)
        "copy_into": ([f(2, 3), np.zeros((2, 3), dt), 1.0], None),
        "gather": ([f(5, 3), (ids,), np.zeros((2, 2, 3), dt)], 2),
        "backprop_gather": ([f(2, 2, 3), (ids,), (5, 3), np.zeros((5, 3), dt), 1.0], 3),
        "concatenate": ([[f(2, 3), f(1, 3)], 0, np.zeros((3, 3), dt)], 2),

        # --- elementwise (issue 7)
        "div": ([f(2, 3), np.abs(f(3)) + 1, np.zeros((2, 3), dt)], 2),
        "maximum": ([f(2, 3), f(3), np.zeros((2, 3), dt)], 2),
        "minimum": ([f(2, 1), f(3), np.zeros((2, 3), dt)], 2),
        "backprop_div": ([f(2, 3), f(2, 3), np.abs(f(3)) + 1, 1, np.zeros((2, 3), dt), 1.0], 4),
        "backprop_maximum": ([f(2, 3), f(2, 3), f(3), 0, np.zeros((2, 3), dt), 1.0], 4),
        "backprop_minimum": ([f(2, 3), f(2, 3), f(1), 1, np.zeros((2, 3), dt), 1.0], 4),
        "exp": ([f(2, 3), np.zeros((2, 3), dt)], 1),
        "log": ([np.abs(f(2, 3)) + 1, np.zeros((2, 3), dt)], 1),
        "sqrt": ([np.abs(f(2, 3)) + 1, np.zeros((2, 3), dt)], 1),
        "power": ([np.abs(f(2, 3)) + 1, 2.5, np.zeros((2, 3), dt)], 2),
        "backprop_exp": ([f(2, 3), f(2, 3), np.zeros((2, 3), dt), 1.0], 2),
        "backprop_log": ([f(2, 3), np.abs(f(2, 3)) + 1, np.zeros((2, 3), dt), 1.0], 2),
        "backprop_sqrt": ([f(2, 3), np.abs(f(2, 3)) + 1, np.zeros((2, 3), dt), 1.0], 2),
        "backprop_power": ([f(2, 3), np.abs(f(2, 3)) + 1, 2.5, np.zeros((2, 3), dt), 1.0], 3),
        "scale_by": ([f(2, 3), f(1), np.zeros((2, 3), dt), 1.0], 2),

        # --- counter-based generator: the state is the written array
        "dropout_forward": ([f(2, 3), np.array([5, 9], np.uint64), 0.5], 1),
        "dropout_mask_gen": ([np.array([5, 9], np.uint64), (2, 3), 0.5, dt], 0),
    }


# --- reductions (issue 7): one valid call of each reductions kernel
_sample_calls_before_reductions = sample_calls


def sample_calls(dt=np.float64):  # noqa: F811
    calls = _sample_calls_before_reductions(dt)
    r = np.random.default_rng(0)

    def f(*shape):
        return r.standard_normal(shape).astype(dt)
    X = f(2, 3)
    calls.update({
        "expand": ([f(3), (2, 3), np.zeros((2, 3), dt), 1.0], 2),
        "reduce_max": ([f(2, 3), 1], None),
        "backprop_reduce_max": ([f(2), X, X.max(1), 1, False, np.zeros((2, 3), dt), 1.0], 5),
        "logsumexp": ([f(2, 3), -1], None),
        "backprop_logsumexp": ([f(2), X, f(2), -1, False, np.zeros((2, 3), dt), 1.0], 5),
        "softmax": ([f(2, 3), -1], None),
        "log_softmax": ([f(2, 3), -1], None),
        "backprop_softmax": ([f(2, 3), f(2, 3), -1, np.zeros((2, 3), dt), 1.0], 3),
        "backprop_log_softmax": ([f(2, 3), f(2, 3), -1, np.zeros((2, 3), dt), 1.0], 3),
    })
    return calls


def test_sample_calls_are_valid():
    calls = sample_calls()
    assert set(calls) == set(CASES)
    for name, (args, _) in calls.items():
        getattr(CY, name)(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])


def _float_positions(args):
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


def _snapshot(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _unchanged(args, snap):
    for a, s in zip(args, snap):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, s)


BAD_FLOAT_DTYPES = [np.int64, np.int32, np.float16, np.complex128, np.bool_, object,
                    np.longdouble, "datetime64[s]"]


@pytest.mark.parametrize("op", sorted(CASES))
@pytest.mark.parametrize("bad", BAD_FLOAT_DTYPES, ids=str)
def test_non_float_arrays_raise_type_error(op, bad):
    args, _ = sample_calls()[op]
    for i in _float_positions(args):
        call = _snapshot(args)
        call[i] = args[i].astype(bad) if bad != "datetime64[s]" else args[i].astype(np.int64).astype(bad)
        before = _snapshot(call)
        with pytest.raises(TypeError):
            getattr(CY, op)(*call)
        _unchanged(call, before)


@pytest.mark.parametrize("op", sorted(CASES))
def test_mixed_precision_raises_type_error_and_writes_nothing(op):
    args, _ = sample_calls(np.float64)[op]
    floats = _float_positions(args)
    if len(floats) < 2:
        pytest.skip("one float operand")
    for i in floats:
        call = _snapshot(args)
        call[i] = args[i].astype(np.float32)
        before = _snapshot(call)
        with pytest.raises(TypeError, match=r"float32|float64|dtype"):
            getattr(CY, op)(*call)
        _unchanged(call, before)


@pytest.mark.parametrize("op", sorted(CASES))
@pytest.mark.parametrize("junk", [None, [[1.0, 2.0]], 3.0, "abc"], ids=["None", "list", "float", "str"])
def test_non_arrays_raise_type_error(op, junk):
    args, _ = sample_calls()[op]
    for i in _float_positions(args):
        call = _snapshot(args)
        call[i] = junk
        try:
            getattr(CY, op)(*call)
        except (TypeError, ValueError):
            pass  # a clear Python exception; never a crash
        else:
            # only None may be accepted, where it means "no bias" / "allocate out"
            assert junk is None, f"{op} accepted {junk!r} for argument {i}"


@pytest.mark.parametrize("op", sorted(n for n, (_, w) in sample_calls().items() if w is not None))
@pytest.mark.parametrize("kind", ["F", "strided", "reversed", "swapped", "misaligned", "readonly"])
def test_written_arrays_must_be_c_contiguous_native_writeable(op, kind):
    """Arrays a kernel writes (out, parameters, optimiser state) are never silently
    copied (the caller would lose the update) nor misread: ValueError, nothing written."""
    args, w = sample_calls()[op]
    call = _snapshot(args)
    target = args[w]
    if kind == "F" and (target.ndim < 2 or target.flags.f_contiguous and target.flags.c_contiguous):
        pytest.skip("Fortran order equals C order for this shape")
    call[w] = relayout(target, kind)
    before = call[w].copy()
    with pytest.raises(ValueError):
        getattr(CY, op)(*call)
    np.testing.assert_array_equal(call[w], before)


@pytest.mark.parametrize("op", sorted(n for n, (a, w) in sample_calls().items()
                                      if w is not None and isinstance(a[-1], float)
                                      and n not in ("sgd_update", "sgd_update_rows",
                                                    "scatter_add_rows", "dropout_forward")))
@pytest.mark.parametrize("beta", [0.5, 2.0, -1.0, float("nan"), float("inf")])
def test_beta_must_be_zero_or_one(op, beta):
    args, w = sample_calls()[op]
    call = _snapshot(args)
    call[-1] = beta
    before = call[w].copy()
    with pytest.raises(ValueError, match="beta"):
        getattr(CY, op)(*call)
    np.testing.assert_array_equal(call[w], before)


@pytest.mark.parametrize("op", ["gemm", "gemv", "ger", "scale", "unbroadcast", "backprop_bias",
                                "backprop_mul", "backprop_tanh", "backprop_act",
                                "backprop_softmax_cross_entropy", "backprop_sigmoid_bce"])
@pytest.mark.parametrize("which", ["shape", "ndim", "dtype"])
def test_bad_out_raises_before_writing(op, which):
    args, w = sample_calls()[op]
    call = _snapshot(args)
    o = call[w]
    call[w] = {"shape": np.zeros(o.shape[:-1] + (o.shape[-1] + 1,), o.dtype),
               "ndim": np.zeros(o.shape + (1,), o.dtype),
               "dtype": np.zeros(o.shape, np.float32)}[which]
    before = call[w].copy()
    with pytest.raises(TypeError if which == "dtype" else ValueError):
        getattr(CY, op)(*call)
    np.testing.assert_array_equal(call[w], before)


SHAPE_ERRORS = {
    "gemm": [(lambda f: [f(2, 3), f(4, 2)]), (lambda f: [f(3), f(3, 2)]),
             (lambda f: [f(2, 3), f(2, 3), None, True, True])],
    "gemv": [(lambda f: [f(2, 3), f(2)]), (lambda f: [f(2, 3), f(3, 1)]),
             (lambda f: [f(2, 3), f(3), None, True])],
    "ger": [(lambda f: [f(2, 1), f(3)])],
    "dot": [(lambda f: [f(2), f(3)]), (lambda f: [f(2, 2), f(2, 2)])],
    "linear": [(lambda f: [f(2, 3), f(4, 2)]), (lambda f: [f(2, 3), f(3, 4), f(3)]),
               (lambda f: [f(3), f(3, 4)]), (lambda f: [f(2, 3), f(3, 4), f(1, 4)])],
    "add": [(lambda f: [f(2, 3), f(2)]), (lambda f: [f(2, 3), f(3, 3)])],
    "add_bias": [(lambda f: [f(2, 3), f(2)]), (lambda f: [f(3), f(3)])],
    "backprop_bias": [(lambda f: [f(3)])],
    "backprop_mul": [(lambda f: [f(2, 3), f(3, 2)])],
    "backprop_tanh": [(lambda f: [f(2, 3), f(6)])],
    "bias_act": [(lambda f: [f(2, 3), f(2), "tanh"]), (lambda f: [f(2, 3), f(3), "softplus"])],
    "backprop_act": [(lambda f: [f(2, 3), f(2, 3), "elu"])],
    "embedding": [(lambda f: [f(5), np.array([0])]), (lambda f: [f(5, 2), np.zeros((1, 1, 1), int)])],
    "scatter_add_rows": [(lambda f: [np.zeros((5, 3)), np.array([0, 1]), f(3, 3), 1.0]),
                         (lambda f: [np.zeros((5, 3)), np.array([0, 1]), f(2, 4), 1.0]),
                         (lambda f: [np.zeros(5), np.array([0, 1]), f(2), 1.0])],
    "coalesce_rows": [(lambda f: [np.array([0, 1]), f(3, 2)]), (lambda f: [np.array([0, 1]), f(2)])],
    "softmax_cross_entropy": [(lambda f: [f(4, 3), np.array([0, 1])]), (lambda f: [f(4), np.array([0])]),
                              (lambda f: [f(4, 3), np.zeros((4, 1), int)]),
                              (lambda f: [f(4, 0), np.zeros(4, int)])],
    "sigmoid_bce": [(lambda f: [f(2, 3), f(3, 2)])],
    "sgd_update": [(lambda f: [f(2, 3), f(3, 2), 0.1])],
    "adam_update": [(lambda f: [f(2, 3), f(2, 3), f(3, 2), f(2, 3), 1e-3, 0.9, 0.999, 1e-8, 1]),
                    (lambda f: [f(2, 3), f(2, 3), f(2, 3), f(2, 3), 1e-3, 0.9, 0.999, 1e-8, 0])],
    "adam_update_rows": [(lambda f: [f(5, 3), np.array([0]), f(1, 3), f(4, 3), f(5, 3), 1e-3, 0.9,
                                     0.999, 1e-8, 1])],
}


@pytest.mark.parametrize("op, i", [(op, i) for op, cs in sorted(SHAPE_ERRORS.items())
                                   for i in range(len(cs))])
def test_wrong_shapes_raise_value_error(op, i):
    r = np.random.default_rng(1)

    def f(*shape):
        return r.standard_normal(shape)

    args = SHAPE_ERRORS[op][i](f)
    before = _snapshot(args)
    with pytest.raises(ValueError):
        getattr(CY, op)(*args)
    _unchanged(args, before)


BAD_IDS = [-1, 5, 6, 2**31, 2**40, -(2**63)]


@pytest.mark.parametrize("op", ["embedding", "scatter_add_rows", "sgd_update_rows",
                                "adam_update_rows"])
@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("where", [0, -1])
@pytest.mark.parametrize("itype", [np.int64, np.int32, np.uint64])
def test_ids_out_of_range_raise_index_error_naming_the_id(op, bad, where, itype):
    """A table of V = 5 rows: any id outside [0, 5) is refused -- first or last
    position, every integer dtype -- and nothing is written."""
    args, w = sample_calls()[op]
    call = _snapshot(args)
    ids = call[1].astype(np.int64)
    ids.reshape(-1)[where] = bad
    if not (np.iinfo(itype).min <= bad <= np.iinfo(itype).max):
        return  # not representable in this dtype
    call[1] = ids.astype(itype)
    before = _snapshot(call)
    with pytest.raises(IndexError, match=str(bad)):
        getattr(CY, op)(*call)
    _unchanged(call, before)


def test_uint64_ids_above_int64_max_raise_index_error():
    ids = np.array([[0, 2**64 - 1]], np.uint64)
    with pytest.raises(IndexError):
        CY.embedding(np.ones((5, 3)), ids)
    with pytest.raises(IndexError):
        NP.embedding(np.ones((5, 3)), ids)


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "backprop_softmax_cross_entropy"])
@pytest.mark.parametrize("bad", [-1, 3, 2**40])
def test_class_ids_out_of_range_raise_value_error(op, bad):
    args, _ = sample_calls()[op]
    call = _snapshot(args)
    call[1] = np.array([0, 2, bad, 1])
    before = _snapshot(call)
    with pytest.raises(ValueError, match=str(bad)):
        getattr(CY, op)(*call)
    _unchanged(call, before)


@pytest.mark.parametrize("op", ["embedding", "scatter_add_rows", "sgd_update_rows",
                                "adam_update_rows", "coalesce_rows", "softmax_cross_entropy",
                                "backprop_softmax_cross_entropy"])
@pytest.mark.parametrize("bad", [np.float64, np.float32, np.bool_, object, "list"], ids=str)
def test_non_integer_ids_raise_type_error(op, bad):
    args, _ = sample_calls()[op]
    call = _snapshot(args)
    pos = 0 if op == "coalesce_rows" else 1
    call[pos] = args[pos].tolist() if bad == "list" else args[pos].astype(bad)
    before = _snapshot(call)
    with pytest.raises(TypeError):
        getattr(CY, op)(*call)
    _unchanged(call, before)


@pytest.mark.parametrize("kind", ["swapped", "misaligned"])
@pytest.mark.parametrize("op", ["tanh", "sigmoid", "relu", "scale"])
def test_zero_d_copied_input_keeps_its_shape(kind, op):
    """(Found by this suite: np.ascontiguousarray made copied 0-d inputs 1-d.)"""
    x = relayout(np.array(0.5), kind)
    out = CY.scale(x, 2.0) if op == "scale" else getattr(CY, op)(x)
    assert out.shape == ()


def test_zero_d_misaligned_tensor_activation_shape():
    t = fb.Tensor(relayout(np.array(0.5), "misaligned"))
    with fb.use_backend("cython"):
        assert fb.tanh(t).shape == ()


def test_out_sharing_memory_with_an_input_is_refused():
    A = np.ones((3, 3))
    with pytest.raises(ValueError, match="shares memory"):
        CY.gemm(A, np.ones((3, 3)), A, False, False, 1.0)
    x = np.ones(4)
    with pytest.raises(ValueError, match="shares memory"):
        CY.gemv(np.ones((4, 4)), x, x, False, 1.0)
    buf = np.ones(12)
    with pytest.raises(ValueError, match="shares memory"):
        CY.ger(buf[3:6], np.ones(3), buf[3:].reshape(3, 3), 1.0)
    W = np.ones((2, 2))
    with pytest.raises(ValueError, match="shares memory"):
        CY.linear(np.ones((2, 2)), W, None, W)


def test_scatter_values_aliasing_the_table_match_reference_or_are_refused():
    """(Found by this suite: values aliasing the table were read after being written.)"""
    E = np.arange(12, dtype=np.float64).reshape(4, 3)
    ref = E.copy()
    NP.scatter_add_rows(ref, np.array([1, 2]), ref[:2].copy(), 1.0)
    try:
        CY.scatter_add_rows(E, np.array([1, 2]), E[:2], 1.0)  # values = rows 0, 1 of E
    except ValueError:
        return
    np.testing.assert_array_equal(E, ref)


def test_reduce_sum_repeated_axis_is_rejected_like_numpy():
    """(Found by this suite: the axis tuple was deduplicated.)"""
    X = np.ones((2, 3))
    with pytest.raises(ValueError):
        NP.reduce_sum(X, (0, 0))
    with pytest.raises(ValueError):
        CY.reduce_sum(X, (0, 0))


@pytest.mark.parametrize("ids_shape", [(0, 3), (0,), (0, 1)])
def test_embedding_of_an_empty_batch_compiled(ids_shape):
    E = np.ones((7, 4), np.float32)
    out = CY.embedding(E, np.zeros(ids_shape, np.int64))
    w = ids_shape[1] if len(ids_shape) == 2 else 1
    assert out.shape == (0, w * 4) and out.dtype == np.float32


@pytest.mark.parametrize("ids_shape", [(0, 3), (0,)])
def test_embedding_of_an_empty_batch_reference(ids_shape):
    out = NP.embedding(np.ones((7, 4)), np.zeros(ids_shape, np.int64))
    assert out.shape == (0, (ids_shape[1] if len(ids_shape) == 2 else 1) * 4)


@pytest.mark.parametrize("name, start", [
    ("cython", "embedding"), ("cython", "dense"), ("numpy", "dense"), ("numpy", "embedding"),
])
def test_empty_batches_everywhere(name, start):
    """B = 0 through a whole training step: shapes right, loss 0, no NaN (0/0)
    anywhere, parameters unchanged."""
    for dt in DTYPES:
        with fb.use_backend(name):
            r = np.random.default_rng(0)
            E = fb.Parameter(r.standard_normal((7, 4)).astype(dt))
            W = fb.Parameter(r.standard_normal((12, 5)).astype(dt))
            b = fb.Parameter(np.zeros(5, dt))
            U = fb.Parameter(r.standard_normal((5, 3)).astype(dt))
            s = fb.Parameter(np.zeros(0, dt))
            before = [p.data.copy() for p in (E, W, b, U)]
            opt = fb.optim.Adam([E, W, b, U])
            if start == "embedding":
                x = fb.embedding(E, np.zeros((0, 3), np.int64))
            else:
                x = fb.Tensor(np.zeros((0, 12), dt))
            h = fb.tanh(fb.linear(x, W, b))
            assert h.shape == (0, 5)
            loss = fb.cross_entropy(h @ U, np.zeros(0, np.int64))
            bce = fb.binary_cross_entropy_with_logits(s, np.zeros(0, dt))
            total = loss + bce + h.sum() + h.mean()
            assert float(total.data) == 0.0 and total.dtype == dt
            total.backward()
            for p in (W, b, U):
                assert p.grad.shape == p.shape and not p.grad.any()
            opt.step()
            for p, old in zip((E, W, b, U), before):
                np.testing.assert_array_equal(p.data, old)


# =========================================================================== gradcheck
@st.composite
def programs(draw):
    """A random differentiable program: a start (dense input or an embedding window),
    a chain of ops -- some re-using a node or a parameter twice -- and a loss."""
    n = draw(st.integers(1, 3))
    m = draw(st.integers(1, 3))
    steps = []
    start = draw(st.sampled_from(["dense", "embedding"]))
    if start == "embedding":
        V, d, w = draw(st.integers(2, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
        ids = draw(st.lists(st.integers(0, V - 1), min_size=n * w, max_size=n * w))
        shapes = [(V, d)]
        steps.append(("embedding", np.array(ids).reshape(n, w)))
        m = w * d
    else:
        shapes = [(n, m)]
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["linear", "linear_nobias", "matmul", "tanh", "sigmoid",
                                   "relu", "add_bias", "add", "sub", "rsub", "mul", "scalar",
                                   "self_mul", "self_add", "neg", "div", "residual",
                                   "sum_keep", "mean0", "shared"]))
        if op in ("linear", "linear_nobias", "matmul"):
            m2 = draw(st.integers(1, 3))
            shapes.append((m, m2))
            if op == "linear":
                shapes.append((m2,))
            steps.append((op, None))
            m = m2
        elif op in ("add_bias",):
            shapes.append((m,))
            steps.append((op, None))
        elif op in ("add", "sub", "rsub", "mul"):
            shapes.append((n, m))
            steps.append((op, None))
        elif op == "sum_keep":
            steps.append((op, None))
            m = 1
        elif op == "mean0":
            steps.append((op, None))  # (1, m) broadcast back by a later add
            shapes.append((n, m))
        elif op == "shared":  # the same weight used twice: h @ S @ S
            shapes.append((m, m))
            steps.append((op, None))
        else:
            steps.append((op, draw(st.floats(-3, 3).filter(lambda v: abs(v) > 0.1))
                          if op in ("scalar", "div") else None))
    loss = draw(st.sampled_from(["sum", "mean", "cross_entropy", "bce"]))
    targets = (np.array(draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)))
               if loss == "cross_entropy" else
               np.array(draw(st.lists(st.sampled_from([0.0, 0.25, 1.0]), min_size=n * m,
                                      max_size=n * m))).reshape(n, m))
    return shapes, steps, loss, targets


def run_program(steps, loss, targets, params):
    it = iter(params)
    h = None
    for op, arg in steps:
        if op == "embedding":
            h = fb.embedding(next(it), arg)
            continue
        if h is None:
            h = next(it)
        if op == "linear":
            h = fb.linear(h, next(it), next(it))
        elif op == "linear_nobias":
            h = fb.linear(h, next(it))
        elif op == "matmul":
            h = h @ next(it)
        elif op in ("tanh", "sigmoid", "relu"):
            h = getattr(fb, op)(h)
        elif op in ("add_bias", "add"):
            h = h + next(it)
        elif op == "sub":
            h = h - next(it)
        elif op == "rsub":
            h = next(it) - h
        elif op == "mul":
            h = h * next(it)
        elif op == "scalar":
            h = arg * h
        elif op == "self_mul":
            h = h * h
        elif op == "self_add":
            h = h + h
        elif op == "neg":
            h = -h
        elif op == "div":
            h = h / arg
        elif op == "residual":
            h = fb.tanh(h) + h
        elif op == "sum_keep":
            h = h.sum(axis=1, keepdims=True)
        elif op == "mean0":
            h = next(it) + h.mean(axis=0, keepdims=True)
        elif op == "shared":
            S = next(it)
            h = (h @ S) @ S
    if h is None:
        h = next(it)
    if loss == "sum":
        return h.sum()
    if loss == "mean":
        return h.mean()
    if loss == "cross_entropy":
        return fb.cross_entropy(h, targets)
    return fb.binary_cross_entropy_with_logits(h, targets.astype(h.dtype))


@given(prog=programs(), seed=st.integers(0, 2**16))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_programs_gradcheck_on_both_backends(prog, seed):
    shapes, steps, loss, targets = prog
    r = np.random.default_rng(seed)
    init = [r.uniform(-1, 1, s) for s in shapes]
    # keep relu kinks away from the finite-difference step
    init = [np.where(np.abs(a) < 1e-3, 0.5, a) for a in init]
    results = {}
    for name in fb.backends.BACKENDS:
        with fb.use_backend(name):
            params = [fb.Parameter(a.copy()) for a in init]
            res = fb.gradcheck(lambda *p: run_program(steps, loss, targets, p), params,
                               eps=1e-6, atol=1e-6, rtol=1e-4, raise_exception=False)
            assert res.passed, (name, steps, loss, res)
            for p in params:
                p.zero_grad()
            out = run_program(steps, loss, targets, params)
            out.backward()
            results[name] = (float(out.data), [np.asarray(p.grad) if p.grad is not None
                                               else np.zeros(p.shape) for p in params])
    (a, ga), (b, gb) = results["cython"], results["numpy"]
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for x, y in zip(ga, gb):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
