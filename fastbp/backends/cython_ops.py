"""Compiled backend: every op of :class:`~fastbp.backends.numpy_ops.NumpyOps` runs a typed
Cython kernel of :mod:`fastbp_ext._kernels`.

Most ops *are* the kernels (``staticmethod`` aliases, so a call costs one C-level
function call: no Python frame in between). The kernels take the same arguments as the
reference methods and follow the same ``out``/``beta`` convention; they additionally
validate their inputs (dtype, shape, layout, index ranges) because they are callable
directly, and never upcast silently: mixing float32 and float64 raises TypeError.

What stays in numpy, and why:

* ``dropout_mask`` (the numpy-Generator path of ``fb.dropout``): the uniform draws come
  from the caller's numpy ``Generator`` (``rng.random``) so that a seeded run gives the
  same mask on both backends and the bit stream stays numpy's; the threshold/cast/scale
  that follows is one fused kernel pass (numpy needs three passes and two temporaries).
  ``dropout_forward`` / ``dropout_mask_gen`` (the ``fastbp.Generator`` path) draw inside
  the kernel.
"""

from __future__ import annotations

from .numpy_ops import NumpyOps

from fastbp_ext import _kernels as _k  # fastbp.backends explains a failure here

__all__ = ["CythonOps"]

_Unsupported = _k.UnsupportedBroadcast
_ref = NumpyOps


def _native(a):
    """The fallback's result in native byte order, like every kernel's result."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


class CythonOps(NumpyOps):
    """Typed Cython kernels for every fastbp op (BLAS via ``scipy.linalg.cython_blas``).

    Falls back to the numpy reference only for broadcast patterns the kernels do not
    cover (see the module docstring). The extra fused ops ``linear``,
    ``bias_act`` and ``backprop_act`` are single kernels.
    """

    name = "cython"

    # ------------------------------------------------------------------ BLAS-like
    gemm = staticmethod(_k.gemm)
    gemv = staticmethod(_k.gemv)
    ger = staticmethod(_k.ger)
    dot = staticmethod(_k.dot)
    scale = staticmethod(_k.scale)

    # Fused affine map X @ W + b, or X @ W.T + b with trans_w=True (W in the (out, in)
    # layout of nn.Linear): bias rows and one gemm on the transposed operand, one kernel.
    linear = staticmethod(_k.linear)

    # ------------------------------------------------------------------ elementwise
    add_bias = staticmethod(_k.add_bias)

    backprop_mul = staticmethod(_k.backprop_mul)

    # --- reductions (issue 7): every pattern compiled, no numpy fallback
    reduce_sum = staticmethod(_k.reduce_sum)
    unbroadcast = staticmethod(_k.unbroadcast)
    backprop_bias = staticmethod(_k.backprop_bias)
    expand = staticmethod(_k.expand)
    reduce_max = staticmethod(_k.reduce_max)
    backprop_reduce_max = staticmethod(_k.backprop_reduce_max)
    logsumexp = staticmethod(_k.logsumexp)
    backprop_logsumexp = staticmethod(_k.backprop_logsumexp)
    softmax = staticmethod(_k.softmax)
    backprop_softmax = staticmethod(_k.backprop_softmax)
    log_softmax = staticmethod(_k.log_softmax)
    backprop_log_softmax = staticmethod(_k.backprop_log_softmax)

    # ------------------------------------------------------------------ activations
    tanh = staticmethod(_k.tanh)
    backprop_tanh = staticmethod(_k.backprop_tanh)
    sigmoid = staticmethod(_k.sigmoid)
    backprop_sigmoid = staticmethod(_k.backprop_sigmoid)
    relu = staticmethod(_k.relu)
    backprop_relu = staticmethod(_k.backprop_relu)
    bias_act = staticmethod(_k.bias_act)
    backprop_act = staticmethod(_k.backprop_act)

    def dropout_mask(self, shape, rate, rng, dtype):
        """Inverted-dropout mask: numpy's uniform draws (same stream as the reference),
        then one fused threshold-and-scale kernel pass."""
        return _k.dropout_mask_from_uniform(rng.random(shape), rate, dtype)

    # counter-based generator (fastbp.Generator): drawn inside the kernel, bitwise the
    # reference's numpy uint64 arithmetic
    dropout_forward = staticmethod(_k.dropout_forward)
    dropout_mask_gen = staticmethod(_k.dropout_mask_gen)

    # ------------------------------------------------------------------ embedding
    embedding = staticmethod(_k.embedding)
    scatter_add_rows = staticmethod(_k.scatter_add_rows)
    coalesce_rows = staticmethod(_k.coalesce_rows)

    # ------------------------------------------------------------------ losses
    softmax_cross_entropy = staticmethod(_k.softmax_cross_entropy)
    backprop_softmax_cross_entropy = staticmethod(_k.backprop_softmax_cross_entropy)
    sigmoid_bce = staticmethod(_k.sigmoid_bce)
    backprop_sigmoid_bce = staticmethod(_k.backprop_sigmoid_bce)

    # ------------------------------------------------------------------ optimisers
    sgd_update = staticmethod(_k.sgd_update)
    sgd_update_rows = staticmethod(_k.sgd_update_rows)
    adam_update = staticmethod(_k.adam_update)
    adam_update_rows = staticmethod(_k.adam_update_rows)

    # --- indexing (issue 7): fastbp_ext/_indexing.pyx
    copy_into = staticmethod(_k.copy_into)
    gather = staticmethod(_k.gather)
    backprop_gather = staticmethod(_k.backprop_gather)
    concatenate = staticmethod(_k.concatenate)

    # --- elementwise (issue 7): numpy broadcasting for every pattern, no fallback
    add = staticmethod(_k.add)
    sub = staticmethod(_k.sub)
    mul = staticmethod(_k.mul)
    div = staticmethod(_k.div)
    maximum = staticmethod(_k.maximum)
    minimum = staticmethod(_k.minimum)
    backprop_div = staticmethod(_k.backprop_div)
    backprop_maximum = staticmethod(_k.backprop_maximum)
    backprop_minimum = staticmethod(_k.backprop_minimum)
    exp = staticmethod(_k.exp)
    log = staticmethod(_k.log)
    sqrt = staticmethod(_k.sqrt)
    power = staticmethod(_k.power)
    backprop_exp = staticmethod(_k.backprop_exp)
    backprop_log = staticmethod(_k.backprop_log)
    backprop_sqrt = staticmethod(_k.backprop_sqrt)
    backprop_power = staticmethod(_k.backprop_power)
    scale_by = staticmethod(_k.scale_by)
