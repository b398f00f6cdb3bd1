"""fastbp.nn (Module, layers, Sequential), fb.save / fb.load, Tensor.retain_grad and the
out-in linear op that nn.Linear runs on."""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import fastbp as fb
from fastbp import nn
from fastbp.backends.numpy_ops import NumpyOps


# ---------------------------------------------------------------------- modules
class Block(nn.Module):
    def __init__(self, d, rng):
        super().__init__()
        self.scale = fb.Parameter(np.ones(d, np.float32))
        self.proj = nn.Linear(d, d, rng=rng)

    def forward(self, x):
        return fb.tanh(self.proj(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 3, rng=0)
        self.hidden = nn.Linear(6, 4, rng=1)
        self.block = Block(4, rng=2)
        self.not_a_param = fb.Tensor(np.zeros(2, np.float32), requires_grad=True)
        self.drop = nn.Dropout(0.5, rng=3)
        self.out = nn.Linear(4, 2, bias=False, rng=4)

    def forward(self, ids):
        return self.out(self.drop(self.block(fb.relu(self.hidden(self.emb(ids))))))


NAMES = ["emb.weight", "hidden.weight", "hidden.bias", "block.scale", "block.proj.weight",
         "block.proj.bias", "out.weight"]


def test_registration_order_and_dotted_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == NAMES
    assert list(net.state_dict()) == NAMES
    assert [p for p in net.parameters()] == [p for _, p in net.named_parameters()]
    assert net.out.bias is None and "out.bias" not in net.state_dict()
    assert [n for n, _ in net.named_children()] == ["emb", "hidden", "block", "drop", "out"]
    assert list(net.children())[2] is net.block
    assert [n for n, _ in net.named_modules()] == [
        "", "emb", "hidden", "block", "block.proj", "drop", "out"]
    assert len(list(net.modules())) == 7
    assert net.hidden.weight.shape == (4, 6) and net.hidden.bias.shape == (4,)
    # re-assigning keeps the slot; None empties it; a plain tensor is not a parameter
    net.hidden.bias = None
    assert [n for n, _ in net.named_parameters()][:3] == ["emb.weight", "hidden.weight",
                                                          "block.scale"]
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'bias'"):
        net.hidden.bias = np.zeros(4, np.float32)
    del net.block
    assert "block.scale" not in dict(net.named_parameters())
    with pytest.raises(AttributeError, match="no attribute 'block'"):
        net.block


def test_shared_parameter_listed_once_and_module_without_init():
    a = nn.Linear(3, 3, rng=0)
    seq = nn.Sequential(a, nn.Tanh(), a)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]

    class Forgot(nn.Module):
        def __init__(self):
            self.w = fb.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Forgot()


def test_repr_like_pytorch():
    m = nn.Sequential(nn.Linear(4, 8, rng=0), nn.ReLU(), nn.Dropout(0.25),
                      nn.Linear(8, 2, bias=False, rng=0))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Dropout(p=0.25)\n"
        "  (3): Linear(in_features=8, out_features=2, bias=False)\n"
        ")"
    )
    assert repr(nn.Embedding(5, 2, rng=0)) == "Embedding(5, 2)"
    assert "(block): Block(\n    (proj): Linear(" in repr(Net())


def test_sequential_indexing_and_ordered_dict():
    seq = nn.Sequential(OrderedDict([("lin", nn.Linear(2, 3, rng=0)), ("act", nn.Sigmoid())]))
    assert [n for n, _ in seq.named_parameters()] == ["lin.weight", "lin.bias"]
    assert len(seq) == 2 and isinstance(seq[1], nn.Sigmoid) and seq[-1] is seq.act
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1
    with pytest.raises(IndexError):
        seq[5]
    seq.append(nn.Tanh())
    assert [type(m).__name__ for m in seq] == ["Linear", "Sigmoid", "Tanh"]
    x = fb.Tensor(np.ones((3, 2), np.float32))
    np.testing.assert_allclose(seq(x).data, np.tanh(1 / (1 + np.exp(
        -(x.data @ seq.lin.weight.data.T + seq.lin.bias.data)))), rtol=1e-6)


def test_train_eval_propagates_and_dropout_respects_it():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    x = fb.Tensor(np.ones((50, 40), np.float32))
    d = nn.Dropout(0.5, rng=0)
    assert d(x).data.min() == 0.0 and d(x).data.max() == 2.0
    d.eval()
    assert d(x) is x
    net.train()
    assert all(m.training for m in net.modules())
    # seeded: the same masks from the same seed
    a, b = nn.Dropout(0.3, rng=7), nn.Dropout(0.3, rng=7)
    np.testing.assert_array_equal(a(x).data, b(x).data)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        nn.Dropout(1.0)


def test_zero_grad_and_forward_backward():
    net = Net()
    ids = np.array([[1, 2], [3, 3], [9, 0]])
    net(ids).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert isinstance(net.emb.weight.grad, fb.RowSparseGrad)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_module_without_forward():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)


# ---------------------------------------------------------------------- layers
def test_linear_init_matches_pytorch_default_bounds():
    lin = nn.Linear(100, 300, rng=0)
    bound = 1 / np.sqrt(100)
    for p in (lin.weight, lin.bias):
        assert p.dtype == np.float32
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.95 * bound
    assert abs(lin.weight.data.std() - bound / np.sqrt(3)) < 0.01 * bound
    same = nn.Linear(100, 300, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(same.weight.data, lin.weight.data)
    assert not np.array_equal(nn.Linear(100, 300, rng=1).weight.data, lin.weight.data)
    assert nn.Linear(3, 2, dtype=np.float64).weight.dtype == np.float64
    with pytest.raises(ValueError, match="float32 or float64"):
        nn.Linear(3, 2, dtype=np.int32)
    with pytest.raises(TypeError, match="rng"):
        nn.Linear(3, 2, rng="seed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_forward_backward_and_shapes(backend, dtype):
    rng = np.random.default_rng(0)
    lin = nn.Linear(5, 3, dtype=dtype, rng=0)
    X = rng.standard_normal((4, 5)).astype(dtype)
    x = fb.Tensor(X, requires_grad=True)
    y = lin(x)
    assert y.op == "linear" and y.dtype == dtype
    W, b = lin.weight.data, lin.bias.data
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.data, X @ W.T + b, rtol=tol, atol=tol)
    G = rng.standard_normal((4, 3)).astype(dtype)
    y.backward(G)
    np.testing.assert_allclose(x.grad, G @ W, rtol=tol, atol=tol)
    np.testing.assert_allclose(lin.weight.grad, G.T @ X, rtol=tol, atol=tol)
    np.testing.assert_allclose(lin.bias.grad, G.sum(0), rtol=tol, atol=tol)
    # 1-D and N-D inputs
    v = lin(fb.Tensor(X[0]))
    assert v.shape == (3,)
    np.testing.assert_allclose(v.data, y.data[0], rtol=tol, atol=tol)
    assert lin(fb.Tensor(X.reshape(2, 2, 5))).shape == (2, 2, 3)
    with pytest.raises(ValueError, match="not aligned"):
        lin(fb.Tensor(np.ones((2, 4), dtype)))
    with pytest.raises(ValueError, match="last axis must be 5"):
        lin(fb.Tensor(np.ones((2, 2, 4), dtype)))
    with pytest.raises(TypeError, match="dtype"):
        lin(fb.Tensor(X.astype(np.float32 if dtype == np.float64 else np.float64)))


def test_linear_gradcheck_both_backends(backend):
    rng = np.random.default_rng(1)
    lin = nn.Linear(4, 3, dtype=np.float64, rng=0)
    lin_nob = nn.Linear(3, 2, bias=False, dtype=np.float64, rng=1)
    x = fb.Tensor(rng.standard_normal((5, 4)), requires_grad=True)

    def f(*params):
        h = lin(x)
        return (lin_nob(fb.tanh(h)) ** 2).sum() + (h * h).sum()  # h used twice

    res = fb.gradcheck(f, [x, *lin.parameters(), *lin_nob.parameters()])
    assert res.passed and res.max_rel_error < 1e-6


@pytest.mark.parametrize("threads", [1, 2])
def test_weight_gradient_routes_agree(backend, monkeypatch, threads):
    import fastbp.linalg

    monkeypatch.setattr(fastbp.linalg, "get_num_threads", lambda: threads)
    rng = np.random.default_rng(3)
    lin = nn.Linear(7, 5, dtype=np.float64, rng=0)
    X = rng.standard_normal((40, 7))  # >= 32 rows: the transposed route with 2 threads
    G = rng.standard_normal((40, 5))
    x = fb.Tensor(X)
    y = lin(x)
    (y * fb.Tensor(G)).sum().backward(retain_graph=True)
    np.testing.assert_allclose(lin.weight.grad, G.T @ X, rtol=1e-12, atol=1e-12)
    (lin(x) * fb.Tensor(G)).sum().backward()  # accumulates (beta = 1)
    np.testing.assert_allclose(lin.weight.grad, 2 * G.T @ X, rtol=1e-12, atol=1e-12)


class _RecordingOps:
    """A backend's ops object that records the name of every op called through it."""

    def __init__(self, ops):
        self._ops, self.calls = ops, []

    def __getattr__(self, name):
        attr = getattr(self._ops, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


@pytest.mark.parametrize("threads, dW_ops", [(1, ["gemm"]), (2, ["gemm", "copy_into"])])
@pytest.mark.parametrize("input_grad", [False, True])
def test_out_in_linear_backward_is_backend_ops_only(backend, monkeypatch, threads, dW_ops,
                                                     input_grad):
    """Every computation of the (out, in) layer's backward -- both weight-gradient routes
    -- is a backend op (a kernel on the cython backend, replayable by a compiled plan):
    the upstream gradient in, the gradient buffers written, nothing computed beside."""
    import fastbp.linalg

    monkeypatch.setattr(fastbp.linalg, "get_num_threads", lambda: threads)
    rng = np.random.default_rng(4)
    lin = nn.Linear(7, 5, dtype=np.float64, rng=0)
    X, G = rng.standard_normal((40, 7)), rng.standard_normal((40, 5))
    x = fb.Tensor(X, requires_grad=input_grad)
    y = lin(x)
    rec = _RecordingOps(fb.backends.get_ops())
    monkeypatch.setattr(fb.backends._state, "ops", rec)
    y._backward(G)
    monkeypatch.setattr(fb.backends._state, "ops", rec._ops)
    assert rec.calls == (["gemm"] if input_grad else []) + dW_ops + ["backprop_bias"]
    np.testing.assert_allclose(lin.weight.grad, G.T @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lin.bias.grad, G.sum(axis=0), rtol=1e-12, atol=1e-12)
    if input_grad:
        np.testing.assert_allclose(x.grad, G @ lin.weight.data, rtol=1e-12, atol=1e-12)


def test_out_in_linear_is_one_call_on_the_weight_without_copy(monkeypatch):
    calls = []
    ops = fb.backends.get_ops()
    real = ops.linear  # a staticmethod (the kernel) or a bound method

    def spy(self, X, W, b=None, out=None, trans_w=False):
        calls.append((W, trans_w))
        return real(X, W, b, out, trans_w)

    monkeypatch.setattr(type(ops), "linear", spy)
    lin = nn.Linear(3, 2, rng=0)
    lin(fb.Tensor(np.ones((4, 3), np.float32)))
    assert len(calls) == 1 and calls[0][0] is lin.weight.data and calls[0][1] is True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_linear_trans_w_agrees(dtype):
    rng = np.random.default_rng(2)
    cy = fb.backends.get_ops() if fb.get_backend() == "cython" else None
    if cy is None:
        with fb.use_backend("cython"):
            cy = fb.backends.get_ops()
    ref = NumpyOps()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for n, k, m in [(0, 3, 4), (1, 1, 1), (7, 50, 9), (4, 0, 3)]:
        X = rng.standard_normal((n, k)).astype(dtype)
        W = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal(m).astype(dtype)
        want = X @ W.T + b
        for ops in (ref, cy):
            np.testing.assert_allclose(ops.linear(X, W, b, trans_w=True), want, rtol=tol,
                                       atol=tol)
            np.testing.assert_allclose(ops.linear(X, W, None, trans_w=True), X @ W.T,
                                       rtol=tol, atol=tol)
            out = np.full((n, m), np.nan, dtype)
            assert ops.linear(X, W, b, out, trans_w=True) is out
            np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
        # a transposed (non-contiguous) weight view is accepted too
        np.testing.assert_allclose(cy.linear(X, np.ascontiguousarray(W.T).T, b, trans_w=True),
                                   want, rtol=tol, atol=tol)
    with pytest.raises(TypeError):
        cy.linear(X, W, b.astype(np.float16), trans_w=True)
    with pytest.raises(ValueError, match="not aligned"):
        cy.linear(X, W.T.copy(), b, trans_w=True)


def test_linear_weight_layout_argument():
    x = fb.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="weight_layout"):
        fb.linear(x, np.ones((3, 2)), weight_layout="oi")
    with pytest.raises(ValueError, match=r"\(out, in\)"):
        fb.linear(x, np.ones((3, 2)), weight_layout="out_in")
    np.testing.assert_array_equal(fb.linear(x, np.ones((4, 3)), weight_layout="out_in").data,
                                  np.full((2, 4), 3.0))


def test_embedding_windows_and_sparse_grad(backend):
    emb = nn.Embedding(7, 2, dtype=np.float64, rng=0)
    ids = np.array([[0, 3, 3], [6, 0, 1]])
    y = emb(ids)
    assert y.shape == (2, 6)
    np.testing.assert_array_equal(y.data[1, 2:4], emb.weight.data[0])
    y.sum().backward()
    g = emb.weight.grad
    assert isinstance(g, fb.RowSparseGrad)
    np.testing.assert_array_equal(g.toarray()[:, 0], [2, 1, 0, 2, 0, 0, 1])
    assert emb(np.array([2, 5])).shape == (2, 2)
    assert abs(nn.Embedding(1000, 20, rng=0).weight.data.std() - 1.0) < 0.05  # N(0, 1)


def test_activation_modules(backend):
    x = fb.Tensor(np.array([-2.0, 0.5, 3.0]))
    np.testing.assert_allclose(nn.Tanh()(x).data, np.tanh(x.data))
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp(-x.data)))
    np.testing.assert_array_equal(nn.ReLU()(x).data, [0.0, 0.5, 3.0])


