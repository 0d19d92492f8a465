"""Threads set at run time (nn.set_threads), after NumPy and Numba are imported, by the call and
by every command's --threads; and the one definition of each shared flag (kit.cli)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nn
from canvas import main as dispatcher
from kit.cli import CommandLineParser, add_threads_flag
from models.base import build_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
COUNTS = [1, 2] if CORES >= 2 else [1]

# NumPy, Numba and a parallel kernel first; only then the thread count, as a user's script might.
AFTER_IMPORT = r"""
import json, sys
import numpy as np
import numba
from threadpoolctl import threadpool_info
np.ones((64, 64)) @ np.ones((64, 64))
import nn
from nn.layers import Conv2D
layer = Conv2D(1, 2, rng=np.random.default_rng(0))
layer.forward(np.ones((2, 1, 8, 8), dtype=np.float32))      # Numba's pool is running
seen = {"before": nn.thread_counts()}
for count in map(int, sys.argv[2:]):
    if sys.argv[1] == "configure":
        nn.configure_threads(count)                           # the older call, kept for the trainer
    else:
        nn.set_threads(count)
    seen[count] = {"numba": numba.get_num_threads(),
                   "blas": [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]}
print(json.dumps(seen))
"""


def run_child(code, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("call", ["set", "configure"])
def test_threads_set_after_numpy_and_numba_are_imported_take_effect(call):
    order = [1, 2, 1] if CORES >= 2 else [1]
    seen = run_child(AFTER_IMPORT, call, *order)
    assert seen["before"]["numba"] >= max(order)      # nothing made Numba's pool smaller
    for count in order:
        assert seen[str(count)] == {"numba": count, "blas": [count] * len(seen[str(count)]["blas"])}
        assert seen[str(count)]["blas"], "NumPy's BLAS was not found by threadpoolctl"


@pytest.fixture()
def thread_counts_restored():
    """Commands run in this process set its thread count: give it back afterwards."""
    with nn.set_threads(nn.thread_counts()["numba"]):
        yield


def test_set_threads_as_a_block_restores_the_counts(thread_counts_restored):
    nn.set_threads(COUNTS[-1])
    before = nn.thread_counts()
    with nn.set_threads(1) as limit:
        assert limit.count == 1
        assert nn.thread_counts() == {"numba": 1, "blas": [1] * len(before["blas"])}
    assert nn.thread_counts() == before


def test_a_request_above_numbas_pool_gets_the_pool(thread_counts_restored):
    import numba
    limit = nn.set_threads(numba.config.NUMBA_NUM_THREADS + 3)
    assert limit.count == numba.config.NUMBA_NUM_THREADS == nn.thread_counts()["numba"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_thread_count_is_refused(bad):
    with pytest.raises(ValueError, match="positive integer"):
        nn.set_threads(bad)


def test_a_numpy_integer_is_a_count(thread_counts_restored):
    assert nn.set_threads(np.int64(1)).count == 1 and nn.thread_counts()["numba"] == 1


def test_none_changes_nothing(thread_counts_restored):
    before = nn.thread_counts()
    assert nn.set_threads(None).count is None
    assert nn.thread_counts() == before


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "mlp.npz"
    build_model("mlp", np.random.default_rng(0)).save(path)
    return path


def recording(function, seen):
    """``function``, noting the thread counts in effect each time it is called."""
    def wrapper(*args, **kwargs):
        seen.append(nn.thread_counts())
        return function(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("count", COUNTS)
def test_evaluate_runs_on_the_threads_its_flag_names(count, small_weights, mnist_dir, capsys, monkeypatch):
    from models.commands import evaluate
    seen = []
    monkeypatch.setattr(evaluate, "evaluate", recording(evaluate.evaluate, seen))
    before = nn.thread_counts()
    with nn.set_threads(3 - count if CORES >= 2 else 1):           # the other count before
        assert evaluate.main([str(arg) for arg in ("--weights", small_weights, "--data", mnist_dir,
                                                   "--limit", 50, "--json", "--threads", count)]) == 0
    assert json.loads(capsys.readouterr().out)["n_images"] == 50
    assert [counts["numba"] for counts in seen] == [count] and set(seen[0]["blas"]) == {count}
    assert nn.thread_counts() == before                              # given back on return


@pytest.mark.parametrize("count", COUNTS)
def test_export_runs_on_the_threads_its_flag_names(count, small_weights, tmp_path, monkeypatch):
    from models.commands import export
    seen = []
    monkeypatch.setattr(export, "load_model", recording(export.load_model, seen))
    with nn.set_threads(3 - count if CORES >= 2 else 1):
        assert export.main([str(arg) for arg in ("--weights", small_weights, "--out",
                                                 tmp_path / "mlp.safetensors", "--threads", count)]) == 0
    assert (tmp_path / "mlp.safetensors").is_file()
    assert [counts["numba"] for counts in seen] == [count] and set(seen[0]["blas"]) == {count}


def test_the_dispatcher_passes_flags_and_its_name_to_every_command(capsys):
    """Every command is a function of (argv, prog): --help names the command as typed."""
    for command in dispatcher.COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            dispatcher.main([command, "--help"])
        assert exit_.value.code == 0
        usage = capsys.readouterr().out
        prog = f"cnn-vs-lstm {command}"
        assert usage.startswith(f"usage: {prog} "), (command, usage[:200])
        if command != "data":
            assert "--threads" in usage, command
        assert "--benchmark" not in usage and "--interrupt" not in usage, command


def test_the_dispatcher_runs_export_with_threads(small_weights, tmp_path, monkeypatch, capsys):
    from models.commands import export
    seen = []
    monkeypatch.setattr(export, "load_model", recording(export.load_model, seen))
    out = tmp_path / "mlp.npz"
    assert dispatcher.main(["export", "--weights", str(small_weights), "--out", str(out),
                            "--threads", "1"]) == 0
    assert out.is_file() and seen[0]["numba"] == 1
    with pytest.raises(SystemExit) as exit_:
        dispatcher.main(["export", "--threads", "0", "--out", str(out)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: argument --threads: must be a positive integer, not 0 (see cnn-vs-lstm export --help)")


def test_shared_flags_are_defined_once():
    """The commands' --threads, --model, --model-file, --weights and --data come from kit.cli:
    same help, type and default wherever they appear."""
    from canvas.cli import make_parser as draw_parser
    from kit.data import _parser as data_parser
    from models.commands.evaluate import make_parser as evaluate_parser
    from models.commands.compare import make_parser as compare_parser
    from models.commands.export import make_parser as export_parser
    from models.commands.train import make_parser as train_parser

    def actions(parser):
        return {option: action for action in parser._actions for option in action.option_strings}

    evaluate, export, draw = actions(evaluate_parser()), actions(export_parser()), actions(draw_parser())
    reference = CommandLineParser(prog="x")
    add_threads_flag(reference)
    threads = actions(reference)["--threads"]
    train, compare = actions(train_parser()), actions(compare_parser())
    for command in (evaluate, export, train, compare):
        assert (command["--threads"].help, command["--threads"].type, command["--threads"].default) == (
            threads.help, threads.type, None)
    assert draw["--threads"].type is threads.type and draw["--threads"].default == 1
    for flag in ("--model", "--model-file"):
        assert evaluate[flag].help == export[flag].help
    download = actions(data_parser()._subparsers._group_actions[0].choices["download"])
    assert download["--dir"].help == evaluate["--data"].help
    for command in (train, compare):
        assert command["--data"].help == evaluate["--data"].help
    assert train["--model-file"].type is evaluate["--model-file"].type


# A notebook: NumPy imported before anything of ours, then the trainer called from Python.  NumPy's
# OpenBLAS has then read its default spin timeout, and its spinning threads slowed the CNN's
# training ~1.6x on 2 cores (1,190-1,340 against 1,980-2,340 img/s, 2026-12-06); the trainer keeps
# that pool to one thread while it trains, so nothing spins, and restores it after.
NOTEBOOK = r"""
import json, os, sys
import numpy as np
import nn
import numba
from threadpoolctl import threadpool_info
from models.commands.train import run
from models.training.config import TrainerCallbacks

