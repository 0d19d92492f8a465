"""Teaching the models a person's handwriting: a personal IDX data set and on-the-spot fine-tuning.

When a model misreads a drawing, the person says the right digit (draw.py: T, then the digit):

1. the 28x28 image (as the models saw it) and its label are appended to a personal data set in
   ``kit.paths.personal_dir()`` - MNIST's own IDX format, train and t10k files, each written
   atomically (:func:`nn.idx.write_idx`), so ``python -m models.train --data <that folder>``
   trains on it like on any IDX data (the t10k files hold the same examples: a set of a few
   dozen drawings is too small to hold some out);
2. each model takes ``STEPS`` Adam steps (learning rate ``LR``), and more - up to ``MAX_STEPS``
   - while it still misreads the new drawing, on batches of ``PERSONAL_BATCH`` personal examples
   (the new one always among them, each randomly moved, turned and scaled a little) mixed with
   ``REPLAY_BATCH`` random MNIST training images and, for each personal example, ``RIVAL_REPLAY``
   MNIST images of its *rival* - the class the model finds most likely after the right one (for
   a slashed 0 read as 8: 8s).  The replay keeps it from forgetting MNIST; the rivals keep it
   from moving the whole boundary between the two classes (teaching slashed 0s without them
   turns MNIST 8s into 0s).  One Adam optimizer per model lasts the session: a fresh one's first
   steps move every weight by about ``LR`` whatever its gradient, which, repeated at every
   teach, shook the weaker models off MNIST.  Without MNIST it fine-tunes on the personal set
   alone and says so;
3. the fine-tuned weights are saved beside the data (``<personal>/<model>.npz``); draw.py loads
   them at its next start unless ``--shipped``.  The shipped weights are never written.

Fine-tuning runs the network in training mode (dropout on, BatchNorm on batch statistics and
updating its running averages), exactly as :mod:`models.training.trainer` does.  NumPy and the kit only.
"""
import errno
import os
import time
from pathlib import Path

import numpy as np

from kit.images.augment import random_affine
from kit.paths import personal_dir
from models.base import REPOSITORY_WEIGHTS
from nn.errors import DataError, UserError
from nn.idx import read_idx, write_idx
from nn.optim import Adam
from nn.step import TrainingStep
from nn.threads import one_numba_thread

# The recipe: docs/study/teaching/report.md measures it over 5 handwriting styles x 3 persons x
# the 5 shipped models (bench/teach_study.py); the earlier one (6 steps at lr 3e-4, 16 personal
# + 32 MNIST images, a new Adam at each teach) lost up to 1.65 points of MNIST there.
STEPS = 6                # Adam steps per taught example, at least ...
MAX_STEPS = 30           # ... and more, up to this many, while the new drawing is still misread
LR = 1e-4                # small: a nudge, not a retraining (the shipped runs ended near 1e-5)
PERSONAL_BATCH = 8       # personal examples per step (repeated, with random distortions, if fewer)
REPLAY_BATCH = 128       # random MNIST training images per step: fewer let the weak models drift
RIVAL_REPLAY = 2         # MNIST images of its rival class per personal example in a step
REPLAY_SIZE = 12_000     # MNIST training images kept in memory for replay
FILES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
         ("t10k", "images"): "t10k-images-idx3-ubyte", ("t10k", "labels"): "t10k-labels-idx1-ubyte"}


def check_folder(folder):
    """``folder`` as a Path, refusing the repository's weights/ (the shipped weights live there)."""
    folder = Path(folder).expanduser()
    resolved, shipped = folder.resolve(), REPOSITORY_WEIGHTS.resolve()
    if resolved == shipped or shipped in resolved.parents:
        raise UserError(f"{folder}: the personal data and weights must not go inside {shipped} "
                        "(the shipped weights)")
    return folder


