"""The trainer: any registered model on any MNIST-like IDX data set.

    python -m models.train --model gru                 # the model file's recipe, MNIST
    python -m models.train --model cnn --epochs 5 --lr 3e-4 --out runs/cnn.npz
    python -m models.train --model-file my_net.py      # a model defined outside the kit
    python -m models.train --model lstm --data ~/letters   # 26 classes? read from the files

What a run does, in order:
  1. check every flag and that --out can be written (not a folder, no file in its path, not
     read-only; an existing --out or an unfinished run's checkpoint is replaced only with
     --force), read the IDX files, check the model's size (an estimate, before allocating) and
     that a BatchNorm model never sees a batch of one (any problem -> one-line error, nothing
     written); the image size and the number of classes come from the files;
  2. split the training images into train / validation with a seeded permutation;
  3. per epoch: shuffle, optionally distort each batch (--augment), forward, loss, backward,
     optimizer step with the scheduled learning rate; a progress bar shows running loss,
     accuracy, images/s and ETA; then the validation loss and accuracy;
  4. whenever validation accuracy improves, write the weights to --out (atomically), and after
     every epoch a checkpoint and the history JSON beside it;
  5. at the end, the test accuracy of the best weights on the test images.

Reproducibility: three generators derived from --seed drive the split, the model (initial
weights and dropout masks) and the data order/augmentation.  Their states (and any layer's own
generator) are saved in the checkpoint, and Ctrl-C is honoured only at a step boundary, before
the next epoch's shuffle is drawn, so a run interrupted anywhere and resumed with --resume ends
with exactly the weights of an uninterrupted run.  A checkpoint is checked field by field and
array by array before it is loaded; flags given with --resume must match the run's own, except
--data, --threads, --quiet and a larger --epochs.

Stops: Ctrl-C -> checkpoint, exit 130; a loss that is NaN, or above 10 times its starting value
for 10 steps in a row -> exit 3, the best weights so far left in place; a failed write (a full
disk) -> one line naming the file, exit 2, the last good file kept.  ``train_cnn.py`` and ``train_lstm.py`` are this trainer with
``--model`` fixed.
"""
import nn
from nn.threads import threads_from_argv

if __name__ == "__main__":
    nn.configure_threads(threads_from_argv(__import__("sys").argv[1:]))  # before NumPy loads BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from kit.images import augment  # noqa: E402
from kit.images.augment import random_affine  # noqa: E402
from kit.cli import CommandLineParser, exit_on_user_error, fraction, positive_float, positive_int  # noqa: E402
from kit.data import ensure_mnist, resolve_data_dir  # noqa: E402
from kit.mnist import load_dataset  # noqa: E402
from kit.paths import new_run_path  # noqa: E402
from kit.progress import ProgressBar, format_duration  # noqa: E402
from models import registry  # noqa: E402
from models.base import build_model, load_model  # noqa: E402
from nn.errors import UserError  # noqa: E402
from nn.layers import BatchNorm  # noqa: E402
from nn.losses import SoftmaxCrossEntropy, log_softmax  # noqa: E402
from nn.optim import SGD, Adam  # noqa: E402
from nn.serialize import atomic_savez, atomic_write_text, check_state  # noqa: E402
from nn.warmup import warm_up  # noqa: E402

CHECKPOINT_FORMAT = "cnn-vs-lstm-numpy/checkpoint"
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3


def _option_type(default):
    if isinstance(default, bool):
        return lambda text: {"true": True, "1": True, "false": False, "0": False}[text.lower()]
    if isinstance(default, int):
        return positive_int
    if isinstance(default, float):
        return positive_float
    return str


def models_epilog():
    lines = ["models (one file each in models/, or your own with --model-file):"]
    for name in registry.names():
        spec = registry.get(name)
        lines.append(f"  {name:<6} {spec.description}")
    return "\n".join(lines)


