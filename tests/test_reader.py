"""The number reader: the composer of training and test numbers (kit.images.compose), the reader
model (models/reader.py) and its CTC training step, the public read_number_image."""
import hashlib

import numpy as np
import pytest

from kit.images.compose import (APART, STRIDE, TOUCHING, compose_numbers, frames_needed,
                                mnist_pool, straight_one)
from models import registry
from models.base import ImageError, build_model, load_model
from models.reader import FrameScores, Columns, NumberLoss, digits_of, frames_of
from models.reading import read_number_image, read_strips, to_strip
from nn.ctc import greedy_decode
from nn.errors import UserError, WeightsError
from nn.losses import SoftmaxCrossEntropy
from nn.optim import Adam
from nn.step import TrainingStep
from tests.gradcheck import check_gradients


# ----------------------------------------------------------------------------- the composer

def block_pool():
    """Ten 'digits' that say what they are: digit k is a solid block 20 rows by 2 + 2k columns,
    so after resizing to any height its width still grows with k."""
    images = np.zeros((10, 28, 28), np.float32)
    for k in range(10):
        images[k, 4:24, 2:4 + 2 * k] = 1.0
    return images, np.arange(10, dtype=np.int64)


def ink_runs(strip):
    """[(start, end)] of the column runs holding ink, left to right."""
    ink = np.concatenate([[False], strip.max(axis=0) > 0.5, [False]])
    edges = np.flatnonzero(ink[1:] != ink[:-1])
    return list(zip(edges[::2], edges[1::2]))


def test_composed_digits_apart_are_the_labels_in_order():
    images, labels = block_pool()
    batch = compose_numbers(images, labels, np.random.default_rng(3), 40, gap=APART,
                            straight_ones=0.0, size_jitter=0.0)
    for n, text in enumerate(batch.texts):
        length = batch.target_lengths[n]
        assert text == "".join(str(d) for d in batch.targets[n, :length])
        assert (batch.targets[n, length:] == -1).all()
        assert (labels[batch.sources[n, :length]] == batch.targets[n, :length]).all()
        runs = ink_runs(batch.images[n])
        assert len(runs) == length, text                     # one block per digit, apart
        # With one height per number, a block's width orders it like its digit.
        widths = [end - start for start, end in runs]
        order = np.argsort(batch.targets[n, :length], kind="stable")
        assert all(widths[a] <= widths[b] for a, b in zip(order, order[1:])), (text, widths)


def test_composed_touching_digits_touch():
    images, labels = block_pool()
    batch = compose_numbers(images, labels, np.random.default_rng(4), 30, digits=(2, 6),
                            gap=TOUCHING, straight_ones=0.0)
    for n in range(30):
        assert len(ink_runs(batch.images[n])) == 1, batch.texts[n]


