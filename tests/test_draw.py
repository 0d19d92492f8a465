"""draw.py driven headless: real pygame mouse and key events on the dummy video driver.

Tests that need the trained models use weights/cnn.npz and weights/lstm.npz (or the files named
by $DRAW_CNN_WEIGHTS / $DRAW_LSTM_WEIGHTS) and skip when they are absent; the rest use freshly
initialised models, which are enough to exercise the app.
"""
import os

os.environ["SDL_VIDEODRIVER"] = "dummy"          # before pygame opens any display
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import nn  # noqa: E402,F401  (before numpy, as in the entry points)
import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402

import draw  # noqa: E402
from canvas.app import CANVAS_RECT, EMPTY_MESSAGE, PANEL_RECT, WINDOW_SIZE, DrawApp  # noqa: E402
from canvas.demo import digit_events, key_event, stroke_events  # noqa: E402
from models import build_model, load_model  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ANSWER = re.compile(r"^(CNN|LSTM): (\d) \((\d+\.\d) %\)$", re.M)


def shipped_weights(name):
    """weights/<name>.npz, or the file named by $DRAW_<NAME>_WEIGHTS (e.g. interim runs/ weights)."""
    path = os.environ.get(f"DRAW_{name.upper()}_WEIGHTS") or REPO_ROOT / "weights" / f"{name}.npz"
    if not os.path.isfile(path):
        pytest.skip(f"{path} not found: train it (python train_{name}.py) or set "
                    f"DRAW_{name.upper()}_WEIGHTS to a weights file")
    return str(path)


@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory):
    """Freshly initialised CNN and LSTM weights files: enough to run the app, not to read digits."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for name in ("cnn", "lstm"):
        paths[name] = str(folder / f"{name}.npz")
        build_model(name, rng=np.random.default_rng(0)).save(paths[name])
    return paths


@pytest.fixture(scope="module")
def trained_models():
    return (load_model(shipped_weights("cnn"), expect="cnn"),
            load_model(shipped_weights("lstm"), expect="lstm"))


@pytest.fixture(scope="module")
def untrained_models(untrained_weights):
    return load_model(untrained_weights["cnn"]), load_model(untrained_weights["lstm"])


@pytest.fixture()
def screen():
    pygame.display.init()
    pygame.font.init()
    surface = pygame.display.set_mode(WINDOW_SIZE)
    pygame.event.clear()
    yield surface
    pygame.display.quit()


@pytest.fixture()
def app(screen, untrained_models, tmp_path):
    return DrawApp(*untrained_models, screen, screenshot_path=tmp_path / "shot.png")


@pytest.fixture()
def trained_app(screen, trained_models):
    return DrawApp(*trained_models, screen)


def play(app, events):
    """Post ``events`` to pygame's queue, let the app take them, and draw the window."""
    app.post(events)
    app.step()
    app.render()


def answers(text):
    """{'CNN': (digit, percent), 'LSTM': ...} from what a P press printed."""
    return {label: (int(digit), float(percent)) for label, digit, percent in ANSWER.findall(text)}


def trace_events(digit, left, top, scale):
    """Strokes over an MNIST digit enlarged ``scale`` times at (left, top) on the canvas: one
    horizontal stroke along every run of bright pixels in every row, as a person colouring it in
    would draw them."""
    strokes = []
    for row in range(28):
        bright = np.flatnonzero(digit[row] > 0.35)
        if bright.size == 0:
            continue
        runs = np.split(bright, np.flatnonzero(np.diff(bright) > 1) + 1)
        y = CANVAS_RECT.y + top + (row + 0.5) * scale
        for run in runs:
            strokes.append([(CANVAS_RECT.x + left + (run[0] + 0.5) * scale, y),
                            (CANVAS_RECT.x + left + (run[-1] + 0.5) * scale, y)])
    return stroke_events(strokes, None)


