"""Compiled step plans (fb.compile): a traced step replayed as kernel calls must give what
the eager step gives, call after call, with new inputs, and must not run Python."""

import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb
from fastbp_ext import _plan

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: find the cases
from _ops_cases import CASES  # noqa: E402


def window_model(seed, opt="sgd", V=60, d=8, w=5, H=16, C=5, dtype=np.float32):
    rng = np.random.default_rng(seed)
    E = fb.Parameter(rng.standard_normal((V, d)).astype(dtype))
    W = fb.Parameter((0.3 * rng.standard_normal((w * d, H))).astype(dtype))
    b = fb.Parameter(np.zeros(H, dtype))
    U = fb.Parameter((0.3 * rng.standard_normal((H, C))).astype(dtype))
    c = fb.Parameter(np.zeros(C, dtype))
    params = [E, W, b, U, c]
    o = fb.optim.SGD(params, lr=0.1) if opt == "sgd" else fb.optim.Adam(params, lr=1e-2)

    def step(ids, y):
        x = fb.embedding(E, ids)
        h = fb.tanh(x @ W + b)
        loss = fb.cross_entropy(h @ U + c, y)
        loss.backward()
        o.step()
        o.zero_grad()
        return loss

    return params, step, o


def batches(n, seed=1, sizes=(32,) * 8 + (7,) * 4 + (32,) * 8, V=10, C=5):
    rng = np.random.default_rng(seed)
    for B in sizes[:n]:
        # ids from a small range: many repeated embedding rows in every batch
        yield rng.integers(0, V, size=(B, 5)), rng.integers(0, C, size=B)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_equals_eager_over_20_steps(opt, dtype):
    pe, eager, oe = window_model(0, opt, dtype=dtype)
    pc, step, oc = window_model(0, opt, dtype=dtype)
    step = fb.compile(step)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    for ids, y in batches(20):
        le, lc = eager(ids, y), step(ids, y)
        assert lc.dtype == dtype
        np.testing.assert_allclose(lc.item(), le.item(), rtol=tol, atol=tol)
    for a, b in zip(pe, pc):
        np.testing.assert_allclose(b.data, a.data, rtol=10 * tol, atol=10 * tol)
    # batch 32 -> 7 -> 32: two signatures, the first plan reused when coming back
    assert step.traces == 2
    if opt == "adam":
        assert [int(oc.state[id(p)]["step"][0]) for p in pc] == [20] * 5
        for p, q in zip(pe, pc):
            np.testing.assert_allclose(oc.state[id(q)]["m"], oe.state[id(p)]["m"],
                                       rtol=10 * tol, atol=10 * tol)


def test_replay_runs_no_python_and_reads_new_inputs():
    params, step, _ = window_model(0)
    calls = []

    @fb.compile
    def counted(ids, y):
        calls.append(1)
        return step(ids, y)

    data = list(batches(5, sizes=(16,) * 5))
    losses = [counted(ids, y).item() for ids, y in data]
    assert len(calls) == 1  # the Python body ran once: the trace
    plan = counted.plan_for(*data[0])
    names = plan.kernel_names()
    assert {"embedding", "gemm", "softmax_cross_entropy", "sgd_update"} <= set(names)
    assert "python" not in names
    assert len(set(np.round(losses, 6))) == 5  # every call saw its own ids and labels
    # the weight gradients of W and U go straight into the SGD update (fused)
    assert names.count("gemm_sgd") == 2 and names.count("sgd_update") == 2
    # tanh(x @ W + b): the bias and the activation in one pass; h @ U + c keeps add_bias
    assert names.count("bias_act") == 1 and "tanh" not in names
    assert names.count("add_bias") == 1


def test_fusion_matches_the_unfused_plan():
    pf, fused, _ = window_model(0)
    pu, unfused, _ = window_model(0)
    fused, unfused = fb.compile(fused), fb.compile(unfused, fuse=False)
    for B in (1, 16, 200):  # 200 rows: beyond the fusion limit
        for ids, y in batches(3, sizes=(B,) * 3):
            np.testing.assert_allclose(fused(ids, y).item(), unfused(ids, y).item(),
                                       rtol=1e-5)
        names = fused.plan_for(ids, y).kernel_names()
        assert ("gemm_sgd" in names) == (B <= 128)
        assert "gemm_sgd" not in unfused.plan_for(ids, y).kernel_names()
    for a, b in zip(pf, pu):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("B", [1, 9])
