"""Model directories (``fastbp.ner.io``): loading never executes code, every damaged or
mismatched directory gives ONE clear :class:`ModelFormatError` naming the file, saving is
atomic, and Ctrl-C during ``fastbp train`` stops cleanly with the best checkpoint on disk.

Real files in ``tmp_path``; the hostile cases that could allocate without bound run in a
child process with a memory cap. ``FASTBP_ROBUST_TALLY=FILE`` appends case counts.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp.ner.io
from fastbp.ner.data import write_conll
from fastbp.ner.io import ModelFormatError, load_model, save_model
from fastbp.ner.model import WindowClassifier
from fastbp.ner.synthetic import generate_corpus
from fastbp.ner.vocab import LabelSet, Vocab
from fastbp.ner.windows import WindowFeaturizer

TALLY = collections.Counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    out = os.environ.get("FASTBP_ROBUST_TALLY")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"module": __name__, "tally": dict(TALLY)}) + "\n")


# weights.npz keys (format version 2: the models' dotted parameter names)
N = {"E": "embedding.weight", "W": "hidden_layer.weight", "b": "hidden_layer.bias",
     "U": "output_layer.weight", "c": "output_layer.bias"}


def make_model(seed=0, hidden=5):
    vocab = Vocab(["eu", "rejects", "german", "call"])
    feat = WindowFeaturizer(vocab, window=1)
    labels = LabelSet(["O", "ORG", "MISC"])
    model = WindowClassifier(feat.n_rows, feat.width, len(labels), embed_dim=4, hidden=hidden,
                             rng=np.random.default_rng(seed))
    return model, feat, labels


@pytest.fixture
def saved(tmp_path):
    model, feat, labels = make_model()
    path = tmp_path / "model"
    save_model(path, model, feat, labels, {"epoch": 1})
    return path, model


def expect_format_error(category, path, *, names):
    """load_model(path) raises ModelFormatError naming ``names`` (a file) -- nothing
    else escapes."""
    TALLY[category + ":tried"] += 1
    try:
        load_model(path)
    except ModelFormatError as exc:
        msg = str(exc)
        assert str(names) in msg, msg
        assert "\n" not in msg and len(msg) < 2000
        TALLY[category + ":clear-error"] += 1
        return msg
    except BaseException as exc:  # noqa: BLE001
        TALLY[category + ":OTHER-EXCEPTION"] += 1
        pytest.fail(f"{category}: {type(exc).__name__} escaped load_model: {exc}")
    TALLY[category + ":LOADED"] += 1
    pytest.fail(f"{category}: the damaged directory loaded")


def strict_load_error(path, names):
    """Any exception other than ModelFormatError propagates, so that a test pins
    the reason of the expected failure."""
    with pytest.raises(ModelFormatError, match=str(names).replace("\\", "\\\\")):
        load_model(path)


def same_weights(model, loaded):
    for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()):
        np.testing.assert_array_equal(a, b)


def test_round_trip(saved):
    path, model = saved
    loaded = load_model(path)
    same_weights(model, loaded)
    assert loaded.training["epoch"] == 1


# ------------------------------------------------------------------ no code execution
class Payload:
    """Unpickling this creates a marker file: evidence that loading ran code."""

    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_payload(marker):
    Payload.marker = str(marker)
    return pickle.dumps(Payload(), protocol=2)


def test_object_array_in_npz_is_refused_without_running_code(saved, tmp_path):
    path, model = saved
    marker = tmp_path / "PWNED"
    Payload.marker = str(marker)
    state = model.state_dict()
    obj = np.empty(1, dtype=object)
    obj[0] = Payload()
    state[N["E"]] = obj
    with open(path / "weights.npz", "wb") as fh:
        np.savez(fh, **state)  # np.savez pickles object arrays
    expect_format_error("no-code:object-array", path, names=path / "weights.npz")
    assert not marker.exists()


def _npz_with_raw_member(path, member, marker):
    w = path / "weights.npz"
    arrays = dict(np.load(w))
    with zipfile.ZipFile(w, "w") as zf:
        for name, arr in arrays.items():
            if name + ".npy" == member:
                zf.writestr(member, _pickle_payload(marker))
            else:
                with zf.open(name + ".npy", "w") as fh:
                    np.lib.format.write_array(fh, arr)


@pytest.mark.parametrize("member", [N["E"] + ".npy", N["U"] + ".npy"])
def test_raw_pickle_member_in_npz_runs_no_code(saved, tmp_path, member):
    path, _ = saved
    marker = tmp_path / "PWNED"
    _npz_with_raw_member(path, member, marker)
    TALLY["no-code:pickle-member:tried"] += 1
    with pytest.raises(Exception):  # noqa: B017 - which one: see the tests below
        load_model(path)
    assert not marker.exists()
    TALLY["no-code:pickle-member:no-code-run"] += 1


def test_raw_pickle_member_in_npz_gives_a_format_error(saved, tmp_path):
    path, _ = saved
    _npz_with_raw_member(path, N["E"] + ".npy", tmp_path / "PWNED")
    strict_load_error(path, path / "weights.npz")


def test_weights_file_that_is_a_pickle_is_refused(saved, tmp_path):
    path, _ = saved
    marker = tmp_path / "PWNED"
    (path / "weights.npz").write_bytes(_pickle_payload(marker))
    expect_format_error("no-code:pickle-file", path, names=path / "weights.npz")
    assert not marker.exists()


def test_config_is_json_only(saved, tmp_path):
    path, _ = saved
    marker = tmp_path / "PWNED"
    (path / "config.json").write_bytes(_pickle_payload(marker))
    expect_format_error("no-code:pickle-config", path, names=path / "config.json")
    assert not marker.exists()


# ------------------------------------------------------------------ damaged weights
@pytest.mark.parametrize("keep", [0, 1, 10, 22, 100, 0.5, 0.9, -1])
def test_truncated_weights(saved, keep):
    path, _ = saved
    w = path / "weights.npz"
    data = w.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) - 1)
    w.write_bytes(data[:n])
    expect_format_error("weights:truncated", path, names=w)


@given(positions=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=4),
       values=st.lists(st.integers(0, 255), min_size=4, max_size=4))
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_corrupted_weight_bytes(saved, positions, values):
    """Random byte changes anywhere in weights.npz: either a clear error or -- when the
    change hits bytes that do not matter (zip comments, padding) -- identical weights."""
    path, model = saved
    w = path / "weights.npz"
    _, feat, labels = make_model()
    save_model(path, model, feat, labels)  # a fresh file for each example
    data = bytearray(w.read_bytes())
    for p, v in zip(positions, values):
        data[int(p * len(data))] = v
    w.write_bytes(bytes(data))
    TALLY["weights:corrupted:tried"] += 1
    try:
        loaded = load_model(path)
    except ModelFormatError as exc:
        assert str(w) in str(exc)
        TALLY["weights:corrupted:clear-error"] += 1
        return
    except (NotImplementedError, RuntimeError) as exc:
        # formerly a bug (see the tests below): corrupted zip flag bits make zipfile
        # raise these, and load_model does not catch them. Remove this branch once fixed.
        assert isinstance(exc, NotImplementedError) or "encrypted" in str(exc), exc
        TALLY["weights:corrupted:KNOWN-BUG-escaped"] += 1
        return
    except BaseException as exc:  # noqa: BLE001
        TALLY["weights:corrupted:OTHER-EXCEPTION"] += 1
        pytest.fail(f"{type(exc).__name__} escaped load_model: {exc}")
    TALLY["weights:corrupted:loaded-identical"] += 1
    same_weights(model, loaded)  # loaded: must be exactly the saved weights


def _patch_central_directory(path, offset, value):
    """Overwrite a 2-byte little-endian field of the first central-directory record of
    weights.npz (offset 6: version needed, 8: flag bits, 10: compression method)."""
    w = path / "weights.npz"
    data = bytearray(w.read_bytes())
    at = data.index(b"PK\x01\x02")
    data[at + offset : at + offset + 2] = int(value).to_bytes(2, "little")
    w.write_bytes(bytes(data))


@pytest.mark.parametrize("offset, value", [(8, 1 << 0), (8, 1 << 5), (8, 1 << 6), (10, 99),
                                           (6, 0xFF)],
                         ids=["encrypted", "patched", "strong-encryption", "method-99",
                              "version-25.5"])
def test_zip_header_fields_give_a_format_error(saved, offset, value):
    path, _ = saved
    _patch_central_directory(path, offset, value)
    strict_load_error(path, path / "weights.npz")


def _rewrite_weights(path, fn):
    w = path / "weights.npz"
    state = dict(np.load(w))
    state = fn(state)
    with open(w, "wb") as fh:
        np.savez(fh, **state)


@pytest.mark.parametrize("change", [
    "missing-array", "extra-array", "wrong-shape", "wrong-dtype", "nan", "inf", "0-d",
    "int-array", "transposed", "fortran-order",
])
def test_mismatched_weights(saved, change):
    path, _ = saved

    def edit(state):
        if change == "missing-array":
            del state[N["U"]]
        elif change == "extra-array":
            state["Z"] = np.zeros(3, np.float32)
        elif change == "wrong-shape":
            state[N["W"]] = np.zeros((state[N["W"]].shape[0], 6), np.float32)
        elif change == "wrong-dtype":
            state[N["W"]] = state[N["W"]].astype(np.float64)
        elif change == "nan":
            state[N["E"]][3, 1] = np.nan
        elif change == "inf":
            state[N["c"]][0] = -np.inf
        elif change == "0-d":
            state[N["b"]] = np.float32(0.0)
        elif change == "int-array":
            state[N["b"]] = state[N["b"]].astype(np.int32)
        elif change == "transposed":
            state[N["U"]] = np.ascontiguousarray(state[N["U"]].T)
        elif change == "fortran-order":  # same shape and values: must load
            state[N["W"]] = np.asfortranarray(state[N["W"]])
        return state

    _rewrite_weights(path, edit)
    if change == "fortran-order":
        load_model(path)
        return
    expect_format_error(f"weights:{change}", path, names=path / "weights.npz")


# ------------------------------------------------------------------ damaged config
def _edit_config(path, fn):
    c = path / "config.json"
    cfg = json.loads(c.read_text())
    out = fn(cfg)
    c.write_text(out if isinstance(out, str) else json.dumps(out))


CONFIG_CHANGES = {
    "format_version 3": lambda c: {**c, "format_version": 3},
    "format_version '1'": lambda c: {**c, "format_version": "1"},
    "format_version missing": lambda c: {k: v for k, v in c.items() if k != "format_version"},
    "model missing": lambda c: {k: v for k, v in c.items() if k != "model"},
    "model a list": lambda c: {**c, "model": [1, 2]},
    "model type unknown": lambda c: {**c, "model": {**c["model"], "type": "transformer"}},
    "model type missing": lambda c: {**c, "model": {k: v for k, v in c["model"].items() if k != "type"}},
    "hidden mismatch": lambda c: {**c, "model": {**c["model"], "hidden": 6}},
    "hidden 0": lambda c: {**c, "model": {**c["model"], "hidden": 0}},
    "hidden string": lambda c: {**c, "model": {**c["model"], "hidden": "5"}},
    "hidden null": lambda c: {**c, "model": {**c["model"], "hidden": None}},
    "dtype float16": lambda c: {**c, "model": {**c["model"], "dtype": "float16"}},
    "dtype object": lambda c: {**c, "model": {**c["model"], "dtype": "object"}},
    "dtype float64": lambda c: {**c, "model": {**c["model"], "dtype": "float64"}},
    "dropout 2": lambda c: {**c, "model": {**c["model"], "dropout": 2}},
    "n_classes mismatch": lambda c: {**c, "model": {**c["model"], "n_classes": 4}},
    "labels mismatch": lambda c: {**c, "labels": {"labels": ["O", "PER"]}},
    "labels not a list": lambda c: {**c, "labels": {"labels": 7}},
    "labels missing": lambda c: {k: v for k, v in c.items() if k != "labels"},
    "featurizer window 2": lambda c: {**c, "featurizer": {**c["featurizer"], "window": 2}},
    "featurizer vocab broken": lambda c: {**c, "featurizer": {**c["featurizer"], "vocab": 3}},
    "featurizer missing": lambda c: {k: v for k, v in c.items() if k != "featurizer"},
    "empty object": lambda c: {},
    "a list": lambda c: [c],
    "null": lambda c: None,
    "NaN literal": lambda c: json.dumps(c).replace('"dropout": 0.0', '"dropout": NaN'),
    "truncated": lambda c: json.dumps(c)[: len(json.dumps(c)) // 2],
    "empty file": lambda c: "",
    "invalid utf-8": lambda c: None,  # replaced below with raw bytes
    "trailing garbage": lambda c: json.dumps(c) + " x",
}


@pytest.mark.parametrize("change", sorted(CONFIG_CHANGES))
def test_damaged_config(saved, change):
    path, _ = saved
    c = path / "config.json"
    if change == "invalid utf-8":
        c.write_bytes(c.read_bytes().replace(b'"float32"', b'"float\xff32"'))
    else:
        _edit_config(path, CONFIG_CHANGES[change])
    expect_format_error(f"config:{change}", path, names=path)


def test_missing_files_and_wrong_paths(saved, tmp_path):
    path, _ = saved
    expect_format_error("dir:missing", tmp_path / "nope", names=tmp_path / "nope")
    f = tmp_path / "file"
    f.write_text("x")
    expect_format_error("dir:a-file", f, names=f)
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_format_error("dir:empty", empty, names=empty / "config.json")
    (path / "weights.npz").unlink()
    expect_format_error("dir:no-weights", path, names=path / "weights.npz")
    (path / "weights.npz").mkdir()
    expect_format_error("dir:weights-is-a-dir", path, names=path / "weights.npz")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 64) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(edits=st.lists(st.tuples(st.sampled_from(["model", "featurizer", "labels", "top"]),
                                st.text(max_size=12), JSON_VALUES, st.booleans()),
                      min_size=1, max_size=4))
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzzed_config_values(saved, edits):
    """Random keys set to random JSON values (or real keys deleted): loads, or one
    ModelFormatError. (Integers stay small here; huge ones are tested below.)"""
    path, model = saved
    # (the fixture is shared by the examples: start from a freshly saved directory)
    save_model(path, model, *make_model()[1:], {"epoch": 1})
    cfg = json.loads((path / "config.json").read_text())
    keys = {"model": list(cfg["model"]), "featurizer": list(cfg["featurizer"]),
            "labels": list(cfg["labels"]), "top": list(cfg)}
    for section, key, value, use_real in edits:
        d = cfg if section == "top" else cfg.get(section)
        if not isinstance(d, dict):
            continue
        if use_real and keys[section]:
            key = keys[section][len(key) % len(keys[section])]
        if isinstance(value, bool) and value is False and key in d:
            del d[key]
        else:
            d[key] = value
    (path / "config.json").write_text(json.dumps(cfg))
    TALLY["config:fuzzed:tried"] += 1
    try:
        load_model(path)
        TALLY["config:fuzzed:loaded"] += 1
    except ModelFormatError as exc:
        assert str(path) in str(exc)
        TALLY["config:fuzzed:clear-error"] += 1
    except TypeError as exc:
        # formerly a bug (test_unhashable_model_type_gives_a_format_error): a
        # list/dict as the model "type". Remove this branch once fixed.
        assert "unhashable" in str(exc) and not isinstance(cfg["model"].get("type"), str), exc
        TALLY["config:fuzzed:KNOWN-BUG-escaped"] += 1
    except BaseException as exc:  # noqa: BLE001
        TALLY["config:fuzzed:OTHER-EXCEPTION"] += 1
        pytest.fail(f"{type(exc).__name__} escaped load_model: {exc}")


@pytest.mark.parametrize("value", [[], {"a": 1}])
def test_unhashable_model_type_gives_a_format_error(saved, value):
    path, _ = saved
    _edit_config(path, lambda c: {**c, "model": {**c["model"], "type": value}})
    strict_load_error(path, path)


CAPPED_CHILD = """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    from fastbp.ner.io import ModelFormatError, load_model
    try:
        load_model(sys.argv[1])
    except ModelFormatError as exc:
        print("ModelFormatError")
    except BaseException as exc:
        print(type(exc).__name__, str(exc)[:200])
    else:
        print("LOADED")
