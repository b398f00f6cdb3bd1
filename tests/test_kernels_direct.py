"""The kernels called directly with wrong arguments: each raises the documented exception
with a message naming the problem, writes nothing, and never crashes the process."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastbp_ext._kernels as K

f32, f64 = np.float32, np.float64


def m(shape, dt=f64, fill=1.0):
    return np.full(shape, fill, dtype=dt)


# ------------------------------------------------------------------ dtypes
BAD_DTYPE_CALLS = {
    "gemm": lambda a: K.gemm(a, m((2, 2))),
    "gemv": lambda a: K.gemv(a, m(2)),
    "ger": lambda a: K.ger(a.reshape(-1), m(2)),
    "dot": lambda a: K.dot(a.reshape(-1), m(4)),
    "scale": lambda a: K.scale(a, 2.0),
    "linear": lambda a: K.linear(a, m((2, 3))),
    "add": lambda a: K.add(a, m((2, 2))),
    "sub": lambda a: K.sub(a, m((2, 2))),
    "mul": lambda a: K.mul(a, m((2, 2))),
    "add_bias": lambda a: K.add_bias(a, m(2)),
    "reduce_sum": lambda a: K.reduce_sum(a),
    "unbroadcast": lambda a: K.unbroadcast(a, (2,)),
    "backprop_bias": lambda a: K.backprop_bias(a),
    "backprop_mul": lambda a: K.backprop_mul(a, m((2, 2))),
    "tanh": lambda a: K.tanh(a),
    "sigmoid": lambda a: K.sigmoid(a),
    "relu": lambda a: K.relu(a),
    "backprop_tanh": lambda a: K.backprop_tanh(a, m((2, 2))),
    "backprop_sigmoid": lambda a: K.backprop_sigmoid(a, m((2, 2))),
    "backprop_relu": lambda a: K.backprop_relu(a, m((2, 2))),
    "backprop_act": lambda a: K.backprop_act(a, m((2, 2)), "tanh"),
    "bias_act": lambda a: K.bias_act(a, m(2), "tanh"),
    "embedding": lambda a: K.embedding(a, np.zeros((1, 1), np.int64)),
    "scatter_add_rows": lambda a: K.scatter_add_rows(a, np.zeros(1, np.int64), m((1, 2))),
    "coalesce_rows": lambda a: K.coalesce_rows(np.zeros(2, np.int64), a),
    "softmax_cross_entropy": lambda a: K.softmax_cross_entropy(a, np.zeros(2, np.int64)),
    "backprop_softmax_cross_entropy":
        lambda a: K.backprop_softmax_cross_entropy(a, np.zeros(2, np.int64), 1.0),
    "sigmoid_bce": lambda a: K.sigmoid_bce(a, m((2, 2))),
    "backprop_sigmoid_bce": lambda a: K.backprop_sigmoid_bce(a, m((2, 2)), 1.0),
    "sgd_update": lambda a: K.sgd_update(a, m((2, 2)), 0.1),
    "sgd_update_rows": lambda a: K.sgd_update_rows(a, np.zeros(1, np.int64), m((1, 2)), 0.1),
    "adam_update": lambda a: K.adam_update(a, m((2, 2)), m((2, 2)), m((2, 2)), 1e-3, 0.9,
                                           0.999, 1e-8, 1),
    "adam_update_rows": lambda a: K.adam_update_rows(a, np.zeros(1, np.int64), m((1, 2)),
                                                     m((2, 2)), m((2, 2)), 1e-3, 0.9, 0.999,
                                                     1e-8, 1),
}


@pytest.mark.parametrize("name", sorted(BAD_DTYPE_CALLS))
@pytest.mark.parametrize("bad", [np.int64, np.float16, np.complex128, np.bool_])
def test_non_float_dtype_is_a_type_error(name, bad):
    with pytest.raises(TypeError, match=f"float32 or float64.*{np.dtype(bad).name}"):
        BAD_DTYPE_CALLS[name](np.ones((2, 2), dtype=bad))


_ONE_FLOAT_INPUT = {"backprop_bias", "backprop_softmax_cross_entropy", "coalesce_rows",
                    "embedding", "reduce_sum", "relu", "scale", "sigmoid",
                    "softmax_cross_entropy", "tanh", "unbroadcast"}


@pytest.mark.parametrize("name", sorted(set(BAD_DTYPE_CALLS) - _ONE_FLOAT_INPUT))
def test_mixing_float32_and_float64_is_a_type_error_naming_both(name):
    with pytest.raises(TypeError, match=r"mixed dtypes.*float32.*float64|mixed.*float64.*float32"):
        BAD_DTYPE_CALLS[name](np.ones((2, 2), dtype=f32))


@pytest.mark.parametrize("call", [
    lambda: K.gemm(m((2, 2)), m((2, 2)), out=m((2, 2), f32)),
    lambda: K.backprop_tanh(m(3), m(3), out=m(3, f32)),
    lambda: K.unbroadcast(m((2, 3)), (3,), out=m(3, f32)),
])
def test_out_of_the_other_dtype_is_a_type_error(call):
    with pytest.raises(TypeError, match="mixed dtypes: out is float32"):
        call()


def test_not_an_array():
    with pytest.raises(TypeError):
        K.gemm([[1.0]], m((1, 1)))
    with pytest.raises(TypeError):
        K.tanh(None)
    with pytest.raises(TypeError, match="integer array"):
        K.embedding(m((3, 2)), [0, 1])


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("call, pattern", [
    (lambda: K.gemm(m((2, 3)), m((4, 5))), r"\(2, 3\) and \(4, 5\) are not aligned"),
    (lambda: K.gemm(m((3, 2)), m((3, 5)), trans_a=False), r"not aligned"),
    (lambda: K.gemm(m(3), m((3, 5))), r"2-D operands.*\(3,\)"),
    (lambda: K.gemm(m((2, 3)), m((2, 3)), trans_b=False), r"\(2, 3\) and \(2, 3\)"),
    (lambda: K.gemv(m((2, 3)), m(2)), r"\(2, 3\) and \(2,\) are not aligned"),
    (lambda: K.gemv(m((2, 3)), m(3), trans=True), r"\(2, 3\)\.T and \(3,\)"),
    (lambda: K.gemv(m(3), m(3)), r"2-D A and a 1-D x"),
    (lambda: K.ger(m((2, 1)), m(3)), r"1-D vectors.*\(2, 1\)"),
    (lambda: K.dot(m(3), m(4)), r"\(3,\) and \(4,\)"),
    (lambda: K.linear(m((2, 3)), m((4, 5))), r"\(2, 3\) and \(4, 5\)"),
    (lambda: K.linear(m((2, 3)), m((3, 5)), m(4)), r"bias of shape \(4,\).*width 5"),
    (lambda: K.add_bias(m((2, 3)), m(2)), r"\(2, 3\) and \(2,\)"),
    (lambda: K.backprop_bias(m(3)), r"2-D.*\(3,\)"),
    (lambda: K.backprop_mul(m((2, 3)), m((3, 2))), r"\(2, 3\).*\(3, 2\)"),
    (lambda: K.backprop_tanh(m((2, 3)), m(6)), r"\(2, 3\).*\(6,\)"),
    (lambda: K.bias_act(m((2, 3)), m(2), "tanh"), r"\(2, 3\) and \(2,\)"),
    (lambda: K.bias_act(m(3), m(3), "relu"), r"\(3,\) and \(3,\)"),
    (lambda: K.embedding(m(5), np.zeros((1, 1), np.int64)), r"2-D \(V, d\).*\(5,\)"),
    (lambda: K.embedding(m((5, 2)), np.zeros((1, 1, 1), np.int64)), r"\(1, 1, 1\)"),
    (lambda: K.scatter_add_rows(m((5, 2)), np.zeros(3, np.int64), m((3, 4))),
     r"values of shape \(3, 4\).*3 rows of width 2"),
    (lambda: K.scatter_add_rows(m(5), np.zeros(3, np.int64), m(3)), r"2-D \(V, d\)"),
    (lambda: K.coalesce_rows(np.zeros(3, np.int64), m((4, 2))), r"\(4, 2\).*\(3,\)"),
    (lambda: K.softmax_cross_entropy(m(5), np.zeros(5, np.int64)), r"2-D \(n, C\).*\(5,\)"),
    (lambda: K.softmax_cross_entropy(m((4, 3)), np.zeros(3, np.int64)),
     r"class ids of shape \(3,\).*4 rows"),
    (lambda: K.softmax_cross_entropy(m((4, 3)), np.zeros((4, 1), np.int64)),
     r"class ids of shape \(4, 1\)"),
    (lambda: K.sigmoid_bce(m(4), m(5)), r"\(5,\).*\(4,\)"),
    (lambda: K.backprop_sigmoid_bce(m(4), m((2, 2)), 1.0), r"\(2, 2\).*\(4,\)"),
    (lambda: K.sgd_update(m(4), m(5), 0.1), r"dW of shape \(5,\).*W of shape \(4,\)"),
    (lambda: K.adam_update(m(4), m(4), m(5), m(4), 1e-3, 0.9, 0.999, 1e-8, 1), r"\(5,\)"),
    (lambda: K.adam_update_rows(m((4, 2)), np.zeros(1, np.int64), m((1, 2)), m((4, 3)),
                                m((4, 2)), 1e-3, 0.9, 0.999, 1e-8, 1), r"m of shape \(4, 3\)"),
])
def test_wrong_shapes_are_value_errors_naming_the_shapes(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("call, pattern", [
    (lambda o: K.gemm(m((3, 4)), m((4, 5)), out=o), r"out has shape \(2, 2\).*\(3, 5\)"),
    (lambda o: K.gemv(m((3, 4)), m(4), out=o), r"out has shape \(2, 2\).*\(3,\)"),
    (lambda o: K.ger(m(3), m(4), out=o), r"out has shape \(2, 2\).*\(3, 4\)"),
    (lambda o: K.linear(m((3, 4)), m((4, 5)), None, o), r"out has shape \(2, 2\).*\(3, 5\)"),
    (lambda o: K.scale(m(3), 2.0, out=o), r"out has shape \(2, 2\).*\(3,\)"),
    (lambda o: K.backprop_bias(m((3, 4)), out=o), r"\(2, 2\).*\(4,\)"),
    (lambda o: K.backprop_relu(m(3), m(3), out=o), r"\(2, 2\).*\(3,\)"),
    (lambda o: K.unbroadcast(m((3, 4)), (4,), out=o), r"\(2, 2\).*\(4,\)"),
    (lambda o: K.backprop_softmax_cross_entropy(m((3, 4)), np.zeros(3, np.int64), 1.0, o),
     r"\(2, 2\).*\(3, 4\)"),
])
def test_wrong_out_shape(call, pattern):
    out = m((2, 2))
    with pytest.raises(ValueError, match=pattern):
        call(out)
    assert (out == 1).all()


# ------------------------------------------------------------------ layout
def test_non_contiguous_inputs_are_copied_not_misread():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 8))
    At = A.T  # F-ordered view
    Astep = A[:, ::2]
    np.testing.assert_allclose(K.gemm(At, A[:, :3]), At @ A[:, :3], rtol=1e-12)
    np.testing.assert_allclose(K.gemm(Astep, Astep.T), Astep @ Astep.T, rtol=1e-12)
    np.testing.assert_allclose(K.tanh(Astep), np.tanh(Astep), rtol=1e-12)
    np.testing.assert_allclose(K.add(Astep, A[0, ::2]), Astep + A[0, ::2], rtol=1e-12)
    np.testing.assert_allclose(K.backprop_bias(Astep), Astep.sum(0), rtol=1e-12)
    ids = np.arange(12).reshape(3, 4)[:, ::2] % 6
    np.testing.assert_array_equal(K.embedding(A, ids), A[ids.reshape(-1)].reshape(3, -1))
    big_endian = A.astype(">f8")
    np.testing.assert_allclose(K.relu(big_endian), np.maximum(A, 0))
    assert K.relu(big_endian).dtype == np.float64


@pytest.mark.parametrize("call", [
    lambda o: K.gemm(m((2, 2)), m((2, 2)), out=o),
    lambda o: K.backprop_tanh(m((2, 2)), m((2, 2)), out=o),
    lambda o: K.scatter_add_rows(o, np.zeros(1, np.int64), m((1, 2))),
    lambda o: K.sgd_update(o, m((2, 2)), 0.1),
    lambda o: K.adam_update(o, m((2, 2)), m((2, 2)), m((2, 2)), 1e-3, 0.9, 0.999, 1e-8, 1),
])
def test_arrays_written_in_place_must_be_contiguous_and_writeable(call):
    base = m((2, 4))
    with pytest.raises(ValueError, match="C-contiguous"):
        call(base[:, ::2])
    with pytest.raises(ValueError, match="C-contiguous"):
        call(np.asfortranarray(m((2, 2)) + np.eye(2)))
    ro = m((2, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        call(ro)


def test_out_sharing_memory_with_an_input_is_rejected():
    A = m((3, 3))
    with pytest.raises(ValueError, match="shares memory with A"):
        K.gemm(A, m((3, 3)), out=A)
    x = m(3)
    with pytest.raises(ValueError, match="shares memory with x"):
        K.gemv(m((3, 3)), x, out=x)
    # elementwise kernels may work in place
    Y = np.full(3, 0.5)
    dY = np.ones(3)
    assert K.backprop_sigmoid(dY, Y, out=dY) is dY
    np.testing.assert_allclose(dY, 0.25)


def test_beta_must_be_0_or_1():
    with pytest.raises(ValueError, match="beta must be 0.0 or 1.0, got 0.5"):
        K.gemm(m((2, 2)), m((2, 2)), out=m((2, 2)), beta=0.5)
    with pytest.raises(ValueError, match="beta"):
        K.backprop_tanh(m(2), m(2), out=m(2), beta=2.0)


# ------------------------------------------------------------------ ids and labels
@pytest.mark.parametrize("bad", [-1, 10, 10**6])
@pytest.mark.parametrize("it", [np.int32, np.int64])
def test_embedding_ids_out_of_range_name_the_id(bad, it):
    ids = np.array([[0, 3, bad]], dtype=it)
    with pytest.raises(IndexError, match=f"id {bad} is out of range for a table of 10 rows"):
        K.embedding(m((10, 4)), ids)


def test_unsigned_ids_out_of_range():
    with pytest.raises(IndexError, match="id 255 is out of range"):
        K.embedding(m((10, 4)), np.array([[255]], np.uint8))
    with pytest.raises(IndexError, match=str(2**64 - 1)):
        K.embedding(m((10, 4)), np.array([[2**64 - 1]], np.uint64))


@pytest.mark.parametrize("dt", [np.float64, np.float32, np.bool_, object])
def test_non_integer_ids_are_type_errors(dt):
    ids = np.zeros((2, 3), dtype=dt)
    with pytest.raises(TypeError, match="ids must be an integer array"):
        K.embedding(m((10, 4)), ids)
    with pytest.raises(TypeError, match="rows must be an integer array"):
        K.scatter_add_rows(m((10, 4)), ids.reshape(-1), m((6, 4)))
    with pytest.raises(TypeError, match="rows must be an integer array"):
        K.coalesce_rows(ids.reshape(-1), m((6, 4)))
    with pytest.raises(TypeError, match="class ids must be an integer array"):
        K.softmax_cross_entropy(m((2, 3)), ids[:, 0])


@pytest.mark.parametrize("call", [
    lambda W, r: K.scatter_add_rows(W, r, m((2, 3))),
    lambda W, r: K.sgd_update_rows(W, r, m((2, 3)), 0.1),
    lambda W, r: K.adam_update_rows(W, r, m((2, 3)), m((5, 3)), m((5, 3)), 1e-3, 0.9, 0.999,
                                    1e-8, 1),
])
@pytest.mark.parametrize("bad", [-1, 5])
def test_row_updates_validate_before_writing(call, bad):
    W = m((5, 3))
    with pytest.raises(IndexError, match=f"row {bad} is out of range for a table of 5 rows"):
        call(W, np.array([1, bad]))
    assert (W == 1).all()  # nothing written


@pytest.mark.parametrize("bad", [-1, 3, 99])
def test_class_ids_outside_range_are_value_errors(bad):
    y = np.array([0, bad])
    with pytest.raises(ValueError, match=rf"class id {bad} is outside \[0, 3\)"):
        K.softmax_cross_entropy(m((2, 3)), y)
    out = m((2, 3))
    with pytest.raises(ValueError, match=rf"class id {bad} is outside \[0, 3\)"):
        K.backprop_softmax_cross_entropy(m((2, 3)), y, 1.0, out)
    assert (out == 1).all()


# ------------------------------------------------------------------ other arguments
def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        K.bias_act(m((2, 2)), None, "gelu")
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        K.backprop_act(m(2), m(2), "softmax")


def test_adam_step_counts_from_one():
    with pytest.raises(ValueError, match="step counts from 1, got 0"):
        K.adam_update(m(2), m(2), m(2), m(2), 1e-3, 0.9, 0.999, 1e-8, 0)


def test_dropout_mask_arguments():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.0"):
        K.dropout_mask_from_uniform(m(3), 1.0, f32)
    with pytest.raises(TypeError, match="uniform draws must be float64"):
        K.dropout_mask_from_uniform(m(3, f32), 0.5, f32)
    with pytest.raises(TypeError, match="mask dtype must be float32 or float64"):
        K.dropout_mask_from_uniform(m(3), 0.5, np.int32)


def test_unsupported_broadcast_is_a_value_error_subclass():
    # issue 7: mul compiles every broadcast pattern (no UnsupportedBroadcast any more)
    assert K.mul(m((3, 1)), m((1, 4))).shape == (3, 4)
    with pytest.raises(ValueError):  # (every unbroadcast pattern is compiled since issue 7)
        K.unbroadcast(m((2, 3, 4)), (3, 5))
    with pytest.raises(TypeError, match="axis must be an int"):
        K.reduce_sum(m((2, 2)), axis="rows")


def test_threads_api():
    n = K.get_num_threads()
    assert isinstance(n, int) and n >= 1
    try:
        K.set_num_threads(3)
        assert K.get_num_threads() == 3
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="positive integer"):
                K.set_num_threads(bad)
        assert K.get_num_threads() == 3
    finally:
        K.set_num_threads(n)


def test_default_threads_respect_env(monkeypatch):
    import os
    monkeypatch.setenv("FASTBP_NUM_THREADS", "1")
    assert K._default_threads() == 1
    monkeypatch.setenv("FASTBP_NUM_THREADS", "10000")
    assert K._default_threads() == (os.cpu_count() or 1)
    monkeypatch.setenv("FASTBP_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="FASTBP_NUM_THREADS"):
        K._default_threads()


def test_boundscheck_flag():
    import os
    assert isinstance(K.BOUNDSCHECK, bool)
    assert isinstance(K.LIBMVEC, bool)
    if os.environ.get("FASTBP_BOUNDSCHECK", "0") not in ("", "0"):
        assert K.BOUNDSCHECK


# ------------------------------------------------------------------ fuzz: never crash
_ARRAYS = [
    None, 1.0, [1.0], np.zeros(0), np.ones(3), np.ones(3, f32), np.ones((2, 3)),
    np.ones((3, 2), f32), np.ones((0, 3)), np.ones((2, 3))[:, ::2], np.arange(6).reshape(2, 3),
    np.array([[-1, 7]]), np.ones((2, 3, 4)), np.array(2.0),
]
_FUZZ = {
    "gemm": 2, "gemv": 2, "ger": 2, "dot": 2, "add": 2, "sub": 2, "mul": 2, "add_bias": 2,
    "backprop_mul": 2, "backprop_tanh": 2, "backprop_bias": 1, "tanh": 1, "sigmoid": 1,
    "relu": 1, "embedding": 2, "coalesce_rows": 2, "softmax_cross_entropy": 2,
    "sigmoid_bce": 2, "reduce_sum": 1,
}


@pytest.mark.parametrize("name", sorted(_FUZZ))
def test_garbage_arguments_raise_cleanly(name):
    fn = getattr(K, name)
    for args in itertools.product(_ARRAYS, repeat=_FUZZ[name]):
        try:
            fn(*args)
        except (TypeError, ValueError, IndexError):
            pass
    # with an out of every kind, too
    if name in ("gemm", "gemv", "ger", "backprop_tanh", "backprop_mul"):
        for args in itertools.product(_ARRAYS[3:], repeat=3):
            try:
                fn(*args)
            except (TypeError, ValueError, IndexError):
                pass


def test_stub_lists_the_public_api():
    import ast
    import pathlib

    stub = pathlib.Path(K.__file__).with_name("_kernels.pyi")
    tree = ast.parse(stub.read_text())
    declared = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(K) if not n.startswith("_") and callable(getattr(K, n))
              and getattr(getattr(K, n), "__module__", None) == K.__name__}
    assert public - declared == set()
    for name in public:
        assert getattr(K, name).__doc__, f"{name} has no docstring"


def test_partial_overlap_is_rejected_in_place_is_allowed():
    a = np.arange(6.0)
    with pytest.raises(ValueError, match="out partly overlaps dY"):
        K.backprop_relu(a[:-1], m(5), out=a[1:])
    with pytest.raises(ValueError, match="W partly overlaps dW"):
        K.sgd_update(a[1:], a[:-1], 0.1)
    with pytest.raises(ValueError, match="out partly overlaps X"):
        K.scale(a[:-1], 2.0, out=a[1:])
    W = np.arange(4.0)
    K.sgd_update(W, W, 0.5)  # exactly in place: fine
    np.testing.assert_array_equal(W, np.arange(4.0) * 0.5)
    S = m((3, 2))
    with pytest.raises(ValueError, match="separate buffers"):
        K.adam_update(S, m((3, 2)), S, m((3, 2)), 1e-3, 0.9, 0.999, 1e-8, 1)


def test_scatter_values_viewing_the_table_are_snapshotted():
    E = np.arange(12.0).reshape(4, 3)
    ref = E.copy()
    np.add.at(ref, np.array([1, 0]), E[:2].copy())
    K.scatter_add_rows(E, np.array([1, 0]), E[:2])
    np.testing.assert_array_equal(E, ref)


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "relu"])
def test_zero_d_copied_input_keeps_its_shape(op):
    swapped = np.array(0.5, dtype=">f8")
    assert getattr(K, op)(swapped).shape == ()
    assert K.scale(swapped, 2.0).shape == ()


def test_reduce_sum_axis_errors_like_numpy():
    with pytest.raises(ValueError, match="duplicate value in axis"):
        K.reduce_sum(m((2, 3)), (0, 0))
    with pytest.raises(np.exceptions.AxisError, match="axis 2 is out of bounds"):
        K.reduce_sum(m((2, 3)), 2)
