"""Training the reader (:mod:`models.reader`) on numbers composed from MNIST's training digits.

    python -m models.training.reader --out runs/reader.npz              # a new run
    python -m models.training.reader --out runs/reader.npz --resume     # go on after a stop
    python -m models.training.reader --evaluate runs/reader.npz --test-numbers 1000

Each epoch composes ``--numbers`` fresh numbers of 1-6 digits from the *training* digits
(:func:`kit.images.compose.compose_numbers`, every gap from overlapping to wide), drawn from a
generator seeded by (seed, epoch): an epoch's data is the same whether the run went through or
was resumed.  One step is :class:`nn.step.TrainingStep` with the reader's CTC loss; the learning
rate follows a cosine from ``--lr`` to 1 % of it.  After every epoch the run is measured on
numbers of 2-6 digits composed from the *test* digits (a fixed set, digits apart and digits
touching, whole-number exact match) and written, each file all or nothing:

    <out>                   the weights (load_model / read_number_image read them)
    <out stem>.checkpoint.npz   weights, optimizer state, the epoch reached (what --resume reads)
    <out stem>.history.json     the recipe and every epoch's loss and accuracies

A stop (Ctrl-C, a kill) loses at most the epoch in progress.  An existing run is never
overwritten: without --resume, a run whose files exist is refused.
"""
import argparse
import json
import math
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kit.cli import add_threads_flag, positive_float, positive_int
from kit.data import resolve_data_dir
from kit.images.compose import APART, TOUCHING, compose_numbers, mnist_pool
from kit.progress import ProgressBar, format_duration
from models.base import build_model
from models.reader import NUM_CLASSES, NumberLoss
from models.reading import read_strips
from models.training.checkpoint import sibling_paths
from models.training.lock import OutputLock
from nn.errors import UserError, WeightsError
from nn.optim import Adam
from nn.serialize import atomic_savez, atomic_write_text, check_state
from nn.step import TrainingStep, finite
from nn.threads import set_threads

HISTORY_FORMAT = "cnn-vs-lstm-numpy/reader-history"
CHECKPOINT_FORMAT = "cnn-vs-lstm-numpy/reader-checkpoint"


@dataclass
class ReaderConfig:
    """The recipe of a reader run: what the history keeps and --resume must agree with."""
    epochs: int = 12
    numbers: int = 16000          # composed training numbers per epoch
    batch_size: int = 32
    lr: float = 2e-3
    final_lr_factor: float = 0.01
    hidden: int = 96
    channels: tuple = (32, 64)
    seed: int = 0
    test_numbers: int = 300       # per condition (apart, touching), 2-6 digits, test digits


def learning_rate(config, step, total_steps):
    """Cosine decay from lr to lr * final_lr_factor over the run."""
    low = config.lr * config.final_lr_factor
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * step / max(1, total_steps)))


def test_sets(directory, count, seed=2026):
    """{condition: ComposedNumbers} of 2-6 digit numbers from MNIST's test digits: 'apart'
    (gaps 0.1-0.8 digit widths) and 'touching' (gaps -0.1-0 digit widths)."""
    images, labels = mnist_pool(directory, "test")
    return {name: compose_numbers(images, labels, np.random.default_rng([seed, k]), count,
                                  digits=(2, 6), gap=gap)
            for k, (name, gap) in enumerate((("apart", APART), ("touching", TOUCHING)))}


def exact_match(network, numbers, batch_size=100):
    """The fraction of ``numbers`` (ComposedNumbers) the network reads exactly."""
    right = 0
    for start in range(0, len(numbers.texts), batch_size):
        chunk = slice(start, start + batch_size)
        widest = int(numbers.widths[chunk].max())
        widest = -(-widest // 4) * 4
        read, _ = read_strips(network, numbers.images[chunk, :, :widest], numbers.widths[chunk])
        right += sum(a == b for a, b in zip(read, numbers.texts[chunk]))
    return right / max(1, len(numbers.texts))


def _parser():
    parser = argparse.ArgumentParser(prog="python -m models.training.reader",
                                     description="Train the reader on composed MNIST numbers.")
    defaults = ReaderConfig()
    parser.add_argument("--out", help="the weights file to write (.npz)")
    parser.add_argument("--evaluate", metavar="WEIGHTS",
                        help="only measure a reader on --test-numbers test numbers per condition")
    parser.add_argument("--resume", action="store_true", help="go on from <out>'s checkpoint")
    parser.add_argument("--data", default=None, help="the MNIST folder")
    for name in ("epochs", "numbers", "batch_size", "hidden", "test_numbers"):
        parser.add_argument("--" + name.replace("_", "-"), type=positive_int,
                            default=getattr(defaults, name))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--lr", type=positive_float, default=defaults.lr)
    add_threads_flag(parser)
    parser.add_argument("--until-epoch", type=positive_int, default=None,
                        help="stop after this many epochs (--resume goes on later)")
    return parser


def _save_checkpoint(path, model, optimizer, config, history):
    arrays = {f"model/{k}": v for k, v in model.network.state().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state().items()})
    meta = {"format": CHECKPOINT_FORMAT, "config": asdict(config), "history": history}
    arrays["__meta__"] = np.array(json.dumps(meta))
    atomic_savez(path, arrays)


