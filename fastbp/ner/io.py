"""Saving and loading trained NER models as a directory.

Layout of a model directory::

    DIR/
      weights.npz    the parameters, keyed by their dotted names (``hidden_layer.weight``;
                     np.savez; read back with allow_pickle=False)
      config.json    {"format_version": 2, "model": {...hyper-parameters...},
                      "featurizer": {... incl. the vocabulary ...},
                      "labels": {...label set...}, "training": {...info and metrics...}}

Saving is atomic: everything is written into a fresh temporary directory beside ``DIR``
and then renamed into place, so an interrupted save (Ctrl-C, a crash) leaves the
previous checkpoint intact. Loading never executes code (JSON and pickle-free npz) and
checks the format version, the required keys, and the names, shapes and dtypes of the
arrays against the config; every problem is a :class:`ModelFormatError` naming the file.

Format versions: 2 (written since the models are :class:`fastbp.nn.Module` instances)
keys the arrays by the dotted parameter names, weights in the (out, in) layout of
:class:`fastbp.nn.Linear`; 1 (older fastbp) named them ``E, W, b, U, c`` (binary:
``E, W, b, u``) with ``W`` (width*d, H) and ``U`` (H, C). Both load; version 1 is
converted by :func:`fastbp.ner.model.state_from_v1`. Other versions are refused with a
message naming the version found and the versions this fastbp reads.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .._files import defer_sigint as _defer_sigint
from .._files import fsync_dir as _fsync_dir
from .._files import read_npy_header as _read_npy_header
from .model import MODEL_TYPES, state_from_v1
from .vocab import LabelSet
from .windows import WindowFeaturizer

__all__ = ["FORMAT_VERSION", "ModelFormatError", "save_model", "load_model", "LoadedModel"]

FORMAT_VERSION = 2
#: versions :func:`load_model` reads (1: before the nn.Module models; converted on load)
READABLE_VERSIONS = (1, 2)
WEIGHTS = "weights.npz"
CONFIG = "config.json"

_MODEL_KEYS = {
    "window": ("type", "n_rows", "width", "n_classes", "embed_dim", "hidden", "activation",
               "dropout", "dtype"),
    "binary": ("type", "n_rows", "width", "positive", "embed_dim", "hidden", "activation",
               "dropout", "dtype"),
}


class ModelFormatError(ValueError):
    """A model directory is missing, incomplete, corrupted or incompatible."""


class LoadedModel:
    """What :func:`load_model` returns: the model, its featurizer and label set, and the
    ``training`` section of the config."""

    def __init__(self, model, featurizer, labels, training, path):
        self.model = model
        self.featurizer = featurizer
        self.labels = labels
        self.training = training
        self.path = path

    def __iter__(self):  # allows ``model, featurizer, labels = load_model(...)[:3]``-style use
        return iter((self.model, self.featurizer, self.labels))


def _to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a, b):
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``. Returns False
    when that is not available (other OS, old libc/kernel, file system without support)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _swap_in(tmp, path):
    """Replace the directory ``path`` by ``tmp``. On Linux one atomic exchange: there is
    no moment without a complete ``path``. Elsewhere two renames (``path`` -> a hidden
    ``.NAME.old-*`` sibling, ``tmp`` -> ``path``), rolled back if the second fails."""
    if _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous checkpoint
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    old.rmdir()
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def save_model(path, model, featurizer, labels, training=None):
    """Write ``model`` (+ featurizer and label set) to the directory ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        The model directory (created, or replaced as a whole if it exists).
    model : WindowClassifier or BinaryWindowClassifier
    featurizer : WindowFeaturizer
    labels : LabelSet
    training : dict, optional
        Training information and metrics (JSON-able) stored under ``"training"``.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if model.n_rows != featurizer.n_rows or model.width != featurizer.width:
        raise ValueError(
            f"model (n_rows={model.n_rows}, width={model.width}) does not match the "
            f"featurizer (n_rows={featurizer.n_rows}, width={featurizer.width})"
        )
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    config = {
        "format_version": FORMAT_VERSION,
        "model": model.config(),
        "featurizer": featurizer.to_dict(),
        "labels": labels.to_dict(),
        "training": _to_jsonable(training or {}),
    }
    return write_dir_atomically(path, {WEIGHTS: model.state_dict()}, {CONFIG: config})


