"""Training the reference models on MNIST: the loop behind train_cnn.py and train_lstm.py.

What a run does, in order:
  1. read the IDX files (any problem -> one-line error, nothing written);
  2. split the 60,000 training images into train / validation with a seeded permutation;
  3. per epoch: shuffle, optionally distort each batch (--augment), forward, loss, backward,
     optimizer step with the scheduled learning rate; a progress bar shows running loss,
     accuracy, images/s and ETA; then the validation loss and accuracy;
  4. whenever validation accuracy improves, write the weights to --out (atomically), and after
     every epoch a checkpoint and the history JSON beside it;
  5. at the end, the test accuracy of the best weights on the 10,000 test images.

Reproducibility: three generators derived from --seed drive the split, the model (initial
weights and dropout masks) and the data order/augmentation.  Their states are saved in the
checkpoint, so a run interrupted with Ctrl-C and resumed with --resume ends with exactly the
weights of an uninterrupted run.
"""
import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

from models.base import build_model, load_model
from nn.augment import random_affine
from nn.cli import CommandLineParser, fraction, positive_float, positive_int  # noqa: F401 (re-exported)
from nn.data import require_mnist, resolve_data_dir
from nn.errors import UserError, exit_on_user_error
from nn.idx import load_mnist_float
from nn.losses import SoftmaxCrossEntropy, log_softmax
from nn.optim import SGD, Adam
from nn.progress import ProgressBar, format_duration
from nn.serialize import atomic_savez, atomic_write_text
from nn.warmup import warm_up
from nn import augment

CHECKPOINT_FORMAT = "cnn-vs-lstm-numpy/checkpoint"
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3

# Defaults per model; the flags override them.
DEFAULTS = {
    "cnn": dict(lr=1e-3, out="weights/cnn.npz"),
    "lstm": dict(lr=1e-3, out="weights/lstm.npz"),
}


def make_parser(model_name):
    defaults = DEFAULTS[model_name]
    parser = CommandLineParser(
        prog=f"train_{model_name}.py",
        description=f"Train the reference {model_name.upper()} on the MNIST IDX files and write its weights.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--data", metavar="DIR", help="folder with the MNIST IDX files (default: $MNIST_DIR, else ./data/mnist)")
    add("--epochs", type=positive_int, default=20, help="passes over the training split")
    add("--batch-size", type=positive_int, default=64, help="images per optimizer step")
    add("--lr", type=positive_float, default=defaults["lr"], help="peak learning rate")
    add("--optimizer", choices=("adam", "sgd"), default="adam", help="adam, or sgd with --momentum")
    add("--momentum", type=float, default=0.9, help="momentum for --optimizer sgd")
    add("--schedule", choices=("constant", "cosine"), default="constant",
        help="learning rate over the run: constant, or cosine decay to --lr * --final-lr-factor")
    add("--final-lr-factor", type=float, default=0.01, help="end of the cosine schedule, relative to --lr")
    add("--augment", action="store_true",
        help="distort every training batch: shifts up to 2 px, rotations up to 10 deg, scaling 0.9-1.1")
    add("--seed", type=int, default=0, help="seed for the split, the initial weights, dropout and data order")
    add("--val-fraction", type=fraction, default=0.2, help="share of the training images held out for validation")
    add("--limit", type=positive_int, metavar="N", help="use only the first N training and test images (quick runs)")
    add("--out", metavar="PATH", default=defaults["out"],
        help="weights file to write (best validation accuracy); history JSON and checkpoint go beside it")
    add("--resume", metavar="CHECKPOINT", help="continue an interrupted run from its checkpoint file")
    add("--threads", type=positive_int, help="CPU threads for BLAS and Numba (default: all cores)")
    if model_name == "lstm":
        add("--hidden", type=positive_int, default=64, help="LSTM hidden units")
    add("--quiet", action="store_true", help="no progress bar, only per-epoch lines")
    # For tests: behave as if Ctrl-C arrived after this many optimizer steps.
    add("--interrupt-after", type=positive_int, help=argparse.SUPPRESS)
    return parser


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
    require_mnist(directory)
    train_images, train_labels = load_mnist_float(directory, "train")
    test_images, test_labels = load_mnist_float(directory, "test")
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
            train_images[val_index], train_labels[val_index], test_images, test_labels)


