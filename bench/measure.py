"""Measuring: which runs the workers make, in which order, and the numbers taken from them.

training      images/s of one training step (ours: nn.step.TrainingStep; PyTorch: the twin),
              interleaved: repeat R times { ours for S seconds, torch for S seconds } (the order
              alternates each repeat), then the median of each side;
inference     images/s of a batch prediction (eval mode, softmax included), interleaved alike;
latency       one image, median over many calls made in interleaved chunks;
startup       the first-call compile or Numba cache-load time: a fresh process with an empty
              NUMBA_CACHE_DIR (cold), the same again (warm), and a read-only copy of the packages
              run twice with only XDG_CACHE_HOME set (the second run must compile nothing);
memory        peak resident memory (VmHWM) of a process running training steps, per side;
sweep         training and prediction images/s at batch 16 / 64 / 256 with 1 and 2 threads
              (results: a model's "sweep" and "sweep_predict" lists; runs saved before the
              prediction cells existed have only "sweep").

Ours and torch never share a process, but their timed runs alternate, so a busy machine slows
both sides alike and the ratio stays meaningful even when the absolute numbers do not.
"""
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.worker import (REPO, BenchError, close_workers, log, run_startup,
                          start_memory_worker, start_workers)

SECTIONS = ("startup", "memory", "sweep")
SWEEP_BATCHES = (16, 64, 256)
SWEEP_THREADS = (1, 2)


class Settings:
    """How long and how often to measure; ``quick`` is a smoke test."""

    def __init__(self, quick):
        self.quick = quick
        self.train_repeats, self.train_seconds = (3, 0.5) if quick else (7, 2.0)
        self.infer_repeats, self.infer_seconds = (3, 0.25) if quick else (5, 1.0)
        # latency: chunks x calls per side, each chunk also capped at chunk_seconds
        self.latency_chunks, self.latency_calls = (4, 25) if quick else (15, 40)
        self.latency_chunk_seconds = 0.3 if quick else 2.0
        self.sweep_repeats, self.sweep_seconds = (1, 0.3) if quick else (3, 1.0)
        self.memory_steps = 3 if quick else 50
        self.matmul_size, self.matmul_repeats = 2048, (3 if quick else 7)

    def as_dict(self):
        return {k: v for k, v in vars(self).items()}


# Idle time before each timed run, so the other side's worker threads (OpenMP's and OpenBLAS's
# spin for a while after their last task) are asleep and not competing for the same two cores.
SETTLE_SECONDS = 0.3


def interleaved(workers, repeats, op, **arguments):
    """{side: [answers]}: each repeat asks every side once, the order alternating (ABBA...)."""
    sides = list(workers)
    answers = {side: [] for side in sides}
    for repeat in range(repeats):
        for side in (sides if repeat % 2 == 0 else sides[::-1]):
            time.sleep(SETTLE_SECONDS)
            answers[side].append(workers[side].request(op, **arguments))
    return answers


def throughput(answers):
    """{side: {'median': images/s, 'runs': [images/s per repeat]}}."""
    out = {}
    for side, runs in answers.items():
        rates = [run["images"] / run["seconds"] for run in runs]
        out[side] = {"median": statistics.median(rates), "runs": rates}
    return out


def measure_model(model, settings, args, peer, exports, results):
    """Training, inference, latency (and the sweep rows) of one model; fills ``results``.
    ``exports``: {model: file} the PyTorch side builds its twin from (see bench.worker)."""
    record = results["models"].setdefault(model, {})
    thread_counts = [args.threads] + [t for t in SWEEP_THREADS if t != args.threads]
    if "sweep" in args.skip:
        thread_counts = [args.threads]
    for threads in thread_counts:
        log(f"{model}: starting workers ({threads} thread{'s' * (threads > 1)})")
        workers = start_workers(model, threads, peer, exports)
        try:
            if threads == args.threads:
                record["flops_per_image"] = workers["ours"].info["flops"]
                for worker in workers.values():
                    results["versions"].update(
                        (k, v) for k, v in worker.info["versions"].items() if v is not None)
                if "matmul" not in results:
                    log(f"float32 matmul rate, {args.threads} threads")
                    results["matmul"] = {side: worker.request(
                        "matmul", size=settings.matmul_size, repeats=settings.matmul_repeats)
                        for side, worker in workers.items()}
                log(f"{model}: training, {settings.train_repeats} x {settings.train_seconds} s per side")
                record["train"] = throughput(interleaved(
                    workers, settings.train_repeats, "train", batch=args.batch,
                    seconds=settings.train_seconds))
                log(f"{model}: batch inference")
                record["infer"] = throughput(interleaved(
                    workers, settings.infer_repeats, "infer", batch=args.batch,
                    seconds=settings.infer_seconds))
                log(f"{model}: single-image latency")
                answers = interleaved(workers, settings.latency_chunks, "latency",
                                      calls=settings.latency_calls,
                                      seconds=settings.latency_chunk_seconds)
                record["latency"] = {side: {"median": statistics.median(
                    [t for chunk in chunks for t in chunk["seconds"]]),
                    "calls": sum(len(chunk["seconds"]) for chunk in chunks)}
                    for side, chunks in answers.items()}
            if "sweep" not in args.skip:
                for batch in SWEEP_BATCHES:
                    for kind, key, op in (("training", "sweep", "train"),
                                          ("prediction", "sweep_predict", "infer")):
                        if threads == args.threads and batch == args.batch:
                            # the main measurement is this point, only longer: reuse it
                            record.setdefault(key, []).append(
                                {"batch": batch, "threads": threads, "from": kind, **record[op]})
                            continue
                        log(f"{model}: sweep, {kind}, batch {batch}, "
                            f"{threads} thread{'s' * (threads > 1)}")
                        rates = throughput(interleaved(workers, settings.sweep_repeats, op,
                                                       batch=batch, seconds=settings.sweep_seconds))
                        record.setdefault(key, []).append({"batch": batch, "threads": threads, **rates})
        finally:
            close_workers(workers)


