"""Saving and loading trained NER models as a directory.

Layout of a model directory::

    DIR/
      weights.npz    the parameters (np.savez; read back with allow_pickle=False)
      config.json    {"format_version": 1, "model": {...hyper-parameters...},
                      "featurizer": {... incl. the vocabulary ...},
                      "labels": {...label set...}, "training": {...info and metrics...}}

Saving is atomic: everything is written into a fresh temporary directory beside ``DIR``
and then renamed into place, so an interrupted save (Ctrl-C, a crash) leaves the
previous checkpoint intact. Loading never executes code (JSON and pickle-free npz) and
checks the format version, the required keys, and the names, shapes and dtypes of the
arrays against the config; every problem is a :class:`ModelFormatError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np

from .model import MODEL_TYPES
from .vocab import LabelSet
from .windows import WindowFeaturizer

__all__ = ["FORMAT_VERSION", "ModelFormatError", "save_model", "load_model", "LoadedModel"]

FORMAT_VERSION = 1
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


@contextlib.contextmanager
def _defer_sigint():
    """Delay Ctrl-C (KeyboardInterrupt) until the block is done (main thread only), so
    that the two renames of a checkpoint swap are not separated by an interrupt."""
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


def _fsync_dir(path):
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
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        with open(tmp / WEIGHTS, "wb") as fh:
            np.savez(fh, **model.state_dict())
            fh.flush()
            os.fsync(fh.fileno())
        with open(tmp / CONFIG, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=1, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        with _defer_sigint():
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
                old.rmdir()
                os.rename(path, old)
                os.rename(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, path)
            _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _require(d, keys, where, fname):
    if not isinstance(d, dict):
        raise ModelFormatError(f"{fname}: {where} must be a JSON object")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ModelFormatError(f"{fname}: {where} lacks required key(s) {', '.join(missing)}")


def read_config(path):
    """Read and validate ``DIR/config.json`` (returns the dict)."""
    path = Path(path)
    cfile = path / CONFIG
    if not path.exists():
        raise ModelFormatError(f"{path}: model directory not found")
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
    _require(cfg, ("format_version", "model", "featurizer", "labels"), "the config", cfile)
    version = cfg["format_version"]
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{cfile}: unsupported format_version {version!r} (this fastbp reads version "
            f"{FORMAT_VERSION})"
        )
    mcfg = cfg["model"]
    _require(mcfg, ("type",), '"model"', cfile)
    if mcfg["type"] not in MODEL_TYPES:
        raise ModelFormatError(f"{cfile}: unknown model type {mcfg['type']!r} "
                               f"(expected one of {', '.join(MODEL_TYPES)})")
    _require(mcfg, _MODEL_KEYS[mcfg["type"]], '"model"', cfile)
    _require(cfg["featurizer"], ("window", "casing", "vocab"), '"featurizer"', cfile)
    _require(cfg["labels"], ("labels",), '"labels"', cfile)
    return cfg


def load_model(path):
    """Load a model directory written by :func:`save_model`.

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
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{cfile}: invalid featurizer description ({exc})") from None
    try:
        labels = LabelSet.from_dict(cfg["labels"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{cfile}: invalid label set ({exc})") from None
    try:
        model = MODEL_TYPES[mcfg["type"]].from_config(mcfg)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{cfile}: invalid model hyper-parameters ({exc})") from None
    if model.n_rows != featurizer.n_rows or model.width != featurizer.width:
        raise ModelFormatError(
            f"{cfile}: the model (n_rows={model.n_rows}, width={model.width}) does not "
            f"match its featurizer (n_rows={featurizer.n_rows}, width={featurizer.width})"
        )
    if mcfg["type"] == "window" and model.n_classes != len(labels):
        raise ModelFormatError(
            f"{cfile}: the model has {model.n_classes} classes but the label set has "
            f"{len(labels)} labels"
        )
    if mcfg["type"] == "binary" and not model.positive < len(labels):
        raise ModelFormatError(f"{cfile}: positive class id {model.positive} is not a label")

    if not wfile.is_file():
        raise ModelFormatError(f"{wfile}: missing")
    shapes = model.param_shapes()
    try:
        with np.load(wfile, allow_pickle=False) as npz:
            names = set(npz.files)
            expected = set(model.param_names)
            if names != expected:
                raise ModelFormatError(
                    f"{wfile}: arrays {sorted(names)} do not match the model's parameters "
                    f"{sorted(expected)}"
                )
            state = {}
            for n in model.param_names:
                arr = npz[n]
                if arr.shape != shapes[n]:
                    raise ModelFormatError(
                        f"{wfile}: array {n!r} has shape {arr.shape}, config.json says "
                        f"{shapes[n]}"
                    )
                if arr.dtype != model.dtype:
                    raise ModelFormatError(
                        f"{wfile}: array {n!r} has dtype {arr.dtype}, config.json says "
                        f"{model.dtype}"
                    )
                if not np.isfinite(arr).all():
                    raise ModelFormatError(f"{wfile}: array {n!r} holds NaN or Inf values")
                state[n] = arr
    except ModelFormatError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ModelFormatError(f"{wfile}: cannot read the weights ({exc})") from None
    model.load_state_dict(state)
    training = cfg.get("training") or {}
    return LoadedModel(model, featurizer, labels, training, path)
