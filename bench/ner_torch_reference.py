"""PyTorch reference of ``fastbp train`` on CoNLL-2003: same features, model and training.

The features, vocabulary, pretrained-embedding table and scoring come from fastbp's own
data modules (``fastbp.ner``) and ``fastbp.cli.build_vocab``/``build_model``, so the
two implementations see identical inputs and start from identical weights; only the
model and the training loop are PyTorch (CPU, eager):

    word + casing embeddings (one table), window 1 on each side (6 ids per window),
    hidden 200, ReLU, dropout 0.5, Adam lr 1e-3, batch 2048, 10 epochs,
    per-epoch dev entity F1, best epoch kept.

PyTorch is not a dependency of fastbp: ``pip install torch`` to run this script.

Usage (from the project root)::

    python bench/ner_torch_reference.py                 # PyTorch only
    python bench/ner_torch_reference.py --compare -r 3  # + fastbp cython and numpy backends,
                                                        #   alternating, one process each run

``--compare`` runs ``python -m fastbp train`` with the same hyper-parameters for each
fastbp backend and this script for PyTorch, each in its own process, alternating the
order, and prints a table of the training wall times (the 10 epochs including the per-epoch
dev evaluation; data loading excluded for all three) with the dev entity F1 of each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FASTBP_DATA_DIR", ROOT.parent / "shared" / "data" /
                                   "conll2003"))

# This script does not run fastbp's engine; the numpy backend avoids needing the build.
os.environ.setdefault("FASTBP_BACKEND", "numpy")
sys.path.insert(0, str(ROOT))


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder with train.conll, dev.conll, glove.6B.50d.conll-vocab.txt")
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every implementation (torch.set_num_threads, fastbp "
                        "--threads); default: all cores")
    p.add_argument("--json", action="store_true", help="print one JSON line of results")
    p.add_argument("--compare", action="store_true",
                   help="also time fastbp (cython and numpy backends), alternating")
    p.add_argument("-r", "--repeats", type=int, default=1, help="runs per implementation")
    p.add_argument("--impls", default="cython,eager,numpy,torch",
                   help="implementations for --compare (comma separated): cython (compiled "
                        "steps), eager (cython backend, --no-compile), numpy, torch")
    return p.parse_args(argv)


def run_torch(a):
    import numpy as np
    import torch

    from fastbp.cli import build_model, build_vocab
    from fastbp.ner.data import read_conll
    from fastbp.ner.metrics import token_scores
    from fastbp.ner.train import entity_scores_ids, make_dataset
    from fastbp.ner.vocab import LabelSet
    from fastbp.ner.windows import WindowFeaturizer

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    vectors = a.data / "glove.6B.50d.conll-vocab.txt"
    tr = read_conll(a.data / "train.conll")
    dv = read_conll(a.data / "dev.conll")
    labels = LabelSet.from_sentences(tr + dv)
    vocab, _ = build_vocab(tr, dv, vectors)
    fz = WindowFeaturizer(vocab, window=a.window, casing=True)
    # identical initial weights to `fastbp train --seed`: build the fastbp model, copy them
    fbm, _ = build_model(fz, labels, vectors=vectors, hidden=a.hidden, activation="relu",
                         dropout=a.dropout, dtype="float32", seed=a.seed)
    trd = make_dataset(tr, fz, labels)
    dvd = make_dataset(dv, fz, labels)

    class Window(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(fbm.n_rows, fbm.embed_dim)
            self.l1 = torch.nn.Linear(fbm.width * fbm.embed_dim, a.hidden)
            self.drop = torch.nn.Dropout(a.dropout)
            self.l2 = torch.nn.Linear(a.hidden, len(labels))
            with torch.no_grad():
                self.emb.weight.copy_(torch.from_numpy(fbm.E.data))
                self.l1.weight.copy_(torch.from_numpy(fbm.W.data))  # (out, in) in both
                self.l1.bias.zero_()
                self.l2.weight.copy_(torch.from_numpy(fbm.U.data))
                self.l2.bias.zero_()

        def forward(self, ids):
            x = self.emb(ids).reshape(ids.shape[0], -1)
            return self.l2(self.drop(torch.relu(self.l1(x))))

    model = Window()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    lossf = torch.nn.CrossEntropyLoss()
    X = torch.from_numpy(trd.ids.astype(np.int64))
    Y = torch.from_numpy(trd.y.astype(np.int64))
    Xd = torch.from_numpy(dvd.ids.astype(np.int64))
    g = torch.Generator().manual_seed(a.seed)
    N = X.shape[0]
    best, best_state, hist = -1.0, None, []

    t_start = time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(N, generator=g)
        tot = 0.0
        for s in range(0, N, a.batch_size):
            idx = perm[s:s + a.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            tot += loss.item() * idx.shape[0]
        t_train = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            pred = model(Xd).argmax(1).numpy()
        # the same dev scoring as fastbp's training loop (fastbp.ner.train.dev_scores)
        ent = entity_scores_ids(dvd.y, pred, dvd.lengths, labels)
        tok = token_scores(dvd.y, pred, labels.labels)
        hist.append({"epoch": epoch, "train_loss": tot / N, "dev_f1": ent["f1"],
                     "dev_precision": ent["precision"], "dev_recall": ent["recall"],
                     "dev_token_f1": tok["micro"]["f1"], "train_seconds": t_train,
                     "seconds": time.perf_counter() - t0})
        if ent["f1"] > best:
            best = ent["f1"]
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if not a.json:
            h = hist[-1]
            print(f"epoch {epoch}  loss {h['train_loss']:.4f}  dev entity P/R/F1 "
                  f"{h['dev_precision']:.4f}/{h['dev_recall']:.4f}/{h['dev_f1']:.4f}  "
                  f"token F1 {h['dev_token_f1']:.4f}  {h['seconds']:.2f}s", flush=True)
    wall = time.perf_counter() - t_start
    model.load_state_dict(best_state)
    b = max(hist, key=lambda h: h["dev_f1"])
    train_s = sum(h["train_seconds"] for h in hist)
    out = {"impl": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "wall_seconds": wall, "train_seconds": train_s,
           "windows_per_s": N * a.epochs / train_s, "best_epoch": b["epoch"],
           "dev_f1": b["dev_f1"], "dev_precision": b["dev_precision"],
           "dev_recall": b["dev_recall"], "dev_token_f1": b["dev_token_f1"]}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"PyTorch {torch.__version__} ({out['threads']} threads): best epoch "
              f"{b['epoch']}, dev entity P/R/F1 {b['dev_precision']:.4f}/"
              f"{b['dev_recall']:.4f}/{b['dev_f1']:.4f}, token F1 {b['dev_token_f1']:.4f}; "
              f"training wall time {wall:.1f}s ({out['windows_per_s']:,.0f} windows/s)")
    return out


def _fastbp_cmd(a, backend, out_dir):
    """``python -m fastbp train`` for impl ``backend``: "cython" (compiled steps, the
    default), "eager" (cython backend, --no-compile) or "numpy"."""
    eager = backend == "eager"
    backend = "cython" if eager else backend
    d = a.data
    return [sys.executable, "-m", "fastbp", "train", "--train", str(d / "train.conll"),
            "--dev", str(d / "dev.conll"), "--vectors", str(d / "glove.6B.50d.conll-vocab.txt"),
            "--window", str(a.window), "--hidden", str(a.hidden), "--activation", "relu",
            "--dropout", str(a.dropout), "--epochs", str(a.epochs), "--batch-size",
            str(a.batch_size), "--optimizer", "adam", "--lr", str(a.lr), "--seed", str(a.seed),
            "--backend", backend, "--quiet", "--out", str(out_dir)] + (
                ["--threads", str(a.threads)] if a.threads else []) + (
                ["--no-compile"] if eager else [])


def _run_fastbp(a, backend):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = _fastbp_cmd(a, backend, Path(tmp) / "model")
        env = dict(os.environ)
        env.pop("FASTBP_BACKEND", None)
        if backend == "numpy":
            env["FASTBP_BACKEND"] = "numpy"
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"fastbp ({backend}) failed: {p.stderr.strip()}")
        cfg = json.loads((Path(tmp) / "model" / "config.json").read_text())
    t = cfg["training"]
    b = t["history"][t["best_epoch"] - 1]
    return {"impl": f"fastbp-{backend}", "wall_seconds": t["total_seconds"],
            "train_seconds": t["train_seconds"], "windows_per_s": t["windows_per_s"],
            "best_epoch": t["best_epoch"], "dev_f1": b["dev_f1"],
            "dev_precision": b["dev_precision"], "dev_recall": b["dev_recall"],
            "dev_token_f1": b["dev_token_f1"]}


def _run_torch_subprocess(a):
    cmd = [sys.executable, __file__, "--json", "--data", str(a.data), "--window", str(a.window),
           "--hidden", str(a.hidden), "--dropout", str(a.dropout), "--epochs", str(a.epochs),
           "--batch-size", str(a.batch_size), "--lr", str(a.lr), "--seed", str(a.seed)]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"torch reference failed: {p.stderr.strip()[-500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def compare(a):
    impls = [s.strip() for s in a.impls.split(",") if s.strip()]
    runs = {i: [] for i in impls}
    order = list(impls)
    for r in range(a.repeats):
        for impl in order:
            res = _run_torch_subprocess(a) if impl == "torch" else _run_fastbp(a, impl)
            runs[impl].append(res)
            print(f"run {r + 1} {res['impl']:>13}: wall {res['wall_seconds']:6.2f}s  "
                  f"train {res['train_seconds']:6.2f}s  {res['windows_per_s']:>9,.0f} win/s  "
                  f"dev entity F1 {res['dev_f1']:.4f}", flush=True)
        order.reverse()
    print()
    print("| implementation | training wall time (median) | runs | windows/s (median) | "
          "dev entity P / R / F1 | dev token F1 |")
    print("|---|---:|---|---:|---|---:|")
    for impl in impls:
        rs = runs[impl]
        med = statistics.median(x["wall_seconds"] for x in rs)
        wps = statistics.median(x["windows_per_s"] for x in rs)
        f = rs[0]
        print(f"| {f['impl']} | {med:.1f} s | "
              f"{', '.join('%.1f' % x['wall_seconds'] for x in rs)} | {wps:,.0f} | "
              f"{f['dev_precision']:.3f} / {f['dev_recall']:.3f} / {f['dev_f1']:.4f} | "
              f"{f['dev_token_f1']:.4f} |")
    print()
    print(f"threads: {a.threads or 'all cores'}; "
          "wall time = the 10 training epochs including the per-epoch dev evaluation "
          "(data loading and featurisation excluded); each run in its own process")


def main(argv=None):
    a = _args(argv)
    for f in ("train.conll", "dev.conll", "glove.6B.50d.conll-vocab.txt"):
        if not (a.data / f).is_file():
            sys.exit(f"ner_torch_reference: {a.data / f} not found (set --data or "
                     "FASTBP_DATA_DIR)")
    if a.compare:
        compare(a)
    else:
        run_torch(a)


if __name__ == "__main__":
    main()
