"""load(): resolution order, errors that say where it looked, digits, and the TFDS path."""
import re

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.data import sources


@pytest.fixture
def fake_repo_data(tmp_path, monkeypatch):
    """Point the 'repository data/ folder' step at an empty temporary folder."""
    repo = tmp_path / "repo_data"
    repo.mkdir()
    monkeypatch.setattr(sources, "REPO_DATA_DIR", repo)
    return repo


@pytest.fixture
def tfds_offline(monkeypatch):
    """tfds.data_source with nothing prepared and no network; records how it was called."""
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = []

    def unprepared(name, **kwargs):
        calls.append((name, kwargs))
        if kwargs.get("download", True):
            raise ConnectionError("network unreachable")
        raise NotImplementedError("nothing prepared")  # what TFDS 4.9 raises here

    monkeypatch.setattr(tfds, "data_source", unprepared)
    return calls


def test_names():
    assert data.names() == ("cifar10", "digits", "fashion_mnist", "mnist")


@pytest.mark.parametrize(
    "name, split, message",
    [
        ("imagenet", "train", "unknown dataset 'imagenet'; expected one of cifar10, digits, fashion_mnist, mnist"),
        ("mnist", "validation", "split must be \"train\" or \"test\", got 'validation'"),
        ("digits", "TRAIN", "split must be \"train\" or \"test\", got 'TRAIN'"),
    ],
)
def test_bad_name_or_split(name, split, message):
    with pytest.raises(ValueError, match=message):
        data.load(name, split)


def test_resolution_order(tmp_path, formats, fake_repo_data, monkeypatch):
    # Distinct sizes tell the three places apart.
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    formats.write_mnist_split(explicit / "mnist", "train", *formats.tiny_mnist(3))
    formats.write_mnist_split(env / "mnist", "train", *formats.tiny_mnist(5))
    formats.write_mnist_split(fake_repo_data / "mnist", "train", *formats.tiny_mnist(7))
    monkeypatch.setenv("JAXCNN_DATA_DIR", str(env))
    assert len(data.load("mnist", "train", data_dir=explicit)) == 3
    assert len(data.load("mnist", "train", data_dir=str(explicit))) == 3
    assert len(data.load("mnist", "train")) == 5
    monkeypatch.delenv("JAXCNN_DATA_DIR")
    assert len(data.load("mnist", "train")) == 7


def test_files_directly_in_data_dir(tmp_path, formats, fake_repo_data):
    images, labels = formats.tiny_mnist(4)
    formats.write_mnist_split(tmp_path / "flat", "test", images, labels, gz=False)
    dataset = data.load("fashion_mnist", "test", data_dir=tmp_path / "flat")
    assert dataset.name == "fashion_mnist"
    np.testing.assert_array_equal(dataset.images[..., 0], images)


def test_the_real_repo_data_folder_is_found():
    assert sources.REPO_DATA_DIR.name == "data"
    assert (sources.REPO_DATA_DIR / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def test_missing_data_dir_argument(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError, match=re.escape(f"data_dir {missing} does not exist")):
        data.load("mnist", "train", data_dir=missing)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_a_named_data_dir_without_the_files_is_an_error_not_a_fallback(
        tmp_path, formats, fake_repo_data, tfds_offline, monkeypatch, name):
    # Every fallback holds the data: none of them may be used when a folder was named.
    env = tmp_path / "env"
    formats.write_mnist_split(env / "mnist", "test", *formats.tiny_mnist(5))
    formats.write_mnist_split(fake_repo_data / "mnist", "test", *formats.tiny_mnist(7))
    monkeypatch.setenv("JAXCNN_DATA_DIR", str(env))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as raised:
        data.load(name, "test", data_dir=empty)
    message = str(raised.value)
    assert message.startswith(f"data_dir {empty} does not hold the test split of {name!r}")
    assert f"looked in {empty / name} and {empty} for " in message
    expected = "t10k-images-idx3-ubyte[.gz]" if name == "mnist" else "test_batch"
    assert expected in message
    assert tfds_offline == []  # TFDS was not asked either
    # The real repository copy is not used either (the reproduction).
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="does not hold the test split of 'mnist'"):
        data.load("mnist", "test", data_dir=empty)