def _read_checkpoint(path, config):
    """(arrays, history) of a checkpoint, or one UserError line saying what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        meta = json.loads(str(arrays.pop("__meta__")))
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{path}: not a reader checkpoint")
        meta["config"]["channels"], meta["history"]   # noqa: B018 (both must be there)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: unreadable checkpoint ({type(error).__name__}: "
                        f"{' '.join(str(error).split())})") from None
    saved = {**meta["config"], "channels": tuple(meta["config"]["channels"])}
    if saved != asdict(config):
        differs = sorted(k for k in saved if saved[k] != asdict(config).get(k))
        raise UserError(f"{path}: was made with another recipe ({', '.join(differs)}); "
                        "resume with the same flags")
    return arrays, meta["history"]


def train_reader(config, out, directory, resume=False, stream=sys.stderr, until_epoch=None):
    """Run (or resume) a reader training; returns the history (a list of epoch records).

    ``until_epoch`` stops after that many epochs are done (a run in parts, e.g. on a shared
    machine's time slots; --resume goes on), None runs to ``config.epochs``."""
    out = Path(out)
    history_path, checkpoint_path = sibling_paths(out)
    if not resume and any(p.exists() for p in (out, checkpoint_path, history_path)):
        raise UserError(f"{out}: a run is already there; add --resume to go on, or choose "
                        "another --out")
    if resume and not checkpoint_path.exists():
        raise UserError(f"{checkpoint_path}: no checkpoint to resume from")
    images, labels = mnist_pool(directory, "train")
    tests = test_sets(directory, config.test_numbers)
    model = build_model("reader", rng=np.random.default_rng(config.seed), num_classes=NUM_CLASSES,
                        image_shape=(28, 4), channels=list(config.channels), hidden=config.hidden)
    optimizer = Adam(model.network.parameters(), lr=config.lr)
    history = []
    if resume:
        arrays, history = _read_checkpoint(checkpoint_path, config)
        weights = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
        moments = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
        try:
            check_state(checkpoint_path, weights, model.network.state())
            check_state(checkpoint_path, moments, optimizer.state())
        except WeightsError as error:
            raise UserError(str(error)) from None
        model.network.load_state(weights)
        optimizer.load_state(moments)
        print(f"resuming after epoch {len(history)} of {config.epochs}", file=stream)
    step = TrainingStep(model.network, optimizer, NumberLoss())
    steps_per_epoch = -(-config.numbers // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    last = config.epochs if until_epoch is None else min(config.epochs, until_epoch)
    for epoch in range(len(history), last):
        started = time.perf_counter()
        rng = np.random.default_rng([config.seed, epoch])
        bar = ProgressBar(config.numbers, f"epoch {epoch + 1}/{config.epochs}", "num", stream)
        loss_sum, right, seen, refused = 0.0, 0, 0, 0
        for k in range(steps_per_epoch):
            size = min(config.batch_size, config.numbers - k * config.batch_size)
            batch = compose_numbers(images, labels, rng, size)
            lr = learning_rate(config, epoch * steps_per_epoch + k, total_steps)
            result = step(batch.images[:, None], (batch.targets, batch.widths,
                                                  batch.target_lengths), lr=lr, accept=finite)
            refused += not result.updated
            if result.updated:
                loss_sum += result.loss * size
                right += result.correct
                seen += size
            bar.update(size, loss=loss_sum / max(1, seen), read=right / max(1, seen))
        bar.close()
        record = {"epoch": epoch + 1, "loss": loss_sum / max(1, seen), "train_read": right / max(1, seen),
                  "refused_steps": refused, "lr_end": lr,
                  **{f"test_{name}": exact_match(model.network, numbers)
                     for name, numbers in tests.items()},
                  "seconds": round(time.perf_counter() - started, 1)}
        history.append(record)
        model.save(out, extra={"reader_epochs": epoch + 1})
        _save_checkpoint(checkpoint_path, model, optimizer, config, history)
        atomic_write_text(history_path, json.dumps(
            {"format": HISTORY_FORMAT, "config": asdict(config), "epochs": history}, indent=1))
        print(f"epoch {epoch + 1}: loss {record['loss']:.4f}, training numbers read "
              f"{100 * record['train_read']:.1f} %, test numbers read: apart "
              f"{100 * record['test_apart']:.1f} %, touching {100 * record['test_touching']:.1f} % "
              f"({format_duration(record['seconds'])})", file=stream, flush=True)
    return history


def evaluate_reader(weights, directory, count, stream=sys.stdout):
    """Print and return {condition: exact-match fraction} of the reader in ``weights`` on
    ``count`` test numbers of 2-6 digits per condition (:func:`test_sets`)."""
    from models.reading import load_reader
    model = load_reader(weights)
    scores = {}
    for name, numbers in test_sets(directory, count).items():
        started = time.perf_counter()
        scores[name] = exact_match(model.network, numbers)
        print(f"{name}: {100 * scores[name]:.1f} % of {count} test numbers read exactly "
              f"({time.perf_counter() - started:.1f} s)", file=stream, flush=True)
    return scores


def main(argv=None):
    parser = _parser()
    flags = parser.parse_args(argv)
    if (flags.out is None) == (flags.evaluate is None):
        parser.error("give --out WEIGHTS to train, or --evaluate WEIGHTS to measure")
    config = ReaderConfig(**{k: getattr(flags, k) for k in (
        "epochs", "numbers", "batch_size", "lr", "hidden", "seed", "test_numbers")})
    try:
        with set_threads(flags.threads):
            if flags.evaluate:
                evaluate_reader(flags.evaluate, resolve_data_dir(flags.data), config.test_numbers)
            else:
                with OutputLock(flags.out):       # one trainer per --out
                    train_reader(config, flags.out, resolve_data_dir(flags.data), flags.resume,
                                 until_epoch=flags.until_epoch)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; the last finished epoch is in the checkpoint (--resume goes on)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
