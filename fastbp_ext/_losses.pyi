"""Type stub for :mod:`fastbp_ext._losses` (fused losses and their backprops).

Arrays are float32 or float64 numpy arrays of one dtype per call; class ids are integer
arrays. ``dloss`` is a number or a one-element float array (read when the kernel runs).
"""

from typing import SupportsFloat

import numpy as np
from numpy.typing import NDArray

__all__ = ["softmax_cross_entropy", "backprop_softmax_cross_entropy", "sigmoid_bce",
           "backprop_sigmoid_bce"]

_F = NDArray[np.floating]
_I = NDArray[np.integer]
_Beta = float

def softmax_cross_entropy(Z: _F, y: _I) -> tuple[_F, _F]: ...
def backprop_softmax_cross_entropy(P: _F, y: _I, dloss: SupportsFloat | _F,
                                   out: _F | None = None, beta: _Beta = 0.0) -> _F: ...
def sigmoid_bce(S: _F, T: _F) -> tuple[_F, _F]: ...
def backprop_sigmoid_bce(Sig: _F, T: _F, dloss: SupportsFloat | _F, out: _F | None = None,
                         beta: _Beta = 0.0) -> _F: ...