def test_composed_shapes_widths_and_padding():
    images, labels = block_pool()
    batch = compose_numbers(images, labels, np.random.default_rng(5), 25)
    n, height, width = batch.images.shape
    assert (n, height) == (25, 28) and batch.images.dtype == np.float32
    assert width % STRIDE == 0 and width == -(-batch.widths.max() // STRIDE) * STRIDE
    assert 0.0 <= batch.images.min() and batch.images.max() <= 1.0
    assert set(batch.target_lengths) <= set(range(1, 7)) and len(set(batch.target_lengths)) > 3
    for k in range(n):
        assert (batch.images[k, :, batch.widths[k]:] == 0).all()     # padding is black
        digits = batch.targets[k, :batch.target_lengths[k]]
        assert batch.widths[k] >= STRIDE * (frames_needed(digits) + 1)


def test_composer_is_deterministic_from_its_seed():
    images, labels = block_pool()
    first = compose_numbers(images, labels, np.random.default_rng(7), 10)
    again = compose_numbers(images, labels, np.random.default_rng(7), 10)
    other = compose_numbers(images, labels, np.random.default_rng(8), 10)
    assert np.array_equal(first.images, again.images) and first.texts == again.texts
    assert first.texts != other.texts


def test_straight_one_is_a_bar_of_the_height_asked():
    bar = straight_one(20, np.random.default_rng(0))
    assert bar.shape[0] == 20 and bar.max() == 1.0
    assert all(len(ink_runs(row[None])) == 1 for row in bar)          # one stroke per row


def test_composer_refuses_a_bad_pool():
    with pytest.raises(ValueError, match="28, 28"):
        compose_numbers(np.zeros((3, 20, 20), np.float32), np.zeros(3, np.int64),
                        np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="split"):
        mnist_pool(".", "validation")


def test_training_and_test_numbers_use_disjoint_digit_sources(mnist_dir):
    from models.training.reader import test_sets
    train_images, train_labels = mnist_pool(mnist_dir, "train")
    test_images, _ = mnist_pool(mnist_dir, "test")
    tests = test_sets(mnist_dir, 20)
    training = compose_numbers(train_images, train_labels, np.random.default_rng(0), 20)
    train_hashes = {hashlib.sha1(image.tobytes()).digest() for image in train_images}
    used = [s for numbers in tests.values() for s in numbers.sources.ravel() if s >= 0]
    assert len(used) > 60
    # The test numbers' digits are test images, and not one of them is a training image.
    assert not any(hashlib.sha1(test_images[s].tobytes()).digest() in train_hashes for s in used)
    assert all(2 <= length <= 6 for numbers in tests.values() for length in numbers.target_lengths)
    assert training.sources.max() < len(train_images)


# ----------------------------------------------------------------------------- the model

def test_reader_is_a_sequence_model_the_digit_commands_do_not_list():
    assert "reader" not in registry.names()
    assert registry.names(kind="sequence") == ["reader"]
    assert registry.get("reader").kind == "sequence" and registry.get("cnn").kind == "digit"
    assert "reader" in registry.names(kind=None)


def test_reader_forward_backward_shapes():
    model = build_model("reader", rng=np.random.default_rng(0), num_classes=11,
                        image_shape=(28, 4), channels=[4, 8], hidden=8)
    x = np.random.default_rng(1).random((3, 1, 28, 40), dtype=np.float32)
    logits = model.network.forward(x, training=True)
    assert logits.shape == (3, 10, 11) and logits.dtype == np.float32
    assert model.network.backward(np.ones_like(logits)) is None    # the image needs no gradient
    for key, layer, name in model.network.parameters():
        assert layer.grads[name].shape == layer.params[name].shape, key
        assert np.isfinite(layer.grads[name]).all()
    assert list(frames_of([40, 37, 4])) == [10, 10, 1]


def test_columns_and_frame_scores_gradients_float64():
    rng = np.random.default_rng(2)
    columns = Columns()
    x = rng.standard_normal((2, 3, 4, 5))
    y = columns.forward(x)
    assert y.shape == (2, 5, 12) and y[1, 4, 2 * 4 + 3] == x[1, 2, 3, 4]
    dy = rng.standard_normal(y.shape)
    check_gradients(lambda a: columns.forward(a), [x], [columns.backward(dy)], dy)
    scores = FrameScores(6, 4, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 6))
    dy = rng.standard_normal((2, 3, 4))
    scores.forward(x)
    dx = scores.backward(dy)
    check_gradients(lambda a, w, b: scores.forward(a), [x, scores.params["weight"],
                                                        scores.params["bias"]],
                    [dx, scores.grads["weight"], scores.grads["bias"]], dy)


def test_training_step_counts_numbers_read_with_a_sequence_loss():
    logits = np.full((2, 4, 11), -5.0, np.float32)
    for t, k in enumerate([3, 0, 3, 0]):            # reads "22"
        logits[0, t, k] = 5.0
    for t, k in enumerate([1, 1, 2, 0]):            # reads "01"
        logits[1, t, k] = 5.0
    labels = (np.array([[2, 2], [0, 0]]), np.array([16, 16]), np.array([2, 2]))
    assert NumberLoss().count_correct(logits, labels) == 1
    assert not hasattr(SoftmaxCrossEntropy(), "count_correct")  # classification keeps argmax


def tiny_trained_reader(mnist_dir, tmp_path, steps=300):
    """A small reader trained for ``steps`` on three numbers, as their canvases give them."""
    images, labels = mnist_pool(mnist_dir, "train")
    pool = slice(0, 200)
    numbers = [compose_numbers(images[pool], labels[pool], np.random.default_rng(seed), 1,
                               digits=(2, 4), gap=gap) for seed, gap in
               ((10, APART), (11, TOUCHING), (12, APART))]
    canvases, texts = [], []
    for number in numbers:
        strip = number.images[0, :, :number.widths[0]]
        canvas = np.kron(strip, np.ones((6, 6), np.float32))        # drawn 6 times larger
        canvases.append(np.pad((canvas * 255).round().astype(np.uint8), 40))
        texts.append(number.texts[0])
    strips = [to_strip(canvas) for canvas in canvases]
    widest = max(s.shape[1] for s in strips)
    x = np.zeros((3, 28, widest), np.float32)
    for k, s in enumerate(strips):
        x[k, :, :s.shape[1]] = s
    widths = np.array([s.shape[1] for s in strips])
    targets = np.full((3, 6), -1, np.int64)
    for k, text in enumerate(texts):
        targets[k, :len(text)] = [int(c) for c in text]
    lengths = np.array([len(t) for t in texts])
    model = build_model("reader", rng=np.random.default_rng(0), num_classes=11,
                        image_shape=(28, 4), channels=[8, 16], hidden=24)
    step = TrainingStep(model.network, Adam(model.network.parameters(), lr=1e-2), NumberLoss())
    # One number per step, unpadded, as read_number_image reads it (the backward LSTM would
    # otherwise learn to start in a fixed amount of padding).
    results = [step(x[k:k + 1, None, :, :widths[k]],
                    (targets[k:k + 1], widths[k:k + 1], lengths[k:k + 1]))
               for k in np.arange(steps) % 3]
    losses = [result.loss for result in results]
    # TrainingStep counts with the criterion's count_correct: each number read right by the end.
    assert [result.correct for result in results[:3]] == [0, 0, 0]
    assert [result.correct for result in results[-3:]] == [1, 1, 1]
    path = tmp_path / "tiny-reader.npz"
    model.save(path)
    return model, path, canvases, texts, losses, (x, widths)