# --- startup: compile / cache-load time ---

def _make_read_only(root, writable=False):
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755 if writable else 0o555)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644 if writable else 0o444)


def _count_files(directory):
    return sum(len(files) for _, _, files in os.walk(directory))


def read_only_check(models, threads):
    """Run a read-only copy of nn/ and models/ twice; the second run must compile nothing.

    Permission bits do not stop root, so as root the copy is also bind-mounted read-only in a
    private mount namespace of the child (``unshare -m``); the host's mounts are untouched.
    """
    temp = Path(tempfile.mkdtemp(prefix="bench-readonly-"))
    root, xdg = temp / "install", temp / "xdg"
    try:
        for package in ("nn", "models"):
            shutil.copytree(REPO / package, root / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        xdg.mkdir()
        _make_read_only(root)
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env["XDG_CACHE_HOME"] = str(xdg)
        wrap, method = (), "chmod a-w"
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("unshare"):
            wrap = ("unshare", "-m", "sh", "-c",
                    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"',
                    str(root))
            method = "chmod a-w + read-only bind mount (running as root)"
        try:
            runs = [run_startup(root, env, models, threads, wrap) for _ in range(2)]
        except BenchError:
            if not wrap:
                raise
            wrap, method = (), "chmod a-w only (could not mount read-only as root)"
            runs = [run_startup(root, env, models, threads) for _ in range(2)]
        first, second = runs
        from_copy = all(str(root) in run["nn_file"] for run in runs)
        cache_in_xdg = all((run["numba_cache_dir"] or "").startswith(str(xdg)) for run in runs)
        read_only = not any(run["package_writable"] for run in runs)
        cache_files = _count_files(xdg)
        if cache_in_xdg:
            where = "nn's user cache dir, $XDG_CACHE_HOME/cnn-vs-lstm-numpy/numba"
        elif cache_files:
            where = "Numba's own user-wide cache under $XDG_CACHE_HOME"
        else:
            where = "nowhere under $XDG_CACHE_HOME"
        if not from_copy:
            verdict = "inconclusive (imported the wrong nn)"
        elif not read_only:
            verdict = "inconclusive (the copy was writable)"
        elif first["compiled"] > 0 and second["compiled"] == 0:
            verdict = "ok"
        else:
            verdict = "FAILED"
        return {"method": method, "runs": runs, "cache_files": cache_files, "cache_location": where,
                "cache_in_nn_user_dir": cache_in_xdg, "package_read_only": read_only,
                "verdict": verdict}
    finally:
        _make_read_only(root, writable=True)
        shutil.rmtree(temp, ignore_errors=True)


def measure_startup(settings, args, results):
    models = ",".join(args.models)
    startup = results["startup"] = {}
    if not settings.quick:
        with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            log("startup: cold Numba cache")
            startup["cold"] = run_startup(REPO, env, models, args.threads)
            log("startup: warm Numba cache")
            startup["warm"] = run_startup(REPO, env, models, args.threads)
    log("startup: read-only install, two runs")
    check = startup["read_only"] = read_only_check(models, args.threads)
    if settings.quick:   # the read-only runs are a cold and a warm start too: save ~10 s
        startup["cold"], startup["warm"] = check["runs"]
        startup["cold_warm_from"] = "read-only install runs (--quick)"


# --- memory ---

def measure_memory(settings, args, peer, exports, results):
    log(f"memory: {settings.memory_steps} training steps per process, all at once")
    sides = ["ours"] + (["torch"] if peer["available"] else [])
    processes = {}
    for model in args.models:
        for side in sides:
            processes[model, side] = start_memory_worker(side, model, args.threads, args.batch,
                                                         settings.memory_steps, exports)
    try:
        for (model, side), process in processes.items():
            out, err = process.communicate()
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if process.returncode != 0 or not lines:
                raise BenchError(f"memory worker {side} {model} failed ({process.returncode}): "
                                 f"{' | '.join(err.strip().splitlines()[-4:])}")
            memory = results["models"].setdefault(model, {}).setdefault("memory", {})
            memory[side] = json.loads(lines[-1])
    finally:
        for process in processes.values():   # only left running if another one failed
            if process.poll() is None:
                process.kill()
                process.wait()
