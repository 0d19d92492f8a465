"""Is a model's file usable?  Build its network and pass one small batch through ``to_input`` and
the network before any work, so a mistake in a model file (``--model-file``) is one line naming
the file and what is wrong, not a traceback from deep in the trainer.

    from models.probe import check_model_spec
    check_model_spec(spec, options, image_shape=(28, 28), num_classes=10)   # UserError if not

When the error was raised inside the person's own file, the lines of their code it passed
through follow the one line (the kit's own frames are left out): that part is theirs to fix.
Any command that builds a model from a model file (train, and later evaluate, compare, export,
the canvas) can call it.
"""
import traceback
from pathlib import Path

import numpy as np

from nn.errors import UserError

PROBE_IMAGES = 2   # two, so a BatchNorm layer in training mode would have a batch to normalise
NETWORK_METHODS = ("forward", "backward", "infer", "parameters", "state", "load_state", "num_parameters")


def _own_frames(spec, error):
    """The frames of ``error``'s traceback in the model's own file, formatted ('' if none)."""
    source = spec.source and Path(spec.source).resolve()
    if not source:
        return ""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if Path(frame.filename).resolve() == source]
    if not frames:
        return ""
    return "\n" + "".join(traceback.format_list(frames)).rstrip()


def _failed(spec, what, error):
    text = str(error).splitlines()[0] if str(error) else ""
    return UserError(f"{_where(spec)}: {what} raised {type(error).__name__}"
                     + (f": {text}" if text else "") + _own_frames(spec, error))


def _where(spec):
    return spec.source or f"the model file of {spec.name!r}"


def check_model_spec(spec, options, image_shape, num_classes, rng=None):
    """Build ``spec``'s network for ``image_shape`` (H, W) images and ``num_classes`` classes and
    run PROBE_IMAGES blank images through ``spec.to_input`` and the network's inference.

    Returns the network built; raises :class:`UserError` saying what is wrong with the model
    file: build() raising or returning no network, to_input raising or giving another number of
    samples, the network refusing what to_input gives (it expects another input size), or an
    output that is not (N, num_classes) - (N, T, num_classes), scores per frame, for a model of
    kind "sequence" (the number reader)."""
    height, width = (int(side) for side in image_shape)
    rng = rng if rng is not None else np.random.default_rng(0)
    try:
        network = spec.build(rng, image_shape=(height, width), num_classes=num_classes, **options)
    except UserError:
        raise
    except Exception as error:  # the person's code: say so in one line, their frames below
        raise _failed(spec, "build()", error) from None
    missing = [name for name in NETWORK_METHODS if not callable(getattr(network, name, None))]
    if network is None or missing:
        raise UserError(f"{_where(spec)}: build() returned {type(network).__name__}, not a network "
                        "(an nn.layers.Sequential of the kit's layers); does it end with 'return'?")
    images = np.zeros((PROBE_IMAGES, height, width), np.float32)
    try:
        x = spec.to_input(images)
    except Exception as error:
        raise _failed(spec, f"to_input() of {PROBE_IMAGES} images of {height} x {width}", error) from None
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) != PROBE_IMAGES:
        shape = getattr(x, "shape", type(x).__name__)
        raise UserError(f"{_where(spec)}: to_input() turned {PROBE_IMAGES} images of {height} x {width} "
                        f"into {shape}; it must return an array with one row per image "
                        f"(first axis {PROBE_IMAGES})")
    try:
        logits = network.infer(x.astype(np.float32, copy=False))
    except Exception as error:
        raise _failed(spec, f"the network from build() given to_input()'s {tuple(x.shape)} "
                      "(does it expect another input size?)", error) from None
    expected = (PROBE_IMAGES, num_classes)
    shape = getattr(logits, "shape", None)
    if getattr(spec, "kind", "digit") == "sequence" and shape is not None and len(shape) == 3:
        expected = (PROBE_IMAGES, shape[1], num_classes)   # any number of frames
    if shape != expected:
        shape = getattr(logits, "shape", type(logits).__name__)
        raise UserError(f"{_where(spec)}: the network from build() gives outputs of shape {shape} for "
                        f"{PROBE_IMAGES} images, not {expected}: its last layer must have num_classes "
                        f"({num_classes}) outputs")
    return network
