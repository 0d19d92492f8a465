"""Safetensors: our writer and reader (nn/safetensors.py) against the format's own package, and
PyTorch running our exported CNN and LSTM in twins built here, with the same logits.

The ``safetensors`` package and torch are the test extra; under CI a missing one fails
(tests/conftest.py).
"""
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from models import build_model, load_model
from models.base import HEADER_KEY
from nn.errors import UserError, WeightsError
from nn.safetensors import SafetensorsFile, load_file, save_file

LOGIT_TOL = 1e-5


def arrays():
    rng = np.random.default_rng(0)
    return {"weights": rng.standard_normal((3, 4)).astype(np.float32),
            "double": rng.standard_normal(5),
            "half": rng.standard_normal((2, 2)).astype(np.float16),
            "counts": np.arange(6, dtype=np.int64).reshape(2, 3),
            "small": np.array([-3, 7], np.int8),
            "bytes": np.array([0, 255], np.uint8),
            "mask": np.array([True, False, True]),
            "scalar": np.array(2.5, np.float32),
            "empty": np.zeros((0, 3), np.float32),
            "big_endian": np.arange(4, dtype=">f4"),
            "fortran": np.asfortranarray(rng.standard_normal((3, 2)).astype(np.float32))}


def same(left, right):
    assert left.keys() == right.keys()
    for name in left:
        a, b = np.asarray(left[name]), np.asarray(right[name])
        assert a.shape == b.shape and a.dtype.newbyteorder("=") == b.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(a, b, err_msg=name)


# ----------------------------------------------------------------------------- the format

def test_round_trip_of_every_dtype(tmp_path):
    path = tmp_path / "all.safetensors"
    save_file(arrays(), path, {"note": "hello", "n": "3"})
    tensors, metadata = load_file(path)
    same(tensors, arrays())
    assert metadata == {"note": "hello", "n": "3"}
    assert tensors["big_endian"].dtype == np.float32 and tensors["weights"].flags.writeable
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert (8 + length) % 8 == 0                          # data aligned, header padded with spaces


def test_our_file_reads_in_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors")
    from safetensors.numpy import load_file as their_load
    path = tmp_path / "ours.safetensors"
    save_file(arrays(), path, {"model": "x"})
    same(their_load(str(path)), arrays())
    with st.safe_open(str(path), framework="numpy") as handle:
        assert handle.metadata() == {"model": "x"}


def test_we_read_a_file_the_safetensors_package_wrote(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file as their_save
    path = tmp_path / "theirs.safetensors"
    theirs = {k: np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<"))
              for k, v in arrays().items() if v.ndim > 0}
    their_save(theirs, str(path), metadata={"from": "safetensors"})
    tensors, metadata = load_file(path)
    same(tensors, theirs)
    assert metadata == {"from": "safetensors"}


def _raw(tmp_path, header, data=b"", length=None):
    text = json.dumps(header).encode()
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize("header, data, length, expected", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None, "cover"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "holes"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "does not fit"),
    ({"a": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0" * 2, None, "BF16"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None, "shape"),
    ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None, "data_offsets"),
    ({"__metadata__": {"a": 1}}, b"", None, "strings"),
    ({}, b"", 10 ** 12, "header size"),
    ([1, 2], b"", None, "JSON object"),
], ids=["short", "overlap", "hole", "shape-size", "bf16", "negative", "no-offsets",
        "metadata-not-str", "huge-header", "not-object"])
