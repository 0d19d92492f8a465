"""Reading and writing IDX files, the format MNIST ships in.

An IDX file is a big-endian header followed by the raw data::

    bytes 0-1   0x00 0x00            magic: two zero bytes
    byte  2     type code            0x08 = unsigned byte (the only one MNIST uses)
    byte  3     ndim                 number of dimensions
    then ndim x uint32 (big-endian)  the size of each dimension
    then prod(dims) items            the data, C order

MNIST's images are ``(N, 28, 28)`` and its labels ``(N,)``, both unsigned bytes, and the files
are usually gzipped (where MNIST's files are found, under which names, is the application's
business: :mod:`kit.mnist`). Anything that is not exactly such a file raises :class:`~nn.errors.DataError`
with the path and what is wrong; :func:`read_idx` never returns an array whose shape disagrees
with its header.
"""
import gzip
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from nn.errors import DataError

__all__ = [
    "read_idx",
    "write_idx",
    "open_maybe_gzip",
    "is_gzip",
]

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
# Every IDX type code, so an unsupported one can be named rather than just called "unknown".
IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
MAX_NDIM = 4  # MNIST needs 3; more than 4 in a "header" means the file is not IDX at all

# Errors a damaged gzip stream can raise: BadGzipFile (an OSError) for a bad header or CRC,
# zlib.error for a corrupt deflate stream, EOFError for a stream cut short.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)
_CHUNK = 1 << 22  # read decompressed data 4 MiB at a time, so a lying header cannot demand RAM


def is_gzip(path) -> bool:
    """Whether the file at ``path`` starts with the gzip magic bytes ``1f 8b``.

    The content decides, not the extension: mirrors and users rename files freely.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool

    Raises
    ------
    DataError
        If the file cannot be opened.
    """
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError as error:
        raise DataError(f"{path}: cannot read: {_os_reason(error)}") from None


def open_maybe_gzip(path):
    """Open ``path`` for binary reading, decompressing on the fly if it is gzipped.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    file object
        A binary file; reading it may raise ``OSError``, ``EOFError`` or ``zlib.error`` when a
        gzip stream is damaged (callers turn those into :class:`DataError`).

    Raises
    ------
    DataError
        If the file does not exist or cannot be opened.
    """
    if is_gzip(path):
        return gzip.open(path, "rb")
    try:
        return open(path, "rb")
    except OSError as error:
        raise DataError(f"{path}: cannot read: {_os_reason(error)}") from None


def _os_reason(error: OSError) -> str:
    return error.strerror or str(error)


def _read_exact(f, n: int, path, what: str, have: int) -> bytes:
    """Read exactly ``n`` header bytes or raise a DataError that says how many there were."""
    data = f.read(n)
    if len(data) != n:
        raise DataError(
            f"{path}: file is too short for its IDX header: {what} needs {have + n} bytes, "
            f"the file has {have + len(data)}"
        )
    return data


def read_idx(path) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzipped or raw.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip is detected by its magic bytes, not by the ``.gz`` extension.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array with exactly the shape the header declares, e.g. ``(N, 28, 28)``.

    Raises
    ------
    DataError
        If the file is missing or unreadable, the gzip stream is corrupt, the header is too short,
        the magic number is wrong, the type code is not 0x08, the number of dimensions is 0 or more
        than 4, or the data is shorter or longer than the header says. The message names ``path``.
    """
    gzipped = is_gzip(path)
    where = "decompressed data" if gzipped else "file"
    try:
        with open_maybe_gzip(path) as f:
            head = _read_exact(f, 4, path, "the magic number, type code and ndim", 0)
            if head[0] != 0 or head[1] != 0:
                raise DataError(
                    f"{path}: wrong magic number 0x{head.hex()}: an IDX file starts with two zero "
                    f"bytes (is this an IDX file?)"
                )
            code, ndim = head[2], head[3]
            if code != UBYTE:
                name = IDX_TYPES.get(code)
                described = f"IDX type code 0x{code:02x} ({name}) is not supported" if name else (
                    f"unknown IDX type code 0x{code:02x}")
                raise DataError(f"{path}: {described}; only 0x08 (unsigned byte) is")
            if ndim == 0 or ndim > MAX_NDIM:
                raise DataError(
                    f"{path}: IDX header declares {ndim} dimensions; expected 1 to {MAX_NDIM}"
                )
            raw_dims = _read_exact(f, 4 * ndim, path, f"{ndim} dimension sizes", 4)
            shape = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
            # Python ints: four uint32 sizes multiply past int64.
            expected = 1
            for d in shape:
                expected *= d
            header_len = 4 + 4 * ndim

            if not gzipped:
                # A raw file's size is known up front: check before allocating anything.
                actual = os.fstat(f.fileno()).st_size - header_len
                if actual != expected:
                    _raise_length(path, where, shape, expected, actual)
                data = bytearray(f.read(expected))
                if len(data) != expected:  # the file changed under us
                    _raise_length(path, where, shape, expected, len(data))
            else:
                # Read at most one byte past the declared end; growing the buffer chunk by chunk
                # means an absurd header costs only as much memory as the data really present.
                data = bytearray()
                while len(data) <= expected:
                    chunk = f.read(min(_CHUNK, expected + 1 - len(data)))
                    if not chunk:
                        break
                    data += chunk
                if len(data) > expected:
                    extra = len(data) - expected
                    while chunk := f.read(_CHUNK):  # count the rest without keeping it
                        extra += len(chunk)
                    _raise_length(path, where, shape, expected, expected + extra)
                if len(data) < expected:
                    _raise_length(path, where, shape, expected, len(data))
    except _GZIP_ERRORS as error:
        # DataError is not an OSError, so only genuine read/decompression failures land here.
        reason = _os_reason(error) if isinstance(error, OSError) else str(error)
        kind = "corrupt gzip stream" if gzipped else "cannot read"
        raise DataError(f"{path}: {kind}: {reason}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _raise_length(path, where: str, shape, expected: int, actual: int):
    if actual < expected:
        raise DataError(
            f"{path}: truncated: header shape {shape} needs {expected} bytes of data, "
            f"the {where} has {actual}"
        )
    raise DataError(
        f"{path}: has {actual - expected} extra bytes: header shape {shape} needs {expected} "
        f"bytes of data, the {where} has {actual}"
    )


def write_idx(path, array, compress: bool = False) -> None:
    """Write a ``uint8`` array as an IDX file (for tests and small tools).

    Written to a temporary file in the same directory and renamed into place, so a crash never
    leaves half a file behind.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    array : numpy.ndarray
        ``uint8``, 1 to 4 dimensions.
    compress : bool, optional
        Gzip the file (default ``False``: raw).

    Raises
    ------
    ValueError
        If ``array`` is not ``uint8`` or has an unsupported number of dimensions.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx writes uint8 arrays only, got {array.dtype}")
    if not 1 <= array.ndim <= MAX_NDIM:
        raise ValueError(f"write_idx writes 1 to {MAX_NDIM} dimensions, got {array.ndim}")
    header = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array).tobytes()
    if compress:
        payload = gzip.compress(payload)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
