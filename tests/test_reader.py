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
    from models.training.reader_data import test_sets
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
        with pytest.raises(WeightsError, match="python -m models.train --model reader"):
            read_number_image(canvas)


def test_to_strip_scales_the_ink_to_20_rows():
    canvas = np.zeros((300, 500), np.uint8)
    canvas[50:250, 100:140] = 255          # 200 rows of ink -> 20, 40 columns -> 4
    strip = to_strip(canvas)
    assert strip.shape == (28, 12)         # 4 + 4 + 4 margin, a multiple of 4
    assert np.allclose(strip[4:24, 4:8], 1.0) and strip[:4].max() == 0 and strip[24:].max() == 0


# ----------------------------------------------------------------------------- training

def reader_command(*args):
    """``python -m models.training.reader ARGS`` in this process: (exit status, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout
    from models.training.reader import main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main([str(arg) for arg in args])
    return status, out.getvalue(), err.getvalue()


def trainer_command(*args, callbacks=None):
    """``python -m models.train ARGS`` in this process: (exit status, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout
    from models.commands.train import run
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = run([str(arg) for arg in args], callbacks=callbacks)
        except SystemExit as stop:
            status = stop.code
    return status, out.getvalue(), err.getvalue()


# A reader small enough to train in seconds: 24 numbers an epoch in batches of 8 (3 steps), 4
# validation and 4 test numbers per condition.
TINY = ["--numbers", 24, "--batch-size", 8, "--channels", "4,8", "--hidden", 8, "--test-numbers", 4,
        "--threads", 1, "--quiet"]


def reader_weights(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("state/")}


def assert_same_weights(a, b):
    first, second = reader_weights(a), reader_weights(b)
    assert first.keys() == second.keys() and first
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def history_without_timing(path):
    import json
    history = json.loads(path.read_text())
    for record in history["epochs"]:
        del record["seconds"], record["numbers_per_second"]
    return history


def test_the_one_trainer_trains_the_reader_and_the_registry_names_its_command():
    from models.commands.train import make_parser
    spec = registry.get("reader")
    assert spec.train_command == "python -m models.train --model reader"
    reader_flags = make_parser(spec).parse_args(["--model", "reader", "--channels", "16,24"])
    assert (reader_flags.numbers, reader_flags.test_numbers) == (16000, 300)     # the reader's recipe
    assert reader_flags.channels == [16, 24] and reader_flags.hidden == 96
    with pytest.raises(SystemExit):                  # a per-digit model has no composed numbers
        make_parser(registry.get("cnn")).parse_args(["--model", "cnn", "--numbers", "5"])


@pytest.mark.slow
def test_reader_resume_through_the_trainer_is_bit_identical_wherever_it_stops(mnist_dir, tmp_path):
    """The reader trained by models/training/trainer.py: a run stopped anywhere (mid-epoch, at an
    epoch's start, in validation, at the checkpoint, before the test pass) and resumed ends with
    the weights and history of a run that never stopped.  (Not bit-identical to the reader's
    former loop by design: the trainer draws the initial weights from (seed, 1), decays the
    learning rate to its floor at the last step and holds out validation digits.)"""
    from tests.support.interruptions import interruption
    common = ["--model", "reader", *TINY, "--epochs", 2, "--data", mnist_dir, "--seed", 5]
    straight = tmp_path / "straight" / "r.npz"
    status, _, err = trainer_command(*common, "--out", straight)
    assert status == 0, err
    for n, point in enumerate([dict(after=1), dict(after=3), dict(after=4), dict(at_phase="validation:1"),
                               dict(at_phase="epoch-start:2"), dict(at_phase="test")]):
        out = tmp_path / f"run{n}" / "r.npz"
        checkpoint = out.with_name("r.checkpoint.npz")
        status, _, err = trainer_command(*common, "--out", out, callbacks=interruption(**point))
        assert status == 130 and f"--resume {checkpoint}" in err, (point, err)
        status, _, err = trainer_command("--resume", checkpoint, "--threads", 1, "--quiet")
        assert status == 0, (point, err)
        assert_same_weights(straight, out)
        assert history_without_timing(out.with_name("r.history.json")) == history_without_timing(
            straight.with_name("r.history.json")), point
        assert not checkpoint.exists()


@pytest.mark.slow
def test_reader_command_resumes_to_the_same_weights_and_never_overwrites(mnist_dir, tmp_path):
    """``python -m models.training.reader`` keeps its flags (--out, --resume, --until-epoch,
    --evaluate) on the trainer: a run in two parts equals one run, an existing run is never
    overwritten, a resumed run keeps its recipe, and --evaluate reads the test numbers the
    trainer's test pass read."""
    import json
    common = [*TINY, "--epochs", 2, "--data", mnist_dir]
    whole, parts = tmp_path / "a" / "r.npz", tmp_path / "b" / "r.npz"
    status, _, err = reader_command("--out", whole, *common)
    assert status == 0, err
    status, _, err = reader_command("--out", parts, *common, "--until-epoch", 1)
    assert status == 0 and "stopped after epoch 1 as --until-epoch asked" in err, err
    first = json.loads(parts.with_name("r.history.json").read_text())
    assert len(first["epochs"]) == 1 and "test" not in first
    status, _, err = reader_command("--out", parts, *common)
    assert status == 2 and "an unfinished run's checkpoint is there; resume it with" in err, err
    status, _, err = reader_command("--out", parts, *common, "--resume", "--lr", 1e-3)
    assert status == 2 and "--lr 0.001: the run being resumed trains with --lr 0.002" in err, err
    status, _, err = reader_command("--out", parts, *common, "--resume")
    assert status == 0, err
    assert_same_weights(whole, parts)
    assert history_without_timing(whole.with_name("r.history.json")) == history_without_timing(
        parts.with_name("r.history.json"))
    status, _, err = reader_command("--out", whole, *common)
    assert status == 2 and "already exists" in err and whole.exists(), err
    history = json.loads(whole.with_name("r.history.json").read_text())
    assert history["model"] == "reader" and history["config"]["numbers"] == 24
    assert set(history["epochs"][0]) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                          "val_apart", "val_touching", "numbers_per_second"}
    status, printed, err = reader_command("--evaluate", whole, "--test-numbers", 4, "--data", mnist_dir)
    assert status == 0, err
    test = history["test"]
    assert printed.splitlines()[0].startswith(f"apart: {100 * test['apart']:.1f} % of 4 test numbers")
    assert printed.splitlines()[1].startswith(f"touching: {100 * test['touching']:.1f} % of 4")
    # The test pass read the very numbers --evaluate reads (a tiny reader reads none right, so
    # its CTC loss on them is what shows it).
    from models.training.reader_data import measure, test_sets
    loss, accuracy, _ = measure(load_model(whole).network, test_sets(mnist_dir, 4))
    assert (loss, accuracy) == (test["loss"], test["accuracy"]) and loss > 0


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "other shapes"])
def test_reader_resume_refuses_a_damaged_checkpoint_in_one_line(mnist_dir, tmp_path, damage):
    out = tmp_path / "r.npz"
    common = [*TINY, "--epochs", 2, "--numbers", 8, "--test-numbers", 2, "--data", mnist_dir]
    status, _, err = reader_command("--out", out, *common, "--until-epoch", 1)
    assert status == 0, err
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
    status, _, err = reader_command("--out", out, *common, "--resume")
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and str(checkpoint) in lines[0], err
    assert "Traceback" not in err and checkpoint.read_bytes() == before


