"""Window-classification NER models built on :mod:`fastbp.nn` (CS224N lecture 3).

Each example is a window of token ids (the featurizer's ``width`` ids: the words of the
window, then their casing classes, all rows of one shared embedding table ``E``)::

    x = embedding(ids) = concat(E[ids[:, 0]], ..., E[ids[:, width-1]])    (B, width*d)
    h = act(hidden_layer(x)) = f(x W^T + b)    f = tanh | relu | sigmoid    (B, H)
    h = drop(h)                                                (training only)
    multi-class:  logits = output_layer(h) = h U^T + c    softmax x-entropy    (B, C)
    binary:       s = h u                                 sigmoid / BCE        (B,)

Both models are :class:`fastbp.nn.Module` instances: ``named_parameters()`` gives
``embedding.weight`` (n_rows, d), ``hidden_layer.weight`` (H, width*d) -- the lecture's
``W`` in ``z = Wx + b``, (out, in) as in PyTorch -- ``hidden_layer.bias`` (H,), then
``output_layer.weight`` (C, H) and ``output_layer.bias`` (C,) or ``u`` (H,). The
lecture's names are read-only aliases: ``model.E``, ``model.W``, ``model.b``,
``model.U``, ``model.c``.

Initialisation (seeded by ``rng``): ``E`` ~ N(0, 0.1^2) unless pretrained vectors are
given; ``W``, ``U`` and ``u`` Glorot-uniform (:func:`glorot_uniform`, drawn in the
historical (in, out) order so that a seed gives the same model as before the move to
``nn``); biases zero. All parameters share one dtype (float32 by default, float64
supported); nothing is upcast.

Model directories written before the move to ``nn`` (format version 1: parameters named
``E, W, b, U, c`` / ``u`` with ``W`` stored (in, out)) are converted on load by
:func:`state_from_v1`.
"""

from __future__ import annotations

import math

import numpy as np

import fastbp as fb
from fastbp import nn

__all__ = [
    "ACTIVATIONS",
    "WindowClassifier",
    "BinaryWindowClassifier",
    "glorot_uniform",
    "state_from_v1",
]

ACTIVATIONS = ("tanh", "relu", "sigmoid")
_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_ACT_MODULE = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


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


class _WindowBase(nn.Module):
    """Shared plumbing: embedding + hidden layer (+ dropout) as sub-modules."""

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
        super().__init__()
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
            E = np.ascontiguousarray(emb, dtype=self.dtype)
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
        # The layers' own (PyTorch) init is replaced by this model's: draw from a
        # throwaway stream, then copy the documented init in place.
        scratch = np.random.default_rng(0)
        self.embedding = nn.Embedding(self.n_rows, d, self.dtype, rng=scratch)
        self.embedding.weight.data[...] = E
        self.hidden_layer = nn.Linear(fan_in, H, dtype=self.dtype, rng=scratch)
        self.hidden_layer.weight.data[...] = glorot_uniform(rng, fan_in, H, self.dtype).T
        self.hidden_layer.bias.data[...] = 0
        self.act = _ACT_MODULE[activation]()
        # the dropout generator is seeded from a child of the init stream's seed sequence:
        # no draw is taken from rng, so the initial weights do not depend on it
        seq = getattr(rng.bit_generator, "seed_seq", None)
        self.drop = nn.Dropout(dropout, rng=seq.spawn(1)[0] if isinstance(
            seq, np.random.SeedSequence) else rng)

    # ------------------------------------------------------------------ the lecture's names
    @property
    def E(self):
        """The embedding table (n_rows, d): ``embedding.weight``."""
        return self.embedding.weight

    @property
    def W(self):
        """The hidden layer's weight (H, width*d), the lecture's ``W``:
        ``hidden_layer.weight``."""
        return self.hidden_layer.weight

    @property
    def b(self):
        """The hidden layer's bias (H,): ``hidden_layer.bias``."""
        return self.hidden_layer.bias

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

    def _hidden(self, ids, train=None, rng=None):
        h = self.act(self.hidden_layer(self.embedding(ids)))
        if self.training if train is None else train:
            drop = self.drop
            h = fb.dropout(h, drop.p, True, drop.rng if rng is None else rng)
        return h

    # ------------------------------------------------------------------ parameters
    def param_shapes(self):
        """Expected shape of each parameter, by dotted name."""
        return {n: p.shape for n, p in self.named_parameters()}

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

    def extra_repr(self):
        return f"kind={self.kind!r}, activation={self.activation!r}, dtype={self.dtype.name}"