# ---------------------------------------------------------------------- state dicts
def test_state_dict_is_a_copy_and_round_trips_through_save_load(tmp_path):
    net = Net()
    sd = net.state_dict()
    sd["hidden.weight"][0, 0] = 42.0
    assert net.hidden.weight.data[0, 0] != 42.0
    path = fb.save(sd, tmp_path / "net.npz")
    assert path == tmp_path / "net.npz" and sorted(os.listdir(tmp_path)) == ["net.npz"]
    with np.load(path, allow_pickle=False) as npz:  # a plain npz keyed by dotted names
        assert npz.files == NAMES
    loaded = fb.load(path)
    assert list(loaded) == NAMES
    other = Net()
    w_before = other.hidden.weight
    opt = fb.optim.SGD(other.parameters(), lr=0.1)
    res = other.load_state_dict(loaded)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert other.hidden.weight is w_before  # copied in place: the optimiser still works
    assert other.hidden.weight.data[0, 0] == 42.0
    for n, p in other.named_parameters():
        np.testing.assert_array_equal(p.data, sd[n], err_msg=n)
    ids = np.array([[1, 2], [3, 4]])
    net.load_state_dict(sd)
    net.eval(), other.eval()
    np.testing.assert_array_equal(net(ids).data, other(ids).data)
    other(ids).sum().backward()
    opt.step()


