"""Type stub for the reductions kernels of fastbp (:mod:`fastbp_ext._reductions`).

Arrays are float32 or float64 numpy arrays of one dtype per call. Ops taking
``out``/``beta`` write ``out = result + beta * out`` and return ``out``. ``axis`` is None
(every element) or an int in ``[-ndim, ndim)``; ``reduce_sum`` also takes a tuple.
"""

from typing import SupportsIndex

import numpy as np
from numpy.typing import NDArray

_F = NDArray[np.floating]
_Beta = float
_Axis = SupportsIndex | None

__all__: list[str]

# sums and broadcasting adjoints
def reduce_sum(X: _F, axis: SupportsIndex | tuple[SupportsIndex, ...] | None = None,
               keepdims: bool = False) -> _F: ...
def unbroadcast(dY: _F, shape: tuple[int, ...], out: _F | None = None,
                beta: _Beta = 0.0) -> _F: ...
def backprop_bias(dY: _F, out: _F | None = None, beta: _Beta = 0.0) -> _F: ...
def expand(dY: _F, shape: tuple[int, ...], out: _F | None = None,
           beta: _Beta = 0.0) -> _F: ...

# max
def reduce_max(X: _F, axis: _Axis = None, keepdims: bool = False) -> _F: ...
def backprop_reduce_max(dY: _F, X: _F, Y: _F, axis: _Axis = None, keepdims: bool = False,
                        out: _F | None = None, beta: _Beta = 0.0) -> _F: ...

# logsumexp
def logsumexp(X: _F, axis: _Axis = -1, keepdims: bool = False) -> _F: ...
def backprop_logsumexp(dY: _F, X: _F, Y: _F, axis: _Axis = -1, keepdims: bool = False,
                       out: _F | None = None, beta: _Beta = 0.0) -> _F: ...

# softmax
def softmax(X: _F, axis: _Axis = -1, out: _F | None = None) -> _F: ...
def backprop_softmax(dY: _F, Y: _F, axis: _Axis = -1, out: _F | None = None,
                     beta: _Beta = 0.0) -> _F: ...
def log_softmax(X: _F, axis: _Axis = -1, out: _F | None = None) -> _F: ...
def backprop_log_softmax(dY: _F, Y: _F, axis: _Axis = -1, out: _F | None = None,
                         beta: _Beta = 0.0) -> _F: ...
