"""Custom nodes (fb.Function): the torch.autograd.Function contract and every error case,
on both backends."""

import numpy as np
import pytest

import fastbp as fb


class MultiplyGate(fb.Function):
    """The lecture's node type: z = x * y, dx = dz * y, dy = dz * x."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y, grad * x


class Square(fb.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):  # one input: a single array
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class Scale(fb.Function):
    """y = x * c with a constant c (a number or an array)."""

    @staticmethod
    def forward(ctx, x, c):
        ctx.c = c
        return (x * c).astype(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx.c).astype(grad.dtype), None


def _returning(*grads, out=lambda x, y: x * y):
    """A two-input Function whose backward returns ``grads`` as given."""

    class Bad(fb.Function):
        @staticmethod
        def forward(ctx, x, y):
            return out(x, y)

        @staticmethod
        def backward(ctx, grad):
            return grads[0] if len(grads) == 1 else grads

    Bad.__name__ = "BadGate"
    return Bad


def _pair(dtype=np.float64, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    return (fb.Parameter(rng.standard_normal(shape).astype(dtype)),
            fb.Parameter(rng.standard_normal(shape).astype(dtype)))


# ---------------------------------------------------------------------- the contract
def test_multiply_gate_forward_backward(backend):
    x, y = _pair()
    z = MultiplyGate.apply(x, y)
    assert isinstance(z, fb.Tensor) and z.op == "MultiplyGate" and z.requires_grad
    np.testing.assert_array_equal(z.data, x.data * y.data)
    g = np.arange(6.0).reshape(2, 3)
    z.backward(g)
    np.testing.assert_array_equal(x.grad, g * y.data)
    np.testing.assert_array_equal(y.grad, g * x.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(backend, dtype):
    x, y = _pair(dtype)
    z = MultiplyGate.apply(x, y)
    assert z.dtype == dtype
    (z.sum() * 2.0).backward()
    assert x.grad.dtype == dtype and y.grad.dtype == dtype
    np.testing.assert_allclose(x.grad, 2 * y.data, rtol=1e-6)


def test_single_input_returns_a_single_array_or_a_one_tuple(backend):
    x = fb.Parameter(np.array([1.0, -2.0, 3.0]))
    Square.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)

    class SquareTuple(Square):
        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return (2 * x * grad,)

    x.zero_grad()
    SquareTuple.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_zero_d_inputs_and_numpy_scalar_gradients(backend):
    class Cube(fb.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3  # a 0-d array

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return (3 * x**2 * grad)[()]  # a numpy scalar is accepted for a 0-d input

    x = fb.Parameter(np.array(2.0))
    y = Cube.apply(x)
    assert y.shape == () and y.item() == 8.0
    y.backward()
    assert x.grad == 12.0


def test_constants_pass_through_and_take_none(backend):
    x = fb.Parameter(np.array([1.0, 2.0]))
    y = Scale.apply(x, 3.0)
    np.testing.assert_array_equal(y.data, [3.0, 6.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    # a numpy array argument is a constant too (not a graph input)
    c = np.array([2.0, -1.0])
    x.zero_grad()
    Scale.apply(x, c).sum().backward()
    np.testing.assert_array_equal(x.grad, c)


def test_none_gradient_and_needs_input_grad(backend):
    seen = {}

    class OnlyFirst(fb.Function):
        @staticmethod
        def forward(ctx, x, y, k):
            seen["needs"] = ctx.needs_input_grad
            return x + y * k

        @staticmethod
        def backward(ctx, grad):
            return grad, None, None

    x = fb.Parameter(np.ones(3))
    y = fb.Tensor(np.ones(3))  # no grad needed
    OnlyFirst.apply(x, y, 2.0).sum().backward()
    assert seen["needs"] == (True, False, False)
    np.testing.assert_array_equal(x.grad, np.ones(3))
    assert y.grad is None

    w = fb.Parameter(np.ones(3))
    OnlyFirst.apply(x, w, 2.0).sum().backward()  # None for an input that requires grad
    assert w.grad is None


def test_gradient_for_an_input_without_requires_grad_is_ignored(backend):
    x = fb.Parameter(np.ones(3))
    y = fb.Tensor(np.full(3, 2.0))
    MultiplyGate.apply(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)
    assert y.grad is None


def test_ctx_keeps_other_attributes_and_saved_tensors_defaults_empty(backend):
    class Shift(fb.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.shift = 1.5
            assert ctx.saved_tensors == ()
            return x + ctx.shift

        @staticmethod
        def backward(ctx, grad):
            assert ctx.shift == 1.5
            return grad

    x = fb.Parameter(np.zeros(2))
    y = Shift.apply(x)
    np.testing.assert_array_equal(y.data, [1.5, 1.5])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_used_several_times_in_one_graph(backend):
    x, y = _pair(seed=1)
    # z = x*y, w = z*x = x^2 y: dw/dx = 2xy, dw/dy = x^2; plus the same node type on (x, x)
    w = MultiplyGate.apply(MultiplyGate.apply(x, y), x) + MultiplyGate.apply(x, x)
    w.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data * y.data + 2 * x.data, rtol=1e-12)
    np.testing.assert_allclose(y.grad, x.data**2, rtol=1e-12)


def test_one_node_output_used_twice(backend):
    x, y = _pair(seed=2)
    z = MultiplyGate.apply(x, y)
    (z * z + fb.tanh(z)).sum().backward()  # the node's upstream gradient accumulates
    dz = 2 * z.data + (1 - np.tanh(z.data) ** 2)
    np.testing.assert_allclose(x.grad, dz * y.data, rtol=1e-12)
    np.testing.assert_allclose(y.grad, dz * x.data, rtol=1e-12)


def test_gradcheck_custom_nodes_in_a_composite(backend):
    rng = np.random.default_rng(3)
    W = fb.Parameter(rng.standard_normal((3, 4)))
    x = fb.Parameter(rng.standard_normal(4))
    u = fb.Parameter(rng.standard_normal(3))

    def f(W, x, u):
        h = fb.tanh(W @ x)
        return Square.apply(MultiplyGate.apply(u, h)).sum() + Scale.apply(h, 0.5).sum()

    assert fb.gradcheck(f, [W, x, u])


def test_gradcheck_non_scalar_output(backend):
    x, y = _pair(seed=4)
    assert fb.gradcheck(lambda x, y: MultiplyGate.apply(MultiplyGate.apply(x, y), x), [x, y])


def test_returned_arrays_are_never_written_into(backend):
    kept = np.full((2, 3), 7.0)

    class Leaky(fb.Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, grad):
            return kept  # the same array every time

    a = fb.Parameter(np.ones((2, 3)))
    h = a * 1.0  # a non-leaf: its gradient accumulates the two contributions
    (Leaky.apply(h) + Leaky.apply(h)).sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 14.0))
    np.testing.assert_array_equal(kept, np.full((2, 3), 7.0))


def test_forward_and_backward_see_read_only_arrays(backend):
    class InPlace(fb.Function):
        @staticmethod
        def forward(ctx, x):
            x += 1
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = fb.Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="read-only"):
        InPlace.apply(x)
    np.testing.assert_array_equal(x.data, np.zeros(3))

    class InPlaceBackward(fb.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            grad *= 2
            return grad

    with pytest.raises(ValueError, match="read-only"):
        InPlaceBackward.apply(x).sum().backward()


def test_output_never_aliases_an_input(backend):
    class Identity(fb.Function):
        @staticmethod
        def forward(ctx, x):
            return x.T  # a read-only view of the input

        @staticmethod
        def backward(ctx, grad):
            return grad.T  # non-contiguous: accepted

    x = fb.Parameter(np.arange(6.0).reshape(2, 3))
    y = Identity.apply(x)
    assert not np.shares_memory(y.data, x.data) and y.data.flags.c_contiguous
    np.testing.assert_array_equal(y.data, x.data.T)
    w = np.arange(6.0).reshape(3, 2)
    (y * w).sum().backward()
    np.testing.assert_array_equal(x.grad, w.T)


def test_retain_graph_and_second_backward(backend):
    x, y = _pair(seed=5)
    z = MultiplyGate.apply(x, y).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad, 2 * y.data)
    with pytest.raises(RuntimeError, match="second time"):
        z.backward()


def test_no_grad_records_nothing(backend):
    class NoBackward(fb.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):  # pragma: no cover - must not run
            raise AssertionError("backward called")

    x = fb.Parameter(np.ones(2))
    with fb.no_grad():
        y = NoBackward.apply(x)
    assert not y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(y.data, [2.0, 2.0])
    z = NoBackward.apply(fb.Tensor(np.ones(2)))  # no input requires grad
    assert not z.requires_grad


def test_forward_runs_with_grad_recording_off(backend):
    class Inner(fb.Function):
        @staticmethod
        def forward(ctx, x):
            inner = fb.tanh(fb.Parameter(x.copy()))
            assert not inner.requires_grad
            return inner.data

        @staticmethod
        def backward(ctx, grad):
            return grad

    Inner.apply(fb.Parameter(np.zeros(2)))
    assert fb.is_grad_enabled()


def test_no_tensor_inputs(backend):
    class Const(fb.Function):
        @staticmethod
        def forward(ctx, n):
            return np.arange(float(n))

    y = Const.apply(3)
    assert not y.requires_grad and y.dtype == np.float64


def test_detect_anomaly_names_the_class(backend):
    class MyLog(fb.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            with np.errstate(all="ignore"):
                return np.log(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            with np.errstate(all="ignore"):
                return grad / x

    class FlatLog(MyLog):  # finite forward, backward divides by zero at 0
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return np.zeros_like(x)

    with fb.detect_anomaly():
        with pytest.raises(fb.AnomalyError, match="op 'MyLog' produced nan"):
            MyLog.apply(fb.Parameter(np.array([-1.0, 1.0])))
        x = fb.Parameter(np.array([0.0, 1.0]))
        MyLog.apply(x + 1.0).sum().backward()  # finite both ways
        np.testing.assert_allclose(x.grad, [1.0, 0.5])
        with pytest.raises(fb.AnomalyError, match="backward of op 'FlatLog' produced inf"):
            FlatLog.apply(x * 1.0).sum().backward()


# ---------------------------------------------------------------------- error cases
def test_wrong_number_of_gradients(backend):
    x, y = _pair()
    with pytest.raises(TypeError, match=r"BadGate\.backward returned 1 gradient, expected 2"):
        _returning(np.ones((2, 3))).apply(x, y).sum().backward()
    with pytest.raises(TypeError, match=r"BadGate\.backward returned 3 gradients, expected 2"):
        _returning(None, None, None).apply(x, y).sum().backward()
    with pytest.raises(TypeError, match=r"Square\.backward returned 2 gradients, expected 1"):

        class TwoForOne(Square):
            @staticmethod
            def backward(ctx, grad):
                return grad, grad

        TwoForOne.__name__ = "Square"
        TwoForOne.apply(x).sum().backward()


def test_wrong_shape_is_never_broadcast(backend):
    x, y = _pair()
    msg = r"BadGate\.backward returned a gradient of shape \(3,\) for input 1 of shape \(2, 3\)"
    with pytest.raises(ValueError, match=msg):
        _returning(np.ones((2, 3)), np.ones(3)).apply(x, y).sum().backward()
    with pytest.raises(ValueError, match=r"shape \(1, 3\) for input 0 of shape \(2, 3\)"):
        _returning(np.ones((1, 3)), None).apply(x, y).sum().backward()
    with pytest.raises(ValueError, match=r"shape \(\) for input 0 of shape \(2, 3\)"):
        _returning(np.array(1.0), None).apply(x, y).sum().backward()
    # nothing was accumulated by the failed backward
    assert x.grad is None and y.grad is None


def test_wrong_shape_for_an_input_without_grad_is_still_an_error(backend):
    x = fb.Parameter(np.ones((2, 3)))
    y = fb.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="for input 1 of shape"):
        _returning(np.ones((2, 3)), np.ones(4)).apply(x, y).sum().backward()


def test_wrong_dtype(backend):
    x, y = _pair(np.float64)
    with pytest.raises(TypeError, match=r"BadGate\.backward returned a gradient of dtype "
                       r"float32 for input 0 of dtype float64"):
        _returning(np.ones((2, 3), np.float32), None).apply(x, y).sum().backward()
    x32, y32 = _pair(np.float32)
    with pytest.raises(TypeError, match="dtype float64 for input 1 of dtype float32"):
        _returning(None, np.ones((2, 3))).apply(x32, y32).sum().backward()
    with pytest.raises(TypeError, match="dtype int64 for input 0"):
        _returning(np.ones((2, 3), np.int64), None).apply(x, y).sum().backward()


def test_gradient_that_is_not_an_array(backend):
    x, y = _pair()
    with pytest.raises(TypeError, match=r"BadGate\.backward returned list as the gradient "
                       r"for input 0"):
        _returning([[1.0] * 3] * 2, None).apply(x, y).sum().backward()
    with pytest.raises(TypeError, match="returned float as the gradient for input 1"):
        _returning(None, 1.0).apply(x, y).sum().backward()
    with pytest.raises(TypeError, match="returned a fastbp Tensor as the gradient for input 0"):
        _returning(fb.Tensor(np.ones((2, 3))), None).apply(x, y).sum().backward()
    with pytest.raises(TypeError, match=r"BadGate\.backward returned 1 gradient, expected 2"):
        _returning(np.ones((2, 3))).apply(x, y).sum().backward()  # one array for two inputs


def test_gradient_for_a_constant(backend):
    x = fb.Parameter(np.ones(2))

    class BadScale(Scale):
        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.c, grad

    with pytest.raises(TypeError, match=r"BadScale\.backward returned a gradient for input 1, "
                       r"which is not a Tensor but a constant \(float\)"):
        BadScale.apply(x, 2.0).sum().backward()
    assert x.grad is None


def test_mixed_input_dtypes(backend):
    x = fb.Parameter(np.ones(2))
    y = fb.Parameter(np.ones(2, np.float32))
    with pytest.raises(TypeError, match=r"MultiplyGate\.apply: input 0 is float64 but "
                       "input 1 is float32"):
        MultiplyGate.apply(x, y)


@pytest.mark.parametrize(
    "result, match",
    [
        (lambda x: x.astype(np.int64), r"BadOut\.forward returned an array of dtype int64"),
        (lambda x: x.astype(np.float32), r"dtype float32 for inputs of dtype float64"),
        (lambda x: (x, x), r"BadOut\.forward returned a tuple; a custom node has one output"),
        (lambda x: fb.Tensor(x.copy()), r"BadOut\.forward returned a fastbp Tensor"),
        (lambda x: float(x.sum()), r"BadOut\.forward returned float; expected a numpy array"),
        (lambda x: None, r"BadOut\.forward returned None"),
    ],
)
def test_bad_forward_output(backend, result, match):
    class BadOut(fb.Function):
        @staticmethod
        def forward(ctx, x):
            return result(x)

        @staticmethod
        def backward(ctx, grad):  # pragma: no cover
            return grad

    with pytest.raises(TypeError, match=match):
        BadOut.apply(fb.Parameter(np.ones(3)))


def test_missing_forward_or_backward(backend):
    class NoForward(fb.Function):
        pass

    with pytest.raises(NotImplementedError, match="NoForward must define a static forward"):
        NoForward.apply(fb.Parameter(np.ones(2)))

    class NoBackward(fb.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    with pytest.raises(NotImplementedError, match="NoBackward must define a static backward"):
        NoBackward.apply(fb.Parameter(np.ones(2)))
    with fb.no_grad():  # no backward needed when nothing is recorded
        NoBackward.apply(fb.Parameter(np.ones(2)))


def test_jacobian_of_a_custom_node(backend):
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([4.0, 5.0, 6.0])
    Jx, Jy = fb.jacobian(MultiplyGate.apply, x, y)
    np.testing.assert_array_equal(Jx, np.diag(y))
    np.testing.assert_array_equal(Jy, np.diag(x))
