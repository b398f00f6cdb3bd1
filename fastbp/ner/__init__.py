"""Window-classification named-entity recognition (CS224N lecture 3) on fastbp.

* :mod:`~fastbp.ner.data` -- CoNLL reading/writing, label-scheme detection
* :mod:`~fastbp.ner.vocab` -- :class:`Vocab`, casing features, :class:`LabelSet`
* :mod:`~fastbp.ner.windows` -- :class:`WindowFeaturizer`
* :mod:`~fastbp.ner.glove` -- pretrained word vectors
* :mod:`~fastbp.ner.metrics` -- entity/token scores, confusion matrix, text tables
* :mod:`~fastbp.ner.synthetic` -- a deterministic synthetic corpus for demos
* :mod:`~fastbp.ner.model` -- :class:`WindowClassifier`, :class:`BinaryWindowClassifier`
* :mod:`~fastbp.ner.train` -- :func:`train`, :func:`evaluate`, :func:`make_dataset`
* :mod:`~fastbp.ner.io` -- :func:`save_model`, :func:`load_model` (model directories)
* :mod:`~fastbp.ner.stream` -- :class:`Tagger`, :func:`tag_sentences` (streaming prediction,
  worker processes)

The data tools are plain Python + numpy; the models run on the autodiff engine.
"""

from .data import SCHEMES, ConllFormatError, Sentence, detect_scheme, read_conll, write_conll
from .glove import VectorFormatError, load_vectors, read_vector_words
from .metrics import (
    chunks,
    confusion_matrix,
    entity_scores,
    format_confusion,
    format_entity_table,
    format_token_table,
    token_scores,
)
from .synthetic import generate_corpus
from .vocab import BOS, CASING, EOS, UNK, LabelSet, Vocab, casing_id, casing_ids, normalize_word
from .windows import WindowFeaturizer, sentence_lengths, split
from .model import BinaryWindowClassifier, WindowClassifier  # noqa: E402  (engine users last)
from .train import evaluate, make_dataset, train  # noqa: E402
from .io import ModelFormatError, load_model, save_model  # noqa: E402
from .stream import Tagger, TextFormatError, read_token_lines, tag_sentences  # noqa: E402

__all__ = [
    "SCHEMES", "ConllFormatError", "Sentence", "detect_scheme", "read_conll", "write_conll",
    "VectorFormatError", "load_vectors", "read_vector_words",
    "chunks", "confusion_matrix", "entity_scores", "format_confusion",
    "format_entity_table", "format_token_table", "token_scores",
    "generate_corpus",
    "BOS", "CASING", "EOS", "UNK", "LabelSet", "Vocab", "casing_id", "casing_ids",
    "normalize_word",
    "WindowFeaturizer", "sentence_lengths", "split",
    "WindowClassifier", "BinaryWindowClassifier", "train", "evaluate", "make_dataset",
    "ModelFormatError", "load_model", "save_model",
    "Tagger", "TextFormatError", "read_token_lines", "tag_sentences",
]
