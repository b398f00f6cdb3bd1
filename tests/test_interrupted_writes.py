"""Ctrl-C at any moment of an atomic write leaves the target whole (old or new content)
and nothing else behind.

``fb.save`` (one ``.npz`` file) and ``fastbp.ner.io.write_dir_atomically`` (the model
and training-state directories) are run once to count the file-system calls they make;
then, for every k, the same write again with a real SIGINT raised right after the k-th
of those calls returns (before the caller has seen the result, which is the moment an
interrupt from the terminal can land). Real files in ``tmp_path``, the process's own
SIGINT handler.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

import fastbp as fb
import fastbp.ner.io as nerio

CALLS = ("mkdir", "open", "fsync", "rename", "replace", "unlink", "rmdir")


class _Interrupter:
    """Wraps the os calls in ``CALLS`` (and the directory exchange of ``fastbp.ner.io``)
    to count them, or to raise SIGINT right after the ``at``-th one returns."""

    def __init__(self, monkeypatch, at=None):
        self.count, self.at, self.fired = 0, at, None
        for name in CALLS:
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))
        monkeypatch.setattr(nerio, "_exchange", self._wrap("exchange", nerio._exchange))

    def _wrap(self, name, real):
        def call(*args, **kwargs):
            result = real(*args, **kwargs)
            self.count += 1
            if self.count == self.at:
                self.fired = name
                signal.raise_signal(signal.SIGINT)
            return result
        return call


def _sweep(monkeypatch, tmp_path, write, read, old, new, target):
    """Count the calls of one write, then interrupt after each of them in turn."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    write(old)
    counter = _Interrupter(monkeypatch)
    write(new)
    n = counter.count
    monkeypatch.undo()
    assert n >= 4, n
    fired = set()
    for k in range(1, n + 1):
        write(old)
        hook = _Interrupter(monkeypatch, at=k)
        with pytest.raises(KeyboardInterrupt):
            write(new)
        monkeypatch.undo()
        fired.add(hook.fired)
        leftovers = sorted(os.listdir(tmp_path))
        assert leftovers == [target], (k, hook.fired, leftovers)
        got = read()
        assert got in (old, new), (k, hook.fired)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert {"mkdir" if target.endswith(".d") else "open", "fsync"} <= fired, fired
    return n


def test_ctrl_c_anywhere_in_fb_save_leaves_old_or_new_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"

    def write(value):
        fb.save({"a": np.full(5, value), "b": np.arange(3.0) * value}, path)

    def read():
        got = fb.load(path)
        np.testing.assert_array_equal(got["b"], np.arange(3.0) * got["a"][0])
        return float(got["a"][0])

    _sweep(monkeypatch, tmp_path, write, read, 1.0, 2.0, "w.npz")


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_ctrl_c_anywhere_in_a_directory_write_leaves_old_or_new_and_no_temp(
        tmp_path, monkeypatch, exchange):
    path = tmp_path / "state.d"
    if not exchange:  # the portable fallback: path -> .old-*, tmp -> path
        real = nerio._exchange
        nerio._exchange = lambda a, b: False
    try:
        def write(value):
            nerio.write_dir_atomically(path, {"w.npz": {"x": np.full(4, value)}},
                                       {"m.json": {"value": value}})

        def read():
            meta = json.loads((path / "m.json").read_text())
            with np.load(path / "w.npz") as npz:
                np.testing.assert_array_equal(npz["x"], np.full(4, meta["value"]))
            assert sorted(os.listdir(path)) == ["m.json", "w.npz"]
            return meta["value"]

        _sweep(monkeypatch, tmp_path, write, read, 1.0, 2.0, "state.d")
    finally:
        if not exchange:
            nerio._exchange = real
