"""Data-parallel training over MPI, tested under a real ``mpiexec -n 2``.

The MPI runs are subprocesses (``mpiexec -n 2 python tests/_mpi_worker.py ...`` and
``mpiexec -n 2 python -m fastbp train ... --distributed``), compared with a plain
one-process run of the same thing. They skip when mpi4py or ``mpiexec`` is missing
(``pip install "fastbp[mpi]"`` installs both).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb
import fastbp.distributed as dist
from fastbp.ner.data import write_conll
from fastbp.ner.synthetic import generate_corpus

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_mpi_worker.py"


def _mpiexec():
    # prefer the launcher installed beside this Python (the mpich wheel's), which matches
    # the MPI library mpi4py loads
    local = Path(sys.executable).parent / "mpiexec"
    return str(local) if local.exists() else shutil.which("mpiexec")


try:
    import mpi4py  # noqa: F401
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False

needs_mpi = pytest.mark.skipif(
    not HAVE_MPI4PY or _mpiexec() is None,
    reason='needs mpi4py and mpiexec (pip install "fastbp[mpi]")')

TIMEOUT = 120  # seconds for any one MPI run (a hang fails the test instead of CI)


def _run(args, n=None, env=None, timeout=TIMEOUT):
    cmd = ([_mpiexec(), "-n", str(n)] if n else []) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _worker(mode, out, *opts, n=None):
    args = [sys.executable, WORKER, mode, out, *opts]
    if n:
        args.append("--distributed")
    proc = _run(args, n)
    assert proc.returncode == 0, proc.stderr
    return dict(np.load(out))


# ---------------------------------------------------------------------- in-process
def test_shard_bounds_cover_the_batch():
    for n in (0, 1, 2, 7, 2048):
        for size in (1, 2, 3, 8):
            b = [dist.shard_bounds(n, r, size) for r in range(size)]
            assert b[0][0] == 0 and b[-1][1] == n
            assert all(b[r][1] == b[r + 1][0] for r in range(size - 1))
            assert max(hi - lo for lo, hi in b) - min(hi - lo for lo, hi in b) <= 1


@pytest.mark.parametrize("bitgen", [np.random.PCG64, np.random.MT19937])
def test_sharded_stream_gives_the_rows_of_the_global_draw(bitgen):
    """Each rank's draws are its rows of one process's draw, and the stream ends where
    one process's does (PCG64: skipping by advance; MT19937: drawing all and slicing)."""
    n, h = 10, 7
    ref = np.random.Generator(bitgen(5))
    want = [ref.random((n, h)), ref.random((n, h))]
    for size in (1, 2, 3, 11):
        for r in range(size):
            lo, hi = dist.shard_bounds(n, r, size)
            g = np.random.Generator(bitgen(5))
            for step in range(2):
                got = dist.ShardedStream(g, lo, hi, n).random((hi - lo, h))
                np.testing.assert_array_equal(got, want[step][lo:hi])
            assert g.random() == np.random.Generator(bitgen(5)).random(2 * n * h + 1)[-1]


def test_shard_generator_gives_the_rows_of_the_global_mask():
    """A rank's fb.Generator draws its rows of the (n, h) dropout mask one process
    draws, and the shared generator ends where one process's does."""
    n, h, p = 10, 8, 0.5
    ones = fb.Tensor(np.ones((n, h), np.float32))
    ref = fb.Generator(5)
    want = [fb.dropout(ones, p, True, ref).data for _ in range(2)]
    for size in (1, 2, 3):
        for r in range(size):
            lo, hi = dist.shard_bounds(n, r, size)
            g = fb.Generator(5)
            for step in range(2):
                mine = dist.shard_generator(g, lo, hi, n, h)
                got = fb.dropout(fb.Tensor(np.ones((hi - lo, h), np.float32)), p, True, mine)
                np.testing.assert_array_equal(got.data, want[step][lo:hi])
            assert g.state == ref.state
    with pytest.raises(ValueError, match="64-bit word"):
        dist.shard_generator(fb.Generator(0), 1, 2, 3, 7)


def test_sharded_stream_rejects_other_draws():
    s = dist.ShardedStream(np.random.default_rng(0), 0, 3, 6)
    with pytest.raises(ValueError, match="one row per example"):
        s.random((4, 2))
    with pytest.raises(TypeError, match="float64"):
        s.random((3, 2), dtype=np.float32)
    with pytest.raises(TypeError, match="normal"):
        s.normal(size=3)


def test_missing_mpi4py_names_the_extra(tmp_path):
    """Without mpi4py, init() raises ImportError naming the extra to install (mpi4py is
    hidden from a child process through sys.modules)."""
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import fastbp.distributed as d\n"
            "try:\n    d.init()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert 'pip install "fastbp[mpi]"' in out.stdout, out.stderr
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from fastbp.cli import main\n"
            "sys.exit(main(['train', '--train', 'x', '--out', 'y', '--distributed']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "fastbp[mpi]"' in lines[0], out.stderr


