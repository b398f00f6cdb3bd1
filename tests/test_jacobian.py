"""fb.jacobian: shapes, dtypes, inputs as arrays or tensors, and its errors, on both
backends. (The lecture's Jacobian identities are in test_lecture.py.)"""

import numpy as np
import pytest

import fastbp as fb


def test_shape_is_output_shape_plus_input_shape(backend, rng):
    W = rng.standard_normal((4, 3))
    x = rng.standard_normal((3, 2))
    J = fb.jacobian(lambda x: fb.tanh(fb.Tensor(W) @ x), x)
    assert J.shape == (4, 2, 3, 2)
    # J[i, j, k, l] = d tanh(Wx)[i, j] / d x[k, l] = (1 - h[i, j]^2) W[i, k] [j == l]
    h = np.tanh(W @ x)
    expected = np.einsum("ij,ik,jl->ijkl", 1 - h**2, W, np.eye(2))
    np.testing.assert_allclose(J, expected, rtol=1e-12, atol=1e-15)


def test_several_inputs_give_a_tuple(backend, rng):
    a = rng.standard_normal(3)
    b = rng.standard_normal(3)
    Ja, Jb = fb.jacobian(lambda a, b: a * b, a, b)
    np.testing.assert_array_equal(Ja, np.diag(b))
    np.testing.assert_array_equal(Jb, np.diag(a))


def test_scalar_output_and_scalar_input(backend):
    J = fb.jacobian(lambda x: (x * x).sum(), np.array([1.0, 2.0]))
    assert J.shape == (2,)
    np.testing.assert_array_equal(J, [2.0, 4.0])
    J0 = fb.jacobian(lambda x: x * x * x, 2.0)  # a Python number: a 0-d float64 input
    assert J0.shape == () and J0.dtype == np.float64 and J0 == 12.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(backend, dtype):
    x = np.array([0.5, -1.0], dtype)
    J = fb.jacobian(fb.sigmoid, x)
    assert J.dtype == dtype
    s = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(J, np.diag(s * (1 - s)), rtol=1e-6)


def test_tensor_inputs_keep_their_grad(backend):
    x = fb.Parameter(np.array([1.0, 2.0]))
    x.grad = np.array([10.0, 10.0])
    W = fb.Parameter(np.array([[1.0, 2.0], [3.0, 4.0]]))  # closed over by f
    W.grad = before = np.full((2, 2), 5.0)
    J = fb.jacobian(lambda x: W @ x, x)
    np.testing.assert_array_equal(J, W.data)
    np.testing.assert_array_equal(x.grad, [10.0, 10.0])
    assert W.grad is before
    np.testing.assert_array_equal(W.grad, np.full((2, 2), 5.0))
    # a non-leaf tensor as the input: the Jacobian at its value
    J2 = fb.jacobian(lambda z: z * z, x * 3.0)
    np.testing.assert_array_equal(J2, np.diag([6.0, 12.0]))


def test_output_independent_of_an_input_gives_zeros(backend):
    a = np.array([1.0, 2.0])
    b = np.array([3.0, 4.0, 5.0])
    Ja, Jb = fb.jacobian(lambda a, b: a * 2.0, a, b)
    np.testing.assert_array_equal(Ja, 2 * np.eye(2))
    assert Jb.shape == (2, 3) and not Jb.any()
    # no dependence at all: the output does not even require grad
    J = fb.jacobian(lambda a: fb.Tensor(np.ones(4)), a)
    assert J.shape == (4, 2) and not J.any()
    W = fb.Parameter(np.ones(3))  # depends on a foreign parameter only
    J = fb.jacobian(lambda a: fb.tanh(W), a)
    assert J.shape == (3, 2) and not J.any() and W.grad is None


def test_identity_and_reused_input(backend):
    x = np.array([1.0, -1.0, 2.0])
    np.testing.assert_array_equal(fb.jacobian(lambda x: x, x), np.eye(3))
    np.testing.assert_array_equal(fb.jacobian(lambda x: x * x + x, x), np.diag(2 * x + 1))


def test_works_under_no_grad(backend):
    with fb.no_grad():
        J = fb.jacobian(lambda x: x * x, np.array([3.0]))
        assert not fb.is_grad_enabled()  # restored after the call
    np.testing.assert_array_equal(J, [[6.0]])


def test_matches_gradient_of_each_output(backend, rng):
    W = rng.standard_normal((3, 5))
    x = rng.standard_normal(5)
    J = fb.jacobian(lambda W: fb.sigmoid(W @ fb.Tensor(x)), W)
    for i in range(3):
        Wt = fb.Parameter(W.copy())
        (fb.sigmoid(Wt @ fb.Tensor(x)) * np.eye(3)[i]).sum().backward()  # output i alone
        np.testing.assert_allclose(J[i], Wt.grad, rtol=1e-12)


def test_errors(backend):
    with pytest.raises(TypeError, match="f must return a fastbp Tensor, got ndarray"):
        fb.jacobian(lambda x: x.data * 2, np.ones(2))
    with pytest.raises(TypeError, match=r"got tuple \(one output only\)"):
        fb.jacobian(lambda x: (x, x), np.ones(2))
    with pytest.raises(TypeError, match="f must be callable"):
        fb.jacobian(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="at least one input"):
        fb.jacobian(lambda: fb.Tensor(1.0))
    with pytest.raises(TypeError, match="jacobian input 1 must be float32 or float64"):
        fb.jacobian(lambda a, b: a, np.ones(2), np.arange(2))
    with pytest.raises(TypeError, match="dtype mismatch"):
        fb.jacobian(lambda a, b: a * b, np.ones(2), np.ones(2, np.float32))
