"""Tests of the NER data pipeline: CoNLL reader/writer, vocabulary, casing, window
features, pretrained vectors, synthetic corpus, and (when present) the real data."""

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from fastbp.ner import (
    BOS,
    CASING,
    EOS,
    UNK,
    ConllFormatError,
    LabelSet,
    Sentence,
    VectorFormatError,
    Vocab,
    WindowFeaturizer,
    casing_id,
    casing_ids,
    detect_scheme,
    generate_corpus,
    load_vectors,
    normalize_word,
    read_conll,
    read_vector_words,
    sentence_lengths,
    split,
    write_conll,
)


def _write(tmp_path, name, content, binary=False):
    p = tmp_path / name
    if binary:
        p.write_bytes(content)
    else:
        p.write_bytes(content.encode("utf-8"))
    return p


def _data_dir():
    env = os.environ.get("FASTBP_DATA_DIR")
    if env:
        p = Path(env)
        return p / "conll2003" if (p / "conll2003").is_dir() else p
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003"


# --------------------------------------------------------------------------- reader
IO_TAB = "-DOCSTART-\tO\n\nEU\tORG\nrejects\tO\nGerman\tMISC\n\nPeter\tPER\nBlackburn\tPER\n"


def test_read_io_tab_with_docstart(tmp_path):
    sents = read_conll(_write(tmp_path, "a.conll", IO_TAB))
    assert sents == [
        Sentence(["EU", "rejects", "German"], ["ORG", "O", "MISC"]),
        Sentence(["Peter", "Blackburn"], ["PER", "PER"]),
    ]
    assert isinstance(sents[0], Sentence) and sents[0].tokens == ["EU", "rejects", "German"]
    assert detect_scheme(sents) == "IO"


def test_read_bio_four_space_separated_columns(tmp_path):
    text = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER"  # no trailing newline
    )
    sents = read_conll(_write(tmp_path, "b.conll", text))
    assert [s.tokens for s in sents] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert [s.labels for s in sents] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    assert detect_scheme([s.labels for s in sents]) == "BIO"


def test_read_mixed_separators_blank_runs_and_docstart_ends_sentence(tmp_path):
    text = (
        "\n\n  \na\tX\tO\nb   PER\n\n\n\t\n"
        "c O\n-DOCSTART- O\nd LOC\r\ne\tO\r\n\n\n"
    )
    sents = read_conll(_write(tmp_path, "c.conll", text))
    assert sents == [
        Sentence(["a", "b"], ["O", "PER"]),
        Sentence(["c"], ["O"]),  # DOCSTART ends the sentence without a blank line
        Sentence(["d", "e"], ["LOC", "O"]),  # CRLF line ends accepted
    ]


def test_read_empty_file_gives_empty_list(tmp_path):
    assert read_conll(_write(tmp_path, "e.conll", "")) == []
    assert read_conll(_write(tmp_path, "f.conll", "\n\n-DOCSTART- O\n\n")) == []


def test_read_single_column_line_names_file_and_line(tmp_path):
    p = _write(tmp_path, "bad.conll", "EU\tORG\nrejects\n\nx O\n")
    with pytest.raises(ConllFormatError) as ei:
        read_conll(p)
    msg = str(ei.value)
    assert "bad.conll:2:" in msg and "'rejects'" in msg
    assert isinstance(ei.value, ValueError)


def test_read_long_bad_line_is_truncated(tmp_path):
    p = _write(tmp_path, "long.conll", "a O\n" + "x" * 500 + "\n")
    with pytest.raises(ConllFormatError, match=r"long\.conll:2:") as ei:
        read_conll(p)
    assert len(str(ei.value)) < 250


def test_read_invalid_utf8_names_line(tmp_path):
    p = _write(tmp_path, "u.conll", b"a O\nb O\n\nc\xff\xfe O\n", binary=True)
    with pytest.raises(ConllFormatError, match=r"u\.conll:4: invalid utf-8"):
        read_conll(p)
    # another encoding reads it
    assert read_conll(p, encoding="latin-1")[1].tokens == ["c\xff\xfe"]


def test_write_conll_round_trip(tmp_path):
    sents = [Sentence(["EU", "rejects"], ["ORG", "O"]), (["Peter"], ["PER"])]
    p = tmp_path / "out.conll"
    write_conll(p, sents)
    assert p.read_text() == "EU\tORG\nrejects\tO\n\nPeter\tPER\n\n"
    assert read_conll(p) == [Sentence(["EU", "rejects"], ["ORG", "O"]), Sentence(["Peter"], ["PER"])]
    buf = io.StringIO()
    write_conll(buf, sents[:1])
    assert buf.getvalue() == "EU\tORG\nrejects\tO\n\n"
    with pytest.raises(ValueError, match="sentence 0"):
        write_conll(io.StringIO(), [(["a", "b"], ["O"])])
    with pytest.raises(ValueError, match="whitespace"):
        write_conll(io.StringIO(), [(["a b"], ["O"])])


