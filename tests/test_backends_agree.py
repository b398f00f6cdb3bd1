"""Every op of the compiled backend agrees with the numpy reference.

Each public method of :class:`NumpyOps` has a list of cases below (shapes including
n = 0 and n = 1, transposes, beta 0 and 1, repeated ids, extreme values); every case
runs on both backends, for float32 and float64, on copies of the same arguments, and
the results *and* every array argument afterwards (``out`` buffers, parameters updated
in place) are compared: float64 to ~1e-12, float32 to ~1e-5 (relative, with an absolute
floor scaled by the magnitude of the values).
"""

from __future__ import annotations

import copy
import importlib.machinery
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp_ext._kernels as K
from fastbp.backends.cython_ops import CythonOps
from fastbp.backends.numpy_ops import NumpyOps

CY = CythonOps()
NP = NumpyOps()
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def public_methods(cls):
    return sorted(
        name for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and callable(value) and name != "name"
    )


# ----------------------------------------------------------------------------- cases
# Each builder takes (dtype, rng) and returns a list of (label, args, kwargs).
def _a(rng, shape, dt, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(dt)


def _with_out(label, args, kwargs, out_shape, dt, rng, out_kw="out"):
    """The call with out=None and with an out buffer for beta 0 (garbage in it) and 1."""
    cases = [(label, args, dict(kwargs))]
    garbage = np.full(out_shape, np.nan, dtype=dt)
    cases.append((label + "-out-b0", args, dict(kwargs, **{out_kw: garbage, "beta": 0.0})))
    cases.append((label + "-out-b1", args,
                  dict(kwargs, **{out_kw: _a(rng, out_shape, dt), "beta": 1.0})))
    return cases


def cases_gemm(dt, rng):
    out = []
    for M, Kd, N in [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1), (1, 50, 200), (7, 5, 3),
                     (33, 17, 9)]:
        for ta in (False, True):
            for tb in (False, True):
                A = _a(rng, (Kd, M) if ta else (M, Kd), dt)
                B = _a(rng, (N, Kd) if tb else (Kd, N), dt)
                out += _with_out(f"{M}x{Kd}x{N}-ta{ta:d}-tb{tb:d}", (A, B),
                                 {"trans_a": ta, "trans_b": tb}, (M, N), dt, rng)
    return out


def cases_gemv(dt, rng):
    out = []
    for M, N in [(0, 3), (3, 0), (1, 1), (5, 7), (200, 50)]:
        for tr in (False, True):
            A = _a(rng, (M, N), dt)
            x = _a(rng, (M if tr else N,), dt)
            out += _with_out(f"{M}x{N}-t{tr:d}", (A, x), {"trans": tr}, (N if tr else M,),
                             dt, rng)
    return out


def cases_ger(dt, rng):
    out = []
    for M, N in [(0, 3), (3, 0), (1, 1), (5, 7), (50, 200)]:
        out += _with_out(f"{M}x{N}", (_a(rng, (M,), dt), _a(rng, (N,), dt)), {}, (M, N), dt,
                         rng)
    return out


def cases_dot(dt, rng):
    return [(f"n{n}", (_a(rng, (n,), dt), _a(rng, (n,), dt)), {}) for n in (0, 1, 7, 1000)]


def cases_scale(dt, rng):
    out = []
    for shape in [(), (0,), (5,), (3, 4), (2, 3, 4)]:
        for alpha in (-1.0, 0.5):
            out += _with_out(f"{shape}-a{alpha}", (_a(rng, shape, dt), alpha), {}, shape, dt,
                             rng)
    return out


BINARY_SHAPES = [
    ((3, 4), (3, 4)), ((0, 4), (0, 4)), ((7,), (7,)), ((), ()),
    ((3, 4), (4,)), ((0, 4), (4,)), ((4,), (3, 4)), ((1, 4), (4,)),
    ((3, 4), ()), ((), (3, 4)), ((3, 4), (1,)), ((1,), (3, 4)), ((1, 1), (3, 4)),
    ((5,), ()), ((2, 3, 4), ()),
    # not covered by the kernel: the numpy fallback
    ((3, 1), (1, 4)), ((2, 3, 4), (3, 4)), ((3, 4), (1, 1, 1)), ((3, 1), (3, 4)),
]


def cases_binary(dt, rng):
    return [(f"{sx}+{sy}", (_a(rng, sx, dt), _a(rng, sy, dt)), {}) for sx, sy in BINARY_SHAPES]


def cases_add_bias(dt, rng):
    return [(f"n{n}", (_a(rng, (n, 6), dt), _a(rng, (6,), dt)), {}) for n in (0, 1, 5, 300)]


def cases_reduce_sum(dt, rng):
    out = []
    for shape, axes in [((), [None]), ((5,), [None, 0, -1, (0,)]),
                        ((0,), [None, 0]),
                        ((3, 4), [None, 0, 1, -1, (0,), (1,), (0, 1), (1, 0)]),
                        ((0, 4), [None, 0, 1]), ((1000, 3), [None, 0, 1]),
                        ((2, 3, 4), [None, 0, 1, 2, (0, 2), (0, 1, 2)])]:
        for axis in axes:
            for keepdims in (False, True):
                out.append((f"{shape}-ax{axis}-k{keepdims:d}", (_a(rng, shape, dt),),
                            {"axis": axis, "keepdims": keepdims}))
    return out


def cases_unbroadcast(dt, rng):
    out = []
    for sy, shape in [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (1, 4)), ((3, 4), (3, 1)),
                      ((3, 4), ()), ((3, 4), (1,)), ((3, 4), (1, 1)), ((0, 4), (4,)),
                      ((0, 4), ()), ((500, 7), (7,)), ((6,), ()), ((6,), (6,)),
                      # fallback patterns
                      ((2, 3, 4), (3, 4)), ((2, 3, 4), (4,)), ((2, 3, 4), (2, 1, 4))]:
        out += _with_out(f"{sy}->{shape}", (_a(rng, sy, dt), shape), {}, shape, dt, rng)
    return out


