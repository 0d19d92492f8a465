"""The trainer's faults (issue 12): nothing lost, nothing silent, resume exact at every point.

Most runs here are in-process (``models.commands.train.run``): the same code as the command line without
the interpreter start-up, so a loop over many interrupt points stays fast.  Interruptions come
through the trainer's callbacks (:mod:`tests.support.interruptions`), not command-line flags.
"""
import io
import json
import os
import signal
import subprocess
import sys
from collections import namedtuple
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from models.commands.train import run
from tests.support.interruptions import interruption

REPO = Path(__file__).resolve().parent.parent
Result = namedtuple("Result", "returncode stdout stderr")

# 300 images, 60 of them for validation: 240 training images, 4 steps (64, 64, 64, 48) an epoch.
SHORT = ["--limit", 300, "--epochs", 2, "--batch-size", 64, "--threads", 1, "--quiet"]
_loaded = {}


@pytest.fixture(autouse=True)
def data_read_once(monkeypatch):
    """The IDX files are parsed once per test session (the runs here are many and short)."""
    import models.training.digit_data

    original = models.training.digit_data.load_dataset

    def cached(directory, split, num_classes=None):
        key = (str(directory), split, num_classes)
        if key not in _loaded:
            _loaded[key] = original(directory, split, num_classes)
        return _loaded[key]  # the trainer only reads them (slicing and fancy indexing)

    monkeypatch.setattr(models.training.digit_data, "load_dataset", cached)


@pytest.fixture(autouse=True)
def numba_threads_restored():
    """The runs' --threads 1 sets this process's Numba thread count: give it back afterwards."""
    import numba
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


@pytest.fixture(autouse=True)
def user_data_folder(tmp_path, monkeypatch):
    """Default --out and runs go to a temporary user data folder, never the real one."""
    monkeypatch.setenv("CNN_VS_LSTM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def train(*args, callbacks=None):
    """``python -m models.train ARGS`` in this process: (returncode, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = run([str(arg) for arg in args], callbacks=callbacks)
        except SystemExit as stop:
            code = stop.code
    return Result(code, out.getvalue(), err.getvalue())


def default_sigint():
    """Run in the child before it starts (issue 20, item 20): SIGINT at its default, so a Ctrl-C
    test tests the code and not pytest's caller (under nohup or ``&`` SIGINT is ignored, and
    a child inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_command(*args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=default_sigint)


def weights_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("state/")}


def assert_same_weights(a, b):
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def history_without_timing(path):
    history = json.loads(Path(path).read_text())   # its config too: no --out, no hook in it
    for record in history["epochs"]:
        del record["seconds"], record["images_per_second"]
    return history


def error_line(result):
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


# ------------------------------------------------------------------ 1. resume exact at every point
def interrupt_points(steps):
    """Every step, the epoch boundaries, validation and the epoch-end save (2 epochs of steps / 2)."""
    return ([dict(after=step) for step in range(1, steps + 1)]
            + [dict(at_phase=phase) for phase in
               ("epoch-start:1", "epoch-start:2", "validation:1", "validation:2", "checkpoint:1",
                f"step:{steps - 2}")])


@pytest.mark.parametrize("model, extra, steps", [
    ("cnn", ["--limit", 200], 6),   # 160 training images: 3 steps an epoch (CNN steps are slow)
    ("lstm", ["--augment", "--schedule", "cosine"], 8)])
