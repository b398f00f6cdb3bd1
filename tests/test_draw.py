"""fb.draw: Graphviz pictures of the computation graph (the lecture's slide example)."""

from __future__ import annotations

import builtins
import re
import shutil

import numpy as np
import pytest

import fastbp as fb
from fastbp.draw import Graph, GraphvizNotInstalled


def _slide():
    """The lecture's f(x, y, z) = (x + y) * max(y, z) at (1, 2, 0), after backward."""
    x, y, z = (fb.Tensor(v, requires_grad=True) for v in (1.0, 2.0, 0.0))
    q = x + y
    m = fb.maximum(y, z)
    f = q * m
    for t in (q, m, f):
        t.retain_grad()
    f.backward(retain_graph=True)
    return f, dict(x=x, y=y, z=z, q=q, m=m, f=f)


def _rows(src, name):
    """The table rows (name/shape, data, grad) of the box of tensor ``name``."""
    line = next(ln for ln in src.splitlines() if f"<B>{name}</B>" in ln)
    return re.findall(r"<TD>(.*?)</TD>", line)


def test_slide_example_dot_content():
    f, t = _slide()
    src = fb.draw(f, names=t).source
    assert src.startswith("digraph fastbp {") and src.rstrip().endswith("}")
    ops = re.findall(r'shape=ellipse, label="(\w+)"', src)
    assert sorted(ops) == ["add", "maximum", "mul"]
    assert _rows(src, "f")[1:] == ["data 6", '<FONT COLOR="blue">grad 1</FONT>']
    for name, data, grad in [("x", 1, 2), ("y", 2, 5), ("z", 0, 0), ("q", 3, 2),
                             ("m", 2, 3)]:
        rows = _rows(src, name)
        assert rows[0] == f"<B>{name}</B>  () float64"
        assert rows[1:] == [f"data {data}", f'<FONT COLOR="blue">grad {grad}</FONT>']
    # one box per tensor, one ellipse per op; edges parent -> op -> output
    assert src.count("shape=plaintext") == 6 and src.count("shape=ellipse") == 3
    assert src.count("->") == 3 + 6  # op -> output, and the six operand edges


def test_unknown_gradients_and_large_tensors_are_not_shown():
    x = fb.Tensor(np.arange(3.0), requires_grad=True)
    big = fb.Tensor(np.ones((3, 4)))  # 12 elements: shape only
    h = fb.tanh(x) * 2.0  # non-leaves without retain_grad: values, no gradient
    y = (h.reshape(3, 1) * big).sum()
    src = fb.draw(y, names={"x": x}).source
    assert "grad" not in src  # nothing ran backward yet
    assert "(3, 4) float64" in src and "data [[1" not in src
    assert "<B>const</B>" in src  # the 2.0 and big
    assert "data [0, 0.7616, 0.964]" in src
    y.backward(retain_graph=True)
    src = fb.draw(y, names={"x": x}).source
    assert src.count("grad ") == 1  # only the leaf x has a known gradient
    assert src.count("shape=ellipse") == 5  # tanh, mul, reshape, mul, sum


def test_draw_after_backward_without_retain_graph_explains():
    x = fb.Tensor(2.0, requires_grad=True)
    y = x * x
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        fb.draw(y)
    with pytest.raises(TypeError, match="Tensor"):
        fb.draw(np.ones(2))
    leaf = fb.draw(x)  # a leaf alone is a one-node graph
    assert leaf.source.count("shape=plaintext") == 1 and "grad 4" in leaf.source


def test_node_used_twice_and_row_sparse_grad():
    E = fb.Parameter(np.arange(6.0).reshape(3, 2))
    e = fb.embedding(E, np.array([[0, 2]]))
    s = (e * e).sum()
    s.backward(retain_graph=True)
    src = fb.draw(s, names={"E": E}).source
    mul = re.search(r"(op\d+) \[shape=ellipse, label=\"mul\"\]", src).group(1)
    assert len(re.findall(rf"-> {mul};", src)) == 2  # e feeds both operands of mul
    assert "grad [[0, 2], [0, 0], [8, 10]]" in src  # the RowSparseGrad, densified


def test_module_parameters_are_named():
    model = fb.nn.Sequential(fb.nn.Linear(3, 2, rng=0), fb.nn.Tanh())
    loss = model(fb.Tensor(np.ones((1, 3), np.float32))).sum()
    src = fb.draw(loss, names=model).source
    assert "<B>0.weight</B>  (2, 3) float32" in src and "<B>0.bias</B>" in src
    assert sorted(re.findall(r'label="(\w+)"', src)) == ["linear", "sum", "tanh"]


def test_render_and_jupyter(tmp_path):
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("the Graphviz dot program is not installed")
    f, t = _slide()
    g = fb.draw(f, names=t)
    svg = g.render(tmp_path / "slide.svg")
    text = svg.read_text()
    assert text.lstrip().startswith(("<?xml", "<svg")) and "maximum" in text
    png = g.render(tmp_path / "slide.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert g._repr_svg_().count("<svg") == 1
    assert "image/svg+xml" in g._repr_mimebundle_()


def test_missing_install_error(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_graphviz(name, *args, **kwargs):
        if name == "graphviz":
            raise ImportError("No module named 'graphviz'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_graphviz)
    f, t = _slide()
    g = fb.draw(f, names=t)
    with pytest.raises(GraphvizNotInstalled) as info:
        g.render(tmp_path / "x.png")
    msg = str(info.value)
    assert "pip install 'fastbp[viz]'" in msg and "Graphviz" in msg and "\n" not in msg
    assert isinstance(info.value, ImportError)
    assert not (tmp_path / "x.png").exists()
    # Jupyter falls back to the DOT text instead of failing
    assert g._repr_svg_() is None
    bundle = g._repr_mimebundle_()
    assert bundle["text/vnd.graphviz"] == g.source and "image/svg+xml" not in bundle
    assert isinstance(g, Graph) and str(g) == g.source


def test_missing_dot_program_error(monkeypatch):
    graphviz = pytest.importorskip("graphviz")

    def no_dot(*a, **k):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Source, "pipe", no_dot)
    with pytest.raises(GraphvizNotInstalled, match="'dot' program was not found"):
        fb.draw(_slide()[0]).pipe("svg")
