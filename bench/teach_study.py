"""How well teaching works, over handwriting styles the shipped models misread and several seeds.

    python bench/teach_study.py [--styles all] [--seeds 3] [--models cnn,lstm,gru,rnn,mlp]
                                [--taught 10] [--held-out 40] [--others 4] [--test-images 10000]
                                [--data DIR] [--out docs/study/teaching]

A cell is one scripted person (tests/support/styles.py: a style, and a seed that draws their
hand) teaching every model at once through :class:`models.training.teaching.Teacher` - the object
draw.py's T key calls, with its own replay of MNIST - ``--taught`` drawings in their style, one
teach after another, into a personal folder of their own (a temporary one).  Measured for each
model, before (the shipped weights) and after teaching:

  style   the share of ``--held-out`` new drawings in the style (never taught) read right;
  others  the share of the person's other digits (the window's demo strokes, ``--others`` of each
          digit the style does not change) read right - teaching must not break them;
  MNIST   accuracy on the first ``--test-images`` MNIST test images (all 10,000 by default); the
          drop is shipped minus taught, in points.

Every drawing is made on a canvas of the window's size and pen and read by
:func:`kit.images.segment.segment`, as a real drawing is.  The grid is run cell by cell in this
process (each cell costs a few seconds of teaching and one pass over the test set per model), with
a progress line; the results go to ``OUT/results.json`` (every cell, and the summary) and
``OUT/report.md`` (the tables), both written atomically and holding no path of this machine.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # run from a checkout

import nn  # noqa: E402

nn.configure_threads(1)   # the canvas teaches on one thread; the machine is shared

import numpy as np  # noqa: E402

from kit.data import resolve_data_dir  # noqa: E402
from kit.mnist import load_mnist_float  # noqa: E402
from kit.progress import format_duration  # noqa: E402
from models import load_model, registry  # noqa: E402
from models.training import teaching  # noqa: E402
from nn.errors import UserError  # noqa: E402
from nn.serialize import atomic_write_text  # noqa: E402
from nn.warmup import warm_up  # noqa: E402
from tests.support.styles import STYLES, TYPESET_STYLES, plain_images, style_images  # noqa: E402

DEFAULT_OUT = Path("docs/study/teaching")
RECIPE_NAMES = ("STEPS", "MAX_STEPS", "LR", "PERSONAL_BATCH", "REPLAY_BATCH", "RIVAL_REPLAY", "REPLAY_SIZE")


def person_rng(style_name, seed, stream):
    """The random numbers of one person's drawings: the taught ones (stream 0), the held-out ones
    (1), their other digits (2).  Keyed by the style's name, so adding a style changes no other."""
    return np.random.default_rng([seed, zlib.crc32(style_name.encode()), stream])


def accuracy(model, images, labels):
    return float(np.mean(model.predict(images) == labels))


def run_cell(style, seed, names, mnist_dir, test_images, test_labels, shipped_mnist,
             taught=10, held_out=40, others=4):
    """Teach ``taught`` drawings of ``style`` (person ``seed``) to every model in ``names``.

    Returns one dict per model: style read right before, after the first teach and after the
    last (shares), the other digits read right before and after, the MNIST accuracy after, its
    drop in points, and the seconds of each teach (all models together).
    """
    taught_x, taught_y = style_images(style, person_rng(style.name, seed, 0), taught)
    held_x, held_y = style_images(style, person_rng(style.name, seed, 1), held_out)
    other_x, other_y = plain_images(person_rng(style.name, seed, 2), others, exclude=style.digits)
    models = {name: load_model(name) for name in names}          # the shipped weights, fresh
    before = {name: (accuracy(model, held_x, held_y), accuracy(model, other_x, other_y))
              for name, model in models.items()}
    teach_seconds = []
    with tempfile.TemporaryDirectory(prefix="teach-study-") as folder:
        teacher = teaching.Teacher(models, folder=folder, mnist_dir=mnist_dir, seed=seed)
        for index, (image, label) in enumerate(zip(taught_x, taught_y)):
            result = teacher.teach(image, int(label))
            if index == 0:
                first = {name: accuracy(model, held_x, held_y) for name, model in models.items()}
            if not result["replay"]:
                raise UserError(f"{mnist_dir}: no MNIST training files there, so teaching would not "
                                "replay MNIST; give --data")
            teach_seconds.append(result["seconds"])
    rows = []
    for name, model in models.items():
        mnist_after = accuracy(model, test_images, test_labels)
        rows.append({"style": style.name, "seed": seed, "model": name,
                     "style_before": before[name][0], "style_after_first": first[name],
                     "style_after": accuracy(model, held_x, held_y),
                     "others_before": before[name][1], "others_after": accuracy(model, other_x, other_y),
                     "mnist_after": mnist_after,
                     "mnist_drop_points": 100 * (shipped_mnist[name] - mnist_after),
                     "teach_seconds": teach_seconds})
    return rows


