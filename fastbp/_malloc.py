"""Keep glibc from handing the per-step arrays back to the OS (Linux/glibc only).

An *eager* training step allocates and frees the same few megabytes of activations and
gradients every time. With glibc's defaults, freeing them trims the heap (or unmaps
them), so the next step page-faults the memory back in: at the lecture config with
B=2048 eager steps run at about half speed (291k -> 146k windows/s measured 2026-12-02).
Raising the mmap and trim thresholds once keeps that memory in the process and makes the
steady state fault-free. A compiled step (``fb.compile``) allocates nothing per step and
does not need it (266k vs 295k windows/s, within noise).

It is process-wide (it also changes plain numpy code in the same process), so importing
fastbp does not do it: call :func:`tune_malloc` (``fb.tune_malloc()``) in a program that
trains eagerly; the ``fastbp`` command line does. ``FASTBP_MALLOC_TUNING=0`` in the
environment turns the call into a no-op.
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
    """Raise glibc's mmap and trim thresholds for this process (see the module
    documentation); returns True when done (glibc found and ``FASTBP_MALLOC_TUNING`` not
    0). Process-wide and not undone."""
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