class PersonalSet:
    """The personal data set in ``folder`` (default: ``kit.paths.personal_dir()``).

    images : uint8 (N, 28, 28), 0 = background;  labels : uint8 (N,)
    """

    def __init__(self, folder=None):
        self.folder = check_folder(folder if folder is not None else personal_dir())

    def path(self, split, kind):
        return self.folder / FILES[(split, kind)]

    def load(self):
        """(images uint8 (N, 28, 28), labels uint8 (N,)); empty arrays when there is no set yet.

        The labels file is written after the images file, so a crash between the two leaves one
        more image than labels: the common prefix is used (the last drawing is lost, not the set).
        """
        image_path, label_path = self.path("train", "images"), self.path("train", "labels")
        if not image_path.exists() and not label_path.exists():
            return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
        aside = f" - move {self.folder} aside (rename it) to start a new set"
        try:
            images, labels = read_idx(image_path), read_idx(label_path)
        except DataError as error:
            raise UserError(f"the personal data set is damaged: {error}{aside}") from None
        except OSError as error:
            raise UserError(f"{self.folder}: cannot read the personal data set "
                            f"({error.strerror or error}){aside}") from None
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
            raise UserError(f"{self.folder}: the personal data set is not (N, 28, 28) images and "
                            f"(N,) labels: {images.shape}, {labels.shape}{aside}")
        count = min(len(images), len(labels))
        images, labels = images[:count], labels[:count]
        if labels.dtype.kind not in "iu" or images.dtype != np.uint8:
            raise UserError(f"{self.folder}: the personal data set holds {images.dtype} images and "
                            f"{labels.dtype} labels, not bytes{aside}")
        wrong = np.flatnonzero((labels < 0) | (labels > 9))
        if wrong.size:
            raise UserError(f"{self.folder}: the personal data set holds label {int(labels[wrong[0]])} "
                            f"(example {int(wrong[0]) + 1}); labels are digits 0-9{aside}")
        return images, labels

    def append(self, image, label):
        """Add one float (28, 28) image in [0, 1] with its label; returns the new count."""
        images, labels = self.with_example(image, label)
        with Commit(self.folder) as commit:
            self.stage(commit, images, labels)
        return len(labels)

    def with_example(self, image, label):
        """The set as uint8 images (N+1, 28, 28) and labels (N+1,) with one float (28, 28) image
        in [0, 1] and its label added; nothing is written."""
        image = np.asarray(image, dtype=np.float32)
        if image.shape != (28, 28) or not np.isfinite(image).all():
            raise ValueError(f"expected a finite (28, 28) image, got {image.shape}")
        if not 0 <= int(label) <= 9:
            raise ValueError(f"label must be a digit 0-9, got {label!r}")
        images, labels = self.load()
        pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        return (np.concatenate([images, pixels[None]]),
                np.concatenate([labels, np.array([label], np.uint8)]))

    def stage(self, commit, images, labels):
        """Write the set's four IDX files as ``commit``'s temporary files (they replace the
        set's only when every file of the commit is written)."""
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{self.folder}: is a file, not a folder, so the personal data set "
                            "cannot go there - move the file aside (rename it) and teach again")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for split in ("train", "t10k"):                 # images first: see load()
                write_idx(commit.temporary(self.path(split, "images")), images)
                write_idx(commit.temporary(self.path(split, "labels")), labels)
        except OSError as error:
            raise cannot_write(self.folder, "the personal data set", error) from None

    def weights_path(self, model_name):
        return self.folder / f"{model_name}.npz"


class Commit:
    """Files written all or nothing: each is first written under a temporary name beside its
    target (:meth:`temporary`); on leaving the block without an error every one is renamed
    onto its target (a rename needs no space, so a full disk fails before any is replaced);
    after an error the temporary files are removed and every target is as it was."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.staged = []                  # (temporary, target)

    def temporary(self, target):
        target = Path(target)
        temporary = target.with_name(f".{target.stem}.teaching{target.suffix}")
        self.staged.append((temporary, target))
        return temporary

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is None:
            for temporary, target in self.staged:
                os.replace(temporary, target)
        else:
            for temporary, _ in self.staged:
                try:
                    temporary.unlink()
                except OSError:
                    pass
        return False


def cannot_write(folder, what, error):
    """A one-line UserError for an OSError writing ``what`` in ``folder``: what is wrong and what
    to do (every file is written atomically, so what was there before is still there)."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC or error.errno == errno.EDQUOT:
        advice = "the disk is full: free some space and teach again"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = ("the folder is not writable: make it writable, or set CNN_VS_LSTM_HOME to a "
                  "writable folder, and teach again")
    elif error.errno in (errno.ENOTDIR, errno.EEXIST):
        advice = "a file stands where a folder should be: move it aside (rename it) and teach again"
    else:
        advice = "fix that and teach again"
    return UserError(f"{folder}: cannot write {what} ({reason}) - {advice}")


