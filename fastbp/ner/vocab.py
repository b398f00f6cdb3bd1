"""Word vocabulary, casing features and label sets for window-based NER.

* :func:`normalize_word` -- the word normalisation used for vocabulary look-ups
  (lower-casing and CS224N-style digit normalisation).
* :data:`CASING` / :func:`casing_id` -- the five casing classes of the CS224N
  assignment, a cheap feature that restores the case information lost by
  lower-casing.
* :class:`Vocab` -- word <-> id mapping with the special tokens ``<unk>``, ``<s>``
  and ``</s>`` at ids 0, 1 and 2.
* :class:`LabelSet` -- ordered label <-> id mapping, ``"O"`` first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from .data import Sentence, detect_scheme

__all__ = [
    "CASING",
    "casing_id",
    "casing_ids",
    "normalize_word",
    "Vocab",
    "LabelSet",
    "UNK",
    "BOS",
    "EOS",
]

#: Unknown-word token (id 0).
UNK = "<unk>"
#: Beginning-of-sentence padding token (id 1), used left of the first word.
BOS = "<s>"
#: End-of-sentence padding token (id 2), used right of the last word.
EOS = "</s>"
_SPECIALS = (UNK, BOS, EOS)

#: Casing classes, in id order (see :func:`casing_id`).
CASING = ("lower", "upper", "init_cap", "has_cap", "no_letters")
_LOWER, _UPPER, _INIT_CAP, _HAS_CAP, _NO_LETTERS = range(5)

_DIGIT_RE = re.compile(r"\d")


def normalize_word(word: str, lower: bool = True, digits: bool = True) -> str:
    """Normalise a word for vocabulary look-up.

    Parameters
    ----------
    word : str
        The raw token.
    lower : bool, optional
        Lower-case the word (default True).
    digits : bool, optional
        Replace every decimal digit (regex ``\\d``, so Unicode digits too) by
        ``"0"``, as in the CS224N assignment: ``"1996-08-22"`` becomes
        ``"0000-00-00"`` and ``"3.5"`` becomes ``"0.0"``. This keeps the shape of a
        number while sharing one embedding among all numbers of that shape.

    Returns
    -------
    str
        The normalised word.
    """
    if lower:
        word = word.lower()
    if digits:
        word = _DIGIT_RE.sub("0", word)
    return word


def casing_id(token: str) -> int:
    """Return the casing class of ``token`` as an index into :data:`CASING`.

    The rules, applied in order:

    1. no alphabetic character at all -> ``"no_letters"`` (``"1996"``, ``","``, ``""``)
    2. ``token.islower()`` -> ``"lower"`` (``"rejects"``, ``"3m"``)
    3. ``token.isupper()`` -> ``"upper"`` (``"EU"``, ``"BRUSSELS"``, ``"A1"``)
    4. first character upper-case and no other upper-case letter -> ``"init_cap"``
       (``"Peter"``, ``"Al-Ain"`` is *not*: it has a second capital)
    5. otherwise -> ``"has_cap"`` (``"iPhone"``, ``"McDonald"``)

    Parameters
    ----------
    token : str
        The raw (not normalised) token.

    Returns
    -------
    int
        Index into :data:`CASING`.
    """
    if not any(c.isalpha() for c in token):
        return _NO_LETTERS
    if token.islower():
        return _LOWER
    if token.isupper():
        return _UPPER
    if token[0].isupper() and not any(c.isupper() for c in token[1:]):
        return _INIT_CAP
    return _HAS_CAP


def casing_ids(tokens: Iterable[str]) -> np.ndarray:
    """Vectorised :func:`casing_id`: an ``int32`` array, one entry per token."""
    cache: dict[str, int] = {}
    out = []
    for tok in tokens:
        c = cache.get(tok)
        if c is None:
            c = cache[tok] = casing_id(tok)
        out.append(c)
    return np.asarray(out, dtype=np.int32)


def _iter_token_lists(sentences_or_token_lists: Iterable) -> Iterable[Sequence[str]]:
    """Yield token lists from Sentences or plain token lists (rejecting a flat list)."""
    for item in sentences_or_token_lists:
        if isinstance(item, str):
            raise TypeError(
                "expected a sequence of sentences (Sentence objects or token lists), "
                f"got a string {item!r}; wrap a single token list as [tokens]"
            )
        yield item.tokens if isinstance(item, Sentence) else item


class Vocab:
    """A word vocabulary with normalised look-up.

    Ids ``0, 1, 2`` are the special tokens :data:`UNK` (``"<unk>"``), :data:`BOS`
    (``"<s>"``) and :data:`EOS` (``"</s>"``). BOS and EOS pad windows that extend past
    the sentence start and end; they get ordinary (learned) embedding rows. Regular
    words follow from id 3, stored in normalised form.

    Parameters
    ----------
    words : iterable of str, optional
        Regular words in id order (ids 3, 4, ...). They are normalised with the
        options below; duplicates after normalisation and the special tokens are
        ignored (first occurrence wins).
    lower, digits : bool, optional
        Normalisation options, see :func:`normalize_word`. Every look-up applies
        the same normalisation.

    Notes
    -----
    Use :meth:`build` to create a vocabulary from a corpus. A corpus token that
    normalises to a special-token string (e.g. a literal ``"<s>"``) maps to that
    special id.
    """

    UNK = UNK
    BOS = BOS
    EOS = EOS
    UNK_ID = 0
    BOS_ID = 1
    EOS_ID = 2
    SPECIALS = _SPECIALS

    def __init__(self, words: Iterable[str] = (), lower: bool = True, digits: bool = True):
        self.lower = bool(lower)
        self.digits = bool(digits)
        self._words: list[str] = list(_SPECIALS)
        self._index: dict[str, int] = {w: i for i, w in enumerate(_SPECIALS)}
        for w in words:
            w = self.normalize(w)
            if w not in self._index:
                self._index[w] = len(self._words)
                self._words.append(w)

    # -- construction -----------------------------------------------------------
    @classmethod
    def build(
        cls,
        sentences_or_token_lists: Iterable,
        max_size: int | None = None,
        min_count: int = 1,
        lower: bool = True,
        digits: bool = True,
        extra_words: Iterable[str] | None = None,
    ) -> "Vocab":
        """Build a vocabulary from a corpus.

        Parameters
        ----------
        sentences_or_token_lists : iterable
            :class:`Sentence` objects or lists of tokens.
        max_size : int, optional
            Keep at most this many corpus words (the special tokens and
            ``extra_words`` are not counted). Default: no limit.
        min_count : int, optional
            Keep only words occurring at least this often (after normalisation).
        lower, digits : bool, optional
            Normalisation options (see :func:`normalize_word`).
        extra_words : iterable of str, optional
            Words added after the corpus words whatever their count (e.g. the
            words of a pretrained-vector file that occur in dev/test data, so
            they keep their pretrained vectors). They are normalised, de-duplicated
            and appended in sorted order, so the result does not depend on the
            iteration order of the argument.

        Returns
        -------
        Vocab
            Ids: specials 0-2, then corpus words by decreasing frequency (ties
            broken by the word, ascending), then the new ``extra_words``. The order
            is deterministic.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 or None, got {max_size}")
        norm: dict[str, str] = {}
        counts: Counter[str] = Counter()
        for tokens in _iter_token_lists(sentences_or_token_lists):
            counts.update(tokens)
        normed: Counter[str] = Counter()
        for tok, n in counts.items():
            w = norm.get(tok)
            if w is None:
                w = norm[tok] = normalize_word(tok, lower, digits)
            normed[w] += n
        for s in _SPECIALS:
            normed.pop(s, None)
        ranked = sorted(
            (item for item in normed.items() if item[1] >= min_count),
            key=lambda kv: (-kv[1], kv[0]),
        )
        if max_size is not None:
            ranked = ranked[:max_size]
        words = [w for w, _ in ranked]
        if extra_words is not None:
            if isinstance(extra_words, str):
                raise TypeError("extra_words must be an iterable of words, not a string")
            have = set(words)
            extra = {normalize_word(w, lower, digits) for w in extra_words}
            words.extend(sorted(extra - have - set(_SPECIALS)))
        return cls(words, lower=lower, digits=digits)

    # -- look-up ---------------------------------------------------------------
    def normalize(self, word: str) -> str:
        """Normalise ``word`` with this vocabulary's options."""
        return normalize_word(word, self.lower, self.digits)

    @property
    def words(self) -> list[str]:
        """All entries in id order, specials first (a copy)."""
        return list(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.normalize(word) in self._index

    def __iter__(self):
        return iter(self._words)

    def id(self, word: str) -> int:
        """Return the id of ``word`` after normalisation; unknown words give ``UNK_ID``."""
        return self._index.get(self.normalize(word), self.UNK_ID)

    def word(self, idx: int) -> str:
        """Return the (normalised) word with id ``idx``."""
        return self._words[idx]

    def ids(self, tokens: Iterable[str]) -> np.ndarray:
        """Return the ids of ``tokens`` as an ``int32`` array (unknown -> ``UNK_ID``)."""
        if isinstance(tokens, str):
            raise TypeError("ids() takes a sequence of tokens, not a single string")
        index = self._index
        cache: dict[str, int] = {}
        out = []
        for tok in tokens:
            i = cache.get(tok)
            if i is None:
                i = cache[tok] = index.get(self.normalize(tok), 0)
            out.append(i)
        return np.asarray(out, dtype=np.int32)

    # -- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict:
        """Return a JSON-serialisable description (round-trips via :meth:`from_dict`)."""
        return {
            "type": "Vocab",
            "lower": self.lower,
            "digits": self.digits,
            "words": list(self._words),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        """Rebuild a vocabulary from :meth:`to_dict` output."""
        words = list(d["words"])
        if tuple(words[:3]) != _SPECIALS:
            raise ValueError(
                f"vocabulary dict must start with the special tokens {_SPECIALS}, "
                f"got {tuple(words[:3])}"
            )
        v = cls(lower=d.get("lower", True), digits=d.get("digits", True))
        for w in words[3:]:
            if w in v._index:
                raise ValueError(f"duplicate word {w!r} in vocabulary dict")
            v._index[w] = len(v._words)
            v._words.append(w)
        return v

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (
            self.lower == other.lower
            and self.digits == other.digits
            and self._words == other._words
        )

    __hash__ = None  # mutable-looking container; not hashable

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, lower={self.lower}, digits={self.digits})"


def _label_sort_key(label: str) -> tuple:
    if label == "O":
        return (0, "", 0)
    if label[:2] in ("B-", "I-"):
        return (1, label[2:], 0 if label[0] == "B" else 1)
    return (1, label, -1)


class LabelSet:
    """An ordered set of labels with ids.

    Parameters
    ----------
    labels : iterable of str
        The labels in id order (used as given; duplicates raise ``ValueError``).

    Notes
    -----
    :meth:`from_sentences` orders labels with ``"O"`` first (id 0) and the others
    sorted by entity type, ``B-X`` before ``I-X``.
    """

    def __init__(self, labels: Iterable[str]):
        if isinstance(labels, str):
            raise TypeError("LabelSet takes an iterable of labels, not a string")
        self._labels: list[str] = []
        self._index: dict[str, int] = {}
        for lab in labels:
            if not isinstance(lab, str) or not lab:
                raise ValueError(f"labels must be non-empty strings, got {lab!r}")
            if lab in self._index:
                raise ValueError(f"duplicate label {lab!r}")
            self._index[lab] = len(self._labels)
            self._labels.append(lab)

    @classmethod
    def from_sentences(cls, sentences: Iterable) -> "LabelSet":
        """Collect the labels of :class:`Sentence` objects (or label lists)."""
        seen: set[str] = set()
        for s in sentences:
            seen.update(s.labels if isinstance(s, Sentence) else s)
        return cls(sorted(seen, key=_label_sort_key))

    @property
    def labels(self) -> list[str]:
        """The labels in id order (a copy)."""
        return list(self._labels)

    @property
    def scheme(self) -> str:
        """``"BIO"`` or ``"IO"``, see :func:`~fastbp.ner.data.detect_scheme`."""
        return detect_scheme([self._labels])

    @property
    def types(self) -> list[str]:
        """Entity types (labels without ``B-``/``I-``), ``"O"`` excluded, sorted."""
        out = {lab[2:] if lab[:2] in ("B-", "I-") else lab for lab in self._labels}
        out.discard("O")
        return sorted(out)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __iter__(self):
        return iter(self._labels)

    def id(self, label: str) -> int:
        """Return the id of ``label``.

        Raises
        ------
        KeyError
            For an unknown label (the message lists the known labels).
        """
        try:
            return self._index[label]
        except (KeyError, TypeError):
            raise KeyError(f"unknown label {label!r}; known labels: {self._labels}") from None

    def ids(self, labels: Iterable[str]) -> np.ndarray:
        """Return the ids of ``labels`` as an ``int32`` array (unknown -> ``KeyError``)."""
        if isinstance(labels, str):
            raise TypeError("ids() takes a sequence of labels, not a single string")
        index = self._index
        try:
            return np.asarray([index[lab] for lab in labels], dtype=np.int32)
        except (KeyError, TypeError):
            for lab in labels:
                self.id(lab)  # raises with a clear message
            raise

    def label(self, idx: int) -> str:
        """Return the label with id ``idx``."""
        return self._labels[idx]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids (e.g. argmax predictions) back to label strings."""
        labels = self._labels
        return [labels[i] for i in np.asarray(ids, dtype=np.int64).ravel()]

    def to_dict(self) -> dict:
        """Return a JSON-serialisable description (round-trips via :meth:`from_dict`)."""
        return {"type": "LabelSet", "labels": list(self._labels)}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSet":
        """Rebuild a label set from :meth:`to_dict` output."""
        return cls(d["labels"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSet):
            return NotImplemented
        return self._labels == other._labels

    __hash__ = None

    def __repr__(self) -> str:
        return f"LabelSet({self._labels})"
