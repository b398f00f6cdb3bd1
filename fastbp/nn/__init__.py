"""Neural-network building blocks after ``torch.nn``: :class:`Module` (parameters and
sub-modules registered by attribute assignment, dotted names, ``state_dict``), the layers
:class:`Linear`, :class:`Embedding`, :class:`Tanh`, :class:`Sigmoid`, :class:`ReLU`,
:class:`Dropout`, and :class:`Sequential`::

    import fastbp as fb
    from fastbp import nn

    model = nn.Sequential(nn.Linear(4, 16, rng=0), nn.Tanh(), nn.Linear(16, 3, rng=1))
    opt = fb.optim.SGD(model.parameters(), lr=0.1)
    loss = fb.cross_entropy(model(fb.Tensor(X)), y)
    opt.zero_grad(); loss.backward(); opt.step()
    fb.save(model.state_dict(), "mlp.npz")

Initialisation follows PyTorch's defaults (see :mod:`fastbp.nn.init`), seeded by each
layer's ``rng`` argument.
"""

from ..tensor import Parameter
from . import init
from .layers import Dropout, Embedding, Linear, ReLU, Sigmoid, Tanh
from .module import IncompatibleKeys, Module, Sequential, StateDictError

__all__ = [
    "Module",
    "Sequential",
    "Parameter",
    "Linear",
    "Embedding",
    "Tanh",
    "Sigmoid",
    "ReLU",
    "Dropout",
    "StateDictError",
    "IncompatibleKeys",
    "init",
]
