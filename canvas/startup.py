"""The canvas's start: its kernels loaded from Numba's cache, or compiled beside the window.

With a warm cache (every start after the first) the models' kernels load in well under a
second before the window opens, and nothing is said.  With a cold one - a fresh clone, a new
Numba or CPU - compiling them takes seconds per kernel (~10 s on a quiet 2-core machine, up to
a minute on a busy one), so the first start:

1. finds which models' kernels the cache lacks (:func:`cold_models`: each model's warm-up runs
   under :func:`nn.compiling.cached_only`, which loads what is cached and stops at the first
   kernel that is not, before compiling anything);
2. prints one line, ``compiling kernels for this machine, first start only: ~N s``;
3. compiles them in worker processes (:class:`BackgroundCompile`: ``python -m canvas.startup``,
   one per idle core, each given whole models) while the window opens.  Processes, not threads:
   Numba compiles one function at a time per process (its global compiler lock), so threads
   would take as long as one thread doing it all;
4. the app waits for them the first time a model is asked something (P, live prediction, the
   F / R / W views, T), then loads the kernels from the cache they filled.  Whatever else
   compiles later (the W view's and teaching's backward passes, or the views' kernels when the
   first start ended before its workers did) says so when it happens.

Only what the canvas runs is compiled: each model's forward pass (prediction), then the F and
R views' (:func:`warm_up_model`); a P waits for the predictions' kernels only.  The backward
passes and the optimizer's update (teaching, T) compile on the first T, which says so.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nn  # noqa: I001  (before NumPy: this file is also a worker's main module, see nn)
import numpy as np

from models import load_model, registry
from models.analysis.study import feature_maps, has_conv_layers, reads_rows, row_by_row
from models.reading import read_number_image
from nn.compiling import KernelsNotCached, busy_cores, cached_only, estimate_seconds, idle_cores

COMPILING_LINE = "compiling kernels for this machine, first start only: ~{seconds} s"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent      # the folder holding canvas/, nn/, ...

# Seconds one process takes to compile a layer kind's inference kernels (forward, F and R
# views), and to start and import: CPU seconds per model with an empty cache on a 2-core AMD
# EPYC VM (2026-12-06, loaded machine: cnn 11.0, lstm 4.6, gru 4.5, rnn 3.0), scaled by 0.5 to a
# quiet machine's (the whole start took ~10 s there).  Only the one line's estimate uses them.  Kinds not listed cost UNKNOWN_KIND_SECONDS unless
# they run no kernel of their own (KERNEL_FREE).
COMPILE_SECONDS = {"Conv2D": 5.0, "MaxPool2D": 0.5, "LSTM": 2.3, "GRU": 2.2, "SimpleRNN": 1.5,
                   "Bidirectional": 2.5}
KERNEL_FREE = {"Dense", "Flatten", "Dropout", "ReLU", "LeakyReLU", "BatchNorm", "Sequential"}
UNKNOWN_KIND_SECONDS = 1.0
PROCESS_SECONDS = 1.0


# What the reader's warm-up reads: a bar of ink, as a drawn "1" reaches it (any ink will do: the
# kernels' signatures do not depend on the image's size).
READER_SAMPLE = np.zeros((60, 40), np.uint8)
READER_SAMPLE[10:50, 18:22] = 255


def warm_up_predictions(model):
    """Run every kernel ``model``'s predictions use once, on a blank image (the number reader:
    on a bar of ink, through the function P calls)."""
    if model.spec.kind == "sequence":
        read_number_image(READER_SAMPLE, reader=model)
        return
    model.predict_proba(np.zeros((1,) + tuple(model.image_shape), dtype=np.float32))


def warm_up_views(model):
    """Run the kernels of the study views ``model`` has once: the feature maps (F), the
    row-by-row reading (R)."""
    if model.spec.kind == "sequence":
        return                         # the reader has no F or R view
    blank = np.zeros(tuple(model.image_shape), dtype=np.float32)
    if has_conv_layers(model):
        feature_maps(model, blank)
    if reads_rows(model):
        row_by_row(model, blank)


def warm_up_model(model):
    """Run every kernel the canvas uses for ``model`` once: predictions, then the views."""
    warm_up_predictions(model)
    warm_up_views(model)


def warm_up(models, views=True):
    """Compile, or load from Numba's cache, every kernel the canvas uses for ``models`` (the
    predictions' alone if not ``views``)."""
    for model in models.values():
        warm_up_predictions(model)
    for model in models.values() if views else ():
        warm_up_views(model)


def cold_models(models):
    """The names of the models (a dict name -> Model) whose prediction kernels Numba's cache
    lacks.  Every kernel the cache has is loaded on the way (the study views' too); nothing is
    compiled.  A model whose predictions are cached but not its views' is not cold: the F or R
    view compiles them when first shown (a first start that ended early leaves it so)."""
    cold = []
    for name, model in models.items():
        try:
            with cached_only():
                warm_up_predictions(model)
        except KernelsNotCached:
            cold.append(name)
            continue
        try:
            with cached_only():
                warm_up_views(model)
        except KernelsNotCached:
            pass
    return cold


