"""Exact resume of :func:`fastbp.ner.train.train`: the training state written after every
epoch and read back by ``fastbp train ... --resume DIR``.

The state directory (``DIR.last`` beside the model directory ``DIR``, which keeps holding
the best epoch) is self-contained::

    DIR.last/
      state.npz     model/<name>: the weights after the last finished epoch
                    best/<name>:  the weights of the best epoch so far
                    opt/<i>/m, opt/<i>/v, opt/steps: Adam's moments and step count of
                    parameter i (SGD: none); np.savez, read with allow_pickle=False
      state.json    {"format": "fastbp-train-state", "version": 1, "epoch": ...,
                     "best_epoch", "best_f1", "history", "rng": {"shuffle": ...,
                     "dropout": ...} (numpy bit_generator.state, or {"fastbp": {"key",
                     "counter"}} for a fastbp.Generator: integers are exact in
                     JSON), "fingerprint": {...what must not change...}, ...}

It is written the way model directories are (:func:`fastbp.ner.io.save_model`): into a
fresh temporary directory, fsynced, then swapped in atomically, with Ctrl-C deferred
during the swap. Restoring it (:func:`load_state`, :meth:`TrainState.restore`) puts back
the weights, the optimiser state, both random streams, the epoch reached, the best score
and its weights, so that a run resumed after epoch k continues exactly as the
uninterrupted run would have (bitwise, for the same backend and thread count).

A resume whose data or options differ from the run being resumed is refused with a
:class:`ResumeError` naming the first difference (:func:`fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

__all__ = ["ResumeError", "TrainState", "fingerprint", "save_state", "load_state",
           "state_dir_for", "STATE_SUFFIX"]

FORMAT = "fastbp-train-state"
VERSION = 1
STATE_NPZ = "state.npz"
STATE_JSON = "state.json"
#: the training state of model directory ``DIR`` is ``DIR`` + this suffix
STATE_SUFFIX = ".last"


class ResumeError(ValueError):
    """A training state that cannot be resumed: missing, damaged, or from another run."""


def state_dir_for(out_dir):
    """The training-state directory kept beside the model directory ``out_dir``."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + STATE_SUFFIX)


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _labels_digest(data):
    """The sentence lengths and gold labels: independent of the vocabulary and features."""
    if data is None:
        return None
    h = hashlib.sha256(_digest(data.lengths).encode())
    for sent in data.gold:
        h.update(("\t".join(sent) + "\n").encode())
    return h.hexdigest()[:16]


def _windows_digest(data):
    return None if data is None else _digest(data.ids, data.y, data.lengths)


def fingerprint(model, train_data, dev_data, featurizer, optimizer, lr, batch_size, seed):
    """What a resumed run must share with the run it continues, in the order differences
    are reported: the data, the vocabulary, the model options, the training options."""
    fp = {
        "training data": _labels_digest(train_data),
        "dev data": _labels_digest(dev_data),
    }
    if featurizer is not None:
        fz = featurizer.to_dict()
        fp["vocabulary"] = hashlib.sha256(
            json.dumps(fz.get("vocab"), sort_keys=True).encode()).hexdigest()[:16]
        fp["window"] = featurizer.window
        fp["casing"] = featurizer.casing
    for k, v in model.config().items():
        fp[k] = v
    if isinstance(optimizer, str):
        fp["optimizer"] = optimizer.lower()
    else:
        fp["optimizer"] = type(optimizer).__name__.lower()
        lr = getattr(optimizer, "lr", lr)
    fp["lr"] = float(lr)
    fp["batch_size"] = int(batch_size)
    fp["seed"] = int(seed)
    # last: anything else that changed the featurized windows (e.g. other tokens)
    fp["training windows"] = _windows_digest(train_data)
    fp["dev windows"] = _windows_digest(dev_data)
    return fp


