"""Gradient checking by central finite differences in float64."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sparse import RowSparseGrad
from .tensor import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckError", "GradcheckResult"]


class GradcheckError(AssertionError):
    """The analytical and numerical gradients disagree."""


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`; true when every gradient matched.

    ``max_abs_error`` and ``max_rel_error`` are over all checked elements, the relative
    error of an input being ``max |analytic - numeric| / max |numeric|`` (the error relative
    to the gradient's scale)."""

    passed: bool
    max_abs_error: float
    max_rel_error: float
    per_input: list = field(default_factory=list)

    def __bool__(self):
        return self.passed


def _scalar(out, proj):
    """Reduce the output of ``fn`` to a scalar with a fixed random projection."""
    return float((out.data * proj).sum()) if proj is not None else float(out.data.reshape(()))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, seed=0, raise_exception=True):
    """Compare the gradients computed by ``backward`` with central differences.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> Tensor``. A non-scalar output is reduced to ``sum(out * R)``
        with a fixed random ``R``, which checks the full vector-Jacobian product.
    inputs : sequence of Tensor
        float64 tensors; those with ``requires_grad`` are checked.
    eps : float
        Finite-difference step.
    atol, rtol : float
        An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    seed : int
        Seed of the projection ``R``.
    raise_exception : bool
        Raise :class:`GradcheckError` on mismatch (default) instead of returning a
        failing result.

    Returns
    -------
    GradcheckResult
    """
    inputs = list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs, got {t.dtype} of shape {t.shape}")
        if not t.is_leaf:
            raise ValueError("gradcheck inputs must be leaf tensors")

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError("gradcheck: fn must return a fastbp Tensor")
    proj = None
    if out.data.size != 1:
        proj = np.random.default_rng(seed).standard_normal(out.shape)

    saved = [t.grad for t in checked]
    for t in checked:
        t.grad = None
    out.backward(None if proj is None else proj.astype(out.dtype))
    analytic = []
    for t in checked:
        g = t.grad
        if g is None:
            g = np.zeros_like(t.data)
        elif isinstance(g, RowSparseGrad):
            g = g.toarray()
        analytic.append(np.array(g, copy=True))
    for t, g in zip(checked, saved):
        t.grad = g

    passed = True
    worst_abs = worst_rel = 0.0
    report = []
    with no_grad():
        for t, ga in zip(checked, analytic):
            flat = t.data.reshape(-1)
            gn = np.empty(flat.size)
            for i in range(flat.size):
                orig = flat[i]
                flat[i] = orig + eps
                fp = _scalar(fn(*inputs), proj)
                flat[i] = orig - eps
                fm = _scalar(fn(*inputs), proj)
                flat[i] = orig
                gn[i] = (fp - fm) / (2 * eps)
            gn = gn.reshape(t.shape)
            err = np.abs(ga - gn)
            ok = err <= atol + rtol * np.abs(gn)
            scale = max(float(np.abs(gn).max()) if gn.size else 0.0, 1e-12)
            rel = err / scale
            max_abs = float(err.max()) if err.size else 0.0
            max_rel = float(rel.max()) if rel.size else 0.0
            worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
            report.append({"shape": t.shape, "max_abs_error": max_abs, "max_rel_error": max_rel})
            if not ok.all():
                passed = False
                if raise_exception:
                    idx = np.unravel_index(int(np.argmax(err - rtol * np.abs(gn))), t.shape)
                    raise GradcheckError(
                        f"gradient mismatch for input of shape {t.shape} at index {idx}: "
                        f"analytic {ga[idx]:.10g} vs numerical {gn[idx]:.10g} "
                        f"(max abs error {max_abs:.3g})"
                    )
    return GradcheckResult(passed, worst_abs, worst_rel, report)
