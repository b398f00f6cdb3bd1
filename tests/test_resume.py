"""Exact resume: ``fastbp train --resume DIR`` continues from the state kept in DIR.last
(weights, Adam moments and step counts, the shuffling and dropout streams, epoch, best
score and weights), giving bitwise the model of an uninterrupted run; a resume with other
data or options is a one-line error naming the difference."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastbp as fb
from fastbp.cli import main
from fastbp.ner.checkpoint import ResumeError, load_state, save_state, state_dir_for
from fastbp.ner.data import write_conll
from fastbp.ner.model import WindowClassifier
from fastbp.ner.synthetic import generate_corpus
from fastbp.ner.train import TrainResult, make_dataset, seed_streams, train
from fastbp.ner.vocab import LabelSet, Vocab
from fastbp.ner.windows import WindowFeaturizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    train_s, dev_s = generate_corpus(n_train=300, n_dev=80, seed=2)
    write_conll(d / "train.conll", train_s)
    write_conll(d / "dev.conll", dev_s)
    write_conll(d / "other.conll", generate_corpus(n_train=300, n_dev=10, seed=9)[0])
    return d


def _args(corpus, out, epochs, *extra):
    return ["train", "--train", str(corpus / "train.conll"), "--dev",
            str(corpus / "dev.conll"), "--hidden", "16", "--embed-dim", "8", "--batch-size",
            "64", "--lr", "5e-3", "--dropout", "0.3", "--quiet", "--epochs", str(epochs),
            "--out", str(out), *extra]


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _assert_same_arrays(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_2_to_4_epochs_equals_straight_4(corpus, tmp_path, capsys, optimizer):
    opt = ["--optimizer", optimizer] + (["--lr", "0.2"] if optimizer == "sgd" else [])
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(_args(corpus, straight, 4, *opt)) == 0
    assert main(_args(corpus, resumed, 2, *opt)) == 0
    two = _arrays(resumed / "weights.npz")
    assert main(_args(corpus, resumed, 4, *opt, "--resume", str(resumed))) == 0
    capsys.readouterr()
    final = _arrays(resumed / "weights.npz")
    assert any(not np.array_equal(two[k], final[k]) for k in two)  # it did train on
    _assert_same_arrays(_arrays(straight / "weights.npz"), final)
    # the whole training state too: current and best weights, Adam moments and steps
    _assert_same_arrays(_arrays(state_dir_for(straight) / "state.npz"),
                        _arrays(state_dir_for(resumed) / "state.npz"))
    s = json.loads((state_dir_for(straight) / "state.json").read_text())
    r = json.loads((state_dir_for(resumed) / "state.json").read_text())
    assert s["rng"] == r["rng"] and s["epoch"] == r["epoch"] == 4
    assert s["best_epoch"] == r["best_epoch"] and s["best_f1"] == r["best_f1"]
    assert [h["train_loss"] for h in s["history"]] == [h["train_loss"] for h in r["history"]]
    cfg = json.loads((resumed / "config.json").read_text())["training"]
    assert [h["epoch"] for h in cfg["history"]] == [1, 2, 3, 4]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_then_resume_equals_straight_run(corpus, tmp_path, capsys):
    out = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "fastbp", *_args(corpus, out, 100000)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (state_dir_for(out) / "state.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no training state written"
            time.sleep(0.02)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # mid-epoch, or mid-save (deferred)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and f"--resume {out}" in err, err
    reached = load_state(out).epoch
    assert reached >= 1
    assert main(_args(corpus, out, reached + 2, "--resume", str(out))) == 0
    assert main(_args(corpus, tmp_path / "straight", reached + 2)) == 0
    capsys.readouterr()
    _assert_same_arrays(_arrays(tmp_path / "straight" / "weights.npz"),
                        _arrays(out / "weights.npz"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.last", "straight",
                                                           "straight.last"]


def test_resume_needs_the_adam_state(corpus, tmp_path, capsys):
    """The equality above is not automatic: resuming with Adam's step counts reset (the
    moments kept) gives other weights."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(_args(corpus, straight, 3)) == 0
    assert main(_args(corpus, resumed, 2)) == 0
    sd = state_dir_for(resumed)
    arrays = _arrays(sd / "state.npz")
    assert arrays["opt/steps"].min() > 0
    arrays["opt/steps"] = np.where(arrays["opt/steps"] > 0, 1, 0)
    np.savez(sd / "state.npz", **arrays)
    assert main(_args(corpus, resumed, 3, "--resume", str(resumed))) == 0
    capsys.readouterr()
    a, b = _arrays(straight / "weights.npz"), _arrays(resumed / "weights.npz")
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_state_round_trips_adam_and_generators(tmp_path):
    train_s, dev_s = generate_corpus(n_train=60, n_dev=20, seed=4)
    labels = LabelSet.from_sentences(train_s + dev_s)
    fz = WindowFeaturizer(Vocab.build(train_s), window=1)
    model = WindowClassifier(fz.n_rows, fz.width, len(labels), embed_dim=4, hidden=6,
                             dropout=0.2, dtype="float64", rng=np.random.default_rng(1))
    data = make_dataset(train_s, fz, labels)
    opt = fb.optim.Adam(model.parameters(), lr=1e-2)
    sd = tmp_path / "m.last"
    train(model, data, make_dataset(dev_s, fz, labels), labels, epochs=2, batch_size=32,
          optimizer=opt, seed=5, featurizer=fz, quiet=True, state_dir=sd)
    st = load_state(tmp_path / "m")  # the model directory: DIR.last is found beside it
    for i, p in enumerate(opt.params):
        live = opt.state[id(p)]
        assert st.arrays["opt/steps"][i] == live["step"] > 0
        assert np.array_equal(st.arrays[f"opt/{i}/m"], live["m"])
        assert np.array_equal(st.arrays[f"opt/{i}/v"], live["v"])
        assert st.arrays[f"opt/{i}/m"].dtype == np.float64
    # the streams after 2 epochs, replayed: one permutation per epoch, dropout per batch
    shuffle, dropout = seed_streams(5, 2)
    for _ in range(2):
        shuffle.permutation(len(data))
    assert st.meta["rng"]["shuffle"] == shuffle.bit_generator.state
    # the dropout masks come from a fastbp.Generator seeded by the dropout stream
    fresh = fb.Generator(dropout).state
    saved = st.meta["rng"]["dropout"]["fastbp"]
    assert saved["key"] == fresh["key"] and saved["counter"] > fresh["counter"]  # used
    g, h = fb.Generator(0), fb.Generator(0)
    g.state = saved
    h.state = json.loads(json.dumps(saved))  # the JSON round trip is exact
    x = fb.Tensor(np.ones((3, 4)))
    assert np.array_equal(fb.dropout(x, 0.5, True, g).data, fb.dropout(x, 0.5, True, h).data)


def _one_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: "), err
    return lines[0]


@pytest.mark.parametrize("change,expected", [
    (["--hidden", "12"], "hidden differs (--hidden): 16 in the checkpoint, 12 now"),
    (["--lr", "1e-2"], "lr differs (--lr): 0.005 in the checkpoint, 0.01 now"),
    (["--optimizer", "sgd"], "optimizer differs (--optimizer): 'adam' in the checkpoint"),
    (["--dropout", "0.1"], "dropout differs (--dropout): 0.3 in the checkpoint, 0.1 now"),
    (["--seed", "7"], "seed differs (--seed): 0 in the checkpoint, 7 now"),
    (["--no-casing"], "casing differs (--no-casing): True in the checkpoint, False now"),
    (["--min-count", "2"], "the vocabulary differs from the saved run's (another --vectors"),
    (["--epochs", "1"], "it has reached epoch 2, more than --epochs 1"),
    ("other-train", "the training data differ from the saved run's (another --train file?)"),
    ("no-dev", "the dev data differ"),
])
def test_mismatched_resume_is_one_line_error(corpus, tmp_path_factory, change, expected):
    out = tmp_path_factory.mktemp("mm") / "m"
    assert main(_args(corpus, out, 2)) == 0
    args = _args(corpus, out, 3, "--resume", str(out))
    if change == "other-train":
        args[2] = str(corpus / "other.conll")
    elif change == "no-dev":
        del args[3:5]
    else:
        args += change
    p = subprocess.run([sys.executable, "-m", "fastbp", *args], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1
    line = _one_line(p.stderr)
    assert f"cannot resume from {state_dir_for(out)}" in line and expected in line, line


def test_resume_without_state_is_one_line_error(corpus, tmp_path):
    p = subprocess.run([sys.executable, "-m", "fastbp",
                        *_args(corpus, tmp_path / "m", 2, "--resume", str(tmp_path / "none"))],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert "no training state to resume" in _one_line(p.stderr)


def test_save_state_is_atomic_over_a_previous_state(corpus, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(_args(corpus, out, 1)) == 0
    capsys.readouterr()
    st = load_state(out)
    sd = state_dir_for(out)
    before = (sd / "state.npz").read_bytes()

    class Boom(Exception):
        pass

    class Exploding:  # fails while np.savez writes the new state's arrays
        def __array__(self, *a, **k):
            raise Boom

    class BadModel:
        def state_dict(self):
            return {"w": Exploding()}

    opt = fb.optim.SGD([fb.Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises(Boom):
        save_state(sd, model=BadModel(), opt=opt, rngs=(), result=TrainResult(),
                   best_state={}, fp={}, epoch=2)
    assert (sd / "state.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.last"]
    assert load_state(sd).epoch == st.epoch == 1
    with pytest.raises(ResumeError, match="not a fastbp training state"):
        (sd / "state.json").write_text("{}")
        load_state(sd)
