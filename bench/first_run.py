"""Training's first run on a machine: the line it prints against the compiling it announces.

    python bench/first_run.py [--runs 3] [--models mlp,rnn,gru,lstm,cnn] [--data DIR]

Each run starts ``python -m models.train --model NAME`` (one epoch of 200 images) with an empty
Numba cache of its own (NUMBA_CACHE_DIR in a temporary folder), as a fresh clone's first run
does, and reads its standard error as it comes: the estimate in ``compiling kernels for this
machine, first run only: ~N s``, and the seconds from that line to the next one (the model's
"parameters" line, printed once every kernel is compiled).  The process is stopped there.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from nn.compiling import load_average

REPO = Path(__file__).resolve().parent.parent
ESTIMATE = re.compile(r"first run only: ~(\d+) s")
MODELS = ("mlp", "rnn", "gru", "lstm", "cnn")


def first_run(model, data, timeout=600):
    """(the estimate printed, the seconds it announced) for one first run of ``model``."""
    folder = tempfile.mkdtemp(prefix="first-run-")
    environment = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "numba"))
    command = [sys.executable, "-m", "models.train", "--model", model, "--epochs", "1",
               "--limit", "200", "--out", os.path.join(folder, "weights.npz")]
    if data:
        command += ["--data", str(data)]
    process = subprocess.Popen(command, cwd=REPO, env=environment, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    estimate = said_at = None
    deadline = threading.Timer(timeout, process.kill)      # a silent hang ends the reading too
    deadline.start()
    try:
        for line in process.stderr:
            found = ESTIMATE.search(line)
            if found:
                estimate, said_at = int(found.group(1)), time.perf_counter()
            elif said_at is not None and "parameters" in line:
                return estimate, time.perf_counter() - said_at
        raise SystemExit(f"first_run.py: {model}: no compiling line and no parameters line "
                         f"after it (exit {process.wait()})")
    finally:
        deadline.cancel()
        process.kill()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="first runs per model")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    parser.add_argument("--data", help="the MNIST folder (default: the trainer's, or $MNIST_DIR)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    data = args.data or os.environ.get("MNIST_DIR")
    models = [name for name in args.models.split(",") if name]
    results = {name: [] for name in models}
    for run in range(args.runs):
        for name in models:
            estimate, seconds = first_run(name, data)
            results[name].append((estimate, seconds))
            print(f"run {run + 1}, {name}: the line said ~{estimate} s, compiling took {seconds:.1f} s",
                  flush=True)
    load = load_average()
    print(f"\ntraining's first run, {args.runs} run(s) per model, {os.cpu_count()} CPU(s), "
          f"load average now " + ("unknown" if load is None else f"{load:.1f}"))
    for name, pairs in results.items():
        estimates = sorted(estimate for estimate, _ in pairs)
        seconds = sorted(taken for _, taken in pairs)
        said = f"~{estimates[0]} s" if estimates[0] == estimates[-1] else \
            f"~{estimates[0]} s - ~{estimates[-1]} s"
        print(f"  {name:5}  the line {said:>13}  compiling {seconds[0]:.1f} - {seconds[-1]:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
