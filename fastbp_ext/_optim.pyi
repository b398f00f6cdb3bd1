"""Type stub for :mod:`fastbp_ext._optim` (in-place optimiser steps).

Parameters, gradients and optimiser state are float32 or float64 numpy arrays of one
dtype per call, updated in place; rows are integer arrays.
"""

import numpy as np
from numpy.typing import NDArray

__all__ = ["sgd_update", "sgd_update_rows", "adam_update", "adam_update_rows"]

_F = NDArray[np.floating]
_I = NDArray[np.integer]

def sgd_update(W: _F, dW: _F, lr: float) -> None: ...
def sgd_update_rows(W: _F, rows: _I, values: _F, lr: float) -> None: ...
def adam_update(W: _F, dW: _F, m: _F, v: _F, lr: float, beta1: float, beta2: float,
                eps: float, step: int) -> None: ...
def adam_update_rows(W: _F, rows: _I, values: _F, m: _F, v: _F, lr: float, beta1: float,
                     beta2: float, eps: float, step: int) -> None: ...
