"""Data-parallel training over MPI (``pip install "fastbp[mpi]"``: mpi4py and MPICH).

Every rank (process) holds the whole model and the whole data set; each takes its share
of every global batch, computes the gradient of its share, and the gradients are combined
so that every rank applies exactly the update one process would apply to the whole batch.
MPI is the transport (as in Horovod); this module only decides what is sent::

    import fastbp.distributed as dist
    dist.init()                                   # MPI_COMM_WORLD (or init(comm))
    for batch in global_batches:                  # the same on every rank (same seed)
        mine = dist.shard(batch)                  # this rank's contiguous share
        opt.zero_grad()
        loss = model.loss(X[mine], Y[mine])       # the mean over this rank's share
        loss.backward()
        dist.average_gradients(opt.params, count=len(mine))
        opt.step()                                # identical on every rank
    print(dist.check_identical(model.parameters()))

:func:`average_gradients` weights each rank's gradient by its example count (``count``),
so the result is the gradient of the mean loss over the whole global batch, also for a
last partial batch and for ranks that got no examples (they still call it, with
``count=0``). Per call it makes four collectives:

* an ``Allgather`` of a few integers per rank (example count, gradient kind and row
  count of each parameter, a fingerprint of the parameter shapes);
* one in-place ``Allreduce`` (sum) of a single buffer holding every dense gradient
  (per dtype). The parameters' gradient buffers are views of it, so the backward pass
  writes straight into the buffer and nothing is copied;
* for each row-sparse gradient (:class:`~fastbp.sparse.RowSparseGrad`, an embedding
  table) an ``Allgatherv`` of its rows and one of its values, each rank's rows summed
  first (``coalesce``). Nothing of size ``V x d`` is sent. The result is the
  concatenation of every rank's rows (the union, a row present on several ranks appearing
  once per rank, which the optimisers add up), so a lazy sparse Adam updates exactly the
  rows one process would update, with the summed values.

Errors are collective where they can be and bounded in time where they cannot: a
mismatch between ranks (other parameter shapes, a dense gradient on one rank and a
row-sparse one on another is fine, it is densified) raises :class:`DistributedError` on
every rank; a rank that hangs is caught by a watchdog (``FASTBP_MPI_TIMEOUT`` seconds,
default 300, without a collective completing: one line on stderr, then ``MPI_Abort``);
a rank that dies is reported by the launcher (MPICH's ``mpiexec`` kills the other ranks
within about a second).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time

import numpy as np

from . import backends
from .sparse import RowSparseGrad

__all__ = [
    "init",
    "is_initialized",
    "rank",
    "size",
    "comm",
    "shard",
    "shard_bounds",
    "average_gradients",
    "allreduce_sum",
    "check_identical",
    "ShardedStream",
    "shard_generator",
    "DistributedError",
    "RankFailure",
    "abort",
    "abort_on_error",
]

INSTALL_HINT = 'pip install "fastbp[mpi]"'
DEFAULT_TIMEOUT = 300.0

_KIND_NONE, _KIND_DENSE, _KIND_SPARSE = 0, 1, 2


class DistributedError(RuntimeError):
    """Something that differs between ranks or a failed collective (raised on every rank)."""


class RankFailure(Exception):
    """Raised on the ranks that did not fail themselves when another rank failed before
    training (see :func:`collective_status`): they exit quietly with ``code``; the failing
    rank prints the error."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


class _State:
    comm = None
    MPI = None
    watchdog = None
    # set once every rank has passed collective_status(): from then on, an error on one
    # rank aborts the job instead of exiting this rank alone (which would leave the
    # others waiting in a collective).
    training = False
    reported = False  # this rank's error was already handled collectively


_state = _State()


# ---------------------------------------------------------------------- set-up
def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            f"fastbp.distributed needs mpi4py and an MPI library ({exc}); install them "
            f"with: {INSTALL_HINT}"
        ) from None
    except Exception as exc:  # mpi4py present but no loadable MPI library
        raise ImportError(
            f"fastbp.distributed: mpi4py could not load an MPI library ({exc}); install "
            f"one with: {INSTALL_HINT}"
        ) from None
    return MPI


