"""Window featurisation: each token becomes the ids of the words (and casing classes)
in a window of ``2K+1`` positions centred on it.

Layout of the shared embedding table a model indexes with these ids::

    rows [0, len(vocab))                      word embeddings (specials at 0, 1, 2)
    rows [len(vocab), len(vocab)+len(CASING)) casing embeddings (only if casing=True)

Column order of a feature row interleaves the positions::

    [w_{-K}, c_{-K}, ..., w_0, c_0, ..., w_K, c_K]      (casing=True)
    [w_{-K}, ..., w_0, ..., w_K]                        (casing=False)

Positions before the sentence start hold the BOS word id, positions after its end
the EOS word id; both padding kinds use the casing class ``"no_letters"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .data import Sentence
from .vocab import CASING, LabelSet, Vocab, _iter_token_lists, casing_ids

__all__ = ["WindowFeaturizer", "sentence_lengths", "split"]

_PAD_CASING = CASING.index("no_letters")


def sentence_lengths(sentences_or_token_lists: Iterable) -> np.ndarray:
    """Return the number of tokens of each sentence as an ``int64`` array."""
    return np.fromiter(
        (len(t) for t in _iter_token_lists(sentences_or_token_lists)), dtype=np.int64
    )


def split(flat: np.ndarray | Sequence, lengths: Sequence[int] | np.ndarray) -> list:
    """Split a per-token array (e.g. predictions) back into per-sentence pieces.

    Parameters
    ----------
    flat : array_like, shape (n_tokens, ...)
        Values for all tokens of all sentences, in order.
    lengths : array_like of int
        Sentence lengths, e.g. from :func:`sentence_lengths`.

    Returns
    -------
    list of numpy.ndarray
        ``len(lengths)`` views of ``flat``.

    Raises
    ------
    ValueError
        If ``sum(lengths) != len(flat)``.
    """
    flat = np.asarray(flat)
    lengths = np.asarray(lengths, dtype=np.int64)
    if int(lengths.sum()) != flat.shape[0]:
        raise ValueError(
            f"lengths sum to {int(lengths.sum())} but the array has {flat.shape[0]} rows"
        )
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


class WindowFeaturizer:
    """Turn sentences into fixed-width windows of embedding-table row ids.

    Parameters
    ----------
    vocab : Vocab
        Word vocabulary; its ``BOS_ID``/``EOS_ID`` pad the windows.
    window : int, optional
        Half-width ``K``: K words on each side, ``2K+1`` positions (default 1).
    casing : bool, optional
        Add a casing-class id per position (default True), stored at table rows
        ``len(vocab) + casing_id``.

    Attributes
    ----------
    casing_offset : int
        First table row of the casing embeddings (``len(vocab)``).
    n_rows : int
        Total rows of the shared embedding table.
    features_per_position : int
        2 with casing, else 1.
    width : int
        Columns of a feature row, ``(2K+1) * features_per_position``.
    """

    def __init__(self, vocab: Vocab, window: int = 1, casing: bool = True):
        if not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
        if int(window) != window or window < 0:
            raise ValueError(f"window (half-width K) must be an integer >= 0, got {window!r}")
        self.vocab = vocab
        self.window = int(window)
        self.casing = bool(casing)

    # -- layout ----------------------------------------------------------------
    @property
    def casing_offset(self) -> int:
        return len(self.vocab)

    @property
    def n_rows(self) -> int:
        return len(self.vocab) + (len(CASING) if self.casing else 0)

    @property
    def features_per_position(self) -> int:
        return 2 if self.casing else 1

    @property
    def n_positions(self) -> int:
        """Window positions, ``2K+1``."""
        return 2 * self.window + 1

    @property
    def width(self) -> int:
        return self.n_positions * self.features_per_position

    @property
    def word_columns(self) -> np.ndarray:
        """Column indices holding word ids (one per position, left to right)."""
        return np.arange(0, self.width, self.features_per_position)

    @property
    def casing_columns(self) -> np.ndarray:
        """Column indices holding casing ids (empty without casing)."""
        if not self.casing:
            return np.arange(0)
        return np.arange(1, self.width, 2)

    # -- featurisation ---------------------------------------------------------
    def featurize(self, sentences_or_token_lists: Iterable) -> np.ndarray:
        """Build the window features of every token.

        Parameters
        ----------
        sentences_or_token_lists : iterable
            :class:`Sentence` objects or lists of tokens.

        Returns
        -------
        numpy.ndarray, int32, shape (n_tokens, width), C-contiguous
            Row ``t`` holds the table-row ids of token ``t``'s window (tokens of
            all sentences concatenated in order; use :func:`split` with
            :func:`sentence_lengths` to go back to sentences).
        """
        token_lists = [list(t) for t in _iter_token_lists(sentences_or_token_lists)]
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64,
                              count=len(token_lists))
        flat_tokens = [tok for toks in token_lists for tok in toks]
        if not flat_tokens:
            return np.zeros((0, self.width), dtype=np.int32)
        word_ids = self.vocab.ids(flat_tokens)
        cas_ids = casing_ids(flat_tokens) if self.casing else None
        return self.windows(lengths, word_ids, cas_ids)

    def windows(self, lengths, word_ids, cas_ids=None) -> np.ndarray:
        """The window matrix of :meth:`featurize` from the sentence ``lengths`` and the
        tokens' vocabulary ids and casing classes (``cas_ids``: :func:`casing_ids`, needed
        with casing on), concatenated over the sentences."""
        lengths = np.asarray(lengths, dtype=np.int64)
        n = int(lengths.sum())
        K = self.window
        if len(word_ids) != n or (self.casing and (cas_ids is None or len(cas_ids) != n)):
            raise ValueError(f"{n} tokens in the sentences but {len(word_ids)} word ids and "
                             f"{'no' if cas_ids is None else len(cas_ids)} casing ids")
        if n == 0:
            return np.zeros((0, self.width), dtype=np.int32)

        # Padded layout: each sentence gets K slots before and K after.
        n_sent = len(lengths)
        starts = np.zeros(n_sent, dtype=np.int64)  # padded start of each sentence
        np.cumsum(lengths[:-1] + 2 * K, out=starts[1:])
        sent_of_token = np.repeat(np.arange(n_sent), lengths)
        pos = np.arange(n, dtype=np.int64) + 2 * K * sent_of_token + K  # padded index
        total = int(lengths.sum()) + 2 * K * n_sent
        offsets = np.arange(-K, K + 1, dtype=np.int64)
        gather = pos[:, None] + offsets[None, :]  # (n, 2K+1)

        words = np.full(total, self.vocab.EOS_ID, dtype=np.int32)
        if K:
            bos_slots = (starts[:, None] + np.arange(K)[None, :]).ravel()
            words[bos_slots] = self.vocab.BOS_ID
        words[pos] = word_ids

        out = np.empty((n, self.width), dtype=np.int32)
        if not self.casing:
            out[:] = words[gather]
            return out
        cas = np.full(total, _PAD_CASING, dtype=np.int32)
        cas[pos] = cas_ids
        cas += self.casing_offset
        out[:, 0::2] = words[gather]
        out[:, 1::2] = cas[gather]
        return out

    def featurize_labels(self, sentences: Iterable, labelset: LabelSet) -> np.ndarray:
        """Return the label ids of all tokens, concatenated, as ``int32`` (n_tokens,).

        Parameters
        ----------
        sentences : iterable of Sentence (or of label lists)
        labelset : LabelSet

        Raises
        ------
        KeyError
            For a label not in ``labelset``.
        """
        flat = []
        for s in sentences:
            flat.extend(s.labels if isinstance(s, Sentence) else s)
        return labelset.ids(flat)

    @staticmethod
    def sentence_lengths(sentences_or_token_lists: Iterable) -> np.ndarray:
        """See :func:`sentence_lengths`."""
        return sentence_lengths(sentences_or_token_lists)

    @staticmethod
    def split(flat, lengths) -> list:
        """See :func:`split`."""
        return split(flat, lengths)

    # -- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict:
        """Return a JSON-serialisable description (includes the vocabulary)."""
        return {
            "type": "WindowFeaturizer",
            "window": self.window,
            "casing": self.casing,
            "vocab": self.vocab.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "WindowFeaturizer":
        """Rebuild a featurizer from :meth:`to_dict` output."""
        return cls(Vocab.from_dict(d["vocab"]), window=d["window"], casing=d["casing"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowFeaturizer):
            return NotImplemented
        return (self.window, self.casing, self.vocab) == (other.window, other.casing, other.vocab)

    __hash__ = None

    def __repr__(self) -> str:
        return (f"WindowFeaturizer(window={self.window}, casing={self.casing}, "
                f"vocab_size={len(self.vocab)}, width={self.width})")