def test_detect_scheme():
    assert detect_scheme([["O", "PER"], ["LOC"]]) == "IO"
    assert detect_scheme([["O"], ["O", "I-PER"]]) == "BIO"
    assert detect_scheme(["O", "B-LOC"]) == "BIO"  # flat list accepted
    assert detect_scheme([]) == "IO"


# --------------------------------------------------------------------------- vocab
def test_normalize_word():
    assert normalize_word("Reuters") == "reuters"
    assert normalize_word("1996-08-22") == "0000-00-00"
    assert normalize_word("3.5M") == "0.0m"
    assert normalize_word("1996") == "0000"
    assert normalize_word("Ab12", lower=False) == "Ab00"
    assert normalize_word("Ab12", digits=False) == "ab12"


@pytest.mark.parametrize(
    "token,expected",
    [
        ("rejects", "lower"), ("3m", "lower"), ("EU", "upper"), ("BRUSSELS", "upper"),
        ("A1", "upper"), ("Peter", "init_cap"), ("Al-ain", "init_cap"), ("I", "upper"),
        ("iPhone", "has_cap"), ("McDonald", "has_cap"), ("Al-Ain", "has_cap"),
        ("1996", "no_letters"), (",", "no_letters"), ("1,000.5", "no_letters"),
        ("", "no_letters"), ("Éclair", "init_cap"), ("été", "lower"),
    ],
)
def test_casing_rules(token, expected):
    assert CASING[casing_id(token)] == expected


def test_casing_constants_and_vector():
    assert CASING == ("lower", "upper", "init_cap", "has_cap", "no_letters")
    ids = casing_ids(["the", "EU", "Peter", "iPhone", "42"])
    assert ids.dtype == np.int32 and ids.tolist() == [0, 1, 2, 3, 4]


CORPUS = [
    ["The", "cat", "sat", "on", "the", "mat", "."],
    ["the", "Cat", "ran", "1996", "."],
    ["A", "dog", "in", "2001", "."],
]
# normalised counts: the 3, . 3, cat 2, 0000 2, a/dog/in/mat/on/ran/sat 1


def test_vocab_build_order_specials_and_counts():
    v = Vocab.build(CORPUS)
    assert v.words[:3] == [UNK, BOS, EOS] == ["<unk>", "<s>", "</s>"]
    assert (v.UNK_ID, v.BOS_ID, v.EOS_ID) == (0, 1, 2)
    assert v.words[3:] == [".", "the", "0000", "cat", "a", "dog", "in", "mat", "on", "ran", "sat"]
    assert len(v) == 14
    assert "CAT" in v and "1234" in v and "zebra" not in v
    assert v.id("THE") == v.id("the") == 4
    assert v.id("7777") == v.id("1996") == 5
    assert v.id("zebra") == Vocab.UNK_ID == 0
    ids = v.ids(["The", "zebra", "2001", "."])
    assert ids.dtype == np.int32 and ids.tolist() == [4, 0, 5, 3]


def test_vocab_min_count_max_size_and_options():
    v = Vocab.build(CORPUS, min_count=2)
    assert v.words[3:] == [".", "the", "0000", "cat"]
    v = Vocab.build(CORPUS, max_size=2)
    assert v.words[3:] == [".", "the"]
    v = Vocab.build(CORPUS, min_count=2, max_size=3)
    assert v.words[3:] == [".", "the", "0000"]
    v = Vocab.build([Sentence(["The", "the", "1996"], ["O"] * 3)], lower=False, digits=False)
    assert v.words[3:] == ["1996", "The", "the"]
    assert v.id("THE") == 0
    with pytest.raises(ValueError):
        Vocab.build(CORPUS, min_count=0)


def test_vocab_extra_words_and_specials_in_corpus():
    v = Vocab.build(CORPUS, min_count=2, extra_words={"Zebra", "cat", "ant", "<s>"})
    assert v.words[3:] == [".", "the", "0000", "cat", "ant", "zebra"]
    v = Vocab.build([["<s>", "x", "<unk>"]])
    assert v.words == ["<unk>", "<s>", "</s>", "x"]
    assert v.id("<s>") == 1


