"""What the number reader (:mod:`models.reader`) trains on: whole numbers composed from MNIST's
digits (:func:`kit.images.compose.compose_numbers`), measured by the numbers it reads exactly.
:class:`NumberData` is the trainer's data source for ``kind="sequence"`` models, with the
interface of :class:`models.training.digit_data.DigitData`.

- Training: every step composes a fresh batch of numbers of 1-6 digits (gaps from overlapping to
  wide) from the *training* digits left after the validation split, from a generator seeded by
  (seed, epoch, step) alone - so an epoch's data is the same whether the run went through or was
  resumed, and a checkpoint needs no data array.  ``numbers`` per epoch, the last batch the rest.
- Validation: ``test_numbers`` numbers of 2-6 digits with the digits apart (gaps 0.1-0.8 digit
  widths) and as many touching (-0.1-0), composed once from the *held-out training* digits
  (``val_fraction`` of them); the loss is CTC's, the accuracy the share read exactly, over both.
- Test: the same from MNIST's *test* digits (:func:`test_sets`, the numbers
  ``python -m models.training.reader --evaluate`` reads), on the weights kept.

Training and test digits never mix: a test number's digits are test images only.
"""
import sys
import time

import numpy as np

from kit.data import ensure_mnist, resolve_data_dir
from kit.images.compose import APART, STRIDE, TOUCHING, compose_numbers, mnist_pool
from kit.mnist import load_dataset
from models.reader import NUM_CLASSES, NumberLoss
from models.training.digit_data import data_identity, validation_split
from nn import ctc
from nn.errors import UserError

CONDITIONS = (("apart", APART), ("touching", TOUCHING))
TEST_SEED = 2026          # the test numbers are the same for every run and every --evaluate
DIGITS = 10               # the labels a number's digits may have


def composed_sets(images, labels, count, seed_words):
    """{condition: ComposedNumbers} of ``count`` numbers of 2-6 digits from the pool ``images``
    (M, 28, 28), ``labels`` (M,): 'apart' (gaps 0.1-0.8 digit widths) and 'touching' (-0.1-0),
    condition k drawn from ``default_rng([*seed_words, k])``."""
    return {name: compose_numbers(images, labels, np.random.default_rng([*seed_words, k]), count,
                                  digits=(2, 6), gap=gap)
            for k, (name, gap) in enumerate(CONDITIONS)}


def test_sets(directory, count, seed=TEST_SEED):
    """{condition: ComposedNumbers} of 2-6 digit numbers from MNIST's test digits (all of them)."""
    images, labels = mnist_pool(directory, "test")
    return composed_sets(images, labels, count, [seed])


