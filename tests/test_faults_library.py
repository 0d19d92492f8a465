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
    assert "shape" in refused(path, seconds=1.0)


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
    """The placeholders of the shapes-only build are all replaced by real, writable arrays, laid
    out in memory as a freshly built network's (a Dense weight column-major)."""
    path = saved(tmp_path, "lstm")
    model = load_model(path)
    fresh = build_model("lstm", np.random.default_rng(0))
    for key, value in fresh.network.state().items():
        loaded = model.network.state()[key]
        assert loaded.flags.writeable and loaded.base is None, key
        assert (loaded.flags.c_contiguous, loaded.flags.f_contiguous) == (
            value.flags.c_contiguous, value.flags.f_contiguous), key
        np.testing.assert_array_equal(loaded, value)
    assert model.network.state()["2.weight"].flags.f_contiguous          # the Dense head's


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


# ----------------------------------------------------------------------------- 11. contracts

# A kernel whose twin has another name: the fast float32 LSTM step approximates the exact one,
# the parallel Adam update and finiteness check are the serial ones split over threads.
TWIN_NAMES = {"lstm_step_forward_fast": "lstm_step_forward", "adam_update_parallel": "adam_update",
              "all_finite_blocks": "all_finite"}


def test_every_kernel_has_a_numpy_twin():
    """nn/kernels/__init__.py's promise; the fused kernels and affine_warp had none."""
    import importlib
    import pkgutil

    import numba

    import nn.kernels
    from nn.kernels import reference
    missing = []
    for module_info in pkgutil.iter_modules(nn.kernels.__path__):
        module = importlib.import_module(f"nn.kernels.{module_info.name}")
        for name, value in vars(module).items():
            if (isinstance(value, numba.core.registry.CPUDispatcher) and not name.startswith("_")
                    and value.py_func.__module__ == module.__name__):
                if not callable(getattr(reference, TWIN_NAMES.get(name, name), None)):
                    missing.append(f"{module.__name__}.{name}")
    assert missing == []


