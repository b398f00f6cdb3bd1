"""Type stub for :mod:`fastbp_ext._linalg` (BLAS products).

Arrays are float32 or float64 numpy arrays of one dtype per call. Ops taking
``out``/``beta`` write ``out = result + beta * out`` and return ``out``.
"""

from typing import SupportsFloat

import numpy as np
from numpy.typing import NDArray

__all__ = ["gemm", "gemv", "ger", "dot", "scale", "linear"]

_F = NDArray[np.floating]
_Beta = float

def gemm(A: _F, B: _F, out: _F | None = None, trans_a: bool = False, trans_b: bool = False,
         beta: _Beta = 0.0) -> _F: ...
def gemv(A: _F, x: _F, out: _F | None = None, trans: bool = False,
         beta: _Beta = 0.0) -> _F: ...
def ger(x: _F, y: _F, out: _F | None = None, beta: _Beta = 0.0) -> _F: ...
def dot(x: _F, y: _F) -> _F: ...
def scale(X: _F, alpha: SupportsFloat, out: _F | None = None, beta: _Beta = 0.0) -> _F: ...
def linear(X: _F, W: _F, b: _F | None = None, out: _F | None = None,
           trans_w: bool = False) -> _F: ...