"""


def _load_in_capped_child(path):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(CAPPED_CHILD), str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.parametrize("key, value", [("hidden", 10**9), ("n_rows", 10**9)])
def test_huge_dimensions_in_config_give_a_format_error(saved, key, value):
    path, _ = saved
    _edit_config(path, lambda c: {**c, "model": {**c["model"], key: value}})
    assert _load_in_capped_child(path) == "ModelFormatError"


def test_deeply_nested_config_gives_a_format_error(saved):
    path, _ = saved
    (path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    strict_load_error(path, path)


# ------------------------------------------------------------------ atomic saving
def _dir_listing(parent):
    return sorted(p.name for p in parent.iterdir())


@pytest.mark.parametrize("fail_in", ["savez-after-partial-write", "json-dump", "fsync"])
def test_failed_save_leaves_the_previous_checkpoint(saved, monkeypatch, fail_in):
    path, old_model = saved
    before = _dir_listing(path.parent)
    new_model, feat, labels = make_model(seed=1)

    if fail_in == "savez-after-partial-write":
        def broken(fh, **arrays):
            fh.write(b"PK\x03\x04 half a zip file")
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(np, "savez", broken)
    elif fail_in == "json-dump":
        real = json.dump

        def broken(obj, fh, **kw):
            fh.write('{"format_version": 1, "model": {')
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(json, "dump", broken)
        assert real is not broken
    else:
        def broken(fd):
            raise OSError(5, "Input/output error")
        monkeypatch.setattr(os, "fsync", broken)

    with pytest.raises(OSError):
        save_model(path, new_model, feat, labels, {"epoch": 2})
    monkeypatch.undo()
    loaded = load_model(path)
    same_weights(old_model, loaded)
    assert loaded.training["epoch"] == 1
    assert _dir_listing(path.parent) == before  # no temporary directory left behind


def test_failure_between_the_two_renames_keeps_the_checkpoint(saved, monkeypatch):
    path, old_model = saved
    new_model, feat, labels = make_model(seed=1)
    real = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    # exercise the two-rename fallback used where the atomic exchange is unavailable
    monkeypatch.setattr(fastbp.ner.io, "_exchange", lambda a, b: False)
    with pytest.raises(OSError):
        save_model(path, new_model, feat, labels, {"epoch": 2})
    monkeypatch.undo()
    same_weights(old_model, load_model(path))


KILL_CHILD = """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_robust_modeldir import make_model
    from fastbp.ner.io import save_model
    path = sys.argv[1]
    models = [make_model(seed=s, hidden=300) for s in (0, 1)]
    print("ready", flush=True)
    i = 0
    while True:
        save_model(path, *models[i % 2], {{"i": i}})
        i += 1
