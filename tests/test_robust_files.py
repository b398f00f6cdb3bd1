"""Hardening of the text-file readers: CoNLL (:func:`read_conll`) and GloVe
(:func:`load_vectors`, :func:`read_vector_words`).

Whatever bytes a file holds, a reader either parses it correctly or raises ONE clear
error (:class:`ConllFormatError` / :class:`VectorFormatError`) whose one-line message
names the file and, for a problem on a line, that 1-based line -- never another
exception, never a crash, never a hang. Every case runs under a time limit:

* a hostile corpus (10 MB lines, headers announcing absurd dimensions, NUL bytes, every
  kind of invalid UTF-8, ...) runs in a child process with a memory cap
  (``RLIMIT_AS``) and a per-case alarm, so that a crash, a runaway allocation or a hang
  in C code fails the test instead of taking pytest down;
* hypothesis fuzzes random and structured byte strings in process, each example under
  a ``SIGALRM`` time limit.

Set ``FASTBP_ROBUST_TALLY=FILE`` to append the per-category case counts to FILE (JSON
lines); the robustness report quotes them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fastbp.ner.data import ConllFormatError, Sentence, read_conll, write_conll
from fastbp.ner.glove import VectorFormatError, load_vectors, read_vector_words
from fastbp.ner.vocab import Vocab

TIME_LIMIT = 10.0  # seconds per case; the slowest legitimate case takes < 1 s
MAX_MESSAGE = 600  # a clear error shows the offending line truncated, not 10 MB of it
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TALLY = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    out = os.environ.get("FASTBP_ROBUST_TALLY")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"module": __name__, "tally": dict(TALLY)}) + "\n")


class CaseTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    """Raise CaseTimeout in the main thread when the block runs longer than ``seconds``."""

    def on_alarm(signum, frame):
        raise CaseTimeout(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(category, fn, path, error_type):
    """Run ``fn(path)`` under the time limit. Returns ``("ok", result)`` or
    ``("error", exc)`` for an ``error_type``; any other outcome fails the test."""
    TALLY[category + ":tried"] += 1
    start = time.perf_counter()
    try:
        with time_limit(TIME_LIMIT):
            result = fn(path)
    except error_type as exc:
        check_clear_error(exc, path)
        TALLY[category + ":error"] += 1
        return "error", exc
    except CaseTimeout:
        TALLY[category + ":HUNG"] += 1
        pytest.fail(f"{category}: {fn.__name__}({path}) still running after {TIME_LIMIT} s")
    except BaseException as exc:  # noqa: BLE001 - any other exception is the bug we hunt
        TALLY[category + ":CRASHED"] += 1
        pytest.fail(f"{category}: {fn.__name__} raised {type(exc).__name__}: {exc}")
    assert time.perf_counter() - start < TIME_LIMIT
    TALLY[category + ":parsed"] += 1
    return "ok", result


def check_clear_error(exc, path):
    """One clear error: the file named first, one line, bounded length, no chained
    traceback from inside the parser."""
    msg = str(exc)
    assert msg.startswith(str(path) + ":"), msg[:200]
    assert "\n" not in msg and len(msg) < MAX_MESSAGE + len(str(path)), msg[:200]
    assert exc.__cause__ is None


def error_line(exc, path):
    """The 1-based line an error names (None for a whole-file error)."""
    rest = str(exc)[len(str(path)) + 1 :]
    head = rest.split(":", 1)[0]
    return int(head) if head.isdigit() else None


def lines_of(data: bytes):
    """Number of lines of a file (LF, CRLF and lone CR all end a line)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1


# =========================================================================== CoNLL
def check_conll_result(sentences, data: bytes):
    """Invariants of any successful parse, with an independent count of the tokens:
    every non-blank, non -DOCSTART- line is exactly one token."""
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    expected = 0
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.split() and not line.split()[0].startswith("-DOCSTART-"):
            expected += 1
    assert sum(len(s.tokens) for s in sentences) == expected
    for s in sentences:
        assert isinstance(s, Sentence) and len(s.tokens) == len(s.labels) >= 1
        for x in s.tokens + s.labels:
            assert x and len(x.split()) == 1 and x == x.strip()


BAD_UTF8 = {
    "lone continuation byte": b"\x80",
    "truncated 2-byte sequence": b"\xc3",
    "truncated 3-byte sequence": b"\xe2\x82",
    "overlong encoding": b"\xc0\xaf",
    "encoded surrogate": b"\xed\xa0\x80",
    "byte 0xff": b"\xff",
    "latin-1 e-acute": b"\xe9",
    "code point above U+10FFFF": b"\xf4\x90\x80\x80",
}


