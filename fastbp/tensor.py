"""Tensors, the computation graph and reverse-mode differentiation.

Every op computes its output eagerly with the current backend and, when gradients are
wanted, records a small ``backward`` closure next to it (the forward rule and its
derivative sit side by side, as in micrograd). :meth:`Tensor.backward` visits the graph in
one iteratively built topological order, root first, calling each closure once.

Gradient bookkeeping, chosen so that the steady state of a training loop allocates as
little as possible:

* A closure either asks its parent for a destination (:meth:`Tensor._grad_target`) and has
  a kernel write the gradient there with ``beta=0`` (first contribution) or accumulate
  with ``beta=1`` (a node used several times), or hands over an array it computed
  (:meth:`Tensor._accumulate`), which the parent adopts without a copy when it can.
* Arrays adopted from elsewhere are marked shared and copied before anything is written
  into them (copy on write), so ``a + a`` and broadcasting adjoints stay correct.
* Leaves (parameters) keep one gradient buffer for their lifetime: ``zero_grad()`` sets
  ``.grad`` to None and the next backward writes into the same buffer. An array obtained
  from ``.grad`` is therefore overwritten by the next backward after ``zero_grad()``;
  copy it if you need to keep it.
* Embedding tables receive :class:`~fastbp.sparse.RowSparseGrad` gradients.

Layout: this module is the core (Tensor, Parameter, grad modes, graph helpers and the
gradient plumbing); the graph rules of the ops live in one module per kind, each op's
forward next to its backward closure: :mod:`fastbp.elementwise`,
:mod:`fastbp.activations`, :mod:`fastbp.reductions`, :mod:`fastbp.shape`,
:mod:`fastbp.linalg`, :mod:`fastbp.embedding` and :mod:`fastbp.losses`. Their public
functions are re-exported here. Every op computes through the backend ops
(``backends._state.ops``); numpy is used here only for views and bookkeeping.
"""

from __future__ import annotations

import contextlib
import itertools
import numbers

import numpy as np

from . import backends
from .sparse import RowSparseGrad

__all__ = [
    "Tensor",
    "Parameter",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "detect_anomaly",
    "AnomalyError",
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "power",
    "exp",
    "log",
    "sqrt",
    "maximum",
    "minimum",
    "tensor_sum",
    "mean",
    "tensor_max",
    "logsumexp",
    "softmax",
    "log_softmax",
    "reshape",
    "transpose",
    "getitem",
    "concatenate",
    "stack",
    "matmul",
    "embedding",
    "linear",
    "tanh",
    "sigmoid",
    "relu",
    "dropout",
    "cross_entropy",
    "binary_cross_entropy_with_logits",
]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ONES = {dt.char: np.ones((), dt) for dt in _FLOAT_DTYPES}  # seeds of loss.backward()
for _one in _ONES.values():
    _one.flags.writeable = False


def _state():
    return backends._state


class AnomalyError(RuntimeError):
    """Raised under :func:`detect_anomaly` when an op produces NaN or Inf."""


def _freed(_g):  # sentinel stored in place of a backward closure once it has run
    raise AssertionError("unreachable")