def model_options(model_name, args):
    return {"hidden": args.hidden} if model_name == "lstm" else {}


def make_optimizer(args, model):
    if args.optimizer == "adam":
        return Adam(model.network.parameters(), lr=args.lr)
    return SGD(model.network.parameters(), lr=args.lr, momentum=args.momentum)


def run(model_name, argv=None):
    """Parse flags and train; returns the process exit status."""
    return _run(model_name, argv)


@exit_on_user_error
def _run(model_name, argv):
    parser = make_parser(model_name)
    args = parser.parse_args(argv)
    resume_meta = resume_arrays = None
    if args.resume:
        resume_meta, resume_arrays = load_checkpoint(args.resume)
        if resume_meta["model"] != model_name:
            raise UserError(f"{args.resume}: is a checkpoint of the {resume_meta['model'].upper()}, "
                            f"not the {model_name.upper()}")
        # The run continues with the flags it started with; only where and how fast may change.
        # --data and --threads only when given again (the files may have moved).
        keep = {"quiet": args.quiet, "interrupt_after": args.interrupt_after, "resume": args.resume}
        keep.update({k: getattr(args, k) for k in ("data", "threads") if getattr(args, k) is not None})
        args = argparse.Namespace(**{**resume_meta["args"], **keep})
    if args.threads:
        from nn.threads import limit_threads
        limit_threads(args.threads)
    return train(model_name, args, resume_meta, resume_arrays)