def _fused_case(rng, dtype, channels, n_batch, height, width, nan_fraction=0.0):
    y2d = rng.permutation(channels * n_batch * height * width).astype(dtype)   # tie-free
    y2d = (y2d / y2d.size - 0.5).reshape(channels, n_batch * height * width)
    if nan_fraction:
        y2d[rng.random(y2d.shape) < nan_fraction] = np.nan
    bias = rng.normal(0, 0.1, channels).astype(dtype)
    return y2d, bias, dtype(0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("height, width, pool, stride, padding", [
    (8, 8, 2, 2, "same"), (7, 7, 2, 2, "same"), (7, 9, 3, 2, "valid"), (6, 10, 3, 3, "same")])
def test_fused_kernels_match_their_numpy_twins(dtype, height, width, pool, stride, padding):
    from nn.kernels import fused, reference
    from nn.layers.pool import pool_geometry
    rng = np.random.default_rng([height, width, pool, stride])
    channels, n_batch = 3, 2
    y2d, bias, slope = _fused_case(rng, dtype, channels, n_batch, height, width)
    out_h, out_w, top, left = pool_geometry(height, width, pool, stride, padding)
    args = (y2d, bias, slope, n_batch, height, width, pool, stride, top, left, out_h, out_w)
    pooled, argmax = fused.bias_leaky_maxpool_forward(*args)
    pooled_ref, argmax_ref = reference.bias_leaky_maxpool_forward(*args)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_array_equal(pooled, pooled_ref)
    dpooled = rng.standard_normal(pooled.shape).astype(dtype)
    dy2d, dbias = fused.bias_leaky_maxpool_backward(dpooled, pooled, argmax, slope, height, width)
    dy2d_ref, dbias_ref = reference.bias_leaky_maxpool_backward(dpooled, pooled, argmax, slope,
                                                                height, width)
    np.testing.assert_array_equal(dy2d, dy2d_ref)
    np.testing.assert_allclose(dbias, dbias_ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    if height % 2 == 0 and width % 2 == 0 and pool == stride == 2:
        pooled2, argmax2 = fused.bias_leaky_maxpool2x2_forward(y2d, bias, slope, n_batch, height, width)
        reference2 = reference.bias_leaky_maxpool2x2_forward(y2d, bias, slope, n_batch, height, width)
        np.testing.assert_array_equal(argmax2, reference2[1])
        np.testing.assert_array_equal(pooled2, reference2[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_warp_matches_its_numpy_twin(dtype):
    from nn.kernels import affine, reference
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 1, (4, 28, 28)).astype(dtype)
    maps = np.zeros((4, 2, 3))
    for n, (angle, scale, shift_y, shift_x) in enumerate([(0, 1, 0, 0), (0.3, 1.1, 2.5, -1.25),
                                                          (-0.5, 0.8, -3.3, 4.1), (3.0, 1.7, 9, 9)]):
        c, s = np.cos(angle) * scale, np.sin(angle) * scale
        maps[n] = [[c, -s, shift_y], [s, c, shift_x]]
    out = affine.affine_warp(images, maps)
    expected = reference.affine_warp(images, maps)
    assert out.dtype == expected.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(out[0], images[0])          # the identity map
    assert (expected[3] == 0).mean() > 0.5                     # mostly outside: black


def test_lstm_backward_kernel_keeps_float32():
    """`(1 - t * t)` with an integer 1 made Numba compute the float32 loop in float64.  Numba's
    inferred types say so; the float32 kernel then also equals its float32 NumPy twin bit for
    bit (NumPy keeps float32 - int in float32)."""
    import numba

    from nn.kernels import lstm, reference
    h, g = np.ones(3, np.float32), np.ones(12, np.float32)     # (H,) and (4H,) vectors
    for helper, args in [(lstm._gate_row_backward, (h, h.copy(), g, h, h, g.copy())),
                         (lstm._gate_row_fast, (g.copy(), g, g, g, h, h.copy(), h.copy(),
                                               h.copy()))]:
        compiled = numba.njit(error_model="numpy")(helper.py_func)   # fresh: its type inference
        compiled(*args)
        typemap = compiled.overloads[compiled.signatures[0]].type_annotation.typemap
        # every variable and intermediate result ('$binop_sub...'); the literal 1.0 inside
        # np.float32(1.0) is a float64 '$const' and converts once, at compile time
        widened = sorted(name for name, kind in typemap.items()
                         if "float64" in str(kind) and not name.startswith("$const"))
        assert widened == [], f"{helper.__name__}: float64 intermediates {widened}"
    rng = np.random.default_rng(0)
    n, hidden = 5, 7
    gates = rng.uniform(0.01, 0.99, (n, 4 * hidden)).astype(np.float32)
    dh, dc, c_prev, tanh_c = (rng.uniform(-1, 1, (n, hidden)).astype(np.float32) for _ in range(4))
    ours, twin = np.empty_like(gates), np.empty_like(gates)
    dc_ours, dc_twin = dc.copy(), dc.copy()
    lstm.lstm_step_backward(dh, dc_ours, gates, c_prev, tanh_c, ours)
    reference.lstm_step_backward(dh, dc_twin, gates, c_prev, tanh_c, twin)
    np.testing.assert_array_equal(ours, twin)
    np.testing.assert_array_equal(dc_ours, dc_twin)


def _with_nans(rng, shape):
    """Tie-free values with NaN at random places, never first in every window."""
    x = rng.permutation(int(np.prod(shape))).astype(np.float32).reshape(shape)
    x[rng.random(shape) < 0.2] = np.nan
    x[..., 0::2, 0::2] = rng.uniform(-1, 1, x[..., 0::2, 0::2].shape)   # windows' first: numbers
    x[..., 0, 1], x[..., 1, 0] = np.inf, -np.inf      # inf - inf is NaN too: not a NaN window
    return x


@pytest.mark.parametrize("shape, padding", [((2, 3, 8, 8), "same"), ((2, 2, 7, 7), "same"),
                                            ((1, 2, 9, 8), "valid")])
def test_maxpool_propagates_nan_like_torch(shape, padding):
    """PyTorch's max-pool returns NaN for a window holding one (index: the last NaN); ours
    returned the largest number unless the NaN came first."""
    torch = pytest.importorskip("torch")
    from nn.layers import MaxPool2D
    x = _with_nans(np.random.default_rng(list(shape)), shape)
    layer = MaxPool2D(2, padding=padding)
    y = layer.forward(x)
    y_t, index_t = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 2, return_indices=True,
                                                  ceil_mode=padding == "same")
    assert np.isnan(y).any()
    np.testing.assert_array_equal(y, y_t.numpy())              # NaN where torch has NaN
    np.testing.assert_array_equal(layer.cache.argmax, index_t.numpy())


def test_fused_block_propagates_nan_like_the_layers():
    """conv1/conv2 run the 2x2 fused kernel, conv3 (7x7) the general one: both keep NaN."""
    from nn.kernels import fused, reference
    rng = np.random.default_rng(3)
    for height in (8, 7):
        y2d, bias, slope = _fused_case(rng, np.float32, 4, 2, height, height, nan_fraction=0.2)
        out = (height + 1) // 2
        if height % 2 == 0:
            pooled, argmax = fused.bias_leaky_maxpool2x2_forward(y2d, bias, slope, 2, height, height)
        else:
            pooled, argmax = fused.bias_leaky_maxpool_forward(y2d, bias, slope, 2, height, height,
                                                              2, 2, 0, 0, out, out)
        expected, expected_argmax = reference.bias_leaky_maxpool_forward(
            y2d, bias, slope, 2, height, height, 2, 2, 0, 0, out, out)
        assert np.isnan(expected).sum() > 5
        np.testing.assert_array_equal(pooled, expected)
        np.testing.assert_array_equal(argmax, expected_argmax)


def test_batchnorm_refuses_a_training_batch_of_one():
    """PyTorch: 'Expected more than 1 value per channel when training'.  Ours normalised the one
    sample to beta, whatever it was: an LSTM trained at --batch-size 1 learned nothing."""
    from nn.layers import BatchNorm
    layer = BatchNorm(4)
    with pytest.raises(ValueError, match="more than one sample") as info:
        layer.forward(np.ones((1, 4), np.float32), training=True)
    assert "\n" not in str(info.value)
    assert layer.forward(np.ones((1, 4), np.float32)).shape == (1, 4)   # inference: fine
    assert layer.forward(np.ones((2, 4), np.float32), training=True).shape == (2, 4)


def test_docs_check_catches_a_link_to_a_deleted_function(tmp_path):
    """tests/test_docs.py accepted a link whose name no longer exists in its file."""
    from test_docs import anchor_problems
    (tmp_path / "docs").mkdir()
    (tmp_path / "module.py").write_text("def alive():\n    pass\n")
    markdown = tmp_path / "docs" / "notes.md"
    markdown.write_text("[`alive`](../module.py#L1) and [`deleted`](../module.py#L1)\n")
    problems = anchor_problems(markdown)
    assert len(problems) == 1 and "deleted" in problems[0]


# ----------------------------------------------------------------------------- 6. predict

@pytest.fixture(scope="module")
def models_untrained():
    return {name: build_model(name, np.random.default_rng(1)) for name in ("cnn", "lstm")}


def _image_error(call):
    from models import ImageError
    with pytest.raises(ImageError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_predict_refuses_uint8_naming_the_fix(models_untrained, name):
    """uint8 0..255 was read as 255 times too bright (LSTM: 13 % on MNIST), silently."""
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    message = _image_error(lambda: models_untrained[name].predict(images))
    assert "uint8" in message and "/ 255" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_predict_refuses_nan_and_infinite_images(models_untrained, bad):
    images = np.random.default_rng(0).uniform(0, 1, (3, 28, 28)).astype(np.float32)
    images[1, 5, 5] = bad
    assert "NaN or infinite" in _image_error(lambda: models_untrained["lstm"].predict_proba(images))


def test_predict_reports_a_flat_batch_as_its_own_shape(models_untrained):
    """(N, 784) was reported as 'got (1, N, 784)'."""
    images = np.zeros((5, 784), np.float32)
    message = _image_error(lambda: models_untrained["cnn"].predict(images))
    assert "got (5, 784)" in message and "(1, 5, 784)" not in message


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_logits_refuse_a_batch_size_below_one(models_untrained, batch_size):
    """batch_size 0 made range() raise or return nothing: silent garbage or a traceback."""
    images = np.zeros((2, 28, 28), np.float32)
    with pytest.raises(ValueError, match="batch_size must be a positive integer") as info:
        models_untrained["cnn"].logits(images, batch_size=batch_size)
    assert "\n" not in str(info.value)


def test_predict_still_takes_one_image_and_float64(models_untrained):
    image = np.zeros((28, 28))
    assert models_untrained["cnn"].predict(image).shape == (1,)


# ----------------------------------------------------------------------------- 12. nn is a library

FORBIDDEN = ("models", "canvas", "kit", "argparse", "urllib")


def test_no_module_of_nn_imports_the_applications(repo_root):
    """Walk every nn/**/*.py with ast: imports flow one way, models -> nn, never back."""
    import ast
    offenders = []
    for path in sorted((repo_root / "nn").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.relative_to(repo_root)}:{node.lineno} imports {name}"
                          for name in names if name.split(".")[0] in FORBIDDEN]
    assert offenders == []


def _imported_by(repo_root, statement, site=True):
    """Modules ``statement`` imports in a fresh interpreter, from -X importtime's report, less
    those the interpreter's start-up imports anyway (``site=False``: -S, no site at all)."""
    import subprocess
    import sys
    flags = [] if site else ["-S"]
    reports = [subprocess.run([sys.executable, *flags, "-X", "importtime", "-c", code],
                              cwd=repo_root, capture_output=True, text=True, timeout=120)
               for code in (statement, "pass")]
    assert reports[0].returncode == 0, reports[0].stderr[-2000:]

    def names(report):
        return {line.split("|")[-1].strip() for line in report.stderr.splitlines()
                if line.startswith("import time:") and "imported package" not in line}
    return names(reports[0]) - names(reports[1])


def test_import_nn_is_light(repo_root):
    """`import nn` loads nothing of NumPy, Numba, the applications, argparse or urllib."""
    imported = _imported_by(repo_root, "import nn", site=False)
    assert "nn" in imported
    heavy = sorted(name for name in imported
                   if name.split(".")[0] in FORBIDDEN + ("numpy", "numba"))
    assert heavy == []


def test_importing_the_whole_library_loads_no_application(repo_root):
    imported = _imported_by(repo_root, "import nn.layers, nn.serialize, nn.safetensors, nn.warmup, "
                                       "nn.losses, nn.optim, nn.idx, nn.flops, nn.threads")
    assert {"nn.layers", "numpy", "numba"} <= imported
    # SciPy (BLAS for the kernels, nn.kernels.blas) loads argparse itself; what the library's own
    # modules import is checked by the source walk above.
    imported -= _imported_by(repo_root, "import numpy, numba, scipy.linalg.cython_blas")
    assert sorted(name for name in imported
                  if name.split(".")[0] in ("models", "canvas", "kit", "argparse")
                  or name.startswith("urllib.request") or name.startswith("http")) == []


def _layer_cases():
    from nn.layers import (GRU, LSTM, BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU,
                           MaxPool2D, ReLU, SimpleRNN)
    rng = np.random.default_rng(0)
    image, rows, flat = (rng.standard_normal(shape).astype(np.float32)
                         for shape in [(2, 2, 6, 6), (2, 5, 3), (3, 4)])
    return {"Conv2D": (Conv2D(2, 3, rng=rng), image), "MaxPool2D": (MaxPool2D(2), image),
            "Dense": (Dense(4, 2, rng=rng), flat), "Flatten": (Flatten(), image),
            "LeakyReLU": (LeakyReLU(0.1), flat), "ReLU": (ReLU(), flat),
            "Dropout": (Dropout(0.5, rng=rng), flat), "BatchNorm": (BatchNorm(4), flat),
            "LSTM": (LSTM(3, 4, rng=rng), rows), "SimpleRNN": (SimpleRNN(3, 4, rng=rng), rows),
            "GRU": (GRU(3, 4, rng=rng), rows)}


def test_every_layer_cache_is_named():
    """Positional 7- and 8-tuples unpacked by position became NamedTuples with shape comments."""
    from nn.layers import LAYER_TYPES, Conv2D, LeakyReLU, MaxPool2D
    from nn.layers.fused import ConvActivationPool
    cases = _layer_cases()
    assert set(cases) == set(LAYER_TYPES) - {"Sequential", "Bidirectional"}, "a new layer: add it"
    rng = np.random.default_rng(1)
    cases["ConvActivationPool"] = (ConvActivationPool(Conv2D(2, 3, rng=rng), LeakyReLU(0.1),
                                                      MaxPool2D(2)), cases["Conv2D"][1])
    for name, (layer, x) in cases.items():
        for training in (True, False):
            layer.forward(x, training=training)
            if name == "Dropout" and not training:
                assert layer.cache is None            # inference: the identity, nothing kept
                continue
            assert hasattr(layer.cache, "_fields") and isinstance(layer.cache, tuple), \
                f"{name}: cache is a {type(layer.cache).__name__}"


# ----------------------------------------------------------------------------- CI: no silent skips

PROBE_TESTS = '''
import pytest


def test_needs_mnist(mnist_dir):
    pass


def test_needs_torch():
    pytest.importorskip("torch")


def test_skips_for_another_reason():
    pytest.skip("not on this platform")
'''

PROBE_MODULE = '''
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the test extra) is not installed")


def test_uses_torch():
    pass
'''


def _run_probe(repo_root, tmp_path, source, ci):
    """Run ``source`` as a test file next to a copy of tests/conftest.py, with MNIST absent and
    torch hidden (a stand-in package that fails to import), CI set or not."""
    import os
    import shutil
    import subprocess
    import sys
    folder = tmp_path / ("ci" if ci else "local")
    hidden = folder / "hidden" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", "
                                        "name='torch')\n")
    shutil.copy(repo_root / "tests" / "conftest.py", folder / "conftest.py")
    (folder / "test_probe.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(MNIST_DIR=str(folder / "no-mnist-here"),
               PYTHONPATH=os.pathsep.join([str(folder / "hidden"), str(repo_root)]))
    if ci:
        env["CI"] = "1"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider",
                             "test_probe.py"], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_ci_fails_when_mnist_or_torch_is_missing(repo_root, tmp_path):
    code, output = _run_probe(repo_root, tmp_path, PROBE_TESTS, ci=False)
    assert code == 0 and "3 skipped" in output, output
    code, output = _run_probe(repo_root, tmp_path, PROBE_TESTS, ci=True)
    # the fixture's skip fails in set-up (an error), importorskip's in the test (a failure)
    assert code == 1 and "1 failed, 1 skipped, 1 error" in output, output
    assert "failure, not a skip: Skipped: MNIST data not found" in output
    assert "could not import 'torch'" in output


def test_ci_fails_when_a_whole_module_needs_torch(repo_root, tmp_path):
    code, output = _run_probe(repo_root, tmp_path, PROBE_MODULE, ci=False)
    assert code in (0, 5) and "1 skipped" in output, output     # 5: nothing left to run
    code, output = _run_probe(repo_root, tmp_path, PROBE_MODULE, ci=True)
    # a collection error: pytest stops there (status 2) instead of reporting a skip (status 5)
    assert code == 2 and "1 error" in output and "skipped" not in output, output
    assert "failure, not a skip: Skipped: PyTorch (the test extra) is not installed" in output


def test_math_functions_document_shapes_and_equations():
    """Every forward/backward pair and loss function says its shapes and its equation."""
    import importlib
    import inspect
    import pkgutil

    import nn.layers
    import nn.losses
    modules = [importlib.import_module(f"nn.layers.{info.name}")
               for info in pkgutil.iter_modules(nn.layers.__path__)] + [nn.losses]
    undocumented = []
    for module in modules:
        for name, function in vars(module).items():
            if (inspect.isfunction(function) and function.__module__ == module.__name__
                    and (name.endswith(("_forward", "_backward")) or module is nn.losses)):
                doc = inspect.getdoc(function) or ""
                if not ("(N" in doc or "(C" in doc or "(K" in doc or "H_out" in doc) or "=" not in doc:
                    undocumented.append(f"{module.__name__}.{name}")
    assert undocumented == []
