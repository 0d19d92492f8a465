"""The library's faults from issue 12, each with the test that failed before its fix.

4   load_model checks a weights file before building or reading anything
6   predict refuses garbage input with one line
11  contracts the package states: NumPy twins of every kernel, float32 kept float32, NaN
    through max-pooling as in PyTorch, BatchNorm refusing a training batch of one, docs links
12  nn is the library only (imports), caches named, CI turns missing data/torch into failures
"""
import io
import json
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from models import build_model, load_model
from nn.errors import UserError, WeightsError
from nn.serialize import state_checksum

# ----------------------------------------------------------------------------- helpers


def read_npz(path):
    """(meta dict, state dict) straight from the archive, bypassing our checks."""
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(archive["__meta__"].tobytes().decode("utf-8"))
        state = {name[len("state/"):]: archive[name] for name in archive.files if name.startswith("state/")}
    return meta, state


def write_npz(path, meta, state, recompute_checksum=True):
    """A weights file with ``meta`` as its header; the checksum recomputed as a forger would."""
    meta = dict(meta)
    if recompute_checksum:
        meta["checksum"] = state_checksum(state, meta)
    arrays = {f"state/{key}": value for key, value in state.items()}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def saved(tmp_path, name, seed=0):
    path = tmp_path / f"{name}.npz"
    build_model(name, np.random.default_rng(seed)).save(path)
    return path


def refused(path, expect=None, peak_mb=30, seconds=2.0):
    """load_model's one-line WeightsError for ``path``, checking it came cheaply: at most
    ``peak_mb`` MB allocated (tracemalloc sees NumPy's buffers) and ``seconds`` spent."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(WeightsError) as info:
            load_model(path, expect=expect)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert message and "\n" not in message and str(path) in message, message
    assert peak < peak_mb, f"refusing took {peak:.0f} MB: something was built or read first"
    assert elapsed < seconds, f"refusing took {elapsed:.1f} s: something was built first"
    return message


# ----------------------------------------------------------------------------- 4. load_model

def test_huge_dense_in_an_edited_header_is_refused_before_allocating(tmp_path):
    """A forged header (checksum recomputed) asks for Dense(128 -> 200,000): refuse from the
    declared shapes, before any weight is drawn.  (The old loader built the layer first:
    300 MB here, 4.8 GB for Dense(2048 -> 200,000).)"""
    path = saved(tmp_path, "cnn")
    meta, state = read_npz(path)
    assert meta["layers"][16] == {"type": "Dense", "in_features": 128, "out_features": 10}
    meta["layers"][16]["out_features"] = 200_000
    write_npz(path, meta, state)
    message = refused(path)
    assert "'16.weight' has shape (10, 128), expected (200000, 128)" in message


def test_huge_lstm_in_an_edited_header_costs_no_time(tmp_path):
    """LSTM(28 -> 2000) in a forged header: the old loader drew its orthogonal 8000 x 2000
    recurrent matrix (a QR, seconds and 128 MB; 46 s for larger sizes) before comparing shapes."""
    path = saved(tmp_path, "lstm")
    meta, state = read_npz(path)
    meta["options"]["hidden"] = 2000
    meta["layers"][0]["hidden_size"] = 2000
    meta["layers"][1]["num_features"] = 2000
    meta["layers"][2]["in_features"] = 2000
    write_npz(path, meta, state)
    assert "shape" in refused(path, seconds=0.5)


def test_zip_bomb_is_refused_from_the_directory(tmp_path):
    """An entry of 64 MiB of zeros compressed to 64 KB: refused by its ratio, never inflated."""
    path = saved(tmp_path, "cnn")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("state/bomb.npy", npy_bytes(np.zeros(16 * 2**20, np.float32)))
    message = refused(path)
    assert "zip bomb" in message and "state/bomb.npy" in message


def test_total_size_limit(tmp_path):
    from nn.serialize import WeightsArchive
    path = saved(tmp_path, "cnn")
    with pytest.raises(WeightsError, match="limit"):
        WeightsArchive(path, max_bytes=2**20)        # the CNN's arrays take 1.4 MB
    with WeightsArchive(path) as archive:
        assert archive.arrays["13.weight"].shape == (128, 2048)


def test_entry_claiming_37_gb_is_refused(tmp_path):
    """A .npy header declaring 9.25e9 float32 over a few bytes of data: the old loader asked
    NumPy for 37 GB and died with a MemoryError traceback."""
    meta, state = read_npz(saved(tmp_path, "cnn"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (9_250_000_000,)})
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__meta__.npy", npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
        for key, value in state.items():
            data = header.getvalue() + b"\0" * 64 if key == "13.weight" else npy_bytes(value)
            archive.writestr(f"state/{key}.npy", data)
    message = refused(path)
    assert "13.weight" in message and "9250000000" in message


def test_meta_that_is_not_a_npy_is_refused(tmp_path):
    """np.savez names entries '<key>.npy'; an entry '__meta__' of raw JSON bytes made the old
    loader fail with AttributeError ('bytes' object has no attribute 'tobytes')."""
    source = saved(tmp_path, "cnn")
    meta, state = read_npz(source)
    path = tmp_path / "raw-meta.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__meta__", json.dumps(meta).encode())
        for key, value in state.items():
            archive.writestr(f"state/{key}.npy", npy_bytes(value))
    assert "__meta__" in refused(path)


def test_deeply_nested_json_header_is_refused(tmp_path):
    """The old loader's json.loads died with a RecursionError traceback."""
    path = tmp_path / "deep.npz"
    text = '{"format": "cnn-vs-lstm-numpy/weights", "version": 1, "extra": ' \
           + "[" * 100_000 + "]" * 100_000 + "}"
    np.savez(path, __meta__=np.frombuffer(text.encode(), dtype=np.uint8))
    assert "nests deeper" in refused(path)