"""


def test_killed_save_never_leaves_a_torn_checkpoint(tmp_path):
    """SIGKILL a process that saves checkpoints in a loop, at random moments: the
    directory always loads, and holds exactly one of the two models (never a mix).
    (On Linux the swap is one atomic exchange; the two-rename fallback is tested above.)"""
    path = tmp_path / "model"
    models = [make_model(seed=s, hidden=300)[0] for s in (0, 1)]
    save_model(path, *make_model(seed=0, hidden=300), {"i": -1})
    code = textwrap.dedent(KILL_CHILD.format(tests=os.path.join(ROOT, "tests")))
    rng = np.random.default_rng(0)
    hidden_old = 0
    for trial in range(8):
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.01, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        TALLY["save:sigkill:tried"] += 1
        if not path.exists():  # killed between the two renames (fallback path only)
            hidden_old += 1
            olds = [p for p in tmp_path.iterdir() if p.name.startswith(".model.old-")]
            assert olds, "the model directory vanished without a trace"
            os.rename(olds[0], path)
        loaded = load_model(path)
        state = loaded.model.state_dict()
        matches = [all(np.array_equal(a, b) for a, b in zip(m.state_dict().values(),
                                                           state.values())) for m in models]
        assert any(matches), "the checkpoint is a mix of two saves"
        TALLY["save:sigkill:intact"] += 1
    TALLY["save:sigkill:between-renames"] += hidden_old


# ------------------------------------------------------------------ Ctrl-C during training
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    tr, dv = generate_corpus(n_train=3000, n_dev=600, seed=0)
    write_conll(d / "train.conll", tr)
    write_conll(d / "dev.conll", dv)
    return d


@pytest.mark.parametrize("delay", [0.0, 0.35, 0.8])
def test_ctrl_c_during_fastbp_train(tmp_path, corpus, delay):
    out = tmp_path / "model"
    env = dict(os.environ)  # same fastbp as this process (see tests/conftest.py)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastbp", "train", "--train", str(corpus / "train.conll"),
         "--dev", str(corpus / "dev.conll"), "--out", str(out), "--epochs", "500",
         "--embed-dim", "16", "--hidden", "32", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.json").exists():  # the first epoch's checkpoint
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    TALLY["ctrl-c:tried"] += 1
    assert proc.returncode == 130, (proc.returncode, stderr[-2000:])
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert lines[0].startswith("fastbp: error: interrupted") and str(out) in lines[0], lines
    loaded = load_model(out)  # the best checkpoint so far, loadable
    assert loaded.training.get("best_epoch", 0) >= 1
    names = sorted(p.name for p in tmp_path.iterdir())  # no temporary directories:
    assert names in (["model"], ["model", "model.last"])  # the model (+ its training state)
    if "model.last" in names:
        from fastbp.ner.checkpoint import load_state

        assert load_state(out).epoch >= 1  # the training state is complete
    TALLY["ctrl-c:clean"] += 1