def test_vocab_round_trip():
    v = Vocab.build(CORPUS, lower=True, digits=False)
    d = json.loads(json.dumps(v.to_dict()))
    w = Vocab.from_dict(d)
    assert w == v and w.words == v.words and (w.lower, w.digits) == (True, False)
    assert w.id("1996") == v.id("1996") != 0
    assert v != Vocab.build(CORPUS)
    with pytest.raises(ValueError, match="special"):
        Vocab.from_dict({"words": ["a", "b", "c"]})


def test_labelset():
    sents = [Sentence(["a", "b"], ["PER", "O"]), Sentence(["c"], ["LOC"])]
    ls = LabelSet.from_sentences(sents)
    assert ls.labels == ["O", "LOC", "PER"] and len(ls) == 3 and ls.scheme == "IO"
    assert ls.id("O") == 0 and ls.id("PER") == 2
    ids = ls.ids(["PER", "O", "LOC"])
    assert ids.dtype == np.int32 and ids.tolist() == [2, 0, 1]
    assert ls.decode(np.array([2, 0])) == ["PER", "O"]
    with pytest.raises(KeyError, match="MISC"):
        ls.id("MISC")
    with pytest.raises(KeyError, match="MISC"):
        ls.ids(["O", "MISC"])
    assert LabelSet.from_dict(json.loads(json.dumps(ls.to_dict()))) == ls
    bio = LabelSet.from_sentences([["I-PER", "O", "B-PER", "B-LOC"]])
    assert bio.labels == ["O", "B-LOC", "B-PER", "I-PER"] and bio.scheme == "BIO"
    assert bio.types == ["LOC", "PER"]
    with pytest.raises(ValueError, match="duplicate"):
        LabelSet(["O", "O"])


# --------------------------------------------------------------------------- windows
@pytest.fixture
def small_vocab():
    return Vocab(["eu", "rejects", "german", "peter"])  # ids 3, 4, 5, 6


def test_window_layout(small_vocab):
    f = WindowFeaturizer(small_vocab, window=2, casing=True)
    assert f.casing_offset == 7 and f.n_rows == 7 + 5
    assert f.features_per_position == 2 and f.width == 10 and f.n_positions == 5
    assert f.word_columns.tolist() == [0, 2, 4, 6, 8]
    assert f.casing_columns.tolist() == [1, 3, 5, 7, 9]
    g = WindowFeaturizer(small_vocab, window=1, casing=False)
    assert g.n_rows == 7 and g.width == 3 and g.features_per_position == 1
    with pytest.raises(ValueError):
        WindowFeaturizer(small_vocab, window=-1)


def test_window_k1_edges_and_column_order(small_vocab):
    f = WindowFeaturizer(small_vocab, window=1)
    X = f.featurize([Sentence(["EU", "rejects", "German"], ["ORG", "O", "MISC"]), ["Peter"]])
    off = 7
    lo, up, ic, nl = off + 0, off + 1, off + 2, off + 4
    assert X.dtype == np.int32 and X.flags["C_CONTIGUOUS"] and X.shape == (4, 6)
    expected = [
        [1, nl, 3, up, 4, lo],  # <s>  EU  rejects
        [3, up, 4, lo, 5, ic],  # EU rejects German
        [4, lo, 5, ic, 2, nl],  # rejects German </s>
        [1, nl, 6, ic, 2, nl],  # 1-token sentence: <s> Peter </s>
    ]
    assert X.tolist() == expected


def test_window_k2_edges_unknown_and_no_casing(small_vocab):
    f = WindowFeaturizer(small_vocab, window=2, casing=False)
    X = f.featurize([["peter", "zzz"], ["EU"]])
    assert X.tolist() == [
        [1, 1, 6, 0, 2],
        [1, 6, 0, 2, 2],
        [1, 1, 3, 2, 2],
    ]
    fc = WindowFeaturizer(small_vocab, window=2)
    Xc = fc.featurize([["peter", "zzz"], ["EU"]])
    assert Xc.shape == (3, 10)
    assert Xc[:, fc.word_columns].tolist() == X.tolist()
    nl = 7 + CASING.index("no_letters")
    assert Xc[2, fc.casing_columns].tolist() == [nl, nl, 7 + 1, nl, nl]
    # K = 0 is just the token itself
    assert WindowFeaturizer(small_vocab, window=0).featurize([["EU"]]).tolist() == [[3, 8]]