def test_nothing_found_lists_every_place_and_how_to_get_it(tmp_path, fake_repo_data, tfds_offline, monkeypatch):
    env = tmp_path / "env_missing"
    monkeypatch.setenv("JAXCNN_DATA_DIR", str(env))
    with pytest.raises(FileNotFoundError) as raised:
        data.load("cifar10", "train")
    message = str(raised.value)
    for place in (env / "cifar10", env, fake_repo_data / "cifar10", fake_repo_data):
        assert f"\n  {place} (" in message
    assert f"{env} ($JAXCNN_DATA_DIR): no such directory" in message
    assert "(repository data/ folder)" in message
    assert "TFDS tfds.data_source('cifar10', split='train'" in message
    assert "ConnectionError: cannot reach www.cs.toronto.edu:443" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "data_batch_1..5" in message
    # TFDS was asked for a prepared copy of the right split, with $JAXCNN_DATA_DIR
    # as its data_dir, and never asked to download.
    assert tfds_offline == [("cifar10", {"split": "train", "data_dir": str(env), "download": False})]


def test_tfds_uses_its_default_dir_without_data_dir(fake_repo_data, tfds_offline):
    with pytest.raises(FileNotFoundError, match="mnist/"):
        data.load("mnist", "test")
    assert tfds_offline == [("mnist", {"split": "test", "data_dir": None, "download": False})]


def test_tfds_path_under_mock_data(fake_repo_data):
    tfds = pytest.importorskip("tensorflow_datasets")
    policy = tfds.testing.MockPolicy.USE_CODE
    with tfds.testing.mock_data(num_examples=6, policy=policy):
        cifar = data.load("cifar10", "test")
        fashion = data.load("fashion_mnist", "train")
        reference = tfds.data_source("cifar10", split="test")
        expected_images = np.stack([np.asarray(reference[i]["image"]) for i in range(len(reference))])
        expected_labels = np.array([int(reference[i]["label"]) for i in range(len(reference))])
    assert cifar.name == "cifar10" and cifar.num_classes == 10
    assert cifar.images.shape == (6, 32, 32, 3) and cifar.images.dtype == np.uint8
    assert cifar.labels.dtype == np.int32
    np.testing.assert_array_equal(cifar.images, expected_images)
    np.testing.assert_array_equal(cifar.labels, expected_labels)
    assert fashion.images.shape == (6, 28, 28, 1) and fashion.name == "fashion_mnist"
    assert fashion.labels.min() >= 0 and fashion.labels.max() < 10


def test_tfds_examples_of_the_wrong_kind_are_rejected(fake_repo_data, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    examples = [
        {"image": np.zeros((4, 4, 1), np.uint8), "label": 1},
        {"image": np.zeros((4, 4, 1), np.float32), "label": 2},
    ]
    monkeypatch.setattr(tfds, "data_source", lambda name, **kwargs: examples)
    with pytest.raises(FileNotFoundError, match=r"ValueError: TFDS 'mnist' example 1: expected a uint8 HWC image"):
        data.load("mnist", "train")


def test_digits_sizes_and_stratification():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert train.images.shape == (1442, 8, 8, 1) and test.images.shape == (355, 8, 8, 1)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
    assert train.name == "digits" and train.num_classes == 10
    # Per class: every fifth of sklearn's 178, 182, 177, 183, 181, 182, 181, 179, 174, 180 examples.
    assert np.bincount(test.labels).tolist() == [35, 36, 35, 36, 36, 36, 36, 35, 34, 36]
    assert np.bincount(train.labels).tolist() == [143, 146, 142, 147, 145, 146, 145, 144, 140, 144]
    assert train.images.max() == 255 and train.images.min() == 0


def test_digits_split_is_deterministic_disjoint_and_complete():
    from sklearn.datasets import load_digits

    raw = load_digits()
    expected = np.round(raw.images * 255 / 16).astype(np.uint8)
    train, test = data.load("digits", "train"), data.load("digits", "test")
    again = data.load("digits", "test")
    np.testing.assert_array_equal(test.images, again.images)
    np.testing.assert_array_equal(test.labels, again.labels)
    # Rebuild the split by hand: walk the file, count per class, every fifth goes to test.
    seen = [0] * 10
    test_rows, train_rows = [], []
    for row, label in enumerate(raw.target):
        (test_rows if seen[label] % 5 == 4 else train_rows).append(row)
        seen[label] += 1
    np.testing.assert_array_equal(test.images[..., 0], expected[test_rows])
    np.testing.assert_array_equal(train.images[..., 0], expected[train_rows])
    np.testing.assert_array_equal(train.labels, raw.target[train_rows])
    # Hand-derived scaling points: 0 -> 0, 8 -> round(127.5) = 128 (half to even), 16 -> 255.
    assert np.unique(expected[raw.images == 8]).tolist() == [128]
