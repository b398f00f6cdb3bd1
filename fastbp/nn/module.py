"""The :class:`Module` base class and :class:`Sequential` (after ``torch.nn.Module``).

A module is a piece of a model: it owns :class:`~fastbp.Parameter` objects and other
modules, both registered simply by assigning them to attributes in ``__init__``, and
computes its output in :meth:`Module.forward`. Calling the module calls ``forward``::

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(3, 8, rng=0)     # registered as "hidden"
            self.out = nn.Linear(8, 2, rng=1)        # registered as "out"

        def forward(self, x):
            return self.out(fb.tanh(self.hidden(x)))

    [n for n, _ in MLP().named_parameters()]
    # ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']

Names are dotted paths in definition order; ``state_dict()`` maps them to numpy copies of
the weights and ``load_state_dict`` copies arrays back in place (so an optimiser built on
``parameters()`` keeps working).
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from ..tensor import Parameter

__all__ = ["Module", "Sequential", "StateDictError", "IncompatibleKeys"]


class StateDictError(ValueError):
    """A state dict does not fit a module: missing, unexpected or mis-shaped keys, or a
    dtype other than the module's (fastbp never casts weights silently)."""


#: What :meth:`Module.load_state_dict` returns (as PyTorch's ``_IncompatibleKeys``).
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _check_name(owner, name, what):
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{what} name must be a non-empty string without '.', got {name!r}")
    d = owner.__dict__
    if name in d and name not in d["_parameters"] and name not in d["_modules"]:
        raise KeyError(f"attribute {name!r} already exists")


