"""Window-classification NER models built on fastbp's graph API (CS224N lecture 3).

Each example is a window of token ids (the featurizer's ``width`` ids: the words of the
window, then their casing classes, all rows of one shared embedding table ``E``)::

    x = concat(E[ids[:, 0]], ..., E[ids[:, width-1]])     (B, width*d)
    h = f(x @ W + b)                                      (B, H)    f = tanh | relu | sigmoid
    h = dropout(h, p)                                     (training only)
    multi-class:  logits = h @ U + c                      (B, C)    softmax cross-entropy
    binary:       s = h @ u                               (B,)      sigmoid / BCE

All parameters share one dtype (float32 by default, float64 supported); nothing is
upcast.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

import fastbp as fb

__all__ = [
    "ACTIVATIONS",
    "WindowClassifier",
    "BinaryWindowClassifier",
    "glorot_uniform",
]

ACTIVATIONS = ("tanh", "relu", "sigmoid")
_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_ACT_FN = {"tanh": fb.tanh, "relu": fb.relu, "sigmoid": fb.sigmoid}


def _as_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _DTYPES.values():
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def glorot_uniform(rng, fan_in, fan_out, dtype, shape=None):
    """Xavier/Glorot uniform init: U(-a, a) with ``a = sqrt(6 / (fan_in + fan_out))``."""
    a = math.sqrt(6.0 / (fan_in + fan_out))
    shape = (fan_in, fan_out) if shape is None else shape
    return rng.uniform(-a, a, size=shape).astype(dtype)


def _check_pos_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _WindowBase:
    """Shared plumbing: embedding + hidden layer, parameters and state dicts."""

    #: names of the parameters in state-dict order (set by subclasses)
    param_names: tuple = ()

    def __init__(
        self,
        n_rows,
        width,
        embed_dim=50,
        hidden=200,
        activation="relu",
        dropout=0.0,
        dtype="float32",
        rng=None,
        embeddings=None,
    ):
        self.n_rows = _check_pos_int("n_rows", n_rows)
        self.width = _check_pos_int("width", width)
        self.hidden = _check_pos_int("hidden", hidden)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        dropout = float(dropout)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = dropout
        self.dtype = _as_dtype(dtype)
        rng = np.random.default_rng(0) if rng is None else rng
        if embeddings is not None:
            emb = np.asarray(embeddings)
            if emb.ndim != 2:
                raise ValueError(f"embeddings must be a 2-D (n_rows, d) array, got {emb.shape}")
            if emb.shape[0] != self.n_rows:
                raise ValueError(
                    f"embeddings have {emb.shape[0]} rows but the featurizer needs "
                    f"{self.n_rows}"
                )
            embed_dim = emb.shape[1]
            E = np.ascontiguousarray(emb, dtype=self.dtype).copy()
        else:
            embed_dim = _check_pos_int("embed_dim", embed_dim)
            E = None
        self.embed_dim = int(embed_dim)
        d, H = self.embed_dim, self.hidden
        if E is None:
            # N(0, 0.1^2)-ish, the scale of pretrained 50-d GloVe coordinates (~0.4 std is
            # also fine); small enough that the first layer starts in its linear regime.
            E = (rng.standard_normal((self.n_rows, d)) * 0.1).astype(self.dtype)
        fan_in = self.width * d
        self.E = fb.Parameter(E)
        self.W = fb.Parameter(glorot_uniform(rng, fan_in, H, self.dtype))
        self.b = fb.Parameter(np.zeros(H, self.dtype))
        self._act = _ACT_FN[activation]

    # ------------------------------------------------------------------ graph
    def _check_ids(self, ids):
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[1] != self.width:
            raise ValueError(
                f"ids must have shape (B, {self.width}) (one window per row), got {ids.shape}"
            )
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be an integer array, got dtype {ids.dtype}")
        return ids

    def _hidden(self, ids, train=False, rng=None):
        x = fb.embedding(self.E, ids)
        h = self._act(fb.linear(x, self.W, self.b))
        if train and self.dropout > 0.0:
            if rng is None:
                raise ValueError("training with dropout needs an rng (np.random.Generator)")
            h = fb.dropout(h, self.dropout, True, rng)
        return h

    # ------------------------------------------------------------------ parameters
    def parameters(self):
        """The parameters, in :attr:`param_names` order (``E`` first)."""
        return [getattr(self, n) for n in self.param_names]

    def named_parameters(self):
        return [(n, getattr(self, n)) for n in self.param_names]

    def param_shapes(self):
        """Expected shape of each parameter, by name."""
        raise NotImplementedError

    def state_dict(self):
        """An ordered mapping name -> numpy array (copies)."""
        return OrderedDict((n, getattr(self, n).data.copy()) for n in self.param_names)

    def load_state_dict(self, state):
        """Copy arrays into the parameters after checking names, shapes and dtypes
        (ValueError naming the first problem; nothing is modified on error)."""
        names = set(state)
        expected = set(self.param_names)
        if names != expected:
            missing = sorted(expected - names)
            extra = sorted(names - expected)
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("unexpected " + ", ".join(extra))
            raise ValueError("state dict does not match the model: " + "; ".join(parts))
        shapes = self.param_shapes()
        for n in self.param_names:
            arr = np.asarray(state[n])
            if arr.shape != shapes[n]:
                raise ValueError(
                    f"parameter {n!r}: shape {arr.shape} in the state dict, the model needs "
                    f"{shapes[n]}"
                )
            if arr.dtype != self.dtype:
                raise ValueError(
                    f"parameter {n!r}: dtype {arr.dtype} in the state dict, the model is "
                    f"{self.dtype}"
                )
        for n in self.param_names:
            p = getattr(self, n)
            np.copyto(p.data, np.asarray(state[n]))

    def config(self):
        """Hyper-parameters (JSON-able) from which :meth:`from_config` rebuilds the model."""
        return {
            "type": self.kind,
            "n_rows": self.n_rows,
            "width": self.width,
            "embed_dim": self.embed_dim,
            "hidden": self.hidden,
            "activation": self.activation,
            "dropout": self.dropout,
            "dtype": self.dtype.name,
        }

    def n_params(self):
        return int(sum(p.data.size for p in self.parameters()))


class WindowClassifier(_WindowBase):
    """Multi-class window classifier: softmax over ``n_classes`` labels of the centre word.

    Parameters
    ----------
    n_rows : int
        Rows of the shared embedding table (the featurizer's ``n_rows``).
    width : int
        Ids per window (the featurizer's ``width``).
    n_classes : int
        Number of labels.
    embed_dim : int
        Embedding size ``d`` (ignored when ``embeddings`` is given).
    hidden : int
        Hidden size ``H``.
    activation : {"tanh", "relu", "sigmoid"}
    dropout : float
        Dropout probability on the hidden layer during training.
    dtype : "float32" or "float64"
    rng : numpy.random.Generator
        Source of the initial weights (seed it for reproducibility).
    embeddings : array (n_rows, d), optional
        Initial embedding table (e.g. pretrained GloVe rows plus random casing rows).
    """

    kind = "window"
    param_names = ("E", "W", "b", "U", "c")

    def __init__(self, n_rows, width, n_classes, embed_dim=50, hidden=200, activation="relu",
                 dropout=0.0, dtype="float32", rng=None, embeddings=None):
        rng = np.random.default_rng(0) if rng is None else rng
        super().__init__(n_rows, width, embed_dim, hidden, activation, dropout, dtype, rng,
                         embeddings)
        self.n_classes = _check_pos_int("n_classes", n_classes, 2)
        self.U = fb.Parameter(glorot_uniform(rng, self.hidden, self.n_classes, self.dtype))
        self.c = fb.Parameter(np.zeros(self.n_classes, self.dtype))

    def param_shapes(self):
        return {
            "E": (self.n_rows, self.embed_dim),
            "W": (self.width * self.embed_dim, self.hidden),
            "b": (self.hidden,),
            "U": (self.hidden, self.n_classes),
            "c": (self.n_classes,),
        }

    def config(self):
        cfg = super().config()
        cfg["n_classes"] = self.n_classes
        return cfg

    @classmethod
    def from_config(cls, cfg, rng=None):
        return cls(cfg["n_rows"], cfg["width"], cfg["n_classes"], embed_dim=cfg["embed_dim"],
                   hidden=cfg["hidden"], activation=cfg["activation"],
                   dropout=cfg["dropout"], dtype=cfg["dtype"], rng=rng)

    def forward(self, ids, train=False, rng=None):
        """Logits (B, C) of the windows ``ids`` (B, width); dropout only when ``train``."""
        ids = self._check_ids(ids)
        h = self._hidden(ids, train, rng)
        return fb.linear(h, self.U, self.c)

    def loss(self, ids, y, rng=None):
        """Mean softmax cross-entropy of the training-mode forward pass (a 0-d Tensor)."""
        return fb.cross_entropy(self.forward(ids, True, rng), np.asarray(y))

    def predict_logits(self, ids, batch_size=8192):
        """Logits (N, C) as a numpy array, evaluated in batches without recording a graph."""
        ids = self._check_ids(ids)
        out = np.empty((ids.shape[0], self.n_classes), self.dtype)
        with fb.no_grad():
            for s in range(0, ids.shape[0], batch_size):
                out[s:s + batch_size] = self.forward(ids[s:s + batch_size]).data
        return out

    def predict(self, ids, batch_size=8192):
        """Predicted class ids (N,) (int64)."""
        return self.predict_logits(ids, batch_size).argmax(axis=1).astype(np.int64)

    def predict_proba(self, ids, batch_size=8192):
        """Softmax probabilities (N, C)."""
        z = self.predict_logits(ids, batch_size)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z


class BinaryWindowClassifier(_WindowBase):
    """The lecture's binary window classifier: ``s = u^T f(W x + b)``, trained with
    sigmoid / binary cross-entropy to answer "is the centre word a <positive label>?"
    (e.g. LOC). Targets are 1 where the gold label id equals ``positive``.

    Parameters are those of :class:`WindowClassifier` except ``n_classes``, plus
    ``positive`` (the class id treated as the positive class; stored with the model).
    """

    kind = "binary"
    param_names = ("E", "W", "b", "u")

    def __init__(self, n_rows, width, positive=0, embed_dim=50, hidden=200,
                 activation="relu", dropout=0.0, dtype="float32", rng=None, embeddings=None):
        rng = np.random.default_rng(0) if rng is None else rng
        super().__init__(n_rows, width, embed_dim, hidden, activation, dropout, dtype, rng,
                         embeddings)
        self.positive = _check_pos_int("positive", positive, 0)
        self.u = fb.Parameter(glorot_uniform(rng, self.hidden, 1, self.dtype, (self.hidden,)))

    def param_shapes(self):
        return {
            "E": (self.n_rows, self.embed_dim),
            "W": (self.width * self.embed_dim, self.hidden),
            "b": (self.hidden,),
            "u": (self.hidden,),
        }

    def config(self):
        cfg = super().config()
        cfg["positive"] = self.positive
        return cfg

    @classmethod
    def from_config(cls, cfg, rng=None):
        return cls(cfg["n_rows"], cfg["width"], positive=cfg["positive"],
                   embed_dim=cfg["embed_dim"], hidden=cfg["hidden"],
                   activation=cfg["activation"], dropout=cfg["dropout"], dtype=cfg["dtype"],
                   rng=rng)

    def targets(self, y):
        """0/1 targets (model dtype) from gold class ids: 1 where ``y == positive``."""
        return (np.asarray(y) == self.positive).astype(self.dtype)

    def forward(self, ids, train=False, rng=None):
        """Scores ``s`` (B,) of the windows ``ids`` (B, width)."""
        ids = self._check_ids(ids)
        h = self._hidden(ids, train, rng)
        return h @ self.u

    def loss(self, ids, y, rng=None):
        """Mean binary cross-entropy; ``y`` are class ids (converted with :meth:`targets`)."""
        return fb.binary_cross_entropy_with_logits(self.forward(ids, True, rng), self.targets(y))

    def predict_scores(self, ids, batch_size=8192):
        ids = self._check_ids(ids)
        out = np.empty(ids.shape[0], self.dtype)
        with fb.no_grad():
            for s in range(0, ids.shape[0], batch_size):
                out[s:s + batch_size] = self.forward(ids[s:s + batch_size]).data
        return out

    def predict(self, ids, batch_size=8192):
        """True where the centre word is predicted to be of the positive class."""
        return self.predict_scores(ids, batch_size) > 0


MODEL_TYPES = {"window": WindowClassifier, "binary": BinaryWindowClassifier}
