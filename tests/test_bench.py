"""The benchmark's parts without timing anything: its command line, its worker protocol, that
its PyTorch side runs the same network with the same weights as ours, and that its report and
bench/summarize.py read the saved results.json format.  (Timings themselves are not asserted:
on a shared machine they are noise; ``python bench/bench.py --quick`` is the smoke run.)
"""
import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

import models
from models import registry
from bench import bench as bench_cli
from bench import report, summarize
from bench.measure import Settings
from bench.runners import POOL, OursRunner, random_data
from bench.worker import MODEL_CHOICES, SEED, read_export


@pytest.fixture(scope="module")
def saved_results(repo_root):
    return json.loads((repo_root / "bench" / "results.json").read_text())


def test_every_shipped_model_can_be_benchmarked(repo_root):
    # The per-digit models (the number reader, kind "sequence", is benchmarked by read_numbers.py).
    model_files = {path.stem for path in (repo_root / "models").glob("*.py")
                   if "\nMODEL = ModelSpec(" in path.read_text() and 'kind="sequence"' not in path.read_text()}
    assert set(MODEL_CHOICES) == model_files == set(registry.names()) == {"cnn", "lstm", "gru", "rnn", "mlp"}
    assert bench_cli.parse_args([]).models == ["cnn", "lstm"]         # the default is kept
    assert bench_cli.parse_args(["--models", "cnn,lstm,gru,rnn,mlp"]).models == list(MODEL_CHOICES)


