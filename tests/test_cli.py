"""The ``fastbp`` command line: every command on small files written to tmp_path, called
in-process (``fastbp.cli.main``) and as real subprocesses (``python -m fastbp``); every
error is one line on stderr with a non-zero exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastbp.cli import main
from fastbp.ner.data import write_conll
from fastbp.ner.io import load_model
from fastbp.ner.synthetic import generate_corpus

def _env():
    # tests/conftest.py runs the session from a scratch directory and, in a development
    # checkout, points PYTHONPATH at it: children import the same fastbp as this process
    # (the installed one in CI), never a source tree without compiled kernels.
    return dict(os.environ)


def run_module(*args, input=None, timeout=120):
    """``python -m fastbp ARGS`` in a real subprocess."""
    return subprocess.run([sys.executable, "-m", "fastbp", *map(str, args)], input=input,
                          capture_output=True, text=True, env=_env(),
                          timeout=timeout)


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fastbp: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    train_s, dev_s = generate_corpus(n_train=400, n_dev=100, seed=1)
    write_conll(d / "train.conll", train_s)
    write_conll(d / "dev.conll", dev_s)
    # a small GloVe-format file: vectors for a few corpus words plus unrelated ones
    rng = np.random.default_rng(0)
    words = sorted({t.lower() for s in train_s[:40] for t in s.tokens if t.isalpha()})[:30]
    words.append("zzzunused")
    with open(d / "vectors.txt", "w") as fh:
        for w in words:
            fh.write(w + " " + " ".join(f"{x:.4f}" for x in rng.normal(0, 0.4, 8)) + "\n")
    (d / "raw.txt").write_text("Peter Blackburn visited Paris on Monday .\n\nthe EU said so\n")
    return d


@pytest.fixture(scope="module")
def model_dir(files):
    out = files / "model"
    rc = main(["train", "--train", str(files / "train.conll"), "--dev",
               str(files / "dev.conll"), "--epochs", "2", "--batch-size", "128", "--hidden",
               "24", "--embed-dim", "12", "--lr", "3e-3", "--quiet", "--out", str(out)])
    assert rc == 0
    return out


# ---------------------------------------------------------------------- commands
def test_train_writes_model_and_prints_tables(files, capsys, tmp_path):
    out = tmp_path / "m"
    rc = main(["train", "--train", str(files / "train.conll"), "--dev",
               str(files / "dev.conll"), "--vectors", str(files / "vectors.txt"), "--window",
               "1", "--epochs", "2", "--batch-size", "256", "--hidden", "16", "--dropout",
               "0.1", "--optimizer", "adam", "--lr", "5e-3", "--seed", "3", "--quiet",
               "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert cap.err == ""  # --quiet: no progress, no epoch lines
    assert "vectors: 30 of" in cap.out and "found in" in cap.out
    assert "best epoch:" in cap.out
    assert "token-level scores" in cap.out and "entity-level scores" in cap.out
    assert "micro avg" in cap.out and "overall" in cap.out
    assert "training wall time" in cap.out and "windows/s" in cap.out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format_version"] == 2 and cfg["model"]["embed_dim"] == 8
    t = cfg["training"]
    assert len(t["history"]) == 2 and t["best_epoch"] in (1, 2) and t["seed"] == 3
    assert load_model(out).model.width == 6


def test_train_no_casing_sgd_float64_no_dev(files, capsys, tmp_path):
    rc = main(["train", "--train", str(files / "train.conll"), "--no-casing", "--optimizer",
               "sgd", "--lr", "0.1", "--dtype", "float64", "--epochs", "1", "--activation",
               "tanh", "--min-count", "2", "--max-vocab", "100", "--embed-dim", "8",
               "--hidden", "8", "--quiet", "--out", str(tmp_path / "m")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    loaded = load_model(tmp_path / "m")
    assert loaded.model.dtype == np.float64 and not loaded.featurizer.casing
    assert len(loaded.featurizer.vocab) <= 103


def test_train_binary(files, capsys, tmp_path):
    rc = main(["train", "--train", str(files / "train.conll"), "--dev",
               str(files / "dev.conll"), "--binary", "LOC", "--epochs", "1", "--hidden", "8",
               "--embed-dim", "8", "--quiet", "--out", str(tmp_path / "b")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert load_model(tmp_path / "b").model.kind == "binary"
    rc = main(["predict", "--model", str(tmp_path / "b"), str(files / "raw.txt")])
    out = capsys.readouterr().out
    assert rc == 0 and set(ln.split("\t")[1] for ln in out.splitlines() if ln) <= {"O", "LOC"}


def test_train_progress_lines_on_stderr(files, capsys, tmp_path):
    rc = main(["train", "--train", str(files / "train.conll"), "--dev",
               str(files / "dev.conll"), "--epochs", "2", "--hidden", "8", "--embed-dim", "8",
               "--out", str(tmp_path / "m")])
    cap = capsys.readouterr()
    assert rc == 0
    assert "epoch 1/2" in cap.err and "epoch 2/2" in cap.err and "win/s" in cap.err


def test_evaluate(files, model_dir, capsys):
    rc = main(["evaluate", "--model", str(model_dir), "--data", str(files / "dev.conll")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    out = cap.out
    assert "token-level" in out and "micro avg (excl. O)" in out
    assert "entity-level" in out and "overall" in out
    assert "confusion matrix" in out and "gold \\ pred" in out
    for lab in ("PER", "ORG", "LOC", "MISC"):
        assert lab in out


def test_predict_file(files, model_dir, capsys):
    rc = main(["predict", "--model", str(model_dir), str(files / "raw.txt")])
    out = capsys.readouterr().out
    assert rc == 0
    blocks = out.split("\n\n")
    assert out.endswith("\n\n") and len([b for b in blocks if b.strip()]) == 2
    first = blocks[0].splitlines()
    expected = "Peter Blackburn visited Paris on Monday .".split()
    assert [ln.split("\t")[0] for ln in first] == expected
    labels = set(load_model(model_dir).labels.labels)
    assert all(ln.split("\t")[1] in labels for ln in out.splitlines() if ln)


def test_predict_stdin_subprocess(model_dir):
    p = run_module("predict", "--model", model_dir, input="John lives in Berlin\n")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [ln.split("\t")[0] for ln in lines[:4]] == ["John", "lives", "in", "Berlin"]
    assert lines[4] == "" and len(lines) == 5


def test_demo_in_process(capsys):
    rc = main(["demo", "--epochs", "1", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "SYNTHETIC" in out
    assert "synthetic dev entity-level F1" in out and "windows/s" in out
    f1 = float(out.split("synthetic dev entity-level F1: ")[1].split()[0])
    assert f1 > 0.8


def test_demo_subprocess_defaults(tmp_path):
    t0 = time.perf_counter()
    p = run_module("demo", "--out", tmp_path / "demo")
    assert p.returncode == 0, p.stderr
    assert "SYNTHETIC" in p.stdout and "entity-level F1" in p.stdout
    assert time.perf_counter() - t0 < 60
    load_model(tmp_path / "demo")


def test_gradcheck_command(capsys):
    rc = main(["gradcheck"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "numpy: PASS" in out and "worst relative error" in out
    assert "cython" in out


def test_bench_command(capsys):
    rc = main(["bench", "--quick", "--budget", "0.3", "--config", "lecture", "--batch-size",
               "32", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "| lecture | 32 |" in cap.out and "pure-numpy" in cap.out


def test_plot(files, capsys, tmp_path):
    args = ["train", "--train", str(files / "train.conll"), "--dev", str(files / "dev.conll"),
            "--epochs", "2", "--hidden", "8", "--embed-dim", "8", "--quiet", "--out",
            str(tmp_path / "m"), "--plot", str(tmp_path / "curves.png")]
    rc = main(args)
    cap = capsys.readouterr()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert rc == 1
        line = _one_error_line(cap.err)
        assert "matplotlib" in line and "fastbp[plot]" in line
        assert not (tmp_path / "m").exists()  # fails before training
    else:
        assert rc == 0, cap.err
        assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "fastbp" in capsys.readouterr().out


# ---------------------------------------------------------------------- errors
def _bad_files(tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("EU\tORG\nrejects\n")
    badvec = tmp_path / "bad_vectors.txt"
    badvec.write_text("the 0.1 0.2\nof 0.3 x\n")
    return bad, badvec


@pytest.mark.parametrize("case", [
    "no_command", "unknown_command", "missing_required", "bad_int", "bad_choice",
    "bad_dropout", "unknown_option", "missing_train", "malformed_train", "malformed_vectors",
    "missing_vectors", "train_is_dir", "missing_model", "corrupted_model", "unknown_label",
    "missing_predict_file", "binary_unknown_label", "empty_train",
])
def test_errors_are_one_line(case, files, model_dir, tmp_path, capsys):
    bad, badvec = _bad_files(tmp_path)
    tr, dv = str(files / "train.conll"), str(files / "dev.conll")
    out = str(tmp_path / "out")
    small = ["--epochs", "1", "--hidden", "4", "--embed-dim", "4", "--quiet"]
    expect = {
        "no_command": ([], 2, "command is required"),
        "unknown_command": (["frobnicate"], 2, "invalid choice"),
        "missing_required": (["train", "--train", tr], 2, "--out"),
        "bad_int": (["train", "--train", tr, "--out", out, "--epochs", "ten"], 2,
                    "positive integer"),
        "bad_choice": (["train", "--train", tr, "--out", out, "--activation", "gelu"], 2,
                       "invalid choice"),
        "bad_dropout": (["train", "--train", tr, "--out", out, "--dropout", "1.5"], 2,
                        "[0, 1)"),
        "unknown_option": (["evaluate", "--model", "m", "--data", dv, "--frob"], 2,
                           "unrecognized arguments"),
        "missing_train": (["train", "--train", str(tmp_path / "nope.conll"), "--out", out],
                          1, "nope.conll: file not found"),
        "malformed_train": (["train", "--train", str(bad), "--out", out] + small, 1,
                            "bad.conll:2"),
        "malformed_vectors": (["train", "--train", tr, "--vectors", str(badvec), "--out",
                               out] + small, 1, "bad_vectors.txt:"),
        "missing_vectors": (["train", "--train", tr, "--vectors", str(tmp_path / "v.txt"),
                             "--out", out], 1, "vectors file not found"),
        "train_is_dir": (["train", "--train", str(tmp_path), "--out", out] + small, 1,
                         "is a directory"),
        "missing_model": (["evaluate", "--model", str(tmp_path / "nomodel"), "--data", dv], 1,
                          "model directory not found"),
        "corrupted_model": (None, 1, "weights.npz"),
        "unknown_label": (None, 1, "not one of the model's labels"),
        "missing_predict_file": (["predict", "--model", str(model_dir),
                                  str(tmp_path / "nofile.txt")], 1, "file not found"),
        "binary_unknown_label": (["train", "--train", tr, "--binary", "FOO", "--out", out]
                                 + small, 1, "not a label"),
        "empty_train": (None, 1, "no sentences"),
    }
    argv, code, text = expect[case]
    if case == "corrupted_model":
        import shutil

        broken = tmp_path / "broken"
        shutil.copytree(model_dir, broken)
        data = (broken / "weights.npz").read_bytes()
        (broken / "weights.npz").write_bytes(data[:100])
        argv = ["evaluate", "--model", str(broken), "--data", dv]
    elif case == "unknown_label":
        odd = tmp_path / "odd.conll"
        odd.write_text("Paris\tGPE\n")
        argv = ["evaluate", "--model", str(model_dir), "--data", str(odd)]
    elif case == "empty_train":
        empty = tmp_path / "empty.conll"
        empty.write_text("-DOCSTART-\tO\n\n")
        argv = ["train", "--train", str(empty), "--out", out]
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == code, cap.err
    line = _one_error_line(cap.err)
    assert text in line


def test_error_subprocess_one_line(tmp_path):
    p = run_module("evaluate", "--model", tmp_path / "missing", "--data", tmp_path / "x.conll")
    assert p.returncode == 1
    assert "model directory not found" in _one_error_line(p.stderr)
    p = run_module("train", "--epochs", "0", "--train", "x", "--out", "y")
    assert p.returncode == 2
    assert "positive integer" in _one_error_line(p.stderr)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_during_training_exits_130_keeping_checkpoint(files, tmp_path):
    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "fastbp", "train", "--train", str(files / "train.conll"),
           "--dev", str(files / "dev.conll"), "--epochs", "100000", "--hidden", "8",
           "--embed-dim", "8", "--batch-size", "64", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        deadline = time.time() + 60
        while not (out / "config.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no checkpoint written"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    line = _one_error_line(stderr)
    assert "interrupted" in line and str(out) in line
    assert "best epoch:" in stdout  # the summary of the epochs run so far
    load_model(out)
    # no temporary directory left: the model and its training state (for --resume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.last"]
