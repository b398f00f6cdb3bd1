"""Type stub for the compiled kernels of fastbp (:mod:`fastbp_ext._kernels`).

Arrays are float32 or float64 numpy arrays of one dtype per call; ids are integer arrays.
Ops taking ``out``/``beta`` write ``out = result + beta * out`` and return ``out``.
"""

from typing import SupportsIndex

import numpy as np
from numpy.typing import NDArray

_F = NDArray[np.floating]
_Beta = float

BOUNDSCHECK: bool
LIBMVEC: bool

class UnsupportedBroadcast(ValueError): ...

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...

# elementwise
def add(X: _F, Y: _F) -> _F: ...
def sub(X: _F, Y: _F) -> _F: ...
def mul(X: _F, Y: _F) -> _F: ...
def add_bias(X: _F, b: _F) -> _F: ...
def reduce_sum(X: _F, axis: SupportsIndex | tuple[SupportsIndex, ...] | None = None,
               keepdims: bool = False) -> _F: ...
def unbroadcast(dY: _F, shape: tuple[int, ...], out: _F | None = None,
                beta: _Beta = 0.0) -> _F: ...
def backprop_bias(dY: _F, out: _F | None = None, beta: _Beta = 0.0) -> _F: ...
def backprop_mul(dY: _F, Other: _F, out: _F | None = None, beta: _Beta = 0.0) -> _F: ...

# the kernels of the per-kind modules, gathered here (each module's __all__)
from fastbp_ext._linalg import *  # noqa: F403
from fastbp_ext._activations import *  # noqa: F403
from fastbp_ext._embedding import *  # noqa: F403
from fastbp_ext._losses import *  # noqa: F403
from fastbp_ext._optim import *  # noqa: F403
