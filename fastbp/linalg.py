"""Graph rules of the linear-algebra ops: matmul and the fused affine map."""

from __future__ import annotations

from . import backends
from .tensor import Tensor, _operand, _pair, _result
from .threads import get_num_threads

__all__ = ["matmul", "linear"]


def matmul(a, b):
    """Matrix product ``a @ b`` for 2-D x 2-D, 2-D x 1-D, 1-D x 2-D and 1-D x 1-D.

    Parameters
    ----------
    a, b : Tensor or array_like
        At least one is a Tensor; ``a.shape[-1] == b.shape[0]``.

    Returns
    -------
    Tensor
        ``a @ b`` (0-d for two vectors). The backward runs BLAS: ``dA = dY B^T``,
        ``dB = A^T dY`` (outer products for the vector cases; for the inner product the
        upstream 0-d gradient scales the other vector, read as an array by ``scale_by``).

    Raises
    ------
    ValueError
        Shapes that are not aligned or of more than 2 dimensions.
    """
    a, b = _pair(a, b, "matmul")
    st = backends._state
    ops = st.ops
    A, B = a.data, b.data
    if A.ndim not in (1, 2) or B.ndim not in (1, 2) or A.shape[-1] != B.shape[0]:
        raise ValueError(
            f"matmul: shapes {A.shape} and {B.shape} are not aligned "
            "(1-D or 2-D operands with a.shape[-1] == b.shape[0] are supported)"
        )
    if A.ndim == 2 and B.ndim == 2:
        Y = ops.gemm(A, B)

        def backward(g):
            ops = backends._state.ops
            if a.requires_grad:
                buf, beta = a._grad_target()
                ops.gemm(g, B, buf, False, True, beta)  # dA = g B^T
            if b.requires_grad:
                buf, beta = b._grad_target()
                ops.gemm(A, g, buf, True, False, beta)  # dB = A^T g

    elif A.ndim == 2:  # matrix-vector: y = A x
        Y = ops.gemv(A, B)

        def backward(g):
            ops = backends._state.ops
            if a.requires_grad:
                buf, beta = a._grad_target()
                ops.ger(g, B, buf, beta)  # dA = g x^T (outer product)
            if b.requires_grad:
                buf, beta = b._grad_target()
                ops.gemv(A, g, buf, True, beta)  # dx = A^T g

    elif B.ndim == 2:  # vector-matrix: y = x B
        Y = ops.gemv(B, A, None, True)

        def backward(g):
            ops = backends._state.ops
            if a.requires_grad:
                buf, beta = a._grad_target()
                ops.gemv(B, g, buf, False, beta)  # dx = B g
            if b.requires_grad:
                buf, beta = b._grad_target()
                ops.ger(A, g, buf, beta)  # dB = x g^T

    else:  # inner product
        Y = ops.dot(A, B)

        def backward(g):  # g is 0-d: a run-time scale read through a pointer
            ops = backends._state.ops
            if a.requires_grad:
                buf, beta = a._grad_target()
                ops.scale_by(B, g, buf, beta)
            if b.requires_grad:
                buf, beta = b._grad_target()
                ops.scale_by(A, g, buf, beta)

    out, track = _result(Y, (a, b), "matmul", st)
    if track:
        out._backward = backward
    return out


