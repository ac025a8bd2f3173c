"""Mean/std normalization (the slides' preprocessing) and dataset statistics: per channel
(:func:`channel_stats`) or per pixel (:func:`mean_image`, AlexNet's mean-image subtraction)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.data.dataset import ArrayDataset

# Training-split statistics in [0, 1] units: mean and population std (ddof=0)
# over every pixel of every image, per channel.
# MNIST and digits: computed with channel_stats (checked in tests/data).
MNIST_MEAN, MNIST_STD = (0.13066048,), (0.30810780,)
DIGITS_MEAN, DIGITS_STD = (0.30518309,), (0.37599409,)
# Fashion-MNIST and CIFAR-10 are not available offline here: the widely used
# values computed the same way over the official training sets.
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.28604060,), (0.35302424,)
CIFAR10_MEAN = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD = (0.24703223, 0.24348513, 0.26158784)

_STATS = {
    "mnist": (MNIST_MEAN, MNIST_STD),
    "fashion_mnist": (FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "digits": (DIGITS_MEAN, DIGITS_STD),
}

# Pixels summed per chunk: keeps channel_stats' int64 temporaries near 64 MB.
_CHUNK_PIXELS = 8_000_000


def stats_for(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The training-split ``(mean, std)`` of a named dataset, each ``(C,)`` float32 in [0, 1] units."""
    if name not in _STATS:
        raise ValueError(f"no statistics for dataset {name!r}; expected one of {', '.join(sorted(_STATS))}")
    mean, std = _STATS[name]
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def channel_stats(dataset: ArrayDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std (ddof=0) of all pixels, in [0, 1] units.

    Args:
        dataset: images ``(N, H, W, C)`` uint8, N >= 1.

    Returns:
        ``(mean, std)``, each ``(C,)`` float32, with ``x / 255`` as the pixel value.
    """
    if not isinstance(dataset, ArrayDataset):
        raise ValueError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset.name!r} is empty; statistics need at least one image")
    images = dataset.images
    channels = images.shape[-1]
    pixels_per_image = int(np.prod(images.shape[1:3]))
    images_per_chunk = max(1, _CHUNK_PIXELS // max(1, pixels_per_image))
    # Exact integer sums (x <= 255, so sums of x*x fit int64 for any realistic
    # dataset), then one float64 division: no accumulation error to speak of.
    total = np.zeros(channels, np.int64)
    total_squares = np.zeros(channels, np.int64)
    for start in range(0, len(images), images_per_chunk):
        chunk = images[start : start + images_per_chunk].reshape(-1, channels).astype(np.int64)
        total += chunk.sum(axis=0)
        total_squares += (chunk * chunk).sum(axis=0)
    count = len(images) * pixels_per_image
    mean = total / count
    variance = np.maximum(total_squares / count - mean * mean, 0.0)
    return (mean / 255.0).astype(np.float32), (np.sqrt(variance) / 255.0).astype(np.float32)


def mean_image(dataset: ArrayDataset) -> np.ndarray:
    """The mean image ``(H, W, C)`` over the N images, in [0, 1] units (AlexNet's preprocessing).

    ``mean_image(ds)[h, w, c] = sum_n images[n, h, w, c] / (255 * N)``: the same units as
    :func:`channel_stats`, whose per-channel mean is this image's mean over ``(H, W)``.
    Subtract it with ``normalize(images, mean_image(train), 1.0)`` (AlexNet subtracts
    the training set's mean image and does not divide) or pass a per-pixel std too.

    Args:
        dataset: images ``(N, H, W, C)`` uint8, N >= 1.

    Returns:
        ``(H, W, C)`` float32. Exact integer sums, then one float64 division.
    """
    if not isinstance(dataset, ArrayDataset):
        raise ValueError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset.name!r} is empty; a mean image needs at least one image")
    images = dataset.images
    pixels_per_image = int(np.prod(images.shape[1:]))
    images_per_chunk = max(1, _CHUNK_PIXELS // max(1, pixels_per_image))
    total = np.zeros(images.shape[1:], np.int64)
    for start in range(0, len(images), images_per_chunk):
        total += images[start : start + images_per_chunk].astype(np.int64).sum(axis=0)
    return (total / (255.0 * len(images))).astype(np.float32)


def _check_statistic(what: str, value, image_shape) -> None:
    """``value`` must broadcast as a scalar, ``(C,)`` or ``(H, W, C)`` against images ``(..., H, W, C)``."""
    channels = image_shape[-1]
    allowed = [(), (1,), (channels,)]
    if len(image_shape) >= 3:
        allowed.append(tuple(image_shape[-3:]))
    if tuple(value.shape) not in allowed:
        per_pixel = f" or per pixel {tuple(image_shape[-3:])} (H, W, C)" if len(image_shape) >= 3 else ""
        raise ValueError(
            f"{what} must be a scalar, per channel ({channels},){per_pixel} for images of shape "
            f"{tuple(image_shape)}, got shape {tuple(value.shape)}"
        )


def normalize(images, mean, std) -> jnp.ndarray:
    """``(images / 255 - mean) / std`` as float32; jit-compatible.

    Args:
        images: ``(..., C)`` uint8 (e.g. a NHWC batch ``(B, H, W, C)``).
        mean, std: each a scalar, a per-channel ``(C,)`` (e.g. from :func:`stats_for`
            or :func:`channel_stats`) or a per-pixel ``(H, W, C)`` matching the
            images' last three axes (e.g. :func:`mean_image`), in [0, 1] units;
            broadcast over the leading axes. std must be > 0 everywhere.

    Returns:
        float32 array of the shape of ``images``.
    """
    images = jnp.asarray(images)
    if images.dtype != jnp.uint8:
        raise ValueError(f"normalize expects uint8 images (0..255), got {images.dtype}")
    if images.ndim < 1:
        raise ValueError("normalize expects images with a trailing channel axis, got a scalar")
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    for what, value in (("mean", mean), ("std", std)):
        _check_statistic(what, value, images.shape)
    # A traced std (normalize called on a jit argument) cannot be inspected; a concrete one can.
    if not isinstance(std, jax.core.Tracer) and bool(jnp.any(std <= 0)):
        raise ValueError(
            f"std must be > 0 in every channel (and pixel), got {int(jnp.sum(std <= 0))} value(s) <= 0 "
            f"such as {float(std[std <= 0].ravel()[0])}"
        )
    return (images.astype(jnp.float32) / 255.0 - mean) / std