# ---------------------------------------------------------------------- gradients
@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_average_gradients_equals_the_whole_batch(tmp_path, n):
    """Uneven shares (5, 0, 2 examples): the count-weighted combination is the gradient
    of the whole batch's mean loss, for a row-sparse table, a table dense on one rank
    and row-sparse on the others (densified), a dense matrix and an unused parameter."""
    one = _worker("grads", tmp_path / "one.npz")
    many = _worker("grads", tmp_path / "many.npz", n=n)
    for k in "ETWQ":
        np.testing.assert_allclose(many[k], one[k], rtol=1e-12, atol=1e-15, err_msg=k)
    assert str(one["E_kind"]) == str(many["E_kind"]) == "RowSparseGrad"
    assert str(many["T_kind"]) == "ndarray"   # dense on rank 0: densified everywhere
    assert str(many["Q_kind"]) == "NoneType"
    assert np.abs(one["E"]).max() > 0.1 and np.abs(one["T"]).max() > 1e-3


@needs_mpi
def test_exception_on_one_rank_aborts_the_job(tmp_path):
    """abort_on_error: rank 1 raises while rank 0 waits in average_gradients; the job
    ends non-zero at once (no watchdog wait) with one line naming the rank."""
    t0 = time.monotonic()
    proc = _run([sys.executable, WORKER, "fail", tmp_path / "x", "--distributed"], 2,
                env={"FASTBP_MPI_TIMEOUT": "100"})
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("fastbp: error:")]
    assert errors == ["fastbp: error: rank 1/2: ValueError: bad batch on this rank"], \
        proc.stderr


# ---------------------------------------------------------------------- training
CASES = {
    "adam": ["--optimizer", "adam", "--batch-size", "100"],
    "sgd": ["--optimizer", "sgd", "--batch-size", "100"],
    # 1188 windows: batches of 1187 and 1, so rank 0 gets no example in the last one
    "adam-last-batch-of-one": ["--optimizer", "adam", "--batch-size", "1187", "--epochs", "3"],
    "adam-dropout": ["--optimizer", "adam", "--batch-size", "100", "--dropout", "0.5"],
    "sgd-dropout": ["--optimizer", "sgd", "--batch-size", "100", "--dropout", "0.5"],
}


@needs_mpi
@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_train_the_model_of_one_process(tmp_path, case):
    """Every parameter, the embedding table included, of a 2-rank run equals the
    1-process run at the same global batch (float64: to ~1e-15 relative; the dropout
    masks are the rows of one process's masks)."""
    opts = CASES[case]
    one = _worker("train", tmp_path / "one.npz", *opts)
    two = _worker("train", tmp_path / "two.npz", *opts, n=2)
    assert int(one["n_windows"]) == 1188
    names = [k for k in one if k not in ("checksum", "n_windows")]
    assert "embedding.weight" in names and len(names) == 5
    for k in names:
        scale = np.abs(one[k]).max()
        assert np.abs(two[k] - one[k]).max() <= 1e-12 * scale, k
    assert len(str(two["checksum"])) == 64


@needs_mpi
def test_float32_two_ranks_match_to_float_tolerance(tmp_path):
    opts = ["--dtype", "float32", "--dropout", "0.5", "--batch-size", "100"]
    one = _worker("train", tmp_path / "one.npz", *opts)
    two = _worker("train", tmp_path / "two.npz", *opts, n=2)
    for k in one:
        if k not in ("checksum", "n_windows"):
            assert two[k].dtype == np.float32
            np.testing.assert_allclose(two[k], one[k], rtol=1e-4, atol=1e-5, err_msg=k)


@needs_mpi
def test_one_rank_is_bitwise_the_plain_run(tmp_path):
    """Under ``mpiexec -n 1`` nothing is exchanged or rescaled: the same bits."""
    opts = ["--dropout", "0.5"]
    one = _worker("train", tmp_path / "one.npz", *opts)
    mpi1 = _worker("train", tmp_path / "mpi1.npz", *opts, n=1)
    for k in one:
        if k not in ("checksum", "n_windows"):
            np.testing.assert_array_equal(mpi1[k], one[k], err_msg=k)


# ---------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("mpi-corpus")
    train, dev = generate_corpus(n_train=300, n_dev=60, seed=1)
    write_conll(d / "train.conll", train)
    write_conll(d / "dev.conll", dev)
    return d


