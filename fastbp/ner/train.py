"""Training and evaluation of the window NER models.

:func:`train` runs shuffled mini-batch SGD or Adam, evaluates entity-level F1 on dev after
every epoch, keeps (and, given an output directory, checkpoints) the best epoch, and
restores its weights at the end. Everything random (initialisation is the caller's;
shuffling and dropout here) comes from streams seeded by ``seed`` (shuffling: a
:class:`numpy.random.Generator`; dropout masks: a :class:`fastbp.Generator` drawn from
inside the dropout kernel), so the same seed, data, backend and thread count give
identical weights.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import fastbp as fb

from .metrics import confusion_matrix, entity_scores, token_scores
from .model import BinaryWindowClassifier
from .windows import sentence_lengths, split

__all__ = [
    "Dataset",
    "make_dataset",
    "evaluate",
    "train",
    "TrainResult",
    "seed_streams",
    "make_optimizer",
]

OPTIMIZERS = ("adam", "sgd")


@dataclass
class Dataset:
    """Featurized sentences: window ids (N, width), label ids (N,), sentence lengths and
    the gold label strings per sentence (for entity scoring)."""

    ids: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    gold: list

    def __len__(self):
        return int(self.ids.shape[0])


def make_dataset(sentences, featurizer, labels):
    """Featurize :class:`~fastbp.ner.data.Sentence` objects into a :class:`Dataset`.

    Raises KeyError for a label not in ``labels``."""
    sentences = list(sentences)
    ids = featurizer.featurize(sentences)
    y = featurizer.featurize_labels(sentences, labels).astype(np.int64)
    lengths = sentence_lengths(sentences)
    gold = [list(s.labels) for s in sentences]
    return Dataset(np.ascontiguousarray(ids), y, lengths, gold)


def seed_streams(seed, n=3):
    """``n`` independent generators derived from one integer seed (init, shuffle,
    dropout, ...)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(n)]


def make_optimizer(model, name="adam", lr=1e-3):
    name = name.lower()
    if name == "adam":
        return fb.optim.Adam(model.parameters(), lr=lr)
    if name == "sgd":
        return fb.optim.SGD(model.parameters(), lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def predict_labels(model, ids, labels, batch_size=8192):
    """Predicted label strings (flat list) of the windows ``ids``."""
    if isinstance(model, BinaryWindowClassifier):
        pos = labels.label(model.positive)
        mask = model.predict(ids, batch_size)
        return [pos if m else "O" for m in mask.tolist()]
    return labels.decode(model.predict(ids, batch_size))


def _prf(correct, predicted, support):
    p = correct / predicted if predicted else 0.0
    r = correct / support if support else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "support": int(support),
            "predicted": int(predicted), "correct": int(correct)}


def _io_chunks(a, sent_start, o_id):
    """IO-scheme chunks of a flat label-id array: maximal runs of one non-O id inside a
    sentence. Returns (start, end exclusive, type id) arrays."""
    n = a.shape[0]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(a[1:], a[:-1], out=new[1:])
    new |= sent_start
    last = np.empty(n, dtype=bool)
    last[-1:] = True
    last[:-1] = new[1:]
    inside = a != o_id
    s = np.flatnonzero(inside & new)
    e = np.flatnonzero(inside & last) + 1
    return s, e, a[s]


def entity_scores_ids(gold, pred, lengths, labels):
    """:func:`~fastbp.ner.metrics.entity_scores` for the IO scheme computed on flat label-id
    arrays with numpy (same result, ~50x faster: used for the per-epoch dev score).

    ``gold``/``pred``: (N,) label ids; ``lengths``: sentence lengths; ``labels``: the
    LabelSet (IO scheme, containing ``"O"``)."""
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    n = gold.shape[0]
    C = len(labels)
    sent_start = np.zeros(n, dtype=bool)
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if lengths.size else lengths
    sent_start[starts[starts < n]] = True
    o_id = labels.id("O")
    gs, ge, gt = _io_chunks(gold, sent_start, o_id)
    ps, pe, pt = _io_chunks(pred, sent_start, o_id)
    gk = (gs * (n + 1) + ge) * C + gt
    pk = (ps * (n + 1) + pe) * C + pt
    ok_t = gt[np.isin(gk, pk, assume_unique=True)]
    n_gold = np.bincount(gt, minlength=C)
    n_pred = np.bincount(pt, minlength=C)
    n_ok = np.bincount(ok_t, minlength=C)
    names = labels.labels
    types = sorted(names[i] for i in range(C) if n_gold[i] or n_pred[i])
    per_type = {}
    for t in types:
        i = labels.id(t)
        per_type[t] = _prf(int(n_ok[i]), int(n_pred[i]), int(n_gold[i]))
    out = _prf(int(n_ok.sum()), int(n_pred.sum()), int(n_gold.sum()))
    out["scheme"] = "IO"
    out["per_type"] = per_type
    return out


