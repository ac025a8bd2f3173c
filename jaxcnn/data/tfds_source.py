"""Datasets through TensorFlow Datasets' ``tfds.data_source`` (random access, no TensorFlow).

Used when no local files are found. Where the network allows (e.g. Colab)
``tfds.data_source`` downloads and prepares the dataset in ArrayRecord format
under its data_dir the first time, and reads it from there afterwards.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxcnn.data.dataset import ArrayDataset


def load_tfds_split(
    tfds_name: str, split: str, *, name: str, num_classes: int, data_dir: Path | None
) -> ArrayDataset:
    """All examples of one TFDS split, as arrays.

    Args:
        tfds_name: the TFDS builder name, e.g. ``"cifar10"``.
        split: a TFDS split name, e.g. ``"train"``.
        name: the jaxcnn name given to the returned dataset.
        num_classes: number of classes of the ``label`` feature.
        data_dir: TFDS data directory; None means TFDS's default
            (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

    Returns:
        an ArrayDataset with images ``(N, H, W, C)`` uint8 (the ``image`` feature)
        and labels ``(N,)`` int32 (the ``label`` feature).

    Raises:
        whatever ``tfds.data_source`` raises when the data cannot be had (no
        network, unknown name, ...); ValueError when the examples are not
        ``image`` uint8 HWC + integer ``label``.
    """
    # Imported on demand: importing TFDS costs a second and local data never needs it.
    import tensorflow_datasets as tfds

    source = tfds.data_source(tfds_name, split=split, data_dir=None if data_dir is None else str(data_dir))
    count = len(source)
    if count == 0:
        raise ValueError(f"TFDS {tfds_name!r} split {split!r} is empty")
    first = source[0]
    image_shape = np.shape(first["image"])
    images = np.empty((count, *image_shape), dtype=np.uint8)
    labels = np.empty((count,), dtype=np.int32)
    # Item by item: it is the access every DataSource supports; a few seconds for 70k images.
    for index in range(count):
        example = first if index == 0 else source[index]
        image = np.asarray(example["image"])
        if image.dtype != np.uint8 or image.shape != image_shape or image.ndim != 3:
            raise ValueError(
                f"TFDS {tfds_name!r} example {index}: expected a uint8 HWC image of shape {image_shape}, "
                f"got {image.shape} {image.dtype}"
            )
        images[index] = image
        labels[index] = int(example["label"])
    return ArrayDataset(images=images, labels=labels, num_classes=num_classes, name=name)
