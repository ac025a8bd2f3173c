"""``load(name, split)``: find a dataset's files, or fall back to TFDS.

Resolution order for file-based datasets (mnist, fashion_mnist, cifar10):

1. the ``data_dir`` argument. When it is given it is the only place looked
   at: a folder that does not hold the files is an error naming the files
   looked for, never a silent switch to another copy of the data;
2. ``$JAXCNN_DATA_DIR``;
3. the repository's ``data/`` folder (next to the ``jaxcnn`` package);
4. TFDS ``tfds.data_source`` (downloads where the network allows), with its
   data_dir set to ``data_dir`` or ``$JAXCNN_DATA_DIR`` when given. Offline,
   this step fails in seconds: the download host is probed before TFDS is
   asked to download (see :mod:`jaxcnn.data.tfds_source`).

In each of the directories of 1-3, the files are looked for in ``<dir>/<name>/``
and then directly in ``<dir>/``. ``digits`` ships inside scikit-learn and needs
no files.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import jaxcnn
from jaxcnn.data.cifar import read_cifar10_split
from jaxcnn.data.dataset import ArrayDataset
from jaxcnn.data.digits import load_digits_split
from jaxcnn.data.idx import read_idx_split
from jaxcnn.data.tfds_source import load_tfds_split

DATA_DIR_ENV = "JAXCNN_DATA_DIR"
SPLITS = ("train", "test")
REPO_DATA_DIR = Path(jaxcnn.__file__).resolve().parents[1] / "data"


@dataclasses.dataclass(frozen=True)
class _DatasetSource:
    num_classes: int
    # (directory, split) -> the split, or None when the directory does not hold it.
    read_directory: Callable[[Path, str], ArrayDataset | None] | None
    expected_files: str
    how_to_get: str


_MNIST_FILES = (
    "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
)

_SOURCES: dict[str, _DatasetSource] = {
    "mnist": _DatasetSource(
        num_classes=10,
        read_directory=lambda directory, split: read_idx_split(directory, split, "mnist"),
        expected_files=_MNIST_FILES,
        how_to_get=(
            "download the four IDX .gz files (e.g. from https://ossci-datasets.s3.amazonaws.com/mnist/) "
            "into <dir>/mnist/"
        ),
    ),
    "fashion_mnist": _DatasetSource(
        num_classes=10,
        read_directory=lambda directory, split: read_idx_split(directory, split, "fashion_mnist"),
        expected_files=_MNIST_FILES,
        how_to_get=(
            "download the four IDX .gz files from https://github.com/zalandoresearch/fashion-mnist "
            "(data/fashion/) into <dir>/fashion_mnist/"
        ),
    ),
    "cifar10": _DatasetSource(
        num_classes=10,
        read_directory=read_cifar10_split,
        expected_files=(
            "data_batch_1..5 and test_batch (python version, optionally in cifar-10-batches-py/) or "
            "data_batch_1..5.bin and test_batch.bin (binary version, optionally in cifar-10-batches-bin/)"
        ),
        how_to_get=(
            "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it into "
            "<dir>/cifar10/"
        ),
    ),
    "digits": _DatasetSource(
        num_classes=10, read_directory=None, expected_files="", how_to_get="bundled with scikit-learn"
    ),
}


def names() -> tuple[str, ...]:
    """The dataset names :func:`load` accepts, sorted."""
    return tuple(sorted(_SOURCES))


def _check_name_and_split(name: str, split: str) -> _DatasetSource:
    if name not in _SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(names())}")
    if split not in SPLITS:
        raise ValueError(f'split must be "train" or "test", got {split!r}')
    return _SOURCES[name]


def _search_directories(data_dir: Path | None) -> list[tuple[str, Path]]:
    """(how the directory was chosen, directory), in resolution order."""
    directories = []
    if data_dir is not None:
        directories.append(("data_dir argument", data_dir))
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        directories.append((f"${DATA_DIR_ENV}", Path(env_dir).expanduser()))
    directories.append(("repository data/ folder", REPO_DATA_DIR))
    return directories


def load(name: str, split: str, data_dir=None) -> ArrayDataset:
    """Load one split of a dataset into memory.

    Args:
        name: one of :func:`names`: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"digits"``.
        split: ``"train"`` or ``"test"``.
        data_dir: optional directory (str or Path) searched first; see the module
            docstring for the full resolution order.

    Returns:
        an :class:`ArrayDataset` with images ``(N, H, W, C)`` uint8 NHWC and labels
        ``(N,)`` int32:

        ==============  ===========  =======  ======
        name            H, W, C      train N  test N
        ==============  ===========  =======  ======
        mnist           28, 28, 1    60,000   10,000
        fashion_mnist   28, 28, 1    60,000   10,000
        cifar10         32, 32, 3    50,000   10,000
        digits          8, 8, 1      1,442    355
        ==============  ===========  =======  ======

    Raises:
        ValueError: unknown name or split; or a file that is corrupt or truncated
            (the message names the file).
        FileNotFoundError: ``data_dir`` was given but does not exist or does
            not hold the split's files (the message names the files looked
            for; no other place is tried); or, without ``data_dir``, no
            directory holds the files and TFDS could not provide them (the
            message lists every place looked at and how to get the data).
    """
    source = _check_name_and_split(name, split)
    if source.read_directory is None:
        return load_digits_split(split)

    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data_dir {data_dir} does not exist or is not a directory")

    if data_dir is not None:
        return _load_from_named_directory(source, name, split, data_dir)

    looked_at = []
    for origin, base in _search_directories(data_dir):
        for directory in (base / name, base):
            if not directory.is_dir():
                looked_at.append(f"{directory} ({origin}): no such directory")
                continue
            dataset = source.read_directory(directory, split)
            if dataset is not None:
                return dataset
            looked_at.append(f"{directory} ({origin}): no {split} files")

    tfds_dir = data_dir
    if tfds_dir is None and os.environ.get(DATA_DIR_ENV):
        tfds_dir = Path(os.environ[DATA_DIR_ENV]).expanduser()
    try:
        return load_tfds_split(name, split, name=name, num_classes=source.num_classes, data_dir=tfds_dir)
    except Exception as error:  # any TFDS failure means: not available this way; reported below
        looked_at.append(
            f"TFDS tfds.data_source({name!r}, split={split!r}, data_dir={tfds_dir}): "
            f"{type(error).__name__}: {error}"
        )
    places = "\n  ".join(looked_at)
    raise FileNotFoundError(
        f"dataset {name!r} split {split!r} not found. Looked in:\n  {places}\n"
        f"Expected files: {source.expected_files}.\n"
        f"To get it: {source.how_to_get} (where <dir> is data_dir, ${DATA_DIR_ENV} or {REPO_DATA_DIR}), "
        "or run where TFDS can download it."
    )


def _load_from_named_directory(source: _DatasetSource, name: str, split: str,
                               data_dir: Path) -> ArrayDataset:
    """The split from ``data_dir/<name>/`` or ``data_dir/`` only: the user named this folder."""
    for directory in (data_dir / name, data_dir):
        if directory.is_dir():
            dataset = source.read_directory(directory, split)
            if dataset is not None:
                return dataset
    raise FileNotFoundError(
        f"data_dir {data_dir} does not hold the {split} split of {name!r}: looked in "
        f"{data_dir / name} and {data_dir} for {source.expected_files}.\n"
        f"To get it: {source.how_to_get.replace('<dir>', str(data_dir))}; or leave data_dir "
        f"unset to use ${DATA_DIR_ENV}, the repository's data/ folder or TFDS."
    )