def make_parser(spec=None, prog="python -m models.train"):
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
    add("--model", metavar="NAME", help="which model to train: " + ", ".join(registry.names()))
    add("--model-file", metavar="PATH",
        help="a Python file defining MODEL = ModelSpec(...): train a model of your own")
    add("--data", metavar="DIR",
        help="folder with the IDX files (default: $MNIST_DIR, else ./data/mnist, else the user data folder)")
    add("--download", action="store_true", help="fetch MNIST into the data folder if it is missing")
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
    add("--num-classes", type=positive_int, metavar="C",
        help="classes 0..C-1 (default: the highest training label + 1; e.g. 10 for a set of digits "
             "that lacks 8 and 9)")
    add("--limit", type=positive_int, metavar="N", help="use only the first N training and test images (quick runs)")
    add("--out", metavar="PATH",
        help="weights file to write (best validation accuracy); history JSON and checkpoint go beside it "
             "(default: a new folder under the user data folder's runs/)")
    add("--force", action="store_true", help="replace an existing --out file and its checkpoint")
    add("--resume", metavar="CHECKPOINT", help="continue an interrupted run from its checkpoint file")
    add("--threads", type=positive_int, help="CPU threads for BLAS and Numba (default: all cores)")
    if spec is not None:
        for option, default in spec.options.items():
            add(f"--{option.replace('_', '-')}", dest=option, type=_option_type(default), default=default,
                help=f"model option {option!r}")
    add("--quiet", action="store_true", help="no progress bar, only per-epoch lines")
    # For tests: behave as if Ctrl-C arrived after this many optimizer steps.
    add("--interrupt-after", type=positive_int, help=argparse.SUPPRESS)
    # For tests: send this process a real SIGINT at a named point of the run: startup,
    # epoch-start:E, step:N (before global step N), validation:E, checkpoint:E, test.
    add("--interrupt-at-phase", metavar="PHASE", help=argparse.SUPPRESS)
    return parser


def seed_value(text):
    value = int(text)
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2^63 - 1, not {text}")
    return value


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


def sibling_paths(out):
    out = Path(out)
    stem = out.name[:-4] if out.name.endswith(".npz") else out.name
    return out.with_name(stem + ".history.json"), out.with_name(stem + ".checkpoint.npz")


def learning_rate(args, step, total_steps):
    """lr for optimizer step ``step`` (0-based): constant, or cosine from lr to lr * final factor."""
    if args.schedule == "constant" or total_steps <= 1:
        return args.lr
    progress = min(step / (total_steps - 1), 1.0)
    low = args.lr * args.final_lr_factor
    return low + (args.lr - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def evaluate_batches(model, images, labels, batch_size=1000):
    """(mean cross-entropy, accuracy) of ``model`` in inference mode."""
    if len(images) == 0:
        return float("nan"), float("nan")
    total_loss, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = model.logits(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        total_loss += -log_softmax(logits.astype(np.float64))[np.arange(len(y)), y].sum()
        correct += int((logits.argmax(axis=1) == y).sum())
    return total_loss / len(images), correct / len(images)


def phase(args, name):
    """A named point of the run; the hidden ``--interrupt-at-phase`` flag delivers a real SIGINT
    to this process there, so tests can interrupt exactly where a person's Ctrl-C might land."""
    if getattr(args, "interrupt_at_phase", None) == name:
        signal.raise_signal(signal.SIGINT)


def layer_rng_states(network):
    """{layer index: generator state} of every layer that draws random numbers itself (dropout):
    ``layer.rng_state()`` when the layer offers it, else its ``rng`` generator's state."""
    states = {}
    for index, layer in enumerate(network.layers):
        if callable(getattr(layer, "rng_state", None)):
            states[str(index)] = layer.rng_state()
        elif isinstance(getattr(layer, "rng", None), np.random.Generator):
            states[str(index)] = layer.rng.bit_generator.state
    return states


def set_layer_rng_states(network, states):
    for index, state in states.items():
        layer = network.layers[int(index)]
        if callable(getattr(layer, "set_rng_state", None)):
            layer.set_rng_state(state)
        else:
            layer.rng.bit_generator.state = state


class Interrupt:
    """First Ctrl-C asks the loop to stop at the next step boundary; a second one aborts."""

    def __init__(self, after_steps=None):
        self.requested = False
        self.after_steps = after_steps
        self.previous = None

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self, steps_done):
        if self.after_steps is not None and steps_done >= self.after_steps:
            self.requested = True
        return self.requested


def save_checkpoint(path, model, optimizer, state):
    arrays = {f"model/{k}": v for k, v in model.network.state().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state().items()})
    arrays["permutation"] = state.pop("permutation")
    meta = {"format": CHECKPOINT_FORMAT, **state}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_savez(path, arrays)
    state["permutation"] = arrays["permutation"]