def cases_backprop_bias(dt, rng):
    out = []
    for n, m in [(0, 4), (1, 1), (1, 200), (5, 3), (300, 7)]:
        out += _with_out(f"{n}x{m}", (_a(rng, (n, m), dt),), {}, (m,), dt, rng)
    return out


ELEM_SHAPES = [(0, 3), (1,), (3, 4), (2, 3, 4), (200, 300), (600, 500)]


def _act_y(act, X):
    return getattr(NP, act)(X) if act != "identity" else X.copy()


def cases_backprop(act):
    def build(dt, rng):
        out = []
        for shape in ELEM_SHAPES:
            dY = _a(rng, shape, dt)
            Y = _a(rng, shape, dt, -3, 3) if act == "mul" else _act_y(act, _a(rng, shape, dt))
            if act == "relu" and Y.size:
                Y.reshape(-1)[::5] = 0.0  # exact zeros: the derivative's kink
            out += _with_out(f"{shape}", (dY, Y), {}, shape, dt, rng)
        return out
    return build


def _special(shape, dt, rng):
    X = _a(rng, shape, dt, -5, 5)
    flat = X.reshape(-1)
    specials = [np.nan, np.inf, -np.inf, 1e4, -1e4, 0.0, -0.0, 30.0, -30.0, 1e-30]
    flat[: min(flat.size, len(specials))] = specials[: flat.size]
    return X


def cases_unary(dt, rng):
    return [(f"{shape}", (_special(shape, dt, rng),), {})
            for shape in [(), (0,), (1,), (3, 4), (17,), (2, 3, 4), (200, 100), (300, 700)]]


def cases_dropout_mask(dt, rng):
    return [(f"{shape}-p{p}", (shape, p, np.random.default_rng(7), np.dtype(dt)), {})
            for shape in [(0,), (5,), (40, 30)] for p in (0.0, 0.3, 0.9)]


ACTS = ["identity", "tanh", "sigmoid", "relu"]


def cases_bias_act(dt, rng):
    out = []
    for act in ACTS:
        for n, m in [(0, 4), (1, 1), (5, 7), (300, 200)]:
            X = _special((n, m), dt, rng)
            out.append((f"{act}-{n}x{m}-b", (X, _a(rng, (m,), dt), act), {}))
            out.append((f"{act}-{n}x{m}-nob", (X, None, act), {}))
        out.append((f"{act}-1d-nob", (_special((9,), dt, rng), None, act), {}))
    return out


def cases_backprop_act(dt, rng):
    out = []
    for act in ACTS:
        for shape in [(0, 3), (1, 5), (30, 20)]:
            Y = _act_y(act, _a(rng, shape, dt))
            out += _with_out(f"{act}-{shape}", (_a(rng, shape, dt), Y, act), {}, shape, dt, rng)
    return out


def cases_linear(dt, rng):
    out = []
    for n, k, m in [(0, 3, 4), (1, 1, 1), (1, 250, 200), (4, 0, 3), (16, 50, 9)]:
        X, W, b = _a(rng, (n, k), dt), _a(rng, (k, m), dt), _a(rng, (m,), dt)
        out.append((f"{n}x{k}x{m}-b", (X, W, b), {}))
        out.append((f"{n}x{k}x{m}-nob", (X, W), {}))
        out.append((f"{n}x{k}x{m}-b-out", (X, W, b), {"out": np.full((n, m), np.nan, dt)}))
        out.append((f"{n}x{k}x{m}-nob-out", (X, W, None), {"out": np.full((n, m), np.nan, dt)}))
    return out


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64, np.intp]


def cases_embedding(dt, rng):
    out = []
    E = _a(rng, (20, 6), dt)
    for it in INT_DTYPES:
        out.append((f"{np.dtype(it).name}", (E, rng.integers(0, 20, (4, 5)).astype(it)), {}))
    out.append(("repeated", (E, np.array([[3, 3, 3], [0, 19, 3]])), {}))
    # B = 0 is tested in test_empty_batches (the reference's reshape(0, -1) cannot
    # infer the width of an empty batch)
    out.append(("B1", (E, np.array([[1, 2, 3, 4, 5]], np.int32)), {}))
    out.append(("1d", (E, np.array([5, 1, 5])), {}))
    out.append(("large", (_a(rng, (1000, 50), dt), rng.integers(0, 1000, (2048, 5))), {}))
    return out


def cases_scatter_add_rows(dt, rng):
    out = []
    for it in INT_DTYPES:
        rows = rng.integers(0, 10, 12).astype(it)
        out.append((f"{np.dtype(it).name}", (_a(rng, (10, 4), dt), rows, _a(rng, (12, 4), dt)),
                    {"alpha": -0.1}))
    out.append(("repeated", (_a(rng, (10, 4), dt), np.array([2, 2, 2, 7, 2]),
                             _a(rng, (5, 4), dt)), {}))
    out.append(("empty", (_a(rng, (10, 4), dt), np.zeros(0, np.int64),
                          np.zeros((0, 4), dt)), {}))
    out.append(("2d-rows", (_a(rng, (10, 4), dt), rng.integers(0, 10, (3, 5)),
                            _a(rng, (3, 5, 4), dt)), {"alpha": 2.0}))
    return out