def test_reader_data_holds_out_validation_digits_and_draws_each_batch_from_its_seed(mnist_dir):
    import hashlib as hashes
    from models.training.config import TrainingConfig
    from models.training.reader_data import NumberData
    from models.training.trainer import RunPlace
    config = TrainingConfig(model="reader", options={}, epochs=1, batch_size=8, lr=1e-3, optimizer="adam",
                            momentum=0.9, schedule="cosine", final_lr_factor=0.01, augment=False, seed=4,
                            val_fraction=0.25, num_classes=None, limit=400, numbers=20, test_numbers=5)
    data = NumberData(config, RunPlace(out=None, data=str(mnist_dir)))
    assert len(data.pool[0]) == 300 and data.held_out == 100 and data.steps_per_epoch(8, False) == 3
    digest = lambda image: hashes.sha1(image.tobytes()).digest()   # noqa: E731
    training = {digest(image) for image in data.pool[0]}
    validation = [numbers for numbers in data.validation.values()]
    assert [len(numbers.texts) for numbers in validation] == [5, 5]
    # Validation numbers are made of held-out training digits only: none is a training digit.
    train_images, _ = mnist_pool(mnist_dir, "train")
    held = [i for i in range(400) if digest(train_images[i]) not in training]
    assert len(held) == 100
    x, (targets, widths, lengths), count = data.batch(None, 0, 2, True, None)
    assert count == 4 and x.shape[:3] == (4, 1, 28) and len(targets) == len(widths) == len(lengths) == 4
    again, _, _ = data.batch(None, 0, 2, True, None)
    other, _, _ = data.batch(None, 1, 2, True, None)
    assert np.array_equal(x, again) and (x.shape != other.shape or not np.array_equal(x, other))


