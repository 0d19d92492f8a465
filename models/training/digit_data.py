"""What a per-digit model trains on: the images and labels of an MNIST-like IDX data set, the
training images split into training and validation images by a seeded permutation, drawn in a
new order every epoch.  :class:`DigitData` is the trainer's data source for ``kind="digit"``
models; the number reader's is :class:`models.training.reader_data.NumberData`.

A data source is what :class:`models.training.trainer.Run` asks, in this order:

    data = DigitData(config, place)          # reads the files: identity, num_classes, image_shape
    data.steps_per_epoch(batch_size, batchnorm)
    data.start_epoch(epoch, data_rng)        # before the epoch's first step: draws its order
    x, labels, count = data.batch(model, epoch, step, last, data_rng)   # one step's batch
    data.validate(model) -> (loss, accuracy, details);  data.test(model) -> the history's "test"
    data.arrays(); data.restore(path, arrays)            # its part of a checkpoint

Every random draw comes from the generator the trainer passes (``data_rng``, saved in each
checkpoint) or from the seed, so a resumed run sees exactly the batches an uninterrupted one does.
"""
import hashlib
import math

import numpy as np

from kit.data import ensure_mnist, resolve_data_dir
from kit.images import augment
from kit.images.augment import random_affine
from kit.mnist import find_mnist_file, load_dataset
from nn.errors import UserError
from nn.losses import log_softmax


class DigitData:
    """Images (N, H, W) and their labels; a step's batch is ``batch_size`` of them in the epoch's
    order, distorted when the recipe says ``augment``; measured by cross-entropy and accuracy."""
    unit = "images"          # what the epoch counts (the history's "<unit>_per_second")
    short_unit = "img"       # the progress bar's
    warm_ups = (augment.warm_up,)

    def __init__(self, config, place):
        (self.train_x, self.train_y, self.val_x, self.val_y, self.test_x, self.test_y,
         self.num_classes, self.identity) = load_data(config, place)
        self.batch_size, self.augment = config.batch_size, config.augment
        self.image_shape = self.train_x.shape[1:]
        self.train_count = len(self.train_x)
        self.validating = len(self.val_x) > 0
        self.permutation = np.arange(self.train_count)
        self.criterion = None    # nn.step.TrainingStep's default: softmax cross-entropy

    def describe(self):
        return (f"{self.train_count:,} training, {len(self.val_x):,} validation, "
                f"{len(self.test_x):,} test images")

    def steps_per_epoch(self, batch_size, batchnorm):
        steps = math.ceil(self.train_count / batch_size)
        if batchnorm and self.train_count % batch_size == 1:
            steps -= 1  # BatchNorm: the one image left over joins the epoch's last batch
        return steps

    def start_epoch(self, epoch, data_rng):
        self.permutation = data_rng.permutation(self.train_count)

    def batch(self, model, epoch, step, last, data_rng):
        """(network input, labels (B,), B) of step ``step``; the ``last`` takes the rest."""
        index = self.permutation[step * self.batch_size:None if last else (step + 1) * self.batch_size]
        images, labels = self.train_x[index], self.train_y[index]
        if self.augment:
            images = random_affine(images, data_rng)
        return model.to_network_input(images), labels, len(labels)

    def validate(self, model):
        """(mean cross-entropy, accuracy, {}) on the validation images; None, None without them."""
        if not self.validating:
            return None, None, {}
        return (*evaluate_batches(model, self.val_x, self.val_y), {})

    def test(self, model):
        loss, accuracy = evaluate_batches(model, self.test_x, self.test_y)
        return {"loss": loss, "accuracy": accuracy, "images": len(self.test_x)}

    @staticmethod
    def test_line(result):
        return f"test accuracy {100 * result['accuracy']:.2f}% on {result['images']:,} images"

    def arrays(self):
        return {"permutation": self.permutation}

    def restore(self, path, arrays):
        """Take the epoch's order from a checkpoint's arrays, checked against this run's images."""
        permutation, count = arrays.get("permutation"), self.train_count
        if (permutation is None or permutation.shape != (count,) or permutation.dtype.kind not in "iu"
                or not np.array_equal(np.sort(permutation), np.arange(count))):
            raise UserError(f"{path}: the saved data order is not an order of this run's {count:,} "
                            "training images (another --data or --limit?)")
        self.permutation = permutation


