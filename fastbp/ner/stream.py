"""Streaming prediction: tag sentences chunk by chunk, in order, optionally in worker
processes, with memory bounded whatever the input size.

Library use (sentences in, labelled sentences out, lazily)::

    from fastbp.ner import Tagger, tag_sentences

    tagger = Tagger.load("model/")
    for tokens, labels in tag_sentences(tagger, (line.split() for line in open("big.txt")),
                                        jobs=2):
        ...

:func:`tag_sentences` pulls only a few chunks ahead of what has been consumed (at most
``2 * jobs`` chunks in flight), so a generator over a file of any size is read as the
results are used. The ``fastbp predict`` command goes through :func:`predict_stream`,
which reads raw bytes, decodes and tags them in chunks of lines (in the workers with
``jobs > 1``) and writes and flushes each chunk's ``token<TAB>label`` lines as soon as it
is ready, in input order.

Worker processes (``jobs > 1``) are forked on Linux (the model is inherited, not pickled;
elsewhere it is pickled to spawned workers), ignore Ctrl-C (the parent handles it) and are
terminated when the consumer stops early (a closed pipe, an exception, a ``break``).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import sys

import numpy as np

__all__ = ["Tagger", "tag_sentences", "read_token_lines", "predict_stream", "TextFormatError"]

#: sentences (lines) per chunk: ~15k tokens of CoNLL text, tens of milliseconds of work,
#: a few MB of memory
CHUNK_SENTENCES = 1000


class TextFormatError(ValueError):
    """Raw text that cannot be read (not UTF-8); the message names the file and line."""


class Tagger:
    """A model with its featurizer and label set: turns token lists into label lists.

    Parameters
    ----------
    model : WindowClassifier or BinaryWindowClassifier
    featurizer : WindowFeaturizer
    labels : LabelSet
    batch_size : int
        Windows per forward pass.
    """

    def __init__(self, model, featurizer, labels, batch_size=8192):
        self.model = model
        self.featurizer = featurizer
        self.labels = labels
        self.batch_size = int(batch_size)
        self._ids = {}  # token -> (vocabulary id, casing class), kept across chunks

    @classmethod
    def load(cls, path, batch_size=8192):
        """A Tagger for the model directory ``path`` (:func:`fastbp.ner.io.load_model`)."""
        from .io import load_model

        loaded = load_model(path)
        return cls(loaded.model, loaded.featurizer, loaded.labels, batch_size)

    def tag(self, token_lists):
        """Label lists (one per token list, same lengths) of a list of token lists."""
        from .train import predict_labels
        from .windows import sentence_lengths, split

        token_lists = [list(t) for t in token_lists]
        if not token_lists:
            return []
        lengths = sentence_lengths(token_lists)
        if not lengths.any():
            return [[] for _ in token_lists]
        ids = self._featurize(token_lists, lengths)
        pred = predict_labels(self.model, ids, self.labels, self.batch_size)
        return [list(p) for p in split(np.asarray(pred, dtype=object), lengths)]

    #: token cache size at which it is emptied (memory stays bounded on any input)
    CACHE_TOKENS = 1 << 20

    def _featurize(self, token_lists, lengths):
        """``featurizer.featurize`` with the per-token look-ups (normalisation, vocabulary,
        casing class) cached across chunks: the same ids, computed once per distinct
        token instead of once per token per chunk."""
        from .vocab import casing_id

        fz = self.featurizer
        cache = self._ids
        if len(cache) > self.CACHE_TOKENS:
            cache.clear()
        vocab = fz.vocab
        index, norm, unk = vocab._index, vocab.normalize, vocab.UNK_ID
        wids, cids = [], []
        for toks in token_lists:
            for tok in toks:
                pair = cache.get(tok)
                if pair is None:
                    pair = cache[tok] = (index.get(norm(tok), unk), casing_id(tok))
                wids.append(pair[0])
                cids.append(pair[1])
        return fz.windows(lengths, np.asarray(wids, dtype=np.int32),
                          np.asarray(cids, dtype=np.int32))

    def __getstate__(self):  # for spawned workers: the cache is rebuilt there
        state = dict(self.__dict__)
        state["_ids"] = {}
        return state

    def format_lines(self, token_lists):
        """The ``token<TAB>label`` text of ``token_lists``, a blank line after each."""
        out = []
        for toks, labs in zip(token_lists, self.tag(token_lists)):
            out.extend(f"{t}\t{lab}\n" for t, lab in zip(toks, labs))
            out.append("\n")
        return "".join(out)


# ---------------------------------------------------------------------- worker pool
_WORKER = {}


def _worker_init(tagger, threads):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    import fastbp as fb

    fb.set_num_threads(threads)
    _WORKER["tagger"] = tagger


def _worker_loop(conn, tagger, threads):
    """A worker process: receive ``(fn_name, payload)``, send ``(True, result)`` or
    ``(False, exception)``, until ``None`` or the parent's end of the pipe closes."""
    _worker_init(tagger, threads)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        try:
            out = (True, _call_local(tagger, *msg))
        except Exception as exc:  # noqa: BLE001 - re-raised in the parent
            out = (False, exc)
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):
            return


