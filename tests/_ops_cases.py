"""Cases shared by tests/test_ops_gradcheck.py and tests/test_ops_backends.py: every op of
the general engine (issue 7) with broadcasting both ways, axis variants, repeated indices,
views and a node used several times.

Each case is ``name: (build, fn)``: ``build(rng, dtype)`` returns the input tensors,
``fn(*inputs)`` the output tensor. Inputs avoid non-differentiable points: no ties for
max / maximum / minimum (values kept >= 0.1 apart), positive inputs for log, sqrt,
fractional powers and denominators.
"""

import numpy as np

import fastbp as fb


def P(rng, dt, *shape, scale=1.0):
    """Standard normal parameter."""
    return fb.Parameter((rng.standard_normal(shape) * scale).astype(dt))


def Pos(rng, dt, *shape):
    """Parameter with entries in [0.5, 2]."""
    return fb.Parameter(rng.uniform(0.5, 2.0, shape).astype(dt))


def Distinct(rng, dt, *shape):
    """Parameter whose entries are pairwise >= 0.1 apart (a shuffled grid): no ties."""
    n = int(np.prod(shape))
    vals = (np.arange(n) * 0.37 - n * 0.18)[rng.permutation(n)]
    return fb.Parameter(vals.reshape(shape).astype(dt))


def Apart(rng, dt, base, shape):
    """A parameter of ``shape`` (the broadcast shape of ``base`` and ``shape``) whose
    entries are 0.1 to 1 away from ``base`` (broadcast) everywhere: no ties."""
    b = np.broadcast_to(base.data, shape)
    off = rng.uniform(0.1, 1.0, b.shape) * rng.choice([-1.0, 1.0], b.shape)
    return fb.Parameter((b + off).astype(dt))


def _sep(rng, dt):
    """(3, 1) and (1, 4) parameters with every pair of entries >= 0.1 apart."""
    col = np.array([[0.05], [1.05], [2.05]]) + rng.uniform(-0.02, 0.02, (3, 1))
    row = np.array([[0.5, 1.6, 2.5, -0.5]]) + rng.uniform(-0.02, 0.02, (1, 4))
    return [fb.Parameter(col.astype(dt)), fb.Parameter(row.astype(dt))]


def _max_pair(rng, dt, shape_a, shape_b):
    """``[a, b]`` with ``a`` of the broadcast shape ``shape_a`` kept away from ``b``."""
    b = P(rng, dt, *shape_b)
    assert np.broadcast_shapes(shape_a, shape_b) == tuple(shape_a)
    return [Apart(rng, dt, b, shape_a), b]


def _nonzero_away(rng, dt, *shape):
    x = rng.uniform(0.2, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    return fb.Parameter(x.astype(dt))


ROWS = np.array([0, 2, 0, 1, 2])  # repeats: (0, 1) twice, (2, 3) twice
COLS = np.array([1, 3, 1, 0, 3])
MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])