@pytest.mark.slow
def test_resume_is_bit_identical_wherever_the_interrupt_lands(tmp_path, mnist_dir, model, extra, steps):
    common = ["--model", model, *SHORT, *extra, "--data", mnist_dir, "--seed", 3]
    straight = train(*common, "--out", tmp_path / "straight" / "m.npz")
    assert straight.returncode == 0, straight.stderr
    for n, point in enumerate(interrupt_points(steps)):
        out = tmp_path / f"run{n}" / "m.npz"
        checkpoint = out.with_name("m.checkpoint.npz")
        interrupted = train(*common, "--out", out, callbacks=interruption(**point))
        assert interrupted.returncode == 130, (point, interrupted.stderr)
        assert f"--resume {checkpoint}" in interrupted.stderr, point
        resumed = train("--resume", checkpoint, "--threads", 1, "--quiet")
        assert resumed.returncode == 0, (point, resumed.stderr)
        assert_same_weights(tmp_path / "straight" / "m.npz", out)
        assert (history_without_timing(out.with_name("m.history.json"))
                == history_without_timing(tmp_path / "straight" / "m.history.json")), point
        assert not checkpoint.exists()


class OwnGenerator:
    """A layer keeping its generator behind rng_state() / set_rng_state(), not as ``rng``."""

    def __init__(self, seed):
        self._generator = np.random.default_rng(seed)

    def draw(self):
        return self._generator.random(4)

    def rng_state(self):
        return self._generator.bit_generator.state

    def set_rng_state(self, state):
        self._generator.bit_generator.state = state


def test_every_layer_generator_is_saved_and_restored_whatever_its_form():
    from models.training.checkpoint import layer_rng_states, set_layer_rng_states
    from nn.layers import Dense, Dropout, Sequential
    dropout = Dropout(0.5, rng=np.random.default_rng(7))       # a generator of its own, as .rng
    own = OwnGenerator(8)
    network = Sequential([Dense(3, 3, rng=np.random.default_rng(0)), dropout])
    network.layers.append(own)
    states = json.loads(json.dumps(layer_rng_states(network)))   # through the checkpoint's JSON
    assert set(states) == {"1", "2"}
    first = dropout.rng.random(4), own.draw()
    set_layer_rng_states(network, states)
    again = dropout.rng.random(4), own.draw()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


LSTM_SHORT = ["--model", "lstm", *SHORT]


def interrupted_run(tmp_path, mnist_dir, *extra, model="lstm", after=2):
    """A short run stopped by Ctrl-C after ``after`` steps: (command, checkpoint path)."""
    command = ["--model", model, *SHORT, "--data", mnist_dir, "--out", tmp_path / "run" / "m.npz", *extra]
    result = train(*command, callbacks=interruption(after=after))
    assert result.returncode == 130, result.stderr
    return command, tmp_path / "run" / "m.checkpoint.npz"


# ------------------------------------------------------------------ 2. work is never lost
def test_rerunning_the_original_command_is_refused_with_the_resume_command(tmp_path, mnist_dir):
    command, checkpoint = interrupted_run(tmp_path, mnist_dir)
    before = checkpoint.read_bytes()
    again = train(*command)
    assert again.returncode == 2
    assert f"--resume {checkpoint}" in error_line(again) and "--force" in error_line(again)
    assert checkpoint.read_bytes() == before


def test_the_shipped_weights_are_never_replaced_by_default(tmp_path, mnist_dir, user_data_folder):
    shipped = {path: path.read_bytes() for path in (REPO / "weights").glob("*.npz")}
    assert shipped
    result = train("--model", "lstm", *SHORT, "--epochs", 1, "--data", mnist_dir)
    assert result.returncode == 0, result.stderr
    made = list((user_data_folder / "runs").glob("lstm-*/lstm.npz"))
    assert len(made) == 1 and str(made[0]) in result.stdout
    refused = train("--model", "lstm", *SHORT, "--data", mnist_dir, "--out", REPO / "weights" / "lstm.npz")
    assert refused.returncode == 2 and "already exists" in error_line(refused)
    assert {path: path.read_bytes() for path in shipped} == shipped


def test_force_replaces_an_existing_out_and_checkpoint(tmp_path, mnist_dir):
    command, checkpoint = interrupted_run(tmp_path, mnist_dir)
    out = checkpoint.with_name("m.npz")
    out.write_bytes(b"previous weights")
    result = train(*command, "--force")
    assert result.returncode == 0, result.stderr
    import models
    assert models.load_model(out).name == "lstm"
    assert not checkpoint.exists()


