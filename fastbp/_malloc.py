"""Keep glibc from handing the per-step arrays back to the OS (Linux/glibc only).

A training step allocates and frees the same few megabytes of activations and gradients
every time. With glibc's defaults, freeing them trims the heap (or unmaps them), so the
next step page-faults the memory back in: at the lecture config with B=2048 that was
~3,000 minor faults and ~40% of the step. Raising the mmap and trim thresholds once keeps
that memory in the process and makes the steady state fault-free. It is process-wide (it
also speeds up plain numpy code in the same process) and costs at most the peak working
set of one step kept resident.

Set ``FASTBP_MALLOC_TUNING=0`` before importing fastbp to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["tune_malloc", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum for this setting (64-bit)
TRIM_THRESHOLD = 256 * 1024 * 1024

tuned = False


def tune_malloc():
    """Apply the thresholds; returns True when done (glibc found and the setting on)."""
    global tuned
    if os.environ.get("FASTBP_MALLOC_TUNING", "1").strip() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = (mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1) and ok
    tuned = ok
    return ok
