"""Window NER model, training loop and model-directory save/load (fastbp.ner.model, .train,
.io): shapes and dtypes, gradients, reproducible training, atomic checkpoints, validation
of model directories."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb
from fastbp.ner.data import Sentence
from fastbp.ner.io import ModelFormatError, load_model, save_model
from fastbp.ner.model import BinaryWindowClassifier, WindowClassifier
from fastbp.ner.synthetic import generate_corpus
from fastbp.ner.train import evaluate, make_dataset, seed_streams, train
from fastbp.ner.vocab import LabelSet, Vocab
from fastbp.ner.windows import WindowFeaturizer


def _cython_available():
    try:
        with fb.use_backend("cython"):
            pass
    except ImportError:
        return False
    return True


BACKENDS = [
    "numpy",
    pytest.param("cython", marks=pytest.mark.skipif(
        not _cython_available(), reason="fastbp_ext._kernels is not built")),
]


def _data_dir():
    env = os.environ.get("FASTBP_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003"


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def corpus():
    train_s, dev_s = generate_corpus(n_train=600, n_dev=150, seed=3)
    labels = LabelSet.from_sentences(train_s + dev_s)
    vocab = Vocab.build(train_s)
    fz = WindowFeaturizer(vocab, window=1, casing=True)
    return {
        "train": make_dataset(train_s, fz, labels),
        "dev": make_dataset(dev_s, fz, labels),
        "featurizer": fz,
        "labels": labels,
        "dev_sents": dev_s,
    }


def _model(corpus, seed=0, dtype="float32", **kw):
    fz, labels = corpus["featurizer"], corpus["labels"]
    args = dict(embed_dim=16, hidden=32, activation="relu", dropout=0.2, dtype=dtype,
                rng=seed_streams(seed, 3)[2])
    args.update(kw)
    return WindowClassifier(fz.n_rows, fz.width, len(labels), **args)


def _tiny_ids(rng, n_rows, width, B=7):
    ids = rng.integers(0, n_rows, size=(B, width))
    ids[:, 2] = ids[:, 0]  # one id repeated inside every window
    ids[1] = 3  # a window made of a single id
    return ids


# ---------------------------------------------------------------------- model
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_predict_shapes_and_dtypes(dtype):
    rng = np.random.default_rng(0)
    m = WindowClassifier(20, 6, 5, embed_dim=4, hidden=8, dtype=dtype, rng=rng)
    assert [n for n, _ in m.named_parameters()] == [
        "embedding.weight", "hidden_layer.weight", "hidden_layer.bias", "output_layer.weight",
        "output_layer.bias"]
    # the lecture's names are aliases; W and U are (out, in) as in nn.Linear
    assert m.E is m.embedding.weight and m.W is m.hidden_layer.weight and m.c is m.output_layer.bias
    assert m.E.shape == (20, 4) and m.W.shape == (8, 24) and m.U.shape == (5, 8)
    assert all(p.dtype == np.dtype(dtype) for p in m.parameters())
    ids = rng.integers(0, 20, size=(11, 6))
    logits = m.forward(ids)
    assert logits.shape == (11, 5) and logits.dtype == np.dtype(dtype)
    pred = m.predict(ids, batch_size=4)  # several batches
    assert pred.shape == (11,) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, logits.data.argmax(1))
    proba = m.predict_proba(ids)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    loss = m.loss(ids, rng.integers(0, 5, 11), np.random.default_rng(1))
    assert loss.shape == () and loss.dtype == np.dtype(dtype)
    with pytest.raises(ValueError, match=r"shape \(B, 6\)"):
        m.forward(ids[:, :5])


def test_predict_records_no_graph():
    m = WindowClassifier(10, 3, 3, embed_dim=2, hidden=4, rng=np.random.default_rng(0))
    ids = np.zeros((5, 3), dtype=np.int32)
    m.predict(ids)
    assert m.E.grad is None and fb.is_grad_enabled()
    with fb.no_grad():
        assert not m.forward(ids).requires_grad
    assert m.forward(ids).requires_grad


def test_glorot_init_and_pretrained_embeddings():
    rng = np.random.default_rng(0)
    E = np.arange(30, dtype=np.float64).reshape(10, 3)
    m = WindowClassifier(10, 4, 3, hidden=50, embeddings=E, rng=rng)
    assert m.embed_dim == 3 and m.E.dtype == np.float32
    np.testing.assert_array_equal(m.E.data, E.astype(np.float32))
    a = np.sqrt(6.0 / (12 + 50))
    assert np.abs(m.W.data).max() <= a and np.abs(m.W.data).max() > 0.8 * a
    assert not np.any(m.b.data) and not np.any(m.c.data)
    with pytest.raises(ValueError, match="rows"):
        WindowClassifier(11, 4, 3, embeddings=E)


def test_same_seed_same_init():
    a = WindowClassifier(30, 6, 5, rng=np.random.default_rng(7))
    b = WindowClassifier(30, 6, 5, rng=np.random.default_rng(7))
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x, y, err_msg=n)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_gradcheck_window_model(backend, activation):
    rng = np.random.default_rng(5)
    with fb.use_backend(backend):
        m = WindowClassifier(12, 6, 4, embed_dim=3, hidden=5, activation=activation,
                             dropout=0.25, dtype="float64", rng=rng)
        m.b.data[:] = 0.3  # keep relu away from its kink
        ids = _tiny_ids(rng, 12, 6)
        y = np.array([0, 1, 2, 3, 1, 1, 0])

        def fn(*params):  # the model's own parameters, perturbed in place by gradcheck
            return m.loss(ids, y, np.random.default_rng(99))  # the same dropout mask

        res = fb.gradcheck(fn, m.parameters())
        assert res.passed and res.max_rel_error < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_binary_model(backend):
    rng = np.random.default_rng(6)
    with fb.use_backend(backend):
        m = BinaryWindowClassifier(12, 6, positive=2, embed_dim=3, hidden=5,
                                   activation="tanh", dropout=0.25, dtype="float64", rng=rng)
        ids = _tiny_ids(rng, 12, 6)
        y = np.array([2, 0, 2, 1, 2, 0, 3])

        def fn(*params):
            return m.loss(ids, y, np.random.default_rng(98))

        res = fb.gradcheck(fn, m.parameters())
        assert res.passed and res.max_rel_error < 1e-5


def test_binary_model_shapes_targets_predict():
    rng = np.random.default_rng(0)
    m = BinaryWindowClassifier(20, 6, positive=3, embed_dim=4, hidden=8, rng=rng)
    assert [n for n, _ in m.named_parameters()] == [
        "u", "embedding.weight", "hidden_layer.weight", "hidden_layer.bias"]
    assert m.u.shape == (8,)
    ids = rng.integers(0, 20, size=(9, 6))
    s = m.forward(ids)
    assert s.shape == (9,) and s.dtype == np.float32
    np.testing.assert_array_equal(m.targets([3, 0, 3, 1]), np.array([1, 0, 1, 0], np.float32))
    p = m.predict(ids)
    assert p.dtype == np.bool_ and p.shape == (9,)
    np.testing.assert_array_equal(p, s.data > 0)


def test_binary_model_learns_loc(corpus):
    labels = corpus["labels"]
    fz = corpus["featurizer"]
    m = BinaryWindowClassifier(fz.n_rows, fz.width, positive=labels.id("LOC"), embed_dim=16,
                               hidden=32, rng=np.random.default_rng(0))
    res = train(m, corpus["train"], corpus["dev"], labels, epochs=3, batch_size=64, lr=3e-3,
                quiet=True)
    ev = evaluate(m, corpus["dev"], labels)
    assert set(ev["entity"]["per_type"]) <= {"LOC"}
    assert res.best_f1 > 0.6


def test_state_dict_validation():
    rng = np.random.default_rng(0)
    m = WindowClassifier(10, 3, 3, embed_dim=2, hidden=4, rng=rng)
    sd = m.state_dict()
    sd["embedding.weight"][0, 0] = 42.0  # a copy: the model is unchanged
    assert m.E.data[0, 0] != 42.0
    m.load_state_dict(sd)
    assert m.E.data[0, 0] == 42.0
    bad = dict(sd)
    del bad["output_layer.bias"]
    with pytest.raises(ValueError, match="missing key.s. output_layer.bias"):
        m.load_state_dict(bad)
    with pytest.raises(ValueError, match="unexpected key.s. zz"):
        m.load_state_dict({**sd, "zz": sd["output_layer.bias"]})
    with pytest.raises(ValueError, match="'hidden_layer.weight': shape"):
        m.load_state_dict({**sd, "hidden_layer.weight": np.zeros((5, 4), np.float32)})
    with pytest.raises(ValueError, match="'hidden_layer.bias': dtype float64"):
        m.load_state_dict({**sd, "hidden_layer.bias": sd["hidden_layer.bias"].astype(np.float64)})


# ---------------------------------------------------------------------- training
def test_training_improves_f1_and_is_reproducible(corpus):
    m0 = _model(corpus)
    before = evaluate(m0, corpus["dev"], corpus["labels"])["entity"]["f1"]
    runs = []
    for _ in range(2):
        m = _model(corpus, seed=4)
        res = train(m, corpus["train"], corpus["dev"], corpus["labels"], epochs=3,
                    batch_size=128, optimizer="adam", lr=3e-3, seed=4, quiet=True)
        runs.append((m, res))
    (m1, r1), (m2, r2) = runs
    assert r1.best_f1 > max(0.7, before + 0.3)
    assert len(r1.history) == 3
    h = r1.history[0]
    for key in ("train_loss", "dev_precision", "dev_recall", "dev_f1", "dev_token_f1",
                "seconds", "windows_per_s"):
        assert key in h
    assert r1.history[-1]["train_loss"] < r1.history[0]["train_loss"]
    for (n, p1), p2 in zip(m1.named_parameters(), m2.parameters()):  # same seed, same weights
        np.testing.assert_array_equal(p1.data, p2.data, err_msg=n)
    assert [x["train_loss"] for x in r1.history] == [x["train_loss"] for x in r2.history]
    # another seed gives other weights
    m3 = _model(corpus, seed=5)
    train(m3, corpus["train"], None, None, epochs=1, batch_size=128, seed=5, quiet=True)
    assert not np.array_equal(m3.W.data, m1.W.data)


def test_sgd_and_float64_training(corpus):
    m = _model(corpus, dtype="float64", activation="tanh")
    res = train(m, corpus["train"], corpus["dev"], corpus["labels"], epochs=2, batch_size=32,
                optimizer="sgd", lr=0.3, quiet=True)
    assert m.W.dtype == np.float64
    assert res.best_f1 > 0.5


def test_best_epoch_restored_and_checkpointed(corpus, tmp_path):
    m = _model(corpus)
    out = tmp_path / "ckpt"
    res = train(m, corpus["train"], corpus["dev"], corpus["labels"], epochs=3, batch_size=256,
                lr=3e-3, quiet=True, out_dir=out, featurizer=corpus["featurizer"])
    best = max(res.history, key=lambda h: h["dev_f1"])
    assert res.best_epoch == best["epoch"] and res.best_f1 == best["dev_f1"]
    assert res.checkpoints >= 1
    loaded = load_model(out)
    on_disk = loaded.model.state_dict()
    for n, p in m.named_parameters():  # the model holds the best epoch's weights, as on disk
        np.testing.assert_array_equal(on_disk[n], p.data, err_msg=n)
    assert loaded.training["best_epoch"] == res.best_epoch
    ev = evaluate(m, corpus["dev"], corpus["labels"])
    assert ev["entity"]["f1"] == pytest.approx(res.best_f1)


class _InterruptingModel(WindowClassifier):
    """Raises KeyboardInterrupt (as Ctrl-C would) after ``limit`` training steps."""

    limit = 10**9

    def loss(self, ids, y, rng=None):
        self.limit -= 1
        if self.limit < 0:
            raise KeyboardInterrupt
        return super().loss(ids, y, rng)


def test_keyboard_interrupt_keeps_best_checkpoint(corpus, tmp_path):
    fz, labels = corpus["featurizer"], corpus["labels"]
    m = _InterruptingModel(fz.n_rows, fz.width, len(labels), embed_dim=16, hidden=32,
                           rng=np.random.default_rng(0))
    n_batches = -(-len(corpus["train"]) // 256)
    m.limit = 2 * n_batches + 3  # two full epochs, then Ctrl-C inside the third
    out = tmp_path / "ckpt"
    # eager steps: the interrupting loss() is Python, which a compiled step runs only once
    res = train(m, corpus["train"], corpus["dev"], labels, epochs=10, batch_size=256, lr=3e-3,
                quiet=True, out_dir=out, featurizer=fz, compile=False)
    assert res.interrupted and len(res.history) == 2
    loaded = load_model(out)
    np.testing.assert_array_equal(loaded.model.W.data, m.W.data)  # best weights restored
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary directories left


def test_training_argument_errors(corpus):
    m = _model(corpus)
    with pytest.raises(ValueError, match="epochs"):
        train(m, corpus["train"], epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        train(m, corpus["train"], optimizer="rmsprop", quiet=True)


# ---------------------------------------------------------------------- save / load
def _saved(corpus, tmp_path, **kw):
    m = _model(corpus, **kw)
    train(m, corpus["train"], None, None, epochs=1, batch_size=256, quiet=True)
    path = save_model(tmp_path / "model", m, corpus["featurizer"], corpus["labels"],
                      {"note": "test", "score": np.float32(0.5)})
    return m, path


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(corpus, tmp_path, dtype):
    m, path = _saved(corpus, tmp_path, dtype=dtype)
    assert sorted(os.listdir(path)) == ["config.json", "weights.npz"]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["format_version"] == 2
    assert cfg["model"]["dtype"] == dtype and cfg["model"]["hidden"] == 32
    assert cfg["labels"]["labels"] == corpus["labels"].labels
    assert cfg["featurizer"]["vocab"]["words"][:3] == ["<unk>", "<s>", "</s>"]
    assert cfg["training"] == {"note": "test", "score": 0.5}
    loaded = load_model(path)
    assert loaded.featurizer == corpus["featurizer"] and loaded.labels == corpus["labels"]
    assert loaded.model.dtype == np.dtype(dtype)
    ids = corpus["dev"].ids
    np.testing.assert_array_equal(loaded.model.predict(ids), m.predict(ids))
    np.testing.assert_array_equal(loaded.model.predict_logits(ids), m.predict_logits(ids))
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["embedding.weight", "hidden_layer.bias",
                                     "hidden_layer.weight", "output_layer.bias",
                                     "output_layer.weight"]


def test_save_load_binary_model(corpus, tmp_path):
    fz, labels = corpus["featurizer"], corpus["labels"]
    m = BinaryWindowClassifier(fz.n_rows, fz.width, positive=labels.id("PER"), embed_dim=8,
                               hidden=8, rng=np.random.default_rng(0))
    save_model(tmp_path / "b", m, fz, labels)
    loaded = load_model(tmp_path / "b")
    assert isinstance(loaded.model, BinaryWindowClassifier)
    assert loaded.model.positive == labels.id("PER")
    ids = corpus["dev"].ids
    np.testing.assert_array_equal(loaded.model.predict(ids), m.predict(ids))


def test_save_replaces_atomically_and_failed_save_keeps_previous(corpus, tmp_path):
    m, path = _saved(corpus, tmp_path)
    before = (path / "weights.npz").read_bytes()

    class Exploding(WindowClassifier):
        def state_dict(self):  # fails half-way through writing the new checkpoint
            raise KeyboardInterrupt

    fz, labels = corpus["featurizer"], corpus["labels"]
    bad = Exploding(fz.n_rows, fz.width, len(labels), embed_dim=16, hidden=32)
    with pytest.raises(KeyboardInterrupt):
        save_model(path, bad, fz, labels)
    assert (path / "weights.npz").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model"]  # temp dir cleaned up
    load_model(path)
    # a successful save replaces the whole directory
    (path / "stray.txt").write_text("x")
    save_model(path, m, fz, labels)
    assert sorted(os.listdir(path)) == ["config.json", "weights.npz"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def _edit_config(path, fn):
    cfile = path / "config.json"
    cfg = json.loads(cfile.read_text())
    fn(cfg)
    cfile.write_text(json.dumps(cfg))


def _rewrite_weights(path, **changes):
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(path / "weights.npz", **arrays)


@pytest.mark.parametrize("case, pattern", [
    ("missing_dir", "model directory not found"),
    ("missing_config", "config.json: missing"),
    ("missing_weights", "weights.npz: missing"),
    ("bad_json", "config.json: not valid JSON"),
    ("wrong_version", "unsupported format_version 3 .this fastbp reads versions 1, 2"),
    ("no_version", "format_version"),
    ("missing_model_key", "lacks required key.*hidden"),
    ("unknown_type", "unknown model type"),
    ("bad_vocab", "invalid featurizer"),
    ("label_mismatch", "classes but the label set has"),
    ("vocab_mismatch", "does not match its featurizer"),
    ("wrong_shape", "'hidden_layer.weight' has shape"),
    ("wrong_dtype", "'output_layer.weight' has dtype float64"),
    ("missing_array", "do not match the model's parameters"),
    ("extra_array", "do not match the model's parameters"),
    ("truncated", "weights.npz: cannot read"),
    ("pickled_object", "weights.npz: array .hidden_layer.weight. has dtype object"),
    ("not_a_dir", "not a model directory"),
])
def test_load_rejects_bad_model_dirs(corpus, tmp_path, case, pattern):
    m, path = _saved(corpus, tmp_path)
    H = m.hidden
    if case == "missing_dir":
        path = tmp_path / "nope"
    elif case == "missing_config":
        (path / "config.json").unlink()
    elif case == "missing_weights":
        (path / "weights.npz").unlink()
    elif case == "bad_json":
        (path / "config.json").write_text('{"format_version": 1, "model": ')
    elif case == "wrong_version":
        _edit_config(path, lambda c: c.update(format_version=3))
    elif case == "no_version":
        _edit_config(path, lambda c: c.pop("format_version"))
    elif case == "missing_model_key":
        _edit_config(path, lambda c: c["model"].pop("hidden"))
    elif case == "unknown_type":
        _edit_config(path, lambda c: c["model"].update(type="crf"))
    elif case == "bad_vocab":
        _edit_config(path, lambda c: c["featurizer"]["vocab"].update(words=["a", "b"]))
    elif case == "label_mismatch":
        _edit_config(path, lambda c: c["labels"]["labels"].pop())
    elif case == "vocab_mismatch":
        _edit_config(path, lambda c: c["featurizer"]["vocab"]["words"].pop())
    elif case == "wrong_shape":
        _rewrite_weights(path, **{"hidden_layer.weight": np.zeros((H, 3), np.float32)})
    elif case == "wrong_dtype":
        _rewrite_weights(path, **{"output_layer.weight": m.U.data.astype(np.float64)})
    elif case == "missing_array":
        _rewrite_weights(path, **{"output_layer.bias": None})
    elif case == "extra_array":
        _rewrite_weights(path, extra=np.zeros(3, np.float32))
    elif case == "truncated":
        data = (path / "weights.npz").read_bytes()
        (path / "weights.npz").write_bytes(data[: len(data) // 2])
    elif case == "pickled_object":
        _rewrite_weights(path, **{"hidden_layer.weight": np.array([{"evil": 1}] * 3,
                                                                  dtype=object)})
    elif case == "not_a_dir":
        path = tmp_path / "file"
        path.write_text("x")
    with pytest.raises(ModelFormatError, match=pattern) as info:
        load_model(path)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    if case not in ("missing_dir", "not_a_dir"):
        assert str(path) in str(info.value)  # names the file


def test_npz_is_a_zip_of_plain_arrays(corpus, tmp_path):
    _, path = _saved(corpus, tmp_path)
    with zipfile.ZipFile(path / "weights.npz") as z:
        assert sorted(z.namelist()) == [
            "embedding.weight.npy", "hidden_layer.bias.npy", "hidden_layer.weight.npy",
            "output_layer.bias.npy", "output_layer.weight.npy"]


# ---------------------------------------------------------------------- older model dirs
V1 = Path(__file__).resolve().parent / "data"  # written by fastbp 2d266ea (format version 1)


def test_version_1_model_directories_still_load(tmp_path):
    expected = np.load(V1 / "model_v1_expected.npz")
    ids = expected["ids"]
    loaded = load_model(V1 / "model_v1")
    m = loaded.model
    assert isinstance(m, WindowClassifier) and loaded.training["note"].endswith("2d266ea")
    with np.load(V1 / "model_v1" / "weights.npz") as old:  # W (in, out) became (out, in)
        np.testing.assert_array_equal(m.W.data, old["W"].T)
        np.testing.assert_array_equal(m.U.data, old["U"].T)
        np.testing.assert_array_equal(m.E.data, old["E"])
    np.testing.assert_allclose(m.predict_logits(ids), expected["logits"], rtol=1e-5,
                               atol=1e-6)
    b = load_model(V1 / "model_v1_binary").model
    assert isinstance(b, BinaryWindowClassifier)
    np.testing.assert_allclose(b.predict_scores(ids), expected["scores"], rtol=1e-5,
                               atol=1e-6)
    # saving again writes the current format, which loads to the same model
    out = save_model(tmp_path / "v2", m, loaded.featurizer, loaded.labels, loaded.training)
    assert json.loads((out / "config.json").read_text())["format_version"] == 2
    again = load_model(out).model
    for (n, p), q in zip(m.named_parameters(), again.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


def test_version_1_directory_with_version_2_names_is_refused(tmp_path):
    import shutil

    path = tmp_path / "m"
    shutil.copytree(V1 / "model_v1", path)
    with np.load(path / "weights.npz") as old:
        arrays = {f"x.{k}": old[k] for k in old.files}
    np.savez(path / "weights.npz", **arrays)
    with pytest.raises(ModelFormatError, match=r"do not match.*\(format version 1\)"):
        load_model(path)


# ---------------------------------------------------------------------- real data
@pytest.mark.skipif(not (_data_dir() / "train.conll").is_file(),
                    reason="CoNLL-2003 data not found (../shared/data/conll2003 or "
                           "FASTBP_DATA_DIR)")
def test_conll2003_one_epoch_smoke():
    from fastbp.cli import build_model, build_vocab
    from fastbp.ner.data import read_conll

    d = _data_dir()
    vectors = d / "glove.6B.50d.conll-vocab.txt"
    tr, dv = read_conll(d / "train.conll"), read_conll(d / "dev.conll")
    assert all(isinstance(s, Sentence) for s in tr[:3])
    labels = LabelSet.from_sentences(tr + dv)
    vocab, _ = build_vocab(tr, dv, vectors)
    fz = WindowFeaturizer(vocab, window=1)
    m, n_found = build_model(fz, labels, vectors=vectors, dropout=0.5)
    assert n_found > 0.8 * (len(vocab) - 3)
    res = train(m, make_dataset(tr, fz, labels), make_dataset(dv, fz, labels), labels,
                epochs=1, batch_size=2048, quiet=True)
    assert res.best_f1 > 0.70  # ~0.78 after one epoch; >= 0.84 after 10 (see README)


def test_fast_io_entity_scores_match_metrics():
    from fastbp.ner.metrics import entity_scores
    from fastbp.ner.train import entity_scores_ids
    from fastbp.ner.windows import split

    labels = LabelSet(["O", "LOC", "MISC", "ORG", "PER"])
    rng = np.random.default_rng(0)
    for trial in range(20):
        lengths = rng.integers(1, 9, size=rng.integers(1, 30))
        n = int(lengths.sum())
        gold = rng.choice(5, size=n, p=[0.5, 0.2, 0.1, 0.1, 0.1])
        pred = gold.copy()
        flip = rng.random(n) < 0.2
        pred[flip] = rng.integers(0, 5, size=int(flip.sum()))
        if trial == 0:
            pred[:] = 0  # nothing predicted
        g_s = [labels.decode(x) for x in split(gold, lengths)]
        p_s = [labels.decode(x) for x in split(pred, lengths)]
        assert entity_scores_ids(gold, pred, lengths, labels) == entity_scores(g_s, p_s)