# ------------------------------------------------------------------------- recognising drawings
def test_mnist_digits_traced_with_the_mouse_are_recognised(trained_app, mnist_dir, capsys):
    from kit.mnist import load_mnist_float
    images, labels = load_mnist_float(mnist_dir, "test")
    rng = np.random.default_rng(7)
    chosen = [int(np.flatnonzero(labels == d)[k]) for d in range(10) for k in (0, 1)]
    correct = {"CNN": 0, "LSTM": 0}
    for index in chosen:
        scale = int(rng.integers(11, 15))    # 11-14 px per pixel: the 15 px brush ~ one pixel
        left, top = (int(v) for v in rng.integers(0, 400 - 28 * scale + 1, size=2))
        play(trained_app, trace_events(images[index], left, top, scale) + [key_event(pygame.K_p)])
        said = answers(capsys.readouterr().out)
        assert set(said) == {"CNN", "LSTM"}
        for label, (digit, percent) in said.items():
            correct[label] += digit == labels[index]
            assert 10.0 <= percent <= 100.0
        play(trained_app, [key_event(pygame.K_c)])
    assert correct["CNN"] == len(chosen), correct
    assert correct["LSTM"] >= len(chosen) - 1, correct


@pytest.mark.parametrize("digit", [1, 7])
def test_a_hand_drawn_1_and_7_are_recognised(trained_app, capsys, digit):
    box = pygame.Rect(CANVAS_RECT.x + 90, CANVAS_RECT.y + 40, 220, 320)
    play(trained_app, digit_events(digit, box) + [key_event(pygame.K_p)])
    said = answers(capsys.readouterr().out)
    assert said["CNN"][0] == digit and said["LSTM"][0] == digit, said


def test_the_built_in_demo_digits_are_recognised_large_and_small(trained_app, capsys):
    """Pen strokes of every digit, 330 px and 150 px tall: with the 15 px brush the first gives
    strokes about 1 px thick in the 28 x 28 image, the second about 2 px, like MNIST."""
    small = pygame.Rect(CANVAS_RECT.x + 200, CANVAS_RECT.y + 30, 100, 150)
    wrong = {"CNN": [], "LSTM": []}
    for box in (draw.DEMO_BOX, small):
        for digit in range(10):
            play(trained_app, digit_events(digit, box) + [key_event(pygame.K_p)])
            for label, (said, _) in answers(capsys.readouterr().out).items():
                if said != digit:
                    wrong[label].append((box.height, digit, said))
            play(trained_app, [key_event(pygame.K_c)])
    assert not wrong["CNN"] and len(wrong["LSTM"]) <= 1, wrong


# ------------------------------------------------------------------------- drawing, keys, views
def test_strokes_are_smooth_and_about_15_px_thick(app):
    # One motion event 300 px from the button press: the stroke between them has no gaps.
    start, end = (CANVAS_RECT.x + 50, CANVAS_RECT.y + 60), (CANVAS_RECT.x + 350, CANVAS_RECT.y + 340)
    play(app, [pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=start, button=1),
               pygame.event.Event(pygame.MOUSEMOTION, pos=end, buttons=(1, 0, 0), rel=(300, 280)),
               pygame.event.Event(pygame.MOUSEBUTTONUP, pos=end, button=1)])
    ink = app.canvas_array()[:, :, 0] > 127                      # (row, column)
    for t in np.linspace(0, 1, 200):
        x, y = 50 + 300 * t, 60 + 280 * t
        assert ink[int(round(y)), int(round(x))]
    horizontal_run = ink[200].sum()                             # across the diagonal at row 200
    thickness = horizontal_run * np.sin(np.arctan2(280, 300))  # perpendicular width
    assert 13 <= thickness <= 17
    # Round ends: the ink reaches 7 px beyond the start point, against the stroke's direction.
    assert ink[60 - 5, 50 - 5] and not ink[60 - 7, 50 - 7]