def init(comm=None, timeout=None):
    """Start (or join) the MPI job and return the communicator.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    timeout : float, optional
        Seconds a collective may wait before the job is aborted with a one-line error
        (a rank that hangs); default ``FASTBP_MPI_TIMEOUT`` or 300; 0 disables it.

    Calling it again returns the communicator already set up (``comm`` must then be
    None or that communicator). Raises ImportError naming ``pip install "fastbp[mpi]"``
    when mpi4py is missing."""
    if _state.comm is not None:
        if comm is not None and comm is not _state.comm:
            raise DistributedError("fastbp.distributed is already initialised with another "
                                   "communicator")
        return _state.comm
    MPI = _import_mpi()
    if timeout is None:
        raw = os.environ.get("FASTBP_MPI_TIMEOUT", "")
        try:
            timeout = float(raw) if raw.strip() else DEFAULT_TIMEOUT
        except ValueError:
            raise ValueError(f"FASTBP_MPI_TIMEOUT must be a number of seconds, got {raw!r}") \
                from None
    timeout = float(timeout)
    if not timeout >= 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
    _state.MPI = MPI
    _state.comm = MPI.COMM_WORLD if comm is None else comm
    if timeout > 0 and _state.comm.Get_size() > 1:
        _state.watchdog = _Watchdog(timeout)
    return _state.comm


def is_initialized():
    return _state.comm is not None


def comm():
    """The communicator (:func:`init` first)."""
    if _state.comm is None:
        raise DistributedError("fastbp.distributed is not initialised: call "
                               "fastbp.distributed.init() first")
    return _state.comm


def rank():
    """This process's rank (0 .. size-1)."""
    return comm().Get_rank()


def size():
    """Number of ranks."""
    return comm().Get_size()