CASES = {
    # -------------------------------------------------------------- elementwise
    "add_both_ways": (lambda r, d: [P(r, d, 3, 1), P(r, d, 1, 4)], lambda a, b: a + b),
    "add_vec_left": (lambda r, d: [P(r, d, 4), P(r, d, 3, 4)], lambda a, b: a + b),
    "add_3d": (lambda r, d: [P(r, d, 2, 3, 4), P(r, d, 3, 1)], lambda a, b: (a + b) * a),
    "sub_both_ways": (lambda r, d: [P(r, d, 1, 4), P(r, d, 3, 1)], lambda a, b: a - b),
    "sub_0d": (lambda r, d: [P(r, d), P(r, d, 3, 4)], lambda a, b: (a - b) * b),
    "mul_both_ways": (lambda r, d: [P(r, d, 3, 1), P(r, d, 1, 4)], lambda a, b: a * b),
    "mul_3d": (lambda r, d: [P(r, d, 2, 1, 4), P(r, d, 3, 1)], lambda a, b: a * b),
    "mul_vec_left": (lambda r, d: [P(r, d, 4), P(r, d, 3, 4)], lambda a, b: a * b * a),
    "div_same": (lambda r, d: [P(r, d, 3, 4), Pos(r, d, 3, 4)], lambda a, b: a / b),
    "div_row": (lambda r, d: [P(r, d, 3, 4), Pos(r, d, 4)], lambda a, b: a / b),
    "div_col": (lambda r, d: [P(r, d, 3, 4), Pos(r, d, 3, 1)], lambda a, b: a / b),
    "div_both_ways": (lambda r, d: [P(r, d, 3, 1), Pos(r, d, 1, 4)], lambda a, b: a / b),
    "div_vec_by_matrix": (lambda r, d: [P(r, d, 4), Pos(r, d, 3, 4)], lambda a, b: a / b),
    "div_0d": (lambda r, d: [P(r, d, 3, 4), Pos(r, d)], lambda a, b: a / b),
    "div_3d": (lambda r, d: [P(r, d, 2, 3, 4), Pos(r, d, 3, 1)], lambda a, b: a / b),
    "div_scalar": (lambda r, d: [P(r, d, 3, 4)], lambda a: a / 3.0),
    "rdiv_scalar": (lambda r, d: [Pos(r, d, 3, 4)], lambda a: 2.0 / a),
    "rdiv_reused": (lambda r, d: [Pos(r, d, 5)], lambda a: 10.0 / (a * a) + a / a),
    "neg": (lambda r, d: [P(r, d, 3, 4)], lambda a: -a * a),
    "pow_3": (lambda r, d: [P(r, d, 3, 4)], lambda a: a**3),
    "pow_2_reused": (lambda r, d: [P(r, d, 3, 4)], lambda a: a**2 + a * a),
    "pow_half": (lambda r, d: [Pos(r, d, 3, 4)], lambda a: a**0.5),
    "pow_neg": (lambda r, d: [Pos(r, d, 3, 4)], lambda a: a**-1.5),
    "pow_0_1": (lambda r, d: [P(r, d, 3, 4)], lambda a: a**0 + a**1),
    "exp": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.exp(a)),
    "log": (lambda r, d: [Pos(r, d, 3, 4)], lambda a: fb.log(a)),
    "sqrt": (lambda r, d: [Pos(r, d, 3, 4)], lambda a: fb.sqrt(a)),
    "node_used_several_times": (
        lambda r, d: [Pos(r, d, 3, 4)],
        lambda x: x * x + fb.exp(x) / x,
    ),
    "log_exp_sqrt_chain": (
        lambda r, d: [Pos(r, d, 2, 3)],
        lambda x: fb.log(fb.exp(x) + fb.sqrt(x)) * x,
    ),
    "maximum_same": (lambda r, d: _max_pair(r, d, (3, 4), (3, 4)), lambda a, b: fb.maximum(a, b)),
    "maximum_row": (lambda r, d: _max_pair(r, d, (3, 4), (4,)), lambda a, b: fb.maximum(a, b)),
    "maximum_col_reversed": (
        lambda r, d: _max_pair(r, d, (3, 4), (3, 1)),
        lambda a, b: fb.maximum(b, a),
    ),
    "maximum_both_ways": (lambda r, d: _sep(r, d), lambda a, b: fb.maximum(a, b)),
    "maximum_scalar": (lambda r, d: [_nonzero_away(r, d, 3, 4)], lambda a: fb.maximum(a, 0.0)),
    "maximum_3d": (
        lambda r, d: _max_pair(r, d, (2, 3, 4), (3, 1)),
        lambda a, b: fb.maximum(a, b),
    ),
    "minimum_same": (lambda r, d: _max_pair(r, d, (3, 4), (3, 4)), lambda a, b: fb.minimum(a, b)),
    "minimum_row": (lambda r, d: _max_pair(r, d, (3, 4), (4,)), lambda a, b: fb.minimum(b, a)),
    "minimum_both_ways": (lambda r, d: _sep(r, d), lambda a, b: fb.minimum(b, a)),
    "minimum_scalar_left": (
        lambda r, d: [_nonzero_away(r, d, 3, 4)],
        lambda a: fb.minimum(0.0, a) * a,
    ),
    # -------------------------------------------------------------- reductions
    "sum_none": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a.sum() * a),
    "sum_axis0": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a.sum(axis=0)),
    "sum_axis1": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a.sum(axis=1)),
    "sum_axis_neg1_keepdims": (
        lambda r, d: [P(r, d, 2, 3, 4)],
        lambda a: a.sum(axis=-1, keepdims=True) * a,
    ),
    "sum_tuple": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a.sum(axis=(0, 2))),
    "sum_tuple_keepdims": (
        lambda r, d: [P(r, d, 2, 3, 4)],
        lambda a: a.sum(axis=(0, -1), keepdims=True) * a,
    ),
    "sum_none_keepdims": (
        lambda r, d: [P(r, d, 3, 4)],
        lambda a: a.sum(keepdims=True) * a,
    ),
    "mean_tuple": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a.mean(axis=(1, 2)) * a.mean()),
    "max_none": (lambda r, d: [Distinct(r, d, 3, 4)], lambda a: a.max() * a),
    "max_axis0": (lambda r, d: [Distinct(r, d, 3, 4)], lambda a: a.max(axis=0)),
    "max_axis1": (lambda r, d: [Distinct(r, d, 3, 4)], lambda a: a.max(axis=1)),
    "max_axis_neg1_keepdims": (
        lambda r, d: [Distinct(r, d, 2, 3, 4)],
        lambda a: a.max(axis=-1, keepdims=True) * a,
    ),
    "max_tuple": (lambda r, d: [Distinct(r, d, 2, 3, 4)], lambda a: a.max(axis=(0, 2))),
    "max_tuple_keepdims": (
        lambda r, d: [Distinct(r, d, 2, 3, 4)],
        lambda a: a.max(axis=(1, 2), keepdims=True),
    ),
    "max_reused": (lambda r, d: [Distinct(r, d, 3, 4)], lambda a: a.max(axis=1) * a.sum(axis=1)),
    "logsumexp_last": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.logsumexp(a)),
    "logsumexp_axis0_keepdims": (
        lambda r, d: [P(r, d, 3, 4)],
        lambda a: fb.logsumexp(a, axis=0, keepdims=True) * a,
    ),
    "logsumexp_none": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.logsumexp(a, axis=None)),
    "logsumexp_3d_axis1": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: fb.logsumexp(a, axis=1)),
    "logsumexp_large": (
        lambda r, d: [P(r, d, 3, 4, scale=30.0)],
        lambda a: fb.logsumexp(a + 500.0, axis=1),
    ),
    "softmax_last": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.softmax(a)),
    "softmax_axis0": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.softmax(a, axis=0)),
    "softmax_3d_axis1": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: fb.softmax(a, axis=1)),
    "softmax_reused": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.softmax(a) * a),
    "log_softmax_last": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.log_softmax(a)),
    "log_softmax_axis0": (lambda r, d: [P(r, d, 3, 4)], lambda a: fb.log_softmax(a, axis=0)),
    "log_softmax_3d": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: fb.log_softmax(a, axis=-2)),
    "log_softmax_large": (
        lambda r, d: [P(r, d, 3, 4, scale=20.0)],
        lambda a: fb.log_softmax(a - 1000.0, axis=1),
    ),
    # -------------------------------------------------------------- shape
    "reshape": (lambda r, d: [P(r, d, 3, 4)], lambda a: a.reshape(2, 6) * a.reshape((2, 6))),
    "reshape_minus1": (lambda r, d: [P(r, d, 3, 4)], lambda a: a.reshape(-1, 2)),
    "reshape_0d": (lambda r, d: [P(r, d, 1, 1)], lambda a: a.reshape(()) * a),
    "transpose_T": (lambda r, d: [P(r, d, 3, 4)], lambda a: a.T),
    "transpose_3d": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a.transpose(1, 2, 0)),
    "transpose_neg_axes": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a.transpose((-1, 0, -2))),
    "transpose_reused": (lambda r, d: [P(r, d, 3, 3)], lambda a: a.T * a + a.T),
    "transpose_reshape_chain": (
        lambda r, d: [P(r, d, 3, 4)],
        lambda a: a.T.reshape(-1).reshape(2, 6).T,  # the middle reshape copies
    ),
    "reshape_transpose_chain": (
        lambda r, d: [P(r, d, 3, 4)],
        lambda a: a.reshape(2, 2, 3).transpose(2, 0, 1).reshape(3, 4) * a,
    ),
    "getitem_int": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[1] * a[-1]),
    "getitem_0d": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[1, 2] * a),
    "getitem_slices": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[1:3, ::2]),
    "getitem_negative_steps": (
        lambda r, d: [P(r, d, 3, 4)],
        lambda a: a[::-1, -1:0:-2] * a[:, 1::-1][:, :1],
    ),
    "getitem_none_ellipsis": (
        lambda r, d: [P(r, d, 2, 3, 4)],
        lambda a: a[None, ..., 1] + a[:, None, 0, :2].sum(),
    ),
    "getitem_overlapping_slices": (
        lambda r, d: [P(r, d, 5)],
        lambda a: a[1:4] * a[:3] + a[2:],
    ),
    "getitem_rows_repeated": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[[0, 0, 2]]),
    "getitem_rows_cols_repeated": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[ROWS, COLS]),
    "getitem_negative_indices": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[[-1, 0, -1], -2]),
    "getitem_cols": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[:, [1, 1, 3]]),
    "getitem_2d_index": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[np.array([[0, 1], [2, 2]])]),
    "getitem_adjacent_middle": (
        lambda r, d: [P(r, d, 2, 3, 4)],
        lambda a: a[:, [0, 2, 2], [1, 1, 3]],
    ),
    "getitem_non_adjacent": (
        lambda r, d: [P(r, d, 2, 3, 4)],
        lambda a: a[[0, 1, 1], :, [2, 2, 0]],
    ),
    "getitem_int_and_array": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a[1, :, [0, 3, 0]]),
    "getitem_slice_and_array": (
        lambda r, d: [P(r, d, 3, 4)],
        lambda a: a[1:, [0, 0]] * a[::-1][[2, 1]][:, :2],
    ),
    "getitem_ellipsis_array": (lambda r, d: [P(r, d, 2, 3, 4)], lambda a: a[..., [0, 0, 3]]),
    "getitem_none_array": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[None, [2, 0], 1:]),
    "getitem_bool_mask": (lambda r, d: [P(r, d, 3, 4)], lambda a: a[MASK] * a[MASK]),
    "getitem_of_transpose": (lambda r, d: [P(r, d, 3, 4)], lambda a: a.T[[0, 3, 3], 1:]),
    "getitem_pairs_loss": (
        lambda r, d: [P(r, d, 5, 4)],
        lambda a: -(fb.log_softmax(a, axis=1)[np.arange(5), np.array([1, 0, 3, 3, 2])]).mean(),
    ),
    "concatenate_axis0": (
        lambda r, d: [P(r, d, 2, 4), P(r, d, 3, 4)],
        lambda a, b: fb.concatenate([a, b, a]),
    ),
    "concatenate_axis1": (
        lambda r, d: [P(r, d, 3, 1), P(r, d, 3, 4)],
        lambda a, b: fb.concatenate([a, b], axis=1),
    ),
    "concatenate_axis_neg1_3d": (
        lambda r, d: [P(r, d, 2, 3, 1), P(r, d, 2, 3, 2)],
        lambda a, b: fb.concatenate((b, a, b), axis=-1),
    ),
    "concatenate_3d_axis1": (
        lambda r, d: [P(r, d, 2, 1, 4), P(r, d, 2, 3, 4)],
        lambda a, b: fb.concatenate([a, b], axis=1) * 2.0,
    ),
    "concatenate_views": (
        lambda r, d: [P(r, d, 3, 4)],
        lambda a: fb.concatenate([a.T, a[:, ::-1].T[1:]], axis=0),
    ),
    "stack_axis0": (lambda r, d: [P(r, d, 3, 4), P(r, d, 3, 4)], lambda a, b: fb.stack([a, b])),
    "stack_axis1": (
        lambda r, d: [P(r, d, 3, 4), P(r, d, 3, 4)],
        lambda a, b: fb.stack([a, b, a], axis=1),
    ),
    "stack_axis_neg1": (
        lambda r, d: [P(r, d, 3, 4), P(r, d, 3, 4)],
        lambda a, b: fb.stack([b, a], axis=-1),
    ),
    "stack_0d": (lambda r, d: [P(r, d), P(r, d)], lambda a, b: fb.stack([a, b, a * b])),
    # -------------------------------------------------------------- changed backward rules
    "matmul_dot": (lambda r, d: [P(r, d, 5), P(r, d, 5)], lambda u, h: (u @ h) * (u @ h)),
    "cross_entropy_scaled": (
        lambda r, d: [P(r, d, 4, 3)],
        lambda z: fb.cross_entropy(z, np.array([0, 2, 1, 2])) * 3.0,
    ),
    "bce_scaled": (
        lambda r, d: [P(r, d, 6)],
        lambda s: fb.binary_cross_entropy_with_logits(s, np.array([0, 1, 1, 0, 1, 0])) * s.sum(),
    ),
    # -------------------------------------------------------------- the lecture
    "lecture_slide": (
        lambda r, d: [fb.Parameter(np.array(v, d)) for v in (1.0, 2.0, 0.0)],
        lambda x, y, z: (x + y) * fb.maximum(y, z),
    ),
    "lecture_sigmoid_by_hand": (
        lambda r, d: [P(r, d, 4), P(r, d, 4, 3), P(r, d, 3), P(r, d, 4)],
        lambda u, W, x, b: 1.0 / (1.0 + fb.exp(-(u @ fb.tanh(W @ x + b)))),
    ),
}
