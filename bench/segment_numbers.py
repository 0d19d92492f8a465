"""How well draw.py reads whole numbers: synthetic numbers of MNIST test digits, segmented by
kit/images/segment.py and read digit by digit.

    python bench/segment_numbers.py [--numbers 1000] [--models cnn] [--seed 0] [--json]

Each number has 2-6 random MNIST test digits written side by side (tests/support/numbers.py): one size per
number (digits 50-100 px tall, each +-15 %), a random height for each digit, and a random gap
between neighbours of 0.1-0.6 digit heights (never touching).  The same numbers are then
written with their digits' boxes touching (gap 0) to measure what happens when digits run into
each other.  A number counts as read right when every digit is, in order, with no digit missing
or extra.  Bar (issue 11): the CNN reads >= 97 % of the non-touching numbers right.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout

import nn  # noqa: E402

nn.configure_threads(1)

import numpy as np  # noqa: E402

from kit.data import resolve_data_dir  # noqa: E402
from kit.mnist import load_mnist_float  # noqa: E402
from tests.support.numbers import synthetic_number  # noqa: E402
from models import load_model, registry  # noqa: E402
from kit.images.segment import read_number, segment  # noqa: E402


def measure(models, images, labels, numbers, seed, gap):
    """{model name: share of numbers read right, 'segmented': share split into the right count,
    'segment_ms': median segmentation time} over ``numbers`` synthetic numbers."""
    rng = np.random.default_rng(seed)
    right = {model.name: 0 for model in models}
    segmented, times = 0, []
    for _ in range(numbers):
        canvas, text = synthetic_number(images, labels, rng, int(rng.integers(2, 7)), gap=gap)
        started = time.perf_counter()
        pieces = segment(canvas)
        times.append(1000 * (time.perf_counter() - started))
        if len(pieces) != len(text):
            continue
        segmented += 1
        batch = np.stack([piece.image for piece in pieces])
        for model in models:
            right[model.name] += read_number(model.predict_proba(batch))[0] == text
    result = {name: count / numbers for name, count in right.items()}
    result.update(segmented=segmented / numbers, segment_ms=float(np.median(times)))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1000)
    parser.add_argument("--models", default="cnn", help="comma-separated shipped model names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="MNIST folder (default: $MNIST_DIR or the user data folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    for name in names:
        registry.get(name)
    models = [load_model(name) for name in names]
    images, labels = load_mnist_float(resolve_data_dir(args.data), "test")
    apart = measure(models, images, labels, args.numbers, args.seed, gap=(0.1, 0.6))
    touching = measure(models, images, labels, args.numbers, args.seed, gap=(0.0, 0.0))
    if args.json:
        print(json.dumps({"apart": apart, "touching": touching}))
    else:
        print(f"{args.numbers} synthetic numbers of 2-6 MNIST test digits, seed {args.seed}")
        for label, result in (("apart (gap 0.1-0.6 digit heights)", apart),
                              ("touching (gap 0)", touching)):
            print(f"  {label}: split right {100 * result['segmented']:.1f} %, "
                  f"segmentation median {result['segment_ms']:.1f} ms")
            for model in models:
                print(f"    {model.title}: {100 * result[model.name]:.1f} % of numbers read right")
    bar = apart.get("cnn")
    return 0 if bar is None or bar >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