def cases_coalesce_rows(dt, rng):
    out = []
    for it in INT_DTYPES:
        rows = rng.integers(0, 6, 15).astype(it)
        out.append((f"{np.dtype(it).name}", (rows, _a(rng, (15, 3), dt)), {}))
    out.append(("empty", (np.zeros(0, np.int64), np.zeros((0, 3), dt)), {}))
    out.append(("one", (np.array([4]), _a(rng, (1, 3), dt)), {}))
    out.append(("big-ids", (np.array([10**12, 5, 10**12, 5, 7]), _a(rng, (5, 3), dt)), {}))
    out.append(("many", (rng.integers(0, 100_000, 5000), _a(rng, (5000, 8), dt)), {}))
    return out


def _labels(rng, n, C, it=np.int64):
    return rng.integers(0, C, n).astype(it)


def cases_softmax_xent(dt, rng):
    out = []
    for n, C in [(0, 5), (1, 1), (1, 5), (8, 5), (300, 9)]:
        for it in (np.int64, np.int32, np.uint8):
            out.append((f"{n}x{C}-{np.dtype(it).name}",
                        (_a(rng, (n, C), dt, -5, 5), _labels(rng, n, C, it)), {}))
    Z = _a(rng, (6, 4), dt, -1e4, 1e4)
    out.append(("huge-logits", (Z, _labels(rng, 6, 4)), {}))
    return out


def _softmax(Z):
    return NP.softmax_cross_entropy(Z, np.zeros(Z.shape[0], np.int64))[1]


def cases_backprop_softmax_xent(dt, rng):
    out = []
    for n, C in [(0, 5), (1, 5), (8, 5), (300, 9)]:
        for dloss in (1.0, 0.25):
            P = _softmax(_a(rng, (n, C), dt, -3, 3))
            out += _with_out(f"{n}x{C}-d{dloss}", (P, _labels(rng, n, C), dloss), {}, (n, C),
                             dt, rng)
    return out


def cases_sigmoid_bce(dt, rng):
    out = []
    for shape in [(0,), (1,), (7,), (8, 3), (5000,)]:
        out.append((f"{shape}", (_a(rng, shape, dt, -8, 8), _a(rng, shape, dt, 0, 1)), {}))
    S = np.array([1e4, -1e4, 30.0, -30.0, 0.0, 88.0, -88.0, 1e3], dt)
    T = np.array([0.0, 1.0, 0.5, 0.5, 1.0, 0.0, 1.0, 0.3], dt)
    out.append(("extreme", (S, T), {}))
    return out


def cases_backprop_sigmoid_bce(dt, rng):
    out = []
    for shape in [(0,), (1,), (8, 3)]:
        Sig = NP.sigmoid(_a(rng, shape, dt, -5, 5))
        out += _with_out(f"{shape}", (Sig, _a(rng, shape, dt, 0, 1), 0.5), {}, shape, dt, rng)
    return out


def cases_sgd_update(dt, rng):
    return [(f"{shape}", (_a(rng, shape, dt), _a(rng, shape, dt), 0.1), {})
            for shape in [(0,), (1,), (5,), (30, 20), (700, 600)]]


def cases_sgd_update_rows(dt, rng):
    return [
        ("repeated", (_a(rng, (10, 4), dt), np.array([1, 1, 9, 1]), _a(rng, (4, 4), dt), 0.1), {}),
        ("empty", (_a(rng, (10, 4), dt), np.zeros(0, np.int32), np.zeros((0, 4), dt), 0.1), {}),
        ("int32", (_a(rng, (50, 6), dt), rng.integers(0, 50, 30).astype(np.int32),
                   _a(rng, (30, 6), dt), 0.5), {}),
    ]


def _adam_state(rng, shape, dt):
    return _a(rng, shape, dt), _a(rng, shape, dt, -0.1, 0.1), _a(rng, shape, dt, 0, 0.05)


def cases_adam_update(dt, rng):
    out = []
    for shape in [(0,), (1,), (5, 3), (300, 200)]:
        for step in (1, 7):
            W, m, v = _adam_state(rng, shape, dt)
            out.append((f"{shape}-s{step}",
                        (W, _a(rng, shape, dt), m, v, 1e-3, 0.9, 0.999, 1e-8, step), {}))
    return out


def cases_adam_update_rows(dt, rng):
    out = []
    for label, rows in [("repeated", np.array([3, 3, 0, 9, 3])), ("empty", np.zeros(0, np.int64)),
                        ("int32", np.array([1, 2, 8], np.int32))]:
        W, m, v = _adam_state(rng, (10, 4), dt)
        out.append((label, (W, rows, _a(rng, (rows.size, 4), dt), m, v, 1e-2, 0.9, 0.999,
                            1e-8, 3), {}))
    return out


CASES = {
    "gemm": cases_gemm, "gemv": cases_gemv, "ger": cases_ger, "dot": cases_dot,
    "scale": cases_scale, "add": cases_binary, "sub": cases_binary, "mul": cases_binary,
    "add_bias": cases_add_bias, "reduce_sum": cases_reduce_sum,
    "unbroadcast": cases_unbroadcast, "backprop_bias": cases_backprop_bias,
    "backprop_mul": cases_backprop("mul"),
    "tanh": cases_unary, "sigmoid": cases_unary, "relu": cases_unary,
    "backprop_tanh": cases_backprop("tanh"), "backprop_sigmoid": cases_backprop("sigmoid"),
    "backprop_relu": cases_backprop("relu"), "dropout_mask": cases_dropout_mask,
    "bias_act": cases_bias_act, "backprop_act": cases_backprop_act, "linear": cases_linear,
    "embedding": cases_embedding, "scatter_add_rows": cases_scatter_add_rows,
    "coalesce_rows": cases_coalesce_rows,
    "softmax_cross_entropy": cases_softmax_xent,
    "backprop_softmax_cross_entropy": cases_backprop_softmax_xent,
    "sigmoid_bce": cases_sigmoid_bce, "backprop_sigmoid_bce": cases_backprop_sigmoid_bce,
    "sgd_update": cases_sgd_update, "sgd_update_rows": cases_sgd_update_rows,
    "adam_update": cases_adam_update, "adam_update_rows": cases_adam_update_rows,
}


