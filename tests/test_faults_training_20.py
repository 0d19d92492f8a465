"""The trainer's faults of issue 20 (its trainer-side items): each test names its item.

Runs are in-process where they can be (``models.commands.train.run``, as in
tests/test_faults_training.py, whose helpers and fixtures this file shares); in a process of
their own where the working folder, a second process or the signal disposition matters.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kit.mnist import find_mnist_file
from nn.idx import read_idx, write_idx
from tests.support.model_files import BROKEN, TO_INPUT_RAISES, write_model_file
from tests.test_faults_training import (  # noqa: F401 (fixtures: autouse in this module too)
    REPO, SHORT, as_version_0, data_read_once, error_line, interrupted_run, numba_threads_restored,
    rewrite_checkpoint, train, user_data_folder)

LSTM_SHORT = ["--model", "lstm", *SHORT]


def restore_sigint():
    """In the child, before it starts: SIGINT's default, whatever the caller's shell set (item 20)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def python(*args, cwd=REPO, preexec_fn=restore_sigint, timeout=300):
    """``python ARGS`` in a process of its own, SIGINT at its default unless told otherwise."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


def first_error_line(result):
    """The one line of an error followed by the person's own frames (item 4): the first line."""
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[0]


# ------------------------------------------------------------------ items 1 and 2: resume writes only its own files
def test_item_1_resume_from_another_folder_writes_beside_the_checkpoint(tmp_path, mnist_dir):
    folder_a, folder_b = tmp_path / "A", tmp_path / "B"
    folder_a.mkdir(), folder_b.mkdir()
    (folder_b / "m.npz").write_bytes(b"B's own weights")
    interrupted = python(REPO / "tests/support/interrupted_training.py", "--after", 2, "--fixed-model", "lstm",
                         "--prog", "train_lstm.py", "--", *SHORT, "--data", mnist_dir, "--out", "m.npz",
                         cwd=folder_a)
    assert interrupted.returncode == 130, interrupted.stderr
    resumed = python(REPO / "train_lstm.py", "--resume", Path("..") / "A" / "m.checkpoint.npz", "--threads", 1,
                     "--quiet", cwd=folder_b)
    assert resumed.returncode == 0, resumed.stderr
    assert (folder_b / "m.npz").read_bytes() == b"B's own weights"
    assert sorted(p.name for p in folder_b.iterdir()) == ["m.npz"]
    import models
    assert models.load_model(folder_a / "m.npz", expect="lstm").extra["epoch"] >= 1


@pytest.mark.parametrize("theirs", ["shipped weights", "not weights"])
def test_item_1_a_checkpoint_moved_beside_a_persons_file_does_not_replace_it(tmp_path, mnist_dir, theirs):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, after=5)   # epoch 1's weights written
    folder = tmp_path / "B"
    folder.mkdir()
    person = folder / "m.npz"
    person.write_bytes((REPO / "weights" / "lstm.npz").read_bytes() if theirs == "shipped weights"
                       else b"a person's file")
    before = person.read_bytes()
    moved = folder / "m.checkpoint.npz"
    moved.write_bytes(checkpoint.read_bytes())
    result = train("--resume", moved, "--quiet")
    assert result.returncode == 2
    line = error_line(result)
    assert str(person) in line and "not this run's file" in line
    assert person.read_bytes() == before
    # The run's own files beside its own checkpoint are still replaced, as resuming needs.
    assert train("--resume", checkpoint, "--quiet").returncode == 0


def test_item_1_a_persons_history_beside_the_checkpoint_is_not_replaced(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, after=2)   # no file of the run yet
    history = checkpoint.with_name("m.history.json")
    history.write_text('{"notes": "mine"}\n')
    result = train("--resume", checkpoint, "--quiet")
    assert result.returncode == 2 and str(history) in error_line(result)
    assert history.read_text() == '{"notes": "mine"}\n'


@pytest.mark.parametrize("name", ["precious.npz", "m.checkpoint.npz", "m.history.json"])
def test_item_2_an_edited_weights_name_cannot_aim_at_another_file(tmp_path, mnist_dir, name):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, after=5)
    precious = checkpoint.with_name("precious.npz")
    precious.write_bytes(b"precious")
    rewrite_checkpoint(checkpoint, meta_change=lambda meta: meta.update(weights=name))
    files = {path: path.read_bytes() for path in checkpoint.parent.iterdir()}
    result = train("--resume", checkpoint, "--quiet")
    assert result.returncode == 2
    assert str(checkpoint) in error_line(result) and repr(name) in error_line(result)
    assert {path: path.read_bytes() for path in checkpoint.parent.iterdir()} == files