def numpy_blas_threads():
    numpy_dir = os.path.dirname(np.__file__)
    return [p["num_threads"] for p in threadpool_info()
            if p["user_api"] == "blas" and p["filepath"].startswith(numpy_dir)]

seen = {}
def on_phase(name):
    if name.startswith("step:"):
        seen.setdefault("training", numpy_blas_threads())
status = run(["--model", "mlp", "--epochs", "1", "--limit", "256", "--val-fraction", "0",
              "--quiet", "--out", sys.argv[1], "--threads", "2"],
             callbacks=TrainerCallbacks(on_phase=on_phase))
seen["status"] = status
seen["after"] = numpy_blas_threads()
print(json.dumps(seen))
"""


@pytest.mark.skipif(CORES < 2, reason="a single core has no second BLAS thread to spin")
@pytest.mark.parametrize("numpy_first", [True, False])
def test_training_from_python_keeps_numpys_spinning_blas_to_one_thread(numpy_first, mnist_dir, tmp_path):
    setup = (f"import os; os.environ['MNIST_DIR'] = {str(mnist_dir)!r}\n"
             "os.environ.pop('OPENBLAS_THREAD_TIMEOUT', None)\n" + ("" if numpy_first else "import nn\n"))
    env_code = setup + NOTEBOOK
    seen = run_child(env_code, tmp_path / "m.npz")
    assert seen["status"] == 0
    # NumPy loaded first: its pool could not get our spin timeout, so it trains on one thread;
    # loaded after nn: the timeout applies and the pool keeps the two threads asked for.
    assert seen["training"] == ([1] if numpy_first else [2])
    assert seen["after"] == [2]   # restored when the run ends


OPENMP_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
SHOW_OPENMP_SETTINGS = ("import json, os, sys; import nn; "
                        f"print(json.dumps({{k: os.environ.get(k) for k in {OPENMP_SETTINGS!r}}}))")


@pytest.mark.parametrize("users", [{}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "100"}])
def test_import_nn_gives_openmp_a_short_spin_unless_the_user_chose(users):
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_SETTINGS}
    done = subprocess.run([sys.executable, "-c", SHOW_OPENMP_SETTINGS], cwd=REPO,
                          env={**env, **users}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    if "OMP_WAIT_POLICY" in users:       # the user's policy governs every runtime: nothing added
        assert seen == {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": None, "KMP_BLOCKTIME": None}
    else:                                # ~0.1 ms of spin for GNU OpenMP, passive for LLVM/Intel's
        assert seen == {"OMP_WAIT_POLICY": None,
                        "GOMP_SPINCOUNT": users.get("GOMP_SPINCOUNT", "5000"), "KMP_BLOCKTIME": "0"}
