"""The robustness sweeps: each perturbation at several strengths, every model's accuracy at each.

The sweeps run on a fixed random subset of the test images (:func:`sweep_subset`); the noise of
each level is drawn from its own generator, seeded from the report's seed and the level's place.
"""
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from models.analysis.compare.context import SEED
from models.analysis.compare.perturbations import add_noise, blank_rows, gaussian_blur, rescale, rotate, shift

SWEEP_IMAGES = 2000      # test images in the robustness sweeps (a fixed random subset)


@dataclass
class Sweep:
    """One robustness experiment: a perturbation applied at several strengths.

    ``variants`` maps a variant name ("" if there is only one) to ``apply(images, level, rng)``.
    ``phrase(level)`` says the level in words for the generated sentences ("a 4 px shift right").
    """
    key: str
    title: str
    xlabel: str
    levels: list
    identity: float
    variants: dict
    phrase: Callable
    what: str
    styles: dict = field(default_factory=dict)


def _signed(unit_positive, unit_negative, noun):
    def phrase(level):
        if level == 0:
            return f"no {noun}"
        return f"a {abs(level):g} px {noun} {unit_positive if level > 0 else unit_negative}"
    return phrase


SWEEPS = [
    Sweep("shift_x", "Horizontal shift", "shift (px; negative = left, positive = right)",
          [-4, -3, -2, -1, 0, 1, 2, 3, 4], 0,
          {"": lambda x, level, rng: shift(x, cols=level)},
          _signed("right", "left", "shift"),
          "every digit moved sideways by a whole number of pixels (the image keeps its size; "
          "what leaves the frame is lost)"),
    Sweep("shift_y", "Vertical shift", "shift (px; negative = up, positive = down)",
          [-4, -3, -2, -1, 0, 1, 2, 3, 4], 0,
          {"": lambda x, level, rng: shift(x, rows=level)},
          _signed("down", "up", "shift"),
          "every digit moved up or down by a whole number of pixels - for a recurrent model this changes "
          "at which timestep each stroke arrives"),
    Sweep("rotation", "Rotation", "rotation (degrees, counter-clockwise)",
          [0, 5, 10, 15, 20, 25, 30], 0,
          {"": lambda x, level, rng: rotate(x, level)},
          lambda level: f"a {level:g} degree rotation",
          "every digit turned counter-clockwise about the image centre (bilinear resampling)"),
    Sweep("scale", "Scale", "scale factor (1 = original size)",
          [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3], 1.0,
          {"": lambda x, level, rng: rescale(x, level)},
          lambda level: f"scale {level:g}",
          "every digit shrunk or enlarged about the image centre (bilinear resampling)"),
    Sweep("blur", "Gaussian blur", "blur standard deviation sigma (px)",
          [0, 0.5, 1.0, 1.5, 2.0], 0,
          {"": lambda x, level, rng: gaussian_blur(x, level)},
          lambda level: f"a blur of sigma {level:g} px",
          "every digit blurred with a separable Gaussian kernel (zero padding)"),
    Sweep("noise", "Gaussian noise", "noise standard deviation (pixel values in [0, 1])",
          [0, 0.1, 0.2, 0.3, 0.4, 0.5], 0,
          {"": lambda x, level, rng: add_noise(x, level, rng)},
          lambda level: f"noise of std {level:g}",
          "independent Gaussian noise added to every pixel, then clipped to [0, 1] "
          "(a fixed seed per level)"),
    Sweep("blank_rows", "Blanked rows", "rows set to black",
          [0, 2, 4, 6, 8, 10, 12], 0,
          {"top": lambda x, level, rng: blank_rows(x, level, "top"),
           "bottom": lambda x, level, rng: blank_rows(x, level, "bottom")},
          lambda level: f"{level:g} blanked rows",
          "the top or the bottom rows of every image set to black - for a recurrent model the first or the "
          "last timesteps of its input become empty",
          styles={"top": "-", "bottom": "--"}),
]


def sweep_subset(n_images, size, seed=SEED):
    """Sorted indices of a fixed random subset of ``size`` of ``n_images`` test images."""
    if size >= n_images:
        return np.arange(n_images)
    return np.sort(np.random.default_rng(seed).choice(n_images, size=size, replace=False))


def example_index(labels, digit=5):
    """The image shown under the robustness curves: the first ``digit`` (a 5 has strokes at the
    top, middle and bottom, so every perturbation visibly changes it), else the first image."""
    found = np.flatnonzero(np.asarray(labels) == digit)
    return int(found[0]) if len(found) else 0


def run_sweeps(models, images, labels, sweeps=SWEEPS, seed=SEED, log=None):
    """Accuracy of every model at every level of every sweep.

    Returns ``{sweep key: {"levels": [...], "variants": {variant: {"accuracy": {model: [...]},
    "correct": {model: (L, N) bool}, "example": (L, 28, 28) array}}}}``; ``correct`` says which
    images each model reads right at each level (for the tests between models), the example row
    is one perturbed image per level (see :func:`example_index`).
    """
    clean = {name: model.predict(images) == labels for name, model in models.items()}
    example = example_index(labels)
    results = {}
    for sweep_index, sweep in enumerate(sweeps):
        started = time.perf_counter()
        variants = {}
        for variant_index, (variant, apply) in enumerate(sweep.variants.items()):
            accuracy = {name: [] for name in models}
            correct = {name: [] for name in models}
            examples = []
            for level_index, level in enumerate(sweep.levels):
                rng = np.random.default_rng([seed, sweep_index, variant_index, level_index])
                perturbed = apply(images, level, rng)
                examples.append(perturbed[example])
                for name, model in models.items():
                    # the identity level: reuse the clean answers
                    right = clean[name] if perturbed is images else model.predict(perturbed) == labels
                    correct[name].append(right)
                    accuracy[name].append(float(right.mean()))
            variants[variant] = {"accuracy": accuracy, "example": np.stack(examples),
                                 "correct": {name: np.stack(rows) for name, rows in correct.items()}}
        results[sweep.key] = {"levels": list(sweep.levels), "variants": variants}
        if log:
            log(f"  robustness: {sweep.title.lower()} done in {time.perf_counter() - started:.1f} s")
    return results
