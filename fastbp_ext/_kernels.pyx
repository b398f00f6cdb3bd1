# cython: language_level=3
"""The kernels of fastbp, gathered in one namespace.

Each kind of kernel lives in an extension module of its own, sharing the C layer of
``_common.pxd`` (types, the kernel-call ABI, argument checks, the thread policy),
``_blas.pxd`` (row-major BLAS through :mod:`scipy.linalg.cython_blas`) and the
vectorised loops of ``_simd*.h``:

==================  ==========================================================
``_linalg``         gemm, gemv, ger, dot, scale, linear
``_activations``    tanh, sigmoid, relu and their backprops, bias_act, dropout
``_elementwise``    broadcasting add/sub/mul/div/maximum/minimum, exp/log/sqrt/power
``_reductions``     sums, unbroadcast/expand, max, logsumexp, softmax, log_softmax
``_indexing``       copy_into, gather/backprop_gather, concatenate
``_embedding``      embedding window gather, row scatter-add, coalescing
``_losses``         fused softmax cross-entropy, sigmoid binary cross-entropy
``_optim``          in-place SGD and Adam, dense and row-sparse
``_random``         dropout drawn from the counter-based generator in the kernel
==================  ==========================================================

Every kernel has two layers: a C-level ``nogil`` entry point reading a ``Call`` record
(raw pointers, sizes, call constants) and a Python wrapper that validates its arguments
and launches it. Conventions of the Python API (those of
:class:`fastbp.backends.numpy_ops.NumpyOps`):

* ops that produce a gradient take ``out`` and ``beta`` and write
  ``out = result + beta * out``; ``beta == 0`` never reads ``out``; ``out=None``
  allocates (and ``beta`` is then ignored). The ``out`` array is returned.
* arrays are float32 or float64, all of one dtype: mixing raises :class:`TypeError`
  naming both dtypes (no silent upcasts); other dtypes raise :class:`TypeError`.
* non-C-contiguous, misaligned or byte-swapped *inputs* are accepted; arrays a kernel
  *writes* must be C-contiguous, aligned, native and writeable, else
  :class:`ValueError` (``copy_into`` also writes strided views).
* wrong shapes raise :class:`ValueError` naming the shapes; indices out of range raise
  :class:`IndexError` naming the index.
"""

import importlib as _importlib

from fastbp_ext._common import (  # noqa: F401
    set_num_threads, get_num_threads, _parallel_thresholds, _default_threads,
    BOUNDSCHECK, LIBMVEC, UnsupportedBroadcast)

_KINDS = ("_linalg", "_activations", "_elementwise", "_reductions", "_indexing",
          "_embedding", "_losses", "_optim", "_random")
for _kind in _KINDS:
    _mod = _importlib.import_module("fastbp_ext." + _kind)
    globals().update({_name: getattr(_mod, _name) for _name in _mod.__all__})
del _kind, _mod