def test_bias_activation_fusion_matches_the_unfused_plan(act, B):
    """``f(x @ W + b)`` replays as one ``bias_act`` pass: the same losses and parameters
    as the unfused plan and as eager (float64: round-off only)."""
    def make():
        rng = np.random.default_rng(3)
        W = fb.Parameter(rng.standard_normal((6, 7)))
        b = fb.Parameter(rng.standard_normal(7))
        U = fb.Parameter(rng.standard_normal((7, 3)))
        o = fb.optim.SGD([W, b, U], lr=0.1)

        def step(x, y):
            h = getattr(fb, act)(x @ W + b)
            loss = fb.cross_entropy(h @ U, y)
            loss.backward()
            o.step()
            o.zero_grad()
            return loss
        return [W, b, U], step

    (pe, eager), (pf, fused), (pu, unfused) = make(), make(), make()
    fused, unfused = fb.compile(fused), fb.compile(unfused, fuse=False)
    rng = np.random.default_rng(4)
    for _ in range(4):
        x, y = rng.standard_normal((B, 6)), rng.integers(0, 3, B)
        le, lf, lu = eager(x, y).item(), fused(x, y).item(), unfused(x, y).item()
        np.testing.assert_allclose(lf, le, rtol=1e-12)
        np.testing.assert_allclose(lu, le, rtol=1e-12)
    names = fused.plan_for(x, y).kernel_names()
    assert names.count("bias_act") == 1 and act not in names and "add_bias" not in names
    assert "bias_act" not in unfused.plan_for(x, y).kernel_names()
    for a, b, c in zip(pe, pf, pu):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c.data, a.data, rtol=1e-12, atol=1e-12)


def test_bias_activation_fusion_keeps_a_preactivation_someone_reads():
    """No fusion when the pre-activation ``z`` is used again, returned, or kept alive by
    Python: the replay must keep writing it."""
    rng = np.random.default_rng(5)
    W = fb.Parameter(rng.standard_normal((4, 5)))
    b = fb.Parameter(rng.standard_normal(5))
    kept = []

    def used_twice(x):
        z = x @ W + b
        return (fb.tanh(z) + z).sum()

    def returned(x):
        z = x @ W + b
        return fb.tanh(z).sum(), z

    def stored(x):
        z = x @ W + b
        kept.append(z)
        return fb.tanh(z).sum()

    for fn in (used_twice, returned, stored):
        c = fb.compile(fn)
        for seed in range(3):
            x = np.random.default_rng(seed).standard_normal((3, 4))
            got, want = c(x), fn(x)
            if isinstance(got, tuple):
                np.testing.assert_allclose(got[1].data, want[1].data, rtol=1e-12)
                got, want = got[0], want[0]
            np.testing.assert_allclose(got.item(), want.item(), rtol=1e-12)
        names = c.plan_for(x).kernel_names()
        assert "bias_act" not in names and "add_bias" in names and "tanh" in names, fn
        if fn is stored:  # the tensor kept at trace time shares the plan's buffer,
            # which every replay still writes: it holds the last call's pre-activation
            np.testing.assert_allclose(kept[0].data, x @ W.data + b.data, rtol=1e-12)


def test_returned_tensors_are_fresh_copies():
    _, step, _ = window_model(0)
    step = fb.compile(step)
    (i1, y1), (i2, y2) = batches(2, sizes=(8, 8))
    a = step(i1, y1)
    va = a.item()
    b = step(i2, y2)
    assert a.item() == va and a is not b and a.data is not b.data


def test_out_of_range_id_raises_and_leaves_parameters_alone():
    params, step, _ = window_model(0)
    step = fb.compile(step)
    ids, y = next(batches(1, sizes=(8,)))
    step(ids, y)
    before = [p.data.copy() for p in params]
    bad = ids.copy()
    bad[3, 2] = 60  # V = 60
    with pytest.raises(IndexError, match="60"):
        step(bad, y)
    bad_y = y.copy()
    bad_y[0] = 5
    with pytest.raises(ValueError, match="class id 5"):
        step(ids, bad_y)
    for p, q in zip(params, before):
        np.testing.assert_array_equal(p.data, q)
    step(ids, y)  # still usable


def test_steady_state_allocates_nothing():
    _, step, _ = window_model(0, "adam", H=64)
    step = fb.compile(step)
    data = list(batches(20, sizes=(64,) * 20))
    for ids, y in data[:3]:
        step(ids, y)
    tracemalloc.start()
    try:
        step(*data[3])
        base = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        for k in range(300):
            step(*data[k % 20])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    activation = 64 * 64 * 4  # one (B, H) float32 array
    assert peak - base < activation


