"""The general engine's ops (issue 7) across backends and dtypes: forward values and
gradients agree between the numpy reference and the compiled backend (float64 ~1e-12,
float32 ~1e-5); float32 stays float32 end to end; mixing float32 and float64 raises
TypeError; ops under no_grad record nothing; detect_anomaly names the op; views stay
views; bad input raises the documented errors. The cases are in tests/_ops_cases.py."""

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: find the cases
from _ops_cases import CASES  # noqa: E402

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _run(name, dtype, backend):
    """Forward value and input gradients of case ``name`` on ``backend``."""
    build, fn = CASES[name]
    with fb.use_backend(backend):
        inputs = build(np.random.default_rng(zlib.crc32(name.encode())), dtype)
        out = fn(*inputs)
        proj = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
        out.backward(proj)
    return out, inputs


def _close(got, want, tol, what):
    scale = max(1.0, float(np.abs(want).max()) if np.size(want) else 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_backends_agree(name, dtype):
    want, ref_inputs = _run(name, dtype, "numpy")
    got, inputs = _run(name, dtype, "cython")
    tol = TOL[dtype]
    assert got.shape == want.shape
    _close(got.data, want.data, tol, f"{name} forward")
    for i, (a, b) in enumerate(zip(inputs, ref_inputs)):
        ga = a.grad.toarray() if isinstance(a.grad, fb.RowSparseGrad) else a.grad
        gb = b.grad.toarray() if isinstance(b.grad, fb.RowSparseGrad) else b.grad
        _close(ga, gb, tol, f"{name} gradient of input {i}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_stays_float32(name, backend):
    out, inputs = _run(name, np.float32, backend)
    assert out.dtype == np.float32, name
    for t in inputs:
        assert t.grad is not None and t.grad.dtype == np.float32, name


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_grad_records_nothing(name, backend):
    build, fn = CASES[name]
    inputs = build(np.random.default_rng(0), np.float64)
    with fb.no_grad():
        out = fn(*inputs)
    assert not out.requires_grad and out.is_leaf and out._parents == ()
    with_grad = fn(*inputs)
    np.testing.assert_array_equal(out.data, with_grad.data)


# ---------------------------------------------------------------------- dtypes
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": fb.maximum,
    "minimum": fb.minimum,
    "concatenate": lambda a, b: fb.concatenate([a, b]),
    "stack": lambda a, b: fb.stack([a, b]),
    "matmul": lambda a, b: a @ b,
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_mixing_float32_and_float64_raises(op, backend):
    a = fb.Tensor(np.ones((3, 3), np.float32), requires_grad=True)
    b = fb.Tensor(np.ones((3, 3), np.float64), requires_grad=True)
    for x, y in ((a, b), (b, a), (a, b.data), (b.data, a)):
        with pytest.raises(TypeError, match="dtype"):
            BINARY[op](x, y)


def test_python_scalars_take_the_tensor_dtype(backend):
    x = fb.Tensor(np.full(3, 2.0, np.float32), requires_grad=True)
    for y in (x / 3.0, 3.0 / x, x**2.5, fb.maximum(x, 1), fb.minimum(0.5, x), -x, 1 - x):
        assert y.dtype == np.float32
        y.sum().backward()
    assert x.grad.dtype == np.float32


# ---------------------------------------------------------------------- anomaly mode
@pytest.mark.parametrize(
    "op, fn",
    [
        ("log", lambda x: fb.log(x)),
        ("sqrt", lambda x: fb.sqrt(x)),
        ("power", lambda x: x**0.5),
        ("div", lambda x: (x + 2.0) / (x + 2.0)),  # 0 / 0 at x = -2
    ],
)
def test_detect_anomaly_names_the_op(op, fn, backend):
    x = fb.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = fn(x)  # NaN silently outside anomaly mode, and no RuntimeWarning
    assert not np.isfinite(y.data).all()
    with fb.detect_anomaly():
        with pytest.raises(fb.AnomalyError, match=f"op '{op}' produced nan"):
            fn(x)


def test_detect_anomaly_names_the_op_in_backward(backend):
    x = fb.Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with fb.detect_anomaly():
        y = fb.sqrt(x)  # finite forward, infinite derivative at 0
        with pytest.raises(fb.AnomalyError, match="backward of op 'sqrt' produced inf"):
            y.sum().backward()


def test_no_runtime_warnings(backend):
    x = fb.Tensor(np.array([-1.0, 0.0, 1.0]), requires_grad=True)
    with np.errstate(all="raise"):
        ys = [fb.log(x), fb.sqrt(x), 1.0 / x, x**-0.5, fb.exp(x * 1000.0),
              fb.logsumexp(fb.Tensor([-np.inf, -np.inf])), fb.softmax(x * 1e308)]
        for y in ys[:5]:
            y.sum().backward()


# ---------------------------------------------------------------------- views
def test_views_share_memory(backend):
    x = fb.Parameter(np.arange(24.0).reshape(2, 3, 4))
    views = {
        "reshape": x.reshape(6, 4),
        "reshape_minus1": x.reshape(-1),
        "T": x.T,
        "transpose": x.transpose(1, 0, 2),
        "int": x[1],
        "0-d": x[1, 2, 3],
        "slices": x[:, 1:, ::-2],
        "none_ellipsis": x[None, ..., 0],
        "chain": x.transpose(2, 0, 1)[1:, :, ::-1],
    }
    for name, v in views.items():
        assert np.shares_memory(v.data, x.data), name
    assert views["0-d"].shape == () and views["0-d"].item() == 23.0
    # gathering, and reshaping a non-contiguous view, copy (and stay correct)
    g = x[[0, 1]]
    assert not np.shares_memory(g.data, x.data)
    r = x.T.reshape(-1)
    assert not np.shares_memory(r.data, x.data)
    np.testing.assert_array_equal(r.data, x.data.T.reshape(-1))


def test_view_backward_accumulates_into_the_base(backend):
    x = fb.Parameter(np.arange(12.0).reshape(3, 4))
    y = x.T[::-1] * 2.0 + x[:, None, 1:2].sum() + x.reshape(4, 3)[0].sum()
    y.backward(np.ones(y.shape))
    want = np.full((3, 4), 2.0)  # x.T[::-1] * 2
    want[:, 1] += 12.0  # each of the 12 outputs adds the sum of x[:, 1]
    want.reshape(-1)[:3] += 12.0  # ... and the sum of x's first three elements
    np.testing.assert_array_equal(x.grad, want)


def test_view_made_a_leaf_gets_a_contiguous_grad(backend):
    x = fb.Parameter(np.arange(6.0).reshape(2, 3))
    with fb.no_grad():
        v = x.T  # a leaf whose data is a transposed view
    v.requires_grad = True
    (fb.tanh(v) * v).sum().backward()
    assert v.grad.flags.c_contiguous and v.grad.shape == (3, 2)
    t = np.tanh(x.data.T)
    np.testing.assert_allclose(v.grad, t + x.data.T * (1 - t * t), rtol=1e-14)


# ---------------------------------------------------------------------- numpy semantics
KEYS = [
    1, -1, (1, 2), (slice(None), 2), (slice(1, None), slice(None, None, -2)), (None, 0),
    (Ellipsis, 1), (0, Ellipsis, None), [0, 0, 1], ([0, 1, 0], [2, 2, 1]),
    (slice(None), [1, 1]), ([1, 0], slice(None), [2, 2]), (1, slice(None), [0, 3]),
    (slice(None), [0, 2], [1, 3]), (Ellipsis, [0, 0, 3]), (None, [1, 0], slice(1, None)),
    (np.array([[0, 1], [1, 1]]),), (np.array([True, False]),),
    (slice(None), np.array([True, False, True])), ([-1, 0], -2), (0, [2, 1], None),
]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
def test_getitem_matches_numpy(key, backend):
    X = np.arange(24.0).reshape(2, 3, 4)
    x = fb.Parameter(X.copy())
    y = x[key]
    want = X[key]
    assert y.shape == want.shape
    np.testing.assert_array_equal(y.data, want)
    G = np.random.default_rng(0).standard_normal(want.shape)
    y.backward(G)
    expect = np.zeros_like(X)
    np.add.at(expect, key, G)
    np.testing.assert_allclose(x.grad, expect, rtol=1e-14)


def test_forward_values_match_numpy(backend, rng):
    A = rng.standard_normal((3, 4))
    B = rng.uniform(0.5, 2.0, (4,))
    a, b = fb.Tensor(A), fb.Tensor(B)
    np.testing.assert_allclose((a / b).data, A / B, rtol=1e-15)
    np.testing.assert_allclose((2.0 / b).data, 2.0 / B, rtol=1e-15)
    np.testing.assert_allclose((b**1.5).data, B**1.5, rtol=1e-14)
    np.testing.assert_allclose(fb.exp(a).data, np.exp(A), rtol=1e-14)
    np.testing.assert_allclose(fb.log(b).data, np.log(B), rtol=1e-14)
    np.testing.assert_allclose(fb.sqrt(b).data, np.sqrt(B), rtol=1e-15)
    np.testing.assert_array_equal(fb.maximum(a, b).data, np.maximum(A, B))
    np.testing.assert_array_equal(fb.minimum(a, 0.0).data, np.minimum(A, 0.0))
    np.testing.assert_array_equal(a.max(axis=(0, 1)).data, A.max())
    np.testing.assert_array_equal(a.max(axis=0, keepdims=True).data, A.max(0, keepdims=True))
    lse = np.log(np.exp(A).sum(axis=1))
    np.testing.assert_allclose(fb.logsumexp(a).data, lse, rtol=1e-14)
    np.testing.assert_allclose(fb.logsumexp(a, axis=None).data, np.log(np.exp(A).sum()),
                               rtol=1e-14)
    np.testing.assert_allclose(fb.softmax(a, axis=0).data,
                               np.exp(A) / np.exp(A).sum(0, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(fb.log_softmax(a).data, A - lse[:, None], rtol=1e-14)
    np.testing.assert_array_equal(fb.concatenate([a, a], axis=1).data,
                                  np.concatenate([A, A], 1))
    np.testing.assert_array_equal(fb.stack([a, a], axis=-1).data, np.stack([A, A], -1))
    np.testing.assert_array_equal(a.transpose().data, A.T)


def test_softmax_family_stable_for_any_magnitude(backend):
    x = fb.Tensor(np.array([[1000.0, 1001.0, -1000.0], [-1e4, -1e4 + 1, -1e4 + 2]]))
    p = fb.softmax(x).data
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    assert np.isfinite(fb.log_softmax(x).data).all()
    np.testing.assert_allclose(fb.logsumexp(x).data[0], 1001.0 + np.log1p(np.exp(-1.0)),
                               rtol=1e-15)
    inf = fb.logsumexp(fb.Tensor(np.array([[np.inf, 0.0], [-np.inf, -np.inf]])))
    assert inf.data[0] == np.inf and inf.data[1] == -np.inf


# ---------------------------------------------------------------------- tie rules
def test_maximum_minimum_split_ties_evenly(backend):
    a = fb.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = fb.Tensor(np.array([1.0, 0.0, 5.0]), requires_grad=True)
    fb.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(b.grad, [0.5, 0.0, 1.0])
    a.zero_grad()
    b.zero_grad()
    fb.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])
    z = fb.Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    fb.maximum(z, 0.0).sum().backward()  # relu with the tie at 0 split
    np.testing.assert_array_equal(z.grad, [0.0, 0.5, 1.0])


def test_max_routes_to_the_first_argmax(backend):
    x = fb.Tensor(np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 0.0, 5.0, 5.0]]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0, 0, 0], [1, 0, 0, 0]])
    x.zero_grad()
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0, 0], [1, 0, 0, 0]])
    x.zero_grad()
    x.max(axis=0, keepdims=True).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0, 0], [1, 0, 1, 1]])


