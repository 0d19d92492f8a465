"""Weights files: exact round trips, and a one-line WeightsError for every malformed file.

Crafted files recompute the checksum with nn.serialize.state_checksum so that the check under
test (key, shape, dtype) is the one that fires, not the checksum.  Nothing here may unpickle.
"""
import json
import os
import pickle

import numpy as np
import pytest

from models import build_model, load_model
from nn.errors import UserError, WeightsError
from nn.serialize import state_checksum

UNPICKLED = []


def _record_unpickling(tag):
    """Called only if someone unpickles an ``Evil`` object."""
    UNPICKLED.append(tag)
    return tag


class Evil:
    """Unpickling this runs code (here harmlessly: it appends to UNPICKLED)."""

    def __reduce__(self):
        return (_record_unpickling, ("unpickled!",))


@pytest.fixture
def images():
    return np.random.default_rng(0).uniform(0, 1, (16, 28, 28)).astype(np.float32)


def make_model(name, seed=123):
    model = build_model(name, np.random.default_rng(seed))
    if name == "lstm":  # buffers must round-trip too: move them off their initial 0 / 1
        bn = model.network.layers[1]
        rng = np.random.default_rng(seed + 1)
        bn.buffers["running_mean"][:] = rng.normal(0, 0.5, bn.num_features)
        bn.buffers["running_var"][:] = rng.uniform(0.2, 3.0, bn.num_features)
    return model


def read_npz(path):
    """(meta dict, state dict) straight from the archive, bypassing our checks."""
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(archive["__meta__"].tobytes().decode("utf-8"))
        state = {name[len("state/"):]: archive[name] for name in archive.files if name.startswith("state/")}
    return meta, state


def write_npz(path, meta, state, recompute_checksum=True):
    meta = dict(meta)
    if recompute_checksum:
        meta["checksum"] = state_checksum(state, meta)
    arrays = {f"state/{key}": value for key, value in state.items()}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


def load_error(path, expect=None):
    """The WeightsError load_model raises for ``path``; checks it is a one-line message."""
    with pytest.raises(WeightsError) as info:
        load_model(path, expect=expect)
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    return message


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_round_trip_gives_identical_predictions(tmp_path, images, name):
    model = make_model(name)
    path = tmp_path / f"{name}.npz"
    model.save(path, extra={"epochs": 3, "note": "round trip"})
    loaded = load_model(path, expect=name)
    assert loaded.name == name and loaded.extra == {"epochs": 3, "note": "round trip"}
    assert loaded.network.config() == model.network.config()
    original_state, loaded_state = model.network.state(), loaded.network.state()
    assert original_state.keys() == loaded_state.keys()
    for key, value in original_state.items():
        assert loaded_state[key].dtype == value.dtype == np.float32, key
        np.testing.assert_array_equal(loaded_state[key], value, err_msg=key)
    np.testing.assert_array_equal(loaded.predict_proba(images), model.predict_proba(images))
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    # The file, not the loader's own initialisation, is what made them equal.
    fresh = build_model(name, np.random.default_rng(0))
    assert not np.array_equal(fresh.predict_proba(images), loaded.predict_proba(images))


def test_lstm_buffers_matter(tmp_path, images):
    """Resetting the loaded BatchNorm statistics changes predictions: they were really loaded."""
    model = make_model("lstm")
    path = tmp_path / "lstm.npz"
    model.save(path)
    loaded = load_model(path)
    before = loaded.predict_proba(images)
    bn = loaded.network.layers[1]
    np.testing.assert_array_equal(bn.buffers["running_var"], model.network.layers[1].buffers["running_var"])
    bn.buffers["running_mean"][:] = 0
    bn.buffers["running_var"][:] = 1
    assert not np.allclose(loaded.predict_proba(images), before)


def test_wrong_model_is_refused_by_name(tmp_path):
    path = tmp_path / "cnn.npz"
    make_model("cnn").save(path)
    assert load_model(path, expect="cnn").name == "cnn"
    message = load_error(path, expect="lstm")
    assert str(path) in message and "CNN" in message and "LSTM" in message


# ----------------------------------------------------------------------------- tampering

def test_tampered_array_fails_the_checksum(tmp_path):
    path = tmp_path / "cnn.npz"
    make_model("cnn").save(path)
    meta, state = read_npz(path)
    state["0.weight"] = state["0.weight"].copy()
    state["0.weight"][0, 0, 1, 1] += np.float32(1e-3)
    write_npz(path, meta, state, recompute_checksum=False)
    message = load_error(path)
    assert "checksum" in message and str(path) in message


def test_rewriting_with_a_recomputed_checksum_still_loads(tmp_path, images):
    """Control for the crafted-file tests below: the rewrite itself yields a valid file."""
    model = make_model("lstm")
    path = tmp_path / "lstm.npz"
    model.save(path)
    meta, state = read_npz(path)
    write_npz(path, meta, state)
    np.testing.assert_array_equal(load_model(path).predict_proba(images), model.predict_proba(images))


@pytest.mark.parametrize("name, change, expected", [
    ("cnn", lambda s: s.pop("0.weight"), "missing array '0.weight'"),
    ("lstm", lambda s: s.pop("1.running_var"), "missing array '1.running_var'"),
    ("cnn", lambda s: s.update({"13.weight": s["13.weight"][:, :-1]}), "shape"),
    ("lstm", lambda s: s.update({"0.b": np.zeros(4 * 32, np.float32)}), "shape"),
    ("cnn", lambda s: s.update({"0.bias": s["0.bias"].astype(np.float64)}), "dtype"),
    ("lstm", lambda s: s.update({"2.weight": s["2.weight"].astype(np.float16)}), "dtype"),
    ("cnn", lambda s: s.update({"99.weight": np.zeros(3, np.float32)}), "unexpected array '99.weight'"),
], ids=["missing", "missing-buffer", "shape", "shape-lstm", "dtype", "dtype-lstm", "extra"])
def test_crafted_state_is_refused(tmp_path, name, change, expected):
    path = tmp_path / f"{name}.npz"
    make_model(name).save(path)
    meta, state = read_npz(path)
    change(state)
    write_npz(path, meta, state)
    message = load_error(path)
    assert expected in message and str(path) in message and "checksum" not in message