def dev_scores(model, data, labels, batch_size=8192):
    """Entity-level scores and token-level micro F1 (non-O) of ``model`` on ``data``: the
    per-epoch dev evaluation of :func:`train`. Fast numpy path for a multi-class model on
    IO labels; otherwise :func:`evaluate`."""
    if (isinstance(model, BinaryWindowClassifier) or labels.scheme != "IO"
            or "O" not in labels):
        ev = evaluate(model, data, labels, batch_size)
        return ev["entity"], ev["token"]["micro"]["f1"]
    pred = model.predict(data.ids, batch_size)
    ent = entity_scores_ids(data.y, pred, data.lengths, labels)
    tok = token_scores(data.y, pred, labels.labels)
    return ent, tok["micro"]["f1"]


def evaluate(model, data, labels, batch_size=8192, with_confusion=False):
    """Score ``model`` on a :class:`Dataset`.

    Returns a dict: ``entity`` (:func:`~fastbp.ner.metrics.entity_scores`), ``token``
    (:func:`~fastbp.ner.metrics.token_scores`), ``pred`` (flat label strings) and, with
    ``with_confusion``, ``confusion`` (rows gold, columns predicted). For a binary model
    the task is "positive label vs everything else": other labels count as ``O``.
    """
    pred = predict_labels(model, data.ids, labels, batch_size)
    gold = data.gold
    label_list = labels.labels
    if isinstance(model, BinaryWindowClassifier):
        pos = labels.label(model.positive)
        gold = [[g if g == pos else "O" for g in s] for s in gold]
        label_list = ["O", pos] if pos != "O" else ["O"]
    pred_sents = [list(p) for p in split(np.asarray(pred, dtype=object), data.lengths)]
    gold_flat = [g for s in gold for g in s]
    ent = entity_scores(gold, pred_sents)
    tok = token_scores(gold_flat, pred, label_list)
    out = {"entity": ent, "token": tok, "pred": pred, "labels": label_list}
    if with_confusion:
        out["confusion"] = confusion_matrix(gold_flat, pred, label_list)
    return out


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_f1: float = float("nan")
    interrupted: bool = False
    train_seconds: float = 0.0  # wall time of the optimisation steps only
    total_seconds: float = 0.0  # wall time of the whole run (incl. dev evaluation, saves)
    windows: int = 0  # training windows processed
    checkpoints: int = 0  # checkpoints written
    saved_epoch: int = 0  # epoch of the checkpoint on disk (0: none)
    checksum: str = ""  # distributed: SHA-256 of the final parameters, equal on all ranks

    @property
    def windows_per_s(self):
        return self.windows / self.train_seconds if self.train_seconds > 0 else 0.0


def _progress(total, desc, quiet):
    disable = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    if disable:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    try:  # a pseudo-terminal may report 0 columns; tqdm would then print nothing
        ncols = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        ncols = 0
    return tqdm(total=total, desc=desc, unit="win", unit_scale=True, leave=False,
                file=sys.stderr, dynamic_ncols=ncols > 0, ncols=None if ncols > 0 else 100,
                mininterval=0.2)


def make_step(model, opt, dropout_rng, compiled=True):
    """One training step ``step(ids, y) -> loss`` (zero_grad, forward, backward, update),
    compiled with :func:`fastbp.compile` unless ``compiled`` is False. The binary model's
    0/1 targets are computed from ``y`` outside the compiled function (numpy code inside
    it would be frozen at trace time)."""
    binary = getattr(model, "kind", "") == "binary"

    def eager(ids, y):
        opt.zero_grad()
        loss = model.loss(ids, y, dropout_rng)
        loss.backward()
        opt.step()
        return loss

    if not compiled:
        return eager
    plan = fb.compile(eager)
    if binary:
        return lambda ids, y: plan(ids, model.targets(y))
    return plan