@pytest.mark.parametrize("kind", sorted(BAD_UTF8))
@pytest.mark.parametrize("where", ["token", "label", "line start"])
def test_conll_invalid_utf8_names_the_line(tmp_path, kind, where):
    bad = BAD_UTF8[kind]
    line = {"token": b"Ber" + bad + b"lin\tLOC", "label": b"Berlin\tL" + bad,
            "line start": bad + b"Berlin\tLOC"}[where]
    data = b"-DOCSTART-\tO\n\nEU\tORG\nrejects\tO\r\n\n" + line + b"\nis\tO\n"
    p = tmp_path / "bad.conll"
    p.write_bytes(data)
    outcome, exc = run_case("conll:invalid-utf8", read_conll, p, ConllFormatError)
    assert outcome == "error" and error_line(exc, p) == 6
    assert "invalid utf-8" in str(exc)


@pytest.mark.parametrize(
    "line, lineno",
    [
        (b"EU", 3),  # token without label
        (b"ORG\t", 3),  # trailing tab: still one column
        (b"  \t EU \t ", 3),
        (b"\x00", 3),  # a NUL byte is not whitespace: one column
        (b"x" * 10_000_000, 3),  # a 10 MB single-column line
    ],
    ids=["token-only", "trailing-tab", "padded", "nul-only", "10MB-one-column"],
)
def test_conll_missing_column_names_the_line(tmp_path, line, lineno):
    p = tmp_path / "cols.conll"
    p.write_bytes(b"EU\tORG\n\n" + line + b"\nlast\tO\n")
    outcome, exc = run_case("conll:missing-column", read_conll, p, ConllFormatError)
    assert outcome == "error" and error_line(exc, p) == lineno
    assert "at least 2" in str(exc)


def _expected_lf(sentences):
    return [Sentence(list(t), list(l)) for t, l in sentences]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_conll_line_endings_parse_the_same(tmp_path, eol):
    lines = [b"-DOCSTART- -X- O", b"", b"EU\tORG", b"rejects\tO", b"", b"", b"Peter\tPER",
             b"Blackburn\tPER"]
    p = tmp_path / "eol.conll"
    data = eol.join(lines) + eol
    p.write_bytes(data)
    outcome, got = run_case("conll:line-endings", read_conll, p, ConllFormatError)
    assert outcome == "ok"
    assert got == _expected_lf([(["EU", "rejects"], ["ORG", "O"]),
                                (["Peter", "Blackburn"], ["PER", "PER"])])
    # an error after a CR-only line end names the right line
    p.write_bytes(data + b"single" + eol)
    outcome, exc = run_case("conll:line-endings", read_conll, p, ConllFormatError)
    assert outcome == "error" and error_line(exc, p) == len(lines) + 1


def test_conll_hostile_files_in_a_child_process(tmp_path):
    """The hostile corpus for both readers, in a child process with a memory cap: no
    crash, no hang, no runaway allocation; the outcome of every case is as expected."""
    results = _run_hostile_corpus(tmp_path)
    for name, (expect, got, detail) in results.items():
        family = name.split(":")[0]
        TALLY[f"{family}:hostile:tried"] += 1
        TALLY[f"{family}:hostile:{got}"] += 1
        assert got == expect, f"{name}: expected {expect}, got {got}: {detail}"


@given(data=st.binary(max_size=3000))
@FUZZ
def test_conll_random_bytes(tmp_path, data):
    p = tmp_path / "random.conll"
    p.write_bytes(data)
    outcome, res = run_case("conll:random-bytes", read_conll, p, ConllFormatError)
    if outcome == "ok":
        check_conll_result(res, data)
    else:
        line = error_line(res, p)
        assert line is not None and 1 <= line <= lines_of(data)


# Byte strings built from the pieces a CoNLL file is made of, plus bad ones: most
# examples are nearly valid, which reaches deeper than uniformly random bytes.
PIECES = [b"EU", b"ORG", b"O", b"B-PER", b"\xc3\xa9t\xc3\xa9", b"\t", b" ", b"\n", b"\r",
          b"\r\n", b"\n\n", b"-DOCSTART-", b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\x0b",
          b"\x85", b"\xe2\x80\xa8", b"1", b"-"]


