"""The training scripts end to end: determinism, Ctrl-C and --resume, divergence, bad input; the typed
config and state, and what the shipped histories hold (the recipe, no path, no test hook)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nn.idx import write_idx

REPO = Path(__file__).resolve().parent.parent


def run_script(script, *args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def default_sigint():
    """Run in the child before it starts (issue 20, item 20): SIGINT at its default, so the Ctrl-C
    test tests the trainer and not pytest's caller (nohup, ``&``: SIGINT ignored, and inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_script(*args):
    """``python ARGS`` started (not waited for), stdout and stderr piped, SIGINT at its default."""
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def weights_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("state/")}


def assert_same_weights(a, b):
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def run_interrupted(script, *args, after=None, at_phase=None):
    """``script`` (train_cnn.py, train_lstm.py) with an interruption installed through the
    trainer's callbacks (tests/support/interrupted_training.py; the scripts have no test flags)."""
    model = {"train_cnn.py": "cnn", "train_lstm.py": "lstm"}[script]
    hook = ["--after", after] if after is not None else ["--at-phase", at_phase]
    return run_script("tests/support/interrupted_training.py", *hook, "--fixed-model", model,
                      "--prog", script, "--", *args)


QUICK = ["--limit", 400, "--epochs", 2, "--batch-size", 32, "--threads", 1, "--quiet"]


@pytest.mark.parametrize("script, extra", [("train_lstm.py", ["--augment", "--schedule", "cosine"]),
                                           ("train_cnn.py", [])])
@pytest.mark.slow
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, mnist_dir, script, extra):
    common = [*QUICK, *extra, "--data", mnist_dir, "--seed", 5]
    straight = run_script(script, *common, "--out", tmp_path / "a" / "model.npz")
    assert straight.returncode == 0, straight.stderr

    interrupted = run_interrupted(script, *common, "--out", tmp_path / "b" / "model.npz",
                                  after=13)  # mid-epoch: 10 steps per epoch
    assert interrupted.returncode == 130, interrupted.stderr
    checkpoint = tmp_path / "b" / "model.checkpoint.npz"
    assert checkpoint.is_file()
    assert f"--resume {checkpoint}" in interrupted.stderr

    resumed = run_script(script, "--resume", checkpoint, "--threads", 1, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(tmp_path / "a" / "model.npz", tmp_path / "b" / "model.npz")
    assert not checkpoint.exists()  # a finished run leaves nothing to resume
    assert "test accuracy" in resumed.stdout


def test_same_seed_same_weights_and_history(tmp_path, mnist_dir):
    args = [*QUICK, "--data", mnist_dir, "--seed", 2, "--augment"]
    for name in ("a", "b"):
        result = run_script("train_lstm.py", *args, "--out", tmp_path / name / "lstm.npz")
        assert result.returncode == 0, result.stderr
    assert_same_weights(tmp_path / "a" / "lstm.npz", tmp_path / "b" / "lstm.npz")
    import json
    history = json.loads((tmp_path / "a" / "lstm.history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= history["epochs"][0].keys()
    # The test accuracy the run reports is the one its saved weights give on the test images.
    import models
    from kit.mnist import load_dataset
    images, labels, _ = load_dataset(mnist_dir, "test")
    predicted = models.load_model(tmp_path / "a" / "lstm.npz").predict(images[:400])
    assert history["test"]["images"] == 400
    assert history["test"]["accuracy"] == np.mean(predicted == labels[:400])
    assert history["test"]["epoch"] == history["best_epoch"]


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, mnist_dir):
    out = tmp_path / "lstm.npz"
    process = start_script(REPO / "train_lstm.py", "--data", mnist_dir, "--limit", 2000,
                           "--epochs", 200, "--threads", 1, "--quiet", "--out", out)
    try:
        for line in process.stderr:  # wait until the first epoch has finished
            if line.startswith("epoch 1/200:"):
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "checkpoint saved" in rest and "--resume" in rest
    assert (tmp_path / "lstm.checkpoint.npz").is_file()
    assert out.is_file()  # the best weights so far stay on disk
    import models
    models.load_model(out, expect="lstm")


def test_diverging_loss_stops_cleanly_and_leaves_existing_weights_alone(tmp_path, mnist_dir):
    out = tmp_path / "cnn.npz"
    out.write_bytes(b"previous weights")
    result = run_script("train_cnn.py", *QUICK, "--data", mnist_dir, "--lr", "1e30", "--out", out, "--force")
    assert result.returncode == 3
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the loss became nan") and "diverged" in last
    assert out.read_bytes() == b"previous weights"


@pytest.fixture
def broken_data(tmp_path, mnist_dir):
    """Make a data folder holding test files from the real set and a given training pair."""
    def make(images, labels, raw_images=None):
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            (folder / name).write_bytes((Path(mnist_dir) / name).read_bytes())
        if raw_images is not None:
            (folder / "train-images-idx3-ubyte").write_bytes(raw_images)
        else:
            write_idx(folder / "train-images-idx3-ubyte", images)
        write_idx(folder / "train-labels-idx1-ubyte", labels)
        return folder
    return make


def valid_pair(count=50):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, count, dtype=np.uint8))