@pytest.mark.slow
def test_reader_overfits_three_numbers_and_read_number_image_reads_them(mnist_dir, tmp_path):
    model, path, canvases, texts, losses, (x, widths) = tiny_trained_reader(mnist_dir, tmp_path)
    assert sum(losses[-3:]) < 0.1 * sum(losses[:3]), (losses[:3], losses[-3:])
    read, _ = greedy_decode(model.network.infer(x[:, None]), frames_of(widths))
    assert [digits_of(r) for r in read] == texts
    numbers, probabilities = read_strips(model.network, x, widths)
    assert numbers == texts and (probabilities > 0.5).all() and (probabilities <= 1).all()
    assert load_model(path).spec.kind == "sequence"
    for canvas, text in zip(canvases, texts):
        number, probability = read_number_image(canvas, reader=str(path))
        assert number == text and 0.5 < probability <= 1.0


# ----------------------------------------------------------------------------- read_number_image

@pytest.mark.parametrize("image, message", [
    ([[0, 255]], "uint8 array"),
    (np.zeros((10, 10), np.float32), "uint8 pixels"),
    (np.zeros((10, 10, 3), np.uint8), r"one grey image \(H, W\)"),
    (np.zeros((0, 10), np.uint8), "empty"),
    (np.zeros((10, 10), np.uint8), "no ink"),
])
def test_read_number_image_refuses_bad_input_in_one_line(image, message):
    with pytest.raises(ImageError, match=message) as caught:
        read_number_image(image, reader="no-such-file.npz")
    assert "\n" not in str(caught.value)


def test_read_number_image_refuses_a_digit_model_and_missing_weights(tmp_path):
    canvas = np.zeros((50, 50), np.uint8)
    canvas[10:40, 20:25] = 255
    digit_model = build_model("mlp", rng=np.random.default_rng(0))
    digit_model.save(tmp_path / "mlp.npz")
    with pytest.raises(UserError, match="reads one digit, not a number"):
        read_number_image(canvas, reader=str(tmp_path / "mlp.npz"))
    if not registry.get("reader").shipped:
        with pytest.raises(WeightsError, match="python -m models.training.reader"):
            read_number_image(canvas)


def test_to_strip_scales_the_ink_to_20_rows():
    canvas = np.zeros((300, 500), np.uint8)
    canvas[50:250, 100:140] = 255          # 200 rows of ink -> 20, 40 columns -> 4
    strip = to_strip(canvas)
    assert strip.shape == (28, 12)         # 4 + 4 + 4 margin, a multiple of 4
    assert np.allclose(strip[4:24, 4:8], 1.0) and strip[:4].max() == 0 and strip[24:].max() == 0


# ----------------------------------------------------------------------------- training

def test_the_digit_trainer_refuses_the_reader_and_names_its_command():
    from models.training.trainer import train
    spec = registry.get("reader")
    assert spec.train_command == "python -m models.training.reader --out runs/reader.npz"
    with pytest.raises(UserError, match="reads whole numbers.*models.training.reader"):
        train(spec, None, None)