# --- reductions (issue 7) --------------------------------------------------------------
_NAN, _INF = float("nan"), float("inf")
# rows of extreme values: +-1e4, +-inf, NaN, all -inf, ties at the maximum
_EXTREME = [[1e4, -1e4, 0.0, 1.0], [-1e4, -1e4, -1e4, -1e4], [_INF, 1.0, 2.0, 3.0],
            [-_INF, -_INF, -_INF, -_INF], [_NAN, 1.0, 2.0, 3.0], [-_INF, 0.0, 1.0, -_INF],
            [1e4, 1e4, 1e4 - 1, 0.0], [2.0, 2.0, 2.0, 2.0]]
_RED_SHAPES = [((), [None]), ((5,), [None, 0, -1]), ((3, 4), [None, 0, 1, -1]),
               ((2, 3, 4), [None, 0, 1, 2, -2]), ((300, 7), [0, 1]), ((0, 4), [1]),
               ((3, 1), [0, 1])]


def _red_inputs(dt, rng, empty_ok=True):
    """(label, X, axis) over shapes/axes, ties and extreme rows."""
    out = []
    for shape, axes in _RED_SHAPES:
        for axis in axes:
            X = _a(rng, shape, dt)
            n = X.size if axis is None else (shape[axis] if shape else 1)
            if n == 0 and not empty_ok:
                continue
            out.append((f"{shape}-ax{axis}", X, axis))
            if X.size:
                out.append((f"{shape}-ax{axis}-ties", np.array(np.round(X), dt), axis))
    E = np.array(_EXTREME, dt)
    out += [("extreme-ax-1", E, -1), ("extreme-ax0", E.T.copy(), 0),
            ("extreme-3d", np.stack([E, E[::-1]], axis=1), 2)]
    return out


def cases_expand(dt, rng):
    out = []
    for sy, shape in [((), (3, 4)), ((4,), (3, 4)), ((1, 4), (3, 4)), ((3, 1), (3, 4)),
                      ((3, 4), (3, 4)), ((2, 1, 4), (2, 3, 4)), ((1, 3, 1), (2, 3, 4)),
                      ((4,), (2, 3, 4)), ((1,), (0, 4)), ((0, 4), (2, 0, 4)), ((5,), (1, 5)),
                      ((3, 1, 1), (3, 2, 2)), ((), ())]:
        out += _with_out(f"{sy}->{shape}", (_a(rng, sy, dt), shape), {}, shape, dt, rng)
    return out


def cases_reduce_max(dt, rng):
    return [(f"{label}-k{k:d}", (X,), {"axis": axis, "keepdims": k})
            for label, X, axis in _red_inputs(dt, rng, empty_ok=False) for k in (False, True)]


def cases_backprop_reduce_max(dt, rng):
    out = []
    for label, X, axis in _red_inputs(dt, rng, empty_ok=False):
        for k in (False, True):
            Y = NP.reduce_max(X, axis, k)
            out += _with_out(f"{label}-k{k:d}", (_a(rng, Y.shape, dt), X, Y),
                             {"axis": axis, "keepdims": k}, X.shape, dt, rng)
    return out


def cases_logsumexp(dt, rng):
    return [(f"{label}-k{k:d}", (X,), {"axis": axis, "keepdims": k})
            for label, X, axis in _red_inputs(dt, rng) for k in (False, True)]


def cases_backprop_logsumexp(dt, rng):
    out = []
    for label, X, axis in _red_inputs(dt, rng):
        for k in (False, True):
            Y = NP.logsumexp(X, axis, k)
            out += _with_out(f"{label}-k{k:d}", (_a(rng, Y.shape, dt), X, Y),
                             {"axis": axis, "keepdims": k}, X.shape, dt, rng)
    return out


def cases_softmax_fwd(dt, rng):
    out = []
    for label, X, axis in _red_inputs(dt, rng):
        out.append((label, (X,), {"axis": axis}))
        out.append((label + "-out", (X,), {"axis": axis, "out": np.full(X.shape, np.nan, dt)}))
    return out


def cases_softmax_bwd(fwd):
    def build(dt, rng):
        out = []
        for label, X, axis in _red_inputs(dt, rng):
            Y = getattr(NP, fwd)(X, axis)
            out += _with_out(label, (_a(rng, X.shape, dt), Y), {"axis": axis}, X.shape, dt,
                             rng)
        return out
    return build


# --- elementwise (issue 7): the new broadcasting / unary ops and their gradients
EW_SHAPES = BINARY_SHAPES + [((2, 1, 4), (3, 1)), ((3, 1), (2, 1, 4)), ((0, 3), (1, 3)),
                             ((4, 1), (1, 0)), ((2, 3, 1, 5), (3, 4, 1)), ((300, 200), (200,)),
                             ((600, 1), (600, 500))]


def _away(rng, shape, dt):
    """Values in +-[0.5, 2]: safe divisors."""
    return np.asarray(_a(rng, shape, dt, 0.5, 2.0) * rng.choice([-1.0, 1.0], size=shape), dt)


def _ties(rng, shape, dt):
    return np.asarray(np.round(_a(rng, shape, dt, -2, 2)), dt)  # many exact ties


