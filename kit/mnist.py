"""The MNIST files (and any data set laid out like them): their names, finding and loading them.

A data set is a folder with four IDX files named as MNIST's are - ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzipped or
not, or spelled ``train-images.idx3-ubyte`` as some mirrors do.  :func:`load_mnist` insists on
MNIST itself (28 x 28, digits 0..9); :func:`load_dataset` takes any image size and any number of
classes, read from the files.
"""
import errno
import shlex
from pathlib import Path

import numpy as np

from nn.errors import DataError
from nn.idx import read_idx

SPLIT_PREFIX = {"train": "train", "test": "t10k"}
KIND_IDX = {"images": "idx3", "labels": "idx1"}
MNIST_IMAGE_SHAPE = (28, 28)


def download_command(directory) -> str:
    """The shell command that fetches the MNIST files into ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        Where the files should go.

    Returns
    -------
    str
        ``python -m kit.data download --dir <directory>``, quoted for a POSIX shell.
    """
    return f"python -m kit.data download --dir {shlex.quote(str(directory))}"


def mnist_file_names(split: str, kind: str) -> list:
    """The file names an MNIST file may go by, in the order :func:`find_mnist_file` tries them.

    Parameters
    ----------
    split : {"train", "test"}
    kind : {"images", "labels"}

    Returns
    -------
    list of str
        E.g. for ("train", "images"): ``train-images-idx3-ubyte.gz``,
        ``train-images-idx3-ubyte``, ``train-images.idx3-ubyte.gz``, ``train-images.idx3-ubyte``.
        The canonical gzipped name comes first because it is what ``python -m kit.data download``
        writes; a freshly downloaded, verified file then wins over any stale copy.
    """
    if split not in SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if kind not in KIND_IDX:
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    prefix, idx = SPLIT_PREFIX[split], KIND_IDX[kind]
    names = []
    for stem in (f"{prefix}-{kind}-{idx}-ubyte", f"{prefix}-{kind}.{idx}-ubyte"):
        names += [stem + ".gz", stem]
    return names


def find_mnist_file(directory, split: str, kind: str) -> Path:
    """Find one MNIST file in ``directory`` under any of its usual names.

    Parameters
    ----------
    directory : str or os.PathLike
        The MNIST folder.
    split : {"train", "test"}
        ``"test"`` files are named ``t10k-...``.
    kind : {"images", "labels"}

    Returns
    -------
    pathlib.Path
        The first existing file of :func:`mnist_file_names`.

    Raises
    ------
    DataError
        If the directory is not a folder (:func:`check_data_folder`), or a name is there but is
        not a file; :class:`MissingFile` if none of the names is there.
    """
    directory = Path(directory)
    names = mnist_file_names(split, kind)
    check_data_folder(directory)
    for name in names:
        if (directory / name).is_file():
            return directory / name
    for name in names:  # there, but not a readable file: say so rather than "missing"
        path = directory / name
        if path.is_dir():
            raise DataError(f"{path} is a folder, not the MNIST {split} {kind} file")
        if path.is_symlink():
            raise DataError(f"{path} is a broken symbolic link or a link loop")
    raise MissingFile(
        f"MNIST {split} {kind} missing in {directory} (looked for {names[1]}[.gz] and "
        f"{names[3]}[.gz]); get the files with: {download_command(directory)}"
    )


class MissingFile(DataError):
    """An MNIST file is not in the folder under any of its names."""


def check_data_folder(directory) -> None:
    """Raise :class:`DataError` naming the real problem if ``directory`` is not a folder: it does
    not exist (with the command that fetches the files), it is a file, a symbolic link loop, or a
    path through a file."""
    directory = Path(directory)
    try:
        if directory.is_dir():
            return
        directory.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DataError(f"MNIST data folder {directory} is a symbolic link loop") from None
        if directory.is_symlink():
            raise DataError(f"MNIST data folder {directory} is a broken symbolic link") from None
        if error.errno == errno.ENOTDIR:
            raise DataError(f"MNIST data folder {directory}: part of the path is a file, "
                            "not a folder") from None
        if error.errno != errno.ENOENT:
            raise DataError(f"MNIST data folder {directory}: {error.strerror}") from None
        raise DataError(
            f"MNIST data folder {directory} does not exist; get the files with: "
            f"{download_command(directory)}"
        ) from None
    raise DataError(f"MNIST data folder {directory} is a file, not a folder; give the folder "
                    "that holds the IDX files")


