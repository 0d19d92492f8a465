"""The canvas's first start: one line while its kernels compile, the window open meanwhile, and
only the kernels the canvas runs compiled (canvas.startup, nn.compiling)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pygame
import pytest
from numba import njit

from canvas import cli as draw
from canvas import startup
from canvas.demo import digit_events, key_event
from models import build_model, load_model, shipped_weights
from nn import compiling
from nn.compiling import KernelsNotCached, cached_only, compile_notice

os.environ["SDL_VIDEODRIVER"] = "dummy"

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPILING = "compiling kernels for this machine, first start only: ~"
# Kernels only training (and teaching) runs: none of them may be compiled by starting the canvas.
TRAINING_ONLY = ("backward", "adam", "col2im", "nchw_to_gemm", "grad", "dropout", "winograd")


@pytest.fixture(autouse=True)
def own_user_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_VS_LSTM_HOME", str(tmp_path / "user-data"))


def cached_kernels(cache):
    """Names ('lstm.lstm_sequence_forward', ...) of the kernels with an index in Numba's cache."""
    return {path.name.split("-")[0] for path in Path(cache).rglob("*.nbi")}


def start_draw(cache, args):
    """draw.py headless with Numba's cache in ``cache``; standard error folded into the output,
    so the order of what it printed is kept."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    environment.update(SDL_VIDEODRIVER="dummy", NUMBA_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, str(REPO_ROOT / "draw.py"), *args], cwd=REPO_ROOT,
                          env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_first_start_says_it_compiles_only_inference_kernels_and_a_second_says_nothing(tmp_path):
    cache, shot = tmp_path / "numba-cache", tmp_path / "shot.png"
    args = ["--models", "cnn,lstm", "--demo", "3", "--screenshot", str(shot)]

    first = start_draw(cache, args)
    assert first.returncode == 0, first.stdout
    lines = first.stdout.splitlines()
    said = [line for line in lines if "compiling" in line.lower()]
    assert len(said) == 1 and said[0].startswith(COMPILING) and said[0].endswith(" s"), first.stdout
    assert int(said[0][len(COMPILING):-2]) >= 1
    # the line comes before the window's first frame (the "Keys:" line), the answers after it
    keys = next(i for i, line in enumerate(lines) if line.startswith("Keys:"))
    answer = next(i for i, line in enumerate(lines) if line.startswith("CNN: "))
    assert lines.index(said[0]) < keys < answer
    assert any(line.startswith("LSTM: ") for line in lines)
    assert any(line.startswith("Reader: ") for line in lines)      # P asks the number reader too
    compiled = cached_kernels(cache)
    assert "ctc.ctc_log_alpha" in compiled, compiled               # ... whose kernels the start compiled
    assert {"lstm.lstm_sequence_forward", "conv.im2col",
            "fused.conv3x3_single_channel_leaky_maxpool2x2"} <= compiled, compiled
    assert not [name for name in compiled if any(word in name for word in TRAINING_ONLY)], compiled

    second = start_draw(cache, args)
    assert second.returncode == 0, second.stdout
    assert "compiling" not in second.stdout.lower(), second.stdout
    assert any(line.startswith("CNN: ") for line in second.stdout.splitlines())
    assert cached_kernels(cache) == compiled          # nothing more compiled


# ------------------------------------------------------------------------- telling a compile apart
def test_cached_only_stops_at_the_first_kernel_to_compile_and_passes_compiled_ones():
    @njit
    def twice(x):
        return 2 * x

    with pytest.raises(KernelsNotCached, match="twice"):
        with cached_only():
            twice(1.0)
    assert twice(1.0) == 2.0                       # compiled now, outside the guard
    with cached_only():
        assert twice(3.0) == 6.0                   # the same signature: nothing to compile
    with pytest.raises(KernelsNotCached):
        with cached_only():
            twice(np.int8(1))                      # a new signature is a new compile


def test_compile_notice_prints_its_line_once_and_only_when_something_compiles(capsys):
    @njit
    def inner(x):
        return x + 1

    @njit
    def outer(x):
        return inner(x) * 2

    with compile_notice("compiling now") as notice:
        assert outer(1) == 4                       # outer, with inner compiled inside it
        assert inner(1.5) == 2.5                   # a second kernel compiled
    assert capsys.readouterr().err == "compiling now\n"
    assert notice.compiled == 2 and notice.printed and notice.seconds > 0
    assert [name.split(".")[-1] for name in notice.names] == ["outer", "inner"]

    with compile_notice(lambda: "never shown") as notice:
        outer(2)
    assert capsys.readouterr().err == "" and notice.compiled == 0 and not notice.printed


def test_the_work_is_dealt_to_the_least_loaded_worker():
    costs = {"cnn": 5.0, "lstm": 2.0, "gru": 2.0, "rnn": 1.2, "mlp": 0.0}
    groups = startup.split_work(costs, 2)
    assert sorted((round(seconds, 1), sorted(names)) for seconds, names in groups) == [
        (5.0, ["cnn", "mlp"]), (5.2, ["gru", "lstm", "rnn"])]
    assert startup.split_work(costs, 8) == [(5.0, ["cnn"]), (2.0, ["lstm"]), (2.0, ["gru"]),
                                            (1.2, ["rnn"]), (0.0, ["mlp"])]
    assert startup.split_work({"cnn": 5.0}, 4) == [(5.0, ["cnn"])]


class ProcStat:
    """Successive readings of /proc/stat: {CPU: (busy, all) jiffies}."""

    def __init__(self, *readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0)


@pytest.fixture
def two_cores(monkeypatch):
    """A machine of two CPUs, both this process's, whose 0.1 s sample takes no time."""
    monkeypatch.setattr(compiling, "_usable_cpu_numbers", lambda: {0, 1})
    monkeypatch.setattr(compiling.time, "sleep", lambda seconds: None)


