"""Run by tests/test_distributed.py, alone or under ``mpiexec -n N`` (not a test module).

    python _mpi_worker.py train OUT.npz [--distributed] [--optimizer adam|sgd]
        [--batch-size B] [--dropout P] [--dtype float32|float64] [--epochs E]
    python _mpi_worker.py grads OUT.npz [--distributed]
    mpiexec -n 2 python _mpi_worker.py fail OUT --distributed

``train``: the window classifier trained with :func:`fastbp.ner.train.train` on the
synthetic corpus (no dev set, so the last epoch is kept); rank 0 writes every parameter
(and the checksum) to OUT.npz.

``grads``: one batch of a small model whose parameter list exercises every case of
:func:`fastbp.distributed.average_gradients` (dense, row-sparse, no gradient on a rank
with no examples, none on any rank, a table whose gradient is dense on one rank and
row-sparse on another, uneven example counts). Rank 0 writes the combined gradients (dense
arrays) to OUT.npz; run alone (one process) it writes the gradients of the whole batch.
"""

import argparse
import sys

import numpy as np

import fastbp as fb
from fastbp.ner.model import WindowClassifier
from fastbp.ner.synthetic import generate_corpus
from fastbp.ner.train import make_dataset, seed_streams, train
from fastbp.ner.vocab import LabelSet, Vocab
from fastbp.ner.windows import WindowFeaturizer


def run_train(a):
    fb.set_num_threads(1)
    sents, _ = generate_corpus(n_train=120, n_dev=0, seed=3)
    labels = LabelSet.from_sentences(sents)
    fz = WindowFeaturizer(Vocab.build(sents), window=1, casing=True)
    data = make_dataset(sents, fz, labels)
    model = WindowClassifier(fz.n_rows, fz.width, len(labels), embed_dim=8, hidden=16,
                             dropout=a.dropout, dtype=a.dtype, rng=seed_streams(0, 3)[2])
    res = train(model, data, None, labels, epochs=a.epochs, batch_size=a.batch_size,
                optimizer=a.optimizer, lr=0.01, seed=0, quiet=True,
                distributed=a.distributed)
    rank = 0
    if a.distributed:
        import fastbp.distributed as dist
        rank = dist.rank()
    if rank == 0:
        state = {k: np.asarray(v) for k, v in model.state_dict().items()}
        np.savez(a.out, n_windows=len(data), checksum=res.checksum, **state)


def run_grads(a):
    """Each rank's loss is the mean over its share of the batch of per-example losses
    ``CE_i + 0.01 * sum(T[ids_i])``; one process takes the mean over the whole batch."""
    rng = np.random.default_rng(7)
    V, d, B = 30, 4, 7
    E = rng.standard_normal((V, d))          # embedding table: row-sparse gradient
    T = rng.standard_normal((V, d))          # dense on rank 0, row-sparse elsewhere
    W = rng.standard_normal((2 * d, 3))      # dense
    Q = rng.standard_normal(3)               # unused: its gradient stays None
    ids = rng.integers(0, V, size=(B, 2))
    ids[:3, 0] = ids[:3, 1]                  # repeated rows inside a window
    y = rng.integers(0, 3, size=B)
    params = [fb.Parameter(x) for x in (E, T, W, Q)]
    Ep, Tp, Wp, Qp = params
    rank, size = 0, 1
    if a.distributed:
        import fastbp.distributed as dist
        dist.init()
        rank, size = dist.rank(), dist.size()
    # uneven shares: rank 0 gets 5 examples, rank 1 none, rank 2 the rest
    bounds = {1: [(0, B)], 2: [(0, 5), (5, B)], 3: [(0, 5), (5, 5), (5, B)]}[size]
    lo, hi = bounds[rank]
    n = hi - lo
    if n:   # a rank without examples has no gradient at all (None)
        mine = ids[lo:hi]
        loss = fb.cross_entropy(fb.embedding(Ep, mine) @ Wp, y[lo:hi])
        if rank == 0 and size > 1:   # the same term through a dense product
            counts = np.zeros((n, V))
            np.add.at(counts, (np.repeat(np.arange(n), 2), mine.reshape(-1)), 1.0)
            t = (fb.Tensor(counts) @ Tp).sum()
        else:
            t = fb.embedding(Tp, mine).sum()
        (loss + t * (0.01 / n)).backward()
    if a.distributed:
        dist.average_gradients(params, count=n)
    if rank == 0:
        out = {}
        for name, p in zip("ETWQ", params):
            out[name] = np.asarray(p.grad) if p.grad is not None else np.zeros(p.shape)
            out[name + "_kind"] = type(p.grad).__name__
        np.savez(a.out, **out)


def run_fail(a):
    """Rank 1 raises inside abort_on_error while rank 0 waits in a collective."""
    import fastbp.distributed as dist
    dist.init()
    p = fb.Parameter(np.ones(3))
    with dist.abort_on_error():
        if dist.rank() == 1:
            raise ValueError("bad batch on this rank")
        p.grad = np.ones(3)
        dist.average_gradients([p])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("train", "grads", "fail"))
    ap.add_argument("out")
    ap.add_argument("--distributed", action="store_true")
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    {"train": run_train, "grads": run_grads, "fail": run_fail}[a.mode](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