def train(
    model,
    train_data,
    dev_data=None,
    labels=None,
    *,
    epochs=10,
    batch_size=2048,
    optimizer="adam",
    lr=1e-3,
    seed=0,
    out_dir=None,
    featurizer=None,
    save_info=None,
    quiet=False,
    log=None,
    eval_batch_size=8192,
    compile=True,  # noqa: A002 - the option's name, as fb.compile
    distributed=False,
    state_dir=None,
    resume=None,
):
    """Train ``model`` on ``train_data`` (a :class:`Dataset`).

    Parameters
    ----------
    model : WindowClassifier or BinaryWindowClassifier
        Initialised by the caller (seed its ``rng`` for reproducibility).
    train_data, dev_data : Dataset
        ``dev_data`` may be None: then the last epoch counts as the best.
    labels : LabelSet
        Needed to score dev (and to save).
    epochs, batch_size : int
    optimizer : {"adam", "sgd"} or a fastbp optimiser
    lr : float
    seed : int
        Seeds the shuffling and dropout streams.
    out_dir : path, optional
        Save a checkpoint (:func:`fastbp.ner.io.save_model`, needs ``featurizer``) there
        each time dev F1 improves (every epoch without dev data).
    save_info : dict, optional
        Extra information stored in the checkpoint's ``training`` section.
    quiet : bool
        No progress bar and no per-epoch log lines.
    log : callable, optional
        Receives one line per epoch (default: print to stderr unless quiet).
    compile : bool
        Run each batch as a compiled step (:func:`fastbp.compile`: traced once per batch
        size, then replayed without Python between kernels); False runs it eagerly. Both
        give the same model for the same seed (to float rounding). Distributed training
        runs its steps eagerly (the gradient exchange sits between backward and update).
    distributed : bool
        Data-parallel training over MPI (run every rank with the same arguments under
        ``mpiexec``; see :mod:`fastbp.distributed`): each rank takes its share of every
        global batch of ``batch_size`` and the gradients are combined so that the update,
        and so the model, are those of one process (to float tolerance; dropout masks
        included). Only rank 0 evaluates dev, logs and saves; at the end the ranks check
        that their parameters are identical (``result.checksum``).
    state_dir : path, optional
        Write the full training state (weights, optimiser state, random streams, epoch,
        best score and weights) there after every epoch
        (:func:`fastbp.ner.checkpoint.save_state`).
    resume : path or TrainState, optional
        Continue from a state written with ``state_dir`` (or its model directory): the run
        goes on from the epoch after the one reached, exactly as if it had not stopped.
        Data or options that differ from the saved run raise
        :class:`~fastbp.ner.checkpoint.ResumeError` naming the difference.

    Returns
    -------
    TrainResult
        ``history``: one dict per finished epoch with ``epoch``, ``train_loss``,
        ``dev_precision``, ``dev_recall``, ``dev_f1`` (entity level), ``dev_token_f1``
        (micro, non-O), ``seconds`` (whole epoch incl. evaluation), ``train_seconds``,
        ``windows_per_s``. On KeyboardInterrupt training stops, the best weights are
        restored and ``interrupted`` is True (the best checkpoint stays on disk).
    """
    epochs = int(epochs)
    batch_size = int(batch_size)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if len(train_data) == 0:
        raise ValueError("the training data is empty")
    if out_dir is not None and (featurizer is None or labels is None):
        raise ValueError("saving checkpoints needs the featurizer and the label set")
    if dev_data is not None and labels is None:
        raise ValueError("dev evaluation needs the label set")
    if log is None:
        log = (lambda s: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    opt = make_optimizer(model, optimizer, lr) if isinstance(optimizer, str) else optimizer
    shuffle_rng, dropout_rng = seed_streams(seed, 2)
    dropout_rng = fb.Generator(dropout_rng)  # masks drawn in the kernel (fb.compile-able)
    step = make_step(model, opt, dropout_rng, compile and not distributed)

    X, Y = train_data.ids, train_data.y
    N = X.shape[0]
    result = TrainResult()
    dist = None
    if distributed:
        from .. import distributed as dist

        dist.init()
        dist.collective_status()   # every rank got here: from now on errors abort the job
        params = list(model.parameters())
        nranks = dist.size()
        if dist.rank() != 0:
            dev_data = out_dir = None
            log = lambda s: None  # noqa: E731
            quiet = True
        log(f"distributed: {nranks} rank{'s' if nranks > 1 else ''}, global batch "
            f"{batch_size} (~{batch_size // nranks} windows per rank)")
    best_state = None
    t_run = time.perf_counter()
    if out_dir is not None:
        from .io import save_model
    first_epoch = 1
    if state_dir is not None or resume is not None:
        from . import checkpoint as ckpt

        fp = ckpt.fingerprint(model, train_data, dev_data, featurizer, optimizer, lr,
                              batch_size, seed)
        if resume is not None:
            st = resume if isinstance(resume, ckpt.TrainState) else ckpt.load_state(resume)
            st.check(fp, epochs)
            best_state = st.restore(model, opt, (shuffle_rng, dropout_rng), result)
            first_epoch = st.epoch + 1
            t_run -= result.total_seconds  # wall time of the run so far

    try:
        for epoch in range(first_epoch, epochs + 1):
            t0 = time.perf_counter()
            perm = shuffle_rng.permutation(N)
            bar = _progress(N, f"epoch {epoch}/{epochs}", quiet)
            loss_sum = 0.0
            seen = mine = 0   # windows of the job, of this rank
            last_post = t0
            try:
                for s in range(0, N, batch_size):
                    idx = perm[s:s + batch_size]
                    rng = dropout_rng
                    n = idx.shape[0]
                    if dist is not None:   # this rank's share; its dropout rows
                        lo, hi = dist.shard_bounds(n)
                        idx = idx[lo:hi]
                        rng = (dist.shard_generator(dropout_rng, lo, hi, n, model.hidden)
                               if model.drop.p > 0 else dropout_rng)
                    xb = X[idx]
                    yb = Y[idx]
                    if dist is None:
                        loss = step(xb, yb)
                    else:  # eager: the gradient exchange runs between backward and step
                        opt.zero_grad()
                        loss = model.loss(xb, yb, rng)
                        loss.backward()
                        dist.average_gradients(params, count=idx.shape[0])
                        opt.step()
                    lv = loss.item()
                    loss_sum += lv * idx.shape[0]
                    seen += n
                    mine += idx.shape[0]
                    if bar is not None:
                        bar.update(n)
                        now = time.perf_counter()
                        if now - last_post > 0.25:
                            last_post = now
                            bar.set_postfix_str(
                                f"loss={loss_sum / max(mine, 1):.4f} "
                                f"{seen / (now - t0):,.0f} win/s",
                                refresh=False,
                            )
            finally:
                if bar is not None:
                    bar.close()
            t_train = time.perf_counter() - t0
            if dist is not None:
                loss_sum = float(dist.allreduce_sum(loss_sum)[0])
            result.train_seconds += t_train
            result.windows += seen
            train_loss = loss_sum / max(seen, 1)
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch} (loss {train_loss}); lower the "
                    "learning rate"
                )
            rec = {"epoch": epoch, "train_loss": train_loss}
            if dev_data is not None:
                ent, tok_f1 = dev_scores(model, dev_data, labels, eval_batch_size)
                rec.update(dev_precision=ent["precision"], dev_recall=ent["recall"],
                           dev_f1=ent["f1"], dev_token_f1=tok_f1)
                score = ent["f1"]
            else:
                rec.update(dev_precision=None, dev_recall=None, dev_f1=None, dev_token_f1=None)
                score = float(epoch)  # no dev data: the last epoch is the best
            rec["train_seconds"] = t_train
            rec["windows_per_s"] = seen / t_train if t_train > 0 else 0.0
            improved = best_state is None or score > result.best_f1
            if improved:
                result.best_epoch = epoch
                result.best_f1 = score
                best_state = model.state_dict()
            rec["seconds"] = time.perf_counter() - t0
            result.history.append(rec)
            line = (f"epoch {epoch}/{epochs}  loss {train_loss:.4f}")
            if dev_data is not None:
                line += (f"  dev entity P/R/F1 {rec['dev_precision']:.4f}/"
                         f"{rec['dev_recall']:.4f}/{rec['dev_f1']:.4f}"
                         f"  token F1 {rec['dev_token_f1']:.4f}")
            line += f"  {rec['seconds']:.1f}s  {rec['windows_per_s']:,.0f} win/s"
            if improved and dev_data is not None:
                line += "  *best*"
            if improved and out_dir is not None:
                info = dict(save_info or {})
                info.update(best_epoch=epoch, epochs_run=epoch, history=result.history,
                            seed=int(seed), optimizer=str(optimizer), lr=float(lr),
                            batch_size=batch_size)
                save_model(out_dir, model, featurizer, labels, info)
                result.checkpoints += 1
                result.saved_epoch = epoch
                rec["seconds"] = time.perf_counter() - t0
            if state_dir is not None:
                result.total_seconds = time.perf_counter() - t_run
                ckpt.save_state(state_dir, model=model, opt=opt, rngs=(shuffle_rng, dropout_rng),
                                result=result, best_state=best_state, fp=fp, epoch=epoch)
            log(line)
        if dist is not None:
            result.checksum = dist.check_identical(params)
            log(f"distributed: final parameters identical on all {nranks} ranks "
                f"(sha256 {result.checksum[:16]})")
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        if best_state is not None:
            model.load_state_dict(best_state)
        result.total_seconds = time.perf_counter() - t_run
    if dev_data is None:
        result.best_f1 = float("nan")
    return result
