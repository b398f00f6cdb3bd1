"""Streaming prediction: ``fastbp predict`` in chunks (in order, same bytes with worker
processes, bounded look-ahead, quiet on a closed pipe, Ctrl-C without a hang, malformed
lines named mid-stream) and the library iterator :func:`fastbp.ner.tag_sentences`."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastbp.cli import main
from fastbp.ner import Tagger, TextFormatError, read_token_lines, tag_sentences
from fastbp.ner.data import write_conll
from fastbp.ner.io import load_model
from fastbp.ner.stream import predict_stream
from fastbp.ner.synthetic import generate_corpus


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    train_s, dev_s = generate_corpus(n_train=300, n_dev=80, seed=2)
    write_conll(d / "train.conll", train_s)
    write_conll(d / "dev.conll", dev_s)
    rc = main(["train", "--train", str(d / "train.conll"), "--dev", str(d / "dev.conll"),
               "--epochs", "2", "--batch-size", "128", "--hidden", "16", "--embed-dim", "8",
               "--lr", "5e-3", "--quiet", "--out", str(d / "model")])
    assert rc == 0
    return d / "model"


@pytest.fixture(scope="module")
def raw_sentences():
    _, dev_s = generate_corpus(n_train=10, n_dev=400, seed=5)
    return [list(s.tokens) for s in dev_s]


def _reference(model_dir, sents):
    """Everything at once, the way predict worked before streaming."""
    loaded = load_model(model_dir)
    tagger = Tagger(loaded.model, loaded.featurizer, loaded.labels)
    return tagger.tag(sents)


def test_tag_sentences_matches_whole_batch_and_is_lazy(model_dir, raw_sentences):
    expected = _reference(model_dir, raw_sentences)
    pulled = []

    def source():
        for s in raw_sentences:
            pulled.append(1)
            yield s

    it = tag_sentences(Tagger.load(model_dir), source(), chunk_size=7)
    first = next(it)
    assert first == (raw_sentences[0], expected[0])
    assert len(pulled) == 7  # one chunk read, not the whole input
    rest = list(it)
    assert [labs for _, labs in [first, *rest]] == expected
    assert [toks for toks, _ in [first, *rest]] == raw_sentences


def test_tag_sentences_jobs_same_result_and_bounded_lookahead(model_dir, raw_sentences):
    expected = list(tag_sentences(model_dir, raw_sentences, chunk_size=13))
    pulled = []

    def source():
        for s in raw_sentences:
            pulled.append(1)
            yield s

    it = tag_sentences(load_model(model_dir), source(), jobs=2, chunk_size=13)
    first = next(it)
    assert len(pulled) <= 13 * 4  # at most 2 * jobs chunks in flight
    assert [first, *it] == expected


def test_tag_sentences_empty_sentences_and_bad_arguments(model_dir):
    out = list(tag_sentences(model_dir, [["Paris"], [], ["the", "EU"]]))
    assert [len(lab) for _, lab in out] == [1, 0, 2]
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        list(tag_sentences(model_dir, [["a"]], jobs=0))
    with pytest.raises(TypeError, match="expected a Tagger"):
        list(tag_sentences(42, [["a"]]))


def _raw_text(sents, copies=1):
    return ("\n".join(" ".join(s) for s in sents) + "\n").encode() * copies


def test_predict_stream_jobs_same_bytes(model_dir, raw_sentences):
    raw = _raw_text(raw_sentences, 3)
    outs = []
    for jobs in (1, 2, 3):
        buf = io.StringIO()
        predict_stream(Tagger.load(model_dir), io.BytesIO(raw), buf, jobs=jobs,
                       chunk_size=50)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] == outs[2]
    expected = _reference(model_dir, raw_sentences * 3)
    blocks = outs[0].split("\n\n")[:-1]
    assert len(blocks) == len(expected)
    assert [[ln.split("\t")[1] for ln in b.split("\n")] for b in blocks] == expected


def test_read_token_lines_names_the_bad_line(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"\xef\xbb\xbfa b\n\nc\n" + b"x\n" * 2000 + b"bad \xff\n")
    it = read_token_lines(p)
    assert next(it) == ["a", "b"]  # BOM dropped, blank lines skipped
    with pytest.raises(TextFormatError, match=r"t\.txt:2004: invalid utf-8"):
        list(it)


def _run(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "fastbp", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.mark.parametrize("jobs", [1, 2])
def test_cli_predict_jobs_same_bytes_and_bad_line_mid_stream(model_dir, raw_sentences,
                                                             tmp_path, jobs):
    good = tmp_path / "good.txt"
    good.write_bytes(_raw_text(raw_sentences, 6))  # 2400 lines: 3 chunks
    ref = subprocess.run([sys.executable, "-m", "fastbp", "predict", "--model",
                          str(model_dir), str(good)], capture_output=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    p = subprocess.run([sys.executable, "-m", "fastbp", "predict", "--jobs", str(jobs),
                        "--model", str(model_dir), str(good)], capture_output=True,
                       timeout=120)
    assert p.returncode == 0 and p.stderr == b""
    assert p.stdout == ref.stdout
    assert p.stdout.count(b"\n\n") == 2400

    bad = tmp_path / "bad.txt"
    lines = good.read_bytes().splitlines(True)
    lines[2100] = b"caf\xe9 latte\n"
    bad.write_bytes(b"".join(lines))
    p = subprocess.run([sys.executable, "-m", "fastbp", "predict", "--jobs", str(jobs),
                        "--model", str(model_dir), str(bad)], capture_output=True,
                       timeout=120)
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [
        f"fastbp: error: {bad}:2101: invalid utf-8 (invalid continuation byte)"]
    assert p.stdout.count(b"\n\n") == 2000  # the chunks before the bad one were written
    assert ref.stdout.startswith(p.stdout)


@pytest.mark.parametrize("jobs", [1, 2])
def test_cli_predict_closed_pipe_is_quiet(model_dir, raw_sentences, tmp_path, jobs):
    big = tmp_path / "big.txt"
    big.write_bytes(_raw_text(raw_sentences, 200))  # 80k lines
    t0 = time.perf_counter()
    p = _run(["predict", "--jobs", jobs, "--model", model_dir, big])
    assert p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    rc = p.wait(timeout=60)
    err = p.stderr.read().decode()
    assert rc == 0 and err == "", err
    assert time.perf_counter() - t0 < 30


def test_cli_predict_ctrl_c_stops_workers(model_dir, raw_sentences, tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(_raw_text(raw_sentences, 300))
    p = _run(["predict", "--jobs", "2", "--model", model_dir, big], start_new_session=True)
    assert p.stdout.readline()
    os.killpg(p.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert err.decode().splitlines() == ["fastbp: error: interrupted"]
    left = subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True)
    assert left.stdout.strip() == b""  # no worker left behind


def test_tag_sentences_stopped_early_stops_its_workers(model_dir, raw_sentences):
    import multiprocessing

    it = tag_sentences(model_dir, raw_sentences * 50, jobs=2, chunk_size=10)
    next(it)
    assert len(multiprocessing.active_children()) == 2
    it.close()  # what a `break` out of the loop does
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("casing", [True, False])
def test_tagger_cached_features_equal_featurize(model_dir, raw_sentences, casing):
    from fastbp.ner.windows import WindowFeaturizer, sentence_lengths

    loaded = load_model(model_dir)
    fz = WindowFeaturizer(loaded.featurizer.vocab, window=2, casing=casing)
    tagger = Tagger(loaded.model, fz, loaded.labels)
    odd = [["1996-08-22", "McDonald", "iPhone", "EU", "Al-Ain", "", "ÉTÉ", "x"], ["Peter"]]
    for sents in (raw_sentences[:50], raw_sentences[25:90], odd):  # the cache is warm
        got = tagger._featurize(sents, sentence_lengths(sents))
        assert np.array_equal(got, fz.featurize(sents))
    with pytest.raises(ValueError, match="3 tokens in the sentences but 2 word ids"):
        fz.windows([3], np.zeros(2, np.int32), np.zeros(2, np.int32))