def test_strict_load_errors_name_every_key():
    net = Net()
    sd = net.state_dict()
    bad = dict(sd)
    del bad["block.scale"], bad["out.weight"]
    bad["extra.weight"] = np.zeros(3, np.float32)
    bad["hidden.weight"] = np.zeros((6, 4), np.float32)  # transposed
    bad["hidden.bias"] = sd["hidden.bias"].astype(np.float64)
    before = {n: p.data.copy() for n, p in net.named_parameters()}
    with pytest.raises(nn.StateDictError) as info:
        net.load_state_dict(bad)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "for Net" in msg
    assert "missing key(s) block.scale, out.weight" in msg
    assert "unexpected key(s) extra.weight" in msg
    assert "'hidden.weight': shape (6, 4) in the state dict, the model needs (4, 6)" in msg
    assert "'hidden.bias': dtype float64 in the state dict, the model is float32" in msg
    for n, p in net.named_parameters():  # nothing modified
        np.testing.assert_array_equal(p.data, before[n])
    # strict=False: missing/unexpected are reported, the rest is loaded
    partial = {"hidden.bias": np.full(4, 7.0, np.float32), "zz": np.zeros(1)}
    res = net.load_state_dict(partial, strict=False)
    assert res.unexpected_keys == ["zz"] and "emb.weight" in res.missing_keys
    np.testing.assert_array_equal(net.hidden.bias.data, 7.0)
    with pytest.raises(nn.StateDictError, match="shape"):  # shapes are checked regardless
        net.load_state_dict({"hidden.bias": np.zeros(5, np.float32)}, strict=False)
    with pytest.raises(TypeError, match="mapping"):
        net.load_state_dict([1, 2])