def test_item_2_an_old_checkpoints_out_path_is_not_trusted(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, after=5)
    elsewhere = tmp_path / "elsewhere" / "precious.npz"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"precious")
    beside = checkpoint.with_name("precious.npz")
    beside.write_bytes(b"precious too")
    as_version_0(checkpoint, elsewhere)   # the old layout kept an absolute --out: here, a person's file
    result = train("--resume", checkpoint, "--quiet")
    assert result.returncode == 2 and "'precious.npz'" in error_line(result)
    assert elsewhere.read_bytes() == b"precious" and beside.read_bytes() == b"precious too"


# ------------------------------------------------------------------ item 3
def test_item_3_an_empty_out_is_one_line(tmp_path):
    result = train("--model", "lstm", "--out", "")
    assert result.returncode == 2 and "--out ''" in error_line(result)


# ------------------------------------------------------------------ item 4: a model file's model is probed first
@pytest.mark.parametrize("case, body, to_input, expected, own_frame", BROKEN + [TO_INPUT_RAISES],
                         ids=[row[0] for row in BROKEN + [TO_INPUT_RAISES]])
def test_item_4_a_broken_model_file_is_named_in_one_line(tmp_path, mnist_dir, case, body, to_input,
                                                         expected, own_frame):
    model_file = write_model_file(tmp_path, f"broken_{case}", body, to_input)
    out = tmp_path / "o" / "m.npz"
    result = train("--model-file", model_file, *SHORT, "--data", mnist_dir, "--out", out)
    assert result.returncode == 2, result.stderr
    line = first_error_line(result)
    assert line.startswith(f"error: {model_file.resolve()}: ") and expected in line, line
    rest = result.stderr.strip().splitlines()[1:]
    if own_frame is None:
        assert rest == [], result.stderr
    else:   # the person's own frames follow, and only theirs
        assert any(own_frame in text for text in rest) and str(model_file.resolve()) in rest[0]
        assert not any("models/training" in text or "models/probe" in text for text in rest), rest
    assert not (tmp_path / "o").exists()


def test_item_4_the_probe_passes_every_shipped_model():
    from models import registry
    from models.probe import check_model_spec
    shipped = [registry.get(name) for name in registry.names() if registry.get(name).shipped]
    assert len(shipped) == 5
    for spec in shipped:
        network = check_model_spec(spec, spec.options, (28, 28), 10)
        assert network.num_parameters() > 0


# ------------------------------------------------------------------ item 8
def test_item_8_a_run_too_short_for_the_step_guard_is_judged_at_the_epoch_end(tmp_path, mnist_dir):
    out = tmp_path / "m.npz"
    result = train(*LSTM_SHORT, "--epochs", 1, "--lr", "1e9", "--data", mnist_dir, "--out", out)  # 4 steps
    assert result.returncode == 3, result.stderr
    line = error_line(result)
    assert "diverged" in line and "epoch 1" in line and "no weights were written" in line
    assert not out.exists()


# ------------------------------------------------------------------ item 9
@pytest.fixture
def stray_label_data(tmp_path, mnist_dir):
    """300 MNIST training images, one of them labelled 200; the real test files."""
    folder = tmp_path / "stray"
    folder.mkdir()
    images = read_idx(find_mnist_file(mnist_dir, "train", "images"))[:300]
    labels = read_idx(find_mnist_file(mnist_dir, "train", "labels"))[:300].copy()
    labels[7] = 200
    write_idx(folder / "train-images-idx3-ubyte", images)
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    for kind in ("images", "labels"):
        source = find_mnist_file(mnist_dir, "test", kind)
        (folder / source.name).write_bytes(source.read_bytes())
    return folder


def test_item_9_one_stray_label_far_above_the_rest_is_refused(tmp_path, stray_label_data):
    out = tmp_path / "o" / "m.npz"
    result = train(*LSTM_SHORT, "--epochs", 1, "--data", stray_label_data, "--out", out)
    assert result.returncode == 2
    line = error_line(result)
    assert "train-labels" in line and "1 training label of 200" in line and "--num-classes 201" in line
    assert not (tmp_path / "o").exists()
    meant = train(*LSTM_SHORT, "--epochs", 1, "--data", stray_label_data, "--num-classes", 201, "--out", out)
    assert meant.returncode == 0, meant.stderr
    assert "201 classes" in meant.stderr


@pytest.mark.parametrize("labels, refused", [
    ([*range(10), 200], True), ([*range(26), 255], True), ([0, 1, 30], True),
    ([*range(10)], False), ([*range(26)], False), ([0, 1, 7], False), ([3], False)])
def test_item_9_far_above_means_a_stray_label_not_a_set_lacking_some_classes(tmp_path, labels, refused):
    from models.training.trainer import check_no_stray_label
    folder = tmp_path / "data"
    folder.mkdir()
    write_idx(folder / "train-labels-idx1-ubyte", np.array(labels, np.uint8))
    if refused:
        with pytest.raises(Exception, match=f"--num-classes {max(labels) + 1}"):
            check_no_stray_label(folder, np.array(labels))
    else:
        check_no_stray_label(folder, np.array(labels))