@pytest.mark.parametrize("layers, state", [
    ([{"type": "Flatten"}], {}),
    ([{"type": "Flatten"}, {"type": "Dense", "in_features": 784, "out_features": 10}],
     {"1.weight": np.zeros((10, 784), np.float32), "1.bias": np.zeros(10, np.float32)}),
], ids=["no-parameters", "other-network"])
def test_header_whose_layers_are_not_the_model_is_refused(tmp_path, layers, state):
    """Layers consistent with the arrays but not what cnn.py builds: the old loader accepted
    them (a 'CNN' of one Flatten) and failed later, or silently ran another network."""
    meta, _ = read_npz(saved(tmp_path, "cnn"))
    meta["layers"] = layers
    path = tmp_path / "other.npz"
    write_npz(path, meta, state)
    message = refused(path)
    assert "not what the CNN model builds" in message and "layer 0" in message


@pytest.mark.parametrize("stored, label", [("lstm", "cnn"), ("cnn", "lstm"), ("lstm", "gru")])
def test_relabelled_header_is_refused(tmp_path, stored, label):
    """Another model's file relabelled (checksum recomputed): its layers are not what the named
    model's file builds.  The old loader accepted it, even with expect=label."""
    path = saved(tmp_path, stored)
    meta, state = read_npz(path)
    meta["model"] = label
    meta["options"] = {}
    write_npz(path, meta, state)
    assert "not what the" in refused(path, expect=label)


def test_options_that_do_not_build_the_layers_are_refused(tmp_path):
    path = saved(tmp_path, "lstm")
    meta, state = read_npz(path)
    meta["options"] = {"hidden": 32}
    write_npz(path, meta, state)
    assert "{'hidden': 32}" in refused(path)
    meta["options"] = {"hidden": 64, "layers": 3}
    write_npz(path, meta, state)
    assert "no option layers" in refused(path)


def test_loaded_weights_are_owned_writable_arrays(tmp_path):
    """The placeholders of the shapes-only build are all replaced by real, writable arrays."""
    path = saved(tmp_path, "lstm")
    model = load_model(path)
    for key, value in model.network.state().items():
        assert value.flags.writeable and value.flags.c_contiguous and value.base is None, key
    fresh = build_model("lstm", np.random.default_rng(0))
    for key, value in fresh.network.state().items():
        np.testing.assert_array_equal(model.network.state()[key], value)


def test_shapes_only_build_allocates_nothing():
    from nn.init import is_placeholder, shapes_only
    from models.cnn import build_cnn
    tracemalloc.start()
    try:
        with shapes_only():
            network = build_cnn(np.random.default_rng(0), channels=(4096, 4096, 4096), dense=65536)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    assert network.state()["4.weight"].shape == (4096, 4096, 3, 3)
    assert all(is_placeholder(value) for value in network.state().values())


def test_one_line_error_is_a_user_error(tmp_path):
    path = tmp_path / "deep.npz"
    np.savez(path, __meta__=np.frombuffer(b"[" * 50, dtype=np.uint8))
    with pytest.raises(UserError):
        load_model(path)