_HINTS = {
    "training data": "--train file",
    "dev data": "--dev file",
    "training windows": "--train file",
    "dev windows": "--dev file",
    "vocabulary": "--vectors, --min-count or --max-vocab value",
    "type": "--binary",
    "n_rows": "the vocabulary size",
    "width": "--window or --no-casing",
    "embed_dim": "--embed-dim or --vectors",
    "n_classes": "the label set",
    "casing": "--no-casing",
    "lr": "--lr",
    "batch_size": "--batch-size",
}


def _describe(key, old, new):
    hint = _HINTS.get(key, f"--{key.replace('_', '-')}")
    if key in ("training data", "dev data", "vocabulary", "training windows", "dev windows"):
        verb = "differs" if key == "vocabulary" else "differ"
        return f"the {key} {verb} from the saved run's (another {hint}?)"
    return f"{key} differs ({hint}): {old!r} in the checkpoint, {new!r} now"


class TrainState:
    """A training state read by :func:`load_state`."""

    def __init__(self, path, meta, arrays):
        self.path = Path(path)
        self.meta = meta
        self.arrays = arrays

    @property
    def epoch(self):
        """The last finished epoch."""
        return int(self.meta["epoch"])

    def check(self, fp, epochs):
        """Raise :class:`ResumeError` naming the first difference between this state's
        fingerprint and ``fp`` (the run about to continue), or if ``epochs`` is below the
        epoch already reached."""
        old = self.meta["fingerprint"]
        for key in list(old) + [k for k in fp if k not in old]:
            if old.get(key) != _to_json(fp.get(key)):
                raise ResumeError(f"cannot resume from {self.path}: "
                                  f"{_describe(key, old.get(key), fp.get(key))}")
        if epochs < self.epoch:
            raise ResumeError(f"cannot resume from {self.path}: it has reached epoch "
                              f"{self.epoch}, more than --epochs {epochs}")

    def restore(self, model, opt, rngs, result):
        """Put the state back: ``model`` weights, the optimiser state of ``opt``, the
        generators ``rngs`` (shuffle, dropout) and the counters of ``result`` (a
        TrainResult). Returns the best epoch's weights (a state dict)."""
        names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
        current = {n: self.arrays[f"model/{n}"] for n in names}
        best = {n: self.arrays[f"best/{n}"] for n in names}
        model.load_state_dict(current)
        _restore_optimizer(opt, self.arrays, self.path)
        for g, key in zip(rngs, ("shuffle", "dropout")):
            _set_rng_state(g, self.meta["rng"][key])
        m = self.meta
        result.history = list(m["history"])
        result.best_epoch = int(m["best_epoch"])
        result.best_f1 = float(m["best_f1"]) if m["best_f1"] is not None else float("nan")
        result.train_seconds = float(m["train_seconds"])
        result.total_seconds = float(m.get("total_seconds", 0.0))
        result.windows = int(m["windows"])
        result.saved_epoch = int(m["saved_epoch"])
        return best


def _rng_state(g):
    """The JSON state of a numpy Generator (its bit generator's) or of a fastbp.Generator
    (``{"fastbp": {"key", "counter"}}``)."""
    from ..random import Generator

    if isinstance(g, Generator):
        return {"fastbp": g.state}
    return g.bit_generator.state


def _set_rng_state(g, state):
    from ..random import Generator

    if isinstance(g, Generator):
        if not isinstance(state, dict) or "fastbp" not in state:
            raise ResumeError("the saved dropout stream is not a fastbp.Generator state")
        g.state = state["fastbp"]
    else:
        g.bit_generator.state = state


def _to_json(v):
    return json.loads(json.dumps(v))


def _optimizer_arrays(opt):
    """Arrays of the optimiser state: ``opt/<i>/m``, ``opt/<i>/v`` and ``opt/steps``
    (int64, 0 for a parameter without state yet) for Adam; nothing for SGD."""
    from ..optim import SGD, Adam

    if isinstance(opt, SGD):
        return {}
    if not isinstance(opt, Adam):
        raise TypeError(f"resumable training supports SGD and Adam, not {type(opt).__name__}")
    out = {}
    steps = np.zeros(len(opt.params), dtype=np.int64)
    for i, p in enumerate(opt.params):
        st = opt.state.get(id(p))
        if st is not None:
            steps[i] = int(np.asarray(st["step"]).reshape(-1)[0])
            out[f"opt/{i}/m"] = st["m"]
            out[f"opt/{i}/v"] = st["v"]
    out["opt/steps"] = steps
    return out


