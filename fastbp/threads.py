"""One place that sets how many threads fastbp's work may use.

Two pools are involved: the OpenMP loops of fastbp's own kernels and the BLAS library
behind ``scipy.linalg.cython_blas`` (plus numpy's BLAS, used by the numpy backend).
:func:`set_num_threads` sets both; the environment variable ``FASTBP_NUM_THREADS`` sets
the value at import time. Results are reproducible for a fixed seed and thread count.
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

__all__ = ["set_num_threads", "get_num_threads"]

_current = [None]


def _kernels():
    try:
        from fastbp_ext import _kernels
    except ImportError:  # only the numpy backend is usable (FASTBP_BACKEND=numpy)
        return None
    return _kernels


def set_num_threads(n):
    """Use at most ``n`` threads in fastbp's kernels and in the BLAS libraries.

    Parameters
    ----------
    n : int
        A positive number of threads.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of threads must be a positive integer, got {n!r}")
    kernels = _kernels()
    if kernels is not None:
        kernels.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    _current[0] = n


def get_num_threads():
    """The thread count set by :func:`set_num_threads` or ``FASTBP_NUM_THREADS``
    (default: the number of CPUs)."""
    if _current[0] is not None:
        return _current[0]
    kernels = _kernels()
    return kernels.get_num_threads() if kernels is not None else (os.cpu_count() or 1)


def _init_from_env():
    value = os.environ.get("FASTBP_NUM_THREADS")
    if value is None or value == "":
        return
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"FASTBP_NUM_THREADS must be a positive integer, got {value!r}") from None
    set_num_threads(n)
