"""Compiled step plans: :func:`compile` traces a step once and replays its kernels.

The first call of a compiled function with a given *signature* (the shapes and dtypes of
its array arguments, the values of its Python-number arguments, the identity of any other
object) runs it eagerly while recording every kernel it launches — forward, backward and
optimiser update — together with the buffers they used (:mod:`fastbp_ext._plan`). Later
calls with that signature copy their array arguments into the traced input buffers and
replay the recorded calls in one ``nogil`` loop: no Python between kernels, no argument
checks, no allocation. tinygrad's ``TinyJit`` and ``jax.jit`` work the same way.

What is frozen at trace time (as in jax): Python control flow, Python-level reads of
values (``loss.item()``, ``if x.data.max() > 0``), numpy computations done in the function
itself (``(y == 3).astype(np.float32)``: compute such arrays outside and pass them in),
Python numbers, and the structure of what the function returns. What is not frozen:
every array argument (ids and labels too), parameters and optimiser state (updated in
place exactly as eager does, Adam's step count included), the upstream-gradient scale,
dropout masks drawn from a :class:`fastbp.Generator` (fresh on every call).

A custom :class:`fastbp.Function` inside a compiled step runs as a Python callback step
(correct, but not Python-free). Things that cannot be replayed raise a clear error at
trace time: the numpy backend, :func:`fastbp.detect_anomaly`, dropout drawn from a numpy
Generator, ops whose output shape depends on values (``coalesce``).
"""

from __future__ import annotations

import collections
import functools
import numbers
import warnings

import numpy as np

from . import backends
from .tensor import Tensor, _result

__all__ = ["compile", "CompiledFunction"]

_INDEX_TYPES = (np.dtype(np.int32), np.dtype(np.int64))


class _Trace:
    """What a trace learns besides the kernel calls: the leaves whose ``.grad`` the step
    reads or writes (with their state when first touched), and the optimisers it steps."""

    __slots__ = ("leaves", "reads", "keep", "spans")

    def __init__(self, inputs=()):
        self.leaves = {}
        self.reads = {}
        self.keep = []
        # byte ranges of the traced input buffers
        self.spans = [(b.ctypes.data, b.ctypes.data + b.nbytes) for b in inputs]

    def read(self, parents):
        """Leaves that an op reads: the plan holds their data arrays (by identity)."""
        for p in parents:
            if p._leaf and id(p) not in self.reads:
                self.reads[id(p)] = (p, p.data)

    def is_input(self, a):
        """Does array ``a`` view one of the traced input buffers?"""
        lo = a.__array_interface__["data"][0]
        return any(s <= lo < e for s, e in self.spans)

    def touch(self, t, zeroing=False):
        if id(t) not in self.leaves:
            # [tensor, grad at the start of the call, cleared before any use, data array]
            self.leaves[id(t)] = [t, t.grad, zeroing, t.data]

    def hold(self, obj):
        """Keep ``obj`` alive as long as the plan (an optimiser whose state it reads)."""
        self.keep.append(obj)


def _active():
    return backends._state.trace


class _Entry:
    """One traced signature: the plan, its input buffers, the leaf states it assumes and
    leaves behind, and the template of its return value."""

    __slots__ = ("plan", "inputs", "leaves", "reads", "out", "keep", "mismatches",
                 "_data", "_grads", "_ends")

    def finish(self):
        """Precompute the per-call checks: the data arrays the plan points into, the
        gradients it assumes at the start of a call and leaves at the end."""
        data = {id(t): (t, d) for t, d in self.reads}
        data.update({id(t): (t, d) for t, _s, _z, d, _e in self.leaves})
        self._data = list(data.values())
        self._grads = [(t, start) for t, start, zeroed, _d, _e in self.leaves if not zeroed]
        self._ends = [(t, end) for t, _s, _z, _d, end in self.leaves]

    def valid(self):
        for t, data in self._data:
            if t.data is not data:
                return False
        for t, start in self._grads:
            if t.grad is not start:
                return False
        return True

    def replay(self, arrays):
        self.plan.bind_run(self.inputs, arrays)
        for t, end in self._ends:
            t.grad = end
        return _rebuild(self.out)


# ------------------------------------------------------------------ signatures
def _flatten(obj, key, arrays, path=()):
    """Append ``obj``'s part of the signature to ``key`` and its input arrays to
    ``arrays`` (tuples, lists and dicts are walked)."""
    if isinstance(obj, np.ndarray):
        key.append(("a", obj.shape, obj.dtype))
        arrays.append(obj)
    elif isinstance(obj, Tensor):
        if obj.requires_grad:  # a parameter: state, used in place (by identity)
            key.append(("p", id(obj)))
        else:
            key.append(("t", obj.data.shape, obj.data.dtype))
            arrays.append(obj.data)
    elif isinstance(obj, (tuple, list)):
        key.append((type(obj).__name__, len(obj)))
        for x in obj:
            _flatten(x, key, arrays)
    elif isinstance(obj, dict):
        key.append(("d", tuple(obj)))
        for x in obj.values():
            _flatten(x, key, arrays)
    elif obj is None or isinstance(obj, (bool, numbers.Number, str, bytes)):
        key.append(("v", type(obj).__name__, obj))
    else:  # a module, an optimiser, a generator...: by identity
        key.append(("o", id(obj)))