@given(pieces=st.lists(st.sampled_from(PIECES), max_size=200))
@FUZZ
def test_conll_structured_garbage(tmp_path, pieces):
    data = b"".join(pieces)
    p = tmp_path / "garbage.conll"
    p.write_bytes(data)
    outcome, res = run_case("conll:structured-garbage", read_conll, p, ConllFormatError)
    if outcome == "ok":
        check_conll_result(res, data)
    else:
        line = error_line(res, p)
        assert line is not None and 1 <= line <= lines_of(data)


WORD = st.text(
    alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
    min_size=1, max_size=8,
).filter(lambda w: len(w.split()) == 1 and w == w.strip() and not w.startswith("-DOCSTART-"))


@given(
    sents=st.lists(st.lists(st.tuples(WORD, WORD), min_size=1, max_size=6), max_size=6),
    sep=st.sampled_from(["\t", " ", "  ", " \t "]),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    blank=st.sampled_from(["", " ", "\t"]),
    bom=st.booleans(),
    docstart=st.booleans(),
)
@FUZZ
def test_conll_valid_files_parse_exactly(tmp_path, sents, sep, eol, blank, bom, docstart):
    """Any valid file -- any separators, line endings, BOM, DOCSTART, whitespace-only
    blank lines -- parses to exactly the sentences written."""
    out = ["-DOCSTART-" + sep + "O", blank] if docstart else []
    for s in sents:
        out += [tok + sep + "X" + sep + lab for tok, lab in s] + [blank]
    data = ("\ufeff" if bom else "") + eol.join(out)
    p = tmp_path / "valid.conll"
    p.write_bytes(data.encode("utf-8"))
    outcome, res = run_case("conll:valid-structured", read_conll, p, ConllFormatError)
    assert outcome == "ok", res
    assert res == [Sentence([t for t, _ in s], [lab for _, lab in s]) for s in sents]
    # and what write_conll writes reads back the same
    write_conll(p, res)
    assert read_conll(p) == res


@given(
    n_lines=st.integers(1, 40),
    at=st.data(),
    bad=st.sampled_from(sorted(BAD_UTF8)),
)
@FUZZ
def test_conll_injected_invalid_byte_names_its_line(tmp_path, n_lines, at, bad):
    lines = [f"w{i}\tO" if i % 7 else "" for i in range(n_lines)]
    k = at.draw(st.integers(0, n_lines - 1), label="line")
    raw = [ln.encode() for ln in lines]
    pos = at.draw(st.integers(0, len(raw[k])), label="column")
    raw[k] = raw[k][:pos] + BAD_UTF8[bad] + raw[k][pos:]
    p = tmp_path / "inj.conll"
    p.write_bytes(b"\n".join(raw) + b"\n")
    outcome, exc = run_case("conll:invalid-utf8", read_conll, p, ConllFormatError)
    assert outcome == "error" and error_line(exc, p) == k + 1


# =========================================================================== GloVe
VOCAB = Vocab(["the", "cat", "0000", "dog"])  # ids 3..6


def _load(path):
    return load_vectors(path, VOCAB)


def _load_dim3(path):
    return load_vectors(path, VOCAB, dim=3)


def check_glove_result(res, dim=None):
    M, n = res
    assert M.dtype == np.float32 and M.ndim == 2 and M.shape[0] == len(VOCAB)
    assert M.shape[1] >= 1 and (dim is None or M.shape[1] == dim)
    assert np.isfinite(M).all()
    assert 0 <= n <= len(VOCAB) - 3


GOOD = b"the 0.1 0.2 0.3\ncat 1 2 3\nzebra 5 5 5\n"

NOT_NUMBERS = ["abc", "1,5", "0x1F", "1.2.3", "--1", "1e", "e5", "", "1\x00", "\x00",
               "+-1", "1f", "\u00bd", "\u00b2", "0b1", "1_", "_1", "nan(0x1)j"]
NON_FINITE = ["nan", "NaN", "-nan", "+NAN", "inf", "-inf", "Infinity", "-Infinity", "INF",
              "1e999", "-1e400", "1" + "0" * 400]


@pytest.mark.parametrize("value", NOT_NUMBERS + NON_FINITE)
def test_glove_bad_value_names_the_line(tmp_path, value):
    p = tmp_path / "vals.txt"
    p.write_bytes(GOOD + ("dog 1 " + value + " 3\n").encode("utf-8"))
    for fn in (_load, _load_dim3):
        outcome, exc = run_case("glove:bad-value", fn, p, VectorFormatError)
        assert outcome == "error" and error_line(exc, p) == 4, str(exc)
    if value in NON_FINITE:
        assert "non-finite" in str(exc)