def test_window_empty_inputs_and_split(small_vocab):
    f = WindowFeaturizer(small_vocab, window=1)
    assert f.featurize([]).shape == (0, 6)
    X = f.featurize([[], ["EU"], []])
    assert X.tolist() == [[1, 11, 3, 8, 2, 11]]
    lengths = sentence_lengths([["a", "b"], [], ["c"]])
    assert lengths.tolist() == [2, 0, 1]
    parts = split(np.array([10, 11, 12]), lengths)
    assert [p.tolist() for p in parts] == [[10, 11], [], [12]]
    assert [p.tolist() for p in f.split(np.arange(3), [1, 2])] == [[0], [1, 2]]
    with pytest.raises(ValueError):
        split(np.arange(3), [1, 1])
    with pytest.raises(TypeError):
        f.featurize(["EU", "rejects"])  # flat token list is a mistake


def test_featurize_labels_and_round_trip(small_vocab):
    f = WindowFeaturizer(small_vocab, window=2)
    sents = [Sentence(["EU", "x"], ["ORG", "O"]), Sentence(["Peter"], ["PER"])]
    ls = LabelSet.from_sentences(sents)
    y = f.featurize_labels(sents, ls)
    assert y.dtype == np.int32 and y.tolist() == [ls.id("ORG"), 0, ls.id("PER")]
    g = WindowFeaturizer.from_dict(json.loads(json.dumps(f.to_dict())))
    assert g == f and g.featurize(sents).tolist() == f.featurize(sents).tolist()


def test_featurize_matches_naive(small_vocab):
    rng = np.random.default_rng(0)
    words = ["EU", "rejects", "German", "Peter", "x", "1996", "iPhone"]
    sents = [[words[i] for i in rng.integers(0, len(words), rng.integers(0, 6))] for _ in range(30)]
    for K in (0, 1, 3):
        f = WindowFeaturizer(small_vocab, window=K)
        X = f.featurize(sents)
        rows = []
        for s in sents:
            padded = [(1, 11)] * K + [(small_vocab.id(t), 7 + casing_id(t)) for t in s] + [(2, 11)] * K
            for i in range(len(s)):
                rows.append([v for pair in padded[i : i + 2 * K + 1] for v in pair])
        assert X.tolist() == rows


# --------------------------------------------------------------------------- glove
GLOVE = "the 0.1 0.2 0.3\nCat 1 2 3\ncat 9 9 9\n0000 -1 -2 -3.5e-1\nzebra 5 5 5\n"