def _receive(proc, conn):
    try:
        ok, value = conn.recv()
    except (EOFError, OSError):
        raise RuntimeError(f"a tagging worker process died (exit code {proc.exitcode})") \
            from None
    if not ok:
        raise value
    return value


def _ordered(fn_name, payloads, tagger, jobs, threads):
    """Results of ``tagger.<fn_name>(payload)`` for each payload, in order; ``jobs > 1``
    computes them in worker processes, one chunk in flight per worker.

    Each worker has a pipe of its own (no lock shared between processes, unlike
    ``multiprocessing.Pool``, whose ``terminate()`` can wait forever on a lock held by a
    worker): chunk ``k`` goes to worker ``k % jobs``, and a worker gets its next chunk only
    after its result has been read, so neither side ever blocks writing to the other.
    Stopping early (closed pipe, Ctrl-C, an error, the consumer gone) kills the workers."""
    if jobs <= 1:
        for p in payloads:
            yield _call_local(tagger, fn_name, p)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    workers = []
    ok = False
    try:
        for _ in range(jobs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_loop, args=(child, tagger, threads), daemon=True)
            proc.start()
            child.close()
            workers.append((proc, parent))
        it = iter(payloads)
        pending = collections.deque()  # worker of each chunk in flight, in input order
        for w in range(jobs):
            p = next(it, _END)
            if p is _END:
                break
            workers[w][1].send((fn_name, p))
            pending.append(w)
        while pending:
            w = pending.popleft()
            result = _receive(*workers[w])
            p = next(it, _END)
            if p is not _END:  # the worker is idle now: it reads this at once
                workers[w][1].send((fn_name, p))
                pending.append(w)
            yield result
        ok = True
    finally:
        for proc, conn in workers:
            if ok:
                try:
                    conn.send(None)
                except OSError:
                    pass
            else:
                proc.kill()
            conn.close()
        for proc, _ in workers:
            proc.join(timeout=10)
            if proc.is_alive():  # pragma: no cover - a worker that ignores the stop
                proc.kill()
                proc.join(timeout=5)


_END = object()


def _call_local(tagger, fn_name, payload):
    if fn_name == "text":
        return _text_chunk(tagger, *payload)
    return getattr(tagger, fn_name)(payload)


def _chunks(iterable, n):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tag_sentences(tagger, sentences, *, jobs=1, chunk_size=CHUNK_SENTENCES, threads=1):
    """Tag an iterable of sentences lazily: yields ``(tokens, labels)`` pairs in input order.

    Parameters
    ----------
    tagger : Tagger or LoadedModel or path
        The model (a :class:`Tagger`, what :func:`~fastbp.ner.io.load_model` returns, or a
        model directory).
    sentences : iterable
        Token lists (or :class:`~fastbp.ner.data.Sentence` objects); consumed chunk by
        chunk, never as a whole. Empty sentences come out with empty labels.
    jobs : int
        Worker processes (1: tag in this process).
    chunk_size : int
        Sentences per chunk (the unit of work handed to a worker).
    threads : int
        BLAS threads in each worker (``jobs > 1`` only).

    Yields
    ------
    (list of str, list of str)
        The sentence's tokens and their predicted labels.
    """
    tagger = _as_tagger(tagger)
    jobs, chunk_size = _check_pos("jobs", jobs), _check_pos("chunk_size", chunk_size)
    toks = (list(getattr(s, "tokens", s)) for s in sentences)
    chunks = _chunks(toks, chunk_size)
    buffered = collections.deque()

    def payloads():
        for c in chunks:
            buffered.append(c)
            yield c

    results = _ordered("tag", payloads(), tagger, jobs, threads)
    try:
        for labels in results:
            for t, lab in zip(buffered.popleft(), labels):
                yield t, lab
    finally:
        results.close()  # stops the workers now when the consumer stops early


