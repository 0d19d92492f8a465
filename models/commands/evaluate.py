"""``python -m models.evaluate`` (``cnn-vs-lstm evaluate``): the flags, their checks and what is
printed; the evaluation itself is :mod:`models.analysis.evaluate`.

    python -m models.evaluate --model cnn                      # shipped weights, all 10,000 images
    python -m models.evaluate --model gru --json               # the same numbers as one JSON object
    python -m models.evaluate --model cnn --plots plots/       # + PNG figures (needs matplotlib)
    python -m models.evaluate --weights runs/my.npz            # any weights file (it names its model)
    python -m models.evaluate --model lstm --threads 1         # BLAS and Numba on one thread
"""
import json
import sys

import numpy as np

import nn
from kit.cli import (CommandLineParser, add_data_flag, add_download_flag, add_json_flag, add_model_file_flag,
                     add_model_flag, add_threads_flag, add_weights_flag, exit_on_user_error, positive_int)
from kit.data import advice_for
from models import registry
from models.analysis.evaluate import evaluate, format_text, load_test_set, write_plots
from models.base import load_model, weights_from_flags
from nn.errors import UserError


def make_parser(prog="python -m models.evaluate"):
    parser = CommandLineParser(
        prog=prog,
        description="Evaluate a trained model on the MNIST test images: accuracy, per-class "
                    "precision/recall/F1 and the confusion matrix.")
    add_model_flag(parser, registry.names())
    add_model_file_flag(parser)
    add_weights_flag(parser)
    add_data_flag(parser)
    add_download_flag(parser)
    add_json_flag(parser)
    add = parser.add_argument
    add("--limit", type=positive_int, metavar="N", help="evaluate only the first N test images")
    add("--plots", metavar="DIR", help="also write PNG figures into DIR (needs matplotlib: the plot extra)")
    add_threads_flag(parser)
    return parser


@exit_on_user_error
def main(argv=None, prog="python -m models.evaluate"):
    args = make_parser(prog).parse_args(argv)
    # threads restored on return, for a caller in the same process; advice in the prog's terms
    with nn.set_threads(args.threads), advice_for(prog):
        return run(args)


def run(args):
    """The command with parsed flags: evaluate, print, write the plots; returns the exit status."""
    if args.plots:
        from models.analysis.plots import require_matplotlib
        require_matplotlib()
    args.model, weights_path = weights_from_flags(args.model, args.model_file, args.weights, "model to evaluate")
    model = load_model(weights_path, expect=args.model)
    images, labels, data_dir = load_test_set(args.data, args.limit, model.num_classes, args.download)
    if images.shape[1:] != model.image_shape:
        raise UserError(f"{data_dir}: its images are {images.shape[1:]}, the model reads {model.image_shape}")
    with np.errstate(over="ignore", invalid="ignore"):   # non-finite outputs: said once, below
        evaluation = evaluate(model, images, labels)
    plot_paths, notes = [], []
    if args.plots:
        try:
            plot_paths, notes = write_plots(args.plots, model, weights_path, images, evaluation)
        except OSError as error:
            raise UserError(f"cannot write the plots into {args.plots}: {error.strerror or error}") from None
    if args.json:
        results = {"model": model.name, "weights": str(weights_path), "data": str(data_dir),
                   **evaluation.summary(), **({"plots": [str(p) for p in plot_paths]} if args.plots else {})}
        try:   # JSON has no NaN or Infinity: a reader would choke on Python's spelling of them
            text = json.dumps(results, allow_nan=False)
        except ValueError:
            raise UserError(f"{weights_path}: the results hold NaN or infinite numbers (loss "
                            f"{evaluation.loss}), which JSON cannot carry; the model's outputs are "
                            "not finite") from None
        print(text)
    else:
        print(format_text(model, weights_path, data_dir, evaluation))
        if plot_paths:
            print("\nplots written: " + ", ".join(str(p) for p in plot_paths))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