def load_checkpoint(path):
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--resume {path}: is a folder; give the run's .checkpoint.npz file")
    if path.is_symlink() and not path.exists():
        raise UserError(f"--resume {path}: is a broken symbolic link or a link loop")
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["__meta__"].tobytes().decode())
            arrays = {name: archive[name] for name in archive.files}
    except Exception as error:  # any unreadable file is the user's problem, reported in one line
        raise UserError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a training checkpoint of this project")
    return meta, arrays


def load_data(args):
    directory = resolve_data_dir(args.data)
    ensure_mnist(directory, download_if_missing=getattr(args, "download", False))
    train_images, train_labels, num_classes = load_dataset(directory, "train",
                                                           getattr(args, "num_classes", None))
    test_images, test_labels, _ = load_dataset(directory, "test", num_classes)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise UserError(f"{directory}: training images are {train_images.shape[1:]} but test images "
                        f"are {test_images.shape[1:]}")
    if args.limit:
        train_images, train_labels = train_images[:args.limit], train_labels[:args.limit]
        test_images, test_labels = test_images[:args.limit], test_labels[:args.limit]
    split_rng = np.random.default_rng([args.seed, 0])
    order = split_rng.permutation(len(train_images))
    n_val = int(round(len(order) * args.val_fraction))
    val_index, train_index = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train_index) == 0:
        raise UserError("no training images left after the validation split; raise --limit or lower --val-fraction")
    return (train_images[train_index], train_labels[train_index],
            train_images[val_index], train_labels[val_index], test_images, test_labels, num_classes)


def model_options(spec, args):
    return {option: getattr(args, option) for option in spec.options}


def make_optimizer(args, model):
    if args.optimizer == "adam":
        return Adam(model.network.parameters(), lr=args.lr)
    return SGD(model.network.parameters(), lr=args.lr, momentum=args.momentum)


def run(argv=None, model=None, prog=None):
    """Parse flags and train; returns the process exit status.  ``model`` fixes --model
    (train_cnn.py, train_lstm.py)."""
    try:
        return _run(sys.argv[1:] if argv is None else list(argv), model, prog)
    except KeyboardInterrupt:  # a Ctrl-C the trainer was not waiting for (a second one, flags)
        print("error: interrupted; every file on disk is whole (all writes are atomic) and the "
              "last checkpoint, if there is one, resumes the run", file=sys.stderr)
        return EXIT_INTERRUPTED


# Flags that may differ on --resume: where the data is, how fast, how much is shown.
RESUME_MAY_CHANGE = {"resume", "quiet", "data", "download", "threads", "interrupt_after",
                     "interrupt_at_phase", "model", "model_file"}


@exit_on_user_error
def _run(argv, fixed_model, prog):
    spec = choose_model(argv, fixed_model)
    prog = prog or "python -m models.train"
    parser = make_parser(spec, prog)
    args = parser.parse_args(argv)
    if spec is None and not args.resume:
        parser.error("say which model to train: --model NAME (" + ", ".join(registry.names())
                     + ") or --model-file PATH")
    if fixed_model and args.model and args.model != fixed_model:
        parser.error(f"{prog} trains the {fixed_model} model; --model {args.model} belongs to "
                     "python -m models.train")
    resume_meta = resume_arrays = None
    if args.resume:
        resume_meta, resume_arrays = load_checkpoint(args.resume)
        resumed = checkpoint_model(args.resume, resume_meta)
        if spec is not None and resumed.name != spec.name:
            raise UserError(f"{args.resume}: is a checkpoint of the {resumed.title}, not the {spec.title}")
        spec = resumed
        saved = check_saved_args(args.resume, make_parser(spec, prog), resume_meta.get("args"))
        check_saved_progress(args.resume, resume_meta)
        # The run continues with the flags it started with.  Where the data is and how fast may
        # change; --epochs may grow; any other flag given again must match, or we refuse.
        given = explicit_flags(make_parser(spec, prog), argv)
        for dest, value in given.items():
            if dest in RESUME_MAY_CHANGE or value == saved.get(dest):
                continue
            flag = "--" + dest.replace("_", "-")
            if dest == "epochs":
                if value <= resume_meta["epoch"]:
                    raise UserError(f"--epochs {value}: the run being resumed has already finished "
                                    f"{resume_meta['epoch']} epochs")
                print(f"note: training to {value} epochs instead of {saved['epochs']}"
                      + ("; the cosine schedule now decays over the new length"
                         if saved["schedule"] == "cosine" else ""), file=sys.stderr)
                saved["epochs"] = value
            elif dest == "out":
                raise UserError(f"--out {value}: a resumed run writes where it started ({saved['out']}); "
                                "copy the weights from there when it has finished")
            elif dest == "force":
                raise UserError("--force does nothing with --resume; to start over, run the "
                                "original command with --force instead")
            else:
                shown = value if not isinstance(value, bool) else ("on" if value else "off")
                raise UserError(f"{flag} {shown}: the run being resumed trains with {flag} "
                                f"{saved.get(dest)}, and a resumed run keeps its flags; start a new "
                                "run (another --out) to change it")
        keep = {"quiet": args.quiet, "interrupt_after": args.interrupt_after,
                "interrupt_at_phase": args.interrupt_at_phase, "resume": args.resume}
        keep.update({k: getattr(args, k) for k in ("data", "threads") if getattr(args, k) is not None})
        args = argparse.Namespace(**{**saved, **keep})
        check_output(args.out, True, prog)
    else:
        args.model = spec.name
        if args.out is None:
            args.out = str(new_run_path(spec.name))
        check_output(args.out, args.force, prog)
    if args.threads:
        from nn.threads import limit_threads
        limit_threads(args.threads)
    args.prog = prog
    return train(spec, args, resume_meta, resume_arrays)