def test_a_per_digit_recipe_saves_as_before_and_the_reader_s_keeps_its_numbers():
    from models.training.config import TrainingConfig
    fields = dict(epochs=1, batch_size=8, lr=1e-3, optimizer="adam", momentum=0.9, schedule="cosine",
                  final_lr_factor=0.01, augment=False, seed=0, val_fraction=0.2, num_classes=None, limit=None)
    digit = TrainingConfig(model="cnn", options={}, **fields)
    assert "numbers" not in digit.to_json() and "test_numbers" not in digit.to_json()
    reader = TrainingConfig(model="reader", options={"channels": [4, 8], "hidden": 8}, numbers=24,
                            test_numbers=4, **fields)
    assert TrainingConfig.from_json(reader.to_json(), "here") == reader
    with pytest.raises(UserError, match="'numbers' is 0"):
        TrainingConfig.from_json({**reader.to_json(), "numbers": 0}, "here")


@pytest.mark.slow
def test_the_shipped_reader_reads_the_test_numbers_its_history_recorded(mnist_dir):
    """weights/reader.npz, measured by the trainer's measure (evaluate_numbers), reads exactly the
    share of the 300 + 300 test numbers its own training loop recorded after its last epoch, and
    the numbers read_strips (read_number_image's reader) reads right."""
    import json
    from models.training.reader_data import evaluate_numbers, test_sets
    model = load_model("reader")
    last = json.loads((registry.REPOSITORY_WEIGHTS / "reader.history.json").read_text())["epochs"][-1]
    for name, numbers in test_sets(mnist_dir, 300).items():
        loss, read = evaluate_numbers(model.network, numbers)
        assert read == last[f"test_{name}"] and 0 < loss < 1, (name, read, loss)
        right = 0                     # as the former loop counted: read_strips, 100 at a time
        for start in range(0, 300, 100):
            chunk = slice(start, start + 100)
            widest = -(-int(numbers.widths[chunk].max()) // STRIDE) * STRIDE
            texts, _ = read_strips(model.network, numbers.images[chunk, :, :widest], numbers.widths[chunk])
            right += sum(a == b for a, b in zip(texts, numbers.texts[chunk]))
        assert read == right / 300


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
    capsys.readouterr()
    with pytest.raises(SystemExit) as caught:
        main(["--out", str(tmp_path / "r.npz"), "--numbers", "0"])
    assert caught.value.code == 2 and "--numbers: must be a positive integer" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "r.npz"), "--keep", "worst"]) == 2     # a trainer flag, checked there
    assert "--keep: invalid choice: 'worst'" in capsys.readouterr().err


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