def _buffer_like(a):
    """The traced input buffer for array ``a`` (integer ids other than int32/int64 are
    held as int64, so that the kernels read them without a conversion)."""
    if a.dtype.kind in "iub" and a.dtype not in _INDEX_TYPES:
        return np.array(a, dtype=np.int64, order="C")
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")


def _substitute(obj, bufs):
    """``obj`` with its input arrays replaced by the traced buffers (in ``_flatten``
    order; ``bufs`` is an iterator)."""
    if isinstance(obj, np.ndarray):
        return next(bufs)
    if isinstance(obj, Tensor):
        return obj if obj.requires_grad else Tensor(next(bufs))
    if isinstance(obj, tuple):
        return tuple(_substitute(x, bufs) for x in obj)
    if isinstance(obj, list):
        return [_substitute(x, bufs) for x in obj]
    if isinstance(obj, dict):
        return {k: _substitute(x, bufs) for k, x in obj.items()}
    return obj


# ------------------------------------------------------------------ return values
def _template(obj, where):
    """Record how to rebuild the return value: tensors and arrays by their buffers."""
    if isinstance(obj, Tensor):
        return ("t", obj.data)
    if isinstance(obj, np.ndarray):
        return ("a", obj)
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, [_template(x, where) for x in obj])
    if isinstance(obj, dict):
        return ("d", {k: _template(x, where) for k, x in obj.items()})
    if isinstance(obj, (numbers.Number, np.generic)) and not isinstance(obj, bool):
        warnings.warn(
            f"{where} returned a Python number ({obj!r}); it is frozen at trace time and "
            "every later call returns the same value: return the Tensor instead "
            "(e.g. `return loss`, then `loss.item()` outside)",
            stacklevel=4,
        )
    return ("v", obj)


def _rebuild(tpl):
    kind, x = tpl
    if kind == "t":
        return _result(x.copy(), (), "compiled", backends._state)[0]
    if kind == "a":
        return x.copy()
    if kind == "tuple":
        return tuple(_rebuild(y) for y in x)
    if kind == "list":
        return [_rebuild(y) for y in x]
    if kind == "d":
        return {k: _rebuild(y) for k, y in x.items()}
    return x


