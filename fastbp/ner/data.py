"""CoNLL-format reading and writing, and label-scheme detection.

The CoNLL column format has one token per line, the token in the first column and
its label in the last, columns separated by tabs or spaces; sentences are separated
by blank lines and ``-DOCSTART-`` lines mark document boundaries::

    -DOCSTART-	O

    EU	ORG
    rejects	O
    German	MISC

Two label schemes are recognised: ``"IO"`` (labels are bare types such as ``PER``
plus ``O``, as in the CS224N 2017 distribution of CoNLL-2003) and ``"BIO"`` (IOB2:
``B-PER``, ``I-PER``, ``O``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TextIO, Union

__all__ = [
    "ConllFormatError",
    "Sentence",
    "read_conll",
    "write_conll",
    "detect_scheme",
    "SCHEMES",
]

#: The label schemes :func:`detect_scheme` can return.
SCHEMES = ("IO", "BIO")

_DOCSTART = "-DOCSTART-"
_SHOW = 80  # characters of an offending line shown in error messages

PathLike = Union[str, "os.PathLike[str]"]


class Sentence(NamedTuple):
    """One sentence: parallel lists of tokens and labels.

    Attributes
    ----------
    tokens : list of str
        The words, in order.
    labels : list of str
        One label per token (``"O"`` outside entities).
    """

    tokens: list[str]
    labels: list[str]


class ConllFormatError(ValueError):
    """A CoNLL file is malformed; the message names the file and the 1-based line."""


def _show(line: str) -> str:
    """Return ``line`` quoted and truncated for an error message."""
    if len(line) > _SHOW:
        line = line[:_SHOW] + "..."
    return repr(line)


def _decode(data: bytes, path: str, encoding: str, error=None) -> str:
    """Decode ``data`` and normalise its line ends to LF (dropping a byte-order mark);
    raise ``error`` (default :class:`ConllFormatError`) naming the file and line of the
    first undecodable byte. Shared with the vector-file reader."""
    error = ConllFormatError if error is None else error
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        # Line numbers count LF, CRLF and lone CR line ends, as read_conll does.
        head = data[: exc.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lineno = head.count(b"\n") + 1
        start = max(data.rfind(b"\n", 0, exc.start), data.rfind(b"\r", 0, exc.start)) + 1
        ends = [i for i in (data.find(b"\n", exc.start), data.find(b"\r", exc.start)) if i >= 0]
        end = min(ends) if ends else -1
        raw = data[start : end if end >= 0 else len(data)]
        raise error(
            f"{path}:{lineno}: invalid {encoding} ({exc.reason} at byte {exc.start - start} "
            f"of the line): {_show(raw.decode(encoding, errors='replace'))}"
        ) from None
    except LookupError as exc:
        raise ValueError(f"unknown encoding {encoding!r}") from exc
    if text.startswith("\ufeff"):  # tolerate a UTF-8 byte-order mark
        text = text[1:]
    if "\r" in text:  # CRLF and old Mac (lone CR) line ends; a lone CR used to be
        # taken for a column separator, silently merging a file into one line
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def read_conll(path: PathLike, encoding: str = "utf-8") -> list[Sentence]:
    """Read a CoNLL-format file into a list of sentences.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    encoding : str, optional
        Text encoding of the file (default UTF-8; a leading byte-order mark is
        ignored).

    Returns
    -------
    list of Sentence
        The sentences in file order. An empty file (or one holding only blank and
        ``-DOCSTART-`` lines) gives an empty list.

    Raises
    ------
    ConllFormatError
        If a non-blank line has fewer than two columns, or the file is not valid in
        ``encoding``; the message names the file and the 1-based line number and
        shows the offending line (truncated to 80 characters).
    OSError
        If the file cannot be opened.

    Notes
    -----
    * The token is the *first* whitespace-separated column and the label the
      *last*; any number (>= 2) of columns is accepted, separated by tabs and/or
      spaces (so tokens cannot contain whitespace).
    * A line that is empty or whitespace-only ends the current sentence; several
      consecutive blank lines are fine, and the final sentence needs no trailing
      blank line.
    * Lines starting with ``-DOCSTART-`` are skipped and also end the current
      sentence.
    * Windows (CRLF) and old Mac (CR) line endings are accepted.
    """
    path_str = os.fspath(path)
    with open(path_str, "rb") as fh:
        data = fh.read()
    text = _decode(data, path_str, encoding)

    sentences: list[Sentence] = []
    tokens: list[str] = []
    labels: list[str] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        cols = line.split()
        if not cols or cols[0].startswith(_DOCSTART):
            if tokens:
                sentences.append(Sentence(tokens, labels))
                tokens, labels = [], []
            continue
        if len(cols) < 2:
            raise ConllFormatError(
                f"{path_str}:{lineno}: expected at least 2 whitespace-separated columns "
                f"(token ... label), got 1: {_show(line.rstrip())}"
            )
        tokens.append(cols[0])
        labels.append(cols[-1])
    if tokens:
        sentences.append(Sentence(tokens, labels))
    return sentences


def write_conll(
    path_or_file: PathLike | TextIO,
    sentences_with_labels: Iterable[Sentence | tuple[Sequence[str], Sequence[str]]],
) -> None:
    """Write sentences as ``token<TAB>label`` lines, a blank line after each sentence.

    Parameters
    ----------
    path_or_file : str, os.PathLike or text file object
        Destination. A path is opened for writing in UTF-8 (and overwritten); a file
        object is written to and left open.
    sentences_with_labels : iterable of Sentence or (tokens, labels) pairs
        Typically the input tokens paired with predicted label strings.

    Raises
    ------
    ValueError
        If a sentence's token and label counts differ, or a token or label is empty
        or contains whitespace (the file could not be read back); the message names
        the 0-based sentence index.

    Notes
    -----
    The output reads back with :func:`read_conll` to the same sentences (sentences
    with no tokens are skipped, since they cannot be represented).
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "w", encoding="utf-8", newline="\n") as fh:
            _write(fh, sentences_with_labels)
    else:
        _write(path_or_file, sentences_with_labels)


def _write(fh: TextIO, sentences: Iterable) -> None:
    buf = io.StringIO()
    for i, item in enumerate(sentences):
        tokens, labels = item
        if len(tokens) != len(labels):
            raise ValueError(
                f"sentence {i}: {len(tokens)} tokens but {len(labels)} labels"
            )
        if not len(tokens):
            continue
        for tok, lab in zip(tokens, labels):
            tok, lab = str(tok), str(lab)
            for what, s in (("token", tok), ("label", lab)):
                if not s or len(s.split()) != 1 or s != s.strip():
                    raise ValueError(
                        f"sentence {i}: {what} {s!r} is empty or contains whitespace"
                    )
            buf.write(tok)
            buf.write("\t")
            buf.write(lab)
            buf.write("\n")
        buf.write("\n")
    fh.write(buf.getvalue())


def detect_scheme(label_seqs: Iterable) -> str:
    """Guess the label scheme of some labels.

    Parameters
    ----------
    label_seqs : iterable
        Label sequences (lists of strings), :class:`Sentence` objects (their
        ``labels`` are used), or a flat sequence of label strings.

    Returns
    -------
    {"IO", "BIO"}
        ``"BIO"`` (IOB2) if any label starts with ``"B-"`` or ``"I-"``, otherwise
        ``"IO"``.
    """
    for seq in label_seqs:
        if isinstance(seq, str):
            seq = (seq,)
        elif isinstance(seq, Sentence):
            seq = seq.labels
        for lab in seq:
            if isinstance(lab, str) and lab[:2] in ("B-", "I-"):
                return "BIO"
    return "IO"