@pytest.mark.parametrize("argv, message", [
    (["--models", "cnn,vgg"], "unknown model vgg"),
    (["--skip", "sweep,warmup"], "unknown section warmup"),
    (["--batch", "100"], f"a divisor of {POOL}"),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_cli.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def run_worker(repo_root, *argv, stdin=None):
    return subprocess.run([sys.executable, str(repo_root / "bench" / "bench.py"), "--worker", *argv],
                          cwd=repo_root, input=stdin, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(repo_root, tmp_path_factory):
    """The files the benchmark's PyTorch side builds its twins from, written by the worker."""
    out = tmp_path_factory.mktemp("exported")
    done = run_worker(repo_root, "export", "--models", "mlp,lstm", "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(written) == ["lstm", "mlp"]
    return written


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_export_holds_our_initial_network(exported, name):
    header, state = read_export(exported[name])
    network = models.build_model(name, rng=np.random.default_rng(SEED)).network
    assert header["layers"] == network.config()["layers"]
    assert header["input_shape"] == {"mlp": [784], "lstm": [28, 28]}[name]
    assert sorted(state) == sorted(network.state())
    for key, value in network.state().items():
        np.testing.assert_array_equal(state[key], value)


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_both_sides_predict_the_same(exported, name):
    """Before training, our runner and the PyTorch runner hold the same network: the benchmark
    times the same computation on both sides.  One training step then moves both."""
    pytest.importorskip("torch", reason="PyTorch (the test extra) is not installed")
    from bench.runners import TorchRunner
    images, labels = random_data()
    ours = OursRunner(name, images, labels)
    theirs = TorchRunner(exported[name], images, labels, threads=1)
    p_ours, p_theirs = ours.predict(0, 16), theirs.predict(0, 16)
    assert p_ours.shape == p_theirs.shape == (16, 10)
    np.testing.assert_allclose(p_theirs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(p_ours, p_theirs, atol=1e-5)
    for runner in (ours, theirs):
        runner.train_step(0, 16)
    moved_ours, moved_theirs = ours.predict(0, 16), theirs.predict(0, 16)
    assert np.abs(moved_ours - p_ours).max() > 1e-4
    assert np.abs(moved_theirs - p_theirs).max() > 1e-4


def test_serve_protocol(repo_root):
    """A serve worker answers one JSON line per request, an error for a bad one, until quit."""
    requests = [{"op": "train", "batch": 16, "seconds": 0.01}, {"op": "infer", "batch": 16, "seconds": 0.01},
                {"op": "latency", "calls": 3, "seconds": 0.5}, {"op": "fly"}, {"op": "quit"}]
    stdin = "".join(json.dumps(r) + "\n" for r in requests)
    done = run_worker(repo_root, "serve", "--side", "ours", "--model", "mlp", "--threads", "1",
                      stdin=stdin)
    assert done.returncode == 0, done.stderr
    ready, train, infer, latency, bad = [json.loads(line) for line in done.stdout.splitlines()]
    assert ready["ready"] and ready["flops"] == models.build_model("mlp").flops()
    assert ready["versions"]["numpy"] == np.__version__
    assert train["images"] == 16 * train["steps"] and train["seconds"] >= 0.01
    assert infer["images"] == 16 * infer["steps"]
    assert len(latency["seconds"]) == 3 and min(latency["seconds"]) > 0
    assert "error" in bad and "fly" in bad["error"]


def test_torch_side_without_weights_reports_an_error(repo_root):
    done = run_worker(repo_root, "serve", "--side", "torch", "--model", "mlp", stdin="")
    assert done.returncode == 1
    assert "--weights" in json.loads(done.stdout.strip())["error"]


def test_report_of_the_saved_results(saved_results):
    """The report renders bench/results.json (the format is unchanged): each model's medians
    and their ratio, the sweep and the memory table."""
    results = saved_results
    settings = Settings(results["settings"]["quick"])
    args = argparse.Namespace(batch=results["batch"], threads=results["threads"],
                              models=list(results["models"]), skip=set())
    text = report.report(results, args, settings)
    for name, record in results["models"].items():
        ours, torch = record["train"]["ours"]["median"], record["train"]["torch"]["median"]
        row = next(line for line in text.splitlines() if line.split()[:1] == [name])
        assert f"{ours:,.0f}" in row and f"{torch:,.0f}" in row and f"{ours / torch:.2f}" in row
    assert "training images/s by threads and batch size" in text
    assert "memory, MB" in text and "read-only install" in text


def test_write_json_replaces_the_file_whole(tmp_path, saved_results):
    path = tmp_path / "run.json"
    path.write_text("old")
    report.write_json(saved_results, path)
    assert json.loads(path.read_text()) == saved_results
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_summarize_reads_the_saved_results(saved_results):
    rows = list(summarize.rows([saved_results, saved_results]))
    labels = [label for label, *_ in rows]
    assert "CNN training, 2 threads, batch 64" in labels and "LSTM one image, ms" in labels
    label, ours, torch, higher_is_better = next(r for r in rows if r[0] == "CNN one image, ms")
    assert ours == [1e3 * saved_results["models"]["cnn"]["latency"]["ours"]["median"]] * 2
    assert not higher_is_better


@pytest.mark.parametrize("change, message", [
    (lambda run: run["models"]["cnn"]["infer"].pop("torch"), "no PyTorch numbers"),
    (None, "not a results file"),
])
def test_summarize_refuses_an_incomplete_run_in_one_line(repo_root, tmp_path, saved_results,
                                                         change, message):
    path = tmp_path / "run.json"
    if change is None:
        path.write_text("{ half a file")
    else:
        run = json.loads(json.dumps(saved_results))
        change(run)
        path.write_text(json.dumps(run))
    done = subprocess.run([sys.executable, str(repo_root / "bench" / "summarize.py"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_summarize_without_the_sweep(saved_results):
    """A run made with --skip sweep still gives its prediction and latency rows."""
    run = json.loads(json.dumps(saved_results))
    for record in run["models"].values():
        record.pop("sweep")
    labels = [label for label, *_ in summarize.rows([run])]
    assert labels == [f"{name.upper()} {what}" for name in run["models"]
                      for what in (f"prediction, {run['threads']} threads, batch {run['batch']}",
                                   "one image, ms")]


def test_the_number_benchmark_reports_the_reader_apart_and_touching(repo_root, mnist_dir):
    """bench/segment_numbers.py (issue 19 item 4): the reader beside split-then-classify, on
    digits apart and touching (gaps 0 to -0.1 digit widths, which the split cannot part)."""
    if not (repo_root / "weights" / "reader.npz").is_file():
        pytest.skip("weights/reader.npz not shipped")
    done = subprocess.run([sys.executable, str(repo_root / "bench" / "segment_numbers.py"), "--numbers",
                           "40", "--json", "--data", str(mnist_dir)], cwd=repo_root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    apart, touching = result["apart"], result["touching"]
    assert apart["reader"] >= 0.9 and touching["reader"] >= 0.8          # reads the whole line
    assert touching["segmented"] < 0.5 and touching["cnn"] < 0.5         # the split cannot
    assert touching["advised"] > apart["advised"] and apart["reader_ms"] > 0


def _with_prediction_sweep(run, scale=1.0):
    """A copy of ``run`` given a prediction sweep: the training sweep's cells, ours times
    ``scale``, the main point marked as the prediction measurement."""
    run = json.loads(json.dumps(run))
    for record in run["models"].values():
        record["sweep_predict"] = []
        for point in record["sweep"]:
            cell = json.loads(json.dumps(point))
            cell["ours"]["median"] *= scale
            if "from" in cell:
                cell["from"] = "prediction"
            record["sweep_predict"].append(cell)
    return run


def test_summarize_gives_every_prediction_cell_of_the_sweep(saved_results):
    runs = [_with_prediction_sweep(saved_results, 2.0), _with_prediction_sweep(saved_results, 0.5)]
    table = {label: (ours, torch) for label, ours, torch, _ in summarize.rows(runs)}
    for name, record in saved_results["models"].items():
        for point in record["sweep"]:
            threads = point["threads"]
            label = (f"{name.upper()} prediction, {threads} thread{'s' * (threads > 1)}, "
                     f"batch {point['batch']}")
            ours, torch = table[label]
            assert ours == [2.0 * point["ours"]["median"], 0.5 * point["ours"]["median"]]
            assert torch == [point["torch"]["median"]] * 2
        assert f"{name.upper()} training, 1 thread, batch 16" in table
    assert len(table) == sum(2 * len(r["sweep"]) + 1 for r in saved_results["models"].values())


def test_summarize_marks_a_prediction_cell_behind(tmp_path, saved_results, capsys):
    run = _with_prediction_sweep(saved_results)
    cell = next(p for p in run["models"]["cnn"]["sweep_predict"]
                if p["threads"] == 1 and p["batch"] == 64)
    cell["ours"]["median"] = 0.9 * cell["torch"]["median"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run))
    assert summarize.main([str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    behind = [line for line in lines if "(behind)" in line]
    assert [line.split(" | ")[0] for line in behind] == ["| CNN prediction, 1 thread, batch 64"]
    assert "0.90x (behind)" in behind[0]


def test_summarize_of_old_and_new_runs_together_gives_the_main_prediction_cell(saved_results):
    """A run saved before the prediction sweep existed, beside one with it: the cell both hold."""
    runs = [saved_results, _with_prediction_sweep(saved_results, 2.0)]
    rows = {label: ours for label, ours, _, _ in summarize.rows(runs)}
    main = f"CNN prediction, {saved_results['threads']} threads, batch {saved_results['batch']}"
    assert rows[main] == [saved_results["models"]["cnn"]["infer"]["ours"]["median"]] * 2
    assert "CNN prediction, 1 thread, batch 16" not in rows


def test_report_shows_the_prediction_sweep(saved_results):
    results = _with_prediction_sweep(saved_results, 3.0)
    settings = Settings(results["settings"]["quick"])
    args = argparse.Namespace(batch=results["batch"], threads=results["threads"],
                              models=list(results["models"]), skip=set())
    text = report.report(results, args, settings)
    assert "training images/s by threads and batch size" in text
    part = text.split("prediction images/s by threads and batch size", 1)[1]
    cell = next(p for p in results["models"]["lstm"]["sweep_predict"]
                if p["threads"] == 1 and p["batch"] == 256)
    row = next(line for line in part.splitlines() if line.split()[:3] == ["lstm", "1", "256"])
    assert f"{cell['ours']['median']:,.0f}" in row and f"{cell['torch']['median']:,.0f}" in row
    assert "* the prediction measurement above" in part


def test_the_sweep_measures_training_and_prediction_at_every_point(exported, monkeypatch):
    """bench.measure on the MLP with tiny settings: training and prediction cells at every
    threads x batch point, each with both sides' rates; the main point reuses the main numbers."""
    pytest.importorskip("torch", reason="PyTorch (the test extra) is not installed")
    from bench import measure
    monkeypatch.setattr(measure, "SETTLE_SECONDS", 0.0)
    settings = Settings(quick=True)
    settings.train_repeats = settings.infer_repeats = settings.sweep_repeats = 1
    settings.train_seconds = settings.infer_seconds = settings.sweep_seconds = 0.01
    settings.latency_chunks, settings.latency_calls = 1, 3
    settings.matmul_size, settings.matmul_repeats = 64, 1
    args = argparse.Namespace(threads=2, batch=64, skip=set(), models=["mlp"])
    peer = {"available": True, "reason": None}
    results = {"models": {}, "versions": {}}
    measure.measure_model("mlp", settings, args, peer, exported, results)
    record = results["models"]["mlp"]
    grid = {(threads, batch) for threads in measure.SWEEP_THREADS for batch in measure.SWEEP_BATCHES}
    for key, main, kind in (("sweep", "train", "training"), ("sweep_predict", "infer", "prediction")):
        cells = {(p["threads"], p["batch"]): p for p in record[key]}
        assert set(cells) == grid and len(record[key]) == len(grid)
        for point in cells.values():
            for side in ("ours", "torch"):
                assert point[side]["median"] > 0 and len(point[side]["runs"]) == 1
        assert cells[2, 64]["from"] == kind and cells[2, 64]["ours"] == record[main]["ours"]
        assert all("from" not in p for where, p in cells.items() if where != (2, 64))


def test_every_timed_batch_is_whole_after_other_batch_sizes():
    """One-image calls and other batch sizes leave the pool's position anywhere: a batch that
    would run past its end starts again at 0 (it was cut short and counted whole)."""
    from bench.runners import Runner
    runner = Runner(np.zeros((POOL, 28, 28), np.float32), np.zeros(POOL, np.int64))
    for batch in (1, 64, 1, 1, 16, 256, 1, 64, 256, 16, 1, 256):
        for _ in range(POOL // batch + 3):
            start = runner.batch_start(batch)
            assert 0 <= start and start + batch <= POOL


def test_the_threads_probe_prints_every_gap_and_window(repo_root):
    done = subprocess.run([sys.executable, str(repo_root / "bench" / "threads_probe.py"),
                           "--threads", "2", "--windows", "2", "--seconds", "0.02"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    gaps = [line for line in lines if line.strip().startswith("gap")]
    assert [int(line.split()[1]) for line in gaps] == [0, 20, 50, 100, 150, 200, 300, 500]
    windows = [line.split() for line in lines[lines.index("  window   BLAS, all threads   rows split   one thread") + 1:]]
    assert [row[0] for row in windows] == ["1", "2"]
    assert all(float(value) > 0 for row in windows for value in row[1:])


def test_the_threads_probe_refuses_a_bad_flag_in_one_line(repo_root):
    done = subprocess.run([sys.executable, str(repo_root / "bench" / "threads_probe.py"),
                           "--windows", "0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("--windows must be at least 1 and --seconds positive")
    assert "Traceback" not in done.stderr


def test_the_first_run_benchmark_reads_the_trainers_line_and_its_compiling(repo_root, mnist_dir):
    """bench/first_run.py on the MLP: the estimate the trainer printed (at least the quiet
    figure for its layer kinds: only a busy machine raises it) and the seconds up to the
    parameters line, which cover every kernel the MLP's training compiles (at least a second)."""
    import re
    from nn.warmup import compile_seconds
    network = models.build_model("mlp", rng=np.random.default_rng(0)).network
    result = subprocess.run([sys.executable, "bench/first_run.py", "--runs", "1", "--models", "mlp",
                             "--data", str(mnist_dir)], cwd=repo_root, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    said = re.search(r"run 1, mlp: the line said ~(\d+) s, compiling took ([\d.]+) s", result.stdout)
    assert said, result.stdout
    assert int(said.group(1)) >= np.ceil(compile_seconds(network)) == 5
    assert float(said.group(2)) >= 1.0
    assert re.search(r"  mlp +the line +~\d+ s  compiling [\d.]+ - [\d.]+ s", result.stdout)


def test_the_first_run_benchmark_refuses_a_bad_flag_in_one_line(repo_root):
    result = subprocess.run([sys.executable, "bench/first_run.py", "--runs", "0"], cwd=repo_root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--runs must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr
