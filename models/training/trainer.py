"""The trainer: any registered model on any MNIST-like IDX data set, given its recipe - the
per-digit classifiers and the number reader alike.

    from models.training.trainer import RunPlace, train
    train(spec, config, RunPlace(out="runs/cnn.npz"))      # config: a TrainingConfig

The command line (flags, their checks, ``--resume``) is :mod:`models.commands.train`; this module
is the run itself, in order:
  1. read the data through the model kind's data source - :class:`models.training.digit_data.DigitData`
     for a per-digit model (the image size and the number of classes come from the IDX files;
     the training images split into train / validation with a seeded permutation),
     :class:`models.training.reader_data.NumberData` for the reader (numbers composed from the
     digits); check the model's size (an estimate, before allocating) and that a BatchNorm
     model never sees a batch of one;
  2. per epoch: the source's batches (a shuffled order, optionally distorted; or freshly composed
     numbers), one :class:`nn.step.TrainingStep` per batch with the source's loss and the
     scheduled learning rate, the loss judged before the update; a progress bar shows running
     loss, accuracy, images/s and ETA; then the validation loss and accuracy (for the reader:
     whole numbers read exactly);
  3. whenever validation accuracy improves, write the weights (atomically), and after every
     epoch a checkpoint (:mod:`models.training.checkpoint`) and the history JSON beside them;
  4. at the end, the test accuracy of the best weights on the test images (test numbers).

Reproducibility: three generators derived from the seed drive the split, the model (initial
weights and dropout masks) and the data order/augmentation.  Their states (and any layer's own
generator) are saved in the checkpoint, and Ctrl-C is honoured only at a step boundary, before
the next epoch's shuffle is drawn (the reader's batches are drawn from the seed, the epoch and
the step alone), so a run interrupted anywhere and resumed ends with exactly
the weights of an uninterrupted run.

Stops: Ctrl-C (handled from the start, even when the process began with SIGINT ignored) ->
checkpoint, exit 130; a loss that is NaN, or above 10 times its starting value for 10 steps in a
row, or an epoch whose mean training or validation loss is (a run too short for 10 steps) ->
exit 3, the best weights so far left in place; a failed write (a full disk) -> one line naming
the file, exit 2, the last good file kept.
"""
import json
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from kit.progress import ProgressBar, format_duration
from models.base import build_model, load_model
from models.probe import check_model_spec
from models.training.checkpoint import (Checkpoint, layer_rng_states, restore, save_checkpoint,
                                        sibling_paths)
from models.training.config import TrainerCallbacks, TrainingConfig, TrainingState, config_from_flags
from models.training.digit_data import DigitData, check_no_stray_label, check_same_data, data_identity
from models.training.reader_data import NumberData
from nn.errors import UserError
from nn.layers import BatchNorm
from nn.optim import SGD, Adam
from nn.serialize import atomic_write_text
from nn.step import TrainingStep
from nn.compiling import compile_notice, estimate_seconds
from nn.threads import numpy_blas_calmed
from nn.warmup import compile_seconds, warm_up

__all__ = ["RunPlace", "train", "sibling_paths", "learning_rate", "data_identity", "probe_model",
           "check_no_stray_label", "DATA_SOURCES"]

COMPILING_LINE = "compiling kernels for this machine, first run only: ~{seconds} s"
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3
# A loss this many times its value at the start, this many steps in a row, is divergence.
DIVERGED_FACTOR = 10.0
DIVERGED_STEPS = 10
MAX_PARAMETERS = 20_000_000   # far above any model of this kit (the CNN has 356,234)
_PROBE = 16
# Where each kind of model (ModelSpec.kind) gets its data, its loss and its measure.
DATA_SOURCES = {"digit": DigitData, "sequence": NumberData}


@dataclass
class RunPlace:
    """Where and how this process runs a recipe; none of it is saved with the run."""
    out: Optional[Path]                    # the weights file; history and checkpoint go beside it
    data: Optional[str] = None             # the IDX folder (None: kit.data.resolve_data_dir's default)
    download: bool = False                 # fetch MNIST there if it is missing
    quiet: bool = False                    # no progress bar
    prog: str = "python -m models.train"   # the command a message tells to run again
    resume: Optional[Checkpoint] = None    # continue from this checkpoint
    callbacks: TrainerCallbacks = field(default_factory=TrainerCallbacks)