def _as_float_array(data, what="tensor data"):
    """Convert user data to an aligned, native-byte-order, C-contiguous float32/float64
    array, never changing the precision of a float array and never guessing for an integer
    array. A suitable array is used as it is (no copy)."""
    if isinstance(data, Tensor):
        data = data.data
    arr = np.asarray(data)
    if arr.dtype.kind in "biu" and not isinstance(data, np.ndarray):
        arr = arr.astype(np.float64)  # Python ints/bools/lists of them
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise TypeError(
            f"{what} must be float32 or float64, got dtype {arr.dtype} "
            "(cast it explicitly, e.g. array.astype(np.float32))"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not (arr.flags.c_contiguous and arr.flags.aligned):
        arr = np.array(arr, order="C", copy=True)
    return arr


class Tensor:
    """An n-dimensional float32/float64 array that can take part in differentiation.

    Parameters
    ----------
    data : array_like
        The values. A float32 or float64 numpy array is used as it is (no copy when it is
        C-contiguous, like ``torch.from_numpy``); Python numbers become float64. Integer
        arrays are rejected: cast them explicitly.
    requires_grad : bool
        Whether :meth:`backward` should compute ``.grad`` for this tensor.

    Attributes
    ----------
    data : numpy.ndarray
    grad : numpy.ndarray, RowSparseGrad or None
        Accumulated gradient of a leaf tensor after :meth:`backward` (None before), or of
        a non-leaf tensor on which :meth:`retain_grad` was called.
    requires_grad : bool
    """

    __slots__ = (
        "data",
        "grad",
        "requires_grad",
        "_leaf",
        "_parents",
        "_backward",
        "_op",
        "_g",
        "_g_shared",
        "_grad_buf",
        "_seq",
        "_retain",
        "__weakref__",
    )

    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __init__(self, data, requires_grad=False):
        self.data = _as_float_array(data)
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._leaf = True
        self._parents = ()
        self._backward = None
        self._op = "leaf"
        self._g = None
        self._g_shared = False
        self._grad_buf = None
        self._seq = 0
        self._retain = False

    # ------------------------------------------------------------------ properties
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._leaf

    @property
    def op(self):
        """Name of the op that produced this tensor (``"leaf"`` for user-made tensors)."""
        return self._op

    def numpy(self):
        """The underlying numpy array (shared, not copied)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return float(self.data.reshape(()))

    def detach(self):
        """A new leaf tensor sharing this tensor's data, outside the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        """Forget the accumulated gradient (``.grad = None``; the buffer is reused)."""
        if backends._state.trace is not None:
            backends._state.trace.touch(self, True)
        self.grad = None

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` after :meth:`backward` (the
        lecture's upstream gradient at a node), as in PyTorch. Gradients of later
        backward passes accumulate into it until :meth:`zero_grad`. On a leaf it is a
        no-op (leaves that require grad always keep theirs). Returns None.

        Raises RuntimeError on a tensor that does not require grad (as PyTorch does)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad (built "
                               "under no_grad() or from tensors without requires_grad)")
        if not self._leaf:
            self._retain = True

    def __repr__(self):
        body = np.array2string(self.data, precision=4, threshold=20, edgeitems=2)
        extra = ", requires_grad=True" if self.requires_grad else ""
        if not self._leaf and self.requires_grad:
            extra = f", op={self._op}"
        return f"Tensor({body}, dtype={self.dtype}{extra})"

    def __len__(self):
        return len(self.data)

    def __array__(self, dtype=None, copy=None):
        # ``np.asarray(t)`` is the data (without this, numpy would treat a Tensor, which
        # has __len__ and __getitem__, as a nested sequence of 0-d tensors)
        if dtype is None and not copy:
            return self.data
        return np.array(self.data, dtype=dtype, copy=True if copy else None)

    # ------------------------------------------------------------------ gradient plumbing
    def _grad_target(self):
        """Return ``(buffer, beta)``: where a kernel should write this tensor's gradient,
        and whether to overwrite (0.0) or accumulate (1.0)."""
        if self._leaf:
            if backends._state.trace is not None:
                backends._state.trace.touch(self)
            g = self.grad
            if g is None:
                buf = self._grad_buf
                if buf is None or buf.shape != self.data.shape:
                    buf = self._grad_buf = np.empty(self.data.shape, self.data.dtype)
                self.grad = buf
                return buf, 0.0
            if type(g) is RowSparseGrad:
                g = self.grad = g.toarray()
            return g, 1.0
        g = self._g
        if g is None:
            g = self._g = np.empty(self.data.shape, self.data.dtype)
            return g, 0.0
        if self._g_shared:
            g = self._g = backends._state.ops.copy_into(g, np.empty(g.shape, g.dtype), 0.0)
            self._g_shared = False
        return g, 1.0

    def _accumulate(self, arr, shared):
        """Add a gradient contribution ``arr`` computed out of place. ``shared`` says that
        ``arr`` may be referenced elsewhere and must not be written into. The copies and
        sums run as the backend's ``copy_into`` op (``out = src + beta * out``)."""
        ops = backends._state.ops
        if self._leaf:
            if backends._state.trace is not None:
                backends._state.trace.touch(self)
            g = self.grad
            if g is None:
                buf, _ = self._grad_target()
                ops.copy_into(arr, buf, 0.0)
            else:
                if type(g) is RowSparseGrad:
                    g = self.grad = g.toarray()
                ops.copy_into(arr, g, 1.0)
            return
        g = self._g
        if g is None:
            if not arr.flags.c_contiguous:  # a gradient buffer is always C-contiguous
                arr, shared = ops.copy_into(arr, np.empty(arr.shape, arr.dtype), 0.0), False
            self._g = arr
            self._g_shared = shared
        elif self._g_shared:
            fresh = ops.copy_into(g, np.empty(g.shape, g.dtype), 0.0)
            self._g = ops.copy_into(arr, fresh, 1.0)
            self._g_shared = False
        else:
            ops.copy_into(arr, g, 1.0)

    def _accumulate_rows(self, rows, values):
        """Add a row-sparse contribution (rows (n,), values (n, d)) to a table's grad."""
        if not self._leaf:
            dense = _zeros(self.data.shape, self.data.dtype)
            backends.get_ops().scatter_add_rows(dense, rows, values, 1.0)
            self._accumulate(dense, False)
            return
        if backends._state.trace is not None:
            backends._state.trace.touch(self)
        g = self.grad
        if g is None:
            self.grad = RowSparseGrad(rows, values, self.data.shape)
        elif type(g) is RowSparseGrad:
            self.grad = g._add_rows(rows, values)
        else:
            backends.get_ops().scatter_add_rows(g, rows, values, 1.0)

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph=False):
        """Compute the gradient of this tensor with respect to every leaf that requires
        grad, accumulating into their ``.grad``.

        Parameters
        ----------
        grad : array_like, optional
            Gradient of some final scalar with respect to this tensor. Omit it for a
            one-element tensor (a loss), where it defaults to 1.
        retain_graph : bool
            Keep the graph so that ``backward`` can be called through it again. By
            default the graph is freed as it is traversed, and a second ``backward``
            through it raises RuntimeError.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: it was built "
                "under no_grad() or from tensors without requires_grad"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a grad argument needs a one-element tensor, got "
                    f"shape {self.shape}; pass grad= of that shape"
                )
            grad = _ONES[self.data.dtype.char].reshape(self.data.shape)
            shared = True  # a cached constant: never written into
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad)
            if grad.shape != self.shape:
                raise ValueError(f"grad of shape {grad.shape} for a tensor of shape {self.shape}")
            if grad.dtype != self.dtype:
                raise TypeError(f"grad of dtype {grad.dtype} for a tensor of dtype {self.dtype}")
            if not grad.flags.c_contiguous:
                grad = backends._state.ops.copy_into(grad, np.empty(grad.shape, grad.dtype), 0.0)
            shared = True
        if self._leaf:
            self._accumulate(grad, shared)
            return
        order = _topo_order(self)
        for node in order:
            if node._backward is _freed:
                raise RuntimeError(
                    "Trying to backward through the graph a second time (or directly access "
                    f"saved tensors after they have already been freed): op {node._op!r} "
                    "already ran its backward. Specify retain_graph=True on the first "
                    "backward() call if you need to backward twice."
                )
        anomaly = backends._state.anomaly
        self._g = grad
        self._g_shared = shared
        try:
            for node in order:
                g = node._g
                node._g = None
                fn = node._backward
                if g is not None:
                    if node._retain:
                        _retain(node, g)
                    fn(g)
                    if anomaly:
                        _check_backward(node)
                if not retain_graph:
                    node._backward = _freed
                    node._parents = ()
        finally:
            for node in order:
                node._g = None

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, p):
        return power(self, p)  # p a Python number (TypeError otherwise)

    def __neg__(self):
        return neg(self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __getitem__(self, key):
        return getitem(self, key)

    @property
    def T(self):
        """The tensor with its axes reversed (a view); see :func:`fastbp.shape.transpose`."""
        return transpose(self)

    def transpose(self, *axes):
        """Permute the axes (a view); no ``axes`` reverses them. See
        :func:`fastbp.shape.transpose`."""
        return transpose(self, *axes)

    def reshape(self, *shape):
        """The same elements in a new shape (one -1 allowed; a view when possible). See
        :func:`fastbp.shape.reshape`."""
        return reshape(self, *shape)

    def sum(self, axis=None, keepdims=False):
        """Sum over ``axis`` (an int, a tuple of ints or None for all)."""
        return tensor_sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        """Mean over ``axis`` (an int, a tuple of ints or None for all)."""
        return mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        """Maximum over ``axis`` (an int, a tuple of ints or None for all); the gradient
        goes to the first arg-max. See :func:`fastbp.reductions.tensor_max`."""
        return tensor_max(self, axis, keepdims)


class Parameter(Tensor):
    """A leaf tensor that requires grad: a model weight.

    The array is used in place when it is a C-contiguous, writeable float array (the
    optimisers update it in place); otherwise it is copied.
    """

    __slots__ = ()

    def __init__(self, data):
        super().__init__(data, requires_grad=True)
        if not self.data.flags.writeable:
            self.data = self.data.copy()

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


def _zeros(shape, dtype):
    """A new zero-filled array, filled by the backend's ``copy_into`` (so that a compiled
    step plan zeroes it again on every replay; ``np.zeros`` would be traced once)."""
    out = np.empty(shape, dtype)
    return backends._state.ops.copy_into(np.broadcast_to(_ZERO[out.dtype.char], shape), out, 0.0)


_ZERO = {dt.char: np.zeros((), dt) for dt in _FLOAT_DTYPES}


def _retain(node, g):
    """Store (or add) the gradient ``g`` of a non-leaf into ``node.grad`` as an array of
    its own (``g`` may be shared with other nodes or handed on to a parent)."""
    ops = backends._state.ops
    if node.grad is None:
        node.grad = ops.copy_into(g, np.empty(g.shape, g.dtype), 0.0)
    else:
        ops.copy_into(g, node.grad, 1.0)


# ---------------------------------------------------------------------- grad mode
class _ModeSwitch(contextlib.ContextDecorator):
    """Set one per-thread flag of the engine for a block (re-entrant: a decorated
    function may call itself)."""

    _flag = ""
    _value = False

    def __init__(self):
        self._saved = []

    def __enter__(self):
        st = backends._state
        self._saved.append(getattr(st, self._flag))
        setattr(st, self._flag, self._value)
        return self

    def __exit__(self, *exc):
        setattr(backends._state, self._flag, self._saved.pop())
        return False


class no_grad(_ModeSwitch):
    """Context manager (or decorator) under which ops record no graph."""

    _flag, _value = "grad_enabled", False


class enable_grad(_ModeSwitch):
    """Context manager (or decorator) that turns graph recording back on."""

    _flag, _value = "grad_enabled", True


def is_grad_enabled():
    """Whether ops record a graph in the calling thread."""
    return backends._state.grad_enabled


class detect_anomaly(_ModeSwitch):
    """Context manager (or decorator) under which every op checks its output, and every
    backward step the gradients it produced, for NaN/Inf; the first offender raises
    :class:`AnomalyError` naming the op. Slow: for debugging."""

    _flag, _value = "anomaly", True


def _check_forward(op, data):
    if not np.isfinite(data).all():
        kind = "nan" if np.isnan(data).any() else "inf"
        raise AnomalyError(f"op {op!r} produced {kind} values in its forward output")


def _check_backward(node):
    for p in node._parents:
        if not p.requires_grad:
            continue
        g = p.grad if p._leaf else p._g
        if g is None:
            continue
        arr = g.values if type(g) is RowSparseGrad else g
        if not np.isfinite(arr).all():
            kind = "nan" if np.isnan(arr).any() else "inf"
            raise AnomalyError(
                f"backward of op {node._op!r} produced {kind} values in the gradient of its "
                f"input of shape {p.shape}"
            )


# ---------------------------------------------------------------------- graph helpers
_counter = itertools.count(1)  # creation order of graph nodes: a topological order


def _seq_of(node):
    return node._seq


def _topo_order(root):
    """The non-leaf nodes reachable from ``root``, children before parents.

    Every node is numbered when it is created, after its parents, so sorting the reachable
    nodes by that number (largest first) is a valid reverse topological order; the
    traversal is an explicit stack (no recursion limit)."""
    nodes = [root]
    seen = {id(root)}
    stack = [root]
    while stack:
        for p in stack.pop()._parents:
            if not p._leaf and id(p) not in seen:
                seen.add(id(p))
                nodes.append(p)
                stack.append(p)
    nodes.sort(key=_seq_of, reverse=True)
    return nodes


def _result(data, parents, op, st):
    """Wrap an op's output. Returns ``(tensor, needs_backward)``."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t._g = None
    t._g_shared = False
    t._grad_buf = None
    t._retain = False
    t._op = op
    t._backward = None
    if st.trace is not None:
        st.trace.read(parents)
    if st.anomaly:
        _check_forward(op, data)
    if st.grad_enabled:
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t._leaf = False
                t._parents = parents
                t._seq = next(_counter)
                return t, True
    t.requires_grad = False
    t._leaf = True
    t._parents = ()
    t._seq = 0
    return t, False


def _operand(x, like, what):
    """Turn ``x`` into a Tensor of the same dtype as ``like`` (Python numbers are cast;
    arrays and tensors of another float dtype raise TypeError)."""
    if isinstance(x, Tensor):
        if x.data.dtype != like.data.dtype:
            raise TypeError(
                f"{what}: dtype mismatch {like.dtype} vs {x.dtype}; fastbp never upcasts "
                "silently, cast one side explicitly"
            )
        return x
    if isinstance(x, numbers.Number):
        return Tensor(np.asarray(x, dtype=like.data.dtype))
    arr = np.asarray(x)
    if arr.dtype != like.data.dtype:
        raise TypeError(
            f"{what}: dtype mismatch {like.dtype} vs {arr.dtype}; fastbp never upcasts "
            "silently, cast one side explicitly"
        )
    return Tensor(arr)


def _pair(a, b, what):
    if isinstance(a, Tensor):
        return a, _operand(b, a, what)
    if isinstance(b, Tensor):
        return _operand(a, b, what), b
    raise TypeError(f"{what}: at least one operand must be a fastbp Tensor")


def _int_array(ids, what):
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{what} must be an integer array, got dtype {ids.dtype}")
    return ids if ids.flags.c_contiguous else ids.copy(order="C")


def _broadcast_shape(sa, sb, what):
    if sa == sb:
        return sa
    try:
        return np.broadcast_shapes(sa, sb)
    except ValueError:
        raise ValueError(f"{what}: shapes {sa} and {sb} cannot be broadcast together") from None


def _send(parent, ops, g, shared):
    """Pass ``g`` (of the child's shape) to ``parent``, summing over broadcast axes."""
    if g.shape == parent.data.shape:
        parent._accumulate(g, shared)
    elif len(g.shape) == 2 and parent.data.shape == (g.shape[1],):
        buf, beta = parent._grad_target()
        ops.backprop_bias(g, buf, beta)
    else:
        buf, beta = parent._grad_target()
        ops.unbroadcast(g, parent.data.shape, buf, beta)


# ---------------------------------------------------------------------- the ops
# The graph rules live in one module per kind; they import the core above, so they are
# imported last. Re-exported here so that ``from fastbp.tensor import embedding`` (and the
# other historical import paths) keep working.
from .elementwise import (  # noqa: E402
    add,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    neg,
    power,
    sqrt,
    sub,
)
from .reductions import log_softmax, logsumexp, mean, softmax, tensor_max, tensor_sum  # noqa: E402
from .shape import concatenate, getitem, reshape, stack, transpose  # noqa: E402
from .linalg import linear, matmul  # noqa: E402
from .activations import dropout, relu, sigmoid, tanh  # noqa: E402
from .embedding import embedding  # noqa: E402
from .losses import binary_cross_entropy_with_logits, cross_entropy  # noqa: E402
