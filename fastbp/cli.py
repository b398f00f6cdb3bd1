"""The ``fastbp`` command line: train, evaluate and apply window-classification NER models.

    fastbp train --train train.conll --dev dev.conll --vectors glove.txt --out model/
    fastbp evaluate --model model/ --data dev.conll
    fastbp predict --model model/ [FILE]          (stdin without FILE)
    fastbp demo                                   (synthetic corpus, a few seconds)
    fastbp gradcheck                              (numerical check of the model's gradients)
    fastbp bench                                  (windows/s, fastbp vs pure numpy)

Every expected error is one line ``fastbp: error: ...`` on stderr and a non-zero exit
status (2 for bad arguments, 1 otherwise, 130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import fastbp as fb

PROG = "fastbp"


class CLIError(Exception):
    """An expected, user-facing error: printed as one line, exit status ``code``."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (no usage dump)."""

    def error(self, message):
        hint = f" (see '{self.prog} --help')"
        raise CLIError(f"{message}{hint}", 2)


# ---------------------------------------------------------------------- helpers
def _out(*args, **kw):
    print(*args, **kw, flush=True)


def _info(msg, quiet=False):
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _pos_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _nonneg_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}")
    return v


def _pos_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def _prob(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {s!r}") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {s!r}")
    return v


def _setup_runtime(args):
    # The command line is an application: it may change process-wide settings. Eager
    # steps (--no-compile, evaluation batches) run faster without glibc's heap trimming.
    fb.tune_malloc()
    backend = getattr(args, "backend", None)
    if backend is not None:
        fb.set_backend(backend)
    threads = getattr(args, "threads", None)
    if threads is not None:
        fb.set_num_threads(threads)


def _read_sentences(path, what):
    from .ner.data import read_conll

    sents = read_conll(path)
    if not sents:
        raise CLIError(f"{path}: no sentences found in the {what} file")
    return sents


def _fmt_rate(x):
    return f"{x:,.0f}"


# ---------------------------------------------------------------------- train
def build_vocab(train_sents, dev_sents=(), vectors=None, min_count=1, max_vocab=None):
    """CS224N-style vocabulary: the training words (``min_count``, ``max_vocab``) plus,
    with a vectors file, every pretrained word that occurs in train or dev (so dev words
    keep their pretrained vectors). Returns ``(vocab, n_pretrained_words_in_file)``."""
    from .ner.glove import read_vector_words
    from .ner.vocab import Vocab

    extra = None
    n_file = 0
    if vectors is not None:
        probe = Vocab()
        corpus = {probe.normalize(t) for s in (*train_sents, *dev_sents) for t in s.tokens}
        words = read_vector_words(vectors)
        n_file = len(words)
        extra = [w for w in words if probe.normalize(w) in corpus]
    vocab = Vocab.build(train_sents, max_size=max_vocab, min_count=min_count,
                        extra_words=extra)
    return vocab, n_file


def build_model(featurizer, labels, *, vectors=None, embed_dim=50, hidden=200,
                activation="relu", dropout=0.5, dtype="float32", seed=0, binary=None,
                log=None):
    """Create a model for ``featurizer``/``labels``: the embedding table is the pretrained
    vectors (words not in the file and the casing rows random, same scale) or random.
    Returns ``(model, n_found)``."""
    from .ner.glove import load_vectors
    from .ner.model import BinaryWindowClassifier, WindowClassifier
    from .ner.train import seed_streams

    init_rng = seed_streams(seed, 3)[2]  # streams 0, 1: shuffling and dropout
    dt = np.dtype(dtype)
    E = None
    n_found = None
    if vectors is not None:
        words, n_found = load_vectors(vectors, featurizer.vocab, None, init_rng, dtype=dt)
        extra_rows = featurizer.n_rows - words.shape[0]
        scale = float(words.std()) if words.size else 0.1
        rows = (init_rng.standard_normal((extra_rows, words.shape[1])) * scale).astype(dt)
        E = np.concatenate([words.astype(dt, copy=False), rows], axis=0)
    common = dict(embed_dim=embed_dim, hidden=hidden, activation=activation, dropout=dropout,
                  dtype=dt, rng=init_rng, embeddings=E)
    if binary is not None:
        if binary not in labels:
            raise CLIError(f"--binary {binary!r} is not a label of the data "
                           f"(labels: {' '.join(labels.labels)})")
        model = BinaryWindowClassifier(featurizer.n_rows, featurizer.width,
                                       positive=labels.id(binary), **common)
    else:
        model = WindowClassifier(featurizer.n_rows, featurizer.width, len(labels), **common)
    return model, n_found