def summarize(cells, names, styles):
    """Per model and style, and per model over every style: mean and worst of each measure."""
    def stats(rows):
        drops = [row["mnist_drop_points"] for row in rows]
        after = [row["style_after"] for row in rows]
        return {"cells": len(rows),
                "style_before_mean": float(np.mean([row["style_before"] for row in rows])),
                "style_after_first_mean": float(np.mean([row["style_after_first"] for row in rows])),
                "style_after_mean": float(np.mean(after)), "style_after_worst": float(np.min(after)),
                "others_after_worst": float(np.min([row["others_after"] for row in rows])),
                "others_before_worst": float(np.min([row["others_before"] for row in rows])),
                "mnist_drop_mean": float(np.mean(drops)), "mnist_drop_worst": float(np.max(drops))}
    summary = {}
    for name in names:
        mine = [row for row in cells if row["model"] == name]
        summary[name] = {"all": stats(mine)}
        summary[name].update({style: stats([row for row in mine if row["style"] == style])
                              for style in styles})
    return summary


def load_words(study):
    """How busy the machine was: its 1-minute load average at the start and at the end."""
    start, end = study.get("load_average", (None, None))
    if start is None:
        return "machine load not recorded"
    busy = "quiet machine" if max(start, end) < 1.5 else "loaded machine"
    return f"{busy}, load average {start} at the start and {end} at the end"


def percent(share):
    return f"{100 * share:.0f} %"


def report_markdown(study):
    """The study's tables as Markdown."""
    grid, summary = study["grid"], study["summary"]
    first_model = grid["models"][0]     # every model's row of a cell holds the cell's teach times
    teach_ms = [1000 * s for row in study["cells"] if row["model"] == first_model for s in row["teach_seconds"]]
    lines = [
        "# Teaching, measured over handwriting styles and seeds",
        "",
        f"Made by `{study['command']}` on {study['date']} ({study['machine']}, {load_words(study)}), "
        f"in {format_duration(study['seconds'])}.",
        "",
        f"Each cell: a scripted person writing in one style (seed = which person) teaches all "
        f"{len(grid['models'])} models at once through `models.training.teaching.Teacher` (what "
        f"draw.py's T key calls): {grid['taught']} drawings, one teach after another.  Then, for "
        f"each model: the share of {grid['held_out']} new drawings in the style (never taught) read "
        f"right; the share of the person's other digits ({grid['others']} each, the window's demo "
        f"strokes) read right; and the MNIST test accuracy ({grid['test_images']:,} images) against "
        f"the shipped weights'.  {len(grid['styles'])} styles x {len(grid['seeds'])} seeds "
        f"({', '.join(map(str, grid['seeds']))}).  Drawings are made on the window's 600 x 400 "
        "canvas with its 15 px pen and read by `kit.images.segment.segment`, as real drawings are "
        "([tests/support/styles.py](../../../tests/support/styles.py))"
        + (".  Typeset styles are a second generator: a font's glyph at a random size, turn and place "
           "on that canvas instead of strokes (`TypesetStyle`)." if set(grid["styles"]) & set(TYPESET_STYLES)
           else "."),
        "",
        "Teaching recipe ([models/training/teaching.py](../../../models/training/teaching.py)), "
        "each teach: " + ", ".join(f"{key.lower()} {value}" for key, value in study["recipe"].items()) +
        "; at least `steps` Adam steps, and more up to `max_steps` while the new drawing is "
        "still misread; one Adam optimizer per model for the whole session.",
        "",
        f"Teach step, all {len(grid['models'])} models together, median {np.median(teach_ms):.0f} ms "
        f"(range {min(teach_ms):.0f}-{max(teach_ms):.0f} ms over {len(teach_ms)} teaches; this "
        f"process, one thread, {load_words(study)}).",
        "",
        "## Every model, over all styles and seeds",
        "",
        "| model | shipped MNIST | style read right: before | after 1 teach | after all: mean "
        "| worst | other digits right after: worst | MNIST drop (points): mean | worst |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in grid["models"]:
        row = summary[name]["all"]
        lines.append(f"| {name} | {100 * study['shipped_mnist'][name]:.2f} % "
                     f"| {percent(row['style_before_mean'])} | {percent(row['style_after_first_mean'])} "
                     f"| {percent(row['style_after_mean'])} | {percent(row['style_after_worst'])} "
                     f"| {percent(row['others_after_worst'])} | {row['mnist_drop_mean']:+.2f} "
                     f"| {row['mnist_drop_worst']:+.2f} |")
    lines += ["", "A positive drop is accuracy lost; a negative one, gained.", "",
              "## Per style and model", ""]
    for style in grid["styles"]:
        lines += [f"### {style}: {study['styles'][style]}", "",
                  "| model | read right: before | after 1 teach | after all: mean | worst "
                  "| other digits after: worst | MNIST drop: mean | worst |", "|---|---|---|---|---|---|---|---|"]
        for name in grid["models"]:
            row = summary[name][style]
            lines.append(f"| {name} | {percent(row['style_before_mean'])} "
                         f"| {percent(row['style_after_first_mean'])} | {percent(row['style_after_mean'])} | {percent(row['style_after_worst'])} "
                         f"| {percent(row['others_after_worst'])} | {row['mnist_drop_mean']:+.2f} "
                         f"| {row['mnist_drop_worst']:+.2f} |")
        lines.append("")
    return "\n".join(lines)


def parse_list(text, known, what):
    """A comma-separated list, each item one of ``known`` ("all": every one)."""
    if text == "all":
        return list(known)
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in known]
    if unknown or not items:
        raise UserError(f"unknown {what} {', '.join(unknown) or repr(text)}; known: {', '.join(known)}")
    return items