def write_dir_atomically(path, arrays, documents):
    """Write the directory ``path`` holding ``.npz`` files (``{name: {key: array}}``)
    and JSON files (``{name: object}``) atomically: everything goes into a fresh
    temporary directory beside it, fsynced, which then replaces ``path`` in one rename
    (Ctrl-C deferred meanwhile). A failure leaves the previous ``path`` intact and no
    temporary directory behind. Returns ``path``."""
    parent = path.parent
    tmp = None
    try:
        with _defer_sigint():  # no Ctrl-C between creating tmp and knowing its name
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
        for name, content in arrays.items():
            with open(tmp / name, "wb") as fh:
                np.savez(fh, **content)
                fh.flush()
                os.fsync(fh.fileno())
        for name, doc in documents.items():
            with open(tmp / name, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1, allow_nan=False)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        with _defer_sigint():
            if path.exists():
                _swap_in(tmp, path)
            else:
                os.rename(tmp, path)
            _fsync_dir(parent)
    except BaseException:
        if tmp is not None:
            with _defer_sigint():  # a second Ctrl-C does not cut the clean-up short
                shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _require(d, keys, where, fname):
    if not isinstance(d, dict):
        raise ModelFormatError(f"{fname}: {where} must be a JSON object")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ModelFormatError(f"{fname}: {where} lacks required key(s) {', '.join(missing)}")


