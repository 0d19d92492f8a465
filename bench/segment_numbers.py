"""How well draw.py reads whole numbers: synthetic numbers of MNIST test digits, segmented by
kit/images/segment.py and read digit by digit, and read whole by the reader
(models.reading.read_number_image, what P shows on its own row).

    python bench/segment_numbers.py [--numbers 1000] [--models cnn] [--reader reader] [--seed 0] [--json]

Each number has 2-6 random MNIST test digits written side by side (tests/support/numbers.py): one size per
number (digits 50-100 px tall, each +-15 %), a random height for each digit, and a random gap
between neighbours of 0.1-0.6 digit heights (never touching).  The same numbers are then
written with their digits touching: gaps of 0 to -0.1 digit widths (a digit width is 0.6 digit
heights, as kit/images/compose.py counts it; 0 makes the ink boxes meet, below 0 they overlap),
the digits standing on one line as people write (each +-0.1 digit heights off it: digits at
very different heights would not touch).
A number counts as read right when every digit is, in order, with no digit missing or extra.
Also reported: how often the window's advice to trust the reader appears (a piece too wide for
one digit, kit.images.segment.wide_pieces).  Bar (issue 11): the CNN reads >= 97 % of the
non-touching numbers right.
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
from kit.images.compose import DIGIT_WIDTH  # noqa: E402
from models import load_model, registry  # noqa: E402
from models.reading import read_number_image  # noqa: E402
from kit.images.segment import read_number, segment, wide_pieces  # noqa: E402

APART = (0.1, 0.6)                                   # digit heights
TOUCHING = (-0.1 * DIGIT_WIDTH, 0.0)                 # 0 to -0.1 digit widths, in digit heights
ON_A_LINE = 0.1                                      # touching digits' baseline jitter, digit heights


def measure(models, images, labels, numbers, seed, gap, reader=None, baseline_jitter=None):
    """{model name: share of numbers read right, 'segmented': share split into the right count,
    'segment_ms': median segmentation time, 'advised': share with a piece too wide for one
    digit, and with a ``reader``, 'reader': share it reads right, 'reader_ms': its median time
    per number} over ``numbers`` synthetic numbers."""
    rng = np.random.default_rng(seed)
    right = {model.name: 0 for model in models}
    segmented, advised, read_right, times, reader_times = 0, 0, 0, [], []
    for _ in range(numbers):
        canvas, text = synthetic_number(images, labels, rng, int(rng.integers(2, 7)), gap=gap,
                                        baseline_jitter=baseline_jitter)
        if reader is not None:
            pixels = (canvas * 255).round().astype(np.uint8)     # as the canvas holds a drawing
            started = time.perf_counter()
            read_right += read_number_image(pixels, reader=reader)[0] == text
            reader_times.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        pieces = segment(canvas)
        times.append(1000 * (time.perf_counter() - started))
        advised += bool(wide_pieces(pieces))
        if len(pieces) != len(text):
            continue
        segmented += 1
        batch = np.stack([piece.image for piece in pieces])
        for model in models:
            right[model.name] += read_number(model.predict_proba(batch))[0] == text
    result = {name: count / numbers for name, count in right.items()}
    result.update(segmented=segmented / numbers, segment_ms=float(np.median(times)),
                  advised=advised / numbers)
    if reader is not None:
        result.update(reader=read_right / numbers, reader_ms=float(np.median(reader_times)))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1000)
    parser.add_argument("--models", default="cnn", help="comma-separated shipped model names")
    parser.add_argument("--reader", default="reader",
                        help="the reader (a name or a weights file); 'none' to leave it out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="MNIST folder (default: $MNIST_DIR or the user data folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    for name in names:
        registry.get(name)
    models = [load_model(name) for name in names]
    images, labels = load_mnist_float(resolve_data_dir(args.data), "test")
    reader = None if args.reader == "none" else args.reader
    apart = measure(models, images, labels, args.numbers, args.seed, APART, reader)
    touching = measure(models, images, labels, args.numbers, args.seed, TOUCHING, reader, ON_A_LINE)
    if args.json:
        print(json.dumps({"apart": apart, "touching": touching}))
    else:
        print(f"{args.numbers} synthetic numbers of 2-6 MNIST test digits, seed {args.seed}")
        for label, result in (("apart (gap 0.1-0.6 digit heights)", apart),
                              ("touching (gap 0 to -0.1 digit widths, on one line)", touching)):
            print(f"  {label}: split right {100 * result['segmented']:.1f} %, "
                  f"segmentation median {result['segment_ms']:.1f} ms; a piece too wide for one "
                  f"digit (the advice to trust the reader) in {100 * result['advised']:.1f} %")
            for model in models:
                print(f"    {model.title} (split, then digit by digit): {100 * result[model.name]:.1f} % "
                      "of numbers read right")
            if reader is not None:
                print(f"    reader (the whole line, {reader}): {100 * result['reader']:.1f} % read "
                      f"right, median {result['reader_ms']:.1f} ms per number")
    bar = apart.get("cnn")
    return 0 if bar is None or bar >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