def cases_ew_binary(op):
    def build(dt, rng):
        out = []
        for sx, sy in EW_SHAPES:
            X = _ties(rng, sx, dt) if op in ("maximum", "minimum") else _a(rng, sx, dt)
            Y = _away(rng, sy, dt) if op == "div" else (
                _ties(rng, sy, dt) if op in ("maximum", "minimum") else _a(rng, sy, dt))
            shape = np.broadcast_shapes(sx, sy)
            out.append((f"{sx}+{sy}", (X, Y), {}))
            out.append((f"{sx}+{sy}-out", (X, Y), {"out": np.full(shape, np.nan, dt)}))
        return out
    return build


CASES.update({
    "expand": cases_expand, "reduce_max": cases_reduce_max,
    "backprop_reduce_max": cases_backprop_reduce_max, "logsumexp": cases_logsumexp,
    "backprop_logsumexp": cases_backprop_logsumexp, "softmax": cases_softmax_fwd,
    "backprop_softmax": cases_softmax_bwd("softmax"), "log_softmax": cases_softmax_fwd,
    "backprop_log_softmax": cases_softmax_bwd("log_softmax"),
})


# --- indexing (issue 7) ------------------------------------------------------------
def _ix_ids(rng, d, shape, it=np.int64, neg=True):
    """Ids in [-d, d) (negative ones wrap) of the given dtype; non-negative for unsigned."""
    lo = -d if neg and np.dtype(it).kind == "i" else 0
    return rng.integers(lo, d, shape).astype(it) if d else np.zeros(shape, it)


def cases_copy_into(dt, rng):
    out = []
    for shape in [(0, 3), (), (1,), (7,), (3, 4), (2, 3, 4), (5, 1, 6)]:
        src = _a(rng, shape, dt)
        out.append((f"{shape}-b0", (src, np.full(shape, np.nan, dt)), {"beta": 0.0}))
        out.append((f"{shape}-b1", (src, _a(rng, shape, dt)), {"beta": 1.0}))
    big = _a(rng, (40, 30), dt)
    out.append(("transposed-src", (big.T, _a(rng, (30, 40), dt)), {"beta": 1.0}))
    out.append(("reversed-src", (big[::-1, ::-2], _a(rng, (40, 15), dt)), {}))
    out.append(("large", (_a(rng, (300_000,), dt), _a(rng, (300_000,), dt)), {"beta": 1.0}))
    return out


def cases_gather(dt, rng):
    out = []
    X = _a(rng, (6, 5, 4), dt)
    for it in INT_DTYPES:
        out.append((f"rows-{np.dtype(it).name}", (X, (_ix_ids(rng, 6, (7,), it),)), {}))
    out.append(("pairs", (X[:, :, 0].copy(), (_ix_ids(rng, 6, (9,)), _ix_ids(rng, 5, (9,)))), {}))
    out.append(("k3", (X, (_ix_ids(rng, 6, (2, 3)), _ix_ids(rng, 5, (2, 3)),
                           _ix_ids(rng, 4, (2, 3), np.int32))), {}))
    out.append(("broadcast", (X, (_ix_ids(rng, 6, (4, 1)), _ix_ids(rng, 5, (3,)))), {}))
    out.append(("broadcast-0d", (X, (_ix_ids(rng, 6, ()), _ix_ids(rng, 5, (2, 3)))), {}))
    out.append(("repeated", (X, (np.array([1, 1, 1, -1]),)), {}))
    out.append(("empty", (X, (np.zeros(0, np.int64),)), {}))
    out.append(("empty-axis", (np.zeros((0, 3), dt), (np.zeros((2, 0), np.int32),)), {}))
    out.append(("out", (X, (_ix_ids(rng, 6, (3,)),)),
                {"out": np.full((3, 5, 4), np.nan, dt)}))
    big = _a(rng, (256, 256), dt)
    out.append(("pairs-256", (big, (_ix_ids(rng, 256, 256), _ix_ids(rng, 256, 256))), {}))
    out.append(("rows-large", (_a(rng, (2000, 300), dt), (_ix_ids(rng, 2000, 3000),)), {}))
    return out


def cases_backprop_gather(dt, rng):
    out = []
    for it in INT_DTYPES:
        idx = (_ix_ids(rng, 6, (7,), it),)
        out.append((f"rows-{np.dtype(it).name}", (_a(rng, (7, 5), dt), idx, (6, 5)), {}))
    idx = (np.array([0, 0, 2, -1, 0]), np.array([1, 1, 0, 3, 1]))
    out += _with_out("pairs-repeated", (_a(rng, (5,), dt), idx, (3, 4)), {}, (3, 4), dt, rng)
    idx = (_ix_ids(rng, 3, (4, 1)), _ix_ids(rng, 4, (3,)))
    out += _with_out("broadcast", (_a(rng, (4, 3, 2), dt), idx, (3, 4, 2)), {}, (3, 4, 2), dt, rng)
    idx = (_ix_ids(rng, 3, (2, 2)), _ix_ids(rng, 4, (2, 2)), _ix_ids(rng, 2, (2, 2), np.int32))
    out += _with_out("k3", (_a(rng, (2, 2), dt), idx, (3, 4, 2)), {}, (3, 4, 2), dt, rng)
    out += _with_out("empty", (np.zeros((0, 4), dt), (np.zeros(0, np.int64),), (3, 4)), {},
                     (3, 4), dt, rng)
    out.append(("many", (_a(rng, (5000, 8), dt), (rng.integers(0, 50, 5000),), (50, 8)), {}))
    return out


def cases_concatenate(dt, rng):
    out = []
    a, b, c = _a(rng, (2, 3, 4), dt), _a(rng, (2, 1, 4), dt), _a(rng, (2, 0, 4), dt)
    out.append(("axis0", ([a, a[:1]],), {"axis": 0}))
    out.append(("axis1", ([a, b, c, a],), {"axis": 1}))
    out.append(("axis-1", ([a, a[:, :, :2], a.T.T],), {"axis": -1}))
    out.append(("one", ([a],), {"axis": 2}))
    out.append(("strided", ([a[:, ::-1], a.transpose(0, 2, 1).transpose(0, 2, 1)],), {"axis": 1}))
    out.append(("1d", ([_a(rng, (3,), dt), _a(rng, (0,), dt), _a(rng, (5,), dt)],), {}))
    out.append(("out", ([a, b],), {"axis": 1, "out": np.full((2, 4, 4), np.nan, dt)}))
    out.append(("many", ([_a(rng, (2, i % 3), dt) for i in range(100)],), {"axis": 1}))
    return out


CASES.update({
    "copy_into": cases_copy_into, "gather": cases_gather,
    "backprop_gather": cases_backprop_gather, "concatenate": cases_concatenate,
})


def cases_ew_backprop_binary(op):
    def build(dt, rng):
        out = []
        for sx, sy in EW_SHAPES:
            shape = np.broadcast_shapes(sx, sy)
            if op == "div":
                X, Y = _a(rng, sx, dt), _away(rng, sy, dt)
            else:
                X, Y = _ties(rng, sx, dt), _ties(rng, sy, dt)
            for wrt in (0, 1):
                out += _with_out(f"{sx}+{sy}-w{wrt}", (_a(rng, shape, dt), X, Y, wrt), {},
                                 shape, dt, rng)
        return out
    return build


def cases_ew_backprop_mul(dt, rng):
    out = []
    for sz, so in [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), ()), ((3, 4), (3, 1)),
                   ((2, 3, 4), (3, 1)), ((0, 4), (4,)), ((600, 500), (600, 500))]:
        out += _with_out(f"{sz}*{so}", (_a(rng, sz, dt), _a(rng, so, dt, -3, 3)), {}, sz, dt,
                         rng)
    return out


def cases_ew_unary(op):
    def build(dt, rng):
        cases = []
        for label, args, kwargs in cases_unary(dt, rng):
            X = args[0]
            if op in ("log", "sqrt"):
                X = np.abs(X) + dt(0.1) if X.size > 10 else X  # mostly in the domain
            cases.append((label, (X,), kwargs))
            cases.append((label + "-out", (X,), {"out": np.full(X.shape, np.nan, dt)}))
        return cases
    return build


POWERS = [0.0, 1.0, 2.0, 3.0, 0.5, -1.0, 2.5, -0.5, 1.5, -2.0]


def cases_ew_power(dt, rng):
    out = []
    for p in POWERS:
        for shape in [(), (0,), (7,), (30, 20)]:
            X = _a(rng, shape, dt, 0.2, 3.0)
            out.append((f"{shape}-p{p}", (X, p), {}))
        out.append((f"special-p{p}", (_special((20,), dt, rng), p),
                    {"out": np.full((20,), np.nan, dt)}))
    return out


def cases_ew_backprop_unary(op):
    def build(dt, rng):
        out = []
        for shape in ELEM_SHAPES + [()]:
            dY = _a(rng, shape, dt)
            S = _a(rng, shape, dt, 0.2, 3.0)      # saved output / input, away from 0
            if op == "exp":
                S = np.asarray(np.exp(_a(rng, shape, dt)), dt)
            out += _with_out(f"{shape}", (dY, S), {}, shape, dt, rng)
        return out
    return build


def cases_ew_backprop_power(dt, rng):
    out = []
    for p in POWERS:
        for shape in [(0, 3), (5,), (30, 20)]:
            out += _with_out(f"{shape}-p{p}", (_a(rng, shape, dt), _a(rng, shape, dt, 0.2, 3.0),
                                               p), {}, shape, dt, rng)
    return out


def cases_ew_scale_by(dt, rng):
    out = []
    for shape in [(), (0,), (5,), (3, 4), (2, 3, 4)]:
        for sshape in [(), (1,), (1, 1)]:
            out += _with_out(f"{shape}-s{sshape}", (_a(rng, shape, dt),
                                                    _a(rng, sshape, dt)), {}, shape, dt, rng)
    return out


def _also(old, new):
    """The existing cases of an op, then the new ones (labels prefixed ``ew-``)."""
    def build(dt, rng):
        return old(dt, rng) + [("ew-" + label, args, kwargs)
                               for label, args, kwargs in new(dt, rng)]
    return build


CASES.update({
    "add": _also(CASES["add"], cases_ew_binary("add")),
    "sub": _also(CASES["sub"], cases_ew_binary("sub")),
    "mul": _also(CASES["mul"], cases_ew_binary("mul")),
    "div": cases_ew_binary("div"), "maximum": cases_ew_binary("maximum"),
    "minimum": cases_ew_binary("minimum"),
    "backprop_mul": _also(CASES["backprop_mul"], cases_ew_backprop_mul),
    "backprop_div": cases_ew_backprop_binary("div"),
    "backprop_maximum": cases_ew_backprop_binary("maximum"),
    "backprop_minimum": cases_ew_backprop_binary("minimum"),
    "exp": cases_ew_unary("exp"), "log": cases_ew_unary("log"), "sqrt": cases_ew_unary("sqrt"),
    "power": cases_ew_power,
    "backprop_exp": cases_ew_backprop_unary("exp"), "backprop_log": cases_ew_backprop_unary("log"),
    "backprop_sqrt": cases_ew_backprop_unary("sqrt"), "backprop_power": cases_ew_backprop_power,
    "scale_by": cases_ew_scale_by,
})


# --- counter-based generator (fastbp.Generator): masks drawn inside the kernel ----------
def _gen_state(counter):
    return np.array([0x0123456789ABCDEF, counter], np.uint64)


