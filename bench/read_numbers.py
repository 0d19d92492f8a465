"""How well the reader reads whole numbers drawn large, through the public function
models.reading.read_number_image, on numbers made by *another* generator than the one it was
trained on (tests/support/numbers.py, the segmenter benchmark's: 2-6 MNIST test digits 50-100 px
tall on a canvas 300 px high, each digit at a random height).

    python bench/read_numbers.py --reader runs/reader.npz [--numbers 300] [--seed 0]

Conditions: digits apart (gaps 0.1-0.6 digit heights), touching (gap 0: boxes meet), and
overlapping a little (-0.1-0 digit heights).  A number counts when the string read equals it.
Also the time of one read_number_image call (median), which includes cropping and scaling.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout

import nn  # noqa: E402

nn.configure_threads()

import numpy as np  # noqa: E402

from kit.data import resolve_data_dir  # noqa: E402
from kit.mnist import load_mnist_float  # noqa: E402
from models.reading import read_number_image  # noqa: E402
from tests.support.numbers import synthetic_number  # noqa: E402

CONDITIONS = {"apart": (0.1, 0.6), "touching": (0.0, 0.0), "overlapping": (-0.1, 0.0)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reader", default="reader")
    parser.add_argument("--numbers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None)
    flags = parser.parse_args(argv)
    images, labels = load_mnist_float(resolve_data_dir(flags.data), "test")
    for name, gap in CONDITIONS.items():
        rng = np.random.default_rng(flags.seed)
        right, times = 0, []
        for _ in range(flags.numbers):
            canvas, text = synthetic_number(images, labels, rng, int(rng.integers(2, 7)), gap=gap)
            pixels = (canvas * 255).round().astype(np.uint8)
            started = time.perf_counter()
            number, _ = read_number_image(pixels, reader=flags.reader)
            times.append(time.perf_counter() - started)
            right += number == text
        print(f"{name:12s} {100 * right / flags.numbers:5.1f} % of {flags.numbers} read exactly; "
              f"median {1000 * np.median(times):.0f} ms per number")
    return 0


if __name__ == "__main__":
    sys.exit(main())
