"""Type stub for :mod:`fastbp_ext._random` (dropout drawn from the counter-based
generator inside the kernel).

``state`` is a generator's (2,) uint64 ``[key, counter]`` array
(:attr:`fastbp.Generator.state_array`); every call advances its counter in place.
"""

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["dropout_forward", "dropout_mask_gen"]

_F = NDArray[np.floating]
_State = NDArray[np.uint64]

def dropout_forward(X: _F, state: _State, rate: float) -> tuple[_F, _F]: ...
def dropout_mask_gen(state: _State, shape: tuple[int, ...], rate: float,
                     dtype: DTypeLike) -> _F: ...