def test_the_estimate_trusts_the_cpus_now_over_a_load_average_left_by_earlier_work(monkeypatch, two_cores):
    """Right after a long job ends, the one-minute load average still says 2.5 on 2 idle cores
    (measured: the line said ~33 - ~39 s for a start that took 13.4 s).  What the CPUs did in
    the last moment decides: idle, so every core compiles and the quiet estimate stands."""
    monkeypatch.setattr(compiling, "load_average", lambda: 2.5)
    # 0.1 s = 10 jiffies per CPU; CPU 1 busy for 1 of them: 0.1 of a core
    monkeypatch.setattr(compiling, "_cpu_times", ProcStat({0: (200, 500), 1: (300, 500)},
                                                          {0: (200, 510), 1: (301, 510)}))
    busy = compiling.busy_cores()
    assert busy == pytest.approx(0.1)
    assert compiling.idle_cores(busy) == 2
    assert compiling.estimate_seconds(10.0, processes=2, busy=busy) == 11    # (0.1 + 2) / 2 cores

    # one core kept busy by someone else: one process compiles, at full speed
    monkeypatch.setattr(compiling, "_cpu_times", ProcStat({0: (200, 500), 1: (300, 500)},
                                                          {0: (210, 510), 1: (300, 510)}))
    busy = compiling.busy_cores()
    assert busy == pytest.approx(1.0) and compiling.idle_cores(busy) == 1
    assert compiling.estimate_seconds(10.0, processes=1, busy=busy) == 10


def test_a_machine_whose_cores_are_all_busy_counts_the_waiting_too(monkeypatch, two_cores):
    """Every core busy: the sample cannot tell 2 busy from 6 wanting the CPU, the load average
    can, so the larger of the two counts."""
    monkeypatch.setattr(compiling, "load_average", lambda: 6.0)
    monkeypatch.setattr(compiling, "_cpu_times", ProcStat({0: (200, 500), 1: (300, 500)},
                                                          {0: (210, 510), 1: (310, 510)}))
    busy = compiling.busy_cores()
    assert busy == 6.0 and compiling.idle_cores(busy) == 1
    assert compiling.estimate_seconds(10.0, busy=busy) == 35              # (6 + 1) / 2 cores