@pytest.mark.slow
def test_reader_training_resumes_to_the_same_weights_and_never_overwrites(mnist_dir, tmp_path):
    from models.training.reader import ReaderConfig, evaluate_reader, train_reader
    import io
    config = ReaderConfig(epochs=2, numbers=24, batch_size=8, channels=(4, 8), hidden=8,
                          test_numbers=4)
    whole = train_reader(config, tmp_path / "a" / "r.npz", mnist_dir, stream=io.StringIO())
    first = train_reader(config, tmp_path / "b" / "r.npz", mnist_dir, stream=io.StringIO(),
                         until_epoch=1)
    assert len(whole) == 2 and len(first) == 1 and whole[0] == {**first[0], "seconds": whole[0]["seconds"]}
    with pytest.raises(UserError, match="a run is already there; add --resume"):
        train_reader(config, tmp_path / "b" / "r.npz", mnist_dir, stream=io.StringIO())
    other = ReaderConfig(**{**config.__dict__, "lr": 1e-3})
    with pytest.raises(UserError, match=r"another recipe \(lr\)"):
        train_reader(other, tmp_path / "b" / "r.npz", mnist_dir, resume=True, stream=io.StringIO())
    resumed = train_reader(config, tmp_path / "b" / "r.npz", mnist_dir, resume=True,
                           stream=io.StringIO())
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole]
    a, b = load_model(tmp_path / "a" / "r.npz"), load_model(tmp_path / "b" / "r.npz")
    for key, value in a.network.state().items():
        assert np.array_equal(value, b.network.state()[key]), key
    scores = evaluate_reader(tmp_path / "a" / "r.npz", mnist_dir, 4, stream=io.StringIO())
    assert scores == {"apart": whole[-1]["test_apart"], "touching": whole[-1]["test_touching"]}


def test_level_puts_groups_on_one_line_and_narrows_wide_gaps():
    from models.reading import level
    grey = np.zeros((200, 400), np.float32)
    grey[10:50, 20:30] = 1.0              # high up
    grey[140:180, 300:320] = 1.0          # low down, far to the right
    grey[150:160, 322:326] = 1.0          # touching nothing, but sharing no column: its own group
    levelled = level(grey)
    assert levelled.shape == (40, 10 + 20 + 20 + 2 + 4)
    assert (levelled[:, :10] == 1).all() and (levelled[:, 30:50] == 1).all()   # same rows now
    assert (levelled[:, 10:30] == 0).all()                                     # gap cut to 40 // 2
    assert (levelled[15:25, 52:56] == 1).all() and levelled[:15, 52:56].max() == 0


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "other shapes"])
def test_reader_resume_refuses_a_damaged_checkpoint_in_one_line(mnist_dir, tmp_path, damage):
    import io
    from models.training.reader import ReaderConfig, train_reader
    config = ReaderConfig(epochs=2, numbers=8, batch_size=8, channels=(4, 8), hidden=8,
                          test_numbers=2)
    out = tmp_path / "r.npz"
    train_reader(config, out, mnist_dir, stream=io.StringIO(), until_epoch=1)
    checkpoint = tmp_path / "r.checkpoint.npz"
    if damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    elif damage == "not a zip":
        checkpoint.write_text("hello")
    else:
        with np.load(checkpoint, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        arrays["model/0.weight"] = np.zeros((3, 1, 3, 3), np.float32)
        np.savez(checkpoint, **arrays)
    before = checkpoint.read_bytes()
    with pytest.raises(UserError) as caught:
        train_reader(config, out, mnist_dir, resume=True, stream=io.StringIO())
    assert str(checkpoint) in str(caught.value) and "\n" not in str(caught.value)
    assert checkpoint.read_bytes() == before


def test_reader_command_line_errors_are_one_line(tmp_path, capsys):
    from models.training.reader import main
    assert main(["--out", str(tmp_path / "r.npz"), "--data", str(tmp_path / "none")]) == 2
    assert main(["--evaluate", str(tmp_path / "none.npz"), "--data", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "does not exist" in errors[0] and "none.npz" in errors[1]
    assert not (tmp_path / "r.npz").exists() and not (tmp_path / "r.lock").exists()
    with pytest.raises(SystemExit) as caught:
        main(["--out", str(tmp_path / "r.npz"), "--evaluate", str(tmp_path / "r.npz")])
    assert caught.value.code == 2


def test_composed_sizes_and_baselines_vary_within_bounds():
    images, labels = block_pool()
    batch = compose_numbers(images, labels, np.random.default_rng(9), 60, digits=(1, 1),
                            gap=APART, straight_ones=0.0)
    heights, centres = [], []
    for strip in batch.images:
        rows = np.flatnonzero(strip.max(axis=1) > 0.5)
        heights.append(rows[-1] - rows[0] + 1)
        centres.append((rows[-1] + rows[0]) / 2)
    assert 13 <= min(heights) < 17 and 22 < max(heights) <= 26      # height_range 15-24, jitter 10 %
    assert max(centres) - min(centres) >= 3                           # the line wanders
    ones = compose_numbers(np.zeros((1, 28, 28), np.float32), np.ones(1, np.int64),
                           np.random.default_rng(1), 20, digits=(1, 1), straight_ones=1.0)
    assert (ones.sources[:, 0] == -1).all() and ones.texts == ["1"] * 20   # every 1 a drawn bar
    assert all(strip.max() == 1.0 for strip in ones.images)
