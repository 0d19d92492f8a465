"""Training and prediction speed of the shipped models, side by side with PyTorch CPU.

    python bench/bench.py [--json PATH] [--quick] [--models cnn,lstm] [--threads 2] [--batch 64]
                          [--skip startup,memory,sweep]

--models takes any of cnn, lstm, gru, rnn, mlp (default cnn,lstm).  What it measures (batch 64,
2 threads, Adam lr 1e-3 unless told otherwise):

training      images/s of forward + backward + optimizer step in training mode (dropout on), for
              this project ("ours": the kit's TrainingStep) and for the same model in PyTorch
              ("torch": its twin, generated from our network's configs with our initial weights),
              interleaved in one run: repeat R times { ours for S seconds, torch for S seconds }
              (the order alternates each repeat), then the median of each side and their ratio;
inference     images/s of a batch-64 prediction (eval mode, softmax included), interleaved alike;
latency       one image: ``model.predict_proba(image)`` against torch eval + no_grad + softmax,
              after warm-up, median over many calls made in interleaved chunks;
GFLOP/s       3 x forward FLOPs x images/s for training, forward FLOPs x images/s for prediction,
              next to the float32 matrix-multiply rate of this machine (2048 x 2048 ``@``);
startup       the first-call compile or Numba cache-load time: a fresh process with an empty
              NUMBA_CACHE_DIR (cold), the same again (warm), and a read-only copy of the packages
              run twice with only XDG_CACHE_HOME set (the second run must compile nothing);
memory        peak resident memory (VmHWM) of a process running 50 training steps, per side;
sweep         training and prediction images/s at batch 16 / 64 / 256 with 1 and 2 threads.

Every measurement runs in a worker subprocess (bench/worker.py) with its thread count fixed
before NumPy loads; this process only orchestrates them (bench/measure.py) and reports
(bench/report.py).  ``--quick`` shortens everything (a smoke test, under a minute).
"""
import time

_T0 = time.perf_counter()  # a startup worker's imports are timed from here

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# Run as a script, Python puts bench/ first on sys.path, where this very file would stand in
# for the bench package of its siblings: the repository's root goes there instead.
_BENCH_DIR = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _BENCH_DIR:
    sys.path[0] = str(_BENCH_DIR.parent)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402

from bench.measure import (SECTIONS, Settings, measure_memory, measure_model,  # noqa: E402
                           measure_startup)
from bench.report import report, write_json  # noqa: E402
from bench.runners import POOL  # noqa: E402
from bench.worker import MODEL_CHOICES, BenchError, export_models, log, worker_main  # noqa: E402


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test (< 1 min)")
    parser.add_argument("--models", default="cnn,lstm",
                        help=f"comma-separated, any of {', '.join(MODEL_CHOICES)} (default cnn,lstm)")
    parser.add_argument("--threads", type=int, default=2, help="threads per side (default 2)")
    parser.add_argument("--batch", type=int, default=64, help="training batch size (default 64)")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {', '.join(SECTIONS)}")
    parser.add_argument("--no-torch", action="store_true", help="measure ours only")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODEL_CHOICES]
    if not args.models or unknown:
        parser.error(f"--models: unknown model {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(MODEL_CHOICES)}")
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.skip - set(SECTIONS):
        parser.error(f"--skip: unknown section {', '.join(sorted(args.skip - set(SECTIONS)))}; "
                     f"choose from {', '.join(SECTIONS)}")
    if args.threads < 1 or args.batch < 1 or POOL % args.batch:
        parser.error(f"--threads must be >= 1 and --batch a divisor of {POOL}")
    if args.json:
        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            parser.error(f"--json: directory {parent} does not exist")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1:], _T0)
    args = parse_args(argv)
    settings = Settings(args.quick)
    if args.no_torch:
        peer = {"available": False, "reason": "--no-torch"}
    elif importlib.util.find_spec("torch") is None:
        peer = {"available": False, "reason": "torch is not installed"}
    else:
        peer = {"available": True, "reason": None}
    results = {"settings": settings.as_dict(), "batch": args.batch, "threads": args.threads,
               "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                           "platform": platform.platform()},
               "load_average": {"start": _load()}, "peer": peer, "versions": {}, "models": {}}
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-models-") as exported:
            exports = {}
            if peer["available"]:   # the PyTorch side builds its twins from these files
                log(f"exporting {', '.join(args.models)} for the PyTorch twins")
                exports = export_models(args.models, exported)
            if "startup" not in args.skip:
                measure_startup(settings, args, results)
            for model in args.models:
                measure_model(model, settings, args, peer, exports, results)
            if "memory" not in args.skip:
                measure_memory(settings, args, peer, exports, results)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    results["load_average"]["end"] = _load()
    results["wall_seconds"] = time.perf_counter() - started
    print(report(results, args, settings))
    print(f"\n({results['wall_seconds']:.0f} s in all)")
    if args.json:
        write_json(results, args.json)
        print(f"numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