def load_replay(mnist_dir, count=REPLAY_SIZE, seed=0):
    """``count`` random MNIST training images for replay: (float32 (count, 28, 28), int64 (count,)),
    or None when the MNIST files are not in ``mnist_dir``."""
    from kit.mnist import load_mnist
    try:
        images, labels = load_mnist(mnist_dir, "train")
    except DataError:
        return None
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=min(count, len(images)),
                                                        replace=False))
    return images[chosen].astype(np.float32) / np.float32(255), labels[chosen].astype(np.int64)


def fine_tune(model, images, labels, replay=None, rng=None, steps=STEPS, lr=LR,
              personal_batch=PERSONAL_BATCH, replay_batch=REPLAY_BATCH, newest=True,
              optimizer=None, rival_replay=RIVAL_REPLAY, max_steps=None):
    """Fine-tune ``model`` in place on personal examples mixed with a replay sample of MNIST.

    Parameters
    ----------
    model : models.Model
    images : numpy.ndarray
        float32 (N, 28, 28) in [0, 1], the personal examples (N >= 1).
    labels : numpy.ndarray
        (N,) their labels.
    replay : (numpy.ndarray, numpy.ndarray) or None
        MNIST images float32 (M, 28, 28) and labels (M,) to mix in; None: personal only.
    rng : numpy.random.Generator
    steps, lr, personal_batch, replay_batch : training length, Adam's rate and the batch mix.
    newest : bool
        Always put the last example (the one just taught) in every batch.
    optimizer : nn.optim.Optimizer, optional
        One over ``model.network.parameters()`` to go on with (its moment estimates carry over);
        None: a new Adam with rate ``lr``.
    rival_replay : int
        Replay images of each chosen personal example's rival class (see :func:`rival_classes`)
        added to every step's batch; 0: none.
    max_steps : int, optional
        After ``steps`` steps, go on one step at a time while the model (in inference mode)
        still misreads the last example, up to ``max_steps`` in all; None: exactly ``steps``.

    Returns
    -------
    list of float
        The loss of each step.
    """
    rng = rng if rng is not None else np.random.default_rng()
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    step = TrainingStep(model.network, optimizer if optimizer is not None
                        else Adam(model.network.parameters(), lr=lr))
    mix = replay is not None and replay_batch > 0
    rivals = by_class = None
    if mix and rival_replay > 0:
        rivals = rival_classes(model, images, labels)
        by_class = [np.flatnonzero(replay[1] == digit) for digit in range(model.num_classes)]
    newest_image, newest_label = images[-1:], int(labels[-1])
    limit = steps if max_steps is None else max(steps, max_steps)
    losses = []
    with one_numba_thread():      # batches of ~150: waking worker threads costs more than it saves
        while len(losses) < limit:
            if len(losses) >= steps and int(model.predict(newest_image)[0]) == newest_label:
                break
            chosen = rng.integers(0, len(images), size=personal_batch)
            if newest:
                chosen[0] = len(images) - 1
            batch_x = random_affine(images[chosen], rng, max_shift=1.5, max_rotation=8.0,
                                    scale_range=(0.9, 1.1))
            batch_y = labels[chosen]
            if mix:
                replayed = [rng.integers(0, len(replay[0]), size=replay_batch)]
                if rivals is not None:
                    replayed += [rng.choice(by_class[rival], size=rival_replay)
                                 for rival in rivals[chosen] if by_class[rival].size]
                replayed = np.concatenate(replayed)
                batch_x = np.concatenate([batch_x, replay[0][replayed]])
                batch_y = np.concatenate([batch_y, replay[1][replayed]])
            losses.append(step(model.to_network_input(batch_x), batch_y).loss)
    return losses


