"""Checkpoints of a training run: written after every epoch and at a Ctrl-C, checked field by field
and array by array before anything is loaded from one.

A checkpoint is an ``.npz`` beside the run's weights (``m.npz`` -> ``m.checkpoint.npz``) holding

    model/<key>, optim/<key>   the network's and the optimizer's arrays
    permutation                the data order of the epoch in progress (a per-digit model's; the
                               reader's batches follow from the seed and need none)
    __meta__                   JSON: format, version, the recipe (TrainingConfig), the progress
                               (TrainingState), the generators' states and the weights file's
                               name - a name in the checkpoint's own folder, never a path

Version 0 (before the typed config) kept the command line's flags as ``args``, with the absolute
``--out`` and the test hooks, and the progress fields at the top level; it is still read: the
recipe is taken from the flags, the rest ignored, and the weights go beside the checkpoint.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.training.config import STATE_VERSION, TrainingConfig, TrainingState, config_from_flags
from nn.errors import UserError
from nn.serialize import atomic_savez, check_state

CHECKPOINT_FORMAT = "cnn-vs-lstm-numpy/checkpoint"
CHECKPOINT_VERSION = 1


def sibling_paths(out):
    """(history JSON, checkpoint) beside the weights file ``out``."""
    out = Path(out)
    stem = out.name[:-4] if out.name.endswith(".npz") else out.name
    return out.with_name(stem + ".history.json"), out.with_name(stem + ".checkpoint.npz")


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


@dataclass
class Checkpoint:
    """A checkpoint read and checked (everything but the fit to this run's data: :func:`restore`)."""
    path: Path
    config: TrainingConfig
    state: TrainingState
    weights: Path            # where the run writes its weights: beside the checkpoint
    generators: dict         # {"model": state, "data": state, "layers": {index: state}}
    arrays: dict             # model/..., optim/..., and the data source's (permutation)


def save_checkpoint(path, config, state, weights, model, optimizer, data_arrays, generators):
    """Write the checkpoint atomically; ``weights`` is the run's weights file (beside ``path``),
    ``data_arrays`` the data source's arrays ({"permutation": ...} for a per-digit model)."""
    arrays = {f"model/{k}": v for k, v in model.network.state().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state().items()})
    arrays.update(data_arrays)
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": config.to_json(),
            "state": state.to_json(), "weights": Path(weights).name, "generators": generators}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_savez(path, arrays)


def read_checkpoint(path):
    """(meta dict, arrays) of the checkpoint file ``path``; anything unreadable is one line."""
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
            arrays = {name: archive[name] for name in archive.files if name != "__meta__"}
    except Exception as error:  # any unreadable file is the user's problem, reported in one line
        raise UserError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a training checkpoint of this project")
    version = meta.get("version", 0)
    if version not in (0, CHECKPOINT_VERSION):
        raise UserError(f"{path}: checkpoint version {version!r} is not one this kit reads (it reads "
                        f"0 and {CHECKPOINT_VERSION}); finish the run with the kit that started it")
    return meta, arrays


def checkpoint_model_name(path, meta):
    """The registry name of the model a checkpoint's meta says it trains."""
    name = meta.get("model") if meta.get("version", 0) == 0 else (meta.get("config") or {}).get("model")
    if not isinstance(name, str):
        raise UserError(f"{path}: the checkpoint names no model")
    return name