def compile_seconds(model):
    """The estimated seconds to compile ``model``'s canvas kernels on a quiet machine."""
    kinds = {type(layer).__name__ for layer in model.network.layers}
    return sum(COMPILE_SECONDS.get(kind, 0.0 if kind in KERNEL_FREE else UNKNOWN_KIND_SECONDS)
               for kind in kinds)


def split_work(costs, workers):
    """``costs`` (name -> seconds) dealt to at most ``workers`` groups, the most costly first to
    the least loaded group.  Returns a list of (seconds, [names])."""
    groups = [[0.0, []] for _ in range(max(1, min(workers, len(costs))))]
    for name in sorted(costs, key=lambda name: -costs[name]):
        group = min(groups, key=lambda group: group[0])
        group[0] += costs[name]
        group[1].append(name)
    return [(seconds, names) for seconds, names in groups if names]


class BackgroundCompile:
    """Worker processes compiling the canvas kernels of ``models`` into Numba's on-disk cache.

    ``models``: name -> Model; ``sources``: name -> the weights file each was loaded from (the
    workers load the same files: the same architecture gives the same kernel signatures).
    ``estimate`` is the seconds they are expected to take.
    """

    def __init__(self, models, sources, workers=None):
        busy = busy_cores()                 # sampled once, for both
        groups = split_work({name: compile_seconds(model) for name, model in models.items()},
                            workers or idle_cores(busy))
        self.estimate = estimate_seconds(max(PROCESS_SECONDS + seconds for seconds, _ in groups),
                                         len(groups), busy)
        self.started = time.perf_counter()
        self.processes, self._logs = [], []
        self._folder = tempfile.mkdtemp(prefix="canvas-compile-")    # the workers' "predictions done" marks
        self._marks = []
        for number, (_, names) in enumerate(groups):
            tasks = [worker_task(name, sources[name]) for name in names]
            mark = os.path.join(self._folder, f"worker-{number}")
            log = tempfile.TemporaryFile(mode="w+")
            self._logs.append(log)
            self._marks.append(mark)
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "canvas.startup", json.dumps(tasks), mark],
                env=worker_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log))

    def done(self, views=True):
        """True when every worker has finished (or, if not ``views``, has compiled every
        prediction kernel: the study views' come after)."""
        return all(process.poll() is not None or (not views and os.path.exists(mark))
                   for process, mark in zip(self.processes, self._marks))

    def remaining(self):
        """Estimated seconds left (never below one while the workers run)."""
        return max(1, math.ceil(self.estimate - (time.perf_counter() - self.started)))

    def wait(self, interrupted=lambda: False, interval=0.05, views=True):
        """Wait for :meth:`done`; False if ``interrupted()`` turned true first."""
        while not self.done(views):
            if interrupted():
                return False
            time.sleep(interval)
        return True

    def failures(self):
        """One line per worker that failed: its exit status and last line of output."""
        lines = []
        for process, log in zip(self.processes, self._logs):
            if process.poll() not in (None, 0):
                log.seek(0)
                text = [line for line in log.read().splitlines() if line.strip()]
                lines.append(f"exit {process.returncode}" + (f": {text[-1]}" if text else ""))
        return lines

    def stop(self):
        """End the workers still running (their finished kernels stay cached: Numba writes each
        cache file whole, through a temporary file and a rename) and close the logs."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self._logs:
            log.close()
        shutil.rmtree(self._folder, ignore_errors=True)


def worker_task(name, weights):
    """What a worker needs to rebuild model ``name``: its weights file, and its model file if
    it was declared outside the kit (``--model-file``)."""
    spec = registry.get(name)
    return {"name": name, "weights": str(weights),
            "model_file": str(spec.source) if spec.from_model_file else None}


def worker_environment():
    """This process's environment, with the kit importable (draw.py may run from anywhere) and
    Numba's cache where this process has it (nn may have chosen a per-user folder)."""
    environment = dict(os.environ)
    paths = [str(PACKAGE_ROOT)] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environment


def start_kernels(models, sources, stream=None):
    """Load the canvas kernels of ``models`` from Numba's cache; if some are missing, print the
    one line and start compiling them in the background.  Returns the
    :class:`BackgroundCompile`, or None when everything was cached (nothing printed)."""
    cold = cold_models(models)
    if not cold:
        return None
    background = BackgroundCompile({name: models[name] for name in cold}, sources)
    print(COMPILING_LINE.format(seconds=background.estimate),
          file=stream or sys.stderr, flush=True)
    return background


def compile_worker(tasks, mark):
    """In a worker process: compile (into Numba's cache) the canvas kernels of each model, the
    predictions' first; then create the file ``mark``, and compile the study views'."""
    with nn.set_threads(1):
        models = {}
        for task in tasks:
            if task["model_file"]:
                registry.load_model_file(task["model_file"])
            models[task["name"]] = load_model(task["weights"], expect=task["name"])
        warm_up(models, views=False)
        Path(mark).touch()
        warm_up(models)
    return 0


if __name__ == "__main__":
    sys.exit(compile_worker(json.loads(sys.argv[1]), sys.argv[2]))