def _read_split(directory, split):
    """(image path, label path, images, labels) of one split, as the IDX files hold them."""
    image_path = find_mnist_file(directory, split, "images")
    label_path = find_mnist_file(directory, split, "labels")
    return image_path, label_path, read_idx(image_path), read_idx(label_path)


def _check_examples(image_path, label_path, images, labels, num_classes):
    """As many labels as images, at least one of each, every label in 0..num_classes-1."""
    if len(images) != len(labels):
        raise DataError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
    if len(labels) == 0:
        raise DataError(f"{image_path} and {label_path} hold no examples")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise DataError(f"{label_path}: label {labels[bad[0]]} at index {bad[0]} is outside "
                        f"0..{num_classes - 1} ({bad.size} such labels)")


def load_mnist(directory, split: str):
    """Load one MNIST split as stored: ``uint8`` images and labels.

    Parameters
    ----------
    directory : str or os.PathLike
        The MNIST folder.
    split : {"train", "test"}

    Returns
    -------
    images : numpy.ndarray
        ``uint8``, shape ``(N, 28, 28)``, 0 = background.
    labels : numpy.ndarray
        ``uint8``, shape ``(N,)``, values 0..9.

    Raises
    ------
    DataError
        If a file is missing or malformed, the images are not ``(N, 28, 28)``, the labels are not
        1-D, the counts differ (the message names both files) or a label is outside 0..9.
    """
    image_path, label_path, images, labels = _read_split(directory, split)
    if images.ndim != 3 or images.shape[1:] != MNIST_IMAGE_SHAPE:
        raise DataError(f"{image_path}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{label_path}: expected labels of shape (N,), got {labels.shape}")
    _check_examples(image_path, label_path, images, labels, num_classes=10)
    return images, labels


def load_mnist_float(directory, split: str):
    """Load one MNIST split ready for a model: pixels scaled to [0, 1], labels as ``int64``.

    Parameters
    ----------
    directory : str or os.PathLike
        The MNIST folder.
    split : {"train", "test"}

    Returns
    -------
    images : numpy.ndarray
        ``float32``, shape ``(N, 28, 28)``, values ``pixel / 255`` in [0, 1].
    labels : numpy.ndarray
        ``int64``, shape ``(N,)``, values 0..9 (the index type losses and ``np.take`` want).

    Raises
    ------
    DataError
        As :func:`load_mnist`.
    """
    images, labels = load_mnist(directory, split)
    # Divide in float32 so the result is the same on every platform and never leaves [0, 1].
    return images.astype(np.float32) / np.float32(255), labels.astype(np.int64)


def load_dataset(directory, split: str, num_classes=None):
    """Load one split of any MNIST-like IDX data set, pixels scaled to [0, 1].

    The image size and the number of classes come from the files: images (N, H, W) uint8,
    labels (N,) with values 0..C-1.  ``num_classes`` (the training split's) bounds the labels of
    another split; None takes ``max(label) + 1``.

    Returns
    -------
    images : float32 (N, H, W) in [0, 1];  labels : int64 (N,);  num_classes : int
    """
    image_path, label_path, images, labels = _read_split(directory, split)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{image_path}: expected uint8 images of shape (N, H, W), got "
                        f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{label_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if num_classes is None and len(labels):
        num_classes = int(labels.max()) + 1
        if num_classes < 2:
            raise DataError(f"{label_path}: every label is 0; a classifier needs at least two classes")
    elif num_classes is not None and num_classes < 2:
        raise DataError(f"a classifier needs at least two classes, not {num_classes}")
    _check_examples(image_path, label_path, images, labels, num_classes)
    return (images.astype(np.float32) / np.float32(255), labels.astype(np.int64), num_classes)