def _check_plot_available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib, which is not installed "
                       "(pip install 'fastbp[plot]')") from None


def plot_history(history, path):
    """Save a figure with training loss and dev entity F1 per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, ax1 = plt.subplots(figsize=(6.4, 4))
    lines = ax1.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue",
                     label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss (cross-entropy)", color="tab:blue")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    if any(h.get("dev_f1") is not None for h in history):
        ax2 = ax1.twinx()
        lines += ax2.plot(epochs, [h["dev_f1"] for h in history], "s-", color="tab:red",
                          label="dev entity F1")
        ax2.set_ylabel("dev entity-level F1", color="tab:red")
    ax1.legend(lines, [ln.get_label() for ln in lines], loc="center right")
    ax1.set_title("fastbp window NER: learning curves")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _print_scores(ev, title):
    from .ner.metrics import format_entity_table, format_token_table

    _out(f"{title}: token-level scores")
    _out(format_token_table(ev["token"]))
    _out("")
    _out(f"{title}: entity-level scores (exact chunk match)")
    _out(format_entity_table(ev["entity"]))


def run_training(args, train_sents, dev_sents, out_dir, *, corpus_note=None):
    """Shared by ``train`` and ``demo``. Returns (result, model, featurizer, labels, ev)."""
    from .ner.io import save_model
    from .ner.train import evaluate, make_dataset, train
    from .ner.vocab import LabelSet
    from .ner.windows import WindowFeaturizer

    quiet = args.quiet
    t_start = time.perf_counter()
    labels = LabelSet.from_sentences(list(train_sents) + list(dev_sents or []))
    vocab, n_file = build_vocab(train_sents, dev_sents or (), args.vectors, args.min_count,
                                args.max_vocab)
    featurizer = WindowFeaturizer(vocab, window=args.window, casing=not args.no_casing)
    model, n_found = build_model(
        featurizer, labels, vectors=args.vectors, embed_dim=args.embed_dim,
        hidden=args.hidden, activation=args.activation, dropout=args.dropout,
        dtype=args.dtype, seed=args.seed, binary=getattr(args, "binary", None))
    train_data = make_dataset(train_sents, featurizer, labels)
    dev_data = make_dataset(dev_sents, featurizer, labels) if dev_sents else None
    t_prep = time.perf_counter() - t_start
    if corpus_note:
        _out(corpus_note)
    _out(f"train: {len(train_sents):,} sentences, {len(train_data):,} windows"
         + (f"; dev: {len(dev_sents):,} sentences, {len(dev_data):,} windows" if dev_data
            else ""))
    _out(f"labels: {' '.join(labels.labels)} (scheme {labels.scheme})")
    if args.vectors is not None:
        n_words = len(vocab) - 3
        _out(f"vectors: {n_found:,} of {n_words:,} vocabulary words found in {args.vectors} "
             f"({n_file:,} vectors in the file, dim {model.embed_dim})")
    _out(f"vocabulary: {len(vocab):,} entries; window {args.window} "
         f"({featurizer.width} ids per window, casing {'on' if featurizer.casing else 'off'});"
         f" embedding table {model.n_rows:,} x {model.embed_dim}; "
         f"{model.n_params():,} parameters ({model.dtype.name}, backend {fb.get_backend()}, "
         f"{fb.get_num_threads()} thread{'' if fb.get_num_threads() == 1 else 's'}); "
         f"data preparation {t_prep:.1f}s")

    info = {
        "command": getattr(args, "command", None),
        "train_file": str(getattr(args, "train", "") or ""),
        "dev_file": str(getattr(args, "dev", "") or ""),
        "vectors": None if args.vectors is None else str(args.vectors),
        "vectors_found": n_found,
        "backend": fb.get_backend(),
        "threads": fb.get_num_threads(),
        "fastbp_version": fb.__version__,
    }
    result = train(model, train_data, dev_data, labels, epochs=args.epochs,
                   batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                   seed=args.seed, out_dir=out_dir, featurizer=featurizer, save_info=info,
                   quiet=quiet, distributed=getattr(args, "distributed", False),
                   compile=not args.no_compile and fb.get_backend() == "cython",
                   **_resume_options(args, out_dir))
    ev = None
    if dev_data is not None and result.history:
        ev = evaluate(model, dev_data, labels)
    if out_dir is not None and result.history:
        info.update(best_epoch=result.best_epoch, epochs_run=len(result.history),
                    history=result.history, interrupted=result.interrupted,
                    seed=args.seed, optimizer=args.optimizer, lr=args.lr,
                    batch_size=args.batch_size, train_seconds=result.train_seconds,
                    total_seconds=result.total_seconds, windows_per_s=result.windows_per_s)
        if ev is not None:
            info["dev"] = {"entity": {k: ev["entity"][k] for k in
                                      ("precision", "recall", "f1", "support")},
                           "token_micro_f1": ev["token"]["micro"]["f1"]}
        if not result.interrupted:
            save_model(out_dir, model, featurizer, labels, info)
    return result, model, featurizer, labels, ev


def _resume_options(args, out_dir):
    """``fastbp train`` keeps the full training state in ``OUT.last`` after every epoch
    and continues from ``--resume DIR`` (see fastbp.ner.checkpoint)."""
    if getattr(args, "command", None) != "train" or out_dir is None:
        return {}
    from .ner.checkpoint import state_dir_for

    return {"state_dir": state_dir_for(out_dir), "resume": getattr(args, "resume", None)}


def _report(result, ev, out_dir):
    if not result.history:
        return
    h = result.history[result.best_epoch - 1]
    if ev is not None:
        _out("")
        _out(f"best epoch: {result.best_epoch} of {len(result.history)} "
             f"(dev entity F1 {h['dev_f1']:.4f}, token F1 {h['dev_token_f1']:.4f})")
        _out("")
        _print_scores(ev, "dev")
    else:
        _out(f"trained {len(result.history)} epochs (no dev data; the last epoch is kept)")
    _out("")
    _out(f"training wall time: {result.total_seconds:.1f}s total "
         f"({result.train_seconds:.1f}s in optimisation steps), "
         f"{_fmt_rate(result.windows_per_s)} windows/s")
    if out_dir is not None and not result.interrupted:
        _out(f"model saved to {out_dir}")


def cmd_train(args):
    if args.distributed:   # under mpiexec: rank 0 prints, evaluates and saves
        from . import distributed

        try:
            distributed.init()
        except ImportError as exc:
            raise CLIError(exc) from None
        if distributed.rank() != 0:
            sys.stdout = open(os.devnull, "w")
            args.quiet, args.out, args.plot = True, None, None
    if args.plot is not None:
        _check_plot_available()
    if args.vectors is not None and not Path(args.vectors).is_file():
        raise CLIError(f"{args.vectors}: vectors file not found")
    train_sents = _read_sentences(args.train, "training")
    dev_sents = _read_sentences(args.dev, "dev") if args.dev is not None else []
    result, model, featurizer, labels, ev = run_training(args, train_sents, dev_sents,
                                                         args.out)
    if args.distributed and distributed.rank() != 0:
        return 0   # rank 0 reports and saves
    _report(result, ev, args.out)
    if args.plot is not None and result.history:
        plot_history(result.history, args.plot)
        _out(f"learning curves saved to {args.plot}")
    if result.interrupted:
        where = f"; the best checkpoint (epoch {result.saved_epoch}) is in {args.out}" \
            if result.saved_epoch else "; no checkpoint was written"
        if len(result.history):
            where += f" (continue with --resume {args.out})"
        raise CLIError(f"interrupted{where}", 130)
    return 0


# ---------------------------------------------------------------------- evaluate
def _load(path):
    from .ner.io import load_model

    loaded = load_model(path)
    if loaded.model.dtype != np.float32 and loaded.model.dtype != np.float64:
        raise CLIError(f"{path}: unsupported dtype {loaded.model.dtype}")
    return loaded


def cmd_evaluate(args):
    from .ner.metrics import format_confusion
    from .ner.train import evaluate, make_dataset

    loaded = _load(args.model)
    sents = _read_sentences(args.data, "evaluation")
    known = set(loaded.labels.labels)
    for i, s in enumerate(sents):
        for lab in s.labels:
            if lab not in known:
                raise CLIError(f"{args.data}: label {lab!r} (sentence {i + 1}) is not one of "
                               f"the model's labels ({' '.join(loaded.labels.labels)})")
    data = make_dataset(sents, loaded.featurizer, loaded.labels)
    t0 = time.perf_counter()
    ev = evaluate(loaded.model, data, loaded.labels, with_confusion=True)
    dt = time.perf_counter() - t0
    _out(f"{args.data}: {len(sents):,} sentences, {len(data):,} tokens "
         f"(model {args.model}; {dt:.2f}s, {_fmt_rate(len(data) / max(dt, 1e-9))} windows/s)")
    _out("")
    _print_scores(ev, "evaluation")
    _out("")
    _out("confusion matrix (rows gold, columns predicted)")
    _out(format_confusion(ev["confusion"], ev["labels"]))
    return 0


# ---------------------------------------------------------------------- predict
def cmd_predict(args):
    from .ner.stream import Tagger, predict_stream

    loaded = _load(args.model)
    tagger = Tagger(loaded.model, loaded.featurizer, loaded.labels)
    threads = args.threads or 1
    if args.file is None or args.file == "-":
        predict_stream(tagger, sys.stdin.buffer, sys.stdout, jobs=args.jobs, threads=threads,
                       src="<stdin>")
    else:
        with open(args.file, "rb") as fh:
            predict_stream(tagger, fh, sys.stdout, jobs=args.jobs, threads=threads,
                           src=args.file)
    return 0


# ---------------------------------------------------------------------- demo
def cmd_demo(args):
    from .ner.synthetic import generate_corpus

    train_sents, dev_sents = generate_corpus(seed=args.seed)
    note = ("demo: training on the built-in SYNTHETIC corpus (invented names and template "
            "sentences; its scores say nothing about real NER accuracy)")
    t0 = time.perf_counter()
    result, model, featurizer, labels, ev = run_training(args, train_sents, dev_sents,
                                                         args.out, corpus_note=note)
    wall = time.perf_counter() - t0
    if result.history:
        h = result.history[result.best_epoch - 1]
        _out("")
        _out(f"synthetic dev entity-level F1: {h['dev_f1']:.4f} (P {h['dev_precision']:.4f}, "
             f"R {h['dev_recall']:.4f}; token F1 {h['dev_token_f1']:.4f}) at epoch "
             f"{result.best_epoch}")
        if not args.quiet:
            _out("")
            from .ner.metrics import format_entity_table

            _out(format_entity_table(ev["entity"]))
        _out("")
        _out(f"throughput: {_fmt_rate(result.windows_per_s)} training windows/s "
             f"(backend {fb.get_backend()}); wall time {wall:.1f}s")
        if args.out is not None:
            _out(f"model saved to {args.out}")
    if result.interrupted:
        raise CLIError("interrupted", 130)
    return 0


# ---------------------------------------------------------------------- gradcheck
def gradcheck_models(backend, seed=0):
    """Numerically check the gradients of the window and binary models (float64, tiny
    sizes, a repeated id inside a window, dropout with a fixed mask) on ``backend``.
    Returns a list of ``(name, GradcheckResult)``."""
    from .ner.model import BinaryWindowClassifier, WindowClassifier

    results = []
    with fb.use_backend(backend):
        for act in ("tanh", "relu", "sigmoid"):
            rng = np.random.default_rng(seed)
            n_rows, width, C = 13, 6, 4
            ids = rng.integers(0, n_rows, size=(7, width))
            ids[:, 2] = ids[:, 0]  # the same id twice in every window
            ids[3] = 5  # a window made of one id
            y = rng.integers(0, C, size=7)
            y[:2] = 1
            for cls in (WindowClassifier, BinaryWindowClassifier):
                if cls is WindowClassifier:
                    m = cls(n_rows, width, C, embed_dim=3, hidden=5, activation=act,
                            dropout=0.3, dtype="float64", rng=rng)
                else:
                    m = cls(n_rows, width, positive=1, embed_dim=3, hidden=5,
                            activation=act, dropout=0.3, dtype="float64", rng=rng)
                if act == "relu":  # keep pre-activations away from the kink
                    with fb.no_grad():
                        pre = m.E.data[ids].reshape(len(ids), -1) @ m.W.data.T + m.b.data
                    m.b.data += np.where(np.abs(pre).min(axis=0) < 1e-3, 0.05, 0.0)

                def fn(*params, m=m):  # params are m's own Parameters, perturbed in place
                    return m.loss(ids, y, np.random.default_rng(seed + 1))

                res = fb.gradcheck(fn, m.parameters(), raise_exception=False)
                results.append((f"{m.kind}/{act}", res))
    return results


def cmd_gradcheck(args):
    from .backends import BACKENDS

    failed = False
    for backend in BACKENDS:
        try:
            results = gradcheck_models(backend, args.seed)
        except ImportError as exc:
            _out(f"{backend:>7}: not available ({str(exc).splitlines()[0][:100]}...)")
            failed = failed or args.strict
            continue
        worst = max(results, key=lambda r: r[1].max_rel_error)
        ok = all(r.passed for _, r in results)
        failed = failed or not ok
        _out(f"{backend:>7}: {'PASS' if ok else 'FAIL'}  worst relative error "
             f"{worst[1].max_rel_error:.2e} ({worst[0]}), {len(results)} checks "
             "(window and binary models x tanh/relu/sigmoid, float64, dropout on, "
             "repeated ids)")
        if not ok:
            for name, r in results:
                if not r.passed:
                    _out(f"         failed: {name}: max abs error {r.max_abs_error:.3e}, "
                         f"max rel error {r.max_rel_error:.3e}")
    if failed:
        raise CLIError("gradient check failed", 1)
    return 0


# ---------------------------------------------------------------------- bench
def cmd_bench(args):
    try:
        from . import benchmark
    except ImportError as exc:
        raise CLIError(f"the benchmark module is not available ({exc})") from None
    kw = {"quick": args.quick}
    if args.budget is not None:
        kw["budget_seconds"] = args.budget
    if args.config:
        kw["configs"] = tuple(args.config)
    if args.batch_size:
        kw["batch_sizes"] = tuple(args.batch_size)
    if args.threads is not None:
        kw["threads"] = args.threads
    kw["dtype"] = np.dtype(args.dtype)
    if args.numpy_backend:
        kw["impls"] = ("pure-numpy", "fastbp-numpy", "fastbp-cython")
    if not args.quiet:
        kw["progress"] = lambda row: _info(
            f"  {row['config']} B={row['B']}: " + ", ".join(
                f"{k} {v:,.0f}/s" for k, v in row["windows_per_s"].items()))
    rows = benchmark.speed_table(**kw)
    _out(benchmark.format_speed_table(rows))
    return 0


# ---------------------------------------------------------------------- parser
def _add_runtime(p):
    p.add_argument("--backend", choices=("cython", "numpy"), default=None,
                   help="compute backend (default: FASTBP_BACKEND or cython)")
    p.add_argument("--threads", type=_pos_int, default=None,
                   help="threads for BLAS and fastbp's kernels (default: all cores)")


def _add_training(p, *, defaults):
    d = defaults
    p.add_argument("--window", type=_nonneg_int, default=d["window"],
                   help="words on each side of the centre word (default %(default)s)")
    p.add_argument("--hidden", type=_pos_int, default=d["hidden"],
                   help="hidden layer size (default %(default)s)")
    p.add_argument("--activation", choices=("relu", "tanh", "sigmoid"),
                   default=d["activation"], help="hidden activation (default %(default)s)")
    p.add_argument("--dropout", type=_prob, default=d["dropout"],
                   help="dropout probability on the hidden layer (default %(default)s)")
    p.add_argument("--epochs", type=_pos_int, default=d["epochs"],
                   help="training epochs (default %(default)s)")
    p.add_argument("--batch-size", type=_pos_int, default=d["batch_size"],
                   help="windows per mini-batch (default %(default)s)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="optimiser (default %(default)s)")
    p.add_argument("--lr", type=_pos_float, default=d["lr"],
                   help="learning rate (default %(default)s)")
    p.add_argument("--seed", type=_nonneg_int, default=0,
                   help="random seed for init, shuffling and dropout (default %(default)s)")
    p.add_argument("--no-compile", action="store_true",
                   help="run every training step eagerly instead of replaying a compiled "
                        "step plan (fb.compile; same results)")
    p.add_argument("--no-casing", action="store_true",
                   help="do not add the casing feature of each window word")
    p.add_argument("--embed-dim", type=_pos_int, default=50,
                   help="embedding size when no --vectors are given (default %(default)s)")
    p.add_argument("--max-vocab", type=_pos_int, default=None,
                   help="keep at most N training words (most frequent first)")
    p.add_argument("--min-count", type=_pos_int, default=1,
                   help="keep training words seen at least N times (default %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="parameter dtype (default %(default)s)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar or per-epoch lines")
    _add_runtime(p)


def build_parser():
    parser = _Parser(
        prog=PROG,
        description="fastbp: window-classification NER on a Cython-accelerated backprop "
                    "engine (CS224N lecture 3, made fast).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {fb.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a window NER model on CoNLL files",
                       description="Train a window classifier (embeddings -> hidden layer -> "
                                   "softmax) on CoNLL files; keeps the epoch with the best "
                                   "dev entity F1.")
    p.add_argument("--train", required=True, metavar="FILE", help="training CoNLL file")
    p.add_argument("--dev", metavar="FILE", default=None,
                   help="dev CoNLL file (entity F1 every epoch; best epoch kept)")
    p.add_argument("--vectors", metavar="FILE", default=None,
                   help="pretrained vectors in GloVe text format")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="save loss and dev F1 curves (needs matplotlib: fastbp[plot])")
    p.add_argument("--binary", metavar="LABEL", default=None,
                   help="train the lecture's binary classifier 'is the centre word a LABEL?' "
                        "(sigmoid score u^T h) instead of the softmax over all labels")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI: run under 'mpiexec -n N' (each rank "
                        "takes its share of every batch; needs fastbp[mpi])")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run whose model directory is DIR from its last "
                        "finished epoch (the state kept in DIR.last): same data and "
                        "options, --epochs the new total")
    _add_training(p, defaults=dict(window=2, hidden=200, activation="relu", dropout=0.5,
                                   epochs=10, batch_size=2048, lr=1e-3))
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model on a labelled CoNLL file",
                       description="Print token-level and entity-level scores and the "
                                   "confusion matrix of a saved model on a CoNLL file.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory")
    p.add_argument("--data", required=True, metavar="FILE", help="labelled CoNLL file")
    _add_runtime(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="tag raw text (one sentence per line)",
                       description="Tag whitespace-tokenised text, one sentence per line; "
                                   "prints token<TAB>label lines, a blank line after each "
                                   "sentence.")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory")
    p.add_argument("file", nargs="?", metavar="FILE", default=None,
                   help="input text (default: standard input)")
    p.add_argument("--jobs", type=_pos_int, default=1, metavar="N",
                   help="tag in N worker processes (output in input order; default 1)")
    _add_runtime(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="train on the built-in synthetic corpus (seconds)",
                       description="Train a small window model on the built-in SYNTHETIC "
                                   "corpus and print dev entity F1 and throughput.")
    p.add_argument("--out", metavar="DIR", default=None, help="also save the model here")
    _add_training(p, defaults=dict(window=2, hidden=100, activation="relu", dropout=0.2,
                                   epochs=3, batch_size=512, lr=5e-3))
    p.set_defaults(func=cmd_demo, vectors=None, binary=None)

    p = sub.add_parser("gradcheck", help="check the model's gradients numerically",
                       description="Compare the window and binary models' backprop gradients "
                                   "with central finite differences (float64) on every "
                                   "backend.")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--strict", action="store_true",
                   help="fail when a backend is not available")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("bench", help="training-step speed table (fastbp vs pure numpy)",
                       description="Measure windows/s of one training step of the lecture's "
                                   "window classifier: fastbp vs a careful pure-numpy step.")
    p.add_argument("--quick", action="store_true", help="a short run (~15 s)")
    p.add_argument("--budget", type=_pos_float, default=None, metavar="SECONDS",
                   help="approximate total timing budget (default 30 s, 8 s with --quick)")
    p.add_argument("--config", action="append", choices=("lecture", "large"), default=None,
                   help="configuration(s) to time (default: both)")
    p.add_argument("--batch-size", action="append", type=_pos_int, default=None,
                   help="batch size(s) to time (default: 1 32 256 2048)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=_pos_int, default=None)
    p.add_argument("--numpy-backend", action="store_true",
                   help="also time fastbp on its numpy backend")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)
    return parser


# ---------------------------------------------------------------------- main
def _expected_errors():
    from .ner.data import ConllFormatError
    from .ner.glove import VectorFormatError
    from .ner.io import ModelFormatError

    return (ConllFormatError, VectorFormatError, ModelFormatError)


def _error(msg, code):
    msg = " ".join(str(msg).split()) or "unknown error"
    dist = sys.modules.get("fastbp.distributed")
    if dist is not None:   # under mpiexec: one line for the job, and never a hang
        try:
            msg = dist.error_hook(msg, code)
        except dist.RankFailure as exc:  # another rank failed and reports it
            return exc.code
    if msg is not None:
        print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
    if dist is not None:
        dist.finish_error(code)
    return code


def main(argv=None):
    """Entry point of the ``fastbp`` console script; returns the exit status."""
    from .distributed import RankFailure

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            return _error("a command is required: train, evaluate, predict, demo, "
                          "gradcheck or bench (see 'fastbp --help')", 2)
        _setup_runtime(args)
        return args.func(args) or 0
    except RankFailure as exc:  # under mpiexec: another rank failed and reported it
        return exc.code
    except CLIError as exc:
        return _error(exc, exc.code)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # e.g. `fastbp predict ... | head`: stop quietly
        from .ner.stream import silence_stdout

        silence_stdout()
        return 0
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except _expected_errors() as exc:
        return _error(exc, 1)
    except FileNotFoundError as exc:
        return _error(f"{exc.filename}: file not found" if exc.filename else exc, 1)
    except IsADirectoryError as exc:
        return _error(f"{exc.filename}: is a directory, expected a file", 1)
    except PermissionError as exc:
        return _error(f"{exc.filename}: permission denied", 1)
    except OSError as exc:
        return _error(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", 1)
    except (ValueError, KeyError, FloatingPointError, MemoryError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return _error(text, 1)
    except Exception as exc:  # noqa: BLE001 - last resort: still one line, no traceback
        if os.environ.get("FASTBP_DEBUG"):
            raise
        return _error(f"unexpected {type(exc).__name__}: {exc} (set FASTBP_DEBUG=1 for the "
                      "traceback)", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
