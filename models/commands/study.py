"""``python -m models.study`` (and ``cnn-vs-lstm study``): run a study, write its report.

    python -m models.study run DIR --models cnn,lstm,gru --seeds 5 --set lr=1e-3,3e-3 --epochs 10
    python -m models.study run DIR --models cnn,mlp --seeds 2 --limit 600 --epochs 1 --workers 2
    python -m models.study run DIR ... --scheduler tcp://HOST:8786     # an existing Dask cluster
    python -m models.study report DIR          # DIR/report.md, results.json/.csv, figures

Each cell of the grid (model x seed x setting) is an ordinary run of the trainer: its recipe is
what ``python -m models.train --model M --seed S [--epochs E] [--limit N] [--KEY VALUE]`` would
train, read by the train command's own parser (same defaults, same checks).  Rerunning the same
``run`` command skips the finished cells.  Exit status: 0 all cells done, 1 a cell failed after
its retries, 2 a bad flag, 130 interrupted (Ctrl-C; the finished cells are kept).
"""
import argparse
import sys

import nn

from kit.cli import CommandLineParser, add_data_flag, exit_on_user_error, positive_int
from models import registry
from models.commands.train import make_parser as train_parser
from models.training.config import RECIPE_FLAGS, TrainingConfig
from nn.errors import UserError

DEFAULT_PROG = "python -m models.study"
EXIT_INTERRUPTED = 130
THREADS_HELP = ("CPU threads for BLAS and Numba: with run, of each training run (each worker's; "
                "default 1, the workers share the cores); with report, of this process (default: all cores)")
# Recipe flags a study may vary with --set (the seed is --seeds, the data size --limit).
SETTABLE = tuple(name for name in RECIPE_FLAGS if name not in ("seed", "limit", "num_classes"))


def make_parser(prog=DEFAULT_PROG):
    parser = CommandLineParser(prog=prog, description="Train a grid of models x seeds x settings on "
                               "Dask (each cell a run of the trainer) and report how sure the "
                               "comparison is.")
    parser.add_argument("--threads", type=positive_int, metavar="N", help=THREADS_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="train the grid's unfinished cells into DIR")
    run.error = parser.error
    run.add_argument("dir", metavar="DIR", help="the study folder (one subfolder per cell)")
    run.add_argument("--models", default=",".join(registry.shipped()),
                     help="comma-separated model names (default: every shipped model)")
    run.add_argument("--seeds", default="5",
                     help="N for seeds 0..N-1, or a comma-separated list of seeds (default 5)")
    run.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=V1,V2",
                     help="a training flag to vary, e.g. lr=1e-3,3e-3 or hidden=64,128 (repeatable: "
                          "the grid is every combination)")
    run.add_argument("--epochs", type=positive_int, help="epochs of every run (default: each model's recipe)")
    run.add_argument("--limit", type=positive_int, metavar="N",
                     help="only the first N training and test images (quick studies)")
    add_data_flag(run)   # passed to the workers as given: without it each reads its own folder
    run.add_argument("--workers", type=positive_int, default=2,
                     help="worker processes of the embedded LocalCluster, one thread each (default 2)")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="run on an existing Dask cluster instead (workers started with `dask worker`)")
    run.add_argument("--retries", type=int, default=2,
                     help="attempts after the first for a failed cell (default 2)")
    add_subcommand_threads_flag(run)
    report = commands.add_parser("report", help="write DIR/report.md, the results table and figures")
    report.error = parser.error
    report.add_argument("dir", metavar="DIR", help="a study folder")
    report.add_argument("--no-figures", action="store_true", help="skip the PNG figures (no matplotlib needed)")
    add_subcommand_threads_flag(report)
    return parser


def add_subcommand_threads_flag(subparser):
    """--threads after the subcommand too; absent there, it leaves the value given before it."""
    subparser.add_argument("--threads", type=positive_int, metavar="N", default=argparse.SUPPRESS,
                           help=THREADS_HELP)


def parse_seeds(text):
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise UserError(f"--seeds {text}: give a count (5) or a list of whole numbers (0,1,7)") from None
    if len(values) == 1:
        if values[0] < 1:
            raise UserError(f"--seeds {text}: the count must be at least 1")
        return list(range(values[0]))
    if any(value < 0 for value in values) or len(set(values)) != len(values):
        raise UserError(f"--seeds {text}: seeds must be distinct whole numbers >= 0")
    return values


