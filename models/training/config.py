"""What a training run is (its recipe, :class:`TrainingConfig`) and how far it has got
(:class:`TrainingState`): typed, versioned, and the only things a checkpoint or a history saves.

The recipe names the model, its options and every number that changes the weights, plus the
identity of the data (file names, sizes, SHA-256 and counts) - never a folder, an output path or
how the process was started, so a history written on one machine says nothing about its disks.
Each saved form carries ``version``; a reader refuses a version it does not know in one line.
:func:`config_from_flags` reads the flag dictionary (``"args"``) that checkpoints and histories
held before version 1.
"""
import argparse
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Optional

from kit.cli import fraction, positive_float, positive_int
from nn.errors import UserError

CONFIG_VERSION = 1
STATE_VERSION = 1

# Recipe fields: name -> (check of a value, what the check is called in messages).
_NUMBERS = {
    "epochs": positive_int, "batch_size": positive_int, "lr": positive_float,
    "momentum": fraction, "final_lr_factor": fraction, "val_fraction": fraction,
}
_CHOICES = {"optimizer": ("adam", "sgd"), "schedule": ("constant", "cosine"), "keep": ("best", "final")}
# Settings a saved config may lack (written before they existed, or not of its model's kind),
# with the value it then had.
_OPTIONAL = {"data": None, "num_classes": None, "limit": None, "keep": "best", "numbers": None,
             "test_numbers": None}
# The number reader's data settings (a model of kind "sequence"); None, and not saved, otherwise.
NUMBER_FLAGS = ("numbers", "test_numbers")


def seed_value(text):
    """A --seed: a whole number from 0 to 2^63 - 1 (numpy's SeedSequence takes any, we keep 63 bits)."""
    value = int(text)
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2^63 - 1, not {text}")
    return value


@dataclass(frozen=True)
class TrainingConfig:
    """The recipe of a run: everything that decides its weights, and nothing else."""
    model: str                       # registry name
    options: dict                    # the model's options, e.g. {"hidden": 64}
    epochs: int
    batch_size: int
    lr: float                        # peak learning rate
    optimizer: str                   # "adam" or "sgd"
    momentum: float                  # for sgd
    schedule: str                    # "constant" or "cosine"
    final_lr_factor: float           # end of the cosine schedule, relative to lr
    augment: bool
    seed: int
    val_fraction: float
    num_classes: Optional[int]       # as asked for; None: the highest training label + 1
    limit: Optional[int]             # first N training and test images; None: all
    data: Optional[dict] = None      # the data's identity (see models.training.trainer.data_identity)
    keep: str = "best"               # the weights kept: "best" validation accuracy, or the "final" epoch
    numbers: Optional[int] = None    # the reader: training numbers composed per epoch
    test_numbers: Optional[int] = None   # the reader: validation and test numbers per condition
    version: int = CONFIG_VERSION

    def to_json(self) -> dict:
        """The recipe as JSON; a per-digit model's leaves out the reader's unset settings, so its
        checkpoints and histories read as they did before the reader trained here."""
        saved = asdict(self)
        for name in NUMBER_FLAGS:
            if saved[name] is None:
                del saved[name]
        return saved

    @classmethod
    def from_json(cls, saved, where) -> "TrainingConfig":
        """The config ``saved`` (a dict from JSON), every field checked as its flag would check it;
        anything wrong -> UserError naming ``where`` and the field."""
        if not isinstance(saved, dict):
            raise UserError(f"{where}: the training config is missing or not an object")
        version = saved.get("version")
        if version != CONFIG_VERSION:
            raise UserError(f"{where}: training config version {version!r} is not one this kit reads "
                            f"(it reads version {CONFIG_VERSION}); a newer kit wrote it?")
        names = {f.name for f in fields(cls)}
        for name in names - set(_OPTIONAL):
            if name not in saved:
                raise UserError(f"{where}: the training config lacks the setting {name!r}")
        unknown = sorted(set(saved) - names)
        if unknown:
            raise UserError(f"{where}: the training config has unknown settings {unknown}")
        config = cls(**{**_OPTIONAL, **saved})
        config.check(where)
        return config

    def check(self, where):
        def refuse(name, value):
            raise UserError(f"{where}: the setting {name!r} is {value!r}, which "
                            f"--{name.replace('_', '-')} would refuse")

        if not isinstance(self.model, str) or not self.model:
            refuse("model", self.model)
        if not isinstance(self.options, dict) or not all(isinstance(k, str) for k in self.options):
            refuse("options", self.options)
        for name, check in _NUMBERS.items():
            if not _accepted(check, getattr(self, name)):
                refuse(name, getattr(self, name))
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                refuse(name, getattr(self, name))
        if not isinstance(self.augment, bool):
            refuse("augment", self.augment)
        if not _accepted(seed_value, self.seed):
            refuse("seed", self.seed)
        for name in ("num_classes", "limit", *NUMBER_FLAGS):
            value = getattr(self, name)
            if value is not None and not _accepted(positive_int, value):
                refuse(name, value)
        if self.data is not None and not isinstance(self.data, dict):
            refuse("data", self.data)

    def with_epochs(self, epochs) -> "TrainingConfig":
        return replace(self, epochs=epochs)