def train(model_name, args, resume_meta=None, resume_arrays=None):
    train_x, train_y, val_x, val_y, test_x, test_y = load_data(args)
    warm_up(extra=(augment.warm_up,))  # compile or load every Numba kernel now, so the first epoch's rate is honest
    out = Path(args.out)
    history_path, checkpoint_path = sibling_paths(out)

    model_rng = np.random.default_rng([args.seed, 1])  # initial weights, then dropout masks
    data_rng = np.random.default_rng([args.seed, 2])   # shuffling and augmentation
    model = build_model(model_name, rng=model_rng, **model_options(model_name, args))
    optimizer = make_optimizer(args, model)
    criterion = SoftmaxCrossEntropy()

    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    state = dict(model=model_name, args=vars(args), epoch=0, step_in_epoch=0, global_step=0,
                 history=[], best_val_accuracy=-1.0, best_epoch=0,
                 epoch_loss_sum=0.0, epoch_correct=0, epoch_seen=0, epoch_seconds=0.0,
                 permutation=np.arange(len(train_x)))
    if resume_meta is not None:
        model.network.load_state({k[len("model/"):]: v for k, v in resume_arrays.items()
                                  if k.startswith("model/")})
        optimizer.load_state({k[len("optim/"):]: v for k, v in resume_arrays.items()
                              if k.startswith("optim/")})
        model_rng.bit_generator.state = resume_meta["model_rng"]
        data_rng.bit_generator.state = resume_meta["data_rng"]
        for key in ("epoch", "step_in_epoch", "global_step", "history", "best_val_accuracy",
                    "best_epoch", "epoch_loss_sum", "epoch_correct", "epoch_seen", "epoch_seconds"):
            state[key] = resume_meta[key]
        state["permutation"] = resume_arrays["permutation"]
        print(f"resuming {checkpoint_path if args.resume is None else args.resume}: epoch "
              f"{state['epoch'] + 1}, step {state['step_in_epoch']}/{steps_per_epoch}", file=sys.stderr)
    else:
        print(f"{model_name.upper()}: {model.num_parameters():,} parameters; "
              f"{len(train_x):,} training, {len(val_x):,} validation, {len(test_x):,} test images",
              file=sys.stderr)

    def checkpoint():
        state["model_rng"] = model_rng.bit_generator.state
        state["data_rng"] = data_rng.bit_generator.state
        save_checkpoint(checkpoint_path, model, optimizer, state)

    def save_history():
        atomic_write_text(history_path, json.dumps({
            "model": model_name, "args": vars(args), "epochs": state["history"],
            "best_epoch": state["best_epoch"], "best_val_accuracy": state["best_val_accuracy"],
            **({"test": state["test"]} if "test" in state else {})}, indent=2) + "\n")

    # Overflow on the way to a NaN loss is reported once, by the check below, not as warnings.
    with Interrupt(args.interrupt_after) as interrupt, np.errstate(over="ignore", invalid="ignore"):
        while state["epoch"] < args.epochs:
            epoch = state["epoch"]
            if state["step_in_epoch"] == 0:
                state["permutation"] = data_rng.permutation(len(train_x))
            bar = None if args.quiet else ProgressBar(
                len(train_x), f"epoch {epoch + 1}/{args.epochs}")
            if bar is not None:
                bar.done = min(state["step_in_epoch"] * args.batch_size, len(train_x))
            started = time.perf_counter() - state["epoch_seconds"]
            while state["step_in_epoch"] < steps_per_epoch:
                if interrupt.check(state["global_step"]):
                    state["epoch_seconds"] = time.perf_counter() - started
                    if bar is not None:
                        bar.close()
                    checkpoint()
                    print(f"interrupted at epoch {epoch + 1}, step {state['step_in_epoch']}/"
                          f"{steps_per_epoch}; checkpoint saved. Resume with:\n"
                          f"  python train_{model_name}.py --resume {checkpoint_path}", file=sys.stderr)
                    return EXIT_INTERRUPTED
                step = state["step_in_epoch"]
                index = state["permutation"][step * args.batch_size:(step + 1) * args.batch_size]
                images, labels = train_x[index], train_y[index]
                if args.augment:
                    images = random_affine(images, data_rng)
                logits = model.network.forward(model.to_network_input(images), training=True)
                loss = criterion.forward(logits, labels)
                if not math.isfinite(loss):
                    if bar is not None:
                        bar.close()
                    kept = (f"the last good weights (epoch {state['best_epoch']}, validation "
                            f"{100 * state['best_val_accuracy']:.2f}%) are in {out}"
                            if state["best_epoch"] else "no weights were written")
                    print(f"error: the loss became {loss} at epoch {epoch + 1}, step {step + 1}: "
                          f"training diverged (try a lower --lr); {kept}", file=sys.stderr)
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
            val_loss, val_accuracy = evaluate_batches(model, val_x, val_y)
            record = dict(epoch=epoch + 1,
                          train_loss=state["epoch_loss_sum"] / state["epoch_seen"],
                          train_accuracy=state["epoch_correct"] / state["epoch_seen"],
                          val_loss=val_loss, val_accuracy=val_accuracy, lr=optimizer.lr,
                          seconds=seconds, images_per_second=state["epoch_seen"] / seconds)
            state["history"].append(record)
            improved = len(val_x) == 0 or val_accuracy > state["best_val_accuracy"]
            if improved:
                state["best_val_accuracy"] = val_accuracy if len(val_x) else 0.0
                state["best_epoch"] = epoch + 1
                model.save(out, extra={"epoch": epoch + 1, "val_accuracy": val_accuracy,
                                       "seed": args.seed, "args": vars(args)})
            print(f"epoch {epoch + 1}/{args.epochs}: loss {record['train_loss']:.4f}  "
                  f"acc {100 * record['train_accuracy']:.2f}%  val_loss {val_loss:.4f}  "
                  f"val_acc {100 * val_accuracy:.2f}%  lr {optimizer.lr:.2e}  "
                  f"{format_duration(seconds)} ({record['images_per_second']:,.0f} img/s)"
                  + ("  *best*" if improved else ""), file=sys.stderr)
            state.update(epoch=epoch + 1, step_in_epoch=0, epoch_loss_sum=0.0, epoch_correct=0,
                         epoch_seen=0, epoch_seconds=0.0)
            checkpoint()
            save_history()

    best = load_model(out, expect=model_name)
    test_loss, test_accuracy = evaluate_batches(best, test_x, test_y)
    state["test"] = {"loss": test_loss, "accuracy": test_accuracy, "images": len(test_x),
                     "epoch": state["best_epoch"]}
    save_history()
    checkpoint_path.unlink(missing_ok=True)  # finished: nothing left to resume
    print(f"test accuracy {100 * test_accuracy:.2f}% on {len(test_x):,} images "
          f"(weights of epoch {state['best_epoch']}, written to {out}; history in {history_path})")
    return 0