# ------------------------------------------------------------------ the decorator
class CompiledFunction:
    """A function whose calls replay a traced plan of kernel calls (see :func:`compile`).

    Attributes
    ----------
    traces : int
        How many times the function has been traced (one per signature, plus retraces).
    """

    def __init__(self, fn, maxsize=8, fuse=True):
        if not callable(fn):
            raise TypeError(f"fastbp.compile needs a callable, got {type(fn).__name__}")
        maxsize = int(maxsize)
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.fn = fn
        self.maxsize = maxsize
        self.fuse = bool(fuse)
        self.traces = 0
        self._cache = collections.OrderedDict()
        self._eager = set()  # signatures whose parameter-gradient state never settles
        functools.update_wrapper(self, fn)

    def __repr__(self):
        return f"<fastbp.compile of {getattr(self.fn, '__qualname__', self.fn)!r}: " \
               f"{len(self._cache)} plan(s)>"

    @property
    def name(self):
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def _signature(self, args, kwargs):
        if not kwargs and all(type(a) is np.ndarray for a in args):
            return (tuple([(a.shape, a.dtype) for a in args]),
                    backends._state.grad_enabled), args
        key, arrays = [], []
        _flatten(args, key, arrays)
        if kwargs:
            _flatten(kwargs, key, arrays)
        key.append(("g", backends._state.grad_enabled))
        return tuple(key), arrays

    def __call__(self, *args, **kwargs):
        if not kwargs and all(type(a) is np.ndarray for a in args):  # the common case
            key = (tuple([(a.shape, a.dtype) for a in args]), backends._state.grad_enabled)
            arrays = args
        else:
            key, arrays = self._signature(args, kwargs)
        try:
            if key in self._eager:
                return self.fn(*args, **kwargs)
        except TypeError:
            raise TypeError(f"fastbp.compile({self.name}): an argument is not hashable "
                            "(pass arrays, tensors, Python numbers or objects)") from None
        entry = self._cache.get(key)
        if entry is not None:
            if entry.valid():
                self._cache.move_to_end(key)
                return entry.replay(arrays)
            entry.mismatches += 1
            del self._cache[key]
            if entry.mismatches > 3:
                warnings.warn(
                    f"fastbp.compile({self.name}): the gradients of its parameters are left "
                    "in a different state from call to call (call zero_grad() in the step, "
                    "or before every call); running it eagerly from now on",
                    stacklevel=2,
                )
                self._eager.add(key)
                return self.fn(*args, **kwargs)
            return self._trace(key, args, kwargs, arrays, entry.mismatches)
        return self._trace(key, args, kwargs, arrays, 0)

    def _trace(self, key, args, kwargs, arrays, mismatches):
        from fastbp_ext import _plan

        st = backends._state
        if st.ops.name != "cython":
            raise RuntimeError(
                f"fastbp.compile({self.name}) needs the compiled backend (the current "
                f"backend is {st.ops.name!r}); call the function itself to run it eagerly")
        if st.anomaly:
            raise RuntimeError(
                f"fastbp.compile({self.name}): detect_anomaly() checks values in Python "
                "after every op and cannot be replayed; call the function itself")
        if st.trace is not None:
            raise RuntimeError(
                f"fastbp.compile({self.name}) called while another compiled step is "
                "being traced; compiled steps cannot be nested")
        plan = _plan.Plan()
        plan.start()
        try:
            bufs = [_buffer_like(a) for a in arrays]
            trace = st.trace = _Trace(bufs)
            it = iter(bufs)
            call_args = _substitute(args, it)
            call_kwargs = _substitute(kwargs, it) if kwargs else {}
            result = self.fn(*call_args, **call_kwargs)
            out = _template(result, f"fastbp.compile({self.name})")
        except BaseException:
            st.trace = None
            plan.abandon()
            raise
        st.trace = None
        plan.stop()
        entry = _Entry()
        entry.plan = plan
        entry.inputs = bufs
        entry.leaves = [(t, start, zeroed, data, t.grad)
                        for t, start, zeroed, data in trace.leaves.values()]
        # gradient buffers nobody sees after a call (their leaf's .grad ends as None)
        dead = [t._grad_buf for t, _s, _z, _d, end in entry.leaves
                if end is None and t._grad_buf is not None]
        if self.fuse:
            plan.fuse_bias_activations()
            plan.fuse_weight_updates(dead)
        entry.reads = list(trace.reads.values())
        entry.out = out
        entry.keep = (trace.keep, args, kwargs)  # objects keyed by identity stay alive
        entry.mismatches = mismatches
        entry.finish()
        self.traces += 1
        self._cache[key] = entry
        while len(self._cache) > self.maxsize:
            self._cache.popitem(last=False)
        return _rebuild(out)

    # ------------------------------------------------------------------ introspection
    def plan_for(self, *args, **kwargs):
        """The :class:`~fastbp_ext._plan.Plan` replayed for these arguments (None when
        that signature has not been traced): ``len(plan)``, ``plan.kernel_names()``,
        ``plan.profile(repeats)`` (per-kernel time; applies the step ``repeats``
        times)."""
        key, _ = self._signature(args, kwargs)
        entry = self._cache.get(key)
        return None if entry is None else entry.plan

    def clear(self):
        """Drop every plan (the next call of each signature traces again)."""
        self._cache.clear()
        self._eager.clear()


def compile(fn=None, *, maxsize=8, fuse=True):  # noqa: A001 - the public name, as jax.jit / torch.compile
    """Compile a training (or inference) step into a replayed plan of kernel calls.

    Use as ``@fb.compile`` or ``@fb.compile(maxsize=4)``. The first call with a new
    signature traces the function (runs it eagerly, recording every kernel); later calls
    replay the plan with the new argument values. See the module documentation for what
    is frozen at trace time.

    Parameters
    ----------
    fn : callable
        The step. Its array arguments (numpy arrays, tensors without ``requires_grad``,
        also inside tuples, lists and dicts) are inputs; tensors that require grad
        (parameters), Python numbers and other objects are part of the signature.
    maxsize : int
        Plans kept (least recently used dropped first).
    fuse : bool
        Apply the plan-level fusions derived from the traced graph: a weight gradient
        ``dW = op(A) op(B)`` that only an SGD update reads (and nobody sees after the
        call, the usual ``zero_grad()`` at the end of a step) is applied to ``W`` in the
        same pass (``W -= lr op(A) op(B)``; a rank-1 update at batch size 1), so ``W`` is
        streamed once instead of three times. Results equal the unfused plan's to
        rounding (the sum is associated differently). Applied to products over at most
        128 rows (batches up to 128), where it was measured to win.

    Returns
    -------
    CompiledFunction
        Callable like ``fn``; returned tensors and arrays are fresh copies holding this
        call's values.
    """
    if fn is None:
        return lambda f: CompiledFunction(f, maxsize, fuse)
    return CompiledFunction(fn, maxsize, fuse)