def test_on_two_idle_cores_of_a_busy_server_both_compile(monkeypatch):
    """A container or a shared server lets this process run on CPUs 2 and 3 of 8; the other six
    are busy and the load average (the whole machine's) says 7.  Only this process's CPUs count."""
    monkeypatch.setattr(compiling, "_usable_cpu_numbers", lambda: {2, 3})
    monkeypatch.setattr(compiling.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(compiling, "load_average", lambda: 7.0)
    before = {cpu: (100, 500) for cpu in range(8)}
    after = {cpu: (110, 510) for cpu in range(8)}
    after[2], after[3] = (100, 510), (100, 510)
    monkeypatch.setattr(compiling, "_cpu_times", ProcStat(before, after))
    busy = compiling.busy_cores()
    assert busy == 0.0 and compiling.usable_cores() == 2 and compiling.idle_cores(busy) == 2
    assert compiling.estimate_seconds(10.0, processes=2, busy=busy) == 10
    # the same CPUs kept busy too: the sample says so, and the server's load average is not ours
    after[2], after[3] = (110, 510), (110, 510)
    monkeypatch.setattr(compiling, "_cpu_times", ProcStat(before, after))
    assert compiling.busy_cores() == 2.0


def test_without_proc_stat_the_load_average_decides(monkeypatch):
    monkeypatch.setattr(compiling, "_cpu_times", lambda: None)
    monkeypatch.setattr(compiling, "load_average", lambda: 1.5)
    assert compiling.busy_cores() == 1.5
    monkeypatch.setattr(compiling, "load_average", lambda: None)           # Windows: neither tells
    monkeypatch.setattr(compiling, "usable_cores", lambda: 4)
    assert compiling.busy_cores() is None
    assert compiling.idle_cores(None) == 4 and compiling.estimate_seconds(10.0, busy=None) == 10


def test_proc_stat_is_read_per_cpu_as_busy_and_all_jiffies(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 5 30 800 20 3 2 10 0 0\ncpu0 50 2 15 400 10 1 1 5 0 0\n"
                    "cpu1 50 3 15 400 10 2 1 5 0 0\nintr 12345\nctxt 999\n")
    monkeypatch.setattr(compiling, "PROC_STAT", str(stat))
    assert compiling._cpu_times() == {0: (74, 484), 1: (76, 486)}    # busy = all - idle - iowait
    monkeypatch.setattr(compiling, "PROC_STAT", str(tmp_path / "missing"))
    assert compiling._cpu_times() is None


def test_the_estimate_counts_each_layer_kind_once():
    rng = np.random.default_rng(0)
    assert startup.compile_seconds(build_model("cnn", rng=rng)) == (
        startup.COMPILE_SECONDS["Conv2D"] + startup.COMPILE_SECONDS["MaxPool2D"])
    assert startup.compile_seconds(build_model("lstm", rng=rng)) == startup.COMPILE_SECONDS["LSTM"]
    assert startup.compile_seconds(build_model("mlp", rng=rng)) == 0.0


def test_the_start_compiles_the_number_readers_kernels_with_the_models(monkeypatch):
    models = {"mlp": load_model("mlp")}
    sources = {"mlp": "weights/mlp.npz"}
    both = draw.with_reader(models, sources)
    assert list(both) == ["mlp", "reader"] and both["reader"].spec.kind == "sequence"
    assert sources["reader"] == shipped_weights("reader")
    read = []
    monkeypatch.setattr(startup, "read_number_image", lambda image, reader: read.append((image, reader)))
    startup.warm_up_predictions(both["reader"])        # what P calls, on a bar of ink
    assert len(read) == 1 and read[0][1] is both["reader"] and read[0][0].max() == 255
    startup.warm_up_views(both["reader"])              # no F or R view to warm
    assert len(read) == 1


# ------------------------------------------------------------------------- the app waits for them
class FakeBackground:
    """A background compile whose prediction kernels are ready after ``polls`` looks and the
    study views' after ``view_polls`` (never, for None); the window is closed at look
    ``close_at``, if given."""

    def __init__(self, polls, view_polls=None, close_at=None):
        self.polls, self.view_polls, self.close_at = polls, view_polls, close_at
        self.looks, self.stopped, self.started = 0, False, 0.0

    def done(self, views=True):
        self.looks += 1
        if self.looks == self.close_at:
            pygame.event.post(pygame.event.Event(pygame.QUIT))
        assert self.looks < 1000, "the app never stopped waiting"
        limit = self.view_polls if views else self.polls
        return limit is not None and self.looks > limit

    def wait(self, interrupted=lambda: False, interval=0.0, views=True):
        while not self.done(views):
            if interrupted():
                return False
        return True

    def remaining(self):
        return 3

    def failures(self):
        return []

    def stop(self):
        self.stopped = True


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    loaded = {}
    for name in ("cnn", "lstm"):
        build_model(name, rng=np.random.default_rng(0)).save(folder / f"{name}.npz")
        loaded[name] = load_model(folder / f"{name}.npz")
    return loaded


def test_drawing_waits_for_no_kernel_p_for_the_predictions_and_f_for_the_views(screen, models, capsys):
    background = FakeBackground(polls=5, view_polls=9)
    app = draw.StartingApp(dict(models), screen, background=background)
    assert app.message.startswith("Compiling kernels for this machine, first start only (~3 s)")
    app.post(digit_events(3, draw.DEMO_BOX))
    app.step()
    app.render()
    assert background.looks == 0 and not background.stopped      # drawing: nobody waited
    app.post([key_event(pygame.K_p)])
    app.step()
    assert background.looks == 6 and not background.stopped       # P waited for the predictions
    printed = capsys.readouterr().out
    assert printed.startswith("CNN: ") and "\nLSTM: " in printed
    assert set(app.results) == {"cnn", "lstm"} and app.predictions_loaded
    app.post([key_event(pygame.K_p)])
    app.step()
    assert background.looks == 6                                  # only the first time
    app.post([key_event(pygame.K_f)])
    app.step()
    app.render()                                                  # F shows the feature maps:
    assert background.looks == 10 and background.stopped          # it waited for the views
    assert app.background is None and app.study["features"][1] is not None


def test_closing_the_window_while_waiting_ends_the_app_and_the_workers(screen, models):
    background = FakeBackground(polls=None, close_at=3)           # would never finish
    app = draw.StartingApp(dict(models), screen, background=background)
    app.post(digit_events(3, draw.DEMO_BOX) + [key_event(pygame.K_p)])
    with pytest.raises(draw.WindowClosed):
        app.step()
    assert background.stopped and background.looks == 3 and not app.results


def test_a_later_compile_says_so_on_the_console_and_in_the_window(screen, models, capsys):
    app = draw.StartingApp(dict(models), screen)                   # a warm start: no background

    @njit
    def new_kernel(x):
        return x * 3

    with app.first_time("teaching"):
        assert new_kernel(2) == 6
    line = "compiling kernels for this machine (teaching), first time only"
    assert capsys.readouterr().err == line + "\n"
    assert app.message == "Compiling kernels for this machine (teaching), first time only ..."
    with app.first_time("teaching"):
        new_kernel(3)                                              # compiled: nothing said
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_first_training_run_says_it_compiles_in_one_line_and_a_second_says_nothing(tmp_path, mnist_dir):
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    outputs = []
    for run in ("first", "second"):
        result = subprocess.run([sys.executable, "-m", "models.train", "--model", "mlp", "--epochs", "1",
                                 "--limit", "200", "--data", str(mnist_dir), "--out", str(tmp_path / f"{run}.npz")],
                                cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        outputs.append([line for line in result.stderr.splitlines() if "compiling" in line.lower()])
    assert len(outputs[0]) == 1 and outputs[0][0].startswith(
        "compiling kernels for this machine, first run only: ~"), outputs
    assert outputs[1] == []
    compiled = cached_kernels(tmp_path / "numba-cache")
    assert {"optim.adam_update", "dropout.dropout_forward"} <= compiled, compiled
    assert not [name for name in compiled if name.split(".")[0] in ("lstm", "conv", "gru", "rnn")], compiled