def _as_tagger(obj):
    if isinstance(obj, Tagger):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return Tagger.load(obj)
    if hasattr(obj, "model") and hasattr(obj, "featurizer") and hasattr(obj, "labels"):
        return Tagger(obj.model, obj.featurizer, obj.labels)
    raise TypeError(f"expected a Tagger, a loaded model or a model directory, got "
                    f"{type(obj).__name__}")


def _check_pos(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


# ---------------------------------------------------------------------- raw text
def _decode_lines(raw_lines, first_lineno, src):
    """Token lists of raw byte lines; a line that is not UTF-8 raises TextFormatError."""
    try:
        text = b"".join(raw_lines).decode("utf-8")
    except UnicodeDecodeError:
        for i, line in enumerate(raw_lines):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TextFormatError(f"{src}:{first_lineno + i}: invalid utf-8 "
                                      f"({exc.reason})") from None
        raise  # pragma: no cover - the join of valid lines is valid
    if first_lineno == 1 and text.startswith("\ufeff"):
        text = text[1:]
    return [s for s in (line.split() for line in text.splitlines()) if s]


def _text_chunk(tagger, raw_lines, first_lineno, src):
    return tagger.format_lines(_decode_lines(raw_lines, first_lineno, src))


def _raw_chunks(fh, n):
    """(raw byte lines, number of the first line) chunks of ``n`` lines of a binary file."""
    lineno = 1
    chunk = []
    for line in fh:
        chunk.append(line)
        if len(chunk) >= n:
            yield chunk, lineno
            lineno += len(chunk)
            chunk = []
    if chunk:
        yield chunk, lineno


def read_token_lines(path_or_file, src=None):
    """Yield the token list of each non-blank line of a UTF-8 text (a path or a binary
    file), reading it lazily. A line that is not UTF-8 raises :class:`TextFormatError`
    naming ``src`` (default: the path) and the line number; a leading BOM is dropped."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as fh:
            yield from read_token_lines(fh, src or str(path_or_file))
        return
    src = src or getattr(path_or_file, "name", "<input>")
    for raw, first in _raw_chunks(path_or_file, CHUNK_SENTENCES):
        yield from _decode_lines(raw, first, src)


def predict_stream(tagger, infile, out, *, jobs=1, chunk_size=CHUNK_SENTENCES, threads=1,
                   src=None):
    """Tag the raw text ``infile`` (a binary file: one whitespace-tokenised sentence per
    line) and write ``token<TAB>label`` lines (a blank line after each sentence) to the
    text stream ``out``, flushing after every chunk of ``chunk_size`` lines. With
    ``jobs > 1`` the chunks are decoded, tagged and formatted in worker processes; the
    output is the same, in input order."""
    tagger = _as_tagger(tagger)
    jobs, chunk_size = _check_pos("jobs", jobs), _check_pos("chunk_size", chunk_size)
    src = src or getattr(infile, "name", "<input>")
    payloads = ((raw, first, str(src)) for raw, first in _raw_chunks(infile, chunk_size))
    results = _ordered("text", payloads, tagger, jobs, threads)
    try:
        for text in results:
            if text:
                out.write(text)
                out.flush()
    finally:
        results.close()  # a closed pipe or Ctrl-C: the workers are stopped at once


def silence_stdout():
    """After a BrokenPipeError on stdout: point file descriptor 1 at /dev/null, so that
    Python's final flush of ``sys.stdout`` does not report the error again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
