"""IDX reading: round trips, every malformed file a DataError naming the file, the real MNIST."""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nn.errors import DataError
from kit.mnist import find_mnist_file, load_mnist, load_mnist_float, mnist_file_names
from nn.idx import read_idx, write_idx


def idx_bytes(shape, data=None, magic=b"\x00\x00", code=0x08, ndim=None) -> bytes:
    """Build an IDX file by hand (independently of write_idx), with any field overridable."""
    ndim = len(shape) if ndim is None else ndim
    if data is None:
        data = np.arange(int(np.prod(shape)), dtype=np.uint64).astype(np.uint8).tobytes()
    return magic + bytes([code, ndim]) + struct.pack(f">{len(shape)}I", *shape) + data


def parse_oracle(content: bytes):
    """The array an IDX byte string stands for, or None if it is not a valid ubyte IDX file."""
    if len(content) < 4 or content[:2] != b"\x00\x00" or content[2] != 0x08:
        return None
    ndim = content[3]
    if not 1 <= ndim <= 4 or len(content) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim])
    size = 1
    for d in shape:
        size *= d
    if len(content) != 4 + 4 * ndim + size:
        return None
    return np.frombuffer(content[4 + 4 * ndim:], dtype=np.uint8).reshape(shape)


def assert_data_error(path, *words):
    """read_idx(path) raises DataError whose message names the file and contains ``words``."""
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# round trips and file names


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 3, 4, 5), (0, 28, 28)])
def test_write_read_round_trip(tmp_path, shape, compress):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "a.idx"
    write_idx(path, array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_gzip_detected_by_content_not_extension(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_raw, raw_named_gz = tmp_path / "x.gz", tmp_path / "y-ubyte"
    write_idx(gz_named_raw, array)
    write_idx(raw_named_gz, array, compress=True)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


def test_write_idx_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError):
        write_idx(tmp_path / "f", np.zeros(3, dtype=np.int32))


@pytest.mark.parametrize("split,kind,names", [
    ("train", "images", ["train-images-idx3-ubyte", "train-images.idx3-ubyte"]),
    ("train", "labels", ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"]),
    ("test", "images", ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"]),
    ("test", "labels", ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"]),
])
@pytest.mark.parametrize("gz", ["", ".gz"])
def test_find_mnist_file_both_spellings(tmp_path, split, kind, names, gz):
    for name in names:
        folder = tmp_path / (name + gz)
        folder.mkdir()
        (folder / (name + gz)).write_bytes(b"")
        assert find_mnist_file(folder, split, kind) == folder / (name + gz)


def test_find_mnist_file_prefers_canonical_gz(tmp_path):
    for name in mnist_file_names("train", "images"):
        (tmp_path / name).write_bytes(b"")
    assert find_mnist_file(tmp_path, "train", "images").name == "train-images-idx3-ubyte.gz"


def test_find_mnist_file_missing_names_what_and_how(tmp_path):
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DataError) as info:
        find_mnist_file(tmp_path, "train", "images")
    message = str(info.value)
    assert "train images" in message and "train-images-idx3-ubyte" in message
    assert str(tmp_path) in message and "python -m kit.data download --dir" in message
    with pytest.raises(DataError, match="does not exist"):
        find_mnist_file(tmp_path / "nope", "test", "labels")


def test_find_mnist_file_bad_arguments_are_programming_errors(tmp_path):
    with pytest.raises(ValueError):
        find_mnist_file(tmp_path, "validation", "images")
    with pytest.raises(ValueError):
        find_mnist_file(tmp_path, "train", "pixels")


# ---------------------------------------------------------------------------------------------
# malformed files


GOOD = idx_bytes((2, 3, 4))  # 16-byte header + 24 data bytes

MALFORMED = {
    "empty": (b"", ["too short"]),
    "header cut in magic": (GOOD[:3], ["too short", "has 3"]),
    "header cut in dims": (GOOD[:10], ["too short", "needs 16 bytes", "has 10"]),
    "wrong magic": (b"\x12\x34" + GOOD[2:], ["wrong magic number", "0x1234"]),
    "float32 type": (idx_bytes((2,), b"\0" * 8, code=0x0D), ["0x0d", "float32", "0x08"]),
    "unknown type": (idx_bytes((2,), b"\0\0", code=0x42), ["unknown IDX type code 0x42"]),
    "ndim 0": (idx_bytes((), b""), ["0 dimensions"]),
    "ndim 5": (idx_bytes((1, 1, 1, 1, 1), b"\0"), ["5 dimensions"]),
    "truncated data": (GOOD[:-5], ["truncated", "needs 24 bytes", "has 19"]),
    "no data": (GOOD[:16], ["truncated", "has 0"]),
    "extra bytes": (GOOD + b"abc", ["3 extra bytes", "needs 24"]),
    "absurd dims": (idx_bytes((2**32 - 1,) * 4, b"\0" * 10), ["truncated", "has 10"]),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_raises_data_error_naming_file(tmp_path, case, compress):
    content, words = MALFORMED[case]
    path = tmp_path / f"bad-{case.replace(' ', '_')}"
    path.write_bytes(gzip.compress(content) if compress else content)
    assert_data_error(path, *words)


def test_gz_messages_say_decompressed(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(GOOD[:-1]))
    assert_data_error(path, "truncated", "decompressed data has 23")


def test_corrupt_gzip_stream(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes((50, 50), np.random.default_rng(1).integers(
        0, 256, 2500, dtype=np.uint8).tobytes())))
    path = tmp_path / "corrupt.gz"
    for i in range(12, len(packed) - 8, 37):  # flip bytes inside the deflate stream
        packed[i] ^= 0xFF
    path.write_bytes(bytes(packed))
    assert_data_error(path, "corrupt gzip stream")


def test_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(GOOD)
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[:-6])  # deflate data intact, trailer (CRC, size) cut
    assert_data_error(path, "corrupt gzip stream")


def test_gzip_crc_mismatch(tmp_path):
    packed = bytearray(gzip.compress(GOOD))
    packed[-8] ^= 0x01  # the CRC-32 in the trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(packed))
    assert_data_error(path, "corrupt gzip stream", "CRC")


def test_missing_file_and_directory(tmp_path):
    assert_data_error(tmp_path / "nope", "cannot read")
    assert_data_error(tmp_path, "cannot read")


# ---------------------------------------------------------------------------------------------
# load_mnist: images and labels together


def make_mnist(folder, n_images=5, n_labels=5, labels=None, image_shape=(28, 28), split="train"):
    prefix = "train" if split == "train" else "t10k"
    rng = np.random.default_rng(2)
    write_idx(folder / f"{prefix}-images-idx3-ubyte",
              rng.integers(0, 256, (n_images, *image_shape), dtype=np.uint8))
    if labels is None:
        labels = np.arange(n_labels) % 10
    write_idx(folder / f"{prefix}-labels.idx1-ubyte.gz", np.asarray(labels, np.uint8),
              compress=True)
    return folder / f"{prefix}-images-idx3-ubyte", folder / f"{prefix}-labels.idx1-ubyte.gz"


def test_load_mnist_small(tmp_path):
    make_mnist(tmp_path, split="test", labels=[0, 9, 3, 3, 1])
    images, labels = load_mnist(tmp_path, "test")
    assert images.shape == (5, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [0, 9, 3, 3, 1] and labels.dtype == np.uint8
    x, y = load_mnist_float(tmp_path, "test")
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(x * 255, images.astype(np.float32))


def test_load_mnist_count_mismatch_names_both_files(tmp_path):
    image_path, label_path = make_mnist(tmp_path, n_images=5, n_labels=4)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, "train")
    message = str(info.value)
    assert str(image_path) in message and str(label_path) in message
    assert "5 images" in message and "4 labels" in message


def test_load_mnist_label_out_of_range(tmp_path):
    _, label_path = make_mnist(tmp_path, labels=[1, 2, 10, 3, 4])
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, "train")
    message = str(info.value)
    assert str(label_path) in message and "label 10 at index 2" in message


def test_load_mnist_wrong_ranks(tmp_path):
    image_path, _ = make_mnist(tmp_path, image_shape=(28, 27))
    with pytest.raises(DataError, match="expected images of shape"):
        load_mnist(tmp_path, "train")
    write_idx(image_path, np.zeros((5, 784), np.uint8))
    with pytest.raises(DataError, match="expected images of shape"):
        load_mnist(tmp_path, "train")
    make_mnist(tmp_path)
    write_idx(tmp_path / "train-labels.idx1-ubyte.gz", np.zeros((5, 1), np.uint8))
    with pytest.raises(DataError, match="expected labels of shape"):
        load_mnist(tmp_path, "train")


def test_load_mnist_missing_file(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "train-labels.idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train labels missing"):
        load_mnist(tmp_path, "train")


# ---------------------------------------------------------------------------------------------
# the real files


@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_real_mnist(mnist_dir, split, n):
    images, labels = load_mnist(mnist_dir, split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == set(range(10))
    assert images.max() == 255 and images.min() == 0


# ---------------------------------------------------------------------------------------------
# property tests: every input is a right-shaped array or a DataError, nothing else


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "input"


def check_contract(path, content: bytes):
    """read_idx(path) returns exactly parse_oracle(content) or raises DataError - nothing else.

    ``content`` is what the file holds after decompression (None when the gzip stream is
    invalid, in which case only DataError is acceptable).
    """
    expected = None if content is None else parse_oracle(content)
    try:
        array = read_idx(path)
    except DataError as error:
        assert str(path) in str(error)
        assert expected is None, f"valid file rejected: {error}"
        event("rejected")
        return
    assert expected is not None, "invalid file accepted"
    event("accepted")
    assert array.dtype == np.uint8 and array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)


def gunzip_or_none(blob: bytes):
    try:
        return gzip.decompress(blob)
    except Exception:
        return None


@st.composite
def idx_like(draw):
    """Byte strings near the IDX format: plausible headers with one field or the length off."""
    magic = draw(st.sampled_from([b"\x00\x00"] * 4 + [b"\x00\x01", b"\x1f\x00"]))
    code = draw(st.sampled_from([0x08] * 4 + [0x09, 0x0D, 0x00, 0xFF]))
    ndim = draw(st.integers(0, 6))
    dims = draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim))
    size = int(np.prod(dims)) if dims else 0
    length = max(0, size + draw(st.sampled_from([0, 0, 0, -1, 1, -3, 7])))
    data = draw(st.binary(min_size=length, max_size=length))
    blob = magic + bytes([code, ndim]) + struct.pack(f">{ndim}I", *dims) + data
    cut = draw(st.none() | st.integers(0, len(blob)))
    return blob if cut is None else blob[:cut]


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(blob=st.binary(max_size=80))
def test_fuzz_random_bytes(scratch, blob):
    scratch.write_bytes(blob)
    check_contract(scratch, gunzip_or_none(blob) if blob[:2] == b"\x1f\x8b" else blob)


