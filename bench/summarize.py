"""The range over several full runs of bench.py, as one Markdown table.

    python bench/bench.py --json run1.json      # three times, on a quiet machine
    python bench/summarize.py run1.json run2.json run3.json

Each cell gives the lowest and highest of the runs' medians; the ratio column gives the lowest
and highest of the runs' ours / PyTorch ratios (each taken within one interleaved run), and the
last column the median of those ratios.  A ratio whose range reaches below 1.0 is marked.  The
sweep gives training and prediction rows per threads x batch; runs saved before the prediction
sweep existed give its one main prediction row instead.  A run made with ``--skip sweep`` gives
no sweep rows; one without the PyTorch peer cannot be summarised (there is no ratio), and says
so in one line.
"""
import json
import statistics
import sys


def span(values, digits=0, unit=""):
    low, high = min(values), max(values)
    text = f"{low:,.{digits}f}" if round(low, digits) == round(high, digits) else \
        f"{low:,.{digits}f} - {high:,.{digits}f}"
    return text + unit


def _sweep_rows(runs, name, key, kind):
    """One row per point of the first run's sweep ``key`` ("sweep": training, "sweep_predict":
    prediction) of model ``name``; every run must hold the same points."""
    for entry in runs[0]["models"][name].get(key, []):
        batch, threads = entry["batch"], entry["threads"]
        cells = [next(e for e in run["models"][name][key]
                      if e["batch"] == batch and e["threads"] == threads) for run in runs]
        yield (f"{name.upper()} {kind}, {threads} thread{'s' * (threads > 1)}, batch {batch}",
               [c["ours"]["median"] for c in cells], [c["torch"]["median"] for c in cells], True)


def rows(runs):
    """(label, ours values, torch values, higher_is_better) for every cell bench.py measures.

    Prediction: the sweep's cells when every run has them; otherwise (a run saved before the
    prediction sweep existed, or made with --skip sweep) the one main prediction cell."""
    first = runs[0]
    for name in first["models"]:
        yield from _sweep_rows(runs, name, "sweep", "training")
        if all(run["models"][name].get("sweep_predict") for run in runs):
            yield from _sweep_rows(runs, name, "sweep_predict", "prediction")
        else:
            yield (f"{name.upper()} prediction, {first['threads']} threads, batch {first['batch']}",
                   [run["models"][name]["infer"]["ours"]["median"] for run in runs],
                   [run["models"][name]["infer"]["torch"]["median"] for run in runs], True)
        yield (f"{name.upper()} one image, ms",
               [1e3 * run["models"][name]["latency"]["ours"]["median"] for run in runs],
               [1e3 * run["models"][name]["latency"]["torch"]["median"] for run in runs], False)


class SummaryError(Exception):
    pass


def read_run(path):
    try:
        with open(path, encoding="utf-8") as file:
            run = json.load(file)
    except OSError as error:
        raise SummaryError(f"{path}: {error.strerror}") from None
    except ValueError as error:
        raise SummaryError(f"{path}: not a results file of bench.py --json ({error})") from None
    if not isinstance(run, dict) or not isinstance(run.get("models"), dict):
        raise SummaryError(f"{path}: not a results file of bench.py --json (no 'models')")
    for name, record in run["models"].items():
        for kind in ("train", "infer", "latency"):
            if "torch" not in record.get(kind, {}):
                raise SummaryError(f"{path}: {name} {kind} has no PyTorch numbers (a run with "
                                   "--no-torch, or without PyTorch): nothing to compare")
    return run


def main(paths):
    try:
        runs = [read_run(path) for path in paths]
        table = list(rows(runs))
    except SummaryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (KeyError, StopIteration) as error:
        print(f"error: the runs do not hold the same cells ({error!r} missing in one)",
              file=sys.stderr)
        return 1
    print(f"| cell ({len(runs)} runs) | ours | PyTorch | speed ratio, ours / PyTorch | median ratio |")
    print("| --- | --- | --- | --- | --- |")
    for label, ours, torch, higher_is_better in table:
        # speed ratio: > 1 means we are faster (for latency: PyTorch's time over ours)
        ratios = [o / t if higher_is_better else t / o for o, t in zip(ours, torch)]
        digits = 3 if not higher_is_better else 0
        behind = " (behind)" if min(ratios) < 1.0 else ""
        print(f"| {label} | {span(ours, digits)} | {span(torch, digits)} | "
              f"{span(ratios, 2, 'x')}{behind} | {statistics.median(ratios):.2f}x |")
    for path, run in zip(paths, runs):
        load = run["load_average"]
        matmul = statistics.median(run["matmul"]["ours"]["gflops"])
        print(f"\n{path}: load average {load['start']:.1f} at start, {load['end']:.1f} at end; "
              f"float32 2048^2 matmul {matmul:.0f} GFLOP/s; {run['wall_seconds']:.0f} s", end="")
    print()
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python bench/summarize.py RUN.json [RUN.json ...]")
    sys.exit(main(sys.argv[1:]))