def learning_rate(config, step, total_steps):
    """lr for optimizer step ``step`` (0-based): constant, or cosine from lr to lr * final factor."""
    if config.schedule == "constant" or total_steps <= 1:
        return config.lr
    progress = min(step / (total_steps - 1), 1.0)
    low = config.lr * config.final_lr_factor
    return low + (config.lr - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(config, model):
    if config.optimizer == "adam":
        return Adam(model.network.parameters(), lr=config.lr)
    return SGD(model.network.parameters(), lr=config.lr, momentum=config.momentum)


def has_batchnorm(network):
    return any(isinstance(layer, BatchNorm) for layer in getattr(network, "layers", [network]))


def probe_batchnorm(spec, options, image_shape, num_classes):
    """Whether the model has a BatchNorm layer (built once, with a throwaway generator)."""
    network = spec.build(np.random.default_rng(0), image_shape=tuple(image_shape),
                         num_classes=num_classes, **options)
    return has_batchnorm(network)


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


class Interrupt:
    """First Ctrl-C asks the loop to stop at the next step boundary; a second one aborts.
    ``callbacks.stop_requested`` may ask for the same stop without a signal."""

    def __init__(self, callbacks):
        self.requested = False
        self.callbacks = callbacks
        self.previous = None

    def __enter__(self):
        # Only the main thread may set a signal handler; a run in another thread (a Dask worker's
        # task, a notebook's thread) stops through ``callbacks.stop_requested`` instead.
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self, steps_done):
        if self.callbacks.wants_stop(steps_done):
            self.requested = True
        return self.requested


def written(path, write):
    """Run one atomic ``write`` of ``path``; a full disk or a folder gone read-only is one line."""
    try:
        write()
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}; the file there before, "
                        "if any, is unchanged") from None


def history_document(config, state):
    """The history JSON: the recipe, one record per epoch, the best epoch and the test pass."""
    return {"model": config.model, "config": config.to_json(), "epochs": state.history,
            "best_epoch": state.best_epoch, "best_val_accuracy": state.best_val_accuracy,
            **({"test": state.test} if state.test is not None else {})}


def history_from_version_0(old, option_names, data=None):
    """A history as the trainer wrote it before the typed config (the flags as ``"args"``, with
    --out, the test hooks and the command's name) in today's form: the same numbers, the recipe
    as ``"config"`` (``data``: the identity of the data it trained on, if known)."""
    config = config_from_flags(old.get("args"), option_names, data, where="history")
    new = {"model": old["model"], "config": config.to_json()}
    new.update((key, value) for key, value in old.items() if key not in ("model", "args"))
    return new


