"""Issue 20, the canvas's items: draw.py given a broken model file (4), weights full of NaN (5),
a personal set that cannot take a taught drawing (6), a DISPLAY that is no display (14) and a
headless demo with nothing to end it (15).  Each test failed before its fix.

Every test has its own user data folder ($CNN_VS_LSTM_HOME in tmp_path); the app is driven
in-process with pygame's dummy video driver, the command line in a subprocess where a hang was
the fault (with a timeout, so the old code fails instead of waiting forever).
"""
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pygame
import pytest

from canvas import cli as draw
from canvas.app import DrawApp
from canvas.demo import digit_events, key_event
from models import build_model, load_model, shipped_weights
from tests.support.model_files import BROKEN, write_model_file

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def user_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_VS_LSTM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    return tmp_path / "home"


def untrained(name, folder, seed=0):
    path = Path(folder) / f"{name}.npz"
    build_model(name, rng=np.random.default_rng(seed)).save(path)
    return str(path)


def nan_weights(name, path, seed=0):
    """A weights file of ``name`` whose every float weight is NaN, with a valid checksum."""
    model = build_model(name, rng=np.random.default_rng(seed))
    model.network.load_state({key: np.full_like(value, np.nan) if value.dtype.kind == "f" else value
                              for key, value in model.network.state().items()})
    model.save(path)
    return model


def run_draw(args, env, timeout=60):
    environment = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY")}
    environment.update(env)
    return subprocess.run([sys.executable, str(REPO_ROOT / "draw.py"), *args], cwd=REPO_ROOT,
                          env=environment, capture_output=True, text=True, timeout=timeout)


def one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def play(app, events):
    app.post(events)
    app.step()
    app.render()


# ------------------------------------------------------------------ item 4: a broken --model-file
@pytest.mark.parametrize("case, body, to_input, expected, own_frame", BROKEN, ids=[row[0] for row in BROKEN])
def test_item_4_draw_names_what_is_wrong_with_a_model_file_in_one_line(tmp_path, capsys, case, body,
                                                                      to_input, expected, own_frame):
    model_file = write_model_file(tmp_path, f"canvas_broken_{case}", body, to_input)
    with pytest.raises(SystemExit) as stop:
        draw.main(["--model-file", str(model_file), "--weights", f"canvas_broken_{case}=w.npz"],
                  session=lambda app: 0)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"error: {model_file.resolve()}: ") and expected in lines[0], lines
    assert not any("Traceback" in line for line in lines)
    if own_frame is None:
        assert lines[1:] == []
    else:       # the person's own frames below the line, and only theirs
        assert any(own_frame in line for line in lines[1:])
        assert not any("canvas/" in line or "models/probe" in line for line in lines[1:]), lines


def test_item_4_a_good_model_file_is_drawn_with_its_weights(tmp_path, capsys, screen):
    from models import registry
    model_file = write_model_file(tmp_path, "canvas_good")
    registry.load_model_file(model_file)
    weights = untrained("canvas_good", tmp_path)
    seen = {}

    def session(app):
        play(app, digit_events(3, draw.DEMO_BOX) + [key_event(pygame.K_p)])
        seen["models"], seen["results"] = list(app.models), app.results
        return 0
    assert draw.main(["--models", "mlp", "--model-file", str(model_file), "--weights",
                      f"canvas_good={weights}"], session=session) == 0
    assert seen["models"] == ["mlp", "canvas_good"] and seen["results"]["canvas_good"].shape == (1, 10)
    assert "Mine: " in capsys.readouterr().out
    # Without weights for it: the one line says how to get them.
    with pytest.raises(SystemExit) as stop:
        draw.main(["--models", "mlp", "--model-file", str(model_file)], session=lambda app: 0)
    line = one_error_line(capsys.readouterr().err)
    assert stop.value.code == 2 and "--model-file" in line and "--weights canvas_good=PATH" in line


# ------------------------------------------------------------------ item 5: weights full of NaN
def test_item_5_a_nan_weights_file_on_the_command_line_is_one_line(tmp_path, capsys):
    path = tmp_path / "nan_cnn.npz"
    nan_weights("cnn", path)
    with pytest.raises(SystemExit) as stop:
        draw.main(["--models", "cnn", "--cnn", str(path)], session=lambda app: 0)
    assert stop.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    # The canvas's own wording, or the load check's (models/base.py): either names NaN or finiteness.
    assert str(path) in line and ("finite" in line or "NaN" in line) and "--cnn" in line


