"""Tests of NER metrics on hand-computed examples."""

import numpy as np
import pytest

from fastbp.ner import (
    LabelSet,
    chunks,
    confusion_matrix,
    entity_scores,
    format_confusion,
    format_entity_table,
    format_token_table,
    token_scores,
)


# --------------------------------------------------------------------------- chunks
def test_chunks_io():
    labels = ["PER", "PER", "O", "LOC", "ORG", "ORG", "O", "PER"]
    assert chunks(labels, "IO") == [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "ORG"), (7, 8, "PER")]
    assert chunks([], "IO") == []
    assert chunks(["O", "O"], "IO") == []
    assert chunks(["MISC"], "IO") == [(0, 1, "MISC")]


def test_chunks_bio_conlleval_rules():
    labels = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "O", "B-MISC"]
    assert chunks(labels, "BIO") == [
        (0, 2, "PER"),
        (3, 5, "LOC"),   # I-LOC after O starts a chunk (conlleval)
        (5, 6, "LOC"),   # B-LOC starts a new chunk even after LOC
        (6, 7, "ORG"),   # I-ORG after a LOC chunk starts a new chunk
        (8, 9, "MISC"),  # chunk at the sentence end
    ]
    assert chunks(["B-PER", "B-PER"], "BIO") == [(0, 1, "PER"), (1, 2, "PER")]
    assert chunks(["I-PER"], "BIO") == [(0, 1, "PER")]
    assert chunks(["B-PER", "I-LOC", "I-LOC"], "BIO") == [(0, 1, "PER"), (1, 3, "LOC")]
    with pytest.raises(ValueError, match="PER"):
        chunks(["O", "PER"], "BIO")
    with pytest.raises(ValueError, match="scheme"):
        chunks(["O"], "IOBES")


# --------------------------------------------------------------------------- entities
def test_entity_scores_io_hand_computed():
    gold = [
        ["PER", "PER", "O", "LOC", "O"],   # PER(0,2) LOC(3,4)
        ["ORG", "ORG", "O", "MISC"],       # ORG(0,2) MISC(3,4)
        ["O", "O"],                        # nothing
    ]
    pred = [
        ["PER", "O", "O", "LOC", "O"],     # PER(0,1) wrong span, LOC correct
        ["ORG", "ORG", "O", "PER"],        # ORG correct, PER wrong type
        ["LOC", "O"],                      # spurious LOC
    ]
    s = entity_scores(gold, pred, "IO")
    # gold 4 entities, predicted 5, correct 2 (LOC, ORG)
    assert (s["support"], s["predicted"], s["correct"]) == (4, 5, 2)
    assert s["precision"] == pytest.approx(2 / 5)
    assert s["recall"] == pytest.approx(2 / 4)
    assert s["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)  # 0.4444...
    pt = s["per_type"]
    assert list(pt) == ["LOC", "MISC", "ORG", "PER"]
    assert (pt["LOC"]["precision"], pt["LOC"]["recall"]) == (0.5, 1.0)
    assert pt["LOC"]["f1"] == pytest.approx(2 / 3)
    assert pt["ORG"]["f1"] == 1.0
    assert pt["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                          "support": 1, "predicted": 0, "correct": 0}
    assert (pt["PER"]["f1"], pt["PER"]["support"], pt["PER"]["predicted"]) == (0.0, 1, 2)
    assert s["scheme"] == "IO"
    assert entity_scores(gold, pred)["f1"] == pytest.approx(s["f1"])  # scheme detected


def test_entity_scores_bio_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]           # PER(0,2) LOC(3,4)
    pred = [["I-PER", "I-PER", "O", "B-LOC"]]           # PER(0,2) by the I-after-O rule, LOC
    s = entity_scores(gold, pred, "BIO")
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    pred = [["B-PER", "B-PER", "O", "O"]]               # PER(0,1) PER(1,2): both wrong
    s = entity_scores(gold, pred)
    assert s["scheme"] == "BIO"
    assert (s["correct"], s["predicted"], s["support"]) == (0, 2, 2)
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)  # F1 = 0 when P+R = 0


def test_entity_scores_empty_and_errors():
    s = entity_scores([["O"]], [["O"]], "IO")
    assert (s["precision"], s["recall"], s["f1"], s["support"]) == (0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="sentence 1"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]], "IO")
    with pytest.raises(ValueError, match="sentences"):
        entity_scores([["O"]], [], "IO")


