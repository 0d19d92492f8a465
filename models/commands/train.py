"""``python -m models.train``: the trainer's command line (train_cnn.py, train_lstm.py and
``cnn-vs-lstm train`` are this with --model fixed or another name).

    python -m models.train --model gru                 # the model file's recipe, MNIST
    python -m models.train --model reader --numbers 20000   # the number reader (composed numbers)
    python -m models.train --model cnn --epochs 5 --lr 3e-4 --out runs/cnn.npz
    python -m models.train --model-file my_net.py      # a model defined outside the kit
    python -m models.train --model lstm --data ~/letters   # 26 classes? read from the files
    python -m models.train --resume runs/cnn.checkpoint.npz

Before any work every flag is checked and --out must be writable (not a folder, no file in its
path, not read-only; an existing --out or an unfinished run's checkpoint is replaced only with
--force); any problem is one line and nothing is written.  The flags become a
:class:`models.training.config.TrainingConfig` (the recipe) and a
:class:`models.training.trainer.RunPlace` (where, how loudly); :func:`models.training.trainer.train`
runs them, holding a lock beside --out (:mod:`models.training.lock`) so a second trainer on
the same --out is refused.  With --resume the checkpoint's recipe is used; a flag given again
must match it, except --data, --threads, --quiet and a larger --epochs; the run writes only
beside its checkpoint, and only over files that are its own.
"""
import argparse
import os
import sys
from pathlib import Path

from kit.cli import (CommandLineParser, add_data_flag, add_download_flag, add_model_file_flag,
                     add_model_flag, add_threads_flag, exit_on_user_error, fraction, positive_float,
                     positive_int)
from kit.data import advice_for
from kit.paths import new_run_path
from models import registry
from models.training.checkpoint import (check_files_are_its_own, checkpoint_model_name, parse_checkpoint,
                                        read_checkpoint, sibling_paths)
from models.training.config import NUMBER_FLAGS, RECIPE_FLAGS, TrainerCallbacks, TrainingConfig, seed_value
from models.training.lock import OutputLock
from models.training.trainer import EXIT_INTERRUPTED, RunPlace, train
from nn.errors import UserError
from nn.serialize import check_finite
from nn.threads import set_threads

DEFAULT_PROG = "python -m models.train"
# Flags that may differ on --resume: where the data is, how fast, how much is shown.
RESUME_MAY_CHANGE = {"resume", "quiet", "data", "download", "threads", "model", "model_file"}


def positive_int_list(text):
    """A list option such as the reader's --channels: '32,64' (or '[32, 64]', as saved) -> [32, 64]."""
    parts = text.strip().strip("[]").replace(",", " ").split()
    if not parts:
        raise argparse.ArgumentTypeError(f"must be positive integers separated by commas, not {text!r}")
    return [positive_int(part) for part in parts]


def _option_type(default):
    if isinstance(default, list):
        return positive_int_list
    if isinstance(default, bool):
        return lambda text: {"true": True, "1": True, "false": False, "0": False}[text.lower()]
    if isinstance(default, int):
        return positive_int
    if isinstance(default, float):
        return positive_float
    return str


def models_epilog():
    lines = ["models (one file each in models/, or your own with --model-file):"]
    for name in registry.names(kind=None):
        spec = registry.get(name)
        lines.append(f"  {name:<6} {spec.description}")
    return "\n".join(lines)


