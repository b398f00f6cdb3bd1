"""Type stub for :mod:`fastbp_ext._indexing`: strided copies, gathers, scatter-adds and
concatenation (re-exported by :mod:`fastbp_ext._kernels`).

Arrays are float32 or float64 numpy arrays of one dtype per call; index arrays are of
any integer dtype. Ops taking ``out``/``beta`` write ``out = result + beta * out`` and
return ``out``.
"""

from typing import Sequence, SupportsIndex

import numpy as np
from numpy.typing import NDArray

_F = NDArray[np.floating]
_I = NDArray[np.integer]
_Index = tuple[_I, ...] | list[_I] | _I
_Beta = float

__all__ = ["copy_into", "gather", "backprop_gather", "concatenate"]

def copy_into(src: _F, out: _F, beta: _Beta = 0.0) -> _F: ...
def gather(X: _F, index: _Index, out: _F | None = None) -> _F: ...
def backprop_gather(dY: _F, index: _Index, shape: Sequence[SupportsIndex],
                    out: _F | None = None, beta: _Beta = 0.0) -> _F: ...
def concatenate(arrays: Sequence[_F], axis: SupportsIndex = 0,
                out: _F | None = None) -> _F: ...