def test_drawing_follows_rows_and_columns(app):
    """A horizontal stroke stays horizontal in what the models see (pygame's (x, y) arrays are
    transposed before preprocessing)."""
    y = CANVAS_RECT.y + 200
    play(app, stroke_events([[(CANVAS_RECT.x + 40, y), (CANVAS_RECT.x + 360, y)]], None)
         + [key_event(pygame.K_p)])
    assert app.image is not None
    rows = np.flatnonzero(app.image.max(axis=1) > 0)
    columns = np.flatnonzero(app.image.max(axis=0) > 0)
    assert len(columns) == 20 and len(rows) <= 2


def test_pressing_outside_the_box_draws_nothing(app):
    outside = (CANVAS_RECT.right + 30, CANVAS_RECT.y + 100)
    play(app, [pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=outside, button=1),
               pygame.event.Event(pygame.MOUSEMOTION, pos=(outside[0] + 40, outside[1]),
                                  buttons=(1, 0, 0), rel=(40, 0)),
               pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=CANVAS_RECT.center, button=3)])
    assert not app.canvas_array().any()


def test_c_clears_the_canvas(app):
    play(app, digit_events(4, draw.DEMO_BOX))
    assert app.canvas_array().any()
    play(app, [key_event(pygame.K_c)])
    assert not app.canvas_array().any()
    assert app.image is None and app.results == {}


def test_p_on_an_empty_canvas_says_so_instead_of_predicting(app, capsys):
    play(app, [key_event(pygame.K_p)])
    assert capsys.readouterr().out.strip() == EMPTY_MESSAGE
    assert app.results == {} and app.message == EMPTY_MESSAGE


def test_p_prints_both_answers_and_shows_them(app, capsys):
    play(app, digit_events(3, draw.DEMO_BOX) + [key_event(pygame.K_p)])
    said = answers(capsys.readouterr().out)
    assert set(said) == {"CNN", "LSTM"}
    for label, probabilities in app.results.items():
        assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-5
        assert said[label][0] == int(np.argmax(probabilities))
    # The 28 x 28 input is shown enlarged at the top left of the panel.
    shown = pygame.surfarray.array3d(app.screen)[PANEL_RECT.x + 1:PANEL_RECT.x + 139,
                                                 PANEL_RECT.y + 23:PANEL_RECT.y + 161]
    assert shown.max() > 200


@pytest.mark.parametrize("quit_event", [key_event(pygame.K_q), key_event(pygame.K_ESCAPE),
                                        pygame.event.Event(pygame.QUIT)])
def test_q_esc_and_closing_the_window_end_the_loop(app, quit_event):
    app.post([quit_event])
    draw.run(app, fps=1000)                                     # returns: the loop ended
    assert not app.running


def test_the_feature_map_view_renders_and_toggles(app):
    play(app, digit_events(8, draw.DEMO_BOX) + [key_event(pygame.K_f)])
    assert app.view == "features"
    maps = app.study_data("features")
    assert [m.shape for _, m in maps] == [(32, 28, 28), (64, 14, 14), (128, 7, 7)]
    panel = pygame.surfarray.array3d(app.screen)[PANEL_RECT.left:PANEL_RECT.right,
                                                 PANEL_RECT.top + 40:PANEL_RECT.bottom]
    assert (panel.max(axis=2) > 100).sum() > 1000                # bright tiles were drawn
    play(app, [key_event(pygame.K_f)])
    assert app.view == "predictions"
    play(app, [key_event(pygame.K_f), key_event(pygame.K_ESCAPE)])
    assert app.view == "predictions" and app.running


def test_the_lstm_row_view_renders_animates_and_steps(app):
    play(app, digit_events(2, draw.DEMO_BOX) + [key_event(pygame.K_r)])
    assert app.view == "rows" and app.animating
    rows = app.study_data("rows")
    assert rows.shape == (28, 10)
    np.testing.assert_allclose(rows[-1], app.results["LSTM"], atol=1e-5)   # row 28 = the answer
    for _ in range(40):
        app.last_tick = -1.0                                     # let the animation advance
        app.step()
        app.render()
    assert app.rows_read == 28 and not app.animating
    play(app, [key_event(pygame.K_UP), key_event(pygame.K_UP)])
    assert app.rows_read == 26
    play(app, [key_event(pygame.K_r)])
    assert app.view == "predictions"


