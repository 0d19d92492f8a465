"""Convert weights between this kit's .npz files and safetensors, which PyTorch and the Hugging
Face tools read.

    python -m models.export --model cnn --out cnn.safetensors          # the shipped CNN
    python -m models.export --weights runs/lstm.npz --out lstm.safetensors
    python -m models.export --weights lstm.safetensors --out lstm.npz  # and back

The output's suffix chooses the format.  A safetensors file keeps our tensor names
('<layer index>.<name>', e.g. '0.weight', '0.w_ih', '1.running_mean') and PyTorch's layouts, and
carries the architecture: its metadata holds ``model`` and the whole JSON header of
a weights file (layers, options, checksum) under ``cnn-vs-lstm-numpy``, so ``load_model`` reads
it back with every check an .npz gets.  In PyTorch::

    from safetensors.torch import load_file
    tensors = load_file("cnn.safetensors")      # {'0.weight': tensor (32, 1, 3, 3), ...}

(the CNN's names are those of an ``nn.Sequential`` with the same 17 layers; the LSTM's single
bias '0.b' is PyTorch's ``bias_ih_l0`` with ``bias_hh_l0 = 0``; tests/test_safetensors.py
builds both twins).  An existing output is replaced only with ``--force``.
"""
import sys
from pathlib import Path

import nn
from kit.cli import (CommandLineParser, add_model_file_flag, add_model_flag, add_threads_flag, add_weights_flag,
                     exit_on_user_error)
from models import registry
from models.base import load_model, weights_from_flags
from nn.errors import UserError

FORMATS = {".safetensors": "safetensors", ".npz": "an .npz weights file"}


def make_parser(prog="python -m models.export"):
    parser = CommandLineParser(
        prog=prog,
        description="Write a model's weights as safetensors (for PyTorch and the Hugging Face "
                    "tools) or as this kit's .npz; the output's suffix chooses.")
    add_model_flag(parser, registry.names())
    add_model_file_flag(parser)
    add_weights_flag(parser, help="weights to convert (.npz or .safetensors)")
    add = parser.add_argument
    add("--out", metavar="PATH", required=True, help="the file to write: NAME.safetensors or NAME.npz")
    add("--force", action="store_true", help="replace --out if it exists")
    add_threads_flag(parser)
    return parser


@exit_on_user_error
def main(argv=None, prog="python -m models.export"):
    args = make_parser(prog).parse_args(argv)
    with nn.set_threads(args.threads):      # restored on return, for a caller in the same process
        return run(args)


def run(args):
    """The command with parsed flags: convert and write; returns the exit status."""
    args.model, source = weights_from_flags(args.model, args.model_file, args.weights, "weights to export")
    out = Path(args.out)
    if out.suffix not in FORMATS:
        raise UserError(f"--out {out}: name a .safetensors or an .npz file")
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; name a file in it")
    if out.exists() and source.resolve() == out.resolve():
        raise UserError(f"--out {out} is the input file; write to another name")
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to replace it")
    model = load_model(source, expect=args.model)
    write = model.to_safetensors if out.suffix == ".safetensors" else model.save
    try:
        write(out, extra=model.extra)
    except OSError as error:
        raise UserError(f"cannot write {out}: {error.strerror or error}") from None
    print(f"{out}: the {model.title} model from {source} ({model.num_parameters():,} parameters) "
          f"as {FORMATS[out.suffix]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