def train(spec, config: TrainingConfig, place: RunPlace):
    """Train ``spec``'s model with ``config``, writing to ``place.out``; returns the exit status."""
    with ctrl_c_handled(), numpy_blas_calmed():   # full speed from a notebook too
        try:
            run = Run(spec, config, place)
        except KeyboardInterrupt:
            print("error: interrupted during start-up; nothing was written"
                  + (f" (the checkpoint {place.resume.path} is unchanged)" if place.resume else ""),
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        return run.loop()


@contextmanager
def ctrl_c_handled():
    """SIGINT raises KeyboardInterrupt for the whole run, from the start, even when the process
    was started with SIGINT ignored (``&`` in a script, some job runners): the trainer always
    honours an interrupt - a checkpoint and the --resume command - rather than having its
    Ctrl-C handling vanish with the caller's setting.  The caller's handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; a run in another thread stops by its callbacks
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Run:
    """One run: everything before the first step in ``__init__``, the epochs in :meth:`loop`."""

    def __init__(self, spec, config, place):
        self.spec, self.place, self.callbacks = spec, place, place.callbacks
        self.diverged = None   # why accept() refused a loss: the run's last line
        if spec.kind not in DATA_SOURCES:
            raise UserError(f"{spec.source or spec.name}: kind {spec.kind!r} is not one the trainer "
                            f"knows ({', '.join(DATA_SOURCES)})")
        self.data = data = DATA_SOURCES[spec.kind](config, place)
        num_classes = data.num_classes
        if place.resume is not None:
            check_same_data(place.resume, data.identity, place)
        self.config = config = replace(config, data=data.identity)
        self.check_model(num_classes)
        self.callbacks.phase("startup")

        self.model_rng = np.random.default_rng([config.seed, 1])  # initial weights, then dropout masks
        self.data_rng = np.random.default_rng([config.seed, 2])   # shuffling and augmentation
        self.model = build_model(spec.name, rng=self.model_rng, num_classes=num_classes,
                                 image_shape=data.image_shape, **config.options)
        # Compile or load this model's Numba kernels now, so the first epoch's rate is honest;
        # on a machine's first run that takes a while, and one line says so.
        network = self.model.network
        with compile_notice(lambda: COMPILING_LINE.format(seconds=estimate_seconds(compile_seconds(network)))):
            warm_up(extra=data.warm_ups, network=network)
        self.optimizer = make_optimizer(config, self.model)
        self.step = TrainingStep(self.model.network, self.optimizer, data.criterion)
        self.steps_per_epoch = data.steps_per_epoch(config.batch_size, self.batchnorm)
        self.state = TrainingState(best_val_accuracy=-1.0 if data.validating else None)
        if place.resume is not None:
            self.state = restore(place.resume, self.model, self.optimizer, self.model_rng, self.data_rng,
                                 self.steps_per_epoch, config.epochs, data)
            print(f"resuming {place.resume.path}: epoch {self.state.epoch + 1}, step "
                  f"{self.state.step_in_epoch}/{self.steps_per_epoch}", file=sys.stderr)
        else:
            print(f"{spec.title}: {self.model.num_parameters():,} parameters, {num_classes} classes; "
                  f"{data.describe()}", file=sys.stderr)
        self.out = Path(place.out)
        self.history_path, self.checkpoint_path = sibling_paths(self.out)

    def check_model(self, num_classes):
        """Refuse, before allocating, a model far too large or a BatchNorm model fed one image."""
        spec, options, shape = self.spec, self.config.options, self.data.image_shape
        parameters, batchnorm = probe_model(spec, options, shape, num_classes)
        if parameters is None or parameters <= MAX_PARAMETERS:  # small enough to build: one batch through it
            batchnorm = has_batchnorm(check_model_spec(spec, options, shape, num_classes))
        if parameters is not None and parameters > MAX_PARAMETERS:
            given = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items())
            raise UserError(f"{given}: the {spec.title} would have about {parameters:,} parameters "
                            f"(about {parameters * 16 / 1e9:,.1f} GB to train); the limit is "
                            f"{MAX_PARAMETERS:,}")
        if batchnorm is None:  # no probe was needed: the model is small, look at it
            batchnorm = probe_batchnorm(spec, options, shape, num_classes)
        if batchnorm and self.config.batch_size == 1:
            raise UserError(f"--batch-size 1: the {spec.title} normalises each batch (BatchNorm), and one "
                            "image normalises to zero, so it would learn nothing; use 2 or more")
        if batchnorm and self.data.train_count == 1:
            raise UserError(f"one training image: the {spec.title} normalises each batch (BatchNorm) and "
                            "needs at least two; raise --limit or lower --val-fraction")
        self.batchnorm = batchnorm

    # ---------------------------------------------------------------- files
    def checkpoint(self):
        generators = {"model": self.model_rng.bit_generator.state, "data": self.data_rng.bit_generator.state,
                      "layers": layer_rng_states(self.model.network)}
        written(self.checkpoint_path, lambda: save_checkpoint(
            self.checkpoint_path, self.config, self.state, self.out, self.model, self.optimizer,
            self.data.arrays(), generators))

    def save_history(self):
        text = json.dumps(history_document(self.config, self.state), indent=2, allow_nan=False)
        written(self.history_path, lambda: atomic_write_text(self.history_path, text + "\n"))

    def kept(self):
        state = self.state
        if not state.best_epoch:
            return "no weights were written"
        if state.best_val_accuracy is None:
            return f"the last good weights (epoch {state.best_epoch}) are in {self.out}"
        return (f"the last good weights (epoch {state.best_epoch}, validation "
                f"{100 * state.best_val_accuracy:.2f}%) are in {self.out}")

    def stop(self, started=None):
        """Ctrl-C: save where we are (at a step boundary) and say how to go on."""
        if started is not None:
            self.state.epoch_seconds = time.perf_counter() - started
        self.checkpoint()
        where = ("after the last epoch (the test pass remains)" if self.state.epoch >= self.config.epochs
                 else f"at epoch {self.state.epoch + 1}, step {self.state.step_in_epoch}/{self.steps_per_epoch}")
        print(f"interrupted {where}; checkpoint saved. Resume with:\n"
              f"  {self.place.prog} --resume {self.checkpoint_path}", file=sys.stderr)
        return EXIT_INTERRUPTED

    # ---------------------------------------------------------------- the epochs
    def accept(self, loss, epoch, step):
        """The loss of a step, judged before the update: a NaN, or a loss far above where it
        started for DIVERGED_STEPS steps in a row, ends the run (``self.diverged`` says why)."""
        state = self.state
        if not math.isfinite(loss):
            self.diverged = (f"error: the loss became {loss} at epoch {epoch + 1}, step {step + 1}: "
                             f"training diverged (try a lower --lr); {self.kept()}")
            return False
        # Divergence without a NaN: the loss stays far above where it started.
        if state.loss_reference is None:
            state.loss_reference = float(max(loss, math.log(self.model.num_classes)))
        far_above = loss > DIVERGED_FACTOR * state.loss_reference
        state.high_loss_steps = state.high_loss_steps + 1 if far_above else 0
        if state.high_loss_steps >= DIVERGED_STEPS:
            self.diverged = (f"error: the loss stayed above {DIVERGED_FACTOR:g} times its starting value "
                             f"{state.loss_reference:.3g} for {DIVERGED_STEPS} steps (now {loss:.3g}, "
                             f"epoch {epoch + 1}, step {step + 1}): training diverged (try a lower --lr); "
                             f"{self.kept()}")
            return False
        return True

    def loop(self):
        config, state, callbacks = self.config, self.state, self.callbacks
        total_steps = self.steps_per_epoch * config.epochs
        data = self.data
        # Overflow on the way to a NaN loss is reported once, by accept(), not as warnings.
        with Interrupt(callbacks) as interrupt, np.errstate(over="ignore", invalid="ignore"):
            while state.epoch < config.epochs:
                epoch = state.epoch
                if state.step_in_epoch == 0:
                    callbacks.phase(f"epoch-start:{epoch + 1}")
                # Checked before anything of the epoch is drawn, so a checkpoint at a boundary holds
                # the data generator exactly as the uninterrupted run has it there.
                if interrupt.check(state.global_step):
                    return self.stop()
                if state.permutation_epoch != epoch:
                    data.start_epoch(epoch, self.data_rng)
                    state.permutation_epoch = epoch
                bar = None if self.place.quiet else ProgressBar(data.train_count, f"epoch {epoch + 1}/{config.epochs}",
                                                                data.short_unit)
                if bar is not None:
                    bar.done = min(state.step_in_epoch * config.batch_size, data.train_count)
                started = time.perf_counter() - state.epoch_seconds
                while state.step_in_epoch < self.steps_per_epoch:
                    callbacks.phase(f"step:{state.global_step}")
                    if interrupt.check(state.global_step):
                        if bar is not None:
                            bar.close()
                        return self.stop(started)
                    step = state.step_in_epoch
                    last = step == self.steps_per_epoch - 1  # takes the rest (a BatchNorm model's odd image too)
                    x, labels, count = data.batch(self.model, epoch, step, last, self.data_rng)
                    result = self.step(x, labels,
                                       lr=learning_rate(config, state.global_step, total_steps),
                                       accept=lambda loss: self.accept(loss, epoch, step))
                    if not result.updated:
                        if bar is not None:
                            bar.close()
                        print(self.diverged, file=sys.stderr)
                        return EXIT_DIVERGED
                    state.step_in_epoch += 1
                    state.global_step += 1
                    state.epoch_loss_sum += result.loss * count
                    state.epoch_correct += result.correct
                    state.epoch_seen += count
                    if bar is not None:
                        bar.update(count, loss=state.epoch_loss_sum / state.epoch_seen,
                                   acc=state.epoch_correct / state.epoch_seen)
                if bar is not None:
                    bar.close()
                seconds = time.perf_counter() - started
                # A Ctrl-C from here on lets the epoch finish (validation, weights, checkpoint): the
                # next check, at the top of the loop or after it, stops at the boundary.
                callbacks.phase(f"validation:{epoch + 1}")
                if not self.end_epoch(epoch, seconds, total_steps, data.validating):
                    print(self.diverged, file=sys.stderr)
                    return EXIT_DIVERGED
                callbacks.phase(f"checkpoint:{epoch + 1}")
                self.checkpoint()
                self.save_history()
            if interrupt.check(state.global_step):
                return self.stop()
        return self.test()

    def diverged_by_epoch_end(self, epoch, train_loss, val_loss):
        """The divergence guard at the end of every epoch, for runs too short for DIVERGED_STEPS
        steps in a row: the epoch's mean training loss, or the validation loss after its last
        update, not finite or above DIVERGED_FACTOR times the starting loss ends the run."""
        reference = self.state.loss_reference
        if reference is None:
            return False
        for what, loss in (("mean training loss", train_loss), ("validation loss", val_loss)):
            if loss is not None and (not math.isfinite(loss) or loss > DIVERGED_FACTOR * reference):
                self.diverged = (f"error: the {what} of epoch {epoch + 1} is {loss:.3g}, above "
                                 f"{DIVERGED_FACTOR:g} times the starting loss {reference:.3g}: training "
                                 f"diverged (try a lower --lr); {self.kept()}")
                return True
        return False

    def end_epoch(self, epoch, seconds, total_steps, validating):
        """Validate, record the epoch, write the weights if they are the ones to keep (the best
        so far, or every epoch's with --keep final); False if the epoch shows divergence."""
        config, state, out = self.config, self.state, self.out
        # No validation images (--val-fraction 0): null in the history, every epoch the best.
        val_loss, val_accuracy, details = self.data.validate(self.model)
        if self.diverged_by_epoch_end(epoch, state.epoch_loss_sum / state.epoch_seen, val_loss):
            return False
        record = dict(epoch=epoch + 1,
                      train_loss=state.epoch_loss_sum / state.epoch_seen,
                      train_accuracy=state.epoch_correct / state.epoch_seen,
                      val_loss=val_loss, val_accuracy=val_accuracy, **details,
                      lr=learning_rate(config, state.global_step - 1, total_steps),
                      seconds=seconds, **{f"{self.data.unit}_per_second": state.epoch_seen / seconds})
        state.history.append(record)
        improved = not validating or config.keep == "final" or val_accuracy > state.best_val_accuracy
        if improved:
            state.best_val_accuracy = val_accuracy
            state.best_epoch = epoch + 1
            written(out, lambda: self.model.save(out, extra={
                "epoch": epoch + 1, "val_accuracy": val_accuracy, "seed": config.seed,
                "config": config.to_json()}))
        validation = (f"val_loss {val_loss:.4f}  val_acc {100 * val_accuracy:.2f}%" if validating
                      else "no validation")
        validation += "".join(f"  {name} {100 * value:.2f}%" for name, value in details.items())
        print(f"epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.4f}  "
              f"acc {100 * record['train_accuracy']:.2f}%  {validation}  lr {record['lr']:.2e}  "
              f"{format_duration(seconds)} ({state.epoch_seen / seconds:,.0f} {self.data.short_unit}/s)"
              + (("  *kept*" if config.keep == "final" else "  *best*") if improved else ""), file=sys.stderr)
        state.epoch, state.step_in_epoch = epoch + 1, 0
        state.epoch_loss_sum, state.epoch_correct, state.epoch_seen, state.epoch_seconds = 0.0, 0, 0, 0.0
        return True

    def test(self):
        """The test pass on the best weights; the history gets its result, the checkpoint goes."""
        state, out = self.state, self.out
        try:
            self.callbacks.phase("test")
            best = load_model(out, expect=self.spec.name)
            result = self.data.test(best)
        except KeyboardInterrupt:
            print(f"error: interrupted during the final test pass; the weights are in {out}; "
                  f"{self.place.prog} --resume {self.checkpoint_path} runs the test pass", file=sys.stderr)
            return EXIT_INTERRUPTED
        state.test = {**result, "epoch": state.best_epoch}
        self.save_history()
        self.checkpoint_path.unlink(missing_ok=True)  # finished: nothing left to resume
        print(f"{self.data.test_line(result)} "
              f"(weights of epoch {state.best_epoch}, written to {out}; history in {self.history_path})")
        return 0