def linear(x, W, b=None, weight_layout="in_out"):
    """Fused affine map ``x @ W + b`` (one BLAS call writes the output with the bias
    already in place).

    Parameters
    ----------
    x : Tensor
        (n, k).
    W : Tensor or array_like
        (k, m), or (m, k) with ``weight_layout="out_in"``.
    b : Tensor, array_like or None
        (m,).
    weight_layout : {"in_out", "out_in"}
        ``"out_in"`` takes ``W`` of shape (m, k), the lecture's ``W`` in ``z = Wx + b``
        and the layout of :class:`fastbp.nn.Linear` and PyTorch, and computes
        ``x @ W.T + b`` with the same single BLAS call on the transposed operand (no
        copy).

    Returns
    -------
    Tensor
        (n, m).
    """
    if weight_layout == "out_in":
        return _linear_out_in(x, W, b)
    if weight_layout != "in_out":
        raise ValueError(f"linear: weight_layout must be 'in_out' or 'out_in', got "
                         f"{weight_layout!r}")
    if not isinstance(x, Tensor):
        raise TypeError("linear: x must be a fastbp Tensor")
    W = _operand(W, x, "linear")
    if b is not None:
        b = _operand(b, x, "linear")
    X, Wd = x.data, W.data
    if X.ndim != 2 or Wd.ndim != 2 or X.shape[1] != Wd.shape[0]:
        raise ValueError(f"linear: shapes {X.shape} and {Wd.shape} are not aligned")
    if b is not None and b.data.shape != (Wd.shape[1],):
        raise ValueError(f"linear: bias of shape {b.shape} for an output of width {Wd.shape[1]}")
    st = backends._state
    Y = st.ops.linear(X, Wd, None if b is None else b.data)
    parents = (x, W) if b is None else (x, W, b)
    out, track = _result(Y, parents, "linear", st)
    if track:

        def backward(g):
            ops = backends._state.ops
            if x.requires_grad:
                buf, beta = x._grad_target()
                ops.gemm(g, Wd, buf, False, True, beta)
            if W.requires_grad:
                buf, beta = W._grad_target()
                ops.gemm(X, g, buf, True, False, beta)
            if b is not None and b.requires_grad:
                buf, beta = b._grad_target()
                ops.backprop_bias(g, buf, beta)

        out._backward = backward
    return out


#: Batches of at least this many rows take the transposed route of :func:`_weight_grad`.
_TRANSPOSED_DW_ROWS = 32


def _weight_grad(ops, g, X, buf, beta):
    """``buf = g^T X + beta * buf``: the (out, in) weight gradient of ``x @ W.T``.

    Normally one gemm straight into ``buf``. With several BLAS threads and a batch of at
    least ``_TRANSPOSED_DW_ROWS`` rows it is computed as ``X^T g`` (the product of the
    (in, out) layout) and added transposed into ``buf``. Measured with OpenBLAS 0.3.30/31
    (scipy's and numpy's), 2 threads, at the NER model's shapes (B=2048, 300 -> 200): on
    an idle 2-core machine both take 1.6 ms, but with the cores shared by other processes
    the direct product into the (out, in) buffer (col-major NT gemm with M > N) ran
    2-6x slower than its transpose (65 ms vs 18 ms; a training step 140-230 ms instead of
    60 ms). The extra strided pass costs ~40 us; on one thread the direct call is used.
    """
    if X.shape[0] >= _TRANSPOSED_DW_ROWS and get_num_threads() > 1:
        ops.copy_into(ops.gemm(X, g, None, True, False, 0.0).T, buf, beta)
    else:
        ops.gemm(g, X, buf, True, False, beta)


def _linear_out_in(x, W, b):
    """``x @ W.T + b`` for ``W`` of shape (out, in): forward one gemm on the transposed
    weight; backward ``dx = g W`` (gemm, no transpose) and ``dW = g^T x`` (gemm,
    transposed first operand; see :func:`_weight_grad`), written into the gradient
    buffers."""
    if not isinstance(x, Tensor):
        raise TypeError("linear: x must be a fastbp Tensor")
    W = _operand(W, x, "linear")
    if b is not None:
        b = _operand(b, x, "linear")
    X, Wd = x.data, W.data
    if X.ndim != 2 or Wd.ndim != 2 or X.shape[1] != Wd.shape[1]:
        raise ValueError(f"linear: input of shape {X.shape} and weight of shape {Wd.shape} "
                         "(out, in) are not aligned")
    if b is not None and b.data.shape != (Wd.shape[0],):
        raise ValueError(f"linear: bias of shape {b.shape} for an output of width {Wd.shape[0]}")
    st = backends._state
    Y = st.ops.linear(X, Wd, None if b is None else b.data, None, trans_w=True)
    parents = (x, W) if b is None else (x, W, b)
    out, track = _result(Y, parents, "linear", st)
    if track:

        def backward(g):
            ops = backends._state.ops
            if x.requires_grad:
                buf, beta = x._grad_target()
                ops.gemm(g, Wd, buf, False, False, beta)  # dx = g W
            if W.requires_grad:
                buf, beta = W._grad_target()
                _weight_grad(ops, g, X, buf, beta)  # dW = g^T x
            if b is not None and b.requires_grad:
                buf, beta = b._grad_target()
                ops.backprop_bias(g, buf, beta)  # db = sum of the rows of g

        out._backward = backward
    return out