def test_pytorch_linear_state_dict_gives_the_same_outputs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    fm = nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))
    fm.load_state_dict(tm.state_dict())  # torch tensors, read with np.asarray
    assert list(fm.state_dict()) == list(tm.state_dict())
    X = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32)
    want = tm(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(fm(fb.Tensor(X)).data, want, rtol=1e-5, atol=1e-6)
    # gradients agree too
    xt = torch.from_numpy(X).requires_grad_()
    tm(xt).pow(2).sum().backward()
    xf = fb.Tensor(X, requires_grad=True)
    (fm(xf) ** 2).sum().backward()
    np.testing.assert_allclose(xf.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fm[0].weight.grad, tm[0].weight.grad.numpy(), rtol=1e-4,
                               atol=1e-6)
    # and through a saved file
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    assert fm.load_state_dict(sd).missing_keys == []


def test_mlp_trained_from_a_plain_loop_reaches_low_loss(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 2)).astype(np.float32)
    y = ((X[:, 0] * X[:, 1]) > 0).astype(np.int64)  # XOR of the signs: not linear
    model = nn.Sequential(nn.Linear(2, 32, rng=0), nn.Tanh(), nn.Linear(32, 32, rng=1),
                          nn.ReLU(), nn.Linear(32, 2, rng=2))
    opt = fb.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for step in range(300):
        opt.zero_grad()
        loss = fb.cross_entropy(model(fb.Tensor(X)), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert first > 0.6 and loss.item() < 0.05
    with fb.no_grad():
        acc = (model(fb.Tensor(X)).data.argmax(1) == y).mean()
    assert acc > 0.99


# ---------------------------------------------------------------------- save / load files
def test_save_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    fb.save({"a": np.arange(3.0)}, path)
    before = path.read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        fb.save({"a": np.arange(5.0)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["w.npz"]
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)),
                                                     real_replace(a, b)))
    fb.save({"a": np.arange(5.0), "file": np.ones(1), "allow_pickle": np.ones(2)}, path)
    (src, dst), = replaced
    assert os.path.dirname(src) == str(tmp_path) and dst == path  # same directory
    assert list(fb.load(path)) == ["a", "file", "allow_pickle"]
    np.testing.assert_array_equal(fb.load(path)["a"], np.arange(5.0))


