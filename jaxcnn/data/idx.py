"""The IDX file format (MNIST, Fashion-MNIST), raw or gzip-compressed.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the values in C order, big-endian.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from jaxcnn.data.dataset import ArrayDataset

# Type byte of the magic number -> big-endian dtype of the values.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# File stems of the official MNIST / Fashion-MNIST release, per split.
IDX_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_IMAGE_SIZE = (28, 28)
MNIST_NUM_CLASSES = 10


def read_file_bytes(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when the name ends in ``.gz``.

    Raises ValueError naming the file when the gzip stream is corrupt or truncated.
    """
    path = Path(path)
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({error})") from error


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file into an array of its shape and native-endian dtype.

    Raises ValueError, naming ``source``, when the magic number is wrong, the
    type byte is unknown, or the data is shorter or longer than the header says.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{source}: not an IDX file (magic number must start with two zero bytes, "
            f"got {raw[:4].hex() or 'an empty file'})"
        )
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(
            f"{source}: unknown IDX type byte 0x{type_code:02x}; expected one of "
            + ", ".join(f"0x{code:02x}" for code in _IDX_DTYPES)
        )
    if ndim == 0:
        raise ValueError(f"{source}: IDX header declares 0 dimensions; expected at least 1")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(
            f"{source}: truncated IDX header ({len(raw)} bytes, the header of a rank-{ndim} file "
            f"needs {header_size})"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise ValueError(
            f"{source}: IDX file {problem}: header shape {shape} needs {expected} data bytes, "
            f"found {found}"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into an array of the shape its header declares.

    Raises ValueError naming the file when it is corrupt or truncated.
    """
    path = Path(path)
    return parse_idx(read_file_bytes(path), source=str(path))


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def read_idx_split(directory: Path, split: str, name: str) -> ArrayDataset | None:
    """One split of MNIST-format data (28x28 uint8 images, labels 0..9) from ``directory``.

    Looks for the official file names, ``.gz`` or raw (e.g. ``t10k-images-idx3-ubyte.gz``
    and ``t10k-labels-idx1-ubyte.gz`` for ``split="test"``).

    Returns:
        an ArrayDataset with images ``(N, 28, 28, 1)`` uint8 and labels ``(N,)``
        int32, or None when neither file of the split is in ``directory``.

    Raises:
        FileNotFoundError: only one of the two files is present.
        ValueError: a file is corrupt or truncated, or its header is not that of
            MNIST (images N x 28 x 28 uint8, labels N uint8 below 10).
    """
    images_stem, labels_stem = IDX_FILE_STEMS[split]
    images_path, labels_path = _find(directory, images_stem), _find(directory, labels_stem)
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = images_stem if images_path is None else labels_stem
        raise FileNotFoundError(f"{directory}: found one {split} file of {name} but not {missing}[.gz]")

    images = read_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != MNIST_IMAGE_SIZE:
        raise ValueError(
            f"{images_path}: expected an IDX header of N x {MNIST_IMAGE_SIZE[0]} x {MNIST_IMAGE_SIZE[1]} "
            f"uint8 images, got shape {images.shape} of {images.dtype}"
        )
    labels = read_idx(labels_path)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected an IDX header of N uint8 labels, got shape {labels.shape} of {labels.dtype}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: {labels.shape[0]} labels but {images_path.name} holds {images.shape[0]} images"
        )
    if labels.size and labels.max() >= MNIST_NUM_CLASSES:
        raise ValueError(f"{labels_path}: label {labels.max()} out of range, expected 0..{MNIST_NUM_CLASSES - 1}")
    return ArrayDataset(
        images=images[..., None],
        labels=labels.astype(np.int32),
        num_classes=MNIST_NUM_CLASSES,
        name=name,
    )