def test_generic_op_mlp_compiles():
    def build(seed):
        rng = np.random.default_rng(seed)
        W1 = fb.Parameter((0.5 * rng.standard_normal((6, 12))).astype(np.float64))
        b1 = fb.Parameter(np.zeros(12))
        W2 = fb.Parameter((0.5 * rng.standard_normal((12, 4))).astype(np.float64))
        o = fb.optim.Adam([W1, b1, W2], lr=1e-2)

        def step(x, y):
            h = fb.maximum(fb.Tensor(x) @ W1 + b1, 0.0)      # relu as max
            logp = fb.log_softmax(h @ W2, axis=-1)
            n = y.shape[0]
            loss = -(logp[np.arange(n), y]).sum() / n          # pairs index, mean
            loss = loss + 1e-3 * (W1 ** 2).sum() + 0.0 * fb.logsumexp(h).mean()
            loss.backward()
            o.step()
            o.zero_grad()
            return loss

        return [W1, b1, W2], step

    pe, eager = build(3)
    pc, step = build(3)
    step = fb.compile(step)
    rng = np.random.default_rng(4)
    for _ in range(15):
        x = rng.standard_normal((10, 6))
        y = rng.integers(0, 4, 10)
        np.testing.assert_allclose(step(x, y).item(), eager(x, y).item(), rtol=1e-12)
    for a, b in zip(pe, pc):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-11, atol=1e-13)
    assert step.traces == 1


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_op_case_replays_like_eager(name):
    build, fn = CASES[name]

    def make():
        inputs = build(np.random.default_rng(7), np.float64)
        opt = fb.optim.SGD(inputs, lr=0.05)

        def step(w):
            out = fn(*inputs)
            loss = (out * fb.Tensor(w)).sum()
            loss.backward()
            grads = [p.grad.copy() if p.grad is not None else None for p in inputs]
            opt.step()
            opt.zero_grad()
            return loss, out

        return inputs, step, grads_of(inputs)

    def grads_of(inputs):
        return inputs

    ie, eager, _ = make()
    ic, step, _ = make()
    step = fb.compile(step)
    shape = fn(*build(np.random.default_rng(7), np.float64)).shape
    rng = np.random.default_rng(8)
    for _ in range(3):
        w = rng.standard_normal(shape)
        (le, oe), (lc, oc) = eager(w), step(w)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(oc.data, oe.data, rtol=1e-12, atol=1e-12)
    for a, b in zip(ie, ic):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-12, atol=1e-12)


