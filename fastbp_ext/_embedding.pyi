"""Type stub for :mod:`fastbp_ext._embedding` (row gathers and scatters).

Tables and values are float32 or float64 numpy arrays; ids are integer arrays.
"""

import numpy as np
from numpy.typing import NDArray

__all__ = ["embedding", "scatter_add_rows", "coalesce_rows"]

_F = NDArray[np.floating]
_I = NDArray[np.integer]

def embedding(E: _F, ids: _I) -> _F: ...
def scatter_add_rows(out: _F, rows: _I, values: _F, alpha: float = 1.0) -> _F: ...
def coalesce_rows(rows: _I, values: _F) -> tuple[NDArray[np.intp], _F]: ...