def parse_checkpoint(path, meta, arrays, option_names) -> Checkpoint:
    """The :class:`Checkpoint` of a file read by :func:`read_checkpoint`, every field checked.
    ``option_names``: the model's options (needed to read a version-0 checkpoint's flags)."""
    path = Path(path)
    if meta.get("version", 0) == 0:
        config = config_from_flags(meta.get("args"), option_names, where=path)
        fields = ("epoch", "step_in_epoch", "global_step", "history", "best_val_accuracy", "best_epoch",
                  "epoch_loss_sum", "epoch_correct", "epoch_seen", "epoch_seconds")
        saved = {key: meta[key] for key in fields if key in meta}
        saved.update(loss_reference=meta.get("loss_reference"), high_loss_steps=meta.get("high_loss_steps", 0),
                     version=STATE_VERSION)
        for key in fields:
            if key not in saved:
                raise UserError(f"{path}: the checkpoint's {key!r} is missing, not a count")
        # A permutation is in use only once its epoch's first step is done.
        saved["permutation_epoch"] = meta.get(
            "permutation_epoch", saved["epoch"] if saved["step_in_epoch"] else -1)
        generators = {"model": meta.get("model_rng"), "data": meta.get("data_rng"),
                      "layers": meta.get("layer_rngs", {})}
        weights = Path(str((meta.get("args") or {}).get("out") or "")).name
    else:
        config = TrainingConfig.from_json(meta.get("config"), path)
        saved = meta.get("state")
        generators = meta.get("generators")
        weights = meta.get("weights")
    state = TrainingState.from_json(saved, path)
    if not isinstance(generators, dict):
        raise UserError(f"{path}: the checkpoint's generator states are missing")
    for key in ("model", "data"):
        if not isinstance(generators.get(key), dict):
            raise UserError(f"{path}: the checkpoint's {key + '_rng'!r} is not a generator state")
    if not isinstance(generators.get("layers", {}), dict):
        raise UserError(f"{path}: the checkpoint's 'layer_rngs' is not an object")
    # The weights file is named, never placed: it is always beside its checkpoint, under the name
    # the checkpoint's own name gives (m.checkpoint.npz -> m.npz), so an edited name cannot aim
    # the run at another file there.
    if not isinstance(weights, str) or not weights or weights in (".", "..") or Path(weights).name != weights:
        raise UserError(f"{path}: the checkpoint's weights file name {weights!r} is not a file name")
    if sibling_paths(path.with_name(weights))[1] != path:
        raise UserError(f"{path}: the checkpoint names its weights {weights!r}, whose checkpoint is "
                        f"{sibling_paths(weights)[1].name}, not {path.name}; the run writes only beside "
                        "its checkpoint, under its own name (was the file renamed or edited?)")
    return Checkpoint(path, config, state, path.with_name(weights), generators, arrays)


def _recipe_of(saved, where):
    """A saved config (JSON) as compared between a checkpoint and the files beside it: checked,
    without --epochs (a resumed run may grow it); None if it is not a valid config."""
    try:
        recipe = TrainingConfig.from_json(saved, where).to_json()
    except UserError:
        return None
    recipe.pop("epochs")
    return recipe


def check_files_are_its_own(checkpoint):
    """Resume replaces the weights and history beside the checkpoint: only if they are this run's
    own (the same recipe, --epochs aside), never a file a person put there (the checkpoint copied
    into their folder, say), which the never-overwrite rule of a fresh run protects too."""
    from nn.serialize import WeightsArchive

    mine = _recipe_of(checkpoint.config.to_json(), checkpoint.path)
    weights, history = checkpoint.weights, sibling_paths(checkpoint.weights)[0]
    for path in (weights, history):
        if not path.exists() and not path.is_symlink():
            continue
        try:
            if path == weights:
                with WeightsArchive(path) as archive:
                    meta = archive.meta
                extra = meta.get("extra") or {}
                saved = extra.get("config") if meta.get("model") == checkpoint.config.model else None
            else:
                saved = json.loads(path.read_text()).get("config")
        except Exception:  # unreadable, another format: not this run's, whatever it is
            saved = None
        theirs = _recipe_of(saved, path)
        if theirs is not None and mine is not None and mine["data"] is None:
            theirs["data"] = None  # a version-0 checkpoint does not know its data
        if theirs is None or theirs != mine:
            raise UserError(f"{path}: is not this run's file (another recipe, or not written by it), and "
                            f"resuming {checkpoint.path} would replace it; move it away first")


def restore(checkpoint, model, optimizer, model_rng, data_rng, steps_per_epoch, epochs, data):
    """Load ``checkpoint`` into the fresh model, optimizer, generators and data source ``data``
    (its ``restore(path, arrays)`` checks and takes its own arrays) after checking every array's
    key, shape and dtype and its counters against this run's data and epochs; returns the state."""
    path, arrays, state = checkpoint.path, checkpoint.arrays, checkpoint.state
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    try:
        check_state(path, model_state, model.network.state())
        check_state(path, optim_state, optimizer.state())
    except UserError as error:
        raise UserError(f"{error} (checkpoint of another model or options?)") from None
    data.restore(path, {k: v for k, v in arrays.items() if not k.startswith(("model/", "optim/"))})
    if not (state.epoch <= epochs and state.step_in_epoch <= steps_per_epoch
            and state.global_step == state.epoch * steps_per_epoch + state.step_in_epoch
            and (state.step_in_epoch < steps_per_epoch or state.epoch == epochs)):
        raise UserError(f"{path}: epoch {state.epoch}, step {state.step_in_epoch} (global step "
                        f"{state.global_step}) does not fit {steps_per_epoch} steps an epoch")
    model.network.load_state(model_state)
    optimizer.load_state(optim_state)
    generators = checkpoint.generators
    try:
        set_layer_rng_states(model.network, generators.get("layers", {}))
        model_rng.bit_generator.state = generators["model"]
        data_rng.bit_generator.state = generators["data"]
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
        raise UserError(f"{path}: a saved generator state is invalid ({error})") from None
    return state
