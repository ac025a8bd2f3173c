"""Per-dataset input policy for training: which augmentation, which normalization, and the jitted pipeline.

    augmentation = augmentation_for("cifar10", augment=None)   # (4, True): on by default for cifar10
    mean, std = normalization_stats("cifar10", train_set)       # published constants, else measured
    preprocess = Preprocess(mean, std, augmentation)
    x = preprocess.train(images_uint8, key)                     # augmented + normalized float32
    x = preprocess.eval(images_uint8)                           # normalized only

An augmentation is ``(padding, flip)``: random crops of a copy zero-padded by
``padding`` pixels on each side (random shifts of up to ``padding`` pixels),
plus a random horizontal mirror where it keeps the class. Digits are not
mirrored (a mirrored 2 is no 2).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.data.augment import crop_flip_params, random_crop_flip
from jaxcnn.data.preprocess import channel_stats, normalize, stats_for

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_AUGMENTATION",
    "AUGMENTED_BY_DEFAULT",
    "augmentation_for",
    "describe_augmentation",
    "normalization_stats",
    "Preprocess",
]

# (padding, flip) per dataset; every other dataset gets DEFAULT_AUGMENTATION.
AUGMENTATIONS = {"cifar10": (4, True)}
DEFAULT_AUGMENTATION = (2, False)
# Augmented unless told otherwise (8x8 digits are too small to shift by 2).
AUGMENTED_BY_DEFAULT = ("cifar10", "mnist", "fashion_mnist")


def augmentation_for(dataset: str, augment: bool | None) -> tuple[int, bool] | None:
    """``(padding, flip)`` for training on ``dataset``, or None for no augmentation.

    ``augment`` None picks the default: on for the datasets in
    ``AUGMENTED_BY_DEFAULT``, off for the others.
    """
    if augment is None:
        augment = dataset in AUGMENTED_BY_DEFAULT
    return AUGMENTATIONS.get(dataset, DEFAULT_AUGMENTATION) if augment else None


def describe_augmentation(augmentation: tuple[int, bool] | None) -> str:
    """``", random 4-pixel shifts and flips"`` (the start line's wording); "" for None."""
    if augmentation is None:
        return ""
    padding, flip = augmentation
    return f", random {padding}-pixel shifts{' and flips' if flip else ''}"


def normalization_stats(dataset: str, train_set):
    """Per-channel ``(mean, std)`` in [0, 1] pixel units: published constants, else measured on ``train_set``."""
    try:
        return stats_for(dataset)
    except ValueError:  # no constants for this dataset: measure the training split
        return channel_stats(train_set)


class Preprocess:
    """uint8 NHWC batches -> normalized float32 NHWC (jitted); ``train`` also augments.

    ``eval(images)`` normalizes; ``train(images, key)`` applies ``augmentation``
    (None or ``(padding, flip)``, see the module docstring) with ``key``, then
    normalizes. Augmentation runs on the uint8 pixels, so the padding is black
    (the background of MNIST; torchvision's CIFAR pipeline pads the same way).
    Equal arguments share one pair of compiled functions.
    """

    def __init__(self, mean, std, augmentation: tuple[int, bool] | None):
        """``mean``/``std``: any form :func:`normalize` takes (scalar, ``(C,)``, ``(H, W, C)``)."""
        self.eval, self.train = _preprocess_functions(
            _cache_key(mean), _cache_key(std), augmentation)


def _cache_key(values) -> tuple:
    """``(shape, flat values)``: a hashable form of a scalar or an array of statistics."""
    array = np.asarray(values, np.float32)
    return array.shape, tuple(array.ravel().tolist())


@functools.lru_cache(maxsize=16)
def _preprocess_functions(mean_key: tuple, std_key: tuple, augmentation):
    # NumPy constants: normalize() validates std on concrete values.
    mean, std = (np.asarray(flat, np.float32).reshape(shape) for shape, flat in (mean_key, std_key))

    def train(images, key):
        if augmentation is not None:
            padding, flip = augmentation
            images = random_crop_flip(key, images, padding=padding)
            if not flip:  # mirror the mirrored ones back: a pure random shift
                _, flipped = crop_flip_params(key, images.shape[0], padding=padding)
                images = jnp.where(flipped[:, None, None, None], images[:, :, ::-1], images)
        return normalize(images, mean, std)

    return jax.jit(lambda images: normalize(images, mean, std)), jax.jit(train)