# ------------------------------------------------------------------ item 12
def test_item_12_a_second_trainer_on_the_same_out_is_refused(tmp_path, mnist_dir):
    out = tmp_path / "m.npz"
    first = subprocess.Popen(
        [sys.executable, str(REPO / "train_lstm.py"), "--data", str(mnist_dir), "--limit", "2000",
         "--epochs", "200", "--threads", "1", "--quiet", "--out", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=restore_sigint)
    try:
        for line in first.stderr:  # the first trainer has started: nothing written yet
            if line.startswith("LSTM:"):
                break
        second = train(*LSTM_SHORT, "--epochs", 1, "--data", mnist_dir, "--out", out)
        assert second.returncode == 2, second.stdout
        line = error_line(second)
        assert f"another trainer (pid {first.pid})" in line and str(out) in line
        assert out.with_name("m.lock").read_text().strip() == str(first.pid)
    finally:
        first.kill()
        first.communicate()
    # The first trainer is dead: its lock is stale and taken over; a finished run leaves no lock.
    for path in (out, out.with_name("m.checkpoint.npz"), out.with_name("m.history.json")):
        path.unlink(missing_ok=True)
    assert out.with_name("m.lock").read_text().strip() == str(first.pid)
    taken = train(*LSTM_SHORT, "--epochs", 1, "--data", mnist_dir, "--out", out)
    assert taken.returncode == 0, taken.stderr
    assert f"written to {out}" in taken.stdout and not out.with_name("m.lock").exists()


# ------------------------------------------------------------------ item 18
def test_item_18_keep_final_keeps_the_last_epoch(tmp_path, mnist_dir):
    out = tmp_path / "m.npz"
    result = train(*LSTM_SHORT, "--keep", "final", "--data", mnist_dir, "--out", out)
    assert result.returncode == 0, result.stderr
    import models
    weights = models.load_model(out)
    assert weights.extra["epoch"] == 2 and weights.extra["config"]["keep"] == "final"
    history = json.loads(out.with_name("m.history.json").read_text())
    assert history["best_epoch"] == 2 and history["test"]["epoch"] == 2
    assert history["best_val_accuracy"] == history["epochs"][-1]["val_accuracy"]
    default = train(*LSTM_SHORT, "--epochs", 1, "--data", mnist_dir, "--out", tmp_path / "d.npz")
    assert default.returncode == 0
    assert models.load_model(tmp_path / "d.npz").extra["config"]["keep"] == "best"
    assert "--keep" in (REPO / "README.md").read_text()


def test_item_18_keep_is_part_of_the_recipe_on_resume(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, "--keep", "final")
    result = train("--resume", checkpoint, "--quiet", "--keep", "best")
    assert result.returncode == 2 and "--keep best" in error_line(result)


# ------------------------------------------------------------------ item 20
def test_item_20_ctrl_c_is_honoured_when_the_caller_ignores_sigint(tmp_path, mnist_dir):
    """Started with SIGINT ignored (``&`` in a script), the trainer still handles a Ctrl-C."""
    result = python("tests/support/interrupted_training.py", "--at-phase", "startup", "--fixed-model", "lstm",
                    "--prog", "train_lstm.py", "--", *SHORT, "--data", mnist_dir,
                    "--out", tmp_path / "o" / "m.npz", preexec_fn=ignore_sigint)
    assert result.returncode == 130, result.stderr
    assert "start-up" in error_line(result)
    assert not (tmp_path / "o").exists()


def test_item_20_the_ctrl_c_tests_children_start_with_sigint_at_its_default():
    """The helpers that start the Ctrl-C tests' trainers give them SIGINT's default even when
    pytest itself runs with SIGINT ignored (under nohup, ``&``)."""
    from tests import test_faults_training, test_training
    show = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        by_helper = [test_faults_training.run_command("-c", show).stdout.strip(),
                     test_training.start_script("-c", show).communicate(timeout=60)[0].strip()]
        plain = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True).stdout.strip()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert plain == "False"   # the disposition is inherited: what the helpers must undo
    assert by_helper == ["True", "True"]


# ------------------------------------------------------------------ item 21
def test_item_21_resume_refuses_fewer_epochs_than_at_the_start(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, "--epochs", 3, after=5)   # in epoch 2 of 3
    before = checkpoint.read_bytes()
    result = train("--resume", checkpoint, "--quiet", "--epochs", 2)
    assert result.returncode == 2
    assert "--epochs 2" in error_line(result) and "larger --epochs" in error_line(result)
    assert checkpoint.read_bytes() == before
    assert "a larger `--epochs`" in (REPO / "README.md").read_text()
