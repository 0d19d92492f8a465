"""The benchmark's report: the results dict (also written as JSON) as aligned text tables.

``results`` is what bench.py saves with ``--json`` (bench/summarize.py reads the same format):
settings, batch, threads, machine, load_average, peer, versions, matmul, startup, wall_seconds,
and per model flops_per_image, train, infer, latency, sweep (training), sweep_predict (prediction;
not in runs saved before it existed) and memory, each side's numbers under "ours" and "torch".
"""
import json
import os
import statistics
from pathlib import Path


def spread(result):
    """The larger max/min over the repeats of either side: how noisy the medians are."""
    runs = [side["runs"] for side in result.values() if isinstance(side, dict) and side.get("runs")]
    return max(max(r) / min(r) for r in runs) if runs else None


def ratio(result, key="median"):
    if "ours" in result and "torch" in result and result["torch"][key]:
        return result["ours"][key] / result["torch"][key]
    return None


def table(header, rows, left=1):
    """Aligned text table: the first ``left`` columns left-aligned, the others right-aligned."""
    cells = [list(map(str, header))] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(parts).rstrip())
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(value, digits=0, suffix=""):
    if value is None:
        return None
    return f"{value:,.{digits}f}{suffix}"


def _side(record, kind, side, key="median"):
    return record.get(kind, {}).get(side, {}).get(key)


def report(results, args, settings):
    peer = results["peer"]
    out = []
    versions = results["versions"]
    load = results["load_average"]
    machine = results["machine"]
    layer = versions.get("numba_threading_layer")
    out.append(f"bench: {machine['cpus']} CPUs ({machine['cpu_model']}), "
               f"Python {versions.get('python')}, NumPy {versions.get('numpy')}, "
               f"Numba {versions.get('numba')}{f' ({layer} threading layer)' if layer else ''}, "
               + (f"PyTorch {versions.get('torch')}" if peer["available"] else "PyTorch: missing"))
    out.append(f"batch {args.batch}, {args.threads} threads, Adam lr 1e-3, random images"
               f"{'; --quick: short runs, rough numbers' if settings.quick else ''}")
    busy = max(load.values()) >= machine["cpus"]
    out.append(f"load average {load['start']:.1f} at start, {load['end']:.1f} at end on "
               f"{machine['cpus']} CPUs" + ("  (busy machine: absolute numbers are noisy, "
                                            "ratios less so)" if busy else ""))
    if not peer["available"]:
        out.append(f"PyTorch peer missing ({peer['reason']}): measuring ours only")
    matmul = results.get("matmul", {})
    numpy_rate = statistics.median(matmul["ours"]["gflops"]) if "ours" in matmul else None
    if matmul:
        parts = [f"NumPy (BLAS) {numpy_rate:.1f}"]
        if "torch" in matmul:
            parts.append(f"PyTorch {statistics.median(matmul['torch']['gflops']):.1f}")
        out.append(f"float32 matmul {settings.matmul_size}x{settings.matmul_size}, {args.threads} "
                   f"threads: {', '.join(parts)} GFLOP/s (median of {settings.matmul_repeats})")

    models = results["models"]
    rows = []
    for name, record in models.items():
        if "train" not in record:
            continue
        r = ratio(record["train"])
        rows.append([name, fmt(_side(record, "train", "ours")), fmt(_side(record, "train", "torch")),
                     fmt(r, 2), None if r is None else ("met" if r >= 1 else "missed"),
                     fmt(spread(record["train"]), 2, "x")])
    if rows:
        out.append(f"\ntraining images/s (forward + backward + Adam, dropout on; median of "
                   f"{settings.train_repeats} x {settings.train_seconds} s per side, interleaved)")
        out.append(table(["model", "ours", "torch", "ours/torch", "bar >= 1", "max/min"], rows))
        out.append("  max/min: fastest over slowest repeat of the noisier side")
        if args.threads > 1 and any(f"batch {args.batch}" in point.split(" ", 1)[1]
                                    for point in oversubscribed(models)):
            out.append(f"  warning: at {args.threads} threads both sides ran at under half their "
                       f"1-thread speed - the CPUs are oversubscribed; see the last table")

    rows = []
    for name, record in models.items():
        if "infer" not in record:
            continue
        lat = record["latency"]
        ours_ms = lat["ours"]["median"] * 1e3
        torch_ms = lat["torch"]["median"] * 1e3 if "torch" in lat else None
        r_lat = ours_ms / torch_ms if torch_ms else None
        rows.append([name, fmt(_side(record, "infer", "ours")), fmt(_side(record, "infer", "torch")),
                     fmt(ratio(record["infer"]), 2), fmt(ours_ms, 3), fmt(torch_ms, 3),
                     fmt(r_lat, 2), None if r_lat is None else ("met" if r_lat <= 1 else "missed")])
    if rows:
        calls = min(side["calls"] for record in models.values()
                    for side in record.get("latency", {}).values())
        out.append(f"\nprediction: batch-{args.batch} images/s (eval, softmax; median of "
                   f"{settings.infer_repeats} x {settings.infer_seconds} s) and one-image latency "
                   f"(median of >= {calls} calls per side, interleaved)")
        out.append(table(["model", "ours img/s", "torch img/s", "ours/torch", "ours ms",
                          "torch ms", "ours/torch", "bar <= 1"], rows))

    rows = []
    for name, record in models.items():
        flops = record.get("flops_per_image")
        if not flops or "train" not in record:
            continue
        kinds = (("train b%d" % args.batch, "train", 3), ("infer b%d" % args.batch, "infer", 1))
        for label, kind, factor in kinds:
            ours = _side(record, kind, "ours")
            torch = _side(record, kind, "torch")
            g_ours = factor * flops * ours / 1e9
            g_torch = factor * flops * torch / 1e9 if torch else None
            rows.append([name, label, fmt(flops / 1e6, 2), fmt(g_ours, 2), fmt(g_torch, 2),
                         fmt(100 * g_ours / numpy_rate, 1, "%") if numpy_rate else None,
                         fmt(100 * g_torch / numpy_rate, 1, "%") if numpy_rate and g_torch else None])
        lat = record["latency"]
        g_ours = flops / lat["ours"]["median"] / 1e9
        g_torch = flops / lat["torch"]["median"] / 1e9 if "torch" in lat else None
        rows.append([name, "1 image", fmt(flops / 1e6, 2), fmt(g_ours, 2), fmt(g_torch, 2),
                     fmt(100 * g_ours / numpy_rate, 1, "%") if numpy_rate else None,
                     fmt(100 * g_torch / numpy_rate, 1, "%") if numpy_rate and g_torch else None])
    if rows:
        out.append("\nachieved GFLOP/s (training counts 3 x the forward FLOPs), and as a share of "
                   "the NumPy matmul rate")
        out.append(table(["model", "run", "MFLOP/img", "ours", "torch", "ours %mm", "torch %mm"],
                         rows, left=2))

    startup = results.get("startup")
    if startup:
        rows = []
        for label, key in (("cold cache", "cold"), ("warm cache", "warm")):
            run = startup.get(key)
            if run:
                rows.append([label, fmt(run["process_s"], 2), fmt(run["imports_s"], 2),
                             fmt(run["warmup_s"], 2), run["compiled"], run["cache_hits"],
                             sum(run["compiled_after_warmup"].values())])
        source = startup.get("cold_warm_from", "a fresh NUMBA_CACHE_DIR, then the same dir again")
        out.append(f"\nstartup of {', '.join(args.models)} (warm-up = one training step + one "
                   f"prediction per model; {source})")
        out.append(table(["run", "process s", "imports s", "warm-up s", "compiled", "cache hits",
                          "compiled later"], rows))
        check = startup["read_only"]
        first, second = check["runs"]
        out.append(f"  read-only install ({check['method']}; NUMBA_CACHE_DIR unset, XDG_CACHE_HOME "
                   f"a temp dir): {check['verdict']}")
        out.append(f"    run 1 compiled {first['compiled']} kernel signatures in {first['warmup_s']:.2f} s, "
                   f"run 2 compiled {second['compiled']} in {second['warmup_s']:.2f} s; cached in "
                   f"{check['cache_location']} ({check['cache_files']} files)")

    rows = []
    for name, record in models.items():
        memory = record.get("memory")
        if not memory:
            continue
        ours, torch = memory["ours"], memory.get("torch")
        rows.append([name, fmt(ours["setup_mb"]), fmt(ours["peak_mb"]),
                     fmt(torch["setup_mb"]) if torch else None, fmt(torch["peak_mb"]) if torch else None,
                     fmt(ours["peak_mb"] / torch["peak_mb"], 2) if torch else None])
    if rows:
        out.append(f"\nmemory, MB (resident before training, and peak over {settings.memory_steps} "
                   f"steps of batch {args.batch}; one process per row and side)")
        out.append(table(["model", "ours before", "ours peak", "torch before", "torch peak",
                          "peak ours/torch"], rows))

    out.extend(sweep_table(models, "sweep", "training", settings))
    out.extend(sweep_table(models, "sweep_predict", "prediction", settings))
    return "\n".join(out)