def _accepted(check, value):
    """Whether ``check`` (a flag's type) maps the text of ``value`` back to ``value`` itself."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        again = check(str(value))
    except Exception:  # ValueError, argparse.ArgumentTypeError: the flag would refuse it
        return False
    return type(again) is type(value) and again == value


@dataclass
class TrainingState:
    """How far a run has got: counters, the running sums of the epoch in progress, the history."""
    best_val_accuracy: Optional[float]   # -1.0 until an epoch is validated; None without validation
    epoch: int = 0                       # finished epochs
    step_in_epoch: int = 0
    global_step: int = 0
    best_epoch: int = 0                  # 0: no weights written yet
    epoch_loss_sum: float = 0.0          # sum of loss * batch size over the epoch's steps so far
    epoch_correct: int = 0
    epoch_seen: int = 0
    epoch_seconds: float = 0.0           # time spent in the epoch before an interruption
    permutation_epoch: int = -1          # the epoch whose data order is drawn (-1: none yet)
    loss_reference: Optional[float] = None   # the divergence watch: the loss at the start ...
    high_loss_steps: int = 0                 # ... and how many steps in a row it stayed far above
    history: list = field(default_factory=list)   # one record per finished epoch
    test: Optional[dict] = None          # the final test pass, once done
    version: int = STATE_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, saved, where) -> "TrainingState":
        """The state ``saved``, types and ranges checked; UserError naming the field otherwise."""
        if not isinstance(saved, dict):
            raise UserError(f"{where}: the training state is missing or not an object")
        version = saved.get("version")
        if version != STATE_VERSION:
            raise UserError(f"{where}: training state version {version!r} is not one this kit reads "
                            f"(it reads version {STATE_VERSION}); a newer kit wrote it?")
        for key in ("epoch", "step_in_epoch", "global_step", "best_epoch", "epoch_correct",
                    "epoch_seen", "high_loss_steps"):
            value = saved.get(key)
            if type(value) is not int or value < 0:
                raise UserError(f"{where}: the checkpoint's {key!r} is {value!r}, not a count")
        permutation_epoch = saved.get("permutation_epoch")
        if type(permutation_epoch) is not int or permutation_epoch < -1:
            raise UserError(f"{where}: the checkpoint's 'permutation_epoch' is {permutation_epoch!r}")
        for key in ("epoch_loss_sum", "epoch_seconds"):
            value = saved.get(key)
            if type(value) not in (int, float) or not math.isfinite(value):
                raise UserError(f"{where}: the checkpoint's {key!r} is {value!r}, not a number")
        best = saved.get("best_val_accuracy", "missing")
        if best is not None and (type(best) not in (int, float) or not -1 <= best <= 1):
            raise UserError(f"{where}: the checkpoint's 'best_val_accuracy' is {best!r}")
        if not isinstance(saved.get("history"), list) or len(saved["history"]) != saved["epoch"]:
            raise UserError(f"{where}: the checkpoint's history does not list its {saved['epoch']} epochs")
        reference = saved.get("loss_reference")
        if reference is not None and (type(reference) not in (int, float) or not math.isfinite(reference)):
            raise UserError(f"{where}: the checkpoint's divergence watch ({reference!r}) is invalid")
        if saved.get("test") is not None and not isinstance(saved["test"], dict):
            raise UserError(f"{where}: the checkpoint's 'test' is {saved['test']!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(saved) - known)
        if unknown:
            raise UserError(f"{where}: the training state has unknown fields {unknown}")
        return cls(**saved)


@dataclass
class TrainerCallbacks:
    """Ways into a run for code that drives the trainer (tests, notebooks); none is needed.

    ``on_phase(name)`` is called at named points: ``startup``, ``epoch-start:E``, ``step:N``
    (before global step N), ``validation:E``, ``checkpoint:E`` and ``test``.
    ``stop_requested(steps_done)`` is asked at every step boundary; True acts as a Ctrl-C there.
    """
    on_phase: Optional[Callable[[str], None]] = None
    stop_requested: Optional[Callable[[int], bool]] = None

    def phase(self, name):
        if self.on_phase is not None:
            self.on_phase(name)

    def wants_stop(self, steps_done):
        return self.stop_requested is not None and bool(self.stop_requested(steps_done))


# The recipe's fields that are flags of the command line, under their argparse names (the
# model's options are flags too); num_classes and limit may be unset, and keep came later.
RECIPE_FLAGS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "schedule", "final_lr_factor",
                "augment", "seed", "val_fraction", "num_classes", "limit", "keep")


def config_from_flags(flags, option_names, data=None, where="checkpoint") -> TrainingConfig:
    """The :class:`TrainingConfig` of a flag dictionary as version-0 checkpoints and histories saved
    it (``vars(argparse.Namespace)``: the recipe mixed with --out, --data, test hooks ...).

    ``option_names``: the model's options (``spec.options``), read from the same dictionary."""
    if not isinstance(flags, dict):
        raise UserError(f"{where}: holds no flags ('args' missing or not an object)")
    required = ("model", *(name for name in RECIPE_FLAGS if name not in _OPTIONAL), *option_names)
    missing = [name for name in required if name not in flags]
    if missing:
        raise UserError(f"{where}: the saved flags lack the setting {missing[0]!r}")
    saved = {name: flags.get(name, _OPTIONAL.get(name)) for name in ("model", *RECIPE_FLAGS)}
    saved.update(options={name: flags[name] for name in option_names}, data=data, version=CONFIG_VERSION)
    return TrainingConfig.from_json(saved, where)
