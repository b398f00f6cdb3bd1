"""fastbp.Generator and dropout drawn inside the kernel (issue 9, prerequisite A).

The generator is a (2,) uint64 [key, counter] array; the dropout kernel reads it through
a pointer, advances the counter and hashes (key, counter + j) with splitmix64. These
tests check the stream against the published splitmix64 values, the two backends
bitwise against each other, the mask statistics, the counter arithmetic (fresh masks,
state round trips, reseeding in place) and the graph-level dropout (gradients, p = 0,
bad arguments)."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

import fastbp as fb
from fastbp import nn
from fastbp.backends.numpy_ops import NumpyOps, counter_words

NP = NumpyOps()
DTYPES = [np.float32, np.float64]

try:
    from fastbp.backends.cython_ops import CythonOps
    CY = CythonOps()
except ImportError:  # kernels not built: the numpy half of the tests still runs
    CY = None
needs_kernels = pytest.mark.skipif(CY is None, reason="compiled kernels not built")


def state(key=0x5DEECE66D, counter=0):
    return np.array([key, counter], np.uint64)


def keep_prob(p):
    """The exact keep probability of the mask rule: u32 >= ceil(p * 2**32)."""
    return 1.0 - math.ceil(p * 2**32) / 2**32


# ------------------------------------------------------------------ the stream itself
def test_stream_is_splitmix64():
    """Key 0 at positions 1, 2, 3 is the splitmix64 sequence seeded with 0 (published
    reference outputs of Vigna's splitmix64.c / Java's SplittableRandom)."""
    got = [int(w) for w in counter_words(0, 1, 3)]
    assert got == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_mask_uses_low_then_high_half_of_each_word():
    key, ctr, p = 12345, 77, 0.5
    w = counter_words(key, ctr, 4)
    halves = np.stack([w & np.uint64(0xFFFFFFFF), w >> np.uint64(32)], axis=1).reshape(-1)
    want = np.where(halves[:7] >= np.uint64(2**31), 2.0, 0.0)
    s = state(key, ctr)
    np.testing.assert_array_equal(NP.dropout_mask_gen(s, (7,), p, np.float64), want)
    assert int(s[1]) == ctr + 4  # ceil(7 / 2) words


# ------------------------------------------------------------------ backends agree bitwise
@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 131073, 600001])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1 - 2**-33])
def test_backends_bitwise_equal(dtype, n, p):
    X = np.random.default_rng(n).standard_normal(n).astype(dtype)
    X[: min(n, 3)] = [np.inf, np.nan, -0.0][: min(n, 3)]
    sc, sn = state(counter=2**64 - 5), state(counter=2**64 - 5)  # the counter wraps
    yc, mc = CY.dropout_forward(X, sc, p)
    yn, mn = NP.dropout_forward(X, sn, p)
    assert yc.dtype == mc.dtype == dtype
    assert yc.tobytes() == yn.tobytes() and mc.tobytes() == mn.tobytes()
    np.testing.assert_array_equal(sc, sn)
    assert int(sc[1]) == (2**64 - 5 + (n + 1) // 2) % 2**64


@needs_kernels
def test_backends_equal_with_threads():
    """The parallel kernel (chunks start on a word boundary) draws the serial stream."""
    X = np.ones((1001, 777), np.float32)
    old = fb.get_num_threads()
    try:
        fb.set_num_threads(2)
        y2, m2 = CY.dropout_forward(X, state(), 0.3)
        fb.set_num_threads(1)
        y1, m1 = CY.dropout_forward(X, state(), 0.3)
    finally:
        fb.set_num_threads(old)
    _, mn = NP.dropout_forward(X, state(), 0.3)
    assert m1.tobytes() == m2.tobytes() == mn.tobytes()


@pytest.mark.parametrize("ops", [NP, CY] if CY else [NP], ids=lambda o: o.name)
def test_mask_gen_is_the_forward_mask_and_dtype_independent(ops):
    X = np.random.default_rng(0).standard_normal((33, 5))
    _, m = ops.dropout_forward(X, state(), 0.4)
    m64 = ops.dropout_mask_gen(state(), X.shape, 0.4, np.float64)
    m32 = ops.dropout_mask_gen(state(), X.shape, 0.4, np.float32)
    np.testing.assert_array_equal(m, m64)
    np.testing.assert_array_equal(m32 != 0, m64 != 0)
    assert m32.dtype == np.float32 and m32.shape == (33, 5)


# ------------------------------------------------------------------ statistics
@pytest.mark.parametrize("ops", [NP, CY] if CY else [NP], ids=lambda o: o.name)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_statistics(ops, dtype, p):
    n = 400_000
    m = ops.dropout_mask_gen(state(counter=123), (n,), p, dtype)
    scale = dtype(1.0 / (1.0 - p))
    assert set(np.unique(m).tolist()) == {0.0, float(scale)}
    kept = np.count_nonzero(m)
    q = keep_prob(p)
    assert abs(kept - n * q) < 5 * math.sqrt(n * q * (1 - q))  # 5 sigma, binomial
    # even and odd elements (low / high halves of a word) keep at the same rate and
    # independently of each other
    k = m != 0
    for half in (k[0::2], k[1::2]):
        assert abs(half.mean() - q) < 5 * math.sqrt(q * (1 - q) / half.size)
    both = (k[0::2] & k[1::2]).mean()
    assert abs(both - q * q) < 5 * math.sqrt(q * q * (1 - q * q) / (n // 2))
    # neighbouring elements across words
    lag = (k[1:-1:2] & k[2::2]).mean()
    assert abs(lag - q * q) < 5 * math.sqrt(q * q * (1 - q * q) / (n // 2))
    # the mean of the mask is ~1 (inverted dropout keeps the expectation)
    assert abs(float(m.mean(dtype=np.float64)) - q * float(scale)) < 1e-12 + 5 * float(
        scale) * math.sqrt(q * (1 - q) / n)


def test_stream_concatenates_across_calls():
    """Two calls (the first on an even count) draw what one call of the total draws."""
    g = state(counter=9)
    a = NP.dropout_mask_gen(g, (10,), 0.5, np.float64)
    b = NP.dropout_mask_gen(g, (7,), 0.5, np.float64)
    whole = NP.dropout_mask_gen(state(counter=9), (17,), 0.5, np.float64)
    np.testing.assert_array_equal(np.concatenate([a, b]), whole)


# ------------------------------------------------------------------ fastbp.Generator
def test_reproducible_from_seed(backend):
    x = fb.Tensor(np.ones((64, 50), np.float32))
    a = fb.dropout(x, 0.5, rng=fb.Generator(11)).data
    b = fb.dropout(x, 0.5, rng=fb.Generator(11)).data
    c = fb.dropout(x, 0.5, rng=fb.Generator(12)).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    ss = fb.dropout(x, 0.5, rng=fb.Generator(np.random.SeedSequence(11))).data
    np.testing.assert_array_equal(a, ss)  # an int seed is hashed through SeedSequence
    n1 = fb.dropout(x, 0.5, rng=fb.Generator(np.random.default_rng(3))).data
    n2 = fb.dropout(x, 0.5, rng=fb.Generator(np.random.default_rng(3))).data
    np.testing.assert_array_equal(n1, n2)


def test_seeds_give_unrelated_keys():
    keys = {fb.Generator(s).key for s in range(200)}
    assert len(keys) == 200


def test_fresh_mask_on_every_call_and_counter_advance(backend):
    g = fb.Generator(0)
    x = fb.Tensor(np.ones((31, 9), np.float64))
    masks = []
    for i in range(5):
        assert g.counter == i * math.ceil(31 * 9 / 2)
        masks.append(fb.dropout(x, 0.5, rng=g).data)
    assert len({m.tobytes() for m in masks}) == 5


def test_state_round_trip(backend):
    g = fb.Generator(5)
    x = fb.Tensor(np.ones(101, np.float32))
    fb.dropout(x, 0.3, rng=g)
    saved = g.state
    assert set(saved) == {"key", "counter"}
    assert all(type(v) is int for v in saved.values())
    a = fb.dropout(x, 0.3, rng=g).data
    arr = g.state_array
    g.state = saved
    assert g.state_array is arr  # restored in place: a recorded plan keeps its pointer
    np.testing.assert_array_equal(fb.dropout(x, 0.3, rng=g).data, a)
    h = fb.Generator(99)
    h.state = saved
    np.testing.assert_array_equal(fb.dropout(x, 0.3, rng=h).data, a)


def test_copy_and_pickle_are_independent_equal_generators():
    g = fb.Generator(8)
    x = fb.Tensor(np.ones(64))
    fb.dropout(x, 0.5, rng=g)
    for h in (copy.deepcopy(g), copy.copy(g), pickle.loads(pickle.dumps(g))):
        assert h.state == g.state and h.state_array is not g.state_array
        np.testing.assert_array_equal(fb.dropout(x, 0.5, rng=h).data,
                                      fb.dropout(x, 0.5, rng=copy.deepcopy(g)).data)
    assert g.counter == 32


def test_spawn_is_deterministic_and_independent():
    a = [c.key for c in fb.Generator(4).spawn(3)]
    b = [c.key for c in fb.Generator(4).spawn(3)]
    assert a == b and len(set(a)) == 3 and fb.Generator(4).key not in a
    g = fb.Generator(4)
    g.state = {"key": 1, "counter": 10**6}
    assert [c.key for c in g.spawn(3)] == a  # children come from the seed sequence
    assert fb.Generator(4).spawn(0) == []


def test_manual_seed_reseeds_the_default_generator_in_place(backend):
    x = fb.Tensor(np.ones((20, 20), np.float32))
    arr = fb.random.default_generator().state_array
    assert fb.manual_seed(3) is fb.random.default_generator()
    a = fb.dropout(x, 0.5).data
    b = fb.dropout(x, 0.5).data
    fb.manual_seed(3)
    np.testing.assert_array_equal(fb.dropout(x, 0.5).data, a)
    np.testing.assert_array_equal(fb.dropout(x, 0.5).data, b)
    assert not np.array_equal(a, b)
    assert fb.random.default_generator().state_array is arr


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                       ("7", TypeError), ([1, 2], TypeError)])
def test_bad_seeds(seed, exc):
    with pytest.raises(exc, match="seed"):
        fb.Generator(seed)


@pytest.mark.parametrize("value, exc", [
    ({"key": 1}, TypeError), ((1, 2), TypeError), ({"key": 1.0, "counter": 0}, TypeError),
    ({"key": -1, "counter": 0}, ValueError), ({"key": 0, "counter": 2**64}, ValueError),
    ({"key": True, "counter": 0}, TypeError)])
def test_bad_state_is_refused_and_nothing_changes(value, exc):
    g = fb.Generator(1)
    before = g.state
    with pytest.raises(exc, match="state"):
        g.state = value
    assert g.state == before


# ------------------------------------------------------------------ fb.dropout
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_scale_and_gradient_mask(backend, dtype):
    x = fb.Tensor(np.random.default_rng(0).uniform(1, 2, (50, 40)).astype(dtype),
                  requires_grad=True)
    y = fb.dropout(x, 0.25, rng=fb.Generator(2))
    assert y.dtype == dtype
    kept = y.data != 0
    np.testing.assert_array_equal(y.data[kept], (x.data * dtype(1 / 0.75))[kept])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.where(kept, dtype(1 / 0.75), 0).astype(dtype))


def test_dropout_gradcheck_with_a_fixed_generator_state(backend):
    g = fb.Generator(7)
    s0 = g.state
    a = fb.Tensor(np.random.default_rng(1).standard_normal((6, 5)), requires_grad=True)

    def fn(t):
        g.state = s0  # the same mask at every evaluation
        return (fb.dropout(t, 0.3, rng=g) * t).sum()

    res = fb.gradcheck(fn, [a])
    assert res.passed


def test_p_zero_and_eval_are_the_identity_and_draw_nothing(backend):
    g = fb.Generator(0)
    x = fb.Tensor(np.ones(10))
    assert fb.dropout(x, 0.0, rng=g) is x
    assert fb.dropout(x, 0.5, training=False, rng=g) is x
    assert g.counter == 0


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan")])
def test_bad_p(backend, p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        fb.dropout(fb.Tensor(np.ones(3)), p, rng=fb.Generator(0))


def test_bad_rng_type(backend):
    with pytest.raises(TypeError, match="rng"):
        fb.dropout(fb.Tensor(np.ones(3)), 0.5, rng=3)


def test_numpy_generator_path_still_works(backend):
    """The numpy-Generator path keeps its old mask stream (rng.random)."""
    x = fb.Tensor(np.ones((30, 7), np.float32))
    got = fb.dropout(x, 0.4, rng=np.random.default_rng(5)).data
    want = NP.dropout_mask((30, 7), 0.4, np.random.default_rng(5), np.dtype(np.float32))
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ kernel arguments
@needs_kernels
@pytest.mark.parametrize("ops", [NP, CY] if CY else [NP], ids=lambda o: o.name)
@pytest.mark.parametrize("bad, exc", [
    (np.array([1, 2], np.int64), TypeError), (np.array([1.0, 2.0]), TypeError),
    (np.array([1, 2, 3], np.uint64), ValueError), (np.zeros((2, 1), np.uint64), ValueError),
    ("readonly", ValueError)])
def test_bad_state_arrays(ops, bad, exc):
    if isinstance(bad, str):
        bad = state()
        bad.flags.writeable = False
    before = bad.copy()
    with pytest.raises(exc, match="state"):
        ops.dropout_forward(np.ones(4), bad, 0.5)
    with pytest.raises(exc, match="state"):
        ops.dropout_mask_gen(bad, (4,), 0.5, np.float64)
    np.testing.assert_array_equal(bad, before)


@needs_kernels
@pytest.mark.parametrize("ops", [NP, CY] if CY else [NP], ids=lambda o: o.name)
def test_bad_rate_and_dtype_write_nothing(ops):
    s = state()
    for rate in (1.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            ops.dropout_forward(np.ones(4), s, rate)
        with pytest.raises(ValueError, match="rate"):
            ops.dropout_mask_gen(s, (4,), rate, np.float32)
    for dt in (np.int32, np.float16):
        with pytest.raises(TypeError, match="dtype"):
            ops.dropout_mask_gen(s, (4,), 0.5, dt)
    with pytest.raises(TypeError):
        ops.dropout_forward(np.ones(4, np.int64), s, 0.5)
    np.testing.assert_array_equal(s, state())


# ------------------------------------------------------------------ nn.Dropout, NER model
def test_nn_dropout_generators(backend):
    x = fb.Tensor(np.ones((40, 40), np.float32))
    a, b = nn.Dropout(0.5, rng=3), nn.Dropout(0.5, rng=np.random.default_rng(4))
    assert isinstance(a.rng, fb.Generator) and isinstance(b.rng, fb.Generator)
    np.testing.assert_array_equal(a(x).data, nn.Dropout(0.5, rng=3)(x).data)
    g = fb.Generator(1)
    assert nn.Dropout(0.5, rng=g).rng is g  # used as it is, shared
    d = nn.Dropout(0.5)  # None: the default generator
    assert d.rng is None
    fb.manual_seed(9)
    first = d(x).data
    fb.manual_seed(9)
    np.testing.assert_array_equal(d(x).data, first)


def test_ner_model_dropout_uses_a_fastbp_generator_and_keeps_the_init():
    from fastbp.ner.model import BinaryWindowClassifier, WindowClassifier

    for cls, extra in ((WindowClassifier, (4,)), (BinaryWindowClassifier, ())):
        kw = {} if extra else {"positive": 1}
        m = cls(20, 3, *extra, embed_dim=4, hidden=6, dropout=0.5,
                rng=np.random.default_rng(1), **kw)
        m0 = cls(20, 3, *extra, embed_dim=4, hidden=6, dropout=0.0,
                 rng=np.random.default_rng(1), **kw)
        assert isinstance(m.drop.rng, fb.Generator)
        for (n, p), (_, q) in zip(m.state_dict().items(), m0.state_dict().items()):
            np.testing.assert_array_equal(p, q, err_msg=n)  # no draw taken from rng
        ids = np.random.default_rng(2).integers(0, 20, (8, 3))
        h1 = m._hidden(ids, True).data
        h2 = cls(20, 3, *extra, embed_dim=4, hidden=6, dropout=0.5,
                 rng=np.random.default_rng(1), **kw)._hidden(ids, True).data
        np.testing.assert_array_equal(h1, h2)  # reproducible from the init seed
        assert (h1 == 0).any()
