"""Graph rules of the shape ops: reshape, transpose, indexing, concatenate and stack.

Views stay views: reshape of a contiguous tensor, transpose and basic slicing (ints,
slices, None, ``...``) share the input's memory. Their backward writes the gradient
through the ``copy_into`` op into a view of the input's gradient buffer (or reshapes the
gradient). Integer-array ("advanced") indexing uses the ``gather`` / ``backprop_gather``
ops on the leading axes of a transposed view.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

from . import backends
from .tensor import Tensor, _operand, _result

__all__ = ["reshape", "transpose", "getitem", "concatenate", "stack"]

_ZEROS = {}


def _zero(dtype):
    z = _ZEROS.get(dtype.char)
    if z is None:
        z = _ZEROS[dtype.char] = np.zeros((), dtype)
        z.flags.writeable = False
    return z


def _zeroed_target(x):
    """``x``'s gradient buffer, set to zero by a backend op if it was not yet written
    (for backward rules that write only part of it). Returns ``(buffer, beta)``."""
    buf, beta = x._grad_target()
    if beta == 0.0:
        backends._state.ops.expand(_zero(buf.dtype), buf.shape, buf, 0.0)
    return buf, 1.0


def _tensor_input(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a fastbp Tensor, got {type(x).__name__}")
    return x


# ---------------------------------------------------------------------- reshape
def _shape_arg(shape):
    if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
        shape = tuple(shape[0])
    try:
        return tuple(operator.index(n) for n in shape)
    except TypeError:
        raise TypeError(f"reshape: the shape must be integers, got {shape!r}") from None


def _resolve_shape(old, new):
    size = int(np.prod(old))
    unknown = [i for i, n in enumerate(new) if n == -1]
    bad = len(unknown) > 1 or any(n < -1 for n in new)
    if not bad and unknown:
        rest = int(np.prod([n for n in new if n != -1]))
        if rest and size % rest == 0:
            new = tuple(size // rest if n == -1 else n for n in new)
        else:
            bad = True
    if bad or int(np.prod(new)) != size:
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {old} (size {size}) into shape {new}"
        )
    return new


def reshape(x, *shape):
    """``x`` with a new shape of the same size.

    Parameters
    ----------
    x : Tensor
    *shape : int or tuple of int
        The new shape, as integers or one tuple; one entry may be -1 (inferred).

    Returns
    -------
    Tensor
        A view of ``x`` when its memory layout allows (always for a contiguous ``x``),
        else a contiguous copy made by the ``copy_into`` op. Its backward reshapes the
        gradient.

    Raises
    ------
    ValueError
        When the sizes differ (the message names both shapes).
    """
    x = _tensor_input(x, "reshape")
    X = x.data
    new = _resolve_shape(X.shape, _shape_arg(shape))
    st = backends._state
    try:
        Y = np.reshape(X, new, copy=False)  # a view, or ValueError when one is impossible
    except ValueError:
        C = st.ops.copy_into(X, np.empty(X.shape, X.dtype), 0.0)
        Y = C.reshape(new)
    out, track = _result(Y, (x,), "reshape", st)
    if track:
        old = X.shape

        def backward(g):
            x._accumulate(g.reshape(old), True)  # g is C-contiguous: a view

        out._backward = backward
    return out


# ---------------------------------------------------------------------- transpose
def transpose(x, *axes):
    """``x`` with its axes permuted (a view).

    Parameters
    ----------
    x : Tensor
    *axes : int or tuple of int
        A permutation of ``range(x.ndim)`` (negative axes count from the end); none
        reverses the axes, as ``x.T``.

    Returns
    -------
    Tensor
        A view of ``x``; its backward copies the gradient into the transposed view of
        ``x``'s gradient buffer.
    """
    x = _tensor_input(x, "transpose")
    X = x.data
    if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], numbers.Integral)):
        axes = axes[0]
    if axes is None or len(axes) == 0:
        axes = tuple(range(X.ndim))[::-1]
    try:
        axes = tuple(operator.index(a) for a in axes)
    except TypeError:
        raise TypeError(f"transpose: axes must be integers, got {axes!r}") from None
    n = X.ndim
    if len(axes) != n or any(not -n <= a < n for a in axes):
        raise ValueError(f"transpose: axes {axes} are not a permutation for shape {X.shape}")
    axes = tuple(a % n for a in axes)
    if sorted(axes) != list(range(n)):
        raise ValueError(f"transpose: axes {axes} are not a permutation for shape {X.shape}")
    st = backends._state
    out, track = _result(X.transpose(axes), (x,), "transpose", st)
    if track:

        def backward(g):
            buf, beta = x._grad_target()
            backends._state.ops.copy_into(g, buf.transpose(axes), beta)

        out._backward = backward
    return out


# ---------------------------------------------------------------------- indexing
def _is_basic(k):
    return k is None or k is Ellipsis or isinstance(k, (slice, numbers.Integral)) and not (
        isinstance(k, bool)
    )


def _normalise_key(key):
    """The key as a tuple; integer arrays (from lists, arrays, tensors) as numpy integer
    arrays, boolean masks as their ``nonzero()`` arrays."""
    if not isinstance(key, tuple):
        key = (key,)
    items = []
    for k in key:
        if isinstance(k, Tensor):
            k = k.data
        if _is_basic(k) and not isinstance(k, np.ndarray):
            items.append(operator.index(k) if isinstance(k, numbers.Integral) else k)
            continue
        arr = np.asarray(k)
        if arr.dtype.kind == "b" and arr.ndim == 0:
            raise IndexError("boolean scalar indices are not supported")
        if arr.dtype.kind == "b":
            items.extend(np.nonzero(arr))  # a mask indexes arr.ndim axes
        elif arr.dtype.kind in "iu":
            items.append(arr)
        elif arr.size == 0 and arr.dtype.kind == "f" and isinstance(k, list):
            items.append(arr.astype(np.intp))  # x[[]]
        else:
            raise IndexError(
                "only integers, slices (`:`), ellipsis (`...`), None and integer or boolean "
                f"arrays are valid indices, got {type(k).__name__} of dtype {arr.dtype}"
            )
    if sum(k is Ellipsis for k in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    return items


def getitem(x, key):
    """``x[key]`` with numpy semantics.

    Parameters
    ----------
    x : Tensor
    key : int, slice, None, Ellipsis, integer array / list, boolean mask, or a tuple
        Basic parts (ints, slices, None, ``...``) select a view; integer arrays (e.g.
        ``x[rows, cols]``) gather elements, placed where numpy puts them.

    Returns
    -------
    Tensor
        A view of ``x`` for basic indexing, else a gathered copy. In the backward,
        repeated indices accumulate (``x[[0, 0]]`` sends twice the gradient to row 0).

    Raises
    ------
    IndexError
        An index out of range, too many indices or an invalid index type.
    """
    x = _tensor_input(x, "getitem")
    X = x.data
    items = _normalise_key(key)
    if all(not isinstance(k, np.ndarray) for k in items):
        has_ellipsis = any(k is Ellipsis for k in items)
        return _basic_index(x, tuple(items) + (() if has_ellipsis else (Ellipsis,)))
    return _advanced_index(x, items)


def _basic_index(x, key):
    X = x.data
    Y = X[key]  # the trailing Ellipsis keeps a 0-d result a view
    st = backends._state
    out, track = _result(Y, (x,), "getitem", st)
    if track:

        def backward(g):
            buf, beta = _zeroed_target(x)
            backends._state.ops.copy_into(g, buf[key], beta)

        out._backward = backward
    return out


def _advanced_index(x, items):
    X = x.data
    # Ints become 0-d index arrays (numpy's rule once any array index is present).
    items = [np.asarray(k, np.intp) if isinstance(k, numbers.Integral) else k for k in items]
    used = sum(1 for k in items if k is not None and k is not Ellipsis)
    if used > X.ndim:
        raise IndexError(
            f"too many indices for a tensor of shape {X.shape}: {used} were indexed"
        )
    # numpy keeps the index dims in place only when the array indices are next to each
    # other in the key (an Ellipsis between them breaks that even when it expands to
    # no axes)
    arr_at = [i for i, k in enumerate(items) if isinstance(k, np.ndarray)]
    adjacent = arr_at == list(range(arr_at[0], arr_at[0] + len(arr_at)))
    ell = [i for i, k in enumerate(items) if k is Ellipsis]
    if ell:
        i = ell[0]
        items[i:i + 1] = [slice(None)] * (X.ndim - used)
    else:
        items += [slice(None)] * (X.ndim - used)
    # The basic part as a view; the positions of the indexed axes in that view.
    basic, adv_pos, index = [], [], []
    for k in items:
        if isinstance(k, np.ndarray):
            adv_pos.append(len(basic))
            index.append(k)
            basic.append(slice(None))
        else:
            basic.append(k)
    basic = tuple(basic)
    V = X[basic]
    others = [i for i in range(V.ndim) if i not in adv_pos]
    perm = tuple(adv_pos + others)
    Vt = V.transpose(perm)
    index = tuple(index)
    st = backends._state
    G = st.ops.gather(Vt, index)
    nb = G.ndim - len(others)  # dims of the broadcast index shape
    p0 = adv_pos[0] if adjacent else 0
    if p0:  # numpy keeps adjacent index dims in place: move them from the front to p0
        order = tuple(range(nb, nb + p0)) + tuple(range(nb)) + tuple(range(nb + p0, G.ndim))
        Y = G.transpose(order)
    else:
        order = None
        Y = G
    out, track = _result(Y, (x,), "getitem", st)
    if track:
        trivial = all(isinstance(k, slice) and k == slice(None) for k in basic)
        trivial = trivial and perm == tuple(range(V.ndim))
        vshape = Vt.shape

        def backward(g):
            ops = backends._state.ops
            gG = g if order is None else g.transpose(np.argsort(order))
            if trivial:
                buf, beta = x._grad_target()
                ops.backprop_gather(gG, index, vshape, buf, beta)
            else:
                part = ops.backprop_gather(gG, index, vshape)
                buf, beta = _zeroed_target(x)
                ops.copy_into(part, buf[basic].transpose(perm), beta)

        out._backward = backward
    return out


# ---------------------------------------------------------------------- joining
def _tensors(tensors, op):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: need at least one tensor")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    if like is None:
        raise TypeError(f"{op}: expected a sequence of fastbp Tensors")
    return [_operand(t, like, op) for t in tensors]


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis.

    Parameters
    ----------
    tensors : sequence of Tensor
        One dtype; shapes equal except along ``axis`` (arrays are accepted as
        constants).
    axis : int
        Negative counts from the end.

    Returns
    -------
    Tensor
        Its backward copies each input's slice of the gradient (``copy_into``).

    Raises
    ------
    ValueError
        Shapes that differ outside ``axis`` (the message names them), 0-d tensors, an
        axis out of range.
    TypeError
        Mixed dtypes.
    """
    ts = _tensors(tensors, "concatenate")
    shapes = [t.shape for t in ts]
    ndim = len(shapes[0])
    if any(len(s) == 0 for s in shapes):
        raise ValueError(f"concatenate: 0-d tensors cannot be concatenated (shapes {shapes})")
    ax = operator.index(axis)
    if not -ndim <= ax < ndim:
        raise ValueError(f"concatenate: axis {axis} is out of range for shape {shapes[0]}")
    ax %= ndim
    for s in shapes:
        if len(s) != ndim or s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]:
            raise ValueError(f"concatenate: shapes {shapes} must match except along axis {axis}")
    st = backends._state
    Y = st.ops.concatenate([t.data for t in ts], ax)
    parents = tuple(ts)
    out, track = _result(Y, parents, "concatenate", st)
    if track:
        bounds = np.cumsum([0] + [s[ax] for s in shapes]).tolist()

        def backward(g):
            ops = backends._state.ops
            lead = (slice(None),) * ax
            for t, lo, hi in zip(parents, bounds[:-1], bounds[1:]):
                if t.requires_grad:
                    buf, beta = t._grad_target()
                    ops.copy_into(g[lead + (slice(lo, hi),)], buf, beta)

        out._backward = backward
    return out


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis.

    Parameters
    ----------
    tensors : sequence of Tensor
        One dtype and one shape.
    axis : int
        Position of the new axis in the result (negative counts from the end).

    Returns
    -------
    Tensor
        ``concatenate`` of the inputs reshaped with a size-1 axis at ``axis``.

    Raises
    ------
    ValueError
        Shapes that differ (the message names them), an axis out of range.
    """
    ts = _tensors(tensors, "stack")
    shapes = [t.shape for t in ts]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack: all tensors must have the same shape, got {shapes}")
    ndim = len(shapes[0]) + 1
    ax = operator.index(axis)
    if not -ndim <= ax < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for a result of {ndim} dimensions")
    ax %= ndim
    new = shapes[0][:ax] + (1,) + shapes[0][ax:]
    return concatenate([reshape(t, new) for t in ts], ax)