def _show(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_config(path):
    """Read and validate ``DIR/config.json`` (returns the dict)."""
    path = Path(path)
    cfile = path / CONFIG
    if not path.exists():
        hint = ""
        try:
            olds = sorted(p.name for p in path.parent.glob(f".{path.name}.old-*"))
        except OSError:
            olds = []
        if olds:
            hint = (f" (a save interrupted by a crash left the previous checkpoint in "
                    f"{path.parent / olds[-1]}: rename it to {path.name})")
        raise ModelFormatError(f"{path}: model directory not found{hint}")
    if not path.is_dir():
        raise ModelFormatError(f"{path}: not a model directory (expected a directory with "
                               f"{WEIGHTS} and {CONFIG})")
    if not cfile.is_file():
        raise ModelFormatError(f"{cfile}: missing (not a fastbp model directory?)")
    try:
        with open(cfile, "rb") as fh:
            cfg = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{cfile}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelFormatError(f"{cfile}: not a valid config (JSON nested too deeply)") from None
    _require(cfg, ("format_version", "model", "featurizer", "labels"), "the config", cfile)
    version = cfg["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) \
            or version not in READABLE_VERSIONS:
        raise ModelFormatError(
            f"{cfile}: unsupported format_version {_show(version)} (this fastbp reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}; a newer fastbp wrote it?)"
        )
    mcfg = cfg["model"]
    _require(mcfg, ("type",), '"model"', cfile)
    if not isinstance(mcfg["type"], str) or mcfg["type"] not in MODEL_TYPES:
        raise ModelFormatError(f"{cfile}: unknown model type {_show(mcfg['type'])} "
                               f"(expected one of {', '.join(MODEL_TYPES)})")
    _require(mcfg, _MODEL_KEYS[mcfg["type"]], '"model"', cfile)
    _require(cfg["featurizer"], ("window", "casing", "vocab"), '"featurizer"', cfile)
    _require(cfg["labels"], ("labels",), '"labels"', cfile)
    return cfg


def _int_field(mcfg, key, cfile, minimum=1):
    v = mcfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ModelFormatError(f'{cfile}: "model" {key} must be an integer >= {minimum}, got '
                               f"{_show(v)}")
    return v


def _expected_arrays(mcfg, cfile, version=FORMAT_VERSION):
    """Array name -> (shape, dtype) in weights.npz implied by the config (and the format
    version), checked without allocating anything."""
    n_rows = _int_field(mcfg, "n_rows", cfile)
    width = _int_field(mcfg, "width", cfile)
    d = _int_field(mcfg, "embed_dim", cfile)
    H = _int_field(mcfg, "hidden", cfile)
    dtype = mcfg["dtype"]
    if dtype not in ("float32", "float64"):
        raise ModelFormatError(f'{cfile}: "model" dtype must be float32 or float64, got '
                               f"{_show(dtype)}")
    if version == 1:
        shapes = {"E": (n_rows, d), "W": (width * d, H), "b": (H,)}
        if mcfg["type"] == "window":
            C = _int_field(mcfg, "n_classes", cfile, 2)
            shapes.update(U=(H, C), c=(C,))
        else:
            _int_field(mcfg, "positive", cfile, 0)
            shapes["u"] = (H,)
    else:
        shapes = {"embedding.weight": (n_rows, d), "hidden_layer.weight": (H, width * d),
                  "hidden_layer.bias": (H,)}
        if mcfg["type"] == "window":
            C = _int_field(mcfg, "n_classes", cfile, 2)
            shapes.update({"output_layer.weight": (C, H), "output_layer.bias": (C,)})
        else:
            _int_field(mcfg, "positive", cfile, 0)
            shapes["u"] = (H,)
    dt = np.dtype(dtype)
    return {n: (shape, dt) for n, shape in shapes.items()}


def _read_weights(wfile, expected, version=FORMAT_VERSION):
    """Check every array's name, shape and dtype from the .npy headers (nothing is
    allocated for a damaged or hostile file), then load the arrays without pickle."""
    try:
        with zipfile.ZipFile(wfile) as z:
            members = z.namelist()
            names = {m[:-4] for m in members if m.endswith(".npy")}
            if len(members) != len(set(members)) or len(names) != len(members) \
                    or names != set(expected):
                raise ModelFormatError(
                    f"{wfile}: arrays {sorted(members)} do not match the model's parameters "
                    f"{sorted(n + '.npy' for n in expected)} (format version {version})")
            for n, (shape, dtype) in expected.items():
                with z.open(n + ".npy") as fh:
                    got_shape, _fortran, got_dtype = _read_npy_header(fh)
                if got_dtype != dtype:
                    raise ModelFormatError(
                        f"{wfile}: array {n!r} has dtype {got_dtype}, config.json says {dtype}")
                if tuple(got_shape) != shape:
                    raise ModelFormatError(
                        f"{wfile}: array {n!r} has shape {tuple(got_shape)}, config.json says "
                        f"{shape}")
        state = {}
        with np.load(wfile, allow_pickle=False) as npz:
            for n, (shape, dtype) in expected.items():
                arr = npz[n]
                if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                    raise ModelFormatError(f"{wfile}: array {n!r} is not a {dtype} array of "
                                           f"shape {shape}")
                if not np.isfinite(arr).all():
                    raise ModelFormatError(f"{wfile}: array {n!r} holds NaN or Inf values")
                state[n] = arr
        return state
    except ModelFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/npy raise many types on bad input
        msg = " ".join(str(exc).split())[:200]
        raise ModelFormatError(f"{wfile}: cannot read the weights ({type(exc).__name__}: "
                               f"{msg})") from None


def load_model(path):
    """Load a model directory written by :func:`save_model`.

    Nothing is executed (JSON config, pickle-free npz) and nothing large is allocated
    before the arrays' names, shapes and dtypes (read from the .npy headers) have been
    checked against the config.

    Returns
    -------
    LoadedModel
        ``.model``, ``.featurizer``, ``.labels``, ``.training``, ``.path``.

    Raises
    ------
    ModelFormatError
        Missing directory or file, bad JSON, wrong format version, missing keys, arrays
        whose names, shapes or dtypes disagree with the config, or a config whose parts
        disagree with each other. The message names the file.
    """
    path = Path(path)
    cfg = read_config(path)
    cfile = path / CONFIG
    wfile = path / WEIGHTS
    mcfg = cfg["model"]
    try:
        featurizer = WindowFeaturizer.from_dict(cfg["featurizer"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ModelFormatError(f"{cfile}: invalid featurizer description "
                               f"({' '.join(str(exc).split())[:200]})") from None
    try:
        labels = LabelSet.from_dict(cfg["labels"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{cfile}: invalid label set "
                               f"({' '.join(str(exc).split())[:200]})") from None
    version = cfg["format_version"]
    expected = _expected_arrays(mcfg, cfile, version)
    if mcfg["n_rows"] != featurizer.n_rows or mcfg["width"] != featurizer.width:
        raise ModelFormatError(
            f"{cfile}: the model (n_rows={mcfg['n_rows']}, width={mcfg['width']}) does not "
            f"match its featurizer (n_rows={featurizer.n_rows}, width={featurizer.width})"
        )
    if mcfg["type"] == "window" and mcfg["n_classes"] != len(labels):
        raise ModelFormatError(
            f"{cfile}: the model has {mcfg['n_classes']} classes but the label set has "
            f"{len(labels)} labels"
        )
    if mcfg["type"] == "binary" and not mcfg["positive"] < len(labels):
        raise ModelFormatError(f"{cfile}: positive class id {mcfg['positive']} is not a label")
    if not wfile.is_file():
        raise ModelFormatError(f"{wfile}: missing")
    state = _read_weights(wfile, expected, version)
    if version == 1:
        state = state_from_v1(state)
    try:  # sizes are those of the arrays just read, so this allocation is bounded
        model = MODEL_TYPES[mcfg["type"]].from_config(mcfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{cfile}: invalid model hyper-parameters ({exc})") from None
    model.load_state_dict(state)
    training = cfg.get("training") or {}
    if not isinstance(training, dict):
        training = {}
    return LoadedModel(model, featurizer, labels, training, path)