def cases_dropout_mask_gen(dt, rng):
    return [(f"{shape}-p{p}-c{c}", (_gen_state(c), shape, p, np.dtype(dt)), {})
            for shape in [(), (0,), (1,), (5,), (40, 31)] for p in (0.0, 0.3, 0.9)
            for c in (0, 2**64 - 2)]  # the counter wraps around modulo 2**64


def cases_dropout_forward(dt, rng):
    return [(f"{shape}-p{p}", (_special(shape, dt, rng), _gen_state(7), p), {})
            for shape in [(), (0,), (3,), (2, 3, 4), (300, 201)] for p in (0.0, 0.5, 0.95)]


CASES.update({"dropout_mask_gen": cases_dropout_mask_gen,
              "dropout_forward": cases_dropout_forward})

def _params():
    out = []
    for op in sorted(CASES):
        for dt in DTYPES:
            for label, args, kwargs in CASES[op](dt, np.random.default_rng(0)):
                out.append(pytest.param(op, dt, label, args, kwargs,
                                        id=f"{op}-{np.dtype(dt).name}-{label}"))
    return out


# ----------------------------------------------------------------------------- checks
def _close(got, want, tol, what):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, tol, f"{what}[{i}]")
        return
    if want is None:
        assert got is None, what
        return
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), f"{what}: expected an ndarray, got {type(got)}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        finite = want[np.isfinite(want)]
        scale = 1.0 + (float(np.max(np.abs(finite))) if finite.size else 0.0)
        np.testing.assert_allclose(got, want, rtol=tol, atol=10 * tol * scale, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("op, dt, label, args, kwargs", _params())
def test_op_agrees_with_reference(op, dt, label, args, kwargs):
    ref_args, ref_kwargs = copy.deepcopy((args, kwargs))
    cy_args, cy_kwargs = copy.deepcopy((args, kwargs))
    want = getattr(NP, op)(*ref_args, **ref_kwargs)
    got = getattr(CY, op)(*cy_args, **cy_kwargs)
    tol = TOL[dt]
    _close(got, want, tol, f"{op} result")
    # in-place effects: out buffers, parameters and optimiser state
    for i, (a, b) in enumerate(zip(cy_args, ref_args)):
        if isinstance(b, np.ndarray):
            _close(a, b, tol, f"{op} argument {i} after the call")
    for key in ref_kwargs:
        if isinstance(ref_kwargs[key], np.ndarray):
            _close(cy_kwargs[key], ref_kwargs[key], tol, f"{op} {key} after the call")
    # the out convention: the returned array is the caller's out
    if isinstance(kwargs.get("out"), np.ndarray):
        assert got is cy_kwargs["out"]


def test_every_reference_op_is_overridden_and_tested():
    ops = public_methods(NumpyOps)
    assert ops, "no public methods found on NumpyOps"
    missing_override = [op for op in ops if op not in CythonOps.__dict__]
    assert not missing_override, f"CythonOps does not override {missing_override}"
    missing_cases = sorted(set(ops) - set(CASES))
    assert not missing_cases, f"no agreement cases for {missing_cases}"
    assert CythonOps.name == "cython"


def test_compiled_module_is_the_one_used():
    assert K.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), K.__file__
    for op in public_methods(NumpyOps):
        attr = inspect.getattr_static(CythonOps, op)
        if isinstance(attr, staticmethod):
            # the op *is* the compiled kernel of the same name
            assert attr.__func__ is getattr(K, op), op
            assert type(attr.__func__).__name__ == "cython_function_or_method", op
        else:
            # a thin wrapper: it must call into the kernel module
            assert "_k" in attr.__code__.co_names, op
    # and a behaviour only the kernels have: no silent upcast
    with pytest.raises(TypeError, match="mixed dtypes"):
        CY.gemm(np.ones((2, 2), np.float32), np.ones((2, 2)))
    with pytest.raises(TypeError, match="mixed dtypes"):
        CY.add(np.ones(3, np.float32), np.ones(3))


def test_fallback_only_for_uncovered_patterns():
    x = np.ones((3, 4))
    # issue 7: add/sub/mul compile every broadcast pattern (no fallback any more)
    np.testing.assert_array_equal(K.add(np.ones((3, 1)), np.ones((1, 4))), 2 * x)
    assert isinstance(K.UnsupportedBroadcast("x"), ValueError)
    np.testing.assert_array_equal(CY.add(np.ones((3, 1)), np.ones((1, 4))), 2 * x)


@pytest.mark.parametrize("dt", DTYPES)
def test_empty_batches(dt):
    E = np.ones((10, 3), dt)
    assert CY.embedding(E, np.zeros((0, 5), np.int64)).shape == (0, 15)
    assert CY.embedding(E, np.zeros((0,), np.int32)).shape == (0, 3)
    out = E.copy()
    assert CY.scatter_add_rows(out, np.zeros((0, 5), np.int64), np.zeros((0, 5, 3), dt)) is out
    np.testing.assert_array_equal(out, E)
    rows, vals = CY.coalesce_rows(np.zeros(0, np.int64), np.zeros((0, 3), dt))
    assert rows.shape == (0,) and rows.dtype == np.intp and vals.shape == (0, 3)
    assert CY.linear(np.zeros((0, 4), dt), np.ones((4, 2), dt), np.ones(2, dt)).shape == (0, 2)
    assert CY.backprop_bias(np.zeros((0, 4), dt)).tolist() == [0, 0, 0, 0]


def test_softmax_xent_stable_and_empty():
    for dt in DTYPES:
        Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dt)
        loss, P = CY.softmax_cross_entropy(Z, np.array([0, 2]))
        assert np.isfinite(loss) and np.isfinite(P).all()
        np.testing.assert_allclose(P.sum(axis=1), 1, rtol=TOL[dt])
        loss, P = CY.softmax_cross_entropy(np.zeros((0, 3), dt), np.zeros(0, np.int64))
        assert loss.dtype == dt and float(loss) == 0.0 and P.shape == (0, 3)
        g = CY.backprop_softmax_cross_entropy(P, np.zeros(0, np.int64), 1.0)
        assert g.shape == (0, 3)