@SETTINGS
@given(blob=st.binary(max_size=80))
def test_fuzz_random_bytes_behind_gzip_magic(scratch, blob):
    # Garbage after the gzip magic exercises the header parser and inflater's failure modes.
    scratch.write_bytes(b"\x1f\x8b" + blob)
    check_contract(scratch, gunzip_or_none(b"\x1f\x8b" + blob))


@SETTINGS
@given(blob=idx_like(), compress=st.booleans())
def test_fuzz_idx_like(scratch, blob, compress):
    scratch.write_bytes(gzip.compress(blob) if compress else blob)
    check_contract(scratch, blob)


@SETTINGS
@given(data=st.data())
def test_fuzz_damaged_gzip(scratch, data):
    blob = data.draw(idx_like())
    packed = bytearray(gzip.compress(blob))
    cut = data.draw(st.integers(0, len(packed)))
    flips = data.draw(st.lists(st.integers(0, max(0, len(packed) - 1)), max_size=3))
    for i in flips:
        if i < len(packed):
            packed[i] ^= data.draw(st.integers(1, 255))
    damaged = bytes(packed[:cut])
    scratch.write_bytes(damaged)
    check_contract(scratch, gunzip_or_none(damaged) if damaged[:2] == b"\x1f\x8b" else damaged)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_every_truncation_of_a_valid_file(tmp_path, compress):
    blob = idx_bytes((3, 5, 4))
    packed = gzip.compress(blob) if compress else blob
    path = tmp_path / "f"
    for cut in range(len(packed)):
        path.write_bytes(packed[:cut])
        with pytest.raises(DataError):
            read_idx(path)
    path.write_bytes(packed)
    assert read_idx(path).shape == (3, 5, 4)


@settings(max_examples=40, deadline=None)
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_random_truncations_of_real_labels(mnist_dir, scratch, fraction):
    packed = find_mnist_file(mnist_dir, "test", "labels").read_bytes()
    cut = int(fraction * len(packed))
    scratch.write_bytes(packed[:cut])
    with pytest.raises(DataError):
        read_idx(scratch)
