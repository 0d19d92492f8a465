"""The report's measured times: training images/s and single-image latency, in this process.

They are the only numbers of the report that change from one run to the next.
"""
import time

import numpy as np

from models.analysis.compare.context import SEED
from models.base import build_model
from nn.optim import Adam
from nn.step import TrainingStep

LATENCY_CALLS = 200      # single-image predictions timed per model (the median is reported)
LATENCY_WARMUP = 20
SPEED_BATCH = 64         # the training-speed loop: batch size, untimed warm-up steps, timed seconds
SPEED_WARMUP = 3
SPEED_SECONDS = 4.0


def single_image_latency(model, image, calls=LATENCY_CALLS, warmup=LATENCY_WARMUP):
    """Median seconds of ``model.predict_proba`` on one image, after ``warmup`` untimed calls."""
    batch = np.ascontiguousarray(image[None], dtype=np.float32)
    for _ in range(warmup):
        model.predict_proba(batch)
    times = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        model.predict_proba(batch)
        times[i] = time.perf_counter() - started
    return float(np.median(times))


def training_speed(model, images, labels, batch_size=SPEED_BATCH, seconds=SPEED_SECONDS,
                   warmup=SPEED_WARMUP, seed=SEED):
    """Training images/s of a fresh copy of ``model``, timed in this process.

    One step is the kit's :class:`nn.step.TrainingStep`, what the trainer does per batch
    without augmentation: forward in training mode, softmax cross-entropy, backward, an Adam
    step (lr 1e-3).  The batches cycle through ``images`` (test images will do: the speed does
    not depend on the pixels).  ``warmup`` untimed steps first, then steps until ``seconds``
    have passed (at least five).  The rate is ``batch_size`` over the median step time, so a
    burst of other work on the machine during a few steps does not set it; the mean rate is
    returned too, and every timed step (``step_seconds``, for a test between two models).
    """
    fresh = build_model(model.name, rng=np.random.default_rng(seed), num_classes=model.num_classes,
                        image_shape=model.image_shape, **model.options)
    x = np.ascontiguousarray(fresh.to_network_input(images))
    labels = np.asarray(labels)
    step = TrainingStep(fresh.network, Adam(fresh.network.parameters(), lr=1e-3))

    def train_on_batch(i):
        index = np.arange(i * batch_size, (i + 1) * batch_size) % len(x)
        step(x[index], labels[index])

    for i in range(warmup):
        train_on_batch(i)
    # Until the timed steps themselves add up to ``seconds`` (the loop's own overhead is not
    # counted, so the reported "seconds" is never short of what was asked for).
    times = []
    while sum(times) < seconds or len(times) < 5:
        before = time.perf_counter()
        train_on_batch(warmup + len(times))
        times.append(time.perf_counter() - before)
    return {"images_per_second": batch_size / float(np.median(times)),
            "mean_images_per_second": batch_size * len(times) / float(np.sum(times)),
            "steps": len(times), "seconds": float(np.sum(times)), "batch_size": batch_size,
            "step_seconds": [float(t) for t in times]}


def numba_threads():
    """The number of threads Numba's parallel kernels use in this process."""
    import numba
    return int(numba.get_num_threads())
