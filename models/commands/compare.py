"""``python -m models.compare`` (``cnn-vs-lstm compare``): the flags, their checks, and the run that
builds the report's context and hands it to :func:`models.analysis.compare.report.write_report`."""
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from kit.cli import (CommandLineParser, add_data_flag, add_download_flag, add_threads_flag, exit_on_user_error,
                     positive_int)
from kit.data import advice_for
from models import registry
from models.analysis.compare.context import Context, shown_data_folder
from models.analysis.compare.report import write_report
from models.analysis.compare.sections import default_sections
from models.analysis.compare.sweeps import SWEEP_IMAGES, sweep_subset
from models.analysis.compare.timing import LATENCY_CALLS, SPEED_SECONDS
from models.analysis.evaluate import evaluate, load_test_set, read_history
from models.base import load_model, resolve_weights
from nn.errors import UserError
from nn.threads import set_threads


DEFAULT_PROG = "python -m models.compare"


def make_parser(prog=DEFAULT_PROG):
    parser = CommandLineParser(
        prog=prog,
        description="Compare trained models on the MNIST test images and write a Markdown report "
                    "with figures.")
    add = parser.add_argument
    add("--models", metavar="LIST",
        help="comma-separated model names (their shipped weights) or weights files, at least two "
             "(default: every shipped model: " + ", ".join(registry.shipped()) + ")")
    add("--model-file", metavar="PATH", action="append", default=[],
        help="a Python file defining MODEL = ModelSpec(...): a model defined outside the kit, added "
             "to the comparison with its weights from --weights or --models (may be repeated)")
    add("--weights", metavar="PATH", action="append", default=[],
        help="without --models: a weights file added to the shipped models (a model file's weights), "
             "or replacing the shipped weights of its model (may be repeated)")
    add("--pair", metavar="A,B", help="the two models whose disagreements are shown digit by digit "
                                      "(default: the first two)")
    add_data_flag(parser)
    add_download_flag(parser)
    add("--out", metavar="DIR", default="reports/compare", help="folder for report.md, report.json and the PNGs "
                                                                "(default: reports/compare)")
    add("--limit", type=positive_int, metavar="N", help="use only the first N test images")
    add("--sweep-images", type=positive_int, metavar="N", default=SWEEP_IMAGES,
        help=f"test images in the robustness and memory measurements, a fixed random subset "
             f"(default: {SWEEP_IMAGES})")
    add("--latency-calls", type=positive_int, metavar="N", default=LATENCY_CALLS,
        help=f"single-image predictions timed per model (default: {LATENCY_CALLS})")
    add("--speed-seconds", type=float, metavar="S", default=SPEED_SECONDS,
        help=f"seconds of timed training steps per model (default: {SPEED_SECONDS:g})")
    add("--study", metavar="DIR",
        help="a study folder (python -m models.study run DIR ...): the accuracy over seeds with its "
             "interval and, for each pair of models, whether the difference is significant")
    add_threads_flag(parser)
    add("--quiet", action="store_true", help="print only the summary table")
    return parser


def load_models(models_arg, pair_arg, weights_args=(), model_files=()):
    """{name: Model} in the order given, their weights paths, and the pair; one line if wrong.

    Without ``models_arg`` (--models): every shipped model, each ``weights_args`` file (--weights)
    replacing its model's shipped weights or, for another model, added after them.  Every model of
    ``model_files`` ({path: spec}, the --model-file flags) must be in the comparison."""
    if models_arg and weights_args:
        raise UserError("--weights adds weights to the shipped models; with --models, list every "
                        "weights file there")
    items = [item.strip() for item in models_arg.split(",")] if models_arg else registry.shipped()
    if any(not item for item in items):
        raise UserError(f"--models {models_arg!r}: an empty name in the list")
    models, paths = {}, {}
    for item in items:
        path = resolve_weights(item)
        model = load_model(path)
        if model.name in models:
            raise UserError(f"--models: two weights files of the model {model.name!r} "
                            f"({paths[model.name]} and {path}); name each model once")
        models[model.name], paths[model.name] = model, path
    given = {}
    for item in weights_args:
        path = resolve_weights(item)
        model = load_model(path)
        if model.name in given:
            raise UserError(f"--weights: two weights files of the model {model.name!r} "
                            f"({given[model.name]} and {path}); give each model once")
        given[model.name] = path
        models[model.name], paths[model.name] = model, path
    for source, spec in dict(model_files).items():
        if spec.name not in models:
            where = "--models" if models_arg else "--weights PATH"
            raise UserError(f"--model-file {source}: no weights of its model {spec.name!r} in the "
                            f"comparison; give them with {where}")
    if len(models) < 2:
        raise UserError(f"--models: a comparison needs at least two models, got {', '.join(models)}")
    pair = tuple(list(models)[:2])
    if pair_arg:
        pair = tuple(part.strip() for part in pair_arg.split(","))
        if len(pair) != 2 or pair[0] == pair[1] or not all(name in models for name in pair):
            raise UserError(f"--pair {pair_arg}: name two different models of the comparison "
                            f"({', '.join(models)})")
    return models, paths, pair


@exit_on_user_error
def main(argv=None, prog=DEFAULT_PROG, sections=None):
    """Run the comparison; ``sections`` (default: every section of
    :mod:`models.analysis.compare.sections`, in order) are the report's sections."""
    started = time.perf_counter()
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = make_parser(prog).parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if not (args.speed_seconds > 0 and math.isfinite(args.speed_seconds)):
        raise UserError(f"--speed-seconds {args.speed_seconds:g}: must be a positive number of seconds")
    # threads restored on return, for a caller in the same process; advice in the prog's terms
    with set_threads(args.threads), advice_for(prog):
        return run(args, argv, sections, started, log, out)


def run(args, argv, sections, started, log, out):
    """The comparison with parsed and checked flags; returns the exit status."""
    model_files = {path: registry.load_model_file(path) for path in args.model_file}
    models, paths, pair = load_models(args.models, args.pair, args.weights, model_files)
    images, labels, data_dir = load_test_set(args.data, args.limit, download=args.download)
    for model in models.values():
        if images.shape[1:] != model.image_shape:
            raise UserError(f"{data_dir}: its images are {images.shape[1:]}, the "
                            f"{model.title} reads {model.image_shape}")
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    log(f"evaluating {len(models)} models on {len(images):,} test images")
    command = "python -m models.compare " + " ".join(argv) if argv else "python -m models.compare"
    context = Context(
        models=models, paths=paths, pair=pair, images=images, labels=labels,
        data=shown_data_folder(data_dir, args.data), subset=sweep_subset(len(images), args.sweep_images),
        evaluations={name: evaluate(model, images, labels) for name, model in models.items()},
        histories={name: read_history(paths[name])[0] for name in models},
        command=command.strip(),
        machine=(f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
                 f"Python {platform.python_version()}, NumPy {np.__version__}"),
        latency_calls=args.latency_calls, speed_seconds=args.speed_seconds, threads_flag=args.threads,
        load_average=load_average, log=log, study=args.study)
    sections = default_sections() if sections is None else list(sections)
    computed, figures, figure_note = write_report(context, out, sections, started)

    for section, result in computed:
        for line in section.console(context, result):
            print(line)
    print(f"report: {out / 'report.md'}" + (f" with {len(figures)} figures" if figures else "")
          + f"; {time.perf_counter() - started:.0f} s")
    if figure_note:
        from models.analysis import plots
        print(f"note: figures skipped - matplotlib is not installed (install the plot extra: {plots.PLOT_EXTRA})")
    return 0