def test_sigmoid_bce_stable_at_1e4():
    for dt in DTYPES:
        S = np.array([1e4, -1e4, 1e4, -1e4], dt)
        T = np.array([1.0, 0.0, 0.0, 1.0], dt)
        loss, Sig = CY.sigmoid_bce(S, T)
        assert np.isfinite(loss)
        np.testing.assert_allclose(float(loss), 1e4 / 2, rtol=TOL[dt])
        np.testing.assert_array_equal(Sig, np.array([1, 0, 1, 0], dt))
        loss, Sig = CY.sigmoid_bce(np.zeros(0, dt), np.zeros(0, dt))
        assert float(loss) == 0.0 and loss.dtype == dt


def test_parallel_paths_agree_with_serial():
    """Loops split over threads above a size threshold give the serial result."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((700, 600))
    b = rng.standard_normal(600)
    before = K.get_num_threads()
    try:
        K.set_num_threads(1)
        serial = [K.tanh(X), K.bias_act(X, b, "sigmoid"), K.backprop_tanh(X, X),
                  K.embedding(X, rng.integers(0, 700, (600, 5)) * 0)]
        K.set_num_threads(4)
        par = [K.tanh(X), K.bias_act(X, b, "sigmoid"), K.backprop_tanh(X, X),
               K.embedding(X, rng.integers(0, 700, (600, 5)) * 0)]
    finally:
        K.set_num_threads(before)
    for s, p in zip(serial, par):
        np.testing.assert_array_equal(s, p)


@settings(max_examples=60, deadline=None)
@given(
    M=st.integers(0, 9), Kd=st.integers(0, 9), N=st.integers(0, 9),
    ta=st.booleans(), tb=st.booleans(), beta=st.sampled_from([None, 0.0, 1.0]),
    dt=st.sampled_from(DTYPES), seed=st.integers(0, 2**16),
)
def test_gemm_property(M, Kd, N, ta, tb, beta, dt, seed):
    _check_gemm(np.random.default_rng(seed), M, Kd, N, ta, tb, beta, dt)


def _check_gemm(rng, M, Kd, N, ta, tb, beta, dt):
    """Both backends' gemm of random operands (``beta`` None: no ``out``) agree."""
    A = _a(rng, (Kd, M) if ta else (M, Kd), dt)
    B = _a(rng, (N, Kd) if tb else (Kd, N), dt)
    kwargs = {"trans_a": ta, "trans_b": tb}
    if beta is not None:
        kwargs.update(out=_a(rng, (M, N), dt), beta=beta)
    want = NP.gemm(A, B, **copy.deepcopy(kwargs))
    got = CY.gemm(A, B, **kwargs)
    _close(got, want, TOL[dt], "gemm")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("M, Kd, N", [(2, 128, 256), (16, 300, 512), (13, 129, 300),
                                      (32, 512, 257), (17, 200, 256), (33, 600, 300),
                                      (32, 200, 250), (32, 191, 250), (32, 200, 199),
                                      (33, 200, 250), (8, 192, 200)])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("beta", [None, 0.0, 1.0])
def test_gemm_few_rows_path(M, Kd, N, ta, tb, beta, dt):
    """Products with a few rows and many columns go through a column-major product of
    C^T's storage and a transposing copy (``few_rows`` in _blas.pxd); the shapes here
    sit on both sides of its thresholds."""
    _check_gemm(np.random.default_rng(M * 1000 + N), M, Kd, N, ta, tb, beta, dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("M, N", [(1500, 512), (512, 1500), (2049, 129), (4097, 64), (1023, 256)])
@pytest.mark.parametrize("tr", [False, True])
@pytest.mark.parametrize("beta", [None, 0.0, 1.0])
def test_gemv_of_a_large_matrix(M, N, tr, beta, dt):
    """Matrix-vector products over at least 1 MB of matrix go through fastbp's own
    row loops (``GEMV_OWN_BYTES`` in _blas.pxd), the smaller ones through OpenBLAS; both
    agree with numpy, and with ``beta == 0`` a NaN already in ``out`` is not read."""
    rng = np.random.default_rng(M + N)
    A = _a(rng, (M, N), dt)
    x = _a(rng, (M if tr else N,), dt)
    kwargs = {"trans": tr}
    if beta is not None:
        o = _a(rng, (N if tr else M,), dt)
        if beta == 0.0:
            o[::3] = np.nan
        kwargs.update(out=o, beta=beta)
    want = NP.gemv(A, x, **copy.deepcopy(kwargs))
    got = CY.gemv(A, x, **kwargs)
    assert np.isfinite(got).all()
    # sums of up to 4097 terms: float32 round-off grows with the length
    _close(got, want, 2e-4 if dt == np.float32 else 1e-11, "gemv")


@pytest.mark.parametrize("dt", DTYPES)
def test_gemm_of_one_row_through_a_large_matrix(dt):
    """A batch of one through a 1500 x 512 layer (the large step at B=1): forward
    ``x @ W``, backward ``dz @ W^T``, as gemm calls with one row, agree with numpy."""
    rng = np.random.default_rng(7)
    W = _a(rng, (1500, 512), dt)
    x, dz = _a(rng, (1, 1500), dt), _a(rng, (1, 512), dt)
    tol = 2e-4 if dt == np.float32 else 1e-11
    _close(CY.gemm(x, W), NP.gemm(x, W), tol, "x @ W")
    _close(CY.gemm(dz, W, trans_b=True), NP.gemm(dz, W, trans_b=True), tol, "dz @ W^T")