def test_item_5_a_nan_personal_weights_file_is_skipped_with_a_warning(user_data, capsys):
    from models.training.teaching import PersonalSet
    if not shipped_weights("cnn").is_file():
        pytest.skip("no shipped CNN weights")
    personal = PersonalSet(user_data / "personal")
    personal.folder.mkdir(parents=True)
    nan_weights("cnn", personal.weights_path("cnn"))
    models = draw.load_models(draw.make_parser().parse_args(["--models", "cnn"]))
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: ")
    assert str(personal.weights_path("cnn")) in warning[0] and "shipped" in warning[0]
    assert "finite" in warning[0] or "NaN" in warning[0]
    image = np.random.default_rng(1).random((1, 28, 28), dtype=np.float32)
    shipped = load_model(shipped_weights("cnn"), expect="cnn")
    np.testing.assert_array_equal(models["cnn"].logits(image), shipped.logits(image))


def test_item_5_the_window_survives_a_model_whose_answers_are_nan(screen, tmp_path, capsys):
    """Even with NaN weights in memory (not caught at load), P, R, F and W draw and say so."""
    broken = {}
    for name in ("cnn", "lstm"):      # NaN put in memory directly: load_model refuses such files
        broken[name] = build_model(name, rng=np.random.default_rng(0))
        state = broken[name].network.state()
        broken[name].network.load_state({key: np.full_like(value, np.nan) if value.dtype.kind == "f"
                                         else value for key, value in state.items()})
    fine = build_model("mlp", rng=np.random.default_rng(0))
    app = DrawApp({"cnn": broken["cnn"], "lstm": broken["lstm"], "mlp": fine}, screen)
    play(app, digit_events(4, draw.DEMO_BOX) + [key_event(pygame.K_p)])
    out = capsys.readouterr().out
    assert app.running and "CNN: no answer (its outputs are not finite" in out
    assert "MLP: " in out and "not finite" in app.message
    for key in (pygame.K_r, pygame.K_TAB, pygame.K_f, pygame.K_w):   # every view renders
        play(app, [key_event(key)])
        app.rows_read, app.dirty = 28, True
        app.render()
    assert app.running


# ------------------------------------------------------------------ item 6: teaching that cannot be saved
def teaching_app(screen):
    from kit.paths import personal_dir
    from models.training.teaching import Teacher
    teacher = Teacher({}, folder=personal_dir(), mnist_dir=None)
    app = DrawApp([build_model("mlp", rng=np.random.default_rng(42))], screen, teacher=teacher)
    play(app, digit_events(4, draw.DEMO_BOX) + [key_event(pygame.K_p)])
    return app


def teach_and_expect_an_error(app, capsys, expected):
    """T, 5 on ``app``: the window stays open with the drawing, the status line and stderr say
    ``expected``; returns the status line."""
    drawing = pygame.surfarray.array3d(app.canvas).copy()
    capsys.readouterr()
    play(app, [key_event(pygame.K_t), key_event(pygame.K_5)])
    err = capsys.readouterr().err
    assert app.running and not app.teaching
    np.testing.assert_array_equal(pygame.surfarray.array3d(app.canvas), drawing)   # the drawing kept
    assert expected in app.message, app.message
    assert one_error_line(err) == f"error: {app.message}"
    message = app.message
    play(app, [key_event(pygame.K_p)])                     # and the window still works
    assert app.running and app.results
    return message


def test_item_6_a_label_of_200_in_the_personal_set_is_said_not_fatal(screen, user_data, capsys):
    from nn.idx import write_idx
    folder = user_data / "personal"
    folder.mkdir(parents=True)
    images = np.zeros((2, 28, 28), np.uint8)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", np.array([3, 200], np.uint8))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    message = teach_and_expect_an_error(teaching_app(screen), capsys, "label 200")
    assert "move" in message and "aside" in message
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before   # nothing written


def test_item_6_other_damage_to_the_set_keeps_the_window_open(screen, user_data, capsys):
    folder = user_data / "personal"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"garbage")
    message = teach_and_expect_an_error(teaching_app(screen), capsys, "damaged")
    assert "aside" in message
    assert (folder / "train-images-idx3-ubyte").read_bytes() == b"garbage"