# --------------------------------------------------------------------------- tokens
LABELS = ["O", "PER", "LOC"]
GOLD = ["O", "PER", "PER", "LOC", "O", "LOC"]
PRED = ["O", "PER", "O", "LOC", "PER", "PER"]


def test_token_scores_hand_computed():
    s = token_scores(GOLD, PRED, LABELS)
    per = s["per_label"]
    # PER: correct 1 (pos 1), predicted 3 (1, 4, 5), gold 2 (1, 2)
    assert per["PER"]["precision"] == pytest.approx(1 / 3)
    assert per["PER"]["recall"] == pytest.approx(1 / 2)
    assert per["PER"]["f1"] == pytest.approx(0.4)
    # LOC: correct 1 (pos 3), predicted 1, gold 2 (3, 5)
    assert (per["LOC"]["precision"], per["LOC"]["recall"]) == (1.0, 0.5)
    assert per["LOC"]["f1"] == pytest.approx(2 / 3)
    # O is reported but excluded from the averages
    assert (per["O"]["precision"], per["O"]["recall"], per["O"]["support"]) == (0.5, 0.5, 2)
    # micro over PER+LOC: correct 2, predicted 4, gold 4
    m = s["micro"]
    assert (m["correct"], m["predicted"], m["support"]) == (2, 4, 4)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert s["macro"]["precision"] == pytest.approx((1 / 3 + 1) / 2)
    assert s["macro"]["recall"] == pytest.approx(0.5)
    assert s["macro"]["f1"] == pytest.approx((0.4 + 2 / 3) / 2)
    assert s["accuracy"] == pytest.approx(3 / 6)


def test_token_scores_ids_and_labelset():
    ls = LabelSet(LABELS)
    g = ls.ids(GOLD)
    p = np.asarray(ls.ids(PRED), dtype=np.int64)
    a = token_scores(GOLD, PRED, LABELS)
    b = token_scores(g, p, ls)
    assert a == b
    s = token_scores(GOLD, PRED, LABELS, ignore=None)
    assert s["micro"]["f1"] == pytest.approx(0.5)  # every token counted: 3/6
    with pytest.raises(ValueError, match="MISC"):
        token_scores(["MISC"], ["O"], LABELS)
    with pytest.raises(ValueError, match="ids"):
        token_scores(np.array([3]), np.array([0]), LABELS)


def test_confusion_matrix_hand_computed():
    m = confusion_matrix(GOLD, PRED, LABELS)
    assert m.dtype == np.int64
    assert m.tolist() == [
        [1, 1, 0],  # gold O:   pos 0 -> O, pos 4 -> PER
        [1, 1, 0],  # gold PER: pos 2 -> O, pos 1 -> PER
        [0, 1, 1],  # gold LOC: pos 5 -> PER, pos 3 -> LOC
    ]
    assert confusion_matrix([], [], LABELS).tolist() == [[0] * 3] * 3
    with pytest.raises(ValueError):
        confusion_matrix(["O"], ["O", "O"], LABELS)


# --------------------------------------------------------------------------- tables
def test_tables_are_aligned_text():
    t = format_token_table(token_scores(GOLD, PRED, LABELS))
    lines = t.splitlines()
    assert lines[0].split() == ["label", "precision", "recall", "f1", "support", "predicted"]
    assert any(line.startswith("PER") and "0.3333" in line and "0.4000" in line for line in lines)
    assert any(line.startswith("micro avg") and "0.5000" in line for line in lines)
    assert "accuracy" in lines[-1]

    e = format_entity_table(entity_scores([["PER", "O"]], [["PER", "LOC"]], "IO"))
    lines = e.splitlines()
    assert lines[0].split()[:2] == ["entity", "type"]
    assert lines[-1].split() == ["overall", "0.5000", "1.0000", "0.6667", "1", "2"]
    # numeric columns are right-aligned: all rows of equal length or shorter header
    body = [line for line in lines if not line.startswith("-")]
    assert len({len(line) for line in body}) == 1

    c = format_confusion(confusion_matrix(GOLD, PRED, LABELS), LABELS)
    lines = c.splitlines()
    assert lines[0].split() == ["gold", "\\", "pred", "O", "PER", "LOC"]
    assert lines[2].split() == ["O", "1", "1", "0"]
    assert lines[4].split() == ["LOC", "0", "1", "1"]
    with pytest.raises(ValueError):
        format_confusion(np.zeros((2, 2)), LABELS)
