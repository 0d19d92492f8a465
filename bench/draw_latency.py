"""How fast draw.py starts and answers P, measured on the real program in a subprocess.

    python bench/draw_latency.py [--runs 5] [--presses 50] [--cnn PATH] [--lstm PATH]

Each run starts ``python draw.py --benchmark N`` with SDL_VIDEODRIVER=dummy (no window needed)
and measures, from this side:
  startup    from launching the process to draw.py printing that its first frame is on screen:
             interpreter start, imports (NumPy, Numba, pygame), loading both weights files,
             the Numba warm-up and the first render;
and inside draw.py:
  P latency  from a posted P key event to the window redrawn with both answers: event handling,
             preprocessing the 400 x 400 canvas, both models' forward passes, drawing the panel.
The first run may fill Numba's on-disk cache and is reported apart; the bar (start < 3 s with a
warm cache, P < 50 ms) is judged on the others.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_run(args):
    """(startup seconds, [P latencies in ms]) of one draw.py process."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
    command = [sys.executable, str(REPO / "draw.py"), "--benchmark", str(args.presses)]
    if args.cnn:
        command += ["--cnn", args.cnn]
    if args.lstm:
        command += ["--lstm", args.lstm]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    startup, latencies = None, None
    for line in process.stdout:
        if line.startswith("first frame") and startup is None:
            startup = time.perf_counter() - started
        elif line.startswith("{"):
            latencies = json.loads(line)["p_latency_ms"]
    error = process.stderr.read()
    if process.wait() != 0 or startup is None or latencies is None:
        sys.exit(f"error: draw.py --benchmark failed (exit {process.returncode}): {error.strip()}")
    return startup, latencies


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="draw.py processes to start")
    parser.add_argument("--presses", type=int, default=50, help="P presses timed per process")
    parser.add_argument("--cnn", help="CNN weights (default: draw.py's, weights/cnn.npz)")
    parser.add_argument("--lstm", help="LSTM weights (default: draw.py's, weights/lstm.npz)")
    args = parser.parse_args(argv)

    results = [one_run(args) for _ in range(max(2, args.runs))]
    first_startup = results[0][0]
    startups = [s for s, _ in results[1:]]
    latencies = [ms for _, run in results[1:] for ms in run]
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(f"draw.py on {os.cpu_count()} CPU(s), SDL_VIDEODRIVER=dummy, {len(results)} runs")
    print(f"startup to first frame: first run {first_startup:.2f} s; warm cache: median "
          f"{statistics.median(startups):.2f} s, max {max(startups):.2f} s  (bar: < 3 s)")
    print(f"P to answers on screen: median {statistics.median(latencies):.1f} ms, "
          f"p95 {p95:.1f} ms, max {max(latencies):.1f} ms over {len(latencies)} presses  (bar: < 50 ms)")
    ok = max(startups) < 3.0 and statistics.median(latencies) < 50.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