def parse_settings(items, specs):
    """[(key, [values as text])] of the --set flags; a key must be a recipe flag or an option of
    every model in the study."""
    parsed, seen = [], set()
    for item in items:
        key, sign, values = item.partition("=")
        key = key.strip().replace("-", "_")
        values = [value.strip() for value in values.split(",") if value.strip()]
        if not sign or not key or not values:
            raise UserError(f"--set {item}: write KEY=VALUE[,VALUE...], e.g. lr=1e-3,3e-3")
        if key in seen:
            raise UserError(f"--set {item}: {key} is set twice; list all its values once")
        lacking = [spec.name for spec in specs if key not in SETTABLE and key not in spec.options]
        if lacking:
            raise UserError(f"--set {item}: {key} is neither a training flag ({', '.join(SETTABLE)}) "
                            f"nor an option of {', '.join(lacking)}")
        seen.add(key)
        parsed.append((key, values))
    return parsed


def combinations(settings):
    """Every combination of the settings' values, as lists of (key, text) pairs."""
    grid = [[]]
    for key, values in settings:
        grid = [point + [(key, value)] for point in grid for value in values]
    return grid


def cell_config(spec, seed, point, epochs, limit, prog):
    """The TrainingConfig the train command would build for this cell (its parser, its checks)."""
    argv = ["--seed", str(seed)]
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    for key, value in point:
        flag = "--" + key.replace("_", "-")
        if key == "augment":
            argv.append(flag if value.lower() in ("1", "true", "on", "yes") else "--no-augment")
        else:
            argv += [flag, value]
    args = train_parser(spec, prog=f"{prog} --set").parse_args(argv)
    options = {option: getattr(args, option) for option in spec.options}
    return TrainingConfig(model=spec.name, options=options,
                          **{name: getattr(args, name) for name in RECIPE_FLAGS})


def build_plan(args, prog):
    """[(Cell, TrainingConfig)] of the grid, models outermost, seeds innermost."""
    from models.analysis.studies.cell import Cell
    names = [name.strip() for name in (args.models or "").split(",") if name.strip()]
    if not names:
        raise UserError("--models: name at least one model (" + ", ".join(registry.names()) + ")")
    specs = [registry.get(name) for name in names]
    seeds = parse_seeds(args.seeds)
    settings = parse_settings(args.settings, specs)
    plan = []
    for spec in specs:
        for point in combinations(settings):
            for seed in seeds:
                config = cell_config(spec, seed, point, args.epochs, args.limit, prog)
                values = {key: getattr(config, key) if key in SETTABLE else config.options[key]
                          for key, _ in point}
                plan.append((Cell(spec.name, seed, values), config))
    return plan


def main(argv=None, prog=None):
    """Parse flags and run or report; returns the exit status."""
    try:
        return _main(sys.argv[1:] if argv is None else list(argv), prog or DEFAULT_PROG)
    except KeyboardInterrupt:   # before the cells started, or a second Ctrl-C while stopping
        print("error: interrupted; every finished cell on disk is whole (result.json is written "
              "last), and the same command runs the rest", file=sys.stderr)
        return EXIT_INTERRUPTED


@exit_on_user_error
def _main(argv, prog):
    parser = make_parser(prog)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("say what to do: run DIR [flags] or report DIR")
    if args.command == "report":
        from models.analysis.studies.report import write_report
        with nn.set_threads(args.threads):
            written = write_report(args.dir, figures=not args.no_figures)
        print(f"report written: {written}")
        return 0
    if args.retries < 0:
        parser.error(f"--retries {args.retries}: must be 0 or more")
    plan = build_plan(args, prog)
    from models.analysis.studies import folder
    from models.analysis.studies.engine import run_study
    folder.write_manifest(args.dir, {
        "models": sorted({cell.model for cell, _ in plan}, key=[c.model for c, _ in plan].index),
        "seeds": parse_seeds(args.seeds), "settings": args.settings, "epochs": args.epochs,
        "limit": args.limit, "cells": [cell.name for cell, _ in plan]})
    return run_study(args.dir, plan, workers=args.workers, scheduler=args.scheduler, data=args.data,
                     retries=args.retries, threads=args.threads or 1)
