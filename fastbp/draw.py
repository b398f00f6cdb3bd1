"""Pictures of the computation graph: ``fb.draw(root)`` (after micrograd's ``draw_dot``).

One Graphviz node per tensor (a box: its name or kind, shape and dtype and, for tensors of
at most ``max_elements`` elements, its values in black and, where known, its gradient in
blue) and one per op (an ellipse with the op name), arrows in the direction of the forward
pass. Gradients are known for leaves after ``backward()`` and for non-leaves on which
:meth:`~fastbp.Tensor.retain_grad` was called; for the lecture's picture run
``root.backward(retain_graph=True)`` (a plain ``backward()`` frees the graph as it goes,
so there would be nothing left to draw)::

    x, y, z = (fb.Tensor(v, requires_grad=True) for v in (1.0, 2.0, 0.0))
    q = x + y; m = fb.maximum(y, z); f = q * m
    for t in (q, m, f):
        t.retain_grad()
    f.backward(retain_graph=True)
    g = fb.draw(f, names={"x": x, "y": y, "z": z, "q": q, "m": m, "f": f})
    g.source            # DOT text, no dependency
    g.render("f.svg")   # needs the optional extra: pip install 'fastbp[viz]' + Graphviz
    g                   # in Jupyter: displayed inline

The DOT text needs nothing beyond fastbp; rendering needs the ``graphviz`` Python package
(``pip install 'fastbp[viz]'``) and the system Graphviz ``dot`` program.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .sparse import RowSparseGrad
from .tensor import Tensor, _freed

__all__ = ["draw", "Graph", "GraphvizNotInstalled"]

_INSTALL = ("pip install 'fastbp[viz]' (the graphviz package) and the system Graphviz "
            "(e.g. apt-get install graphviz, brew install graphviz)")


class GraphvizNotInstalled(ImportError):
    """Rendering needs the ``graphviz`` Python package and the Graphviz ``dot`` program."""


def _html(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _fmt(arr):
    """Compact nested-list text of a small array: ``6``, ``[1, -0.5]``, ``[[1, 2], [3, 4]]``."""
    if arr.ndim == 0:
        v = float(arr)
        return "0" if v == 0 else f"{v:.4g}"
    return "[" + ", ".join(_fmt(sub) for sub in arr) + "]"


def _shape_text(shape):
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _known_grad(t):
    g = t.grad
    if g is None:
        return None
    if type(g) is RowSparseGrad:
        return g.toarray()
    return np.asarray(g)


class Graph:
    """What :func:`draw` returns: the DOT text of a graph and ways to show it.

    Attributes
    ----------
    source : str
        The graph in Graphviz's DOT language (needs no dependency).
    """

    def __init__(self, source):
        self.source = source

    def __str__(self):
        return self.source

    def __repr__(self):
        n = self.source.count("shape=ellipse")
        return f"<fastbp.draw.Graph: {n} op node{'' if n == 1 else 's'}; .source, .render(path)>"

    def pipe(self, format="svg"):
        """The rendered graph as bytes in ``format`` (``"svg"``, ``"png"``, ``"pdf"``, ...).

        Raises
        ------
        GraphvizNotInstalled
            (an ImportError) when the ``graphviz`` package or the ``dot`` program is
            missing; the message names the install.
        """
        try:
            import graphviz
        except ImportError:
            raise GraphvizNotInstalled(
                f"rendering a graph needs the optional viz extra: {_INSTALL}") from None
        try:
            return graphviz.Source(self.source).pipe(format=format)
        except graphviz.ExecutableNotFound:
            raise GraphvizNotInstalled(
                f"the Graphviz 'dot' program was not found on PATH: {_INSTALL}") from None

    def render(self, path, format=None):
        """Write the picture to ``path``; the format comes from its suffix (``.svg``,
        ``.png``, ``.pdf``) unless ``format`` is given. Returns the path.

        Raises
        ------
        GraphvizNotInstalled
            When the optional viz extra is missing (see :meth:`pipe`).
        """
        path = Path(path)
        fmt = format or path.suffix.lstrip(".").lower() or "svg"
        data = self.pipe(fmt)
        path.write_bytes(data)
        return path

    # Jupyter / IPython rich display
    def _repr_svg_(self):
        try:
            return self.pipe("svg").decode("utf-8")
        except GraphvizNotInstalled:
            return None

    def _repr_mimebundle_(self, include=None, exclude=None):
        svg = self._repr_svg_()
        bundle = {"text/plain": repr(self)}
        if svg is not None:
            bundle["image/svg+xml"] = svg
        else:
            bundle["text/vnd.graphviz"] = self.source
        return bundle


def _collect(root):
    """Every tensor reachable from ``root`` through ``_parents``, breadth first from the
    root (no recursion; a deterministic order)."""
    order = [root]
    seen = {id(root)}
    i = 0
    while i < len(order):  # breadth first: the list is its own queue
        for p in order[i]._parents:
            if id(p) not in seen:
                seen.add(id(p))
                order.append(p)
        i += 1
    return order


def draw(root, names=None, max_elements=8, rankdir="LR"):
    """The computation graph that produced ``root``, as Graphviz.

    Parameters
    ----------
    root : Tensor
        The output (e.g. a loss); the graph is everything reachable from it.
    names : dict or fastbp.nn.Module, optional
        ``{"x": x, "W": W, ...}``: names shown on the tensors' boxes (others show
        ``leaf``, ``const`` or nothing). A module names its parameters by their dotted
        names (``"hidden.weight"``).
    max_elements : int
        Tensors with at most this many elements show their values and known gradients.
    rankdir : {"LR", "TB"}
        Left to right (the lecture's layout) or top to bottom.

    Returns
    -------
    Graph
        ``.source`` (DOT text), ``.render(path)``, ``.pipe(format)``; displayed inline in
        Jupyter.

    Raises
    ------
    RuntimeError
        When ``root``'s graph was freed by a ``backward()`` without ``retain_graph=True``.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"draw expects a fastbp Tensor, got {type(root).__name__}")
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"rankdir must be LR, TB, RL or BT, got {rankdir!r}")
    if not root._leaf and root._backward is _freed and not root._parents:
        raise RuntimeError(
            "fb.draw: the graph of this tensor was freed by backward(); call "
            "backward(retain_graph=True) to draw the graph after backward"
        )
    label_of = {}
    if hasattr(names, "named_parameters") and not hasattr(names, "items"):
        names = dict(names.named_parameters())
    for name, t in (names or {}).items():
        if not isinstance(t, Tensor):
            raise TypeError(f"names[{name!r}] is a {type(t).__name__}, not a fastbp Tensor")
        label_of[id(t)] = str(name)
    tensors = _collect(root)
    ids = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    lines = [
        "digraph fastbp {",
        f"  graph [rankdir={rankdir}, fontname=Helvetica];",
        "  node [fontname=Helvetica, fontsize=11];",
        "  edge [color=gray30];",
    ]
    edges = []
    for t in tensors:
        tid = ids[id(t)]
        kind = "const" if t._leaf and not t.requires_grad else ("leaf" if t._leaf else "")
        title = label_of.get(id(t), kind)
        head = f"{_shape_text(t.shape)} {t.dtype}"
        rows = [f"<B>{_html(title)}</B>  {_html(head)}" if title else _html(head)]
        if t.size <= max_elements:
            rows.append(f"data {_html(_fmt(t.data))}")
            g = _known_grad(t)
            if g is not None:
                rows.append(f'<FONT COLOR="blue">grad {_html(_fmt(g))}</FONT>')
        cells = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
        table = f'<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">{cells}</TABLE>'
        lines.append(f"  {tid} [shape=plaintext, margin=0, label=<{table}>];")
        if t._leaf:
            continue
        oid = f"op{tid[1:]}"
        freed = t._backward is _freed and not t._parents
        op_label = t.op + (" (freed)" if freed else "")
        lines.append(f'  {oid} [shape=ellipse, label="{op_label}"];')
        edges.append(f"  {oid} -> {tid};")
        for p in t._parents:
            edges.append(f"  {ids[id(p)]} -> {oid};")
    lines.extend(edges)
    lines.append("}")
    return Graph("\n".join(lines) + "\n")
