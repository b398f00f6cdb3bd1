"""One place that sets how many threads fastbp's work may use.

Two thread pools are involved: the BLAS library behind ``scipy.linalg.cython_blas`` (and
numpy's BLAS, used by the numpy backend), which runs the matrix products, and the OpenMP
loops of fastbp's own elementwise kernels.

:func:`set_num_threads` (or the environment variable ``FASTBP_NUM_THREADS``, read at
import) sets the BLAS threads. fastbp's own loops stay on one thread unless you ask for
more with ``kernel_threads``: measured on 2-core machines, a second OpenMP pool next to
OpenBLAS's makes the two pools' idle-spinning threads fight for the cores (a training
epoch took 3.6 s with 2 + 2 threads, 0.54 s with 1 kernel thread + 2 BLAS threads), and
the elementwise loops of this workload gain little from threads anyway.

Results are reproducible for a fixed seed and thread count.
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

__all__ = ["set_num_threads", "get_num_threads", "get_kernel_threads"]

_current = [None]


def _kernels():
    try:
        from fastbp_ext import _kernels
    except ImportError:  # only the numpy backend is usable (FASTBP_BACKEND=numpy)
        return None
    return _kernels


def _positive(name, n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


def set_num_threads(n, kernel_threads=1):
    """Use at most ``n`` threads for matrix products (BLAS) and ``kernel_threads`` for
    fastbp's own elementwise loops.

    Parameters
    ----------
    n : int
        A positive number of BLAS threads.
    kernel_threads : int
        Threads of fastbp's OpenMP loops (default 1; see the module docstring for why).
    """
    _positive("number of threads", n)
    _positive("kernel_threads", kernel_threads)
    kernels = _kernels()
    if kernels is not None:
        kernels.set_num_threads(kernel_threads)
    threadpool_limits(limits=n, user_api="blas")
    _current[0] = n


def get_num_threads():
    """The BLAS thread count set by :func:`set_num_threads` or ``FASTBP_NUM_THREADS``
    (default: the number of CPUs)."""
    return _current[0] if _current[0] is not None else (os.cpu_count() or 1)


def get_kernel_threads():
    """Threads used by fastbp's own elementwise loops (1 unless set)."""
    kernels = _kernels()
    return kernels.get_num_threads() if kernels is not None else 1


def _init_from_env():
    kernels = _kernels()
    if kernels is not None:
        kernels.set_num_threads(1)
    value = os.environ.get("FASTBP_NUM_THREADS")
    if value is None or value.strip() == "":
        return
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"FASTBP_NUM_THREADS must be a positive integer, got {value!r}") from None
    set_num_threads(n)