def evaluate_numbers(network, numbers, batch_size=100):
    """(mean CTC loss, fraction read exactly) of a reader network on ``numbers``
    (ComposedNumbers), in inference mode, ``batch_size`` numbers at a time, each batch as wide
    as its widest number (rounded up to a frame); 'read' is the greedy decoding, as
    :func:`models.reading.read_strips` reads."""
    criterion = NumberLoss()
    loss_sum, right = 0.0, 0
    for start in range(0, len(numbers.texts), batch_size):
        chunk = slice(start, start + batch_size)
        widest = -(-int(numbers.widths[chunk].max()) // STRIDE) * STRIDE
        logits = network.infer(numbers.images[chunk, None, :, :widest])        # (B, T, 11)
        labels = (numbers.targets[chunk], numbers.widths[chunk], numbers.target_lengths[chunk])
        loss_sum += float(criterion.forward(logits, labels)) * len(logits)
        right += criterion.count_correct(logits, labels)
    count = max(1, len(numbers.texts))
    return loss_sum / count, right / count


def measure(network, sets):
    """(mean loss, exact-match fraction over every set, {condition: fraction}) of ``sets``."""
    results = {name: evaluate_numbers(network, numbers) for name, numbers in sets.items()}
    loss = float(np.mean([loss for loss, _ in results.values()]))
    accuracy = float(np.mean([read for _, read in results.values()]))   # the sets are equal in size
    return loss, accuracy, {name: read for name, (_, read) in results.items()}


class NumberData:
    """Composed numbers for the reader: a step's batch is (strips (B, 1, 28, W), (targets (B, 6),
    widths (B,), target lengths (B,))), its loss CTC (:class:`models.reader.NumberLoss`)."""
    unit = "numbers"
    short_unit = "num"
    warm_ups = (ctc.warm_up,)

    def __init__(self, config, place):
        if config.num_classes is not None:
            raise UserError(f"--num-classes {config.num_classes}: the reader reads the digits 0-9 "
                            "(10 classes and CTC's blank); leave it out")
        if config.augment:
            raise UserError("--augment: the reader's numbers vary in size, slant, line and gaps as "
                            "they are composed; leave it out")
        if config.numbers is None or config.test_numbers is None:
            raise UserError("the reader's recipe needs numbers and test_numbers (--numbers, --test-numbers)")
        directory = resolve_data_dir(place.data)
        ensure_mnist(directory, download_if_missing=place.download)
        train_images, train_labels, _ = load_dataset(directory, "train", DIGITS)
        test_images, test_labels, _ = load_dataset(directory, "test", DIGITS)
        if train_images.shape[1:] != (28, 28) or test_images.shape[1:] != (28, 28):
            raise UserError(f"{directory}: the reader composes numbers of 28 x 28 digits; the images "
                            f"there are {train_images.shape[1]} x {train_images.shape[2]}")
        self.identity = data_identity(directory, train_images, test_images, DIGITS)
        if config.limit:
            train_images, train_labels = train_images[:config.limit], train_labels[:config.limit]
            test_images, test_labels = test_images[:config.limit], test_labels[:config.limit]
        # The validation digits are held out as a per-digit run's validation images are.
        val_index, train_index = validation_split(len(train_images), config.seed, config.val_fraction)
        n_val = len(val_index)
        if len(train_index) == 0:
            raise UserError("no training digits left after the validation split; raise --limit or "
                            "lower --val-fraction")
        self.pool = train_images[train_index], train_labels[train_index]
        self.test_pool = test_images, test_labels
        self.validating = n_val > 0
        self.validation = (composed_sets(train_images[val_index], train_labels[val_index],
                                         config.test_numbers, [config.seed, 3])
                           if self.validating else {})
        self.seed, self.batch_size = config.seed, config.batch_size
        self.train_count, self.test_numbers, self.held_out = config.numbers, config.test_numbers, n_val
        self.num_classes = NUM_CLASSES
        self.image_shape = (28, STRIDE)       # the network reads any width; built for one frame
        self.criterion = NumberLoss()

    def describe(self):
        held_out = (f"{self.test_numbers:,} validation numbers apart and as many touching from "
                    f"{self.held_out:,} held-out training digits, " if self.validating else "no validation, ")
        return (f"{self.train_count:,} numbers an epoch composed from {len(self.pool[0]):,} training "
                f"digits; {held_out}test numbers likewise from {len(self.test_pool[0]):,} test digits")

    def steps_per_epoch(self, batch_size, batchnorm):
        return -(-self.train_count // batch_size)

    def start_epoch(self, epoch, data_rng):
        """Nothing to draw: each batch comes from its own seed (:meth:`batch`)."""

    def batch(self, model, epoch, step, last, data_rng):
        """(strips (B, 1, 28, W), (targets, widths, target lengths), B) of step ``step``."""
        size = min(self.batch_size, self.train_count - step * self.batch_size)
        numbers = compose_numbers(*self.pool, np.random.default_rng([self.seed, 2, epoch, step]), size)
        return numbers.images[:, None], (numbers.targets, numbers.widths, numbers.target_lengths), size

    def validate(self, model):
        """(mean CTC loss, share read exactly, {"val_apart": ..., "val_touching": ...})."""
        if not self.validating:
            return None, None, {}
        loss, accuracy, by_condition = measure(model.network, self.validation)
        return loss, accuracy, {f"val_{name}": read for name, read in by_condition.items()}

    def test(self, model):
        sets = composed_sets(*self.test_pool, self.test_numbers, [TEST_SEED])
        loss, accuracy, by_condition = measure(model.network, sets)
        return {"loss": loss, "accuracy": accuracy, **by_condition, "numbers": self.test_numbers}

    @staticmethod
    def test_line(result):
        return (f"test numbers read exactly: apart {100 * result['apart']:.2f}%, touching "
                f"{100 * result['touching']:.2f}% ({result['numbers']:,} of each)")

    def arrays(self):
        return {}

    def restore(self, path, arrays):
        if arrays:
            raise UserError(f"{path}: holds arrays a reader's checkpoint has not "
                            f"({', '.join(sorted(arrays))}); is it another model's?")


def evaluate_reader(weights, directory, count, stream=None):
    """Print (to ``stream``, standard output by default) and return {condition: exact-match
    fraction} of the reader in ``weights`` on ``count`` test numbers of 2-6 digits per condition
    (:func:`test_sets`)."""
    from models.reading import load_reader
    stream = stream if stream is not None else sys.stdout
    model = load_reader(weights)
    scores = {}
    for name, numbers in test_sets(directory, count).items():
        started = time.perf_counter()
        scores[name] = evaluate_numbers(model.network, numbers)[1]
        print(f"{name}: {100 * scores[name]:.1f} % of {count} test numbers read exactly "
              f"({time.perf_counter() - started:.1f} s)", file=stream, flush=True)
    return scores
