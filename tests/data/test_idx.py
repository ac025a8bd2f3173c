"""IDX reading: the real MNIST in data/mnist, and corrupt or truncated files."""
import gzip
import hashlib
import struct

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.data.idx import parse_idx, read_idx_split
from jaxcnn.data.sources import REPO_DATA_DIR

MNIST_DIR = REPO_DATA_DIR / "mnist"
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_train():
    return data.load("mnist", "train")


@pytest.fixture(scope="module")
def mnist_test():
    return data.load("mnist", "test")


def test_real_mnist_shapes_and_dtypes(mnist_train, mnist_test):
    assert mnist_train.images.shape == (60000, 28, 28, 1) and mnist_train.images.dtype == np.uint8
    assert mnist_train.labels.shape == (60000,) and mnist_train.labels.dtype == np.int32
    assert mnist_test.images.shape == (10000, 28, 28, 1) and mnist_test.labels.dtype == np.int32
    assert mnist_train.num_classes == mnist_test.num_classes == 10
    assert mnist_train.name == "mnist" and len(mnist_test) == 10000
    # Real digits use the full range and have mostly black background.
    assert mnist_test.images.min() == 0 and mnist_test.images.max() == 255
    assert 0.75 < np.mean(mnist_test.images == 0) < 0.85


def test_real_mnist_label_counts(mnist_train, mnist_test):
    assert np.bincount(mnist_test.labels, minlength=10).tolist() == TEST_LABEL_COUNTS
    # Train counts of the official release (LeCun et al.).
    assert np.bincount(mnist_train.labels, minlength=10).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]
    # The first training label of the release is a 5, the first test label a 7.
    assert mnist_train.labels[0] == 5 and mnist_test.labels[0] == 7


def test_real_mnist_headers_and_bytes_match_the_release(mnist_test):
    raw = gzip.decompress((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    assert (magic, count, rows, cols) == (0x00000803, 10000, 28, 28)
    expected = np.frombuffer(raw[16:], np.uint8).reshape(10000, 28, 28)
    np.testing.assert_array_equal(mnist_test.images[..., 0], expected)
    labels_raw = gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert struct.unpack(">II", labels_raw[:8]) == (0x00000801, 10000)
    np.testing.assert_array_equal(mnist_test.labels, np.frombuffer(labels_raw[8:], np.uint8))


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trips_written_files(tmp_path, formats, gz):
    images, labels = formats.tiny_mnist(5)
    formats.write_mnist_split(tmp_path, "test", images, labels, gz=gz)
    suffix = ".gz" if gz else ""
    np.testing.assert_array_equal(data.read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), images)
    dataset = read_idx_split(tmp_path, "test", "mnist")
    np.testing.assert_array_equal(dataset.images[..., 0], images)
    np.testing.assert_array_equal(dataset.labels, labels.astype(np.int32))


def test_parse_idx_big_endian_types():
    # Hand-built: type 0x0B (int16), shape (2, 2), values 1, -2, 256, 3 big-endian.
    raw = bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 2) + struct.pack(">hhhh", 1, -2, 256, 3)
    values = parse_idx(raw)
    assert values.dtype == np.int16 and values.dtype.isnative
    np.testing.assert_array_equal(values, [[1, -2], [256, 3]])
    raw = bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2) + struct.pack(">ff", 1.5, -0.25)
    np.testing.assert_array_equal(parse_idx(raw), np.array([1.5, -0.25], np.float32))


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "not an IDX file"),
        (b"\x1f\x8b\x08\x00rest", "not an IDX file"),
        (bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"x", "unknown IDX type byte 0x07"),
        (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "truncated IDX header"),
        (bytes([0, 0, 0x08, 1]) + struct.pack(">I", 4) + b"abc", r"truncated: header shape \(4,\) needs 4 data bytes, found 3"),
        (bytes([0, 0, 0x08, 1]) + struct.pack(">I", 2) + b"abc", "trailing bytes"),
    ],
)
def test_parse_idx_rejects_bad_bytes(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(raw, source="some-file")
    with pytest.raises(ValueError, match="some-file"):
        parse_idx(raw, source="some-file")


def test_truncated_idx_file_names_the_file(tmp_path, formats):
    images, labels = formats.tiny_mnist(4)
    formats.write_mnist_split(tmp_path, "train", images, labels, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: IDX file truncated"):
        data.load("mnist", "train", data_dir=tmp_path)


def test_truncated_gzip_names_the_file(tmp_path, formats):
    images, labels = formats.tiny_mnist(4)
    formats.write_mnist_split(tmp_path, "train", images, labels)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        data.load("mnist", "train", data_dir=tmp_path)


def test_corrupt_gzip_names_the_file(tmp_path, formats):
    images, labels = formats.tiny_mnist(4)
    formats.write_mnist_split(tmp_path, "test", images, labels)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt or truncated gzip"):
        data.load("mnist", "test", data_dir=tmp_path)
    # A flipped byte inside the deflate stream or CRC is caught too.
    formats.write_idx(path, labels)
    corrupted = bytearray(path.read_bytes())
    corrupted[-6] ^= 0xFF
    path.write_bytes(bytes(corrupted))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: corrupt or truncated gzip"):
        data.load("mnist", "test", data_dir=tmp_path)


@pytest.mark.parametrize(
    "images_shape, labels_value, labels_count, message",
    [
        ((3, 28, 27), 1, 3, r"images-idx3-ubyte\.gz: expected an IDX header of N x 28 x 28"),
        ((3, 28, 28), 1, 2, r"labels-idx1-ubyte\.gz: 2 labels but .* holds 3 images"),
        ((3, 28, 28), 10, 3, r"labels-idx1-ubyte\.gz: label 10 out of range"),
    ],
)
def test_mnist_header_checks(tmp_path, formats, images_shape, labels_value, labels_count, message):
    formats.write_mnist_split(
        tmp_path, "train", np.zeros(images_shape, np.uint8), np.full(labels_count, labels_value, np.uint8)
    )
    with pytest.raises(ValueError, match=message):
        data.load("mnist", "train", data_dir=tmp_path)


def test_half_a_split_is_reported(tmp_path, formats):
    images, _ = formats.tiny_mnist(2)
    formats.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    with pytest.raises(FileNotFoundError, match=r"not t10k-labels-idx1-ubyte\[\.gz\]"):
        data.load("mnist", "test", data_dir=tmp_path)