def test_study_views_of_an_empty_canvas_say_so(app):
    for key in (pygame.K_f, pygame.K_r):
        play(app, [key_event(key)])
        assert app.study_data("features" if key == pygame.K_f else "rows") is None
        play(app, [key_event(pygame.K_ESCAPE)])


def test_live_prediction_predicts_while_drawing_without_printing(app, capsys):
    play(app, [key_event(pygame.K_l)])
    assert app.live
    app.last_live = -1.0
    play(app, digit_events(1, draw.DEMO_BOX))
    assert set(app.results) == {"CNN", "LSTM"}
    assert capsys.readouterr().out == ""


def test_s_saves_a_screenshot(app, tmp_path):
    play(app, digit_events(5, draw.DEMO_BOX) + [key_event(pygame.K_p), key_event(pygame.K_s)])
    shot = pygame.image.load(str(tmp_path / "shot.png"))
    assert shot.get_size() == WINDOW_SIZE


def test_a_screenshot_that_cannot_be_written_is_reported_not_fatal(app, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    app.screenshot_path = blocker / "shot.png"                 # its folder is a file
    play(app, [key_event(pygame.K_s)])
    assert app.running and "cannot save" in app.message
    assert one_error_line(capsys.readouterr().err).startswith(f"error: {blocker / 'shot.png'}")


# ------------------------------------------------------------------------- the command line
def run_draw(args, env=None, timeout=120):
    environment = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY")}
    environment.update(env or {})
    return subprocess.run([sys.executable, str(REPO_ROOT / "draw.py"), *args], cwd=REPO_ROOT,
                          env=environment, capture_output=True, text=True, timeout=timeout)


def one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("driver", [{"SDL_VIDEODRIVER": "no-such-driver"}, {}])
def test_no_display_is_a_one_line_error(untrained_weights, driver):
    result = run_draw(["--cnn", untrained_weights["cnn"], "--lstm", untrained_weights["lstm"]], driver)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == ("error: no display available (set DISPLAY, or "
                                             "SDL_VIDEODRIVER=dummy for a headless run)")


def test_missing_weights_are_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nothing.npz"
    with pytest.raises(SystemExit) as stop:
        draw.main(["--cnn", str(missing)])
    assert stop.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(missing) in line and "train_cnn.py" in line and "--cnn" in line


def test_invalid_and_mismatched_weights_are_one_line_errors(tmp_path, untrained_weights, capsys):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a weights file")
    for argv, flag in ([["--cnn", str(garbage), "--lstm", untrained_weights["lstm"]], "--cnn"],
                       [["--cnn", untrained_weights["cnn"], "--lstm", untrained_weights["cnn"]], "--lstm"]):
        with pytest.raises(SystemExit) as stop:
            draw.main(argv)
        assert stop.value.code == 2
        assert flag in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv", [["--brush", "0"], ["--demo", "12"], ["--no-such-flag"]])
def test_bad_flags_are_one_line_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        draw.main(argv)
    assert stop.value.code == 2
    one_error_line(capsys.readouterr().err)


def test_demo_run_draws_predicts_and_saves_a_screenshot(untrained_weights, tmp_path):
    shot = tmp_path / "demo.png"
    result = run_draw(["--cnn", untrained_weights["cnn"], "--lstm", untrained_weights["lstm"],
                       "--demo", "7", "--view", "rows", "--screenshot", str(shot)],
                      {"SDL_VIDEODRIVER": "dummy"})
    assert result.returncode == 0, result.stderr
    assert "Keys:" in result.stdout and set(answers(result.stdout)) == {"CNN", "LSTM"}
    assert pygame.image.load(str(shot)).get_size() == WINDOW_SIZE
