"""File helpers shared by :mod:`fastbp.serialization` (``fb.save`` / ``fb.load``) and the
model directories of :mod:`fastbp.ner.io`: durable writes, Ctrl-C deferred across the
steps of an atomic write, and pickle-free ``.npy`` headers."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import numpy as np

__all__ = ["defer_sigint", "fsync_dir", "read_npy_header"]


def fsync_dir(path):
    """Flush a directory entry to disk (best effort: ignored where unsupported), so that a
    rename into it survives a crash."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def defer_sigint():
    """Delay Ctrl-C (KeyboardInterrupt) until the block is done (main thread only), so
    that the steps of an atomic write that must go together (creating a temporary and
    binding its name, the renames of a swap, the clean-up after a failure) are not
    separated by an interrupt. The interrupt, if one came, is raised when the block
    ends; the previous SIGINT handler is restored in any case."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *a: received.append(a))
    except (ValueError, TypeError):  # not allowed here (e.g. embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])
        elif received and previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def read_npy_header(fh):
    """``(shape, fortran_order, dtype)`` from the header of an open ``.npy`` stream,
    without reading (or allocating) the data."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh)
    raise ValueError(f"unsupported .npy format version {version}")