def rival_classes(model, images, labels):
    """(N,) the class ``model`` finds most likely after the right one, for each of ``images``
    (N, 28, 28) with ``labels`` (N,): what a drawing is mistaken for, or nearly."""
    logits = np.array(model.logits(images), dtype=np.float64)
    logits[np.arange(len(labels)), labels] = -np.inf
    return logits.argmax(axis=1)


class Teacher:
    """What draw.py's T key does, for every model at once.

    Parameters
    ----------
    models : dict
        name -> models.Model, fine-tuned in place.
    folder : path, optional
        The personal folder (default ``kit.paths.personal_dir()``).
    mnist_dir : path or None
        Where the MNIST files are, for replay; loaded at the first teach.
    seed : int
        Seeds the batches and distortions.
    """

    def __init__(self, models, folder=None, mnist_dir=None, seed=0):
        self.models = models
        self.data = PersonalSet(folder)
        self.mnist_dir = mnist_dir
        self.replay = None
        self.replay_loaded = False
        self.rng = np.random.default_rng(seed)
        self.optimizers = {}      # name -> (the model it updates, its Adam), for the session

    def optimizer(self, name, model):
        """The Adam that teaches ``model`` this session: a new one when the model is new (the
        first teach, or X put the shipped weights back)."""
        kept = self.optimizers.get(name)
        if kept is None or kept[0] is not model:
            kept = self.optimizers[name] = (model, Adam(model.network.parameters(), lr=LR))
        return kept[1]

    def ensure_replay(self):
        """Load the MNIST replay sample once; returns it, or None (no MNIST: personal only)."""
        if not self.replay_loaded:
            self.replay = None if self.mnist_dir is None else load_replay(self.mnist_dir)
            self.replay_loaded = True
        return self.replay

    def teach(self, image, label):
        """Append (image, label) to the personal set, fine-tune every model, save their weights.

        Returns a dict: 'count' (examples in the set), 'replay' (bool: MNIST mixed in),
        'seconds' (fine-tuning time, all models), 'saved' (name -> weights path).
        """
        # All or nothing: the set and every model's weights are written as temporary files and
        # replace the old ones together; if any cannot be written (a full disk), nothing on disk
        # changes and the models are put back as they were, so the window agrees with the next start.
        pixels, labels = self.data.with_example(image, label)
        count = len(labels)
        images = pixels.astype(np.float32) / np.float32(255)
        replay = self.ensure_replay()
        before = {name: {key: value.copy() for key, value in model.network.state().items()}
                  for name, model in self.models.items()}
        started = time.perf_counter()
        saved = {}
        try:
            with Commit(self.data.folder) as commit:
                self.data.stage(commit, pixels, labels)
                for name, model in self.models.items():
                    fine_tune(model, images, labels, replay, self.rng,
                              optimizer=self.optimizer(name, model), max_steps=MAX_STEPS)
                    path = self.data.weights_path(name)
                    try:
                        model.save(commit.temporary(path), extra={**model.extra, "personal_examples": count})
                    except OSError as error:
                        raise cannot_write(self.data.folder, f"the taught weights {path.name}", error) from None
                    saved[name] = path
        except BaseException:
            for name, model in self.models.items():
                model.network.load_state(before[name])
            self.optimizers.clear()   # their moments saw the undone steps: start afresh
            raise
        return {"count": count, "replay": replay is not None,
                "seconds": time.perf_counter() - started, "saved": saved}

    def forget_weights(self):
        """Delete the personal weights (not the data set); returns the paths removed."""
        removed = []
        for name in self.models:
            path = self.data.weights_path(name)
            if path.exists():
                path.unlink()
                removed.append(path)
        return removed


def personal_weights(name, folder=None):
    """The personal weights file of model ``name`` if there is one, else None."""
    path = PersonalSet(folder).weights_path(name)
    return path if path.is_file() else None