def test_malformed_files_give_one_line(tmp_path, header, data, length, expected):
    path = _raw(tmp_path, header, data, length)
    with pytest.raises(WeightsError) as info:
        load_file(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_deep_json_and_size_limit(tmp_path):
    path = tmp_path / "deep.safetensors"
    text = ("{" + '"a":' * 0 + '"x":' + "[" * 10_000 + "]" * 10_000 + "}").encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(WeightsError, match="nests deeper"):
        load_file(path)
    save_file({"a": np.zeros(1000, np.float32)}, path)
    with pytest.raises(WeightsError, match="limit"):
        SafetensorsFile(path, max_bytes=1000)


# ----------------------------------------------------------------------------- our models

@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_export_and_load_back(tmp_path, name):
    model = load_model(name)
    path = tmp_path / f"{name}.safetensors"
    model.to_safetensors(path)
    _, metadata = load_file(path)
    header = json.loads(metadata[HEADER_KEY])
    assert metadata["model"] == name and header["layers"] == model.network.config()["layers"]
    images = np.random.default_rng(1).uniform(0, 1, (8, 28, 28)).astype(np.float32)
    back = load_model(path, expect=name)
    np.testing.assert_array_equal(back.logits(images), model.logits(images))


def test_exported_file_gets_every_check_of_an_npz(tmp_path):
    path = tmp_path / "lstm.safetensors"
    build_model("lstm", np.random.default_rng(0)).to_safetensors(path)
    tensors, metadata = load_file(path)
    tensors["2.bias"] = tensors["2.bias"] + np.float32(1)                   # tampered
    save_file(tensors, path, metadata)
    with pytest.raises(WeightsError, match="checksum"):
        load_model(path)
    header = json.loads(metadata[HEADER_KEY])
    header["model"] = "gru"                                                 # relabelled
    from nn.serialize import state_checksum
    header["checksum"] = state_checksum(tensors, header)
    save_file(tensors, path, {**metadata, HEADER_KEY: json.dumps(header)})
    with pytest.raises(WeightsError, match="not what the GRU model builds"):
        load_model(path)
    save_file(tensors, path, {"format": "something"})                      # no header
    with pytest.raises(UserError, match=HEADER_KEY):
        load_model(path)


def test_export_command(tmp_path, repo_root):
    out = tmp_path / "cnn.safetensors"
    command = [sys.executable, "-m", "models.commands.export", "--model", "cnn", "--out", str(out)]
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "356,234 parameters" in result.stdout and load_model(out).name == "cnn"
    again = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and again.stderr.strip() == f"error: {out} exists; pass --force to replace it"


# ----------------------------------------------------------------------------- PyTorch twins

def torch_cnn(torch):
    """The reference CNN in PyTorch, layer for layer: an nn.Sequential's names are ours."""
    nn = torch.nn
    layers, in_channels = [], 1
    for out_channels, rate in [(32, 0.25), (64, 0.25), (128, 0.4)]:
        # 'same' 3x3 stride 1 pads one on each side; 'same' 2x2 pooling of 7x7 is ceil mode
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.1),
                   nn.MaxPool2d(2, ceil_mode=True), nn.Dropout(rate)]
        in_channels = out_channels
    layers += [nn.Flatten(), nn.Linear(2048, 128), nn.LeakyReLU(0.1), nn.Dropout(0.3),
               nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def torch_lstm(torch, hidden=64):
    nn = torch.nn

    class LSTMClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(28, hidden, batch_first=True)
            self.bn = nn.BatchNorm1d(hidden)
            self.fc = nn.Linear(hidden, 10)

        def forward(self, rows):                      # (N, T=28, D=28)
            out, _ = self.lstm(rows)
            return self.fc(self.bn(out[:, -1]))

    return LSTMClassifier()


# Our names -> PyTorch's.  The CNN needs none (same nn.Sequential indices); the LSTM's one bias
# is torch's b_ih, with b_hh = 0 (they only ever appear as a sum).
LSTM_NAMES = {"0.w_ih": "lstm.weight_ih_l0", "0.w_hh": "lstm.weight_hh_l0", "0.b": "lstm.bias_ih_l0",
              "1.gamma": "bn.weight", "1.beta": "bn.bias", "1.running_mean": "bn.running_mean",
              "1.running_var": "bn.running_var", "2.weight": "fc.weight", "2.bias": "fc.bias"}


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_pytorch_loads_our_export_and_agrees(tmp_path, name):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from safetensors.torch import load_file as torch_load
    model = load_model(name)                              # the shipped, trained weights
    path = tmp_path / f"{name}.safetensors"
    model.to_safetensors(path)
    tensors = torch_load(str(path))
    with safe_open(str(path), framework="pt") as handle:
        architecture = json.loads(handle.metadata()[HEADER_KEY])["layers"]
    if name == "cnn":
        twin = torch_cnn(torch)
        assert [layer["type"] for layer in architecture][:4] == ["Conv2D", "LeakyReLU", "MaxPool2D", "Dropout"]
    else:
        twin = torch_lstm(torch)
        tensors = {LSTM_NAMES[key]: value for key, value in tensors.items()}
        tensors["lstm.bias_hh_l0"] = torch.zeros_like(tensors["lstm.bias_ih_l0"])
        tensors["bn.num_batches_tracked"] = torch.tensor(0)
    twin.load_state_dict(tensors, strict=True)
    twin.eval()
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 1, (16, 28, 28)).astype(np.float32)
    images[:8] *= rng.random((8, 28, 28)) < 0.2            # sparse, digit-like strokes too
    with torch.no_grad():
        theirs = twin(torch.from_numpy(np.ascontiguousarray(model.to_network_input(images)))).numpy()
    ours = model.logits(images)
    error = np.abs(ours - theirs).max() / np.abs(theirs).max()
    assert error < LOGIT_TOL, f"{name}: logits differ by {error:.2e} of their largest"
    assert (ours.argmax(1) == theirs.argmax(1)).all()
