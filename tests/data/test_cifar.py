"""CIFAR-10 from tiny files written in the official python-pickle and binary formats."""
import os
import pickle

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.data.cifar import read_cifar10_split

# A few images per batch file keeps the files tiny; the layout is the official one.
PER_BATCH = 3


def write_split_files(folder, formats, *, binary, seed=0):
    """All six batch files; returns (train_images, train_labels, test_images, test_labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = formats.write_cifar_binary if binary else formats.write_cifar_pickle
    suffix = ".bin" if binary else ""
    train_images, train_labels = [], []
    for i in range(1, 6):
        images, labels = formats.tiny_cifar(PER_BATCH, seed=seed + i)
        writer(folder / f"data_batch_{i}{suffix}", images, labels)
        train_images.append(images)
        train_labels.append(labels)
    test_images, test_labels = formats.tiny_cifar(PER_BATCH + 1, seed=seed + 100)
    writer(folder / f"test_batch{suffix}", test_images, test_labels)
    return np.concatenate(train_images), np.concatenate(train_labels), test_images, test_labels


@pytest.mark.parametrize("binary, subfolder", [(False, "cifar-10-batches-py"), (True, "cifar-10-batches-bin")])
def test_official_layouts_load_in_batch_order(tmp_path, formats, binary, subfolder):
    train_images, train_labels, test_images, test_labels = write_split_files(
        tmp_path / "cifar10" / subfolder, formats, binary=binary
    )
    train = data.load("cifar10", "train", data_dir=tmp_path)
    test = data.load("cifar10", "test", data_dir=tmp_path)
    assert train.images.shape == (5 * PER_BATCH, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int32 and train.name == "cifar10" and train.num_classes == 10
    np.testing.assert_array_equal(train.images, train_images)
    np.testing.assert_array_equal(train.labels, train_labels)
    np.testing.assert_array_equal(test.images, test_images)
    np.testing.assert_array_equal(test.labels, test_labels)


def test_pixel_layout_is_channel_planes_row_major(tmp_path):
    # Hand-placed bytes: red plane all 10 except pixel (row 1, col 2) = 200;
    # green plane 20; blue plane 30 except (31, 0) = 99.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    row[1 * 32 + 2] = 200
    row[2048 + 31 * 32 + 0] = 99
    (tmp_path / "test_batch.bin").write_bytes(bytes([7]) + row.tobytes())
    test = data.load("cifar10", "test", data_dir=tmp_path)
    image = test.images[0]
    assert test.labels.tolist() == [7]
    assert image[1, 2].tolist() == [200, 20, 30]
    assert image[31, 0].tolist() == [10, 20, 99]
    assert image[0, 0].tolist() == [10, 20, 30]


def test_files_directly_in_the_dataset_folder(tmp_path, formats):
    _, _, test_images, _ = write_split_files(tmp_path / "cifar10", formats, binary=False)
    np.testing.assert_array_equal(data.load("cifar10", "test", data_dir=tmp_path).images, test_images)


def test_python_version_preferred_over_binary(tmp_path, formats):
    _, _, pickle_test, _ = write_split_files(tmp_path / "cifar-10-batches-py", formats, binary=False, seed=0)
    write_split_files(tmp_path / "cifar-10-batches-bin", formats, binary=True, seed=50)
    np.testing.assert_array_equal(read_cifar10_split(tmp_path, "test").images, pickle_test)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_with_str_keys(tmp_path, formats, protocol):
    images, labels = formats.tiny_cifar(2)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": formats.cifar_rows(images), "labels": labels.tolist()}, f, protocol=protocol)
    np.testing.assert_array_equal(data.load("cifar10", "test", data_dir=tmp_path).images, images)


def test_official_pickles_reference_numpy_core(tmp_path, formats):
    # The official files were pickled by Python 2 with NumPy 1.x: their globals are
    # numpy.core.multiarray._reconstruct etc., which NumPy 2 keeps importable.
    images, labels = formats.tiny_cifar(2)
    raw = pickle.dumps({b"data": formats.cifar_rows(images), b"labels": labels.tolist()}, protocol=2)
    assert b"numpy._core.multiarray" in raw
    (tmp_path / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    test = data.load("cifar10", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(test.images, images)
    np.testing.assert_array_equal(test.labels, labels)


def test_truncated_binary_names_the_file(tmp_path, formats):
    write_split_files(tmp_path, formats, binary=True)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"data_batch_3\.bin: size 9218 bytes is not a positive multiple of the 3073"):
        data.load("cifar10", "train", data_dir=tmp_path)


def test_binary_label_out_of_range_names_the_file(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(bytes([10]) + bytes(3072))
    with pytest.raises(ValueError, match=r"test_batch\.bin: labels must lie in 0\.\.9"):
        data.load("cifar10", "test", data_dir=tmp_path)


def test_truncated_pickle_names_the_file(tmp_path, formats):
    write_split_files(tmp_path, formats, binary=False)
    path = tmp_path / "data_batch_2"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"data_batch_2: not a readable CIFAR-10 batch pickle"):
        data.load("cifar10", "train", data_dir=tmp_path)


@pytest.mark.parametrize(
    "batch, message",
    [
        ([1, 2, 3], "expected a pickled dict, got list"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "expected keys 'data' and 'labels'"),
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, r"'data' must be a \(N, 3072\) uint8 array"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, r"'data' must be a \(N, 3072\) uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, r"2 images but 'labels' has shape \(1,\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, r"labels must lie in 0\.\.9"),
    ],
)
def test_malformed_pickle_names_the_file(tmp_path, batch, message):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(ValueError, match=rf"test_batch: {message}"):
        data.load("cifar10", "test", data_dir=tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _RunsCode(), b"labels": []}, f)
    with pytest.raises(ValueError, match=r"test_batch: .*refusing to load global (posix|os|nt)\.system"):
        data.load("cifar10", "test", data_dir=tmp_path)


def test_incomplete_train_split_lists_missing_files(tmp_path, formats):
    write_split_files(tmp_path, formats, binary=False)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete CIFAR-10 train split, missing data_batch_4"):
        data.load("cifar10", "train", data_dir=tmp_path)
    # The test split is complete and still loads.
    assert len(data.load("cifar10", "test", data_dir=tmp_path)) == PER_BATCH + 1
