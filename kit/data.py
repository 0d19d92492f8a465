"""Where the MNIST files live, and the command that downloads and verifies them.

Usage::

    python -m kit.data download [--data DIR] [--mirror URL ...]
    python -m kit.data verify [--data DIR]

(``cnn-vs-lstm data`` is the same program.)  The folder is ``--data`` (or ``--dir``), else the ``MNIST_DIR`` environment variable, else ``./data/mnist`` where
it exists, else the per-user data folder (``~/.local/share/cnn-vs-lstm-numpy/mnist`` on Linux).
Every file is checked against the SHA-256 of its *uncompressed* content, so a gzipped and a raw
copy verify alike and a mirror cannot hand us different bytes.
"""
import argparse
import hashlib
import http.client
import math
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import namedtuple
from contextlib import contextmanager
from pathlib import Path

from kit.cli import CommandLineParser, add_data_flag, exit_on_user_error
from kit.paths import user_mnist_dir
from kit.mnist import MissingFile, check_data_folder, download_command, find_mnist_file, mnist_file_names
from nn.errors import DataError
from nn.idx import _GZIP_ERRORS, GZIP_MAGIC, open_maybe_gzip, read_idx

__all__ = [
    "MNIST_FILES",
    "DEFAULT_MIRRORS",
    "DEFAULT_DATA_DIR",
    "resolve_data_dir",
    "require_mnist",
    "sha256_uncompressed",
    "download",
    "verify",
    "main",
]

# SHA-256 of the uncompressed files, copied from ../shared/data/mnist/SHA256SUMS.txt (the
# project's reference copy of MNIST). Same values as the widely published sums of the originals.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# (split, kind) of each canonical name, to look it up under any spelling with find_mnist_file.
_SPLIT_KIND = {
    "train-images-idx3-ubyte": ("train", "images"),
    "train-labels-idx1-ubyte": ("train", "labels"),
    "t10k-images-idx3-ubyte": ("test", "images"),
    "t10k-labels-idx1-ubyte": ("test", "labels"),
}
# Tried in order. yann.lecun.com is the original home but often refuses downloads now.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DEFAULT_DATA_DIR = Path("data") / "mnist"
DEFAULT_TIMEOUT = 30.0  # seconds without data before a mirror is given up on
_CHUNK = 1 << 16

DownloadResult = namedtuple("DownloadResult", "name path source")
DownloadResult.__doc__ = """One MNIST file after :func:`download`: canonical ``name``, the verified
``path`` on disk, and the ``source`` URL it came from (``None`` if it was already present)."""


def resolve_data_dir(arg=None) -> Path:
    """The MNIST folder: ``arg`` (a ``--data`` flag), else ``$MNIST_DIR``, else ``./data/mnist``
    where it exists, else the per-user data folder (:func:`kit.paths.user_mnist_dir`).

    Parameters
    ----------
    arg : str or os.PathLike or None
        An explicit folder; empty or ``None`` means "not given".

    Returns
    -------
    pathlib.Path
        The folder, ``~`` expanded; it need not exist.
    """
    chosen = arg or os.environ.get("MNIST_DIR")
    if chosen:
        return Path(chosen).expanduser()
    if DEFAULT_DATA_DIR.is_dir():
        return DEFAULT_DATA_DIR
    return user_mnist_dir()


# The program the person typed (``cnn-vs-lstm evaluate``, ``python -m models.train``), set by
# :func:`advice_for` while a command runs, so that advice names commands they can type.
_advice = {"prog": None}


@contextmanager
def advice_for(prog):
    """While the block runs, missing-data errors name the commands of ``prog``'s program: an
    installed ``cnn-vs-lstm evaluate`` is told ``cnn-vs-lstm data download``, which works without
    the virtual environment active, ``python -m models.evaluate`` ``python -m kit.data download``."""
    previous, _advice["prog"] = _advice["prog"], prog
    try:
        yield
    finally:
        _advice["prog"] = previous


def data_program(prog=None):
    """'cnn-vs-lstm data' for a command of the installed ``cnn-vs-lstm``, else 'python -m kit.data'."""
    words = str(prog or _advice["prog"] or "").split()
    if words and not words[0].startswith("python") and not words[0].endswith(".py"):
        return f"{words[0]} data"
    return "python -m kit.data"


