"""Custom nodes: a node type of your own, with its forward and backward, as in PyTorch.

The lecture's "Implementation" slide: each node type knows how to compute its output and,
given the gradient of the loss with respect to its output, the gradients with respect to
its inputs. :class:`Function` is that node type, with the interface of
``torch.autograd.Function``::

    class MultiplyGate(fb.Function):
        @staticmethod
        def forward(ctx, x, y):          # numpy arrays in, a numpy array out
            ctx.save_for_backward(x, y)
            return x * y

        @staticmethod
        def backward(ctx, grad):         # the upstream gradient, a numpy array
            x, y = ctx.saved_tensors
            return grad * y, grad * x    # the downstream gradients, one per input

    z = MultiplyGate.apply(a, b)         # a Tensor, part of the graph

Custom nodes run Python: their ``forward`` and ``backward`` are ordinary Python functions
on numpy arrays, called by the engine like the built-in ops' closures. (When whole steps
are compiled into plans of kernel calls, a custom node stays a Python callback inside the
plan; it is as fast as the numpy code you write in it.)
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import backends
from .tensor import Tensor, _result

__all__ = ["Function", "FunctionCtx"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _readonly(arr):
    """A read-only view of ``arr``: what forward and backward see, so that an in-place
    update inside them cannot corrupt a tensor or a gradient shared with other nodes."""
    v = arr.view()
    v.flags.writeable = False
    return v


def _kind(x):
    return "None" if x is None else type(x).__name__


class FunctionCtx:
    """The ``ctx`` handed to :meth:`Function.forward` and :meth:`Function.backward`.

    Save the arrays that backward needs with :meth:`save_for_backward` and read them back
    from :attr:`saved_tensors`; any other attribute (``ctx.axis = 1``) is kept too.
    :attr:`needs_input_grad` says, per argument of ``apply``, whether a gradient for it is
    needed (False for constants and for tensors that do not require grad), so that
    backward may skip work and return None there.
    """

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()

    def save_for_backward(self, *arrays):
        """Keep ``arrays`` (numpy arrays, or anything else: they are stored as given) for
        :meth:`Function.backward`; a later call replaces the earlier one."""
        self._saved = arrays

    @property
    def saved_tensors(self):
        """The tuple given to :meth:`save_for_backward` (empty if it was not called)."""
        return self._saved


class Function:
    """Base class of custom nodes; subclass it and define two static methods.

    ``forward(ctx, *args)``
        Receives the arguments of :meth:`apply`, where every :class:`~fastbp.Tensor` is
        replaced by its data as a read-only numpy array; other arguments (numbers,
        strings, numpy arrays, ...) pass through unchanged as constants. Returns one numpy
        array (float32/float64, the dtype of the tensor arguments), which ``apply`` wraps
        as a Tensor. It runs with gradient recording off.
    ``backward(ctx, grad)``
        Receives the gradient of the loss with respect to the output (a read-only numpy
        array of the output's shape and dtype) and returns the gradients with respect to
        the arguments of ``apply``: a tuple with one entry per argument, or a single array
        when there is one argument. An entry is a numpy array of exactly the argument's
        shape and dtype (no broadcasting), or None (no gradient: required for constants,
        allowed for any argument). Arrays returned are never modified by the engine.

    Errors name the class and the argument: a backward returning the wrong number of
    gradients, a gradient of the wrong shape or dtype, or a gradient for a constant
    raises TypeError/ValueError instead of broadcasting silently. A custom node works
    under :func:`~fastbp.no_grad` (no graph is recorded and backward is never called),
    under :func:`~fastbp.detect_anomaly` (NaN/Inf in its output or its gradients is
    reported under the class's name), when used several times in one graph, and with
    :func:`~fastbp.gradcheck`.

    Custom nodes run Python (see the module documentation): write the arithmetic with
    numpy, vectorised, as you would for the built-in ops' reference backend.
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("a Function subclass must define a static forward(ctx, ...)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("a Function subclass must define a static backward(ctx, grad)")

    @classmethod
    def apply(cls, *args):
        """Run :meth:`forward` on ``args`` and return its output as a Tensor that records
        this node (when gradients are enabled and a tensor argument requires grad)."""
        name = cls.__name__
        if cls.forward is Function.forward:
            raise NotImplementedError(f"{name} must define a static forward(ctx, ...)")
        st = backends._state
        tensors = []  # (position, tensor)
        dtype = None
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                if dtype is None:
                    dtype, first = a.data.dtype, i
                elif a.data.dtype != dtype:
                    raise TypeError(
                        f"{name}.apply: input {first} is {dtype} but input {i} is "
                        f"{a.data.dtype}; fastbp never upcasts silently, cast one explicitly"
                    )
                tensors.append((i, a))
        track = st.grad_enabled and any(t.requires_grad for _, t in tensors)
        needs = tuple(isinstance(a, Tensor) and track and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        fwd_args = [_readonly(a.data) if isinstance(a, Tensor) else a for a in args]
        previous = st.grad_enabled
        st.grad_enabled = False  # forward sees arrays; any tensor op inside records nothing
        try:
            with _unrecorded(st):
                Y = cls.forward(ctx, *fwd_args)
        finally:
            st.grad_enabled = previous
        Y = _check_output(name, Y, dtype)
        replay = _replayed_forward(cls, ctx, needs, fwd_args, dtype, Y) if st.trace else None
        if replay is not None:
            Y, ctx = replay
        out, tracked = _result(Y, tuple(t for _, t in tensors), name, st)
        if tracked:
            if cls.backward is Function.backward:
                raise NotImplementedError(f"{name} must define a static backward(ctx, grad)")
            backward_fn = cls.backward
            n = len(args)
            constants = [(i, type(a).__name__) for i, a in enumerate(args)
                         if not isinstance(a, Tensor)]

            def backward(g):
                with _unrecorded(backends._state):
                    grads = backward_fn(ctx, _readonly(g))
                if not isinstance(grads, (tuple, list)):
                    grads = (grads,)  # a single gradient: right for one input
                if len(grads) != n:
                    raise TypeError(
                        f"{name}.backward returned {len(grads)} gradient"
                        f"{'' if len(grads) == 1 else 's'}, expected {n} (one per input of "
                        "apply, None where none is needed)"
                    )
                for i, kind in constants:
                    if grads[i] is not None:
                        raise TypeError(
                            f"{name}.backward returned a gradient for input {i}, which is not "
                            f"a Tensor but a constant ({kind}); return None in its place"
                        )
                # Check every gradient before accumulating any.
                checked = [(t, _check_grad(name, i, grads[i], t)) for i, t in tensors
                           if grads[i] is not None]
                if backends._state.trace is not None:
                    checked = _replayed_backward(name, backward_fn, ctx, g, tensors, grads,
                                                 checked)
                for t, gi in checked:
                    if t.requires_grad:
                        t._accumulate(gi, True)  # the caller may keep it: never written into

            out._backward = backward
        return out


def _check_output(name, Y, dtype):
    if isinstance(Y, Tensor):
        raise TypeError(
            f"{name}.forward returned a fastbp Tensor; forward works on numpy arrays and "
            "must return one (apply wraps it as a Tensor)"
        )
    if isinstance(Y, (tuple, list)):
        raise TypeError(
            f"{name}.forward returned a {type(Y).__name__}; a custom node has one output "
            "(a numpy array)"
        )
    if not isinstance(Y, (np.ndarray, np.generic)):
        raise TypeError(f"{name}.forward returned {_kind(Y)}; expected a numpy array")
    Y = np.asarray(Y)
    if not Y.dtype.isnative:
        Y = Y.astype(Y.dtype.newbyteorder("="))
    if Y.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name}.forward returned an array of dtype {Y.dtype}; expected "
            f"{dtype if dtype is not None else 'float32 or float64'}"
        )
    if dtype is not None and Y.dtype != dtype:
        raise TypeError(
            f"{name}.forward returned an array of dtype {Y.dtype} for inputs of dtype {dtype}; "
            "fastbp never casts silently: cast it inside forward"
        )
    if not (Y.flags.c_contiguous and Y.flags.aligned and Y.flags.writeable):
        # A read-only result is a view of an input (forward sees read-only arrays): copy,
        # so the output never aliases an input's data.
        Y = np.array(Y, order="C", copy=True)
    return Y


def _check_grad(name, i, g, t):
    if isinstance(g, Tensor):
        raise TypeError(
            f"{name}.backward returned a fastbp Tensor as the gradient for input {i}; "
            "expected a numpy array"
        )
    if not isinstance(g, (np.ndarray, np.generic)):
        raise TypeError(
            f"{name}.backward returned {_kind(g)} as the gradient for input {i}; expected a "
            f"numpy array of shape {t.shape} and dtype {t.dtype}, or None"
        )
    g = np.asarray(g)
    if not g.dtype.isnative:
        g = g.astype(g.dtype.newbyteorder("="))
    if g.shape != t.data.shape:
        raise ValueError(
            f"{name}.backward returned a gradient of shape {g.shape} for input {i} of shape "
            f"{t.data.shape}"
        )
    if g.dtype != t.data.dtype:
        raise TypeError(
            f"{name}.backward returned a gradient of dtype {g.dtype} for input {i} of dtype "
            f"{t.data.dtype}; fastbp never casts gradients silently"
        )
    if not (g.flags.c_contiguous and g.flags.aligned):
        g = np.array(g, order="C", copy=True)
    return g


# ---------------------------------------------------------------------- compiled steps
@contextlib.contextmanager
def _unrecorded(st):
    """Run user code of a custom node without recording its kernels into a compiled
    step being traced (the plan re-runs that code as one callback step)."""
    if st.trace is None:
        yield
        return
    from fastbp_ext import _plan

    paused = _plan.pause()
    try:
        yield
    finally:
        if paused:
            _plan.resume()


# Inside a compiled step (fastbp.compile) a custom node runs as a Python callback step of
# the plan: the plan re-runs forward (backward) on the current values of the traced
# buffers and copies the result into the buffer that the later kernels read.
def _replayed_forward(cls, ctx, needs, fwd_args, dtype, Y):
    from fastbp_ext import _plan

    if not _plan.recording():
        return None
    Y = np.array(Y, order="C", copy=True)  # the plan's own output buffer
    holder = ctx  # the node's context: replaced on every replayed forward
    name = cls.__name__

    def forward_again():
        st = backends._state
        fresh = FunctionCtx(needs)
        previous = st.grad_enabled
        st.grad_enabled = False
        try:
            y = _check_output(name, cls.forward(fresh, *fwd_args), dtype)
        finally:
            st.grad_enabled = previous
        if y.shape != Y.shape:
            raise ValueError(f"{name}.forward returned shape {y.shape} in a compiled step "
                             f"traced with shape {Y.shape}")
        np.copyto(Y, y)
        # the saved tensors of this call are the ones backward must see
        holder.__dict__.clear()
        holder.__dict__.update(fresh.__dict__)

    _plan.callback(forward_again)
    return Y, holder


def _replayed_backward(name, backward_fn, ctx, g, tensors, grads, checked):
    from fastbp_ext import _plan

    if not _plan.recording():
        return checked
    owned = [(t, np.array(gi, order="C", copy=True)) for t, gi in checked]
    which = [i for i, _t in tensors if grads[i] is not None]

    def backward_again():
        again = backward_fn(ctx, _readonly(g))
        if not isinstance(again, (tuple, list)):
            again = (again,)
        for (t, buf), i in zip(owned, which):
            np.copyto(buf, _check_grad(name, i, again[i], t))

    _plan.callback(backward_again)
    return owned