@pytest.mark.parametrize("case, expected", [
    ("truncated", "train-images"),
    ("magic", "train-images"),
    ("counts", "train-labels"),
])
def test_bad_data_files_give_one_line_and_write_nothing(tmp_path, broken_data, case, expected):
    images, labels = valid_pair()
    if case == "truncated":
        folder = broken_data(images, labels)
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-100])
    elif case == "magic":
        folder = broken_data(images, labels)
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(b"\x01\x02" + path.read_bytes()[2:])
    else:
        folder = broken_data(images, labels[:-1])
    out = tmp_path / "out" / "cnn.npz"
    result = run_script("train_cnn.py", "--data", folder, "--out", out, "--epochs", 1)
    assert result.returncode == 2
    assert expected in error_line(result)
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_names_it_and_the_download_command(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_script("train_lstm.py", "--data", missing, "--out", tmp_path / "o" / "x.npz")
    assert result.returncode == 2
    line = error_line(result)
    assert str(missing) in line and "python -m kit.data download" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags", [["--epochs", "-3"], ["--batch-size", "0"], ["--lr", "nan"],
                                   ["--val-fraction", "1.5"], ["--optimizer", "rmsprop"], ["--bogus"]])
def test_bad_flags_give_one_line(flags, tmp_path):
    result = run_script("train_cnn.py", *flags, "--out", tmp_path / "o" / "x.npz")
    assert result.returncode == 2
    error_line(result)
    assert not (tmp_path / "o").exists()


def test_resume_refuses_a_checkpoint_of_the_other_model(tmp_path, mnist_dir):
    result = run_interrupted("train_lstm.py", *QUICK, "--data", mnist_dir, "--out", tmp_path / "lstm.npz",
                             after=3)
    assert result.returncode == 130
    other = run_script("train_cnn.py", "--resume", tmp_path / "lstm.checkpoint.npz")
    assert other.returncode == 2
    assert "LSTM" in error_line(other)


def test_help_explains_every_flag():
    result = run_script("train_lstm.py", "--help")
    assert result.returncode == 0
    for flag in ("--data", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--val-fraction",
                 "--limit", "--out", "--resume", "--threads", "--hidden", "--augment", "--schedule"):
        assert flag in result.stdout


# ------------------------------------------------------------------ typed config, no test hooks shipped
ENTRY_POINTS = [["train_cnn.py"], ["train_lstm.py"], ["-m", "models.train"], ["-m", "models.train", "--model", "gru"],
                ["-c", "import sys, canvas.main; sys.exit(canvas.main.main(['train', '--model', 'mlp']"
                       " + sys.argv[1:]))"]]