def make_parser(spec=None, prog=DEFAULT_PROG):
    """The trainer's flags; with ``spec`` its recipe gives the defaults and its options the
    model-specific flags (``--hidden`` ...)."""
    recipe = spec.recipe if spec is not None else registry.Recipe()
    title = spec.title if spec is not None else "a model"
    parser = CommandLineParser(
        prog=prog,
        description=(f"Train {title} on MNIST-like IDX files and write its weights."
                     + (f" {spec.description}" if spec is not None else "")),
        epilog=models_epilog() if spec is None else None,
        formatter_class=argparse.RawDescriptionHelpFormatter if spec is None
        else argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add_model_flag(parser, registry.names(kind=None),
                   help="which model to train: " + ", ".join(registry.names(kind=None)))
    add_model_file_flag(parser, help="a Python file defining MODEL = ModelSpec(...): train a model of your own")
    add_data_flag(parser)
    add_download_flag(parser)
    add("--epochs", type=positive_int, default=recipe.epochs, help="passes over the training split")
    add("--batch-size", type=positive_int, default=recipe.batch_size, help="images per optimizer step")
    add("--lr", type=positive_float, default=recipe.lr, help="peak learning rate")
    add("--optimizer", choices=("adam", "sgd"), default=recipe.optimizer, help="adam, or sgd with --momentum")
    add("--momentum", type=fraction, default=0.9, help="momentum for --optimizer sgd")
    add("--schedule", choices=("constant", "cosine"), default=recipe.schedule,
        help="learning rate over the run: constant, or cosine decay to --lr * --final-lr-factor")
    add("--final-lr-factor", type=fraction, default=recipe.final_lr_factor,
        help="end of the cosine schedule, relative to --lr")
    add("--augment", action=argparse.BooleanOptionalAction, default=recipe.augment,
        help="distort every training batch: shifts up to 2 px, rotations up to 10 deg, scaling 0.9-1.1")
    add("--seed", type=seed_value, default=0, help="seed for the split, the initial weights, dropout and data order")
    add("--val-fraction", type=fraction, default=0.2, help="share of the training images held out for validation")
    add("--keep", choices=("best", "final"), default="best",
        help="which epoch's weights --out keeps: the best validation accuracy, or the final epoch")
    add("--num-classes", type=positive_int, metavar="C",
        help="classes 0..C-1 (default: the highest training label + 1; e.g. 10 for a set of digits "
             "that lacks 8 and 9)")
    add("--limit", type=positive_int, metavar="N", help="use only the first N training and test images (quick runs)")
    add("--out", metavar="PATH",
        help="weights file to write (best validation accuracy); history JSON and checkpoint go beside it "
             "(default: a new folder under the user data folder's runs/)")
    add("--force", action="store_true", help="replace an existing --out file and its checkpoint")
    add("--resume", metavar="CHECKPOINT", help="continue a run stopped by Ctrl-C (or a crash) from its checkpoint file")
    add_threads_flag(parser)
    if spec is not None and spec.kind == "sequence":
        add("--numbers", type=positive_int, default=recipe.numbers,
            help="training numbers composed per epoch (from the training digits)")
        add("--test-numbers", type=positive_int, default=recipe.test_numbers,
            help="validation numbers (held-out training digits) and test numbers (test digits) "
                 "of 2-6 digits, for digits apart and as many touching")
    if spec is not None:
        for option, default in spec.options.items():
            add(f"--{option.replace('_', '-')}", dest=option, type=_option_type(default), default=default,
                help=f"model option {option!r}")
    add("--quiet", action="store_true", help="no progress bar, only per-epoch lines")
    return parser


def choose_model(argv, fixed_model=None):
    """The spec of the model named by --model / --model-file in ``argv`` (or ``fixed_model``)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    pre.add_argument("--model-file")
    pre.add_argument("--resume")
    known, _ = pre.parse_known_args(argv)
    if known.model_file:
        spec = registry.load_model_file(known.model_file)
        if known.model and known.model != spec.name:
            raise UserError(f"--model {known.model} but {known.model_file} defines {spec.name!r}")
        return spec
    name = fixed_model or known.model
    if name is None and known.resume:
        return None  # the checkpoint says which model
    return registry.get(name) if name else None


def run(argv=None, model=None, prog=None, callbacks=None):
    """Parse flags and train; returns the process exit status.  ``model`` fixes --model
    (train_cnn.py, train_lstm.py); ``callbacks`` (a TrainerCallbacks) reach into the run."""
    try:
        with advice_for(prog or DEFAULT_PROG):   # missing-data advice names the program as typed
            return _run(sys.argv[1:] if argv is None else list(argv), model, prog, callbacks)
    except KeyboardInterrupt:  # a Ctrl-C the trainer was not waiting for (a second one, flags)
        print("error: interrupted; every file on disk is whole (all writes are atomic) and the "
              "last checkpoint, if there is one, resumes the run", file=sys.stderr)
        return EXIT_INTERRUPTED


@exit_on_user_error
def _run(argv, fixed_model, prog, callbacks):
    spec = choose_model(argv, fixed_model)
    prog = prog or DEFAULT_PROG
    parser = make_parser(spec, prog)
    args = parser.parse_args(argv)
    if spec is None and not args.resume:
        parser.error("say which model to train: --model NAME (" + ", ".join(registry.names())
                     + ") or --model-file PATH")
    if fixed_model and args.model and args.model != fixed_model:
        parser.error(f"{prog} trains the {fixed_model} model; --model {args.model} belongs to "
                     "python -m models.train")
    place = RunPlace(out=None, data=args.data, download=args.download, quiet=args.quiet, prog=prog,
                     callbacks=callbacks if callbacks is not None else TrainerCallbacks())
    if args.out is not None and not args.out.strip():
        raise UserError("--out '': give the weights file to write, such as runs/model.npz")
    if args.resume:
        spec, config = resumed_run(args.resume, spec, argv, prog, place)
        check_output(place.out, True, prog)
    else:
        options = {option: getattr(args, option) for option in spec.options}
        config = TrainingConfig(model=spec.name, options=options,
                                **{name: getattr(args, name) for name in RECIPE_FLAGS},
                                **{name: getattr(args, name, None) for name in NUMBER_FLAGS})
        place.out = Path(args.out if args.out is not None else new_run_path(spec.name))
        check_output(place.out, args.force, prog)
    # One trainer per --out: a second one started meanwhile is refused here, and a run that
    # finished meanwhile is seen by the check made again under the lock.
    with set_threads(args.threads), OutputLock(place.out):  # threads restored on return
        if not args.resume:
            check_output(place.out, args.force, prog)
        return train(spec, config, place)


def resumed_run(path, spec, argv, prog, place):
    """(spec, config) of the run the checkpoint at ``path`` continues; fills ``place.resume``
    and ``place.out``.  The run keeps the recipe it started with: --epochs may grow, where the
    data is and how fast may change, any other flag given again must match, or we refuse."""
    meta, arrays = read_checkpoint(path)
    check_finite(path, arrays)   # a checkpoint of a diverged run: resuming it cannot recover
    resumed = checkpoint_model(path, checkpoint_model_name(path, meta))
    if spec is not None and resumed.name != spec.name:
        raise UserError(f"{path}: is a checkpoint of the {resumed.title}, not the {spec.title}")
    spec = resumed
    checkpoint = parse_checkpoint(path, meta, arrays, spec.options)
    config = checkpoint.config
    check_options(path, spec, config.options)
    saved = {**{name: getattr(config, name) for name in RECIPE_FLAGS + NUMBER_FLAGS}, **config.options}
    for dest, value in explicit_flags(make_parser(spec, prog), argv).items():
        if dest in RESUME_MAY_CHANGE or (dest in saved and value == saved[dest]):
            continue
        flag = "--" + dest.replace("_", "-")
        if dest == "epochs":
            if value < config.epochs:  # README: a resumed run may be given a larger --epochs, never a smaller
                raise UserError(f"--epochs {value}: the run being resumed trains {config.epochs} epochs "
                                f"and has already finished {checkpoint.state.epoch} epochs; a resumed "
                                "run may only be given a larger --epochs")
            print(f"note: training to {value} epochs instead of {config.epochs}"
                  + ("; the cosine schedule now decays over the new length"
                     if config.schedule == "cosine" else ""), file=sys.stderr)
            config = config.with_epochs(value)
        elif dest == "out":
            if Path(value).resolve() == checkpoint.weights.resolve():
                continue
            raise UserError(f"--out {value}: a resumed run writes where it started ({checkpoint.weights}); "
                            "copy the weights from there when it has finished")
        elif dest == "force":
            raise UserError("--force does nothing with --resume; to start over, run the "
                            "original command with --force instead")
        else:
            shown = value if not isinstance(value, bool) else ("on" if value else "off")
            raise UserError(f"{flag} {shown}: the run being resumed trains with {flag} "
                            f"{saved.get(dest)}, and a resumed run keeps its flags; start a new "
                            "run (another --out) to change it")
    check_files_are_its_own(checkpoint)
    place.resume, place.out = checkpoint, checkpoint.weights
    return spec, config


def explicit_flags(parser, argv):
    """{dest: value} of only the flags written in ``argv`` (defaults left out)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def checkpoint_model(path, name):
    try:
        return registry.get(name)
    except UserError:
        raise UserError(f"{path}: is a checkpoint of a model {name!r} that is not defined here; "
                        "give its file with --model-file PATH") from None


def check_options(path, spec, options):
    """The model options a checkpoint holds: exactly the model's, each as its flag would take it."""
    if set(options) != set(spec.options):
        raise UserError(f"{path}: the checkpoint's model options {sorted(options)} are not the "
                        f"{spec.title}'s {sorted(spec.options)}")
    for option, default in spec.options.items():
        value, parse = options[option], _option_type(default)
        try:
            good = type(value) is type(default) and parse(str(value)) == value
        except (ValueError, TypeError, KeyError, argparse.ArgumentTypeError):
            good = False
        if not good:
            raise UserError(f"{path}: the checkpoint's setting {option!r} is {value!r}, which "
                            f"--{option.replace('_', '-')} would refuse")


def check_output(out, force, prog):
    """Before any work: --out must be a writable file path, and nothing a person made there
    (weights, an unfinished run's checkpoint) is replaced without --force."""
    out = Path(out)
    history_path, checkpoint_path = sibling_paths(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file path such as {out / 'model.npz'}")
    if checkpoint_path.exists() and not force:
        raise UserError(f"{checkpoint_path}: an unfinished run's checkpoint is there; resume it with "
                        f"{prog} --resume {checkpoint_path}, or pass --force to start over")
    if out.exists() and not force:
        raise UserError(f"--out {out}: already exists; pass --force to replace it, or choose another --out")
    for sibling in (history_path, checkpoint_path):
        if sibling.is_dir():
            raise UserError(f"--out {out}: {sibling} is a folder, where the run writes a file")
    probe = out.parent
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        raise UserError(f"--out {out}: {probe} is a broken symbolic link or a link loop")
    if not probe.is_dir():
        raise UserError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: the folder {probe} is not writable")
