"""scikit-learn's embedded 8x8 handwritten digits (UCI ML optical digits), offline.

1,797 grayscale 8x8 images of the digits 0..9 with pixel values 0..16, shipped
inside the scikit-learn wheel. Scaled here to uint8 by ``round(v * 255 / 16)``
(0 -> 0, 16 -> 255) and kept at 8x8x1.

Split (deterministic and stratified, independent of any random generator):
within each class, in file order, every fifth example (positions 4, 9, 14, ...)
is a test example and the rest are train. That gives 1,442 train and 355 test
images with the class proportions of the whole set.
"""
from __future__ import annotations

import functools

import numpy as np

from jaxcnn.data.dataset import ArrayDataset

NUM_CLASSES = 10
TEST_EVERY = 5
MAX_RAW_VALUE = 16


def load_digits_split(split: str) -> ArrayDataset:
    """One split of the digits dataset.

    Returns:
        an ArrayDataset named ``"digits"`` with images ``(N, 8, 8, 1)`` uint8 and
        labels ``(N,)`` int32, N = 1,442 for ``"train"`` and 355 for ``"test"``.
        Examples keep their file order.
    """
    if split not in ("train", "test"):
        raise ValueError(f'split must be "train" or "test", got {split!r}')
    images, targets, is_test = _scaled_digits_and_test_mask()
    keep = is_test if split == "test" else ~is_test
    return ArrayDataset(
        images=images[keep],
        labels=targets[keep],
        num_classes=NUM_CLASSES,
        name="digits",
    )


@functools.lru_cache(maxsize=1)
def _scaled_digits_and_test_mask() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 1,797 images (N, 8, 8, 1) uint8, labels (N,) int32, and the test mask (N,) bool."""
    # Imported here so importing jaxcnn.data does not pay for scikit-learn.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw_images, targets = bunch.images, bunch.target
    position_in_class = np.empty(len(targets), dtype=np.int64)
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(targets == digit)
        position_in_class[members] = np.arange(len(members))
    is_test = position_in_class % TEST_EVERY == TEST_EVERY - 1
    images = np.round(raw_images * (255.0 / MAX_RAW_VALUE)).astype(np.uint8)[..., None]
    labels = targets.astype(np.int32)
    # Cached and shared: read-only so no caller can alter later loads.
    for array in (images, labels, is_test):
        array.flags.writeable = False
    return images, labels, is_test