def evaluate_batches(model, images, labels, batch_size=1000):
    """(mean cross-entropy, accuracy) of ``model`` in inference mode."""
    if len(images) == 0:
        return float("nan"), float("nan")
    total_loss, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = model.logits(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        total_loss += -log_softmax(logits.astype(np.float64))[np.arange(len(y)), y].sum()
        correct += int((logits.argmax(axis=1) == y).sum())
    return total_loss / len(images), correct / len(images)


def data_identity(directory, train_images, test_images, num_classes):
    """What the run trained on, without saying where it was: each IDX file's name, size and
    SHA-256, the image counts (before ``limit``), the image shape and the number of classes."""
    files = {}
    for split in ("train", "test"):
        for kind in ("images", "labels"):
            path = find_mnist_file(directory, split, kind)
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            files[f"{split}-{kind}"] = {"file": path.name, "bytes": path.stat().st_size,
                                        "sha256": digest.hexdigest()}
    return {"files": files, "train_images": len(train_images), "test_images": len(test_images),
            "image_shape": list(train_images.shape[1:]), "classes": num_classes}


def load_data(config, place):
    """(train x, y, validation x, y, test x, y, classes, data identity) of the recipe's data."""
    directory = resolve_data_dir(place.data)
    ensure_mnist(directory, download_if_missing=place.download)
    train_images, train_labels, num_classes = load_dataset(directory, "train", config.num_classes)
    if config.num_classes is None:
        check_no_stray_label(directory, train_labels)
    test_images, test_labels, _ = load_dataset(directory, "test", num_classes)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise UserError(f"{directory}: training images are {train_images.shape[1:]} but test images "
                        f"are {test_images.shape[1:]}")
    identity = data_identity(directory, train_images, test_images, num_classes)
    if config.limit:
        train_images, train_labels = train_images[:config.limit], train_labels[:config.limit]
        test_images, test_labels = test_images[:config.limit], test_labels[:config.limit]
    val_index, train_index = validation_split(len(train_images), config.seed, config.val_fraction)
    if len(train_index) == 0:
        raise UserError("no training images left after the validation split; raise --limit or lower --val-fraction")
    return (train_images[train_index], train_labels[train_index], train_images[val_index],
            train_labels[val_index], test_images, test_labels, num_classes, identity)


def validation_split(count, seed, val_fraction):
    """(validation indices, training indices), each sorted, of ``count`` training images: a
    share ``val_fraction`` held out by a permutation drawn from (seed, 0)."""
    order = np.random.default_rng([seed, 0]).permutation(count)
    n_val = int(round(count * val_fraction))
    return np.sort(order[:n_val]), np.sort(order[n_val:])


def check_no_stray_label(directory, labels):
    """Refuse a highest label far above the others - more than twice the next one + 1 and more
    than 10 above it: one stray label of 200 among digits would otherwise make a 201-class model,
    while a set of digits lacking a few (0, 1 and 7) is not taken for one.  --num-classes says
    the count is meant."""
    present = np.unique(labels)
    if len(present) < 2:
        return
    top, below = int(present[-1]), int(present[-2])
    if top > 2 * (below + 1) and top - below > 10:
        count = int(np.count_nonzero(labels == top))
        raise UserError(f"{find_mnist_file(directory, 'train', 'labels')}: {count} training "
                        f"label{'s' if count > 1 else ''} of {top}, far above the others (at most {below}), "
                        f"would make a {top + 1}-class model; fix the labels, or pass --num-classes "
                        f"{top + 1} if that is meant")


def check_same_data(checkpoint, identity, place):
    """A resumed run must read the data it started with (a checkpoint before version 1 names none)."""
    saved = checkpoint.config.data
    if saved is None or saved == identity:
        return
    files, now = saved.get("files") or {}, identity["files"]
    differing = sorted(key for key in set(files) | set(now) if files.get(key) != now.get(key))
    differing += sorted(key for key in set(saved) | set(identity)
                        if key != "files" and saved.get(key) != identity.get(key))
    where = resolve_data_dir(place.data)
    raise UserError(f"{checkpoint.path}: the run started on other data than {where} holds ({', '.join(differing)} "
                    "differ); give its folder with --data DIR")
