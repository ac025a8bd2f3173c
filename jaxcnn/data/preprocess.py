"""Per-channel mean/std normalization (the slides' preprocessing) and dataset statistics."""
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


def normalize(images, mean, std) -> jnp.ndarray:
    """``(images / 255 - mean) / std`` per channel, as float32; jit-compatible.

    Args:
        images: ``(..., C)`` uint8 (e.g. a NHWC batch ``(B, H, W, C)``).
        mean, std: ``(C,)`` (or scalars) in [0, 1] units, e.g. from :func:`stats_for`
            or :func:`channel_stats`; std must be > 0.

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
    channels = images.shape[-1]
    for what, value in (("mean", mean), ("std", std)):
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, channels)):
            raise ValueError(f"{what} must be a scalar or have shape ({channels},) for {channels} channels, got {value.shape}")
    # A traced std (normalize called on a jit argument) cannot be inspected; a concrete one can.
    if not isinstance(std, jax.core.Tracer) and bool(jnp.any(std <= 0)):
        raise ValueError(f"std must be > 0 in every channel, got {np.asarray(std)}")
    return (images.astype(jnp.float32) / 255.0 - mean) / std
