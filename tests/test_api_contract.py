"""The public contract of the issue: the example runs as written, and after a normal
install the compiled kernels are the ones in use."""

import importlib.machinery

import numpy as np
import pytest

import fastbp as fb


def test_default_backend_is_compiled():
    import fastbp_ext._kernels as kernels
    from fastbp.backends.cython_ops import CythonOps

    assert fb.get_backend() == "cython"
    assert isinstance(fb.backends.get_ops(), CythonOps)
    assert kernels.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_backend_selection():
    assert fb.get_backend() == "cython"
    with fb.use_backend("numpy"):
        assert fb.get_backend() == "numpy"
    assert fb.get_backend() == "cython"
    fb.set_backend("numpy")
    try:
        assert fb.get_backend() == "numpy"
    finally:
        fb.set_backend("cython")
    with pytest.raises(ValueError, match="unknown backend"):
        fb.set_backend("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_issue_example(backend, dtype):
    V, d, w, H, C, B = 100, 8, 5, 16, 5, 12
    rng = np.random.default_rng(0)
    E = fb.Parameter(rng.standard_normal((V, d)).astype(dtype))
    W = fb.Parameter((rng.standard_normal((w * d, H)) * 0.1).astype(dtype))
    b = fb.Parameter(np.zeros(H, dtype))
    U = fb.Parameter((rng.standard_normal((H, C)) * 0.1).astype(dtype))
    c = fb.Parameter(np.zeros(C, dtype))
    ids = rng.integers(0, V, size=(B, w))
    y = rng.integers(0, C, size=B)
    opt = fb.optim.SGD([E, W, b, U, c], lr=0.5)
    losses = []
    for _ in range(30):
        x = fb.embedding(E, ids)
        h = fb.tanh(x @ W + b)
        loss = fb.cross_entropy(h @ U + c, y)
        assert loss.shape == () and loss.dtype == dtype
        loss.backward()
        assert all(p.grad is not None for p in (E, W, b, U, c))
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_tensor_basics():
    t = fb.Tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.dtype == np.float64 and not t.requires_grad
    assert t.grad is None and t.is_leaf
    assert (t.sum()).item() == 15.0
    assert t.mean().item() == 2.5
    np.testing.assert_array_equal(t.sum(axis=0, keepdims=True).data, [[3.0, 5.0, 7.0]])
    assert "Tensor" in repr(t) and "Parameter" in repr(fb.Parameter(np.ones(2)))


def test_import_changes_no_process_wide_setting():
    """Importing fastbp leaves glibc's malloc and OpenBLAS's environment alone; the
    malloc tuning is an explicit call (fb.tune_malloc(), made by the CLI)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "FASTBP_MALLOC_TUNING")}
    code = ("import os, fastbp, fastbp._malloc as m; "
            "print('OPENBLAS_THREAD_TIMEOUT' in os.environ, m.tuned)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "False"]
