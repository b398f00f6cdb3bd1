"""File helpers shared by :mod:`fastbp.serialization` (``fb.save`` / ``fb.load``) and the
model directories of :mod:`fastbp.ner.io`: durable writes and pickle-free ``.npy``
headers."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["fsync_dir", "read_npy_header"]


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


def read_npy_header(fh):
    """``(shape, fortran_order, dtype)`` from the header of an open ``.npy`` stream,
    without reading (or allocating) the data."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh)
    raise ValueError(f"unsupported .npy format version {version}")