def sweep_table(models, key, kind, settings):
    """The lines of one sweep's table (``key``: "sweep" for training, "sweep_predict" for
    prediction), with the oversubscription note; none if no model has that sweep."""
    rows = []
    for name, record in models.items():
        for point in sorted(record.get(key, []), key=lambda p: (p["threads"], p["batch"])):
            rows.append([name, point["threads"], point["batch"] if "from" not in point
                         else f"{point['batch']}*", fmt(point["ours"]["median"]),
                         fmt(point.get("torch", {}).get("median")), fmt(ratio(point), 2),
                         fmt(spread(point), 2, "x") if settings.sweep_repeats > 1 else None])
    if not rows:
        return []
    out = [f"\n{kind} images/s by threads and batch size (median of {settings.sweep_repeats} x "
           f"{settings.sweep_seconds} s per side, interleaved)",
           table(["model", "threads", "batch", "ours", "torch", "ours/torch", "max/min"], rows,
                 left=1),
           f"  * the {kind} measurement above"]
    collapsed = oversubscribed(models, key)
    if collapsed:
        out.append(f"  note: more threads more than halved both sides' speed ({', '.join(collapsed)}):")
        out.append("  the CPUs were oversubscribed (other processes held cores) and threads waited on "
                   "each other; trust the 1-thread rows")
    return out


def oversubscribed(models, key="sweep"):
    """'model batch B' for every point of the sweep ``key`` where more threads more than halved
    both sides' speed.

    On a machine whose cores are taken by other processes a multi-threaded step waits for a
    descheduled thread at every barrier, and throughput collapses; that is not the code's speed.
    """
    found = []
    for name, record in models.items():
        points = {(p["threads"], p["batch"]): p for p in record.get(key, [])}
        for (threads, batch), point in sorted(points.items()):
            single = points.get((1, batch))
            if threads == 1 or single is None:
                continue
            sides = [side for side in ("ours", "torch") if side in point and side in single]
            if sides and all(point[side]["median"] < 0.5 * single[side]["median"] for side in sides):
                found.append(f"{name} batch {batch}")
    return found


def write_json(results, path):
    """Write ``results`` to ``path`` through a temporary file, so a reader never sees half of it."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(temporary, path)
