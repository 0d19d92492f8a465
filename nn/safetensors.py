"""Reading and writing the safetensors format, with NumPy only (no dependency on its package).

The format, as its specification states it (https://github.com/huggingface/safetensors, README,
"Format"; facts only, no code taken from it):

    8 bytes   N, an unsigned little-endian 64-bit integer: the size of the header
    N bytes   a UTF-8 JSON object, starting with '{', which may be padded at the end with spaces:
              {"<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
               ..., "__metadata__": {"<string>": "<string>", ...}}   (metadata optional)
    the rest  the byte buffer: every tensor's data, little-endian and row-major (C order), at
              [begin, end) relative to the start of the buffer; the offsets must cover the
              buffer entirely, without holes or overlaps, and names may not repeat.

PyTorch (``safetensors.torch``), JAX and the Hugging Face tools read these files; our weights
travel with their architecture as JSON in one metadata entry (see :meth:`models.base.Model.
to_safetensors`).  Like :class:`nn.serialize.WeightsArchive`, :class:`SafetensorsFile` checks the
header (size, depth, offsets, shapes) before reading or allocating any tensor.
"""
import json
import math
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nn.errors import WeightsError
from nn.serialize import (FORMAT, MAX_JSON_DEPTH, MAX_TOTAL_BYTES, VERSION, atomic_write_bytes, check_finite,
                          json_depth, state_checksum)

MAX_HEADER_BYTES = 100 * 2**20   # the reference implementation's limit on N
ALIGNMENT = 8                    # the header is padded so that the data starts 8-byte aligned

# The specification's dtype names, for the dtypes NumPy has (BF16 and F8_* it has not).
DTYPES = {"BOOL": np.dtype(np.bool_), "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
          "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
          "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
          "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8")}
_NAMES = {(dtype.kind, dtype.itemsize): name for name, dtype in DTYPES.items()}


class TensorInfo(NamedTuple):
    """One tensor as the header declares it; no data read."""
    shape: tuple
    dtype: np.dtype
    begin: int      # offsets into the byte buffer, [begin, end)
    end: int


def dtype_name(dtype):
    """The specification's name of a NumPy dtype ('F32' for float32)."""
    dtype = np.dtype(dtype)
    name = _NAMES.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise ValueError(f"safetensors has no dtype for {dtype}")
    return name


def save_file(tensors, path, metadata=None):
    """Write ``tensors`` (name -> array) and ``metadata`` (str -> str) to ``path`` atomically.

    Tensors are stored in name order, little-endian and C-contiguous, whatever their layout in
    memory.
    """
    metadata = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata must map strings to strings")
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        array = np.asarray(tensors[name])
        kind = dtype_name(array.dtype)
        data = np.ascontiguousarray(array, dtype=DTYPES[kind]).tobytes()
        header[name] = {"dtype": kind, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % ALIGNMENT)
    atomic_write_bytes(path, [struct.pack("<Q", len(text)), text, *blobs])