def _train_cmd(corpus, out, *extra, train=None):
    return [sys.executable, "-m", "fastbp", "train", "--train", train or corpus / "train.conll",
            "--dev", corpus / "dev.conll", "--out", out, "--epochs", "2", "--batch-size", "64",
            "--dtype", "float64", "--threads", "1", "--quiet", *extra]


@needs_mpi
def test_cli_distributed_matches_one_process(corpus, tmp_path):
    one = _run(_train_cmd(corpus, tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = _run(_train_cmd(corpus, tmp_path / "two", "--distributed"), n=2)
    assert two.returncode == 0, two.stderr
    # rank 0 alone reports and saves
    assert two.stdout.count("model saved to") == 1
    assert two.stdout.count("best epoch:") == 1
    f1 = [ln for ln in one.stdout.splitlines() if ln.startswith("best epoch")]
    assert f1 and f1 == [ln for ln in two.stdout.splitlines() if ln.startswith("best epoch")]
    a = np.load(tmp_path / "one" / "weights.npz")
    b = np.load(tmp_path / "two" / "weights.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-10, atol=1e-12, err_msg=k)


@needs_mpi
def test_cli_distributed_prints_the_checksum(corpus, tmp_path):
    cmd = [c for c in _train_cmd(corpus, tmp_path / "m", "--distributed") if c != "--quiet"]
    proc = _run(cmd, n=2)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "identical on all 2 ranks" in ln]
    assert len(lines) == 1, proc.stderr
    assert proc.stderr.count("epoch 1/2") == 1   # epoch lines from rank 0 only


@needs_mpi
@pytest.mark.parametrize("bad_rank", [0, 1])
def test_cli_unreadable_file_on_one_rank(corpus, tmp_path, bad_rank):
    """The training file is missing on one rank only (MPMD launch): every rank exits,
    non-zero, with one error line naming the rank and the file, and no hang."""
    good = _train_cmd(corpus, tmp_path / "m", "--distributed")
    bad = _train_cmd(corpus, tmp_path / "m", "--distributed", train=tmp_path / "nope.conll")
    ranks = [bad, good] if bad_rank == 0 else [good, bad]
    cmd = [_mpiexec(), "-n", "1", *map(str, ranks[0]), ":", "-n", "1", *map(str, ranks[1])]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("fastbp: error:")]
    assert errors == [f"fastbp: error: rank {bad_rank}/2: {tmp_path / 'nope.conll'}: "
                      "file not found"], proc.stderr
    assert not (tmp_path / "m").exists()


@needs_mpi
def test_cli_hanging_rank_is_aborted_by_the_watchdog(corpus, tmp_path):
    """One rank blocks forever reading its training file (a FIFO nobody writes): the
    other rank's watchdog aborts the job after FASTBP_MPI_TIMEOUT seconds."""
    fifo = tmp_path / "fifo.conll"
    os.mkfifo(fifo)
    good = _train_cmd(corpus, tmp_path / "m", "--distributed")
    bad = _train_cmd(corpus, tmp_path / "m", "--distributed", train=fifo)
    cmd = [_mpiexec(), "-n", "1", *map(str, good), ":", "-n", "1", *map(str, bad)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "FASTBP_MPI_TIMEOUT": "3"})
    took = time.monotonic() - t0
    assert proc.returncode != 0
    assert 3 <= took < 60
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("fastbp: error:")]
    assert len(errors) == 1 and "rank 0/2: no answer from the other ranks for 3 s" in \
        errors[0], proc.stderr


def _rank_pids(marker):
    """PIDs of this user's processes whose command line contains ``marker``, by MPI rank
    (from PMI_RANK in their environment)."""
    pids = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if marker not in (d / "cmdline").read_bytes().decode(errors="replace"):
                continue
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"PMI_RANK="):
                pids[int(item[9:])] = int(d.name)
    return pids


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_cli_killed_rank_ends_the_job(corpus, tmp_path):
    """SIGKILL of rank 1 in the middle of training: the job ends, non-zero, within a
    bound (the launcher kills the other ranks; the watchdog is the fallback)."""
    out = tmp_path / "killed-model"
    cmd = [str(c) for c in _train_cmd(corpus, out, "--distributed")]
    cmd[cmd.index("--epochs") + 1] = "100000"
    cmd.remove("--quiet")
    proc = subprocess.Popen([_mpiexec(), "-n", "2", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FASTBP_MPI_TIMEOUT": "20"})
    try:
        for line in proc.stderr:   # wait until training runs
            if line.startswith("epoch 1/"):
                break
        pids = _rank_pids(str(out))
        assert set(pids) == {0, 1}, pids
        os.kill(pids[1], signal.SIGKILL)
        t0 = time.monotonic()
        rc = proc.wait(timeout=60)
        assert time.monotonic() - t0 < 30
        assert rc != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