@pytest.mark.parametrize("line", ["dog 1 2", "dog 1 2 3 4", "dog", "dog " + "1 " * 1000,
                                  "dog  1 2 3", "dog\t1\t2\t3"])
def test_glove_wrong_length_names_the_line(tmp_path, line):
    p = tmp_path / "len.txt"
    p.write_bytes(GOOD + line.encode() + b"\nlast 1 2 3\n")
    outcome, exc = run_case("glove:wrong-length", _load, p, VectorFormatError)
    assert outcome == "error" and error_line(exc, p) == 4, str(exc)
    # the caller's dim disagreeing with the file names line 1
    outcome, exc = run_case("glove:wrong-length", lambda q: load_vectors(q, VOCAB, dim=4), p,
                            VectorFormatError)
    assert outcome == "error" and error_line(exc, p) == 1


@pytest.mark.parametrize("kind", sorted(BAD_UTF8))
def test_glove_invalid_utf8_names_the_line(tmp_path, kind):
    p = tmp_path / "enc.txt"
    p.write_bytes(GOOD + b"d" + BAD_UTF8[kind] + b"g 1 2 3\n")
    for fn in (_load, read_vector_words):
        outcome, exc = run_case("glove:invalid-utf8", fn, p, VectorFormatError)
        assert outcome == "error" and error_line(exc, p) == 4


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("header", [False, True])
def test_glove_line_endings_and_header(tmp_path, eol, header):
    p = tmp_path / "eol.txt"
    body = (b"3 3" + eol if header else b"") + GOOD.replace(b"\n", eol)
    p.write_bytes(body)
    outcome, (M, n) = run_case("glove:line-endings", _load, p, VectorFormatError)
    assert outcome == "ok" and n == 2 and M.shape == (7, 3)
    np.testing.assert_allclose(M[3:5], [[0.1, 0.2, 0.3], [1, 2, 3]], rtol=1e-6)
    assert read_vector_words(p) == ["the", "cat", "zebra"]
    p.write_bytes(body + b"dog 1 2" + eol)  # an error after CR line ends names its line
    outcome, exc = run_case("glove:line-endings", _load, p, VectorFormatError)
    assert outcome == "error" and error_line(exc, p) == 4 + header


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n\n", b"  \n\r\n", b"0 50\n", b"0 0\n", b"2 300000000\n",
     b"0 99999999999999999999\n"],
    ids=["empty", "blank", "whitespace", "header-only", "header-0-0", "header-huge-dim",
         "header-absurd-dim"],
)
def test_glove_no_vectors_is_one_error(tmp_path, data):
    """No vectors and no dim from the caller: an error, and never an allocation sized by
    a header that no vector confirms (``"2 300000000"`` used to allocate 12 GB)."""
    p = tmp_path / "none.txt"
    p.write_bytes(data)
    outcome, exc = run_case("glove:empty", _load, p, VectorFormatError)
    assert outcome == "error" and "no vectors" in str(exc)
    outcome, words = run_case("glove:empty", read_vector_words, p, VectorFormatError)
    assert outcome == "ok" and words == []
    # with the caller's dim (which overrides a header's): random rows, none found
    outcome, res = run_case("glove:empty", _load_dim3, p, VectorFormatError)
    assert outcome == "ok" and res[1] == 0 and res[0].shape == (7, 3)


def test_glove_non_ascii_digit_header_is_a_vector_line(tmp_path):
    """``"1 ²"`` passes ``str.isdigit`` but not ``int``: it used to escape as a bare
    ValueError from the header parser."""
    p = tmp_path / "sup.txt"
    p.write_bytes("1 \u00b2\nthe 1\n".encode())
    outcome, exc = run_case("glove:header", _load, p, VectorFormatError)
    assert outcome == "error" and error_line(exc, p) == 1
    outcome, words = run_case("glove:header", read_vector_words, p, VectorFormatError)
    assert outcome == "ok" and words == ["1", "the"]


@given(data=st.binary(max_size=3000))
@FUZZ
def test_glove_random_bytes(tmp_path, data):
    p = tmp_path / "random.txt"
    p.write_bytes(data)
    outcome, res = run_case("glove:random-bytes", _load, p, VectorFormatError)
    if outcome == "ok":
        check_glove_result(res)
    outcome, res = run_case("glove:random-bytes", read_vector_words, p, VectorFormatError)


