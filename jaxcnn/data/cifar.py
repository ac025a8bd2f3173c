"""CIFAR-10 from the official batch files, python-pickle or binary version.

Python version (``cifar-10-python.tar.gz`` extracts to ``cifar-10-batches-py/``):
``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each a pickled dict with
``b"data"``: (N, 3072) uint8 rows (1024 red, 1024 green, 1024 blue values, each
plane row-major 32x32) and ``b"labels"``: N ints in 0..9.

Binary version (``cifar-10-binary.tar.gz`` extracts to ``cifar-10-batches-bin/``):
``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``, each a run of
3073-byte records: one label byte, then the same 3072 pixel bytes.

Both hold 10,000 images per batch file: 50,000 train and 10,000 test.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from jaxcnn.data.dataset import ArrayDataset

NUM_CLASSES = 10
IMAGE_SHAPE_CHW = (3, 32, 32)
PIXELS_PER_IMAGE = 3 * 32 * 32
BINARY_RECORD_BYTES = 1 + PIXELS_PER_IMAGE
BATCH_STEMS = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
PICKLE_DIR, BINARY_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"

# The only globals a batch pickle needs: numpy array reconstruction (protocols
# 2-4 and 5's _frombuffer) and _codecs.encode, which Python 3 uses to pickle
# bytes at protocol 2. Anything else (e.g. os.system) is refused, not executed.
_ALLOWED_PICKLE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _chw_rows_to_nhwc(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows.reshape((-1, *IMAGE_SHAPE_CHW)).transpose(0, 2, 3, 1))


def _check_labels(labels: np.ndarray, path: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found {labels.min()}..{labels.max()}")


def read_pickle_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version batch file.

    Returns:
        images ``(N, 32, 32, 3)`` uint8 NHWC and labels ``(N,)`` int32.

    Raises:
        ValueError naming the file when it is not a valid batch pickle (corrupt,
        truncated, wrong keys or shapes, or referencing anything but numpy arrays).
    """
    path = Path(path)
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as error:  # unpickling can fail in many ways; all mean a bad file
        raise ValueError(f"{path}: not a readable CIFAR-10 batch pickle ({type(error).__name__}: {error})") from error
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    # Python 2 pickles (the official files) have bytes keys; Python 3 ones may have str keys.
    batch = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: expected keys 'data' and 'labels', found {sorted(map(str, batch))}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS_PER_IMAGE:
        raise ValueError(
            f"{path}: 'data' must be a (N, {PIXELS_PER_IMAGE}) uint8 array, got "
            f"{getattr(data, 'shape', type(data).__name__)} {getattr(data, 'dtype', '')}"
        )
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: 'labels' must be a list of ints ({error})") from error
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but 'labels' has shape {labels.shape}")
    _check_labels(labels, path)
    return _chw_rows_to_nhwc(data), labels.astype(np.int32)


def read_binary_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One binary-version batch file (records of 1 label byte + 3072 pixel bytes).

    Returns:
        images ``(N, 32, 32, 3)`` uint8 NHWC and labels ``(N,)`` int32.

    Raises:
        ValueError naming the file when its length is not a whole number of
        records or a label byte is above 9.
    """
    path = Path(path)
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if raw.size == 0 or raw.size % BINARY_RECORD_BYTES:
        raise ValueError(
            f"{path}: size {raw.size} bytes is not a positive multiple of the {BINARY_RECORD_BYTES}-byte "
            "CIFAR-10 record (truncated or not a CIFAR-10 binary batch)"
        )
    records = raw.reshape(-1, BINARY_RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    _check_labels(labels, path)
    return _chw_rows_to_nhwc(records[:, 1:]), labels


def _split_files(directory: Path, split: str, suffix: str) -> list[Path] | None:
    paths = [directory / f"{stem}{suffix}" for stem in BATCH_STEMS[split]]
    present = [p for p in paths if p.is_file()]
    if not present:
        return None
    if len(present) != len(paths):
        missing = ", ".join(p.name for p in paths if not p.is_file())
        raise FileNotFoundError(f"{directory}: incomplete CIFAR-10 {split} split, missing {missing}")
    return paths


def read_cifar10_split(directory: Path, split: str) -> ArrayDataset | None:
    """One split of CIFAR-10 from ``directory``, or None when it holds no batch files.

    Looks in ``directory`` itself and in its ``cifar-10-batches-py/`` and
    ``cifar-10-batches-bin/`` subfolders, preferring the python version.

    Returns:
        an ArrayDataset with images ``(N, 32, 32, 3)`` uint8 and labels ``(N,)``
        int32 (N = 50,000 train / 10,000 test for the official files).

    Raises:
        FileNotFoundError: some but not all batch files of the split are present.
        ValueError: a batch file is corrupt or truncated (the message names it).
    """
    for folder in (directory, directory / PICKLE_DIR, directory / BINARY_DIR):
        for suffix, reader in (("", read_pickle_batch), (".bin", read_binary_batch)):
            paths = _split_files(folder, split, suffix)
            if paths is None:
                continue
            parts = [reader(path) for path in paths]
            return ArrayDataset(
                images=np.concatenate([images for images, _ in parts]),
                labels=np.concatenate([labels for _, labels in parts]),
                num_classes=NUM_CLASSES,
                name="cifar10",
            )
    return None
