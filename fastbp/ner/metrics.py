"""NER evaluation: entity chunks, entity-level and token-level scores, confusion
matrices, and plain-text tables for the command line.

Entity-level scoring follows the CS224N / conlleval convention: a predicted entity
counts as correct only if its (start, end, type) exactly matches a gold entity of
the same sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .data import detect_scheme

__all__ = [
    "chunks",
    "entity_scores",
    "token_scores",
    "confusion_matrix",
    "format_token_table",
    "format_entity_table",
    "format_confusion",
]


def _prf(correct: int, predicted: int, support: int) -> dict:
    p = correct / predicted if predicted else 0.0
    r = correct / support if support else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "support": int(support),
        "predicted": int(predicted),
        "correct": int(correct),
    }


def _bio_parts(label: str) -> tuple[str, str]:
    if label == "O":
        return "O", ""
    prefix = label[:2]
    if prefix in ("B-", "I-") and len(label) > 2:
        return label[0], label[2:]
    raise ValueError(
        f"label {label!r} is not valid in the BIO scheme (expected 'O', 'B-TYPE' or 'I-TYPE')"
    )


def chunks(labels: Sequence[str], scheme: str = "IO") -> list[tuple[int, int, str]]:
    """Extract entity chunks from one sentence's labels.

    Parameters
    ----------
    labels : sequence of str
        One label per token.
    scheme : {"IO", "BIO"}
        ``"IO"``: a chunk is a maximal run of tokens carrying the same non-``O``
        label, and its type is the label itself. ``"BIO"`` (IOB2, conlleval
        semantics): a chunk starts at ``B-X``, or at an ``I-X`` that follows ``O``
        or a label of another type (conlleval treats such an ``I-X`` as a start);
        it continues over following ``I-X`` and ends before anything else. Its type
        is ``X``.

    Returns
    -------
    list of (start, end, type)
        ``end`` is exclusive; chunks in order of ``start``.

    Raises
    ------
    ValueError
        For an unknown scheme, or (BIO) a non-``O`` label without ``B-``/``I-``.
    """
    out: list[tuple[int, int, str]] = []
    if scheme == "IO":
        start, cur = 0, "O"
        for i, lab in enumerate(labels):
            if lab != cur:
                if cur != "O":
                    out.append((start, i, cur))
                start, cur = i, lab
        if cur != "O":
            out.append((start, len(labels), cur))
        return out
    if scheme != "BIO":
        raise ValueError(f"unknown scheme {scheme!r}; expected 'IO' or 'BIO'")
    start = None
    cur = ""
    for i, lab in enumerate(labels):
        tag, typ = _bio_parts(lab)
        if start is not None and (tag != "I" or typ != cur):
            out.append((start, i, cur))
            start = None
        if tag == "B" or (tag == "I" and start is None):
            start, cur = i, typ
    if start is not None:
        out.append((start, len(labels), cur))
    return out


def entity_scores(
    gold_seqs: Iterable[Sequence[str]],
    pred_seqs: Iterable[Sequence[str]],
    scheme: str | None = None,
) -> dict:
    """Entity-level precision, recall and F1 with exact chunk matching.

    Parameters
    ----------
    gold_seqs, pred_seqs : iterable of sequences of str
        Gold and predicted labels, one sequence per sentence (same lengths).
    scheme : {"IO", "BIO"}, optional
        Label scheme for :func:`chunks`; detected from the gold and predicted labels
        (:func:`~fastbp.ner.data.detect_scheme`) if omitted.

    Returns
    -------
    dict
        ``{"precision", "recall", "f1", "support", "predicted", "correct",
        "scheme", "per_type": {type: {"precision", "recall", "f1", "support",
        "predicted", "correct"}}}`` where ``support`` is the number of gold
        entities, ``predicted`` the number of predicted entities and ``correct``
        the exact (start, end, type) matches. A score with a zero denominator is
        0, and F1 is 0 when P + R = 0. ``per_type`` covers every type seen in gold
        or predictions, sorted.

    Raises
    ------
    ValueError
        If the number of sentences or a sentence's length differs (names the
        0-based sentence index).
    """
    gold_seqs = [list(s) for s in gold_seqs]
    pred_seqs = [list(s) for s in pred_seqs]
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(
            f"{len(gold_seqs)} gold sentences but {len(pred_seqs)} predicted sentences"
        )
    if scheme is None:
        scheme = detect_scheme(gold_seqs + pred_seqs)
    n_gold: dict[str, int] = {}
    n_pred: dict[str, int] = {}
    n_ok: dict[str, int] = {}
    for k, (g, p) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(g) != len(p):
            raise ValueError(f"sentence {k}: {len(g)} gold labels but {len(p)} predicted")
        gc = set(chunks(g, scheme))
        pc = set(chunks(p, scheme))
        for _, _, t in gc:
            n_gold[t] = n_gold.get(t, 0) + 1
        for _, _, t in pc:
            n_pred[t] = n_pred.get(t, 0) + 1
        for _, _, t in gc & pc:
            n_ok[t] = n_ok.get(t, 0) + 1
    types = sorted(set(n_gold) | set(n_pred))
    per_type = {t: _prf(n_ok.get(t, 0), n_pred.get(t, 0), n_gold.get(t, 0)) for t in types}
    out = _prf(sum(n_ok.values()), sum(n_pred.values()), sum(n_gold.values()))
    out["scheme"] = scheme
    out["per_type"] = per_type
    return out


def _label_list(labels) -> list[str]:
    if isinstance(labels, str):
        raise TypeError("labels must be a sequence of label strings, not a string")
    labs = list(getattr(labels, "labels", labels))
    if len(set(labs)) != len(labs):
        raise ValueError(f"labels contain duplicates: {labs}")
    return labs


def _to_ids(seq, labels: list[str], what: str) -> np.ndarray:
    arr = np.asarray(seq if not isinstance(seq, (list, tuple)) else list(seq))
    if arr.ndim != 1:
        arr = arr.ravel()
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() >= len(labels):
            raise ValueError(
                f"{what} ids must lie in [0, {len(labels)}), got range "
                f"[{arr.min()}, {arr.max()}]"
            )
        return arr.astype(np.int64)
    index = {lab: i for i, lab in enumerate(labels)}
    try:
        return np.fromiter((index[x] for x in arr.tolist()), dtype=np.int64, count=arr.size)
    except KeyError as exc:
        raise ValueError(f"{what} label {exc.args[0]!r} not in labels {labels}") from None


def confusion_matrix(gold_flat, pred_flat, labels) -> np.ndarray:
    """Token-level confusion matrix.

    Parameters
    ----------
    gold_flat, pred_flat : array_like, shape (n_tokens,)
        Labels of all tokens, either as strings or as integer ids indexing
        ``labels``.
    labels : sequence of str or LabelSet
        The label order of the rows and columns.

    Returns
    -------
    numpy.ndarray, int64, shape (len(labels), len(labels))
        ``M[i, j]`` = number of tokens with gold label ``labels[i]`` predicted as
        ``labels[j]`` (rows gold, columns predicted).
    """
    labs = _label_list(labels)
    g = _to_ids(gold_flat, labs, "gold")
    p = _to_ids(pred_flat, labs, "predicted")
    if g.shape != p.shape:
        raise ValueError(f"{g.size} gold labels but {p.size} predicted labels")
    L = len(labs)
    return np.bincount(g * L + p, minlength=L * L).reshape(L, L).astype(np.int64)


def token_scores(gold_flat, pred_flat, labels, ignore: str | None = "O") -> dict:
    """Token-level precision, recall and F1 per label, and averages.

    Parameters
    ----------
    gold_flat, pred_flat : array_like, shape (n_tokens,)
        Labels of all tokens, either both as strings or as integer ids indexing
        ``labels`` (each argument is interpreted by its dtype).
    labels : sequence of str or LabelSet
        All labels, in display order.
    ignore : str or None, optional
        Label excluded from the averages (default ``"O"``); it is still reported
        in ``per_label``.

    Returns
    -------
    dict
        ``{"per_label": {label: {"precision", "recall", "f1", "support",
        "predicted", "correct"}}, "micro": {...}, "macro": {...},
        "accuracy": float, "ignore": ignore}``. ``micro`` pools the counts of all
        labels except ``ignore`` (correct = tokens whose gold label is not
        ``ignore`` and is predicted exactly; predicted = tokens predicted as a
        non-ignored label; support = tokens with a non-ignored gold label).
        ``macro`` averages P, R and F1 of those labels (its counts are the micro
        counts). ``accuracy`` is over all tokens.
    """
    labs = _label_list(labels)
    cm = confusion_matrix(gold_flat, pred_flat, labs)
    tp = np.diag(cm)
    pred = cm.sum(axis=0)
    sup = cm.sum(axis=1)
    per = {lab: _prf(int(tp[i]), int(pred[i]), int(sup[i])) for i, lab in enumerate(labs)}
    keep = [i for i, lab in enumerate(labs) if lab != ignore]
    micro = _prf(int(tp[keep].sum()), int(pred[keep].sum()), int(sup[keep].sum()))
    macro = dict(micro)
    for key in ("precision", "recall", "f1"):
        macro[key] = float(np.mean([per[labs[i]][key] for i in keep])) if keep else 0.0
    n = int(cm.sum())
    return {
        "per_label": per,
        "micro": micro,
        "macro": macro,
        "accuracy": float(tp.sum()) / n if n else 0.0,
        "ignore": ignore,
    }


def _table(header: list[str], rows: list[list[str]], rule_before: set[int] = frozenset()) -> str:
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]

    def fmt(r):
        first = r[0].ljust(widths[0])
        rest = [r[c].rjust(widths[c]) for c in range(1, len(r))]
        return "  ".join([first] + rest).rstrip()

    rule = "-" * len(fmt(header))
    lines = [fmt(header), rule]
    for k, r in enumerate(rows):
        if k in rule_before:
            lines.append(rule)
        lines.append(fmt(r))
    return "\n".join(lines)


def _score_row(name: str, s: dict) -> list[str]:
    return [name, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}",
            str(s["support"]), str(s["predicted"])]


_HEADER = ["", "precision", "recall", "f1", "support", "predicted"]


def format_token_table(scores: dict) -> str:
    """Format :func:`token_scores` output as an aligned plain-text table."""
    rows = [_score_row(lab, s) for lab, s in scores["per_label"].items()]
    ign = scores.get("ignore")
    suffix = f" (excl. {ign})" if ign is not None else ""
    n = len(rows)
    rows.append(_score_row("micro avg" + suffix, scores["micro"]))
    rows.append(_score_row("macro avg" + suffix, scores["macro"]))
    table = _table(["label"] + _HEADER[1:], rows, {n})
    return table + f"\naccuracy (all tokens): {scores['accuracy']:.4f}"


def format_entity_table(scores: dict) -> str:
    """Format :func:`entity_scores` output as an aligned plain-text table."""
    rows = [_score_row(t, s) for t, s in scores["per_type"].items()]
    n = len(rows)
    rows.append(_score_row("overall", scores))
    return _table(["entity type"] + _HEADER[1:], rows, {n})


def format_confusion(matrix: np.ndarray, labels) -> str:
    """Format a confusion matrix (rows gold, columns predicted) as a plain-text table."""
    labs = _label_list(labels)
    m = np.asarray(matrix)
    if m.shape != (len(labs), len(labs)):
        raise ValueError(f"matrix shape {m.shape} does not match {len(labs)} labels")
    header = ["gold \\ pred"] + labs
    rows = [[labs[i]] + [str(int(v)) for v in m[i]] for i in range(len(labs))]
    return _table(header, rows)