GPIECES = [b"the", b"cat", b"dog", b" ", b"  ", b"\t", b"\n", b"\r", b"\r\n", b"1", b"-2.5",
           b"1e3", b"nan", b"inf", b"1e999", b"x", b"0", b".", b"e", b"\x00", b"\xff", b"\xc3",
           b"\xef\xbb\xbf", b"3 3\n", b"\xc2\xb2", b"_"]


@given(pieces=st.lists(st.sampled_from(GPIECES), max_size=200))
@FUZZ
def test_glove_structured_garbage(tmp_path, pieces):
    data = b"".join(pieces)
    p = tmp_path / "garbage.txt"
    p.write_bytes(data)
    for fn, dim in ((_load, None), (_load_dim3, 3)):
        outcome, res = run_case("glove:structured-garbage", fn, p, VectorFormatError)
        if outcome == "ok":
            check_glove_result(res, dim)
        else:
            line = error_line(res, p)
            assert line is None or 1 <= line <= lines_of(data)


FLOAT = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(
    vecs=st.lists(st.tuples(st.sampled_from(["the", "cat", "0000", "dog", "zebra", "12", "É"]),
                            st.lists(FLOAT, min_size=4, max_size=4)), min_size=1, max_size=12),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    header=st.booleans(),
    bad=st.one_of(st.none(), st.tuples(st.integers(0, 11), st.integers(0, 3),
                                       st.sampled_from(NOT_NUMBERS + NON_FINITE))),
)
@FUZZ
def test_glove_valid_or_one_bad_value(tmp_path, vecs, eol, header, bad):
    """A valid file loads exactly (first occurrence of a word wins); the same file with
    one value replaced by garbage names exactly that line."""
    rows = [[w] + [repr(float(x)) for x in v] for w, v in vecs]
    if bad is not None:
        assume(bad[0] < len(rows))
        rows[bad[0]][1 + bad[1]] = bad[2]
    lines = ([f"{len(rows)} 4"] if header else []) + [" ".join(r) for r in rows]
    p = tmp_path / "vec.txt"
    p.write_bytes((eol.join(lines) + eol).encode("utf-8"))
    outcome, res = run_case("glove:valid-structured", _load, p, VectorFormatError)
    if bad is None:
        assert outcome == "ok", res
        M, n = res
        seen = {}
        for w, v in vecs:
            seen.setdefault(VOCAB.normalize(w), v)
        found = {w: v for w, v in seen.items() if w in ("the", "cat", "0000", "dog")}
        assert n == len(found)
        for w, v in found.items():
            np.testing.assert_array_equal(M[VOCAB.id(w)], np.asarray(v, np.float32))
    else:
        assert outcome == "error", res
        assert error_line(res, p) == bad[0] + 1 + header