def test_load_vectors(tmp_path):
    p = _write(tmp_path, "g.txt", GLOVE)
    v = Vocab(["the", "cat", "0000", "dog"])  # ids 3..6
    M, n = load_vectors(p, v)
    assert M.shape == (7, 3) and M.dtype == np.float32 and n == 3
    np.testing.assert_allclose(M[3], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(M[4], [1, 2, 3])  # "Cat" normalises to "cat"; first wins
    np.testing.assert_allclose(M[5], [-1, -2, -0.35], rtol=1e-6)
    # missing word and specials: random, reproducible, scaled by the loaded std
    M2, _ = load_vectors(p, v, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(M, M2)
    M3, _ = load_vectors(p, v, rng=np.random.default_rng(1), scale=1e-3, dtype=np.float64)
    assert M3.dtype == np.float64 and np.abs(M3[[0, 1, 2, 6]]).max() < 0.01
    assert not np.allclose(M[6], M3[6])
    assert read_vector_words(p) == ["the", "Cat", "cat", "0000", "zebra"]


def test_load_vectors_header_and_dim(tmp_path):
    p = _write(tmp_path, "w2v.txt", "2 3\nthe 1 2 3\ncat 4 5 6\n")
    v = Vocab(["cat"])
    M, n = load_vectors(p, v)
    assert n == 1 and M.shape == (4, 3)
    assert read_vector_words(p) == ["the", "cat"]
    with pytest.raises(VectorFormatError, match=r"w2v\.txt:2:"):
        load_vectors(p, v, dim=4)
    with pytest.raises(VectorFormatError):
        load_vectors(_write(tmp_path, "empty.txt", ""), v)
    M, n = load_vectors(tmp_path / "empty.txt", v, dim=5)
    assert n == 0 and M.shape == (4, 5) and M.std() > 0.05  # default scale 0.1


def test_load_vectors_errors(tmp_path):
    v = Vocab(["the"])
    p = _write(tmp_path, "short.txt", "the 1 2 3\nzebra 1 2\n")
    with pytest.raises(VectorFormatError, match=r"short\.txt:2: expected a word and 3 values, got 2"):
        load_vectors(p, v)
    p = _write(tmp_path, "nan.txt", "the 1 2 3\nzebra 1 x 3\n")
    with pytest.raises(VectorFormatError, match=r"nan\.txt:2: value 'x'"):
        load_vectors(p, v)
    p = _write(tmp_path, "bad.txt", b"the 1 2 3\nz\xe9bra 1 2 3\n", binary=True)
    with pytest.raises(VectorFormatError, match=r"bad\.txt:2: invalid utf-8"):
        load_vectors(p, v)
    with pytest.raises(VectorFormatError, match=r"bad\.txt:2"):
        read_vector_words(p)
    assert issubclass(VectorFormatError, ValueError)


# --------------------------------------------------------------------------- synthetic
def test_synthetic_corpus_deterministic_and_shaped():
    tr, dv = generate_corpus(n_train=300, n_dev=100, seed=3)
    tr2, dv2 = generate_corpus(n_train=300, n_dev=100, seed=3)
    assert tr == tr2 and dv == dv2
    tr3, dv3 = generate_corpus(n_train=50, n_dev=100, seed=3)
    assert dv3 == dv and tr3 == tr[:50]
    assert generate_corpus(n_train=300, n_dev=100, seed=4)[0] != tr
    assert len(tr) == 300 and len(dv) == 100
    assert all(isinstance(s, Sentence) and len(s.tokens) == len(s.labels) > 0 for s in tr + dv)
    labels = {lab for s in tr + dv for lab in s.labels}
    assert labels == {"O", "PER", "ORG", "LOC", "MISC"}
    assert detect_scheme(tr) == "IO"
    # dev contains names never seen in training
    train_words = {t for s in tr for t in s.tokens}
    unseen = {t for s in dv for t, lab in zip(*s) if lab != "O" and t not in train_words}
    assert unseen


def test_synthetic_default_size():
    tr, dv = generate_corpus()
    assert len(tr) == 3000 and len(dv) == 600
    n = sum(len(s.tokens) for s in tr)
    assert 20_000 < n < 50_000
    # an ambiguous word: same token labelled differently in different contexts
    lab_of = {}
    for s in tr:
        for t, lab in zip(*s):
            lab_of.setdefault(t, set()).add(lab)
    assert any(len(v) > 1 for v in lab_of.values())


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real():
    d = _data_dir()
    if not (d / "train.conll").is_file():
        pytest.skip(f"CoNLL-2003 data not found at {d} (set FASTBP_DATA_DIR to use it)")
    return d


def test_real_counts_and_speed(real):
    t = time.perf_counter()
    train = read_conll(real / "train.conll")
    elapsed = time.perf_counter() - t
    dev = read_conll(real / "dev.conll")
    assert len(train) == 14041 and sum(len(s.tokens) for s in train) == 203621
    assert len(dev) == 3250 and sum(len(s.tokens) for s in dev) == 51362
    assert LabelSet.from_sentences(train).labels == ["O", "LOC", "MISC", "ORG", "PER"]
    assert detect_scheme(train) == "IO"
    assert elapsed < 2.0  # about 0.1 s measured; generous for slow CI

    v = Vocab.build(train)
    f = WindowFeaturizer(v, window=1)
    t = time.perf_counter()
    X = f.featurize(train)
    assert time.perf_counter() - t < 2.0
    assert X.shape == (203621, 6)


def test_real_glove(real):
    glove = real / "glove.6B.50d.conll-vocab.txt"
    if not glove.is_file():
        pytest.skip(f"{glove} not found")
    train = read_conll(real / "train.conll")
    words = read_vector_words(glove)
    assert len(words) == 20719
    v = Vocab.build(train)
    M, n = load_vectors(glove, v)
    assert M.shape == (len(v), 50)
    assert 0.9 * (len(v) - 3) < n <= len(v) - 3  # almost every train word has a vector
    v2 = Vocab.build(train, extra_words=words)
    M2, n2 = load_vectors(glove, v2)
    assert n2 > n and M2.shape == (len(v2), 50)
    np.testing.assert_allclose(M2[v2.id("the")], M[v.id("the")])


def test_glove_header_with_zero_dimension_is_an_error(tmp_path):
    # found by the fuzzing in test_robust_files: "0 0" then a bare word loaded as d = 0
    from fastbp.ner.glove import VectorFormatError, load_vectors
    from fastbp.ner.vocab import Vocab

    p = tmp_path / "v.txt"
    p.write_text("0 0\nthe\n")
    with pytest.raises(VectorFormatError, match=r"v\.txt:2: .*dimension of 0"):
        load_vectors(p, Vocab(["the"]))