def test_invalid_architecture_is_refused(tmp_path):
    path = tmp_path / "cnn.npz"
    make_model("cnn").save(path)
    meta, state = read_npz(path)
    meta["layers"][0]["padding"] = "full"
    write_npz(path, meta, state)
    assert "architecture" in load_error(path)


@pytest.mark.parametrize("change", [
    lambda m: m.update(model=["cnn"]),
    lambda m: m.update(model="transformer"),
    lambda m: m.update(options=5),
    lambda m: m.update(extra=[1, 2]),
    lambda m: m.update(layers=5),
    lambda m: m.pop("layers"),
    lambda m: m["layers"][0].update(type="Evil"),
    lambda m: m["layers"][0].update(out_channels=-3),
    lambda m: m["layers"][0].update(out_channels=10 ** 12),
    lambda m: m.update(format="something else"),
    lambda m: m.update(version=99),
], ids=["model-not-str", "model-unknown", "options-not-dict", "extra-not-dict", "layers-not-list",
        "layers-missing", "layer-type-unknown", "negative-size", "absurd-size", "format", "version"])
@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")  # negative size
def test_malformed_header_is_refused(tmp_path, change):
    """The JSON header is not covered by the checksum: each field must still be validated."""
    path = tmp_path / "cnn.npz"
    make_model("cnn").save(path)
    meta, state = read_npz(path)
    change(meta)
    write_npz(path, meta, state)
    assert str(path) in load_error(path)


def test_header_edit_that_keeps_shapes_is_detected(tmp_path):
    path = tmp_path / "cnn.npz"
    make_model("cnn").save(path)
    meta, state = read_npz(path)
    assert meta["layers"][1]["type"] == "LeakyReLU"
    meta["layers"][1]["slope"] = 0.5
    write_npz(path, meta, state, recompute_checksum=False)
    load_error(path)


# ----------------------------------------------------------------------------- not weights files

def _valid_meta_bytes(tmp_path):
    path = tmp_path / "valid.npz"
    make_model("lstm").save(path)
    with np.load(path) as archive:
        return archive["__meta__"]


@pytest.mark.parametrize("kind", ["text", "empty", "random-bytes", "truncated", "no-meta",
                                  "meta-not-json", "npy-not-npz", "missing-file", "directory"])
def test_not_a_weights_file(tmp_path, kind):
    path = tmp_path / "weights.npz"
    if kind == "text":
        path.write_text("these are not the weights you are looking for\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        make_model("cnn").save(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "no-meta":
        np.savez(path, a=np.zeros(3))
    elif kind == "meta-not-json":
        np.savez(path, __meta__=np.frombuffer(b"{not json", dtype=np.uint8))
    elif kind == "npy-not-npz":
        with open(path, "wb") as handle:
            np.save(handle, np.zeros(3))
    elif kind == "directory":
        path.mkdir()
    assert str(path) in load_error(path)


@pytest.mark.parametrize("where", ["state", "meta", "raw-pickle"])
def test_pickles_are_refused_and_never_run(tmp_path, where):
    evil = np.array([Evil(), Evil()], dtype=object)
    path = tmp_path / "evil.npz"
    if where == "state":
        np.savez(path, __meta__=_valid_meta_bytes(tmp_path), **{"state/0.w_ih": evil})
    elif where == "meta":
        np.savez(path, __meta__=evil)
    else:
        with open(path, "wb") as handle:
            pickle.dump(evil, handle)
    UNPICKLED.clear()
    load_error(path)
    assert UNPICKLED == [], "loading a weights file unpickled an object"
    # Control: the same bytes do run code when unpickled, so the check above can fail.
    if where == "raw-pickle":
        with open(path, "rb") as handle:
            pickle.load(handle)
        assert UNPICKLED == ["unpickled!", "unpickled!"]


# ----------------------------------------------------------------------------- atomic save

def _failing_savez(file, *args, **kwds):
    """Writes part of an archive to the open handle, then fails like a full disk."""
    file.write(b"PK\x03\x04 half an archive")
    raise OSError(28, "No space left on device")


def test_failed_save_leaves_existing_file_and_no_temporary(tmp_path, monkeypatch, images):
    path = tmp_path / "cnn.npz"
    model = make_model("cnn")
    model.save(path)
    original = path.read_bytes()
    monkeypatch.setattr(np, "savez", _failing_savez)
    with pytest.raises(OSError, match="No space left"):
        make_model("cnn", seed=7).save(path)
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["cnn.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load_model(path).predict_proba(images), model.predict_proba(images))


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", _failing_savez)
    with pytest.raises(OSError):
        make_model("lstm").save(tmp_path / "lstm.npz")
    assert os.listdir(tmp_path) == []


def test_save_replaces_the_file_and_leaves_no_temporary(tmp_path, images):
    path = tmp_path / "lstm.npz"
    make_model("lstm", seed=1).save(path)
    second = make_model("lstm", seed=2)
    second.save(path)
    assert sorted(os.listdir(tmp_path)) == ["lstm.npz"]
    np.testing.assert_array_equal(load_model(path).predict_proba(images), second.predict_proba(images))