# =========================================================================== the corpus
# Each case: (name, reader, file bytes, expected outcome). Built in the child process
# (10 MB strings are cheap to make there and never cross the pipe).
CORPUS_SCRIPT = r"""
import json, os, resource, signal, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a runaway allocation fails
import numpy as np
from fastbp.ner.data import ConllFormatError, read_conll
from fastbp.ner.glove import VectorFormatError, load_vectors, read_vector_words
from fastbp.ner.vocab import Vocab

out_dir = sys.argv[1]
V = Vocab(["the", "cat", "a"])
MB10 = 10_000_000
rng = np.random.default_rng(0)
noise = rng.integers(0, 256, 1_000_000, dtype=np.uint8).tobytes()
conll = {
    "empty": (b"", "ok"),
    "only-newlines": (b"\n" * 100_000, "ok"),
    "only-CR": (b"\r" * 1000, "ok"),
    "docstart-only": (b"-DOCSTART- -X- O\n\n-DOCSTART-\n", "ok"),
    "bom-only": (b"\xef\xbb\xbf", "ok"),
    "nul-in-token": (b"EU\x00\tORG\n", "ok"),
    "nul-in-label": (b"EU\tOR\x00G\n", "ok"),
    "nul-only-line": (b"EU\tORG\n\x00\n", "error"),
    "all-nul": (b"\x00" * 10_000, "error"),
    "nul-separated": (b"EU\x00ORG\n", "error"),
    "10MB-token-with-label": (b"t" * MB10 + b"\tO\n", "ok"),
    "10MB-token-no-label": (b"t" * MB10, "error"),
    "10MB-label": (b"EU\t" + b"L" * MB10 + b"\n", "ok"),
    "10MB-of-spaces": (b" " * MB10, "ok"),
    "10MB-of-columns": (b"a b " * (MB10 // 4), "ok"),
    "10MB-invalid-utf8-at-end": (b"t" * MB10 + b"\xff\tO\n", "error"),
    "1M-lines": (b"w\tO\n" * 1_000_000, "ok"),
    "utf16-bom-file": ("EU\tORG\n".encode("utf-16"), "error"),
    "random-1MB": (noise, "error"),
    "vertical-tab-form-feed-separators": (b"EU\x0bORG\nx\x0cO\n", "ok"),
    "unicode-line-separator": ("EU\u2028ORG\n".encode(), "ok"),
}
glove = {
    "empty": (b"", "error", "ok"),
    "10MB-vector-line": (b"the " + b"0.5 " * (MB10 // 4) + b"\n", "ok", "ok"),
    "10MB-word-no-values": (b"w" * MB10 + b"\n", "error", "ok"),
    "10MB-word-with-values": (b"w" * MB10 + b" 1 2\nthe 3 4\n", "ok", "ok"),
    "10MB-line-bad-last-value": (b"the " + b"0.5 " * (MB10 // 4) + b"x\n", "error", "ok"),
    "10MB-of-spaces": (b" " * MB10, "error", "ok"),
    "header-dim-3e8-no-vectors": (b"2 300000000\n", "error", "ok"),
    "header-dim-1e20-no-vectors": (b"0 99999999999999999999\n", "error", "ok"),
    "header-dim-3e8-short-vector": (b"1 300000000\nthe 1 2\n", "error", "ok"),
    "header-superscript": ("1 \u00b2\n".encode(), "error", "ok"),
    "nul-in-word": (b"th\x00e 1 2\nthe 3 4\n", "ok", "ok"),
    "nul-in-value": (b"the 1\x00 2\n", "error", "ok"),
    "all-nul": (b"\x00" * 10_000, "error", "ok"),
    "cr-only": (b"the 1 2\rcat 3 4\r", "ok", "ok"),
    "invalid-utf8-line-3": (b"the 1 2\ncat 3 4\n\xffa 5 6\n", "error", "error"),
    "random-1MB": (noise, "error", "error"),
    "1M-short-lines": (b"w 1\n" * 1_000_000, "ok", "ok"),
    "tab-separated": (b"the\t1\t2\n", "error", "ok"),
    "nan-text": (b"the 1 2\ncat nan 4\n", "error", "ok"),
    "inf-text": (b"the 1 2\ncat -Infinity 4\n", "error", "ok"),
    "overflow-text": (b"the 1 2\ncat 1e400 4\n", "error", "ok"),
}
readers = {
    "conll": [(read_conll, ConllFormatError)],
    "glove": [(lambda p: load_vectors(p, V), VectorFormatError),
              (read_vector_words, VectorFormatError)],
}

def alarm(*a):
    raise TimeoutError("hung")
signal.signal(signal.SIGALRM, alarm)
results = {}
for family, cases in (("conll", conll), ("glove", glove)):
    for name, (data, *expect) in cases.items():
        path = os.path.join(out_dir, family + "-" + name.replace(" ", "_"))
        with open(path, "wb") as fh:
            fh.write(data)
        for k, (fn, err) in enumerate(readers[family]):
            key = f"{family}:{name}" + (":words" if k else "")
            want = expect[k]
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, %(limit)s)
            try:
                fn(path)
                got, detail = "ok", ""
            except err as exc:
                msg = str(exc)
                clear = (msg.startswith(path + ":") and "\n" not in msg
                         and len(msg) < %(maxmsg)s + len(path) and exc.__cause__ is None)
                got, detail = ("error" if clear else "UNCLEAR-error"), msg[:300]
            except TimeoutError:
                got, detail = "HUNG", ""
            except BaseException as exc:
                got, detail = "CRASHED", f"{type(exc).__name__}: {str(exc)[:300]}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            results[key] = (want, got, detail + f" [{time.perf_counter() - t0:.2f} s]")
        os.remove(path)
print(json.dumps(results))
"""


def _run_hostile_corpus(tmp_path):
    script = CORPUS_SCRIPT % {"limit": TIME_LIMIT, "maxmsg": MAX_MESSAGE}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path)],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert proc.returncode == 0, (
        f"the corpus child died (exit {proc.returncode}): {proc.stderr[-2000:]}"
    )
    return json.loads(proc.stdout)