def _restore_optimizer(opt, arrays, path):
    from ..optim import Adam

    if not isinstance(opt, Adam):
        return
    steps = arrays.get("opt/steps")
    if steps is None or steps.shape != (len(opt.params),):
        raise ResumeError(f"{path}: no Adam state for {len(opt.params)} parameters")
    opt.state.clear()
    for i, p in enumerate(opt.params):
        if steps[i] == 0:
            continue
        m, v = arrays[f"opt/{i}/m"], arrays[f"opt/{i}/v"]
        if m.shape != p.data.shape or m.dtype != p.data.dtype or v.shape != m.shape \
                or v.dtype != m.dtype:
            raise ResumeError(f"{path}: Adam moments of parameter {i} have shape {m.shape} "
                              f"{m.dtype}, the parameter {p.data.shape} {p.data.dtype}")
        opt.state[id(p)] = {"step": int(steps[i]), "m": m.copy(), "v": v.copy()}


def save_state(path, *, model, opt, rngs, result, best_state, fp, epoch):
    """Write the training state after ``epoch`` to the directory ``path`` atomically (the
    previous state stays intact until the new one is complete)."""
    from .io import _to_jsonable, write_dir_atomically

    path = Path(path)
    arrays = {f"model/{n}": a for n, a in model.state_dict().items()}
    arrays.update({f"best/{n}": a for n, a in best_state.items()})
    arrays.update(_optimizer_arrays(opt))
    best_f1 = result.best_f1
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "best_epoch": int(result.best_epoch),
        "best_f1": None if not math.isfinite(best_f1) else float(best_f1),
        "saved_epoch": int(result.saved_epoch),
        "train_seconds": float(result.train_seconds),
        "total_seconds": float(result.total_seconds),
        "windows": int(result.windows),
        "history": _to_jsonable(result.history),
        "rng": {k: _to_jsonable(_rng_state(g))  # exact: JSON integers
                for k, g in zip(("shuffle", "dropout"), rngs)},
        "fingerprint": _to_jsonable(fp),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dir_atomically(path, {STATE_NPZ: arrays}, {STATE_JSON: meta})


def load_state(path):
    """Read a training state: ``path`` is the state directory itself or the model
    directory beside it (``DIR`` for ``DIR.last``). Raises :class:`ResumeError` when it
    is missing or damaged."""
    path = Path(path)
    if not (path / STATE_JSON).is_file():
        side = state_dir_for(path)
        if (side / STATE_JSON).is_file():
            path = side
        else:
            raise ResumeError(f"{path}: no training state to resume ({side} not found; "
                              "fastbp train writes it after every epoch)")
    try:
        with open(path / STATE_JSON, "rb") as fh:
            meta = json.loads(fh.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResumeError(f"{path / STATE_JSON}: cannot read the training state "
                          f"({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ResumeError(f"{path / STATE_JSON}: not a fastbp training state")
    if meta.get("version") != VERSION:
        raise ResumeError(f"{path / STATE_JSON}: unsupported training-state version "
                          f"{meta.get('version')!r} (this fastbp reads {VERSION})")
    missing = [k for k in ("epoch", "best_epoch", "best_f1", "saved_epoch", "train_seconds",
                           "windows", "history", "rng", "fingerprint") if k not in meta]
    if missing:
        raise ResumeError(f"{path / STATE_JSON}: lacks {', '.join(missing)}")
    try:
        with np.load(path / STATE_NPZ, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - zipfile/npy raise many types on bad input
        raise ResumeError(f"{path / STATE_NPZ}: cannot read the training state "
                          f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") \
            from None
    return TrainState(path, meta, arrays)
