"""Where the time of one data-parallel training step goes (run under mpiexec).

    mpiexec -n 2 python bench/distributed_profile.py [--steps 60] [--batch-size 2048]
    python bench/distributed_profile.py            # one process, for comparison

Trains the README's CoNLL-2003 model (window 1, hidden 200, Adam, dropout 0.5, GloVe
vectors from FASTBP_DATA_DIR or ../shared/data/conll2003) with one BLAS thread per rank
and prints, per step, the median time of: forward+backward of this rank's share,
average_gradients (its collectives), the optimiser step, and the bytes this rank sends per
step; then the median time of one Allreduce of the dense-gradient size and of one
Allgatherv of the embedding rows (the scaling model of the README).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import fastbp as fb
import fastbp.distributed as dist
from fastbp.cli import build_model, build_vocab
from fastbp.ner.data import read_conll
from fastbp.ner.train import make_dataset, make_optimizer, seed_streams
from fastbp.ner.vocab import LabelSet
from fastbp.ner.windows import WindowFeaturizer
from fastbp.sparse import RowSparseGrad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    fb.set_num_threads(a.threads)
    dist.init()
    r, P = dist.rank(), dist.size()
    env = os.environ.get("FASTBP_DATA_DIR")   # the conll2003 directory, as for the tests
    root = Path(env) if env else (Path(__file__).resolve().parents[1].parent / "shared"
                                  / "data" / "conll2003")
    tr, dv = read_conll(root / "train.conll"), read_conll(root / "dev.conll")
    vec = root / "glove.6B.50d.conll-vocab.txt"
    labels = LabelSet.from_sentences(tr + dv)
    vocab, _ = build_vocab(tr, dv, vec)
    fz = WindowFeaturizer(vocab, window=1, casing=True)
    model, _ = build_model(fz, labels, vectors=vec, embed_dim=50, hidden=200,
                           activation="relu", dropout=0.5, dtype="float32", seed=0)
    data = make_dataset(tr, fz, labels)
    opt = make_optimizer(model, "adam", 1e-3)
    params = list(model.parameters())
    shuffle_rng, drop_rng = seed_streams(0, 2)
    perm = shuffle_rng.permutation(len(data))
    B = a.batch_size
    t_fb, t_avg, t_opt, t_step, t_wait, sent = [], [], [], [], [], []
    dist.average_gradients(params, count=0)  # warm-up of the layout
    for k in range(a.steps):
        s = (k * B) % (len(data) - B)
        idx = perm[s:s + B]
        lo, hi = dist.shard_bounds(B)
        mine = idx[lo:hi]
        rng = dist.ShardedStream(drop_rng, lo, hi, B) if P > 1 else drop_rng
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = model.loss(data.ids[mine], data.y[mine], rng)
        loss.backward()
        t1 = time.perf_counter()
        g = model.E.grad
        n_rows = np.unique(g.rows).size if isinstance(g, RowSparseGrad) else 0
        if P > 1:   # waiting for the slowest rank is not communication
            dist.comm().Barrier()
        t1b = time.perf_counter()
        dist.average_gradients(params, count=mine.shape[0])
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        t_fb.append(t1 - t0)
        t_avg.append(t2 - t1b)
        t_opt.append(t3 - t2)
        t_wait.append(t1b - t1)
        t_step.append(t3 - t0)
        dense = sum(p.data.size for p in params[1:]) * 4
        sent.append((dense, n_rows * (50 * 4 + 8)))
    med = lambda x: 1e3 * float(np.median(x))  # noqa: E731
    dense_b = sent[0][0]
    sparse_b = float(np.median([s[1] for s in sent]))
    line = (f"rank {r}/{P}: step {med(t_step):.2f} ms = fwd+bwd {med(t_fb):.2f} + "
            f"wait for the other ranks {med(t_wait):.2f} + average_gradients "
            f"{med(t_avg):.2f} + optimiser {med(t_opt):.2f}; "
            f"{B * 1e3 / med(t_step):,.0f} windows/s; sends {dense_b / 1e3:.0f} kB dense "
            f"+ {sparse_b / 1e3:.0f} kB embedding rows per step")
    if P > 1:
        c = dist.comm()
        from mpi4py import MPI
        buf = np.ones(dense_b // 4, np.float32)
        ts = []
        for _ in range(50):
            c.Barrier()
            t = time.perf_counter()
            c.Allreduce(MPI.IN_PLACE, buf)
            ts.append(time.perf_counter() - t)
        n = int(c.allreduce(int(sparse_b // 4), op=MPI.MAX))
        sb = np.ones(n, np.float32)
        rb = np.empty(n * P, np.float32)
        tg = []
        for _ in range(50):
            c.Barrier()
            t = time.perf_counter()
            c.Allgather(sb, rb)
            tg.append(time.perf_counter() - t)
        line += (f"; one Allreduce of {dense_b / 1e3:.0f} kB {med(ts) * 1e3:.0f} us, one "
                 f"Allgather of {n * 4 / 1e3:.0f} kB per rank {med(tg) * 1e3:.0f} us")
    print(line, flush=True)
    if P > 1:
        scaling_model(c, MPI, data, perm, B, dense_b, r)


def scaling_model(c, MPI, data, perm, B, dense_b, r):
    """Bytes each rank exchanges per step for P = 2..64 ranks at global batch B (counted
    from the data: distinct embedding rows of each rank's share), and the alpha-beta
    times of a ring Allreduce / Allgatherv of those sizes with the latency and bandwidth
    measured here (shared memory) and two assumed networks."""
    ts = {}
    for nbytes in (8, dense_b):
        buf = np.ones(max(nbytes // 4, 1), np.float32)
        t = []
        for _ in range(200 if nbytes == 8 else 50):
            c.Barrier()
            t0 = time.perf_counter()
            c.Allreduce(MPI.IN_PLACE, buf)
            t.append(time.perf_counter() - t0)
        ts[nbytes] = float(np.median(t))
    if r != 0:
        return
    # 2 ranks: Allreduce = 2 (P-1) alpha + 2 (P-1)/P n beta = 2 alpha + n beta
    alpha = ts[8] / 2
    beta = (ts[dense_b] - 2 * alpha) / dense_b
    print(f"measured here (2 ranks, shared memory): Allreduce of 8 B {ts[8] * 1e6:.1f} us, "
          f"of {dense_b / 1e3:.0f} kB {ts[dense_b] * 1e6:.0f} us -> alpha {alpha * 1e6:.1f} "
          f"us, beta {beta * 1e9:.2f} ns/B")
    nets = {"this machine (shm)": (alpha, beta), "10 GbE (assumed 30 us, 0.8 ns/B)":
            (30e-6, 0.8e-9), "100 Gb/s IB (assumed 3 us, 0.08 ns/B)": (3e-6, 0.08e-9)}
    row_b = 50 * 4 + 8   # one float32 row of d = 50 and its int64 id
    steps = min(len(data) // B, 50)
    print(f"{'ranks':>5} {'windows/rank':>12} {'rows/rank':>9} {'dense sent':>10} "
          f"{'emb sent':>9} {'emb recv':>9}  " + "  ".join(f"{k:>20}" for k in nets))
    for Pm in (2, 4, 8, 16, 32, 64):
        per_rank = []
        for k in range(steps):
            idx = perm[k * B:(k + 1) * B]
            for q in range(Pm):
                lo, hi = dist.shard_bounds(B, q, Pm)
                per_rank.append(np.unique(data.ids[idx[lo:hi]]).size)
        rows = float(np.mean(per_rank))
        emb_send = rows * row_b
        emb_recv = (Pm - 1) * emb_send
        dense_sent = 2 * (Pm - 1) / Pm * dense_b
        cells = []
        for a_, b_ in nets.values():
            t_ar = 2 * (Pm - 1) * a_ + dense_sent * b_
            t_ag = 2 * ((Pm - 1) * a_ + emb_recv * b_)   # rows and values: 2 Allgatherv
            t_meta = (Pm - 1) * a_
            cells.append(f"{(t_ar + t_ag + t_meta) * 1e3:17.2f} ms")
        print(f"{Pm:>5} {B // Pm:>12} {rows:>9.0f} {dense_sent / 1e3:>7.0f} kB "
              f"{emb_send / 1e3:>6.0f} kB {emb_recv / 1e3:>6.0f} kB  " + "  ".join(
                  f"{x:>20}" for x in cells))


if __name__ == "__main__":
    sys.exit(main())