ALL_STYLES = {**STYLES, **TYPESET_STYLES}


def choose_styles(text):
    """The styles named by --styles: "all" the handwritten ones, "typeset" the typeset ones this
    machine has the fonts of, or names of either kind."""
    if text == "all":
        return list(STYLES)
    if text == "typeset":
        styles = [name for name, style in TYPESET_STYLES.items() if style.available()]
        missing = sorted(set(TYPESET_STYLES) - set(styles))
        if missing:
            print(f"skipping {', '.join(missing)}: font not on this machine", file=sys.stderr)
        return styles
    styles = parse_list(text, list(ALL_STYLES), "style")
    for name in styles:
        if not getattr(ALL_STYLES[name], "available", lambda: True)():
            raise UserError(f"style {name}: its font {ALL_STYLES[name].font} is not on this machine")
    return styles


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="all",
                        help=f"comma-separated, of: {', '.join(STYLES)} (all: these), or of the "
                             f"typeset cross-check: {', '.join(TYPESET_STYLES)} (typeset: these)")
    parser.add_argument("--seeds", type=positive, default=3, help="persons per style (seeds 0..N-1)")
    parser.add_argument("--models", default="all", help="comma-separated shipped model names")
    parser.add_argument("--taught", type=positive, default=10, help="drawings taught per person")
    parser.add_argument("--held-out", type=positive, default=40, help="new drawings judged per person")
    parser.add_argument("--others", type=positive, default=4, help="drawings of each other digit")
    parser.add_argument("--test-images", type=positive, default=10_000, help="MNIST test images")
    parser.add_argument("--data", help="MNIST folder (default: $MNIST_DIR or the user data folder)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json and report.md")
    return parser


def shown_command(argv):
    """The command as a reader would type it, without this machine's paths (--data is local)."""
    shown, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--data":
            skip = True
            continue
        if item.startswith("--data="):
            continue
        shown.append(item)
    return " ".join(["python bench/teach_study.py"] + shown)


def run(args, argv):
    styles = choose_styles(args.styles)
    names = parse_list(args.models, registry.shipped(), "shipped model")
    mnist_dir = resolve_data_dir(args.data)
    test_images, test_labels = load_mnist_float(mnist_dir, "test")
    test_images, test_labels = test_images[:args.test_images], test_labels[:args.test_images]
    warm_up()           # compile every kernel first: the first teach would time Numba, not teaching
    started = time.perf_counter()
    load_at_start = round(os.getloadavg()[0], 1)
    shipped_mnist = {name: accuracy(load_model(name), test_images, test_labels) for name in names}
    grid = [(style, seed) for style in styles for seed in range(args.seeds)]
    cells = []
    for done, (style, seed) in enumerate(grid):
        rows = run_cell(ALL_STYLES[style], seed, names, mnist_dir, test_images, test_labels, shipped_mnist,
                        args.taught, args.held_out, args.others)
        cells += rows
        elapsed = time.perf_counter() - started
        left = elapsed / (done + 1) * (len(grid) - done - 1)
        worst = max(row["mnist_drop_points"] for row in rows)
        lowest = min(row["style_after"] for row in rows)
        print(f"cell {done + 1}/{len(grid)} {style} seed {seed}: style read right >= {percent(lowest)}, "
              f"worst MNIST drop {worst:+.2f} points; {format_duration(elapsed)} elapsed, "
              f"{format_duration(left)} left", file=sys.stderr, flush=True)
    study = {
        "command": shown_command(argv),
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()}-core {platform.machine()}, {platform.system()}, Python "
                   f"{platform.python_version()}, NumPy {np.__version__}",
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": [load_at_start, round(os.getloadavg()[0], 1)],
        "recipe": {key: getattr(teaching, key) for key in RECIPE_NAMES},
        "grid": {"styles": styles, "seeds": list(range(args.seeds)), "models": names,
                 "taught": args.taught, "held_out": args.held_out, "others": args.others,
                 "test_images": len(test_labels)},
        "styles": {style: ALL_STYLES[style].description for style in styles},
        "shipped_mnist": shipped_mnist,
        "summary": summarize(cells, names, styles),
        "cells": cells,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps(study, indent=1) + "\n")
    atomic_write_text(args.out / "report.md", report_markdown(study) + "\n")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'report.md'} "
          f"({format_duration(study['seconds'])})", flush=True)
    return study


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    try:
        run(args, argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