@pytest.mark.parametrize("command", ENTRY_POINTS)
def test_no_test_hook_is_a_flag_of_any_training_command(command):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--resume" in result.stdout and "--epochs" in result.stdout
    assert "interrupt" not in result.stdout.lower()
    refused = subprocess.run([sys.executable, *command, "--interrupt-after", "3"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "unrecognized arguments: --interrupt-after" in refused.stderr


def strings_and_keys(value):
    """Every string and every object key anywhere inside a JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from strings_and_keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings_and_keys(inner)
    elif isinstance(value, str):
        yield value


HOOKS_AND_PLACES = {"args", "out", "prog", "interrupt_after", "interrupt_at_phase", "resume", "force",
                    "threads", "quiet", "download", "model_file"}


def test_the_shipped_histories_hold_the_recipe_and_no_path_or_test_hook():
    import json

    from models.training.config import CONFIG_VERSION, TrainingConfig
    histories = sorted((REPO / "weights").glob("*.history.json"))
    assert {path.name.split(".")[0] for path in histories} == {"cnn", "lstm", "gru", "rnn", "mlp", "reader"}
    for path in histories:
        history = json.loads(path.read_text())
        words = list(strings_and_keys(history))
        assert not [w for w in words if w.startswith(("/", "~", "\\")) or w[1:3] in (":\\", ":/")], path
        assert not HOOKS_AND_PLACES & set(words), (path, HOOKS_AND_PLACES & set(words))
        if path.name.startswith("reader."):
            # Written by the reader's former loop, before it trained with the trainer; kept in
            # its own format (nothing but this test reads it), every number as recorded.
            assert history["format"] == "cnn-vs-lstm-numpy/reader-history"
            assert len(history["epochs"]) == history["config"]["epochs"] == 30
            continue
        config = TrainingConfig.from_json(history["config"], path)
        assert config.model == history["model"] == path.name.split(".")[0]
        assert config.version == CONFIG_VERSION and config.data["train_images"] == 60000
        assert {"epochs", "best_epoch", "best_val_accuracy", "test"} <= history.keys()
        assert len(history["epochs"]) == config.epochs


def test_a_history_of_the_old_format_converts_with_its_numbers_unchanged():
    from models.training.trainer import history_from_version_0
    old = {"model": "lstm", "args": {
        "model": "lstm", "model_file": None, "data": None, "download": False, "epochs": 1, "batch_size": 64,
        "lr": 0.002, "optimizer": "adam", "momentum": 0.9, "schedule": "cosine", "final_lr_factor": 0.01,
        "augment": True, "seed": 1, "val_fraction": 0.2, "num_classes": None, "limit": None,
        "out": "/work/lstmrun2/lstm.npz", "force": False, "resume": None, "threads": 1, "hidden": 64,
        "quiet": True, "interrupt_after": None, "interrupt_at_phase": None, "prog": "python -m models.train"},
        "epochs": [{"epoch": 1, "train_loss": 0.25, "val_accuracy": 0.9925}], "best_epoch": 1,
        "best_val_accuracy": 0.9925, "test": {"accuracy": 0.994, "images": 10000, "epoch": 1}}
    new = history_from_version_0(old, {"hidden": 64})
    assert new["config"]["options"] == {"hidden": 64} and new["config"]["lr"] == 0.002
    assert {k: v for k, v in new.items() if k != "config"} == {k: v for k, v in old.items() if k != "args"}
    assert not HOOKS_AND_PLACES & set(strings_and_keys(new))
    assert "/work/lstmrun2/lstm.npz" not in str(new)


def a_config(**change):
    from models.training.config import TrainingConfig
    fields = dict(model="lstm", options={"hidden": 64}, epochs=3, batch_size=32, lr=2e-3, optimizer="adam",
                  momentum=0.9, schedule="cosine", final_lr_factor=0.01, augment=True, seed=7,
                  val_fraction=0.2, num_classes=None, limit=300,
                  data={"files": {"train-images": {"file": "x", "bytes": 3, "sha256": "ab"}}})
    return TrainingConfig(**{**fields, **change})


def test_the_config_and_state_round_trip_through_json():
    import json

    from models.training.config import TrainingConfig, TrainingState
    config = a_config()
    assert TrainingConfig.from_json(json.loads(json.dumps(config.to_json())), "here") == config
    state = TrainingState(best_val_accuracy=0.5, epoch=2, global_step=8, best_epoch=2, epoch_loss_sum=1.5,
                          loss_reference=2.3, history=[{"epoch": 1}, {"epoch": 2}], test={"accuracy": 0.9})
    assert TrainingState.from_json(json.loads(json.dumps(state.to_json())), "here") == state
    assert config.with_epochs(5).epochs == 5 and config.epochs == 3


@pytest.mark.parametrize("change, expected", [
    (lambda c: c.update(version=2), "training config version 2 is not one this kit reads"),
    (lambda c: c.pop("version"), "training config version None"),
    (lambda c: c.update(lr=-1.0), "'lr' is -1.0"),
    (lambda c: c.update(epochs=2.5), "'epochs' is 2.5"),
    (lambda c: c.update(augment="yes"), "'augment'"),
    (lambda c: c.update(schedule="linear"), "'schedule'"),
    (lambda c: c.update(seed=-1), "'seed'"),
    (lambda c: c.update(out="/tmp/m.npz"), "unknown settings ['out']"),
    (lambda c: c.pop("batch_size"), "lacks the setting 'batch_size'"),
])
def test_a_config_that_is_not_version_1_or_not_valid_is_refused_in_one_line(change, expected):
    from models.training.config import TrainingConfig
    from nn.errors import UserError
    saved = a_config().to_json()
    change(saved)
    with pytest.raises(UserError) as error:
        TrainingConfig.from_json(saved, "m.checkpoint.npz")
    message = str(error.value)
    assert expected in message and message.startswith("m.checkpoint.npz: ") and "\n" not in message


def test_a_state_of_an_unknown_version_is_refused_in_one_line():
    from models.training.config import TrainingState
    from nn.errors import UserError
    saved = TrainingState(best_val_accuracy=None).to_json()
    assert TrainingState.from_json(dict(saved), "c") == TrainingState(best_val_accuracy=None)
    for version in (0, 2, None):
        with pytest.raises(UserError, match=rf"^c: training state version {version} is not one this kit reads"):
            TrainingState.from_json({**saved, "version": version}, "c")


def test_the_trainer_steps_are_the_one_training_step(tmp_path, mnist_dir):
    """The trainer's weights equal a loop written here from nn.step.TrainingStep and the seed rule
    (split, model and data generators from --seed), so the trainer adds nothing to the step."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from kit.mnist import load_dataset
    from models.base import build_model
    from models.commands.train import run
    from nn.optim import Adam
    from nn.step import TrainingStep
    out = tmp_path / "m.npz"
    flags = ["--model", "mlp", "--limit", 300, "--epochs", 1, "--batch-size", 50, "--lr", 0.003,
             "--no-augment", "--schedule", "constant", "--seed", 9, "--quiet"]
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
        assert run([str(f) for f in [*flags, "--data", mnist_dir, "--out", out]]) == 0, err.getvalue()

    images, labels, _ = load_dataset(mnist_dir, "train")
    images, labels = images[:300], labels[:300]
    order = np.random.default_rng([9, 0]).permutation(300)
    train = np.sort(order[60:])                              # 20% held out for validation
    model = build_model("mlp", rng=np.random.default_rng([9, 1]))
    step = TrainingStep(model.network, Adam(model.network.parameters(), lr=0.003))
    permutation = np.random.default_rng([9, 2]).permutation(len(train))
    for start in range(0, len(train), 50):
        index = train[permutation[start:start + 50]]
        assert step(model.to_network_input(images[index]), labels[index]).updated
    saved = weights_of(out)
    assert saved.keys() == {f"state/{k}" for k in model.network.state()}
    for key, value in model.network.state().items():
        np.testing.assert_array_equal(saved[f"state/{key}"], value, err_msg=key)