def _indent(text, n):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * n
    return lines[0] + "\n" + "\n".join(pad + line for line in lines[1:])


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, then assign their parameters
    (:class:`~fastbp.Parameter`) and sub-modules (:class:`Module`) as attributes, and
    implement :meth:`forward`. Both kinds of attributes are registered in assignment order,
    which is the order of :meth:`parameters`, :meth:`named_parameters`, :meth:`children`
    and of the keys of :meth:`state_dict`. Assigning ``None`` to a registered name keeps
    the slot empty (e.g. ``Linear(..., bias=False)`` has ``bias = None``).

    Attributes
    ----------
    training : bool
        True (the default) in training mode, False after :meth:`eval`. Layers whose
        behaviour differs (:class:`~fastbp.nn.Dropout`) read it in ``forward``.
    """

    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ computing
    def forward(self, *args, **kwargs):
        """The computation of the module; override it in subclasses."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        d = self.__dict__
        params = d.get("_parameters")
        modules = d.get("_modules")
        if isinstance(value, (Parameter, Module)) and params is None:
            raise AttributeError(
                f"cannot assign {type(value).__name__} {name!r} before Module.__init__() "
                "call (call super().__init__() first in the subclass's __init__)"
            )
        if isinstance(value, Parameter):
            modules.pop(name, None)
            d.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            d.pop(name, None)
            modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} "
                    "(fastbp.Parameter or None expected)"
                )
            params[name] = None
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} "
                    "(fastbp.nn.Module or None expected)"
                )
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails
        d = self.__dict__
        for registry in ("_parameters", "_modules"):
            reg = d.get(registry)
            if reg is not None and name in reg:
                return reg[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        d = self.__dict__
        for registry in ("_parameters", "_modules"):
            reg = d.get(registry)
            if reg is not None and name in reg:
                del reg[name]
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules))

    def register_parameter(self, name, param):
        """Register ``param`` (a :class:`~fastbp.Parameter` or None) under ``name``."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot register a parameter before Module.__init__() call")
        _check_name(self, name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r} "
                            "(fastbp.Parameter or None expected)")
        self._modules.pop(name, None)
        self._parameters[name] = param

    def add_module(self, name, module):
        """Register ``module`` (a :class:`Module` or None) as a child named ``name``."""
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot add a module before Module.__init__() call")
        _check_name(self, name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a fastbp.nn.Module")
        self._parameters.pop(name, None)
        self._modules[name] = module

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix="", remove_duplicate=True, _memo=None):
        """Yield ``(name, module)`` for this module (name ``prefix``, ``""`` by default)
        and every module below it, depth first in registration order. A module reachable
        by several paths is yielded once unless ``remove_duplicate`` is False."""
        memo = set() if _memo is None else _memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            sub = f"{prefix}.{name}" if prefix else name
            yield from child.named_modules(sub, remove_duplicate, memo)

    def modules(self):
        """Iterator over this module and all modules below it (see :meth:`named_modules`)."""
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """Yield ``(name, module)`` for the direct sub-modules, in registration order."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        """Iterator over the direct sub-modules, in registration order."""
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted name, parameter)``: this module's own parameters first, then
        those of each sub-module, in registration order (``"hidden.weight"``). A parameter
        shared by several modules is yielded once (its first name) unless
        ``remove_duplicate`` is False."""
        seen = set()
        if recurse:
            mods = self.named_modules(prefix, remove_duplicate)
        else:
            mods = [(prefix, self)]
        for mprefix, m in mods:
            for name, p in m._parameters.items():
                if p is None:
                    continue
                if remove_duplicate:
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse=True):
        """Iterator over the parameters (see :meth:`named_parameters`); pass it to an
        optimiser: ``fb.optim.Adam(model.parameters(), lr=1e-3)``."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module (children first) and on this module;
        returns this module (e.g. to re-initialise weights)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """An ordered mapping from every dotted parameter name to a numpy COPY of its
        values (in :meth:`named_parameters` order; a shared parameter appears under each
        of its names, as in PyTorch). Save it with :func:`fastbp.save`."""
        return OrderedDict(
            (n, p.data.copy())
            for n, p in self.named_parameters(remove_duplicate=False)
        )

    def load_state_dict(self, state_dict, strict=True):
        """Copy the arrays of ``state_dict`` into the parameters, in place.

        Parameters
        ----------
        state_dict : mapping
            Dotted name -> array-like (numpy arrays, or anything ``np.asarray`` reads,
            such as the CPU tensors of a PyTorch ``state_dict()``).
        strict : bool
            Require the keys to match exactly (default). With ``strict=False`` missing and
            unexpected keys are allowed and returned; shape and dtype mismatches are
            errors either way.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, two lists of names.

        Raises
        ------
        StateDictError
            (a ValueError) naming every missing, unexpected and mis-shaped key and every
            dtype mismatch at once (the model's dtype is kept: cast the arrays
            explicitly). Nothing is modified when it is raised.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"load_state_dict expects a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict(self.named_parameters(remove_duplicate=False))
        keys = list(state_dict.keys())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in keys if k not in own]
        problems = []
        if strict and missing:
            problems.append("missing key(s) " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected key(s) " + ", ".join(map(str, unexpected)))
        arrays = {}
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            arr = np.asarray(value.data if isinstance(value, Parameter) else value)
            if arr.shape != p.data.shape:
                problems.append(f"{name!r}: shape {arr.shape} in the state dict, the model "
                                f"needs {p.data.shape}")
            elif arr.dtype != p.data.dtype:
                problems.append(f"{name!r}: dtype {arr.dtype} in the state dict, the model "
                                f"is {p.data.dtype} (cast it explicitly)")
            else:
                arrays[name] = arr
        if problems:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                                 + "; ".join(problems))
        for name, arr in arrays.items():
            np.copyto(own[name].data, arr)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ modes, grads
    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode on this module and every
        sub-module; returns this module."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode) expects a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        """Evaluation mode (``train(False)``): dropout becomes the identity."""
        return self.train(False)

    def zero_grad(self):
        """Set ``.grad`` of every parameter to None (their buffers are reused by the next
        backward)."""
        for p in self.parameters():
            p.zero_grad()

    # ------------------------------------------------------------------ printing
    def extra_repr(self):
        """The module's own settings for :func:`repr` (override in subclasses)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_indent(repr(m), 2)}" for name, m in self._modules.items()]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"


class Sequential(Module):
    """Modules applied one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    The children are named ``"0"``, ``"1"``, ... (so parameters are ``"0.weight"``, ...)
    or, given one :class:`~collections.OrderedDict`, by its keys. Indexing with an int
    returns a child, with a slice a new ``Sequential``; ``len`` and iteration work as on
    a list.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def append(self, module):
        """Add ``module`` at the end (named by its position); returns this Sequential."""
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        try:
            return items[idx][1]
        except IndexError:
            raise IndexError(f"index {idx} is out of range for a Sequential of "
                             f"{len(items)} modules") from None
