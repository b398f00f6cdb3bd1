"""Layers: :class:`Linear`, :class:`Embedding`, the activations and :class:`Dropout`.

Every layer keeps one dtype (float32 by default, or float64) for its parameters and never
upcasts: feeding it a tensor of the other dtype raises TypeError.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import activations as _act
from .. import random as _random
from ..embedding import embedding as _embedding
from ..linalg import linear as _linear
from ..tensor import Parameter, Tensor
from . import init
from .module import Module

__all__ = ["Linear", "Embedding", "Tanh", "Sigmoid", "ReLU", "Dropout"]


def _size(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Linear(Module):
    """The affine map ``y = x W^T + b`` (the lecture's ``z = Wx + b`` for each row ``x``).

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input row and each output row.
    bias : bool
        Whether to learn ``b`` (``bias`` is None otherwise).
    dtype : float32 or float64
        Dtype of the parameters (and of the inputs it accepts).
    rng : int, numpy.random.Generator or None
        Source of the initial weights; an int seeds a new generator. None draws from a
        fresh unseeded generator (not reproducible).

    Attributes
    ----------
    weight : Parameter
        ``(out_features, in_features)``: row ``i`` holds the weights of output ``i``, the
        lecture's ``W`` and PyTorch's layout, so a PyTorch ``nn.Linear`` ``state_dict()``
        loads as it is.
    bias : Parameter or None
        ``(out_features,)``.

    Notes
    -----
    Initialisation is PyTorch's default: ``weight`` and ``bias`` are drawn from
    ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` (``kaiming_uniform_`` with
    ``a = sqrt(5)``; see :func:`fastbp.nn.init.linear_uniform`), weight first.

    The forward pass is one fused BLAS call (``gemm`` on the transposed weight, writing
    into an output pre-filled with the bias; no copy of ``W``):
    ``fb.linear(x, weight, bias, weight_layout="out_in")``. Its backward writes
    ``dx = g W`` and ``dW = g^T x`` straight into the gradient buffers. Inputs are
    ``(n, in_features)``; a 1-D ``(in_features,)`` input gives ``(out_features,)`` and
    ``(..., in_features)`` gives ``(..., out_features)`` (reshaped views around the same
    call).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        self.in_features = _size("in_features", in_features)
        self.out_features = _size("out_features", out_features)
        dt = init.as_dtype(dtype)
        rng = init.as_rng(rng)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(init.linear_uniform(rng, shape, self.in_features, dt))
        if bias:
            self.bias = Parameter(init.linear_uniform(rng, (self.out_features,),
                                                      self.in_features, dt))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"Linear expects a fastbp Tensor, got {type(x).__name__}")
        if x.ndim == 2:
            return _linear(x, self.weight, self.bias, weight_layout="out_in")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): input of shape "
                             f"{x.shape} (the last axis must be {self.in_features})")
        lead = x.shape[:-1]
        y = _linear(x.reshape(-1, self.in_features), self.weight, self.bias,
                    weight_layout="out_in")
        return y.reshape(*lead, self.out_features)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, looked up by id.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
        Rows ``V`` and columns ``d`` of the table.
    dtype : float32 or float64
    rng : int, numpy.random.Generator or None
        Source of the initial table (see :class:`Linear`).

    Attributes
    ----------
    weight : Parameter
        ``(num_embeddings, embedding_dim)``; its gradient is row-sparse
        (:class:`~fastbp.RowSparseGrad`: only the rows that were looked up), which the
        optimisers update sparsely.

    Notes
    -----
    Initialisation is PyTorch's default, ``N(0, 1)``; to start from pretrained vectors
    copy them in: ``emb.weight.data[...] = vectors``.

    Unlike ``torch.nn.Embedding``, window ids ``(B, w)`` give ``(B, w*d)``: the ``w``
    vectors of each window concatenated (the lecture's ``x = [x_{t-2}, ..., x_{t+2}]``);
    ids ``(n,)`` give ``(n, d)``.
    """

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32, rng=None):
        super().__init__()
        self.num_embeddings = _size("num_embeddings", num_embeddings, 1)
        self.embedding_dim = _size("embedding_dim", embedding_dim, 1)
        dt = init.as_dtype(dtype)
        rng = init.as_rng(rng)
        self.weight = Parameter(
            init.normal(rng, (self.num_embeddings, self.embedding_dim), 1.0, dt))

    def forward(self, ids):
        return _embedding(self.weight, ids)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class _Activation(Module):
    _fn = None

    def forward(self, x):
        return type(self)._fn(x)


class Tanh(_Activation):
    """Elementwise ``tanh`` (backward ``dY * (1 - Y^2)``)."""

    _fn = staticmethod(_act.tanh)


class Sigmoid(_Activation):
    """Elementwise logistic sigmoid (backward ``dY * Y * (1 - Y)``)."""

    _fn = staticmethod(_act.sigmoid)


class ReLU(_Activation):
    """Elementwise ``max(x, 0)`` (backward ``dY * [Y > 0]``)."""

    _fn = staticmethod(_act.relu)


class Dropout(Module):
    """Inverted dropout in training mode: each element is zeroed with probability ``p``
    and the others are scaled by ``1 / (1 - p)``; the identity in evaluation mode
    (:meth:`~Module.eval`) or when ``p == 0``.

    Parameters
    ----------
    p : float
        Drop probability, in ``[0, 1)``.
    rng : fastbp.Generator, int, numpy.random.SeedSequence, numpy.random.Generator or None
        Source of the masks. A :class:`fastbp.Generator` is used as it is (shared with
        whoever else holds it); an int, a seed sequence or a numpy Generator seeds a new
        one (``fastbp.Generator(rng)``: reproducible training; a numpy Generator gives
        up one 64-bit draw); None draws from the default generator
        (:func:`fastbp.manual_seed`), as ``torch.nn.Dropout`` does. The masks are drawn
        inside the dropout kernel, so the layer works inside ``fb.compile``.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        p = float(p)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is None or isinstance(rng, _random.Generator) else (
            _random.Generator(rng))

    def forward(self, x, rng=None):
        """Apply dropout to ``x``; ``rng`` overrides the module's generator for this call."""
        return _act.dropout(x, self.p, self.training, self.rng if rng is None else rng)

    def extra_repr(self):
        return f"p={self.p}"