def _advised(error, directory, in_command=True):
    """``error`` (a DataError naming kit.mnist's fetch command) with the program's own command,
    and, for a command that reads MNIST, its --download and --data flags."""
    text = str(error)
    command = download_command(directory)
    if command not in text:
        return error
    own = command.replace("python -m kit.data", data_program(), 1)
    if in_command:
        own += ", or run this command again with --download, or with --data DIR for a folder that has them"
    return type(error)(text.replace(command, own))


def ensure_mnist(directory, download_if_missing=False, ask=None) -> dict:
    """:func:`require_mnist`, fetching the files first when they are missing and the user agrees:
    ``download_if_missing`` (the ``--download`` flag), or a yes at a prompt on a terminal.
    Never downloads silently."""
    directory = Path(directory)
    try:
        return require_mnist(directory)
    except DataError as missing:
        if not download_if_missing:
            ask = ask if ask is not None else (sys.stdin.isatty() and sys.stderr.isatty())
            if not ask:
                raise _advised(missing, directory) from None
            print(f"MNIST is not in {directory}. Download it there (about 11 MB, checked against "
                  "its SHA-256 sums)? [y/N] ", end="", file=sys.stderr, flush=True)
            try:
                answer = input().strip().lower()
            except EOFError:
                answer = ""
            if answer not in ("y", "yes"):
                raise _advised(missing, directory) from None
        download(directory, progress=sys.stderr.isatty())
        return require_mnist(directory)


def require_mnist(directory) -> dict:
    """Check that all four MNIST files are in ``directory``, before any work starts.

    Only presence is checked (cheap); parsing happens when the files are loaded, and
    ``python -m kit.data verify`` checks the checksums.

    Parameters
    ----------
    directory : str or os.PathLike

    Returns
    -------
    dict
        Canonical name -> :class:`pathlib.Path` of the file found (under any spelling).

    Raises
    ------
    DataError
        One line naming the missing folder or files and the exact command that fetches them.
    """
    directory = Path(directory)
    check_data_folder(directory)
    found, missing = {}, []
    for name, (split, kind) in _SPLIT_KIND.items():
        try:
            found[name] = find_mnist_file(directory, split, kind)
        except MissingFile:
            missing.append(name + "[.gz]")
    if missing:
        raise DataError(
            f"MNIST files missing in {directory}: {', '.join(missing)}; get them with: "
            f"{download_command(directory)}"
        )
    return found


def sha256_uncompressed(path) -> str:
    """SHA-256 (hex) of a file's content, decompressed first if it is gzipped.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        64 hex digits.

    Raises
    ------
    DataError
        If the file cannot be read or its gzip stream is corrupt or truncated.
    """
    try:
        return _sha256_stream(path)
    except _GZIP_ERRORS as error:
        raise DataError(f"{path}: corrupt or unreadable: {error}") from None


def _sha256_stream(path) -> str:
    """:func:`sha256_uncompressed` letting gzip/zlib/OS errors through for the caller to word."""
    digest = hashlib.sha256()
    with open_maybe_gzip(path) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _present_and_verified(directory: Path, name: str):
    """The file that would be loaded for ``name``, if it exists and verifies; else ``None``."""
    try:
        path = find_mnist_file(directory, *_SPLIT_KIND[name])
        return path if sha256_uncompressed(path) == MNIST_FILES[name] else None
    except DataError:
        return None