class SafetensorsFile:
    """A safetensors file opened for checking: the header is read and validated, no tensor.

        with SafetensorsFile(path) as tensors:
            tensors.metadata          # the __metadata__ map (str -> str)
            tensors.arrays            # name -> TensorInfo(shape, dtype, begin, end)
            state = tensors.read_state()

    With ``header_key``, the metadata entry of that name must hold one of this kit's weights
    headers (JSON, see :mod:`nn.serialize`), available as ``meta``, and ``read_state`` verifies
    its checksum.
    """

    def __init__(self, path, header_key=None, max_bytes=MAX_TOTAL_BYTES):
        self.path = Path(path)
        self.meta = None
        self._handle = None
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: no such safetensors file")
        try:
            self._handle = open(self.path, "rb")
            self._read_header(max_bytes)
            if header_key is not None:
                self.meta = self._our_header(header_key)
        except BaseException:
            self.close()
            raise

    def _fail(self, problem):
        raise WeightsError(f"{self.path}: {problem}")

    def _read_header(self, max_bytes):
        size = self.path.stat().st_size
        prefix = self._handle.read(8)
        if len(prefix) < 8:
            self._fail("not a safetensors file (shorter than its 8-byte header size)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            self._fail(f"not a safetensors file (header size {length:,} for a file of {size:,} bytes)")
        raw = self._handle.read(length)
        if not raw.startswith(b"{"):
            self._fail("not a safetensors file (the header is not a JSON object)")
        try:
            text = raw.decode("utf-8")
            if json_depth(text) > MAX_JSON_DEPTH:
                self._fail(f"the JSON header nests deeper than {MAX_JSON_DEPTH} levels")
            header = json.loads(text)
        except (UnicodeDecodeError, ValueError) as error:
            self._fail(f"the safetensors header is not valid JSON ({' '.join(str(error).split())})")
        if not isinstance(header, dict):
            self._fail("the safetensors header is not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            self._fail("__metadata__ must map strings to strings")
        self.metadata = metadata
        self.data_start = 8 + length
        buffer_size = size - self.data_start
        self.arrays, spans = {}, []
        for name, entry in header.items():
            self.arrays[name] = info = self._tensor_info(name, entry)
            spans.append((info.begin, info.end, name))
        spans.sort()
        position = 0
        for begin, end, name in spans:
            if begin != position:
                self._fail(f"tensor {name!r} starts at byte {begin:,} of the data, expected "
                           f"{position:,} (holes and overlaps are not allowed)")
            position = end
        if position != buffer_size:
            self._fail(f"the tensors cover {position:,} bytes of data, the file holds {buffer_size:,}")
        if position > max_bytes:
            self._fail(f"{position / 2**20:,.0f} MiB of tensors, over the "
                       f"{max_bytes / 2**20:,.0f} MiB limit")

    def _tensor_info(self, name, entry):
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            self._fail(f"tensor {name!r}: an entry needs exactly dtype, shape and data_offsets")
        kind, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if kind not in DTYPES:
            self._fail(f"tensor {name!r}: dtype {kind!r} is not supported (supported: "
                       f"{', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(
                isinstance(side, int) and not isinstance(side, bool) and side >= 0 for side in shape):
            self._fail(f"tensor {name!r}: shape {shape!r} is not a list of sizes")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            self._fail(f"tensor {name!r}: data_offsets {offsets!r} are not [begin, end]")
        dtype = DTYPES[kind]
        if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
            self._fail(f"tensor {name!r}: shape {shape} of {kind} does not fit its "
                       f"{offsets[1] - offsets[0]:,} bytes")
        return TensorInfo(tuple(shape), dtype, offsets[0], offsets[1])

    def _our_header(self, key):
        if key not in self.metadata:
            self._fail(f"not weights of this kit (no {key!r} entry in the safetensors metadata)")
        text = self.metadata[key]
        if json_depth(text) > MAX_JSON_DEPTH:
            self._fail(f"the JSON header nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            meta = json.loads(text)
        except ValueError as error:
            self._fail(f"the {key!r} metadata is not valid JSON ({' '.join(str(error).split())})")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            self._fail("not weights of this kit (format tag missing)")
        if meta.get("version") != VERSION:
            self._fail(f"weights format version {meta.get('version')!r}, expected {VERSION}")
        return meta

    def read(self, name):
        """One tensor, read into memory of its own (writable, native byte order)."""
        info = self.arrays[name]
        buffer = bytearray(info.end - info.begin)
        self._handle.seek(self.data_start + info.begin)
        if self._handle.readinto(buffer) != len(buffer):
            self._fail(f"tensor {name!r} is truncated")
        array = np.frombuffer(buffer, dtype=info.dtype).reshape(info.shape)
        return array.astype(info.dtype.newbyteorder("="), copy=False)

    def read_state(self):
        """name -> array for every tensor; with a kit header, its checksum verified."""
        state = {name: self.read(name) for name in self.arrays}
        if self.meta is not None:   # the kit's weights: checked like an .npz's
            if state_checksum(state, self.meta) != self.meta.get("checksum"):
                self._fail("checksum mismatch - the file was modified or is corrupt")
            check_finite(self.path, state)
        return state

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_file(path):
    """(tensors: name -> array, metadata: str -> str) of a safetensors file."""
    with SafetensorsFile(path) as tensors:
        return tensors.read_state(), tensors.metadata