class Cube(fb.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


def test_custom_function_runs_as_a_callback_step():
    def make():
        W = fb.Parameter(np.linspace(-1, 1, 12).reshape(3, 4))
        o = fb.optim.SGD([W], lr=0.01)

        def step(x):
            loss = Cube.apply(fb.Tensor(x) @ W).sum()
            loss.backward()
            o.step()
            o.zero_grad()
            return loss

        return W, step

    We, eager = make()
    Wc, step = make()
    step = fb.compile(step)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal((5, 3))
        np.testing.assert_allclose(step(x).item(), eager(x).item(), rtol=1e-12)
    np.testing.assert_allclose(Wc.data, We.data, rtol=1e-12)
    assert step.plan_for(x).kernel_names().count("python") == 2  # forward and backward


def test_accumulating_gradients_across_calls_like_eager():
    # no zero_grad in the step: gradients add up across calls, as eagerly
    def make():
        W = fb.Parameter(np.ones((3, 2)))

        def step(x):
            loss = (fb.Tensor(x) @ W).sum()
            loss.backward()
            return loss

        return W, step

    We, eager = make()
    Wc, step = make()
    step = fb.compile(step)
    for k in range(6):
        x = np.full((4, 3), float(k))
        eager(x)
        step(x)
        np.testing.assert_allclose(Wc.grad, We.grad)
    assert step.traces <= 2


def test_untraceable_things_raise_clear_errors():
    W = fb.Parameter(np.ones((3, 3), np.float32))

    @fb.compile
    def f(x):
        return fb.dropout(fb.Tensor(x) @ W, 0.5, True, np.random.default_rng(0))

    with pytest.raises(RuntimeError, match="fastbp.Generator"):
        f(np.ones((2, 3), np.float32))

    @fb.compile
    def g(x):
        return (fb.Tensor(x) @ W).sum()

    with fb.use_backend("numpy"), pytest.raises(RuntimeError, match="compiled backend"):
        g(np.ones((2, 3), np.float32))
    with fb.detect_anomaly(), pytest.raises(RuntimeError, match="detect_anomaly"):
        g(np.ones((2, 3), np.float32))

    @fb.compile
    def nested(x):
        return g(x)

    with pytest.raises(RuntimeError, match="nested"):
        nested(np.ones((2, 3), np.float32))
    assert not _plan.recording()
    assert g(np.ones((2, 3), np.float32)).item() == 18.0  # a failed trace leaves no trace


def test_python_number_returned_warns_that_it_is_frozen():
    W = fb.Parameter(np.ones(3))

    @fb.compile
    def f(x):
        return (fb.Tensor(x) * W).sum().item()

    with pytest.warns(UserWarning, match="frozen at trace time"):
        f(np.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(2 * np.ones(3)) == 3.0  # frozen, as documented


def test_parameter_data_rebound_retraces():
    W = fb.Parameter(np.ones((2, 2)))

    @fb.compile
    def f(x):
        return (fb.Tensor(x) @ W).sum()

    x = np.ones((1, 2))
    assert f(x).item() == 4.0
    W.data = np.full((2, 2), 2.0)
    assert f(x).item() == 8.0
    assert f.traces == 2


def test_dropout_draws_a_fresh_mask_on_every_replayed_call():
    def make():
        g = fb.Generator(5)

        def f(x):
            return fb.dropout(fb.Tensor(x), 0.5, True, g)

        return f

    eager, step = make(), fb.compile(make())
    x = np.ones((4, 64), np.float32)
    outs = []
    for _ in range(4):
        a, b = eager(x), step(x)
        np.testing.assert_array_equal(b.data, a.data)  # the same stream as eagerly
        outs.append(b.data)
    assert step.traces == 1
    assert all(not np.array_equal(outs[i], outs[j]) for i in range(4) for j in range(i))


# ---------------------------------------------------------------------- fastbp train
@pytest.fixture(scope="module")
def corpus():
    from fastbp.ner.synthetic import generate_corpus
    from fastbp.ner.train import make_dataset
    from fastbp.ner.vocab import LabelSet, Vocab
    from fastbp.ner.windows import WindowFeaturizer

    train_s, dev_s = generate_corpus(n_train=300, n_dev=60, seed=3)
    labels = LabelSet.from_sentences(train_s + dev_s)
    fz = WindowFeaturizer(Vocab.build(train_s), window=1, casing=True)
    return make_dataset(train_s, fz, labels), make_dataset(dev_s, fz, labels), fz, labels


@pytest.mark.parametrize("kind", ["window", "binary"])
def test_training_compiled_equals_eager(corpus, kind):
    from fastbp.ner.model import BinaryWindowClassifier, WindowClassifier
    from fastbp.ner.train import seed_streams, train

    tr, dev, fz, labels = corpus
    models = []
    for compiled in (False, True):
        kw = dict(embed_dim=16, hidden=32, activation="relu", dropout=0.3,
                  rng=seed_streams(0, 3)[2])
        m = (WindowClassifier(fz.n_rows, fz.width, len(labels), **kw) if kind == "window"
             else BinaryWindowClassifier(fz.n_rows, fz.width, positive=1, **kw))
        res = train(m, tr, dev, labels, epochs=2, batch_size=64, quiet=True,
                    compile=compiled)
        models.append((m, res))
    (me, re_), (mc, rc) = models
    for (name, a), (_, b) in zip(me.named_parameters(), mc.named_parameters()):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-4, atol=1e-5, err_msg=name)
    for he, hc in zip(re_.history, rc.history):
        assert hc["train_loss"] == pytest.approx(he["train_loss"], rel=1e-5)


def test_fused_update_through_the_few_row_product_path():
    """A fused ``W -= lr X^T delta`` whose product has few rows and many columns (16 x 256
    with 128 examples) runs through gemm's few-row path with alpha = -lr and beta = 1."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((128, 16)).astype(np.float32)
    y = rng.integers(0, 256, 128)
    W0 = (0.1 * rng.standard_normal((16, 256))).astype(np.float32)
    results = []
    for fuse in (True, False):
        W = fb.Parameter(W0.copy())
        opt = fb.optim.SGD([W], lr=0.5)

        def step(x, t, W=W, opt=opt):
            loss = fb.cross_entropy(fb.Tensor(x) @ W, t)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        c = fb.compile(step, fuse=fuse)
        for _ in range(3):
            c(X, y)
        names = c.plan_for(X, y).kernel_names()
        assert ("gemm_sgd" in names) == fuse
        results.append(W.data.copy())
    eager_W = fb.Parameter(W0.copy())
    opt = fb.optim.SGD([eager_W], lr=0.5)
    for _ in range(3):
        loss = fb.cross_entropy(fb.Tensor(X) @ eager_W, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    np.testing.assert_allclose(results[0], eager_W.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[1], eager_W.data, rtol=1e-5, atol=1e-6)