class WindowClassifier(_WindowBase):
    """Multi-class window classifier: softmax over ``n_classes`` labels of the centre word.

    An :class:`fastbp.nn.Module` with sub-modules ``embedding`` (:class:`~fastbp.nn.Embedding`),
    ``hidden_layer`` (:class:`~fastbp.nn.Linear`), ``act``, ``drop`` and ``output_layer``
    (:class:`~fastbp.nn.Linear`); see the module docstring for the parameters and their
    initialisation.

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
        Source of the initial weights (seed it for reproducibility); the default source
        of dropout masks when :meth:`forward` gets no ``rng`` (``drop.rng``, a
        :class:`fastbp.Generator`) is seeded from a child of its seed sequence.
    embeddings : array (n_rows, d), optional
        Initial embedding table (e.g. pretrained GloVe rows plus random casing rows).
    """

    kind = "window"

    def __init__(self, n_rows, width, n_classes, embed_dim=50, hidden=200, activation="relu",
                 dropout=0.0, dtype="float32", rng=None, embeddings=None):
        rng = np.random.default_rng(0) if rng is None else rng
        super().__init__(n_rows, width, embed_dim, hidden, activation, dropout, dtype, rng,
                         embeddings)
        self.n_classes = _check_pos_int("n_classes", n_classes, 2)
        H, C = self.hidden, self.n_classes
        self.output_layer = nn.Linear(H, C, dtype=self.dtype, rng=np.random.default_rng(0))
        self.output_layer.weight.data[...] = glorot_uniform(rng, H, C, self.dtype).T
        self.output_layer.bias.data[...] = 0

    @property
    def U(self):
        """The output layer's weight (C, H): ``output_layer.weight``."""
        return self.output_layer.weight

    @property
    def c(self):
        """The output layer's bias (C,): ``output_layer.bias``."""
        return self.output_layer.bias

    def config(self):
        cfg = super().config()
        cfg["n_classes"] = self.n_classes
        return cfg

    @classmethod
    def from_config(cls, cfg, rng=None):
        return cls(cfg["n_rows"], cfg["width"], cfg["n_classes"], embed_dim=cfg["embed_dim"],
                   hidden=cfg["hidden"], activation=cfg["activation"],
                   dropout=cfg["dropout"], dtype=cfg["dtype"], rng=rng)

    def forward(self, ids, train=None, rng=None):
        """Logits (B, C) of the windows ``ids`` (B, width).

        Dropout is applied when ``train`` is True, or when it is None (the default) and the
        module is in training mode (:meth:`~fastbp.nn.Module.train`, the default;
        :meth:`~fastbp.nn.Module.eval` turns it off); ``rng`` gives the masks (default:
        the model's generator; a :class:`fastbp.Generator` or a numpy Generator, see
        :func:`fastbp.dropout`). :meth:`predict` and friends always run without dropout."""
        ids = self._check_ids(ids)
        h = self._hidden(ids, train, rng)
        return self.output_layer(h)

    def loss(self, ids, y, rng=None):
        """Mean softmax cross-entropy of the training-mode forward pass (a 0-d Tensor)."""
        return fb.cross_entropy(self.forward(ids, True, rng), np.asarray(y))

    def predict_logits(self, ids, batch_size=8192):
        """Logits (N, C) as a numpy array, evaluated in batches without recording a graph."""
        ids = self._check_ids(ids)
        out = np.empty((ids.shape[0], self.n_classes), self.dtype)
        with fb.no_grad():
            for s in range(0, ids.shape[0], batch_size):
                out[s:s + batch_size] = self.forward(ids[s:s + batch_size], False).data
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
    ``positive`` (the class id treated as the positive class; stored with the model). The
    score vector ``u`` (H,) is a parameter of the model itself (named ``"u"``).
    """

    kind = "binary"

    def __init__(self, n_rows, width, positive=0, embed_dim=50, hidden=200,
                 activation="relu", dropout=0.0, dtype="float32", rng=None, embeddings=None):
        rng = np.random.default_rng(0) if rng is None else rng
        super().__init__(n_rows, width, embed_dim, hidden, activation, dropout, dtype, rng,
                         embeddings)
        self.positive = _check_pos_int("positive", positive, 0)
        self.u = fb.Parameter(glorot_uniform(rng, self.hidden, 1, self.dtype, (self.hidden,)))

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

    def forward(self, ids, train=None, rng=None):
        """Scores ``s`` (B,) of the windows ``ids`` (B, width); dropout as in
        :meth:`WindowClassifier.forward`."""
        ids = self._check_ids(ids)
        h = self._hidden(ids, train, rng)
        return h @ self.u

    def loss(self, ids, y, rng=None):
        """Mean binary cross-entropy; ``y`` are class ids (converted with :meth:`targets`)
        or, as a float array of the model's dtype, the 0/1 targets themselves."""
        y = np.asarray(y)
        t = y if y.dtype == self.dtype else self.targets(y)
        return fb.binary_cross_entropy_with_logits(self.forward(ids, True, rng), t)

    def predict_scores(self, ids, batch_size=8192):
        ids = self._check_ids(ids)
        out = np.empty(ids.shape[0], self.dtype)
        with fb.no_grad():
            for s in range(0, ids.shape[0], batch_size):
                out[s:s + batch_size] = self.forward(ids[s:s + batch_size], False).data
        return out

    def predict(self, ids, batch_size=8192):
        """True where the centre word is predicted to be of the positive class."""
        return self.predict_scores(ids, batch_size) > 0


MODEL_TYPES = {"window": WindowClassifier, "binary": BinaryWindowClassifier}

#: Format-version-1 parameter names -> (dotted name, stored transposed in version 1).
V1_NAMES = {
    "E": ("embedding.weight", False),
    "W": ("hidden_layer.weight", True),
    "b": ("hidden_layer.bias", False),
    "U": ("output_layer.weight", True),
    "c": ("output_layer.bias", False),
    "u": ("u", False),
}


def state_from_v1(state):
    """Convert a state dict of a version-1 model directory (``E, W, b, U, c`` or
    ``E, W, b, u``, with ``W`` (width*d, H) and ``U`` (H, C)) to the dotted names and
    (out, in) layouts of the module-based models. Unknown names raise KeyError."""
    out = {}
    for old, arr in state.items():
        new, transpose = V1_NAMES[old]
        out[new] = np.ascontiguousarray(arr.T) if transpose else arr
    return out