# ------------------------------------------------------------------ 3. --out checked before any work
def test_out_under_a_file_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = train("--model", "lstm", "--data", tmp_path / "no-data", "--out", blocker / "sub" / "m.npz")
    assert result.returncode == 2
    assert f"{blocker} is a file, not a folder" in error_line(result)


def test_out_that_is_a_folder_is_refused(tmp_path):
    result = train("--model", "lstm", "--data", tmp_path / "no-data", "--out", tmp_path)
    assert result.returncode == 2 and "is a folder" in error_line(result)


def test_out_in_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anywhere: make the check see what a user would
        import models.commands.train
        monkeypatch.setattr(models.commands.train.os, "access", lambda path, mode: Path(path) != folder)
    result = train("--model", "lstm", "--data", tmp_path / "no-data", "--out", folder / "m.npz")
    folder.chmod(0o755)
    assert result.returncode == 2
    assert f"the folder {folder} is not writable" in error_line(result)


def test_a_full_disk_gives_one_line_and_keeps_the_last_good_file(tmp_path, mnist_dir, monkeypatch):
    import errno

    real_savez, calls = np.savez, []

    def savez(handle, **arrays):  # the third .npz written: epoch 2's weights or checkpoint
        calls.append(1)
        if len(calls) >= 3:
            handle.write(b"half an archive")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_savez(handle, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    out = tmp_path / "run" / "m.npz"
    result = train(*LSTM_SHORT, "--data", mnist_dir, "--out", out)
    monkeypatch.undo()
    assert result.returncode == 2
    line = error_line(result)
    assert "No space left on device" in line and str(tmp_path / "run") in line
    import models
    assert models.load_model(out).extra["epoch"] == 1   # epoch 1's weights, whole
    assert not list(out.parent.glob(".*.tmp"))


# ------------------------------------------------------------------ 7. checkpoints validated
def rewrite_checkpoint(path, meta_change=None, array_change=None):
    """Rewrite a checkpoint with ``meta_change(meta)`` / ``array_change(arrays)`` applied."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    if meta_change:
        meta_change(meta)
    if array_change:
        array_change(arrays)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["state"].pop("epoch"), "'epoch'"),
    (lambda m: m["state"].update(step_in_epoch="two"), "'step_in_epoch'"),
    (lambda m: m["generators"].update(model=[1, 2]), "'model_rng'"),
    (lambda m: m["generators"]["model"]["state"].update(state="x"), "generator state"),
    (lambda m: m["config"].update(lr="fast"), "'lr'"),
    (lambda m: m["config"].update(batch_size=-4), "'batch_size'"),
    (lambda m: m["config"].pop("optimizer"), "'optimizer'"),
    (lambda m: m["config"]["options"].update(hidden=-3), "'hidden'"),
    (lambda m: m["state"].update(global_step=99), "does not fit"),
    (lambda m: m["config"].update(model="gru"), "another model"),
    (lambda m: m.update(weights="../elsewhere/m.npz"), "not a file name"),
    (lambda m: m["config"].update(version=99), "version 99"),
    (lambda m: m["state"].update(version=99), "version 99"),
    (lambda m: m.update(version=99), "version 99"),
])
def test_a_damaged_checkpoint_field_is_one_line(tmp_path, mnist_dir, change, expected):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir)
    rewrite_checkpoint(checkpoint, meta_change=change)
    result = train("--resume", checkpoint, "--quiet")
    assert result.returncode == 2
    assert expected in error_line(result) and str(checkpoint) in error_line(result)


def test_an_array_of_the_wrong_shape_is_refused_not_broadcast(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, model="cnn", after=1)
    with np.load(checkpoint) as archive:
        assert archive["model/0.weight"].shape == (32, 1, 3, 3)

    def small(arrays):
        arrays["model/0.weight"] = np.ones((3, 3), np.float32)  # broadcasts into (32, 1, 3, 3)
    rewrite_checkpoint(checkpoint, array_change=small)
    result = train("--resume", checkpoint, "--quiet")
    assert result.returncode == 2
    assert "'0.weight' has shape (3, 3), expected (32, 1, 3, 3)" in error_line(result)


@pytest.mark.parametrize("change, expected", [
    (lambda a: a.update({"optim/m/0.w_ih": a["optim/m/0.w_ih"].astype(np.float64)}), "dtype float64"),
    (lambda a: a.pop("optim/v/2.bias"), "missing array 'v/2.bias'"),
    (lambda a: a.update(permutation=a["permutation"][:-1]), "data order"),
    (lambda a: a.update(permutation=np.zeros_like(a["permutation"])), "data order"),
])
def test_damaged_checkpoint_arrays_are_refused(tmp_path, mnist_dir, change, expected):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir)
    rewrite_checkpoint(checkpoint, array_change=change)
    result = train("--resume", checkpoint, "--quiet")
    assert result.returncode == 2 and expected in error_line(result)


def test_resume_applies_more_epochs_and_refuses_other_changes_in_one_line(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir)
    for flags, expected in ((["--lr", 0.5], "--lr 0.5"), (["--out", tmp_path / "other.npz"], "--out"),
                            (["--hidden", 32], "--hidden 32"), (["--no-augment"], "--augment off"),
                            (["--force"], "--force")):
        result = train("--resume", checkpoint, "--quiet", *flags)
        assert result.returncode == 2, flags
        assert expected in error_line(result), flags
    # The same value as the run's own is no change; more epochs are applied, and said.
    result = train("--resume", checkpoint, "--quiet", "--batch-size", 64, "--epochs", 3)
    assert result.returncode == 0, result.stderr
    assert "note: training to 3 epochs instead of 2" in result.stderr
    history = json.loads(checkpoint.with_name("m.history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    assert not (tmp_path / "other.npz").exists()


def test_epochs_already_done_cannot_be_asked_for(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, after=5)   # in epoch 2 of 2
    result = train("--resume", checkpoint, "--quiet", "--epochs", 1)
    assert result.returncode == 2 and "already finished 1 epochs" in error_line(result)


# ------------------------------------------------------------------ 8. dubious values
def test_a_loss_far_above_its_start_stops_the_run_with_exit_3(tmp_path, mnist_dir):
    out = tmp_path / "m.npz"
    result = train("--model", "lstm", "--limit", 2000, "--epochs", 2, "--batch-size", 32, "--threads", 1,
                   "--quiet", "--lr", 10, "--data", mnist_dir, "--out", out)
    assert result.returncode == 3
    line = error_line(result)
    assert "diverged" in line and "stayed above 10 times its starting value" in line
    assert "epoch 1" in line and "no weights were written" in line
    assert not out.exists()


def test_a_sound_run_is_not_taken_for_divergence(tmp_path, mnist_dir):
    result = train("--model", "lstm", "--limit", 2000, "--epochs", 1, "--batch-size", 32, "--threads", 1,
                   "--quiet", "--lr", 0.05, "--data", mnist_dir, "--out", tmp_path / "m.npz")
    assert result.returncode == 0, result.stderr   # spikes to 4 from 3.2 early on


@pytest.mark.parametrize("flags, expected", [
    (["--final-lr-factor", "-3"], "--final-lr-factor"),
    (["--seed", "-1"], "--seed"),
    (["--lr", "inf"], "--lr"),
    (["--momentum", "1.5"], "--momentum"),
])
def test_dubious_flags_are_refused(tmp_path, flags, expected):
    result = train("--model", "lstm", *flags, "--out", tmp_path / "o" / "m.npz")
    assert result.returncode == 2 and expected in error_line(result)
    assert not (tmp_path / "o").exists()


def test_batch_size_one_is_refused_for_a_batchnorm_model(tmp_path, mnist_dir):
    result = train(*LSTM_SHORT, "--batch-size", 1, "--data", mnist_dir, "--out", tmp_path / "m.npz")
    assert result.returncode == 2
    assert "--batch-size 1" in error_line(result) and "BatchNorm" in error_line(result)
    assert not (tmp_path / "m.npz").exists()


def test_a_final_batch_of_one_joins_the_one_before(tmp_path, mnist_dir, monkeypatch):
    from nn.losses import SoftmaxCrossEntropy
    sizes = []
    forward = SoftmaxCrossEntropy.forward

    def recording(self, logits, labels):
        sizes.append(len(labels))
        return forward(self, logits, labels)
    monkeypatch.setattr(SoftmaxCrossEntropy, "forward", recording)
    # 240 training images in batches of 239: 239 + 1 would leave BatchNorm one image.
    result = train(*LSTM_SHORT, "--batch-size", 239, "--data", mnist_dir, "--out", tmp_path / "m.npz")
    assert result.returncode == 0, result.stderr
    assert sizes == [240, 240]


def test_no_validation_writes_null_and_keeps_the_last_epoch(tmp_path, mnist_dir):
    out = tmp_path / "m.npz"
    result = train(*LSTM_SHORT, "--val-fraction", 0, "--data", mnist_dir, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "nan" not in result.stderr.lower() and "no validation" in result.stderr

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    history = json.loads(out.with_name("m.history.json").read_text(), parse_constant=refuse)
    assert [e["val_loss"] for e in history["epochs"]] == [None, None]
    assert [e["val_accuracy"] for e in history["epochs"]] == [None, None]
    assert history["best_epoch"] == 2 and history["best_val_accuracy"] is None
    import models
    assert models.load_model(out).extra["epoch"] == 2


# ------------------------------------------------------------------ 9. interrupts and absurd values
def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path, mnist_dir):
    result = run_command("tests/support/interrupted_training.py", "--at-phase", "startup",
                         "--fixed-model", "lstm", "--prog", "train_lstm.py", "--",
                         *SHORT, "--data", mnist_dir, "--out", tmp_path / "o" / "m.npz")
    assert result.returncode == 130
    assert "start-up" in error_line(result) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_ctrl_c_during_the_test_pass_is_one_line_and_the_run_resumes(tmp_path, mnist_dir):
    out = tmp_path / "m.npz"
    result = train(*LSTM_SHORT, "--data", mnist_dir, "--out", out, callbacks=interruption(at_phase="test"))
    assert result.returncode == 130
    line = error_line(result)
    assert "test pass" in line and "--resume" in line
    resumed = train("--resume", out.with_name("m.checkpoint.npz"), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "test accuracy" in resumed.stdout
    assert "test" in json.loads(out.with_name("m.history.json").read_text())


def test_absurd_model_options_are_refused_before_allocating(tmp_path, mnist_dir):
    import time
    started = time.perf_counter()
    result = train(*LSTM_SHORT, "--hidden", 1000000, "--data", mnist_dir, "--out", tmp_path / "m.npz")
    assert result.returncode == 2
    line = error_line(result)
    assert "--hidden 1000000" in line and "parameters" in line and "4,000," in line
    assert time.perf_counter() - started < 30
    ok = train(*LSTM_SHORT, "--epochs", 1, "--hidden", 100, "--data", mnist_dir, "--out", tmp_path / "b.npz")
    assert ok.returncode == 0, ok.stderr


def test_the_parameter_estimate_is_exact_for_the_recurrent_models():
    from models import registry
    from models.base import build_model
    from models.training.trainer import probe_model
    for name in ("lstm", "gru", "rnn", "mlp"):
        spec = registry.get(name)
        estimate, _ = probe_model(spec, {**spec.options, "hidden": 200}, (28, 28), 10)
        assert estimate == build_model(name, hidden=200).num_parameters(), name


@pytest.mark.parametrize("timeout", ["inf", "nan", "-1", "0"])
def test_download_refuses_a_timeout_that_is_not_a_positive_finite_number(tmp_path, timeout):
    result = run_command("-m", "kit.data", "download", "--dir", tmp_path / "m", "--timeout", timeout,
                         "--mirror", "file:///nowhere/")
    assert result.returncode == 2
    assert "--timeout" in error_line(result) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_data_that_is_a_file_is_named_as_such(tmp_path):
    data = tmp_path / "mnist.tar"
    data.write_bytes(b"not a folder")
    result = train("--model", "lstm", "--data", data, "--out", tmp_path / "o" / "m.npz")
    assert result.returncode == 2
    line = error_line(result)
    assert f"{data} is a file, not a folder" in line and "does not exist" not in line


def test_data_that_is_a_symlink_loop_is_named_as_such(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = train("--model", "lstm", "--data", loop, "--out", tmp_path / "o" / "m.npz")
    assert result.returncode == 2
    assert "symbolic link loop" in error_line(result)


def test_a_data_file_that_is_a_folder_is_named_as_such(tmp_path, mnist_dir):
    data = tmp_path / "data"
    data.mkdir()
    for path in Path(mnist_dir).glob("*.gz"):
        (data / path.name).symlink_to(path)
    (data / "train-labels-idx1-ubyte.gz").unlink()
    (data / "train-labels-idx1-ubyte.gz").mkdir()
    result = train("--model", "lstm", "--data", data, "--out", tmp_path / "o" / "m.npz")
    assert result.returncode == 2
    line = error_line(result)
    assert "train-labels-idx1-ubyte.gz is a folder" in line and "missing" not in line
    verify = run_command("-m", "kit.data", "verify", "--dir", data)
    assert verify.returncode == 2 and "is a folder" in error_line(verify)


@pytest.mark.parametrize("flag", ["--resume", "--model-file"])
def test_a_folder_or_a_link_loop_given_as_a_file_is_named_as_such(tmp_path, flag):
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop)
    for path, expected in ((tmp_path, "is a folder"), (loop, "link loop")):
        result = train(flag, path, "--out", tmp_path / "o" / "m.npz")
        assert result.returncode == 2
        line = error_line(result)
        assert expected in line and "no such" not in line


def test_stale_temporary_files_of_a_killed_write_are_cleaned(tmp_path):
    import time

    from nn.serialize import atomic_savez, atomic_write_text
    target = tmp_path / "m.npz"
    stale, fresh = tmp_path / ".m.npz.k1ll3d_x.tmp", tmp_path / ".m.npz.wr1t1ng_.tmp"
    other = tmp_path / ".other.npz.k1ll3d_x.tmp"
    for path in (stale, fresh, other):
        path.write_bytes(b"half")
    hour_ago = time.time() - 3600
    for path in (stale, other):
        os.utime(path, (hour_ago, hour_ago))
    atomic_savez(target, {"a": np.arange(3)})
    assert not stale.exists()
    assert fresh.exists()   # younger than a minute: maybe another process writing right now
    assert other.exists()   # another target's
    old_text = tmp_path / ".h.json.abcd1234.tmp"
    old_text.write_text("{")
    os.utime(old_text, (hour_ago, hour_ago))
    atomic_write_text(tmp_path / "h.json", "{}")
    assert not old_text.exists()


# ------------------------------------------------------------------ 10. the typed config in the files
def as_version_0(checkpoint, out):
    """Rewrite a checkpoint in the layout the trainer wrote before the typed config: the flags as
    ``args`` (with the absolute --out and the test hooks), the progress at the top level."""
    def old_layout(meta):
        config, state, generators = meta.pop("config"), meta.pop("state"), meta.pop("generators")
        args = {k: v for k, v in config.items() if k not in ("options", "data", "version")}
        args.update(config["options"], model_file=None, data=None, download=False, out=str(out), force=False,
                    resume=None, threads=1, quiet=True, interrupt_after=2, interrupt_at_phase=None,
                    prog="python -m models.train")
        state.pop("version"), state.pop("test")
        meta.clear()
        meta.update(format="cnn-vs-lstm-numpy/checkpoint", model=config["model"], args=args, **state,
                    model_rng=generators["model"], data_rng=generators["data"], layer_rngs=generators["layers"])
    rewrite_checkpoint(checkpoint, meta_change=old_layout)


def test_a_checkpoint_of_the_old_format_resumes_bit_identically(tmp_path, mnist_dir):
    common = ["--model", "lstm", *SHORT, "--augment", "--data", mnist_dir, "--seed", 3]
    straight = train(*common, "--out", tmp_path / "straight" / "m.npz")
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "run" / "m.npz"
    assert train(*common, "--out", out, callbacks=interruption(after=5)).returncode == 130
    checkpoint = out.with_name("m.checkpoint.npz")
    as_version_0(checkpoint, "/a/machine/that/is/gone/m.npz")   # the old --out: gone, only its name counts
    resumed = train("--resume", checkpoint, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(tmp_path / "straight" / "m.npz", out)
    assert (history_without_timing(out.with_name("m.history.json"))
            == history_without_timing(tmp_path / "straight" / "m.history.json"))


def test_an_old_checkpoint_with_a_bad_flag_is_one_line(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir)
    as_version_0(checkpoint, tmp_path / "run" / "m.npz")
    rewrite_checkpoint(checkpoint, meta_change=lambda m: m["args"].update(lr="fast"))
    result = train("--resume", checkpoint, "--quiet")
    assert result.returncode == 2 and "'lr'" in error_line(result) and str(checkpoint) in error_line(result)


def test_resume_on_other_data_is_refused_and_names_the_flag(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir)
    other = tmp_path / "other"
    other.mkdir()
    for path in Path(mnist_dir).glob("*.gz"):
        (other / path.name).write_bytes(path.read_bytes())
    import gzip
    labels = other / "train-labels-idx1-ubyte.gz"
    changed = bytearray(gzip.decompress(labels.read_bytes()))
    changed[-1] = (changed[-1] + 1) % 10   # the last of 60,000 labels: the run's 300 images are the same
    labels.write_bytes(gzip.compress(bytes(changed)))
    before = checkpoint.read_bytes()
    result = train("--resume", checkpoint, "--quiet", "--data", other)
    assert result.returncode == 2
    line = error_line(result)
    assert "other data" in line and "(train-labels differ)" in line and "--data" in line
    assert checkpoint.read_bytes() == before
    assert train("--resume", checkpoint, "--quiet", "--data", mnist_dir).returncode == 0


def test_what_a_run_writes_holds_its_recipe_and_no_path_or_test_hook(tmp_path, mnist_dir):
    out = tmp_path / "deep" / "folder" / "m.npz"
    result = train(*LSTM_SHORT, "--epochs", 1, "--data", mnist_dir, "--out", out,
                   callbacks=interruption(at_phase="test"))
    assert result.returncode == 130
    with np.load(out.with_name("m.checkpoint.npz")) as archive:
        checkpoint = archive["__meta__"].tobytes().decode()
    assert train("--resume", out.with_name("m.checkpoint.npz"), "--quiet").returncode == 0
    history = out.with_name("m.history.json").read_text()
    import models
    weights = json.dumps(models.load_model(out).extra)
    for text in (checkpoint, history, weights):
        assert str(tmp_path) not in text and str(mnist_dir) not in text
        for word in ("interrupt", '"prog"', '"out"', '"args"', '"quiet"', '"threads"'):
            assert word not in text, word
    assert json.loads(checkpoint)["weights"] == "m.npz"
    assert json.loads(history)["config"]["limit"] == 300 and json.loads(weights)["config"]["epochs"] == 1
