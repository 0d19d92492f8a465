"""Saving and loading weights as ``.npz``: arrays plus a JSON header, never pickles.

Layout of a weights file:
    __meta__        uint8 array holding UTF-8 JSON: format tag, version, the architecture
                    (layer list), free-form metadata, and a SHA-256 over every array
    state/<key>     one array per parameter or buffer, key '<layer index>.<name>'
Writing goes to a temporary file in the same folder that is then renamed over the target, so a
crash never leaves a half-written file; the temporary files of a killed write are removed by the
next write of the same target.  Loading uses ``allow_pickle=False`` and checks the
format tag, every key, shape, dtype and the checksum, raising :class:`WeightsError` with one line
saying what is wrong.
"""
import hashlib
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from nn.errors import WeightsError

FORMAT = "cnn-vs-lstm-numpy/weights"
VERSION = 1


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


def atomic_savez(path, arrays):
    """np.savez to ``path`` via a temporary file and a rename: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, _default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text):
    """Write a text file via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, _default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_weights(path, state, meta):
    """Write ``state`` (key -> array) and ``meta`` (JSON-serialisable dict) to ``path``."""
    header = {"format": FORMAT, "version": VERSION, **meta}
    header["checksum"] = state_checksum(state, header)
    arrays = {f"state/{key}": np.asarray(value) for key, value in state.items()}
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_savez(path, arrays)


def read_weights(path):
    """Read a weights file.  Returns (meta dict, state dict); checks format and checksum only."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise WeightsError(f"{path}: not a weights file (not an .npz archive)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a bare .npy array: np.load returns it, not an archive
            raise WeightsError(f"{path}: a single .npy array, not an .npz weights file")
        with loaded as archive:
            if "__meta__" not in archive.files:
                raise WeightsError(f"{path}: not a weights file of this project (no __meta__ entry)")
            meta = json.loads(archive["__meta__"].tobytes().decode("utf-8"))
            state = {name[len("state/"):]: archive[name] for name in archive.files
                     if name.startswith("state/")}
    except WeightsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, UnicodeDecodeError) as error:
        # np.load raises ValueError for pickled object arrays and for non-npz bytes.
        raise WeightsError(f"{path}: not a readable .npz weights file ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a weights file of this project (format tag missing)")
    if meta.get("version") != VERSION:
        raise WeightsError(f"{path}: weights format version {meta.get('version')}, expected {VERSION}")
    if state_checksum(state, meta) != meta.get("checksum"):
        raise WeightsError(f"{path}: checksum mismatch - the file was modified or is corrupt")
    return meta, state


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
