"""Backend selection: which implementation of the ops the graph layer calls.

``"cython"`` (the default) runs the typed kernels of :mod:`fastbp_ext._kernels`;
``"numpy"`` runs :class:`~fastbp.backends.numpy_ops.NumpyOps`, the reference.

The choice is per thread: :func:`set_backend` changes the process default and the calling
thread's backend, :func:`use_backend` changes the calling thread's backend for a block.
"""

from __future__ import annotations

import contextlib
import threading

from .numpy_ops import NumpyOps

__all__ = ["set_backend", "get_backend", "use_backend", "get_ops", "NumpyOps", "BACKENDS"]

BACKENDS = ("cython", "numpy")

_instances = {"numpy": NumpyOps()}
_default = ["numpy"]


def _load_cython():
    if "cython" not in _instances:
        try:
            from .cython_ops import CythonOps
        except ImportError as exc:
            raise ImportError(_missing_kernels_message(exc)) from exc
        _instances["cython"] = CythonOps()
    return _instances["cython"]


def _missing_kernels_message(exc):
    import importlib.util
    import os

    msg = (
        "fastbp's compiled kernels (fastbp_ext._kernels) are not built or cannot be loaded. "
        "Install from source with `pip install .` (needs a C compiler), or, in a source "
        "checkout, build them in place with `python setup.py build_ext --inplace`. "
        "FASTBP_BACKEND=numpy runs the pure-numpy reference without them."
    )
    spec = importlib.util.find_spec("fastbp_ext")
    if spec is not None and spec.origin and os.getcwd() == os.path.dirname(
        os.path.dirname(spec.origin)
    ):
        msg += (
            " Note: Python is importing fastbp from the source checkout in the current "
            "directory, which shadows an installed copy; run from another directory."
        )
    return msg + f" (original error: {exc})"


def _resolve(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return _load_cython() if name == "cython" else _instances["numpy"]


class _State(threading.local):
    def __init__(self):
        self.ops = _resolve(_default[0])
        self.grad_enabled = True
        self.anomaly = False
        self.trace = None  # the fastbp.compile trace in progress (fastbp/jit.py)


_state = None  # created by _init() once the default backend is known


def _init(default):
    global _state
    _resolve(default)
    _default[0] = default
    _state = _State()
    return _state


def get_ops():
    """The ops object of the calling thread's current backend."""
    return _state.ops


def set_backend(name):
    """Make ``name`` (``"cython"`` or ``"numpy"``) the backend of this thread and the
    default of threads that start afterwards."""
    ops = _resolve(name)
    _default[0] = name
    _state.ops = ops


def get_backend():
    """Name of the calling thread's current backend."""
    return _state.ops.name


@contextlib.contextmanager
def use_backend(name):
    """Context manager running its block with backend ``name`` in the calling thread."""
    ops = _resolve(name)
    previous = _state.ops
    _state.ops = ops
    try:
        yield ops
    finally:
        _state.ops = previous
