"""Pretrained word vectors in GloVe text format.

The format is one vector per line, ``word v1 v2 ... vd``, separated by single spaces,
no header. A word2vec-style header line ``"<count> <dim>"`` on line 1 is tolerated.
"""

from __future__ import annotations

import os

import numpy as np

from .data import _decode, _show
from .vocab import Vocab

__all__ = ["VectorFormatError", "load_vectors", "read_vector_words"]

class VectorFormatError(ValueError):
    """A vector file is malformed; the message names the file and the 1-based line."""


def _read_lines(path: str, encoding: str) -> list[str]:
    """Read ``path`` and return its lines (without line ends); errors name file:line."""
    with open(path, "rb") as fh:
        data = fh.read()
    lines = _decode(data, path, encoding, VectorFormatError).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r ") for ln in lines]


def _is_header(line: str) -> bool:
    parts = line.split(" ")
    return len(parts) == 2 and all(p.isascii() and p.isdigit() for p in parts)


def read_vector_words(path: str | os.PathLike, encoding: str = "utf-8") -> list[str]:
    """Return the words of a vector file (first field of each line), in file order.

    Cheap: the vectors are not parsed. Blank lines and a word2vec header are skipped.
    Use it to extend a :class:`~fastbp.ner.vocab.Vocab` with pretrained words
    (``Vocab.build(..., extra_words=...)``).

    Raises
    ------
    VectorFormatError
        If the file is not valid in ``encoding`` (names file and line).
    """
    path = os.fspath(path)
    lines = _read_lines(path, encoding)
    start = 1 if lines and _is_header(lines[0]) else 0
    return [ln.split(" ", 1)[0] for ln in lines[start:] if ln.strip()]


def load_vectors(
    path: str | os.PathLike,
    vocab: Vocab,
    dim: int | None = None,
    rng: np.random.Generator | None = None,
    scale: float | None = None,
    dtype=np.float32,
    encoding: str = "utf-8",
) -> tuple[np.ndarray, int]:
    """Load pretrained vectors for the words of ``vocab``.

    Parameters
    ----------
    path : str or os.PathLike
        GloVe text file (``word v1 ... vd`` per line, single spaces; a first line
        ``"<count> <dim>"`` is taken as a word2vec header and skipped).
    vocab : Vocab
        Rows of the result follow its ids. A file word is matched by its
        normalisation (``vocab.normalize(word)``); when several file words
        normalise to the same entry, the first one in the file wins. The special
        tokens are never matched.
    dim : int, optional
        Expected dimension; inferred from the first vector line if omitted.
    rng : numpy.random.Generator, optional
        Source of the random initialisation (default ``np.random.default_rng(0)``).
    scale : float, optional
        Standard deviation of the random rows; default: the standard deviation of
        all loaded vector values (0.1 if no word was found).
    dtype : numpy dtype, optional
        Result dtype (default float32).
    encoding : str, optional
        File encoding (default UTF-8).

    Returns
    -------
    matrix : numpy.ndarray, shape (len(vocab), d)
        Pretrained vectors for found words; rows of the other words and of the
        special tokens drawn from ``N(0, scale**2)``. The random draw covers the
        whole matrix before the found rows are overwritten, so it depends only on
        ``rng``, the vocabulary size and ``d``.
    n_found : int
        Number of vocabulary rows filled from the file.

    Raises
    ------
    VectorFormatError
        If a line has the wrong number of values or a value that is not a float,
        if ``dim`` disagrees with the file, if the file is not valid in
        ``encoding`` (all naming file and 1-based line), or if the file holds no
        vectors and ``dim`` is not given.
    """
    path = os.fspath(path)
    lines = _read_lines(path, encoding)
    dim_given = dim is not None
    if dim_given and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    first = 0
    if lines and _is_header(lines[0]):
        hdim = int(lines[0].split(" ")[1])
        if dim is None:
            dim = hdim
        first = 1

    index = vocab._index  # normalised word -> id (read only)
    specials = len(Vocab.SPECIALS)
    normalize = vocab.normalize
    linenos: list[int] = []  # 1-based file line of every vector
    values: list[str] = []  # all value strings, flattened (every line is validated)
    rows: list[int] = []  # vocab id of each kept vector
    keep: list[int] = []  # its index among the file's vectors
    taken: set[int] = set()
    for lineno, line in enumerate(lines[first:], first + 1):
        if not line.strip():
            continue
        parts = line.split(" ")
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                raise VectorFormatError(
                    f"{path}:{lineno}: expected 'word v1 ... vd', found no values: {_show(line)}"
                )
        elif dim < 1:  # a header "<count> 0" followed by vectors
            raise VectorFormatError(
                f"{path}:{lineno}: the header declares a vector dimension of {dim}: "
                f"{_show(line)}"
            )
        if len(parts) != dim + 1:
            raise VectorFormatError(
                f"{path}:{lineno}: expected a word and {dim} values, got "
                f"{len(parts) - 1} values: {_show(line)}"
            )
        i = index.get(normalize(parts[0]), -1)
        if i >= specials and i not in taken:
            taken.add(i)
            rows.append(i)
            keep.append(len(linenos))
        linenos.append(lineno)
        values.extend(parts[1:])

    if dim is None or (not linenos and not dim_given):
        # (a header alone does not count: its dimension, unchecked by any vector, could
        # be anything, e.g. "0 300000000" would allocate len(vocab) * 3e8 values)
        raise VectorFormatError(f"{path}: no vectors found and dim not given")

    try:
        allvecs = np.array(values, dtype=np.float64).reshape(len(linenos), dim)
    except ValueError:
        for k, lineno in enumerate(linenos):
            for v in values[k * dim : (k + 1) * dim]:
                try:
                    float(v)
                except ValueError:
                    raise VectorFormatError(
                        f"{path}:{lineno}: value {v!r} is not a number: "
                        f"{_show(lines[lineno - 1])}"
                    ) from None
        raise
    bad = ~np.isfinite(allvecs).all(axis=1)
    if bad.any():
        lineno = linenos[int(np.argmax(bad))]
        raise VectorFormatError(
            f"{path}:{lineno}: non-finite value in vector: {_show(lines[lineno - 1])}"
        )
    vecs = allvecs[np.asarray(keep, dtype=np.int64)]

    if rng is None:
        rng = np.random.default_rng(0)
    if scale is None:
        scale = float(vecs.std()) if vecs.size else 0.1
    matrix = rng.normal(0.0, scale, size=(len(vocab), dim)).astype(dtype)
    if rows:
        matrix[np.asarray(rows)] = vecs.astype(dtype)
    return matrix, len(rows)