def test_save_rejects_what_load_could_not_read(tmp_path):
    with pytest.raises(TypeError, match="object"):
        fb.save({"a": np.array([{"x": 1}], dtype=object)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="module.state_dict"):
        fb.save(nn.Linear(2, 2), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="strings"):
        fb.save({1: np.zeros(1)}, tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match="directory does not exist"):
        fb.save({"a": np.zeros(1)}, tmp_path / "nope" / "x.npz")
    assert os.listdir(tmp_path) == []
    p = fb.save({"t": fb.Parameter(np.ones(2))}, tmp_path / "t.npz")  # tensors by .data
    np.testing.assert_array_equal(fb.load(p)["t"], np.ones(2))


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated", "object", "huge_header",
                                  "not_npy", "directory"])
def test_load_errors_are_clear(tmp_path, case):
    path = tmp_path / "w.npz"
    fb.save({"hidden.weight": np.ones((3, 4), np.float32)}, path)
    if case == "missing":
        path = tmp_path / "absent.npz"
        with pytest.raises(FileNotFoundError, match="absent.npz: no such file"):
            fb.load(path)
        return
    if case == "garbage":
        path.write_bytes(b"not a zip at all")
    elif case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "object":
        np.savez(path, w=np.array([{"evil": 1}], dtype=object))
    elif case == "huge_header":
        with zipfile.ZipFile(path, "w") as zf:
            with zf.open("w.npy", "w") as fh:
                np.lib.format.write_array_header_1_0(
                    fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    elif case == "not_npy":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("readme.txt", "hello")
    elif case == "directory":
        path = tmp_path / "dir"
        path.mkdir()
    with pytest.raises(fb.CheckpointError) as info:
        fb.load(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and isinstance(info.value, ValueError)
    if case == "object":
        assert "pickle" in msg
    if case == "huge_header":
        assert "claims shape" in msg


# ---------------------------------------------------------------------- retain_grad
def test_retain_grad_keeps_non_leaf_gradients(backend):
    x = fb.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    s = fb.tanh(h)
    s.retain_grad()
    u = h * 1.0  # not retained
    loss = s.sum() + (u * u).sum()
    loss.retain_grad()
    loss.backward(retain_graph=True)
    assert loss.grad == 1.0 and u.grad is None
    np.testing.assert_allclose(s.grad, np.ones(3))
    dh = (1 - np.tanh(2 * x.data) ** 2) + 2 * (2 * x.data)
    np.testing.assert_allclose(h.grad, dh)
    np.testing.assert_allclose(x.grad, 2 * dh)
    # a second backward accumulates, as in PyTorch; zero_grad forgets
    loss.backward()
    np.testing.assert_allclose(h.grad, 2 * dh)
    h.zero_grad()
    assert h.grad is None
    # on a leaf: a no-op (leaves keep their gradient anyway)
    x.retain_grad()
    assert x.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        fb.Tensor(1.0).retain_grad()
    with fb.no_grad():
        with pytest.raises(RuntimeError, match="does not require grad"):
            (x * 2.0).retain_grad()


def test_retained_grad_is_not_aliased_with_engine_buffers():
    a = fb.Tensor(np.ones(3), requires_grad=True)
    b = a * 3.0
    c = a * 2.0
    b.retain_grad()
    c.retain_grad()
    (b + c).sum().backward()  # add hands the same upstream array to both parents
    b.grad[0] = 100.0
    assert c.grad[0] == 1.0 and a.grad[0] == 5.0
