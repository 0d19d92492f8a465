"""Saving and loading weights as ``.npz``: arrays plus a JSON header, never pickles.

Layout of a weights file:
    __meta__        uint8 array holding UTF-8 JSON: format tag, version, the architecture
                    (layer list), free-form metadata, and a SHA-256 over every array
    state/<key>     one array per parameter or buffer, key '<layer index>.<name>'
Writing goes to a temporary file in the same folder that is then renamed over the target, so a
crash never leaves a half-written file, and the temporary files of a killed write are removed by
the next write of the same target.  Loading never unpickles and never trusts a size: it
reads the zip directory and each array's .npy header first (:class:`WeightsArchive`), checks them
against limits and, in :func:`models.base.load_model`, against the shapes the architecture needs,
before reading any data; then the checksum.  Every problem is a :class:`WeightsError` with one
line saying what is wrong.
"""
import hashlib
import io
import json
import math
import os
import re
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nn.errors import WeightsError

FORMAT = "cnn-vs-lstm-numpy/weights"
VERSION = 1

# Limits checked before anything is read or allocated (a weights file of this kit is ~1.5 MB).
MAX_TOTAL_BYTES = 1 << 30        # all arrays together, uncompressed
MAX_ENTRIES = 10_000             # arrays in one file
MAX_HEADER_BYTES = 1 << 20       # the JSON header
MAX_JSON_DEPTH = 32              # nesting of the JSON header (ours: 4)
MAX_RATIO = 100                  # uncompressed / compressed size of an entry ...
RATIO_EXEMPT_BYTES = 1 << 20     # ... larger than this (small zero biases compress well)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def state_checksum(state, meta=None):
    """SHA-256 over the header (without its checksum entry, as canonical JSON) and over keys,
    dtypes, shapes and bytes of every array in sorted key order.

    Covering the header matters: it holds the architecture, and an edited LeakyReLU slope or
    dropout rate would otherwise load silently and change the model.
    """
    digest = hashlib.sha256()
    header = {k: v for k, v in (meta or {}).items() if k != "checksum"}
    digest.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for key in sorted(state):
        array = np.ascontiguousarray(state[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _default_file_mode():
    """0o666 minus the umask: what open() would have given (mkstemp makes files 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


STALE_SECONDS = 60  # a temporary file this old belongs to a write that was killed


def remove_stale_temporaries(path):
    """Delete ``.<name>.XXXXXXXX.tmp`` files beside ``path`` that a killed write left behind
    (older than a minute: a younger one may be another process writing right now)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    now = time.time()
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return
    for candidate in candidates:
        if not pattern.fullmatch(candidate.name):
            continue
        try:
            if now - candidate.lstat().st_mtime > STALE_SECONDS:
                candidate.unlink()
        except OSError:
            pass  # gone already, or not ours to delete


@contextmanager
def atomic_file(path, mode="wb"):
    """Open a temporary file beside ``path``; when the block ends, flush it to disk and rename
    it over ``path``: all or nothing.  On any error (or Ctrl-C) the temporary file is removed and
    ``path`` is untouched.  Leftovers of a killed earlier write are cleaned first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, _default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_savez(path, arrays):
    """np.savez to ``path`` via a temporary file and a rename: all or nothing.  Every array is
    written row-major (a column-major Dense weight too), so files do not depend on the layout."""
    with atomic_file(path) as handle:
        np.savez(handle, **{name: np.asarray(array, order="C") for name, array in arrays.items()})


def atomic_write_bytes(path, parts):
    """Write the byte strings ``parts`` one after another to ``path``: all or nothing."""
    with atomic_file(path) as handle:
        for part in parts:
            handle.write(part)


def atomic_write_text(path, text):
    """Write a text file via a temporary file and a rename: all or nothing."""
    with atomic_file(path, "w") as handle:
        handle.write(text)


def weights_header(state, meta):
    """The JSON header of a weights file: format tag, version, ``meta``, and the checksum."""
    header = {"format": FORMAT, "version": VERSION, **meta}
    header["checksum"] = state_checksum(state, header)
    return header


def save_weights(path, state, meta):
    """Write ``state`` (key -> array) and ``meta`` (JSON-serialisable dict) to ``path``."""
    header = weights_header(state, meta)
    arrays = {f"state/{key}": np.asarray(value) for key, value in state.items()}
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_savez(path, arrays)


class ArrayInfo(NamedTuple):
    """One array of a weights file as its .npy header declares it; no data read."""
    shape: tuple            # as declared
    dtype: np.dtype         # as declared (may be big-endian: compared, never converted)
    fortran_order: bool
    member: zipfile.ZipInfo  # the zip entry holding it
    data_offset: int        # bytes of .npy header before the data


def json_depth(text):
    """How deeply ``text``'s arrays and objects nest (brackets inside strings do not count).

    Checked before ``json.loads``, whose recursion ends in a RecursionError on deep nesting.
    """
    brackets = re.sub(r"[^\[\]{}]", "", _JSON_STRING.sub('""', text))
    depth = deepest = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


class WeightsArchive:
    """A weights file opened for checking before anything is allocated.

    Opening reads only the zip directory, the JSON header and each array's .npy header (shape
    and dtype), and checks them against size limits; the caller compares the declared shapes
    with what the architecture needs, and only then asks for the data::

        with WeightsArchive(path) as archive:
            archive.meta            # the JSON header: format, version, architecture, checksum
            archive.arrays          # key -> ArrayInfo(shape, dtype, ...), nothing loaded
            state = archive.read_state()   # key -> array, checksum verified

    Limits: at most ``max_bytes`` of arrays in all (as declared in the zip directory, which
    also bounds what the decompressor may produce), ``MAX_ENTRIES`` entries, a header of
    ``MAX_HEADER_BYTES`` nested at most ``MAX_JSON_DEPTH`` deep, and no entry over 1 MiB that
    claims to be more than ``MAX_RATIO`` times its compressed size (a zip bomb).
    """

    def __init__(self, path, max_bytes=MAX_TOTAL_BYTES):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._zip = None
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: no such weights file")
        with open(self.path, "rb") as handle:
            start = handle.read(6)
        if start == b"\x93NUMPY":
            raise WeightsError(f"{self.path}: a single .npy array, not an .npz weights file")
        if start[:4] != b"PK\x03\x04":  # every .npz is a zip archive
            raise WeightsError(f"{self.path}: not a weights file (not an .npz archive)")
        try:
            self._zip = zipfile.ZipFile(self.path)
            members = self._check_directory()
            self.meta = self._read_meta(members)
            self.arrays = {name[len("state/"):-len(".npy")]: self._array_info(member)
                           for name, member in members.items() if name.startswith("state/")}
        except WeightsError:
            self.close()
            raise
        except (OSError, ValueError, EOFError, KeyError, UnicodeDecodeError, zipfile.BadZipFile,
                zlib.error, NotImplementedError, RuntimeError) as error:
            self.close()
            raise WeightsError(f"{self.path}: not a readable .npz weights file "
                               f"({_one_line(error)})") from None

    def _fail(self, problem):
        raise WeightsError(f"{self.path}: {problem}")

    def _check_directory(self):
        """{name: ZipInfo}, after checking names, count, sizes and compression ratios."""
        members = self._zip.infolist()
        if len(members) > MAX_ENTRIES:
            self._fail(f"{len(members)} entries, more than a weights file has ({MAX_ENTRIES})")
        names = [member.filename for member in members]
        if len(set(names)) != len(names):
            self._fail("an entry appears twice in the archive")
        total = 0
        for member in members:
            if not member.filename.endswith(".npy"):
                self._fail(f"entry {member.filename!r} is not a .npy array")
            if member.flag_bits & 0x1:
                self._fail(f"entry {member.filename!r} is encrypted")
            total += member.file_size
            if total > self.max_bytes:
                self._fail(f"the arrays would take {total / 2**20:,.0f} MiB or more, over the "
                           f"{self.max_bytes / 2**20:,.0f} MiB limit for a weights file")
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > RATIO_EXEMPT_BYTES and ratio > MAX_RATIO:
                self._fail(f"entry {member.filename!r} claims {member.file_size:,} bytes from "
                           f"{member.compress_size:,} compressed ({ratio:,.0f}x): refused as a "
                           "zip bomb")
        return dict(zip(names, members))

    def _array_info(self, member):
        """Shape and dtype from an entry's .npy header, reading only the header."""
        name = member.filename
        with self._zip.open(member) as handle:
            prefix = io.BytesIO(handle.read(min(member.file_size, 16 + 65536)))
        try:
            version = np.lib.format.read_magic(prefix)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(prefix)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(prefix)
            else:
                raise ValueError(f".npy format version {version}")
        except ValueError as error:
            self._fail(f"entry {name!r} is not a readable .npy array ({_one_line(error)})")
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
            self._fail(f"entry {name!r} holds {dtype} values (pickled objects or not numbers); "
                       "weights are plain numeric arrays")
        declared = math.prod(shape) * dtype.itemsize
        if prefix.tell() + declared != member.file_size:
            self._fail(f"entry {name!r} claims shape {shape} of {dtype} ({declared:,} bytes) "
                       f"but holds {member.file_size - prefix.tell():,} bytes")
        return ArrayInfo(tuple(shape), dtype, fortran_order, member, prefix.tell())

    def _read_array(self, info):
        """The array of ``info``, read into memory of its own (writable)."""
        nbytes = info.member.file_size - info.data_offset
        buffer = bytearray(nbytes)
        view = memoryview(buffer)
        with self._zip.open(info.member) as handle:
            handle.read(info.data_offset)
            filled = 0
            while filled < nbytes:
                count = handle.readinto(view[filled:])
                if not count:
                    raise EOFError(f"entry {info.member.filename!r} is truncated")
                filled += count
            handle.read(1)  # reach the end, where zipfile checks the CRC
        array = np.frombuffer(buffer, dtype=info.dtype)
        if info.fortran_order:
            return np.ascontiguousarray(array.reshape(info.shape[::-1]).T)
        return array.reshape(info.shape)

    def _read_meta(self, members):
        member = members.get("__meta__.npy")
        if member is None:
            self._fail("not a weights file of this project (no __meta__ entry)")
        info = self._array_info(member)
        if info.dtype != np.uint8 or len(info.shape) != 1 or info.shape[0] > MAX_HEADER_BYTES:
            self._fail(f"the __meta__ entry must be a UTF-8 JSON text of at most "
                       f"{MAX_HEADER_BYTES:,} bytes, not a {info.dtype} array of shape {info.shape}")
        text = self._read_array(info).tobytes().decode("utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            self._fail(f"the JSON header nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            meta = json.loads(text)
        except ValueError as error:
            self._fail(f"the JSON header is not valid JSON ({_one_line(error)})")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            self._fail("not a weights file of this project (format tag missing)")
        if meta.get("version") != VERSION:
            self._fail(f"weights format version {meta.get('version')!r}, expected {VERSION}")
        return meta

    def read_state(self):
        """key -> array for every state entry, after verifying the checksum over all of it."""
        try:
            state = {key: self._read_array(info) for key, info in self.arrays.items()}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, MemoryError) as error:
            raise WeightsError(f"{self.path}: not a readable .npz weights file "
                               f"({_one_line(error)})") from None
        if state_checksum(state, self.meta) != self.meta.get("checksum"):
            self._fail("checksum mismatch - the file was modified or is corrupt")
        check_finite(self.path, state)
        return state

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_weights(path, max_bytes=MAX_TOTAL_BYTES):
    """Read a weights file.  Returns (meta dict, state dict); checks the file's structure, its
    size limits, format, version and checksum (not the architecture: see
    :class:`WeightsArchive` to check shapes before reading the data)."""
    with WeightsArchive(path, max_bytes) as archive:
        return archive.meta, archive.read_state()


def check_finite(path, state):
    """Refuse ``state`` (key -> array) if a float array holds NaN or an infinity: such weights
    load, predict one class for everything and report ~10 % as if it were a result.  The checksum
    cannot catch them (a diverged run writes them faithfully).  Every loader calls this: .npz
    and safetensors weights (``read_state``) and a training checkpoint when it is resumed."""
    for key in sorted(state):
        array = np.asarray(state[key])
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            count = int(array.size - np.isfinite(array).sum())
            raise WeightsError(f"{path}: array '{key}' holds {count:,} NaN or infinite value"
                               f"{'' if count == 1 else 's'} (of {array.size:,}); these weights are "
                               "unusable (a diverged run?) - retrain, or use another file")


def check_state(path, state, expected):
    """Check that ``state`` has exactly the keys, shapes and dtypes of ``expected``."""
    for key, reference in expected.items():
        if key not in state:
            raise WeightsError(f"{path}: missing array '{key}'")
        array = state[key]
        if array.shape != reference.shape:
            raise WeightsError(f"{path}: array '{key}' has shape {array.shape}, expected {reference.shape}")
        if array.dtype != reference.dtype:
            raise WeightsError(f"{path}: array '{key}' has dtype {array.dtype}, expected {reference.dtype}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise WeightsError(f"{path}: unexpected array '{extra[0]}' (the architecture differs)")
