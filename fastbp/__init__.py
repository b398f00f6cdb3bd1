"""fastbp: a Cython-accelerated numeric backpropagation engine.

Build the computation eagerly with tensors, call ``loss.backward()`` and read ``.grad``;
forward and backward run in typed Cython kernels (BLAS through SciPy) or, for reference,
in numpy::

    import fastbp as fb
    x = fb.embedding(E, ids)
    h = fb.tanh(x @ W + b)
    loss = fb.cross_entropy(h @ U + c, y)
    loss.backward()
"""

import os as _os

from . import backends as _backends
from ._malloc import tune_malloc

# Importing fastbp changes no process-wide setting. (Until compiled step plans existed it
# tuned glibc's malloc and set OPENBLAS_THREAD_TIMEOUT on import; re-measured with plans,
# neither is needed by fb.compile -- see "Process-wide settings" in the README -- so the
# malloc tuning is an explicit call, fb.tune_malloc(), made by the fastbp CLI.)

# The default backend is the compiled one; importing fails loudly, with build
# instructions, if the kernels are missing. FASTBP_BACKEND=numpy selects the reference.
_backends._init(_os.environ.get("FASTBP_BACKEND", "cython"))

from . import optim  # noqa: E402
from .threads import _init_from_env as _init_threads  # noqa: E402
from .threads import get_num_threads, set_num_threads  # noqa: E402
from .backends import get_backend, set_backend, use_backend  # noqa: E402
from .gradcheck import GradcheckError, GradcheckResult, gradcheck  # noqa: E402
from .function import Function, FunctionCtx  # noqa: E402
from .functional import jacobian  # noqa: E402
from .sparse import RowSparseGrad  # noqa: E402
from .tensor import (  # noqa: E402
    AnomalyError,
    Parameter,
    Tensor,
    add,
    binary_cross_entropy_with_logits,
    concatenate,
    cross_entropy,
    detect_anomaly,
    div,
    dropout,
    embedding,
    enable_grad,
    exp,
    is_grad_enabled,
    linear,
    log,
    log_softmax,
    logsumexp,
    matmul,
    maximum,
    minimum,
    mul,
    no_grad,
    relu,
    sigmoid,
    softmax,
    sqrt,
    stack,
    sub,
    tanh,
    tensor_sum,
)

from . import random  # noqa: E402
from .random import Generator, manual_seed  # noqa: E402
from . import nn  # noqa: E402
from .serialization import CheckpointError, load, save  # noqa: E402
from .draw import draw  # noqa: E402  (after the line above: fastbp.draw is the function)
from .jit import CompiledFunction, compile  # noqa: E402,A004

_init_threads()

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "Parameter",
    "RowSparseGrad",
    "add",
    "sub",
    "mul",
    "div",
    "exp",
    "log",
    "sqrt",
    "maximum",
    "minimum",
    "logsumexp",
    "softmax",
    "log_softmax",
    "concatenate",
    "stack",
    "matmul",
    "linear",
    "tensor_sum",
    "tanh",
    "sigmoid",
    "relu",
    "dropout",
    "Generator",
    "manual_seed",
    "random",
    "embedding",
    "cross_entropy",
    "binary_cross_entropy_with_logits",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "detect_anomaly",
    "AnomalyError",
    "gradcheck",
    "GradcheckError",
    "GradcheckResult",
    "Function",
    "FunctionCtx",
    "jacobian",
    "optim",
    "nn",
    "save",
    "load",
    "CheckpointError",
    "draw",
    "compile",
    "CompiledFunction",
    "tune_malloc",
    "set_backend",
    "get_backend",
    "use_backend",
    "set_num_threads",
    "get_num_threads",
]