@contextlib.contextmanager
def abort_on_error(code=1):
    """Context manager for a training loop of your own: an exception on this rank prints
    one line (``rank R/N: ...``) and aborts the whole job, instead of leaving the other
    ranks waiting in a collective (until the watchdog's timeout)."""
    try:
        yield
    except BaseException as exc:
        c = _state.comm
        if c is not None and c.Get_size() > 1:
            print(f"fastbp: error: rank {c.Get_rank()}/{c.Get_size()}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            abort(code)
        raise


def abort(code=1):
    """Abort the whole MPI job (every rank) with exit status ``code``."""
    _flush_before_abort()
    comm().Abort(int(code))


def _flush_before_abort():
    # the launcher forwards our stderr asynchronously; an immediate MPI_Abort can tear
    # the forwarding down before the error line got through (seen with MPICH's hydra)
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
    time.sleep(0.25)


class _Watchdog:
    """A daemon thread that aborts the job when one collective waits longer than
    ``timeout`` seconds (mpi4py releases the GIL while it waits)."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.what = None
        self.since = 0.0
        self._lock = threading.Lock()
        t = threading.Thread(target=self._run, name="fastbp-mpi-watchdog", daemon=True)
        t.start()

    def enter(self, what):
        with self._lock:
            self.what = what
            self.since = time.monotonic()

    def leave(self):
        with self._lock:
            self.what = None

    def _run(self):
        poll = min(1.0, max(self.timeout / 10, 0.05))
        while True:
            time.sleep(poll)
            with self._lock:
                what, since = self.what, self.since
            if what is not None and time.monotonic() - since > self.timeout:
                c = _state.comm
                print(f"fastbp: error: rank {c.Get_rank()}/{c.Get_size()}: no answer from "
                      f"the other ranks for {self.timeout:g} s while {what} (a rank hangs "
                      f"or died; FASTBP_MPI_TIMEOUT sets the limit); aborting the job",
                      file=sys.stderr, flush=True)
                _flush_before_abort()
                c.Abort(1)
                return


class _collective:
    """Context manager around a blocking collective: arms the watchdog."""

    __slots__ = ("what",)

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        wd = _state.watchdog
        if wd is not None:
            wd.enter(self.what)

    def __exit__(self, *exc):
        wd = _state.watchdog
        if wd is not None:
            wd.leave()
        return False


# ---------------------------------------------------------------------- failures
def collective_status(error=None):
    """Tell every rank whether this one got ready for training (``error`` None) or failed
    (``error`` a one-line message). Every rank must call it once, at the same point.

    If every rank is ready it returns and marks the training phase (from then on a
    failing rank aborts the job). Otherwise it returns ``(first_failing_rank, message)``
    on the first failing rank (which then reports the error itself) and raises
    :class:`RankFailure` on every other rank (they exit quietly)."""
    c = comm()
    with _collective("checking that every rank is ready"):
        status = c.allgather(None if error is None else str(error))
    failed = [(r, m) for r, m in enumerate(status) if m is not None]
    if not failed:
        _state.training = True
        return None
    first, msg = failed[0]
    _state.reported = True
    if c.Get_rank() == first:
        return first, msg
    raise RankFailure(f"rank {first} failed: {msg}", 1)


def in_training_phase():
    """True once every rank passed :func:`collective_status` (errors must then abort)."""
    return _state.comm is not None and _state.training and _state.comm.Get_size() > 1


def error_hook(message, code):
    """For a command-line front end, called with the one-line error of this rank before it
    exits: returns the message to print (prefixed with the rank), or None when nothing
    should be printed; aborts the job after printing if training had started.

    Before training: the error is exchanged with the other ranks (they are waiting in
    :func:`collective_status`) and only the first failing rank prints it."""
    c = _state.comm
    if c is None or c.Get_size() == 1:
        return message
    prefix = f"rank {c.Get_rank()}/{c.Get_size()}: "
    if _state.training or _state.reported:
        return prefix + message
    got = collective_status(message)   # raises RankFailure on the other ranks
    return prefix + got[1] if got is not None else None


def finish_error(code):
    """After the front end printed the error of :func:`error_hook`: abort the job when the
    ranks are training (the others may be waiting in a collective)."""
    if in_training_phase():
        abort(code)


# ---------------------------------------------------------------------- sharding
def shard_bounds(n, rank_=None, size_=None):
    """``(lo, hi)``: this rank's contiguous share ``[lo, hi)`` of ``n`` items,
    ``lo = n * rank // size``: shares differ by at most one item, and some ranks get
    nothing when ``n < size``."""
    r = rank() if rank_ is None else int(rank_)
    s = size() if size_ is None else int(size_)
    return (n * r) // s, (n * (r + 1)) // s


def shard(batch):
    """This rank's contiguous share of the sequence or array ``batch`` (see
    :func:`shard_bounds`)."""
    lo, hi = shard_bounds(len(batch))
    return batch[lo:hi]


def shard_generator(gen, lo, hi, n, per_row):
    """The :class:`fastbp.Generator` a rank draws its dropout mask from when a batch of
    ``n`` examples is sharded and this rank has rows ``[lo, hi)`` of ``per_row`` elements
    each: a generator positioned where one process's draw of the whole ``(n, per_row)``
    mask reaches row ``lo`` (fastbp's dropout uses 32 bits per element, two per word).
    ``gen`` itself is advanced past the whole batch's draw, so that every rank's stream
    stays where one process's would be. For models that draw one such mask per step."""
    from .random import Generator

    if (lo * per_row) % 2:
        raise ValueError("shard_generator: the rank's first element must start a 64-bit "
                         f"word (rows from {lo} of {per_row} elements)")
    st = gen.state
    g = Generator(0)
    g.state = {"key": st["key"], "counter": (st["counter"] + lo * per_row // 2) % 2**64}
    gen.state = {"key": st["key"], "counter": (st["counter"] + -(-n * per_row // 2)) % 2**64}
    return g


class ShardedStream:
    """A view of a :class:`numpy.random.Generator` that makes a rank's dropout masks the
    rows ``[lo, hi)`` of the masks one process would draw for the whole batch of ``n``
    examples: each ``random(shape)`` call with ``shape[0] == hi - lo`` skips the draws of
    the rows before ``lo``, draws its own rows and skips those after ``hi``, so the
    generator ends where one process's would. Skipping uses the bit generator's
    ``advance`` (PCG64, Philox: O(log n)); for others it draws the whole batch and slices.

    So a 2-rank run with dropout gives the masks, and the model, of a 1-rank run (to
    float tolerance). Only ``random`` (float64) is supported: the sharding of other
    distributions is not defined (TypeError)."""

    __slots__ = ("_rng", "lo", "hi", "n")

    def __init__(self, rng, lo, hi, n):
        self._rng = rng
        self.lo, self.hi, self.n = int(lo), int(hi), int(n)

    def random(self, size=None, dtype=np.float64, out=None):
        if np.dtype(dtype) != np.float64 or out is not None or size is None:
            raise TypeError("ShardedStream.random supports random(shape) in float64 only")
        shape = (size,) if np.ndim(size) == 0 else tuple(int(s) for s in size)
        rows = self.hi - self.lo
        if not shape or shape[0] != rows:
            raise ValueError(f"ShardedStream: a draw of shape {shape} does not have one row "
                             f"per example of this rank ({rows})")
        per_row = int(np.prod(shape[1:], dtype=np.int64))
        bitgen = self._rng.bit_generator
        if hasattr(bitgen, "advance"):
            if self.lo:
                bitgen.advance(self.lo * per_row)
            out = self._rng.random(shape)
            if self.n - self.hi:
                bitgen.advance((self.n - self.hi) * per_row)
            return out
        full = self._rng.random((self.n,) + shape[1:])
        return full[self.lo:self.hi]

    def __getattr__(self, name):
        raise TypeError(f"ShardedStream: {name!r} is not supported for sharded draws "
                        "(only random(shape))")


# ---------------------------------------------------------------------- gradients
class _DenseLayout:
    """One flat buffer per dtype for the dense gradients of a fixed parameter list; each
    parameter's gradient buffer (``_grad_buf``) is a view into it."""

    def __init__(self, params):
        self.params = params
        self.flat = {}
        self.views = []
        sizes = {}
        for p in params:
            sizes[p.data.dtype] = sizes.get(p.data.dtype, 0) + p.data.size
        for dt, n in sizes.items():
            self.flat[dt] = np.empty(n, dt)
        offs = dict.fromkeys(sizes, 0)
        for p in params:
            dt = p.data.dtype
            o = offs[dt]
            v = self.flat[dt][o:o + p.data.size].reshape(p.data.shape)
            offs[dt] = o + p.data.size
            self.views.append(v)
            p._grad_buf = v   # the next backward writes straight into the flat buffer


_layouts = {}


def _layout(params):
    key = tuple((id(p), p.data.shape, p.data.dtype.str) for p in params)
    lay = _layouts.get(key)
    if lay is None or any(a is not b for a, b in zip(lay.params, params)):
        if len(_layouts) > 8:
            _layouts.clear()
        lay = _layouts[key] = _DenseLayout(list(params))
    return lay


def _fingerprint(params):
    text = ";".join(f"{p.data.shape}{p.data.dtype.str}" for p in params)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "little")


def average_gradients(params, count=None):
    """Combine the gradients of ``params`` across the ranks, in place.

    With ``count`` (the number of examples this rank's gradient is the *mean* over; 0
    for a rank with none) every ``p.grad`` becomes ``sum_r count_r * g_r / sum_r
    count_r``: the gradient of the mean loss over every rank's examples, i.e. what one
    process gets for the whole global batch. Without ``count`` it is the plain average
    ``sum_r g_r / size``. Every rank must call it with the same parameter list (same
    shapes and dtypes, in the same order).

    Dense gradients are summed with one in-place ``Allreduce``; row-sparse ones
    (:class:`~fastbp.sparse.RowSparseGrad`) are exchanged as rows and values
    (``Allgatherv``), never as dense tables; a parameter whose gradient is dense on some
    rank is densified everywhere (as one process would add the two); one whose gradient
    is None on every rank stays None, and a rank without a gradient for it contributes
    zero. Returns None.

    Raises
    ------
    DistributedError
        The ranks passed different parameter lists or disagree about ``count``
        (given on some ranks only).
    """
    params = list(params)
    c = comm()
    nranks = c.Get_size()
    P = len(params)
    if nranks == 1:
        return None
    MPI = _state.MPI
    ops = backends.get_ops()
    # local row-sparse gradients, coalesced (one row per id: less to send)
    local_sparse = {}
    meta = np.zeros(2 + 2 * P, np.int64)
    meta[0] = _fingerprint(params)
    meta[1] = -1 if count is None else int(count)
    if count is not None and meta[1] < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    for i, p in enumerate(params):
        g = p.grad
        if g is None:
            continue
        if type(g) is RowSparseGrad:
            rows, vals = ops.coalesce_rows(g.rows, g.values)
            local_sparse[i] = (rows.astype(np.int64, copy=False), vals)
            meta[2 + i] = _KIND_SPARSE
            meta[2 + P + i] = rows.shape[0]
        else:
            meta[2 + i] = _KIND_DENSE
    allmeta = np.empty((nranks, meta.size), np.int64)
    with _collective("exchanging gradient sizes"):
        c.Allgather(meta, allmeta)
    if np.any(allmeta[:, 0] != allmeta[0, 0]):
        raise DistributedError("average_gradients: the ranks passed different parameter "
                               "lists (shapes or dtypes differ)")
    counts = allmeta[:, 1]
    if np.any(counts < 0) and not np.all(counts < 0):
        raise DistributedError("average_gradients: count was given on some ranks only")
    if counts[0] < 0:
        weight = 1.0 / nranks
    else:
        total = int(counts.sum())
        weight = counts[c.Get_rank()] / total if total else 0.0
    kinds = allmeta[:, 2:2 + P]
    nrows = allmeta[:, 2 + P:]
    dense_mask = (kinds == _KIND_DENSE).any(axis=0)
    sparse_mask = ~dense_mask & (kinds == _KIND_SPARSE).any(axis=0)

    # dense: one flat buffer per dtype, the gradient buffers being views of it
    dense = [p for i, p in enumerate(params) if dense_mask[i]]
    if dense:
        lay = _layout(dense)
        for p, v in zip(dense, lay.views):
            g = p.grad
            if g is v:
                continue
            if g is None:
                v[...] = 0
            elif type(g) is RowSparseGrad:   # sparse here, dense on another rank
                v[...] = 0
                ops.scatter_add_rows(v, g.rows, g.values, 1.0)
            else:
                np.copyto(v, g)
        for dt, flat in lay.flat.items():
            if weight != 1.0:
                flat *= dt.type(weight)
            with _collective("summing dense gradients"):
                c.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        for p, v in zip(dense, lay.views):
            p.grad = v

    # row-sparse: rows and values of every rank, concatenated
    for i in np.flatnonzero(sparse_mask):
        p = params[i]
        d = p.data.shape[1]
        dt = p.data.dtype
        rows, vals = local_sparse.get(i, (np.empty(0, np.int64), np.empty((0, d), dt)))
        if weight != 1.0 and vals.size:
            vals *= dt.type(weight)   # a fresh array from coalesce_rows
        n_r = nrows[:, i]
        n_all = int(n_r.sum())
        all_rows = np.empty(n_all, np.int64)
        all_vals = np.empty((n_all, d), dt)
        displ = np.concatenate([[0], np.cumsum(n_r)[:-1]])
        mpi_t = MPI.DOUBLE if dt == np.float64 else MPI.FLOAT
        with _collective("gathering embedding rows"):
            c.Allgatherv([rows, MPI.INT64_T],
                         [all_rows, (n_r.tolist(), displ.tolist()), MPI.INT64_T])
            c.Allgatherv([np.ascontiguousarray(vals), mpi_t],
                         [all_vals, ((n_r * d).tolist(), (displ * d).tolist()), mpi_t])
        p.grad = RowSparseGrad(all_rows.astype(np.intp, copy=False), all_vals, p.data.shape)
    return None


def allreduce_sum(values):
    """Sum ``values`` (numbers or an array) over the ranks; returns a float64 array."""
    arr = np.array(values, dtype=np.float64, copy=True).reshape(-1)
    c = comm()
    if c.Get_size() > 1:
        with _collective("summing statistics"):
            c.Allreduce(_state.MPI.IN_PLACE, arr, op=_state.MPI.SUM)
    return arr


def checksum(params):
    """SHA-256 (hex) of the bytes of the parameters' data, in order."""
    h = hashlib.sha256()
    for p in params:
        a = np.ascontiguousarray(p.data if hasattr(p, "data") else p)
        h.update(a.dtype.str.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def check_identical(params):
    """Check that every rank holds bitwise the same parameters; returns their SHA-256.

    Raises DistributedError on every rank, naming the ranks that differ from rank 0."""
    params = list(params)
    digest = checksum(params)
    c = comm()
    if c.Get_size() == 1:
        return digest
    with _collective("comparing parameters"):
        digests = c.allgather(digest)
    bad = [r for r, d in enumerate(digests) if d != digests[0]]
    if bad:
        raise DistributedError(
            f"parameters differ between ranks after training: rank(s) "
            f"{', '.join(map(str, bad))} differ from rank 0 (checksums "
            + ", ".join(f"{r}:{d[:12]}" for r, d in enumerate(digests)) + ")")
    return digest