def test_item_6_personal_being_a_file_is_said_not_fatal(screen, user_data, capsys):
    user_data.mkdir(parents=True)
    (user_data / "personal").write_text("my notes")
    message = teach_and_expect_an_error(teaching_app(screen), capsys, "is a file, not a folder")
    assert "move the file aside" in message
    assert (user_data / "personal").read_text() == "my notes"


def test_item_6_a_read_only_user_folder_is_said_not_fatal(screen, user_data, capsys, monkeypatch):
    from models.training import teaching
    user_data.mkdir(parents=True)
    user_data.chmod(0o555)
    if os.geteuid() == 0:        # root writes anyway: the writer fails as it would for a person
        def refused(path, array, compress=False):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        monkeypatch.setattr(teaching, "write_idx", refused)
    try:
        message = teach_and_expect_an_error(teaching_app(screen), capsys, "not writable")
        assert "CNN_VS_LSTM_HOME" in message and str(user_data) in message
    finally:
        user_data.chmod(0o755)


@pytest.mark.parametrize("writer", ["data", "weights"])
def test_item_6_a_full_disk_is_said_not_fatal_and_the_set_is_kept(screen, user_data, capsys, monkeypatch,
                                                                  writer):
    from models.base import Model
    from models.training import teaching
    app = teaching_app(screen)
    play(app, [key_event(pygame.K_t), key_event(pygame.K_4)])            # one example taught
    folder = user_data / "personal"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    weights_before = {name: {key: value.copy() for key, value in model.network.state().items()}
                      for name, model in app.models.items()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    if writer == "data":
        monkeypatch.setattr(teaching, "write_idx", full)
    else:
        monkeypatch.setattr(Model, "save", full)
    message = teach_and_expect_an_error(app, capsys, "disk is full")
    assert "free some space" in message
    # all or nothing: the set (data and taught weights) on disk and the models in the window are
    # as before the teach that could not be saved, so the next start agrees with the window
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    for name, model in app.models.items():
        state = model.network.state()
        assert all(np.array_equal(state[key], value) for key, value in weights_before[name].items()), name


# ------------------------------------------------------------------ item 14: a DISPLAY that is no display
@pytest.mark.parametrize("display", ["localhost", "!!garbage"])
def test_item_14_a_display_that_is_not_a_display_name_is_one_line_at_once(tmp_path, display):
    weights = untrained("cnn", tmp_path)
    try:
        result = run_draw(["--models", "cnn", "--cnn", weights], {"DISPLAY": display}, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"DISPLAY={display}: draw.py waited instead of saying there is no display")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: no display available (DISPLAY={display} is not an X display name")


def test_item_14_sdl_falling_back_to_an_invisible_window_is_refused(monkeypatch):
    """Whatever the display check misses: SDL's quiet fallback to its offscreen driver."""
    from nn.errors import UserError
    monkeypatch.delenv("SDL_VIDEODRIVER")
    monkeypatch.setenv("DISPLAY", ":97")
    monkeypatch.setattr(draw, "check_display", lambda: None)
    try:
        with pytest.raises(UserError, match=r"no display available \(SDL found none .*DISPLAY=:97"):
            draw.open_window()
    finally:
        pygame.display.quit()


# ------------------------------------------------------------------ item 15: a headless demo
def test_item_15_a_headless_demo_without_a_screenshot_says_so_and_exits(tmp_path):
    weights = untrained("cnn", tmp_path)
    try:
        result = run_draw(["--models", "cnn", "--cnn", weights, "--demo", "7"],
                          {"SDL_VIDEODRIVER": "dummy", "CNN_VS_LSTM_HOME": str(tmp_path)}, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("--demo with SDL_VIDEODRIVER=dummy and no --screenshot never returned")
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "--demo with SDL_VIDEODRIVER=dummy" in line and "--screenshot PATH" in line
    assert "it needs --screenshot" in " ".join(draw.make_parser().format_help().split())


def test_item_14_a_display_check_that_does_not_return_is_cut_short(monkeypatch):
    """A host name whose lookup hangs (the socket timeout does not cover getaddrinfo): the check
    answers within its own time limit, naming the display."""
    import time
    from canvas import display
    monkeypatch.setattr(display, "_connects", lambda family, address, timeout: time.sleep(20) or True)
    started = time.perf_counter()
    problem = display.display_problem({"DISPLAY": "slow.example:0"}, timeout=0.5)
    assert time.perf_counter() - started < 5
    assert problem is not None and problem.startswith("DISPLAY=slow.example:0 but no X server answers")