class _Progress:
    """Byte counter on stderr, redrawn in place at most ten times a second."""

    def __init__(self, label: str, total, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled
        self.done, self.last = 0, 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last > 0.1:
            self.last = now
            self._draw()

    def _draw(self) -> None:
        total = f" / {self.total:,}" if self.total else ""
        print(f"\r  {self.label}: {self.done:,}{total} bytes", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled:
            self._draw()
            print(file=sys.stderr, flush=True)


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why."""


def _fetch(url: str, name: str, directory: Path, timeout: float, progress: bool) -> Path:
    """Download ``url`` to a temporary file in ``directory`` and verify it as ``name``.

    Returns the temporary path on success; on any failure the temporary file is deleted and a
    :class:`_MirrorFailed` carrying the reason is raised.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.gz.", suffix=".part")
    except OSError as error:
        raise DataError(f"cannot write to MNIST folder {directory}: {error.strerror}") from None
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    bar = _Progress(f"{name}.gz <- {url}", int(length) if length else None,
                                    progress)
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                    bar.finish()
            except urllib.error.HTTPError as error:
                raise _MirrorFailed(f"HTTP {error.code} {error.reason} from {url}") from None
            except urllib.error.URLError as error:
                raise _MirrorFailed(f"cannot reach {url}: {error.reason}") from None
            except (http.client.HTTPException, OSError, ValueError) as error:
                # IncompleteRead, timeouts, connection resets, malformed URLs
                reason = str(error) or type(error).__name__
                raise _MirrorFailed(f"download from {url} failed: {reason}") from None
            out.flush()
            os.fsync(out.fileno())  # the bytes are on disk before the rename makes them visible
        with open(tmp, "rb") as f:
            if f.read(2) != GZIP_MAGIC:
                raise _MirrorFailed(f"{url} is not a gzip file")
        try:
            digest = _sha256_stream(tmp)
        except _GZIP_ERRORS as error:
            raise _MirrorFailed(f"{url} is not a valid gzip file: {error}") from None
        if digest != MNIST_FILES[name]:
            raise _MirrorFailed(
                f"SHA-256 mismatch for {url}: got {digest[:16]}..., "
                f"expected {MNIST_FILES[name][:16]}..."
            )
        return tmp
    except BaseException:  # including KeyboardInterrupt: never leave a .part file behind
        tmp.unlink(missing_ok=True)
        raise


def download(directory, mirrors=None, progress=True, timeout=DEFAULT_TIMEOUT) -> list:
    """Download and verify the four MNIST files into ``directory``.

    For each file: if a copy is already present (any spelling, gzipped or raw) and its
    uncompressed SHA-256 matches :data:`MNIST_FILES`, it is kept and nothing is fetched.
    Otherwise ``<name>.gz`` is fetched from each mirror in turn into a temporary file in the same
    directory, its decompressed SHA-256 is checked, and only then is it renamed into place
    (atomically, with ``os.replace``). A failed attempt deletes its temporary file.

    Parameters
    ----------
    directory : str or os.PathLike
        Destination folder; created if missing.
    mirrors : sequence of str, optional
        Base URLs ending in the folder that holds ``<name>.gz`` (``file://`` works too).
        Default :data:`DEFAULT_MIRRORS`.
    progress : bool, optional
        Print byte counts and mirror failures on stderr (default ``True``).
    timeout : float, optional
        Seconds a connection may stay silent before the mirror is abandoned.

    Returns
    -------
    list of DownloadResult
        One per file, in :data:`MNIST_FILES` order.

    Raises
    ------
    DataError
        If the folder cannot be created, or every mirror failed for a file (the message names the
        file and the last reason). Files verified before the failure stay; nothing else is left
        (a folder this call created and left empty is removed again).
    """
    directory = Path(directory)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive, finite number of seconds, not {timeout!r}")
    mirrors = list(mirrors) if mirrors else list(DEFAULT_MIRRORS)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create MNIST folder {directory}: {error.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise DataError(f"cannot write to MNIST folder {directory}")
    results = []
    for name in MNIST_FILES:
        present = _present_and_verified(directory, name)
        if present is not None:
            if progress:
                print(f"  {present.name}: present, SHA-256 ok", file=sys.stderr)
            results.append(DownloadResult(name, present, None))
            continue
        stale = [directory / n for n in mnist_file_names(*_SPLIT_KIND[name])
                 if (directory / n).is_file() and n != name + ".gz"]
        reason = "no mirrors given"
        for i, mirror in enumerate(mirrors):
            url = mirror.rstrip("/") + "/" + name + ".gz"
            try:
                tmp = _fetch(url, name, directory, timeout, progress)
            except _MirrorFailed as error:
                reason = str(error)
                if progress and i + 1 < len(mirrors):
                    print(f"  {name}.gz: {reason}; trying the next mirror", file=sys.stderr)
                continue
            final = directory / (name + ".gz")
            try:
                os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a data file is not a secret
                os.replace(tmp, final)
            except OSError as error:
                tmp.unlink(missing_ok=True)
                raise DataError(f"cannot move the download to {final}: {error.strerror}") from None
            results.append(DownloadResult(name, final, url))
            if progress and stale:
                # Not deleted (never destroy a user's file), but the canonical .gz is what
                # find_mnist_file picks first, so these are no longer read.
                print(f"  note: {', '.join(str(p) for p in stale)} failed the checksum and is "
                      f"now unused; {final.name} replaces it", file=sys.stderr)
            break
        else:
            if created and not any(directory.iterdir()):
                directory.rmdir()  # a failed first download leaves no trace, not even the folder
            raise DataError(f"could not download {name}.gz from any mirror (last error: {reason}); "
                            f"check the network and run the download again, or copy the four MNIST files "
                            f"({', '.join(MNIST_FILES)}, gzipped or not) into {directory} by hand")
    return results


def verify(directory) -> list:
    """Check all four MNIST files: present, parse as IDX, SHA-256 of the content matches.

    Parameters
    ----------
    directory : str or os.PathLike

    Returns
    -------
    list of (pathlib.Path, tuple)
        Each verified file and its array shape.

    Raises
    ------
    DataError
        One line listing every problem and the command that fixes them.
    """
    directory = Path(directory)
    check_data_folder(directory)
    checked, problems = [], []
    for name, (split, kind) in _SPLIT_KIND.items():
        try:
            path = find_mnist_file(directory, split, kind)
            shape = read_idx(path).shape
            digest = sha256_uncompressed(path)
        except DataError as error:
            problems.append(str(error).split("; get the files with")[0])
            continue
        if digest != MNIST_FILES[name]:
            problems.append(f"{path}: SHA-256 mismatch (got {digest[:16]}..., "
                            f"expected {MNIST_FILES[name][:16]}...)")
            continue
        checked.append((path, shape))
    if problems:
        raise DataError(
            f"{len(problems)} of 4 MNIST files failed verification: {'; '.join(problems)}; "
            f"get good copies with: {download_command(directory)}"
        )
    return checked


def timeout_seconds(text) -> float:
    """A --timeout value: a finite number of seconds above 0 (``inf`` would wait forever)."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _parser(prog="python -m kit.data") -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog=prog,
        description="Download and verify the MNIST IDX files. The folder is --data (or --dir), else "
                    f"$MNIST_DIR, else ./{DEFAULT_DATA_DIR.as_posix()} where it exists, else the user "
                    f"data folder: {user_mnist_dir()}",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    down = commands.add_parser(
        "download", help="fetch the four files, verify their SHA-256, skip ones already present",
        description="Fetch train/t10k images/labels (.gz) into the folder. A file already "
                    "present whose checksum verifies is skipped; each download goes to a "
                    "temporary file and is renamed into place only after its SHA-256 matches.",
    )
    add_data_flag(down, "--dir")
    down.add_argument("--mirror", action="append", metavar="URL",
                      help="base URL holding <name>.gz; repeat to try several in order "
                           "(replaces the defaults: " + ", ".join(DEFAULT_MIRRORS) + ")")
    down.add_argument("--timeout", type=timeout_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                      help="give up on a mirror silent this long "
                           f"(default {DEFAULT_TIMEOUT:g})")
    down.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="show byte counts on stderr (default: when stderr is a terminal)")
    check = commands.add_parser(
        "verify", help="check the four files are present, parse, and match their SHA-256",
        description="Check that all four MNIST files are present, parse as IDX and match the "
                    "published SHA-256 of their uncompressed content.",
    )
    add_data_flag(check, "--dir")
    return parser


@exit_on_user_error
def main(argv=None, prog="python -m kit.data") -> int:
    """Command-line entry point; see ``python -m kit.data --help``."""
    args = _parser(prog).parse_args(argv)
    directory = resolve_data_dir(args.data)
    with advice_for(prog):
        try:
            return _run(args, directory)
        except DataError as error:
            raise _advised(error, directory, in_command=False) from None


def _run(args, directory) -> int:
    if args.command == "download":
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        for result in download(directory, args.mirror, progress=progress, timeout=args.timeout):
            how = "already present" if result.source is None else f"downloaded from {result.source}"
            print(f"ok  {result.path}  ({how}, SHA-256 verified)")
    else:
        for path, shape in verify(directory):
            print(f"ok  {path}  shape {shape}, SHA-256 verified")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
