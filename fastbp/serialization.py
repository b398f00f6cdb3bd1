"""``fb.save(state_dict, path)`` and ``fb.load(path)``: state dicts as ``.npz`` files.

The file is a plain numpy ``.npz`` (a zip of ``.npy`` arrays, readable with
``np.load(path)``) whose keys are the dotted parameter names of
:meth:`fastbp.nn.Module.state_dict` (``"hidden.weight"``). Saving is atomic: the arrays
are written to a temporary file in the destination's directory, flushed to disk
(``fsync``) and renamed over ``path`` (``os.replace``), so a crash or Ctrl-C leaves
either the previous file or the new one, never a truncated one. Loading never executes
code (``allow_pickle=False``) and checks every array header against the size of its zip
member before reading it, so a damaged or hostile file gives one clear
:class:`CheckpointError` naming the file instead of a crash or a huge allocation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ._files import defer_sigint, fsync_dir, read_npy_header
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]


class CheckpointError(ValueError):
    """A file given to :func:`load` is not a readable state dict (corrupted, truncated,
    not an ``.npz`` file, or holding object arrays that would need pickle)."""


def _arrays(state_dict):
    if not hasattr(state_dict, "items"):
        hint = (" (pass module.state_dict())" if hasattr(state_dict, "state_dict") else "")
        raise TypeError(f"save expects a mapping of names to arrays, got "
                        f"{type(state_dict).__name__}{hint}")
    out = []
    for key, value in state_dict.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"state dict keys must be non-empty strings, got {key!r}")
        if "/" in key or "\\" in key or key.endswith(".npy"):
            raise ValueError(f"state dict key {key!r} cannot be a file name in an .npz "
                             "(no '/', '\\\\' or '.npy' ending)")
        arr = np.asarray(value.data if isinstance(value, Tensor) else value)
        if arr.dtype.hasobject:
            raise TypeError(f"state dict entry {key!r} has dtype {arr.dtype}: only plain "
                            "numeric arrays can be saved (no pickle)")
        out.append((key, arr))
    return out


def save(state_dict, path):
    """Write ``state_dict`` (name -> array, e.g. ``model.state_dict()``) to ``path`` as an
    ``.npz`` file, atomically.

    Parameters
    ----------
    state_dict : mapping
        Names to numpy arrays (Tensors and Parameters are saved by their ``.data``).
    path : str or os.PathLike
        The file to create or replace (its directory must exist). The name is used as
        given; ``.npz`` is the customary suffix.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        A non-mapping, a non-string key or an object array.
    FileNotFoundError
        The directory of ``path`` does not exist.
    """
    arrays = _arrays(state_dict)
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{parent}: directory does not exist (cannot save {path.name})")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory")
    tmp = fh = None
    try:
        with defer_sigint():  # no Ctrl-C between creating tmp and holding its name and fd
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=parent)
            fh = os.fdopen(fd, "wb")
        with fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED,
                                 allowZip64=True) as zf:
                for key, arr in arrays:
                    with zf.open(key + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, arr, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with defer_sigint():  # a second Ctrl-C does not cut the clean-up short
            if fh is not None:
                fh.close()
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        raise
    fsync_dir(parent)
    return path


def _fail(path, why):
    return CheckpointError(f"{path}: not a readable state dict ({why})")


def load(path):
    """Read a state dict written by :func:`save` (or any ``.npz`` of plain arrays).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    collections.OrderedDict
        Name -> numpy array, in the order the arrays were saved. Pass it to
        :meth:`fastbp.nn.Module.load_state_dict`.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        (a ValueError) naming the file: not a zip/npz, truncated or corrupted, an array
        header inconsistent with its data, or an object array (which would need pickle).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not an .npz state dict (a fastbp "
                              "NER model directory is read with fastbp.ner.load_model)")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise _fail(path, "duplicate members in the zip file")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise _fail(path, f"member {info.filename!r} is not a .npy array")
                with zf.open(info) as fh:
                    shape, _fortran, dtype = read_npy_header(fh)
                if dtype.hasobject:
                    raise _fail(path, f"array {info.filename[:-4]!r} has dtype {dtype}, "
                                      "which needs pickle; refusing to load it")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if nbytes > info.file_size:
                    raise _fail(path, f"array {info.filename[:-4]!r} claims shape "
                                      f"{tuple(shape)} ({nbytes} bytes) but its member "
                                      f"holds {info.file_size} bytes")
        out = OrderedDict()
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                out[name] = npz[name]
        return out
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/npy raise many types on bad input
        msg = " ".join(str(exc).split())[:200]
        raise _fail(path, f"{type(exc).__name__}: {msg}") from None