def explicit_flags(parser, argv):
    """{dest: value} of only the flags written in ``argv`` (defaults left out)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def checkpoint_model(path, meta):
    name = meta.get("model")
    if not isinstance(name, str):
        raise UserError(f"{path}: the checkpoint names no model")
    try:
        return registry.get(name)
    except UserError:
        raise UserError(f"{path}: is a checkpoint of a model {name!r} that is not defined here; "
                        "give its file with --model-file PATH") from None


def check_saved_args(path, parser, saved):
    """The flags stored in a checkpoint, each checked as the command line would check it."""
    if not isinstance(saved, dict):
        raise UserError(f"{path}: the checkpoint holds no flags ('args' missing or not an object)")
    saved = dict(saved)
    for action in parser._actions:
        dest = action.dest
        if dest == "help":
            continue
        if dest not in saved:
            if action.default is None or action.default is False:
                saved[dest] = action.default  # a flag newer than the checkpoint
                continue
            raise UserError(f"{path}: the checkpoint lacks the setting {dest!r}")
        value = saved[dest]
        if value is None and action.default is None:
            continue
        if isinstance(action.default, bool) or action.nargs == 0:
            good = isinstance(value, bool)
        elif action.choices is not None:
            good = value in action.choices
        elif action.type is not None:
            try:
                good = (type(value) is type(action.type(str(value)))
                        and action.type(str(value)) == value)
            except (ValueError, TypeError, KeyError, argparse.ArgumentTypeError):
                good = False
        else:
            good = isinstance(value, str)
        if not good:
            raise UserError(f"{path}: the checkpoint's setting {dest!r} is {value!r}, which "
                            f"--{dest.replace('_', '-')} would refuse")
    return saved


CHECKPOINT_COUNTERS = ("epoch", "step_in_epoch", "global_step", "best_epoch", "epoch_correct",
                       "epoch_seen")
CHECKPOINT_NUMBERS = ("epoch_loss_sum", "epoch_seconds")


def check_saved_progress(path, meta):
    """Types and ranges of the progress fields (counters, generator states, history)."""
    for key in CHECKPOINT_COUNTERS:
        value = meta.get(key)
        if type(value) is not int or value < 0:
            raise UserError(f"{path}: the checkpoint's {key!r} is {value!r}, not a count")
    for key in CHECKPOINT_NUMBERS:
        value = meta.get(key)
        if type(value) not in (int, float) or not math.isfinite(value):
            raise UserError(f"{path}: the checkpoint's {key!r} is {value!r}, not a number")
    best = meta.get("best_val_accuracy")
    if best is not None and (type(best) not in (int, float) or not -1 <= best <= 1):
        raise UserError(f"{path}: the checkpoint's 'best_val_accuracy' is {best!r}")
    if not isinstance(meta.get("history"), list) or len(meta["history"]) != meta["epoch"]:
        raise UserError(f"{path}: the checkpoint's history does not list its {meta['epoch']} epochs")
    for key in ("model_rng", "data_rng"):
        if not isinstance(meta.get(key), dict):
            raise UserError(f"{path}: the checkpoint's {key!r} is not a generator state")
    reference, high = meta.get("loss_reference"), meta.get("high_loss_steps", 0)
    if ((reference is not None and (type(reference) not in (int, float) or not math.isfinite(reference)))
            or type(high) is not int or high < 0):
        raise UserError(f"{path}: the checkpoint's divergence watch ({reference!r}, {high!r}) is invalid")
    if not isinstance(meta.get("layer_rngs", {}), dict):
        raise UserError(f"{path}: the checkpoint's 'layer_rngs' is not an object")


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


MAX_PARAMETERS = 20_000_000   # far above any model of this kit (the CNN has 356,234)
_PROBE = 16


def probe_batchnorm(spec, options, image_shape, num_classes):
    """Whether the model has a BatchNorm layer (built once, with a throwaway generator)."""
    network = spec.build(np.random.default_rng(0), image_shape=tuple(image_shape),
                         num_classes=num_classes, **options)
    return has_batchnorm(network)


def has_batchnorm(network):
    return any(isinstance(layer, BatchNorm) for layer in getattr(network, "layers", [network]))


def probe_model(spec, options, image_shape, num_classes):
    """(estimated parameter count, contains BatchNorm) of the model the options describe,
    without building it: large integer options (``hidden``) are scaled down to 16, 32 and 48,
    and the counts of those small models extrapolated with a quadratic (weights grow at most
    with the square of a layer size), so --hidden 1000000 is refused before it allocates.
    (None, None) when no option is large (the model itself is small) or cannot be scaled."""
    large = {k: v for k, v in options.items()
             if type(v) is int and v > 3 * _PROBE}

    def build(size):
        scaled = dict(options)
        if large:
            top = max(large.values())
            scaled.update({k: max(1, round(v * size / top)) for k, v in large.items()})
        return spec.build(np.random.default_rng(0), image_shape=tuple(image_shape),
                          num_classes=num_classes, **scaled)

    if not large:
        return None, None  # the model's own size: built next, as cheaply as a probe
    sizes = [_PROBE, 2 * _PROBE, 3 * _PROBE]
    try:
        networks = [build(size) for size in sizes]
    except Exception:  # a model file whose options cannot shrink: no estimate, no cap
        return None, None
    counts = [network.num_parameters() for network in networks]
    # Lagrange form of the quadratic through the three points, at the real size.
    x = max(large.values())
    estimate = sum(counts[i] * np.prod([(x - sizes[j]) / (sizes[i] - sizes[j])
                                         for j in range(3) if j != i]) for i in range(3))
    return int(max(estimate, counts[-1])), has_batchnorm(networks[0])


def train(spec, args, resume_meta=None, resume_arrays=None):
    try:
        setup = start(spec, args, resume_meta, resume_arrays)
    except KeyboardInterrupt:
        print("error: interrupted during start-up; nothing was written"
              + (f" (the checkpoint {args.resume} is unchanged)" if args.resume else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    return loop(spec, args, *setup)


def start(spec, args, resume_meta, resume_arrays):
    """Everything before the first step: data, checks, kernels, the model, the restored state."""
    model_name = spec.name
    train_x, train_y, val_x, val_y, test_x, test_y, num_classes = load_data(args)
    options = model_options(spec, args)
    parameters, batchnorm = probe_model(spec, options, train_x.shape[1:], num_classes)
    if parameters is not None and parameters > MAX_PARAMETERS:
        given = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())
        raise UserError(f"{given}: the {spec.title} would have about {parameters:,} parameters "
                        f"(about {parameters * 16 / 1e9:,.1f} GB to train); the limit is "
                        f"{MAX_PARAMETERS:,}")
    if batchnorm is None:  # no probe was needed: the model is small, look at it
        batchnorm = probe_batchnorm(spec, options, train_x.shape[1:], num_classes)
    if batchnorm and args.batch_size == 1:
        raise UserError(f"--batch-size 1: the {spec.title} normalises each batch (BatchNorm), and one "
                        "image normalises to zero, so it would learn nothing; use 2 or more")
    if batchnorm and len(train_x) == 1:
        raise UserError(f"one training image: the {spec.title} normalises each batch (BatchNorm) and "
                        "needs at least two; raise --limit or lower --val-fraction")
    phase(args, "startup")
    warm_up(extra=(augment.warm_up,))  # compile or load every Numba kernel now, so the first epoch's rate is honest

    model_rng = np.random.default_rng([args.seed, 1])  # initial weights, then dropout masks
    data_rng = np.random.default_rng([args.seed, 2])   # shuffling and augmentation
    model = build_model(model_name, rng=model_rng, num_classes=num_classes,
                        image_shape=train_x.shape[1:], **options)
    optimizer = make_optimizer(args, model)

    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    if batchnorm and len(train_x) % args.batch_size == 1:
        steps_per_epoch -= 1  # BatchNorm: the one image left over joins the epoch's last batch
    state = dict(model=model_name, args=vars(args), epoch=0, step_in_epoch=0, global_step=0,
                 history=[], best_val_accuracy=-1.0 if len(val_x) else None, best_epoch=0,
                 epoch_loss_sum=0.0, epoch_correct=0, epoch_seen=0, epoch_seconds=0.0,
                 permutation=np.arange(len(train_x)), permutation_epoch=-1,
                 loss_reference=None, high_loss_steps=0)
    if resume_meta is not None:
        restore(args.resume, resume_meta, resume_arrays, state, model, optimizer, model_rng, data_rng,
                steps_per_epoch, len(train_x))
        print(f"resuming {args.resume}: epoch {state['epoch'] + 1}, step "
              f"{state['step_in_epoch']}/{steps_per_epoch}", file=sys.stderr)
    else:
        print(f"{spec.title}: {model.num_parameters():,} parameters, {num_classes} classes; "
              f"{len(train_x):,} training, {len(val_x):,} validation, {len(test_x):,} test images",
              file=sys.stderr)
    data = (train_x, train_y, val_x, val_y, test_x, test_y)
    return data, model, optimizer, model_rng, data_rng, state, steps_per_epoch


def restore(path, meta, arrays, state, model, optimizer, model_rng, data_rng, steps_per_epoch, n_train):
    """Load a checkpoint into the fresh model, optimizer, generators and ``state``, after checking
    every array's key, shape and dtype and every counter against this run's data and flags."""
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    try:
        check_state(path, model_state, model.network.state())
        check_state(path, optim_state, optimizer.state())
    except UserError as error:
        raise UserError(f"{error} (checkpoint of another model or options?)") from None
    permutation = arrays.get("permutation")
    if (permutation is None or permutation.shape != (n_train,) or permutation.dtype.kind not in "iu"
            or not np.array_equal(np.sort(permutation), np.arange(n_train))):
        raise UserError(f"{path}: the saved data order is not an order of this run's {n_train:,} "
                        "training images (another --data or --limit?)")
    epochs = state["args"]["epochs"]
    if not (meta["epoch"] <= epochs and meta["step_in_epoch"] <= steps_per_epoch
            and meta["global_step"] == meta["epoch"] * steps_per_epoch + meta["step_in_epoch"]
            and (meta["step_in_epoch"] < steps_per_epoch or meta["epoch"] == epochs)):
        raise UserError(f"{path}: epoch {meta['epoch']}, step {meta['step_in_epoch']} (global step "
                        f"{meta['global_step']}) does not fit {steps_per_epoch} steps an epoch")
    model.network.load_state(model_state)
    optimizer.load_state(optim_state)
    try:
        set_layer_rng_states(model.network, meta.get("layer_rngs", {}))
        model_rng.bit_generator.state = meta["model_rng"]
        data_rng.bit_generator.state = meta["data_rng"]
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
        raise UserError(f"{path}: a saved generator state is invalid ({error})") from None
    for key in ("epoch", "step_in_epoch", "global_step", "history", "best_val_accuracy",
                "best_epoch", "epoch_loss_sum", "epoch_correct", "epoch_seen", "epoch_seconds"):
        state[key] = meta[key]
    for key in ("loss_reference", "high_loss_steps"):
        state[key] = meta.get(key, state[key])
    # Older checkpoints: a permutation is in use only once its epoch's first step is done.
    state["permutation_epoch"] = meta.get(
        "permutation_epoch", state["epoch"] if state["step_in_epoch"] else -1)
    state["permutation"] = permutation


def written(path, write):
    """Run one atomic ``write`` of ``path``; a full disk or a folder gone read-only is one line."""
    try:
        write()
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}; the file there before, "
                        "if any, is unchanged") from None


# A loss this many times its value at the start, this many steps in a row, is divergence.
DIVERGED_FACTOR = 10.0
DIVERGED_STEPS = 10


def loop(spec, args, data, model, optimizer, model_rng, data_rng, state, steps_per_epoch):
    model_name = spec.name
    train_x, train_y, val_x, val_y, test_x, test_y = data
    criterion = SoftmaxCrossEntropy()
    total_steps = steps_per_epoch * args.epochs
    out = Path(args.out)
    history_path, checkpoint_path = sibling_paths(out)
    validating = len(val_x) > 0

    def checkpoint():
        state["layer_rngs"] = layer_rng_states(model.network)
        state["model_rng"] = model_rng.bit_generator.state
        state["data_rng"] = data_rng.bit_generator.state
        written(checkpoint_path, lambda: save_checkpoint(checkpoint_path, model, optimizer, state))

    def save_history():
        text = json.dumps({
            "model": model_name, "args": vars(args), "epochs": state["history"],
            "best_epoch": state["best_epoch"], "best_val_accuracy": state["best_val_accuracy"],
            **({"test": state["test"]} if "test" in state else {})}, indent=2, allow_nan=False)
        written(history_path, lambda: atomic_write_text(history_path, text + "\n"))

    def kept():
        if not state["best_epoch"]:
            return "no weights were written"
        if state["best_val_accuracy"] is None:
            return f"the last good weights (epoch {state['best_epoch']}) are in {out}"
        return (f"the last good weights (epoch {state['best_epoch']}, validation "
                f"{100 * state['best_val_accuracy']:.2f}%) are in {out}")

    def stop(started=None):
        """Ctrl-C: save where we are (at a step boundary) and say how to go on."""
        if started is not None:
            state["epoch_seconds"] = time.perf_counter() - started
        checkpoint()
        where = (f"after the last epoch (the test pass remains)" if state["epoch"] >= args.epochs
                 else f"at epoch {state['epoch'] + 1}, step {state['step_in_epoch']}/{steps_per_epoch}")
        print(f"interrupted {where}; checkpoint saved. Resume with:\n"
              f"  {args.prog} --resume {checkpoint_path}", file=sys.stderr)
        return EXIT_INTERRUPTED

    # Overflow on the way to a NaN loss is reported once, by the check below, not as warnings.
    with Interrupt(args.interrupt_after) as interrupt, np.errstate(over="ignore", invalid="ignore"):
        while state["epoch"] < args.epochs:
            epoch = state["epoch"]
            if state["step_in_epoch"] == 0:
                phase(args, f"epoch-start:{epoch + 1}")
            # Checked before anything of the epoch is drawn, so a checkpoint at a boundary holds
            # the data generator exactly as the uninterrupted run has it there.
            if interrupt.check(state["global_step"]):
                return stop()
            if state["permutation_epoch"] != epoch:
                state["permutation"] = data_rng.permutation(len(train_x))
                state["permutation_epoch"] = epoch
            bar = None if args.quiet else ProgressBar(
                len(train_x), f"epoch {epoch + 1}/{args.epochs}")
            if bar is not None:
                bar.done = min(state["step_in_epoch"] * args.batch_size, len(train_x))
            started = time.perf_counter() - state["epoch_seconds"]
            while state["step_in_epoch"] < steps_per_epoch:
                phase(args, f"step:{state['global_step']}")
                if interrupt.check(state["global_step"]):
                    if bar is not None:
                        bar.close()
                    return stop(started)
                step = state["step_in_epoch"]
                last = step == steps_per_epoch - 1  # takes the rest (a BatchNorm model's odd image too)
                index = state["permutation"][step * args.batch_size:None if last else (step + 1) * args.batch_size]
                images, labels = train_x[index], train_y[index]
                if args.augment:
                    images = random_affine(images, data_rng)
                logits = model.network.forward(model.to_network_input(images), training=True)
                loss = criterion.forward(logits, labels)
                if not math.isfinite(loss):
                    if bar is not None:
                        bar.close()
                    print(f"error: the loss became {loss} at epoch {epoch + 1}, step {step + 1}: "
                          f"training diverged (try a lower --lr); {kept()}", file=sys.stderr)
                    return EXIT_DIVERGED
                # Divergence without a NaN: the loss stays far above where it started.
                if state["loss_reference"] is None:
                    state["loss_reference"] = float(max(loss, math.log(len(logits[0]))))
                far_above = loss > DIVERGED_FACTOR * state["loss_reference"]
                state["high_loss_steps"] = state["high_loss_steps"] + 1 if far_above else 0
                if state["high_loss_steps"] >= DIVERGED_STEPS:
                    if bar is not None:
                        bar.close()
                    print(f"error: the loss stayed above {DIVERGED_FACTOR:g} times its starting value "
                          f"{state['loss_reference']:.3g} for {DIVERGED_STEPS} steps (now {loss:.3g}, "
                          f"epoch {epoch + 1}, step {step + 1}): training diverged (try a lower --lr); "
                          f"{kept()}", file=sys.stderr)
                    return EXIT_DIVERGED
                model.network.backward(criterion.backward())
                optimizer.lr = learning_rate(args, state["global_step"], total_steps)
                optimizer.step()
                state["step_in_epoch"] += 1
                state["global_step"] += 1
                state["epoch_loss_sum"] += loss * len(labels)
                state["epoch_correct"] += int((logits.argmax(axis=1) == labels).sum())
                state["epoch_seen"] += len(labels)
                if bar is not None:
                    bar.update(len(labels), loss=state["epoch_loss_sum"] / state["epoch_seen"],
                               acc=state["epoch_correct"] / state["epoch_seen"])
            if bar is not None:
                bar.close()
            seconds = time.perf_counter() - started
            # A Ctrl-C from here on lets the epoch finish (validation, weights, checkpoint): the
            # next check, at the top of the loop or after it, stops at the boundary.
            phase(args, f"validation:{epoch + 1}")
            # No validation images (--val-fraction 0): null in the history, every epoch the best.
            val_loss, val_accuracy = evaluate_batches(model, val_x, val_y) if validating else (None, None)
            record = dict(epoch=epoch + 1,
                          train_loss=state["epoch_loss_sum"] / state["epoch_seen"],
                          train_accuracy=state["epoch_correct"] / state["epoch_seen"],
                          val_loss=val_loss, val_accuracy=val_accuracy,
                          lr=learning_rate(args, state["global_step"] - 1, total_steps),
                          seconds=seconds, images_per_second=state["epoch_seen"] / seconds)
            state["history"].append(record)
            improved = not validating or val_accuracy > state["best_val_accuracy"]
            if improved:
                state["best_val_accuracy"] = val_accuracy
                state["best_epoch"] = epoch + 1
                written(out, lambda: model.save(out, extra={
                    "epoch": epoch + 1, "val_accuracy": val_accuracy, "seed": args.seed, "args": vars(args)}))
            validation = (f"val_loss {val_loss:.4f}  val_acc {100 * val_accuracy:.2f}%" if validating
                          else "no validation")
            print(f"epoch {epoch + 1}/{args.epochs}: loss {record['train_loss']:.4f}  "
                  f"acc {100 * record['train_accuracy']:.2f}%  {validation}  lr {record['lr']:.2e}  "
                  f"{format_duration(seconds)} ({record['images_per_second']:,.0f} img/s)"
                  + ("  *best*" if improved else ""), file=sys.stderr)
            state.update(epoch=epoch + 1, step_in_epoch=0, epoch_loss_sum=0.0, epoch_correct=0,
                         epoch_seen=0, epoch_seconds=0.0)
            phase(args, f"checkpoint:{epoch + 1}")
            checkpoint()
            save_history()
        if interrupt.check(state["global_step"]):
            return stop()

    try:
        phase(args, "test")
        best = load_model(out, expect=model_name)
        test_loss, test_accuracy = evaluate_batches(best, test_x, test_y)
    except KeyboardInterrupt:
        print(f"error: interrupted during the final test pass; the weights are in {out}; "
              f"{args.prog} --resume {checkpoint_path} runs the test pass", file=sys.stderr)
        return EXIT_INTERRUPTED
    state["test"] = {"loss": test_loss, "accuracy": test_accuracy, "images": len(test_x),
                     "epoch": state["best_epoch"]}
    save_history()
    checkpoint_path.unlink(missing_ok=True)  # finished: nothing left to resume
    print(f"test accuracy {100 * test_accuracy:.2f}% on {len(test_x):,} images "
          f"(weights of epoch {state['best_epoch']}, written to {out}; history in {history_path})")
    return 0


if __name__ == "__main__":
    sys.exit(run())