# ---------------------------------------------------------------------- bad input
def test_reshape_incompatible_names_both_shapes(backend):
    x = fb.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(-1, 4\)"):
        x.reshape(-1, 4)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        x.reshape(-1, -1)
    assert x.reshape((3, -1)).shape == (3, 2)


@pytest.mark.parametrize(
    "key",
    [3, -4, (0, 5), [0, 3], ([0, 1], [0, 4]), (slice(None), [-5]), (0, 0, 0)],
    ids=repr,
)
def test_index_out_of_range_raises_index_error(key, backend):
    x = fb.Tensor(np.ones((3, 4)), requires_grad=True)
    with pytest.raises(IndexError):
        x[key]


def test_bad_index_types(backend):
    x = fb.Tensor(np.ones((3, 4)))
    with pytest.raises(IndexError):
        x[np.array([0.5])]
    with pytest.raises(IndexError):
        x["a"]


def test_concatenate_and_stack_errors(backend):
    a = fb.Tensor(np.ones((2, 3)))
    b = fb.Tensor(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        fb.concatenate([a, b])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        fb.stack([a, b])
    with pytest.raises(ValueError, match="0-d"):
        fb.concatenate([fb.Tensor(1.0), fb.Tensor(2.0)])
    with pytest.raises(ValueError, match="axis"):
        fb.concatenate([a, a], axis=2)
    with pytest.raises(ValueError):
        fb.concatenate([])
    assert fb.concatenate([a, b], axis=1).shape == (2, 7)


def test_other_bad_input(backend):
    x = fb.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        x / fb.Tensor(np.ones(4))
    with pytest.raises(TypeError, match="exponent"):
        x ** x
    with pytest.raises(ValueError, match="axis"):
        x.max(axis=2)
    with pytest.raises(ValueError, match="axis"):
        fb.softmax(x, axis=-3)
    with pytest.raises(ValueError, match="permutation"):
        x.transpose(0, 0)
    with pytest.raises(TypeError):
        fb.exp(np.ones(3))


def _random_key(rng, shape):
    """A random numpy index for ``shape``: ints, slices (any step), None, Ellipsis and
    integer arrays (with repeats and negatives) in random positions."""
    key, axis = [], 0
    used_ellipsis = False
    while axis < len(shape) and rng.random() < 0.85:
        kind = rng.integers(0, 6)
        n = shape[axis]
        if kind == 0:
            key.append(int(rng.integers(-n, n)))
        elif kind == 1:
            start, stop = (int(v) for v in rng.integers(-n - 1, n + 1, 2))
            key.append(slice(start, stop, int(rng.choice([-2, -1, 1, 2, 3]))))
        elif kind == 2:
            key.append(None)
            continue
        elif kind == 3 and not used_ellipsis:
            key.append(Ellipsis)
            used_ellipsis = True
            axis = len(shape) - int(rng.integers(0, len(shape) - axis + 1))
            continue
        else:
            key.append(rng.integers(-n, n, size=tuple(rng.integers(1, 3, rng.integers(0, 2)))))
        axis += 1
    return tuple(key)


def test_getitem_random_keys_match_numpy(backend):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3, 4, 5))
    for trial in range(300):
        key = _random_key(rng, X.shape)
        try:
            want = X[key]
        except IndexError:  # e.g. index arrays that do not broadcast together
            continue
        x = fb.Parameter(X.copy())
        y = x[key]
        assert y.shape == want.shape, key
        np.testing.assert_array_equal(y.data, want, err_msg=repr(key))
        G = rng.standard_normal(want.shape)
        y.backward(G)
        expect = np.zeros_like(X)
        np.add.at(expect, key, G)
        np.testing.assert_allclose(x.grad, expect, rtol=1e-13, atol=1e-13, err_msg=repr(key))
