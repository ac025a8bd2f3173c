"""Data augmentation for CIFAR-style training, in JAX (runs under jit, on device)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn.functional.args import check_ndim


def _check_nonnegative_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")


def _check_padding(padding) -> None:
    _check_nonnegative_int(padding, "padding")


# Compiled once per (shape, dtype, padding): called batch by batch from a
# Python loop, op-by-op dispatch would cost more than the work itself.
@functools.partial(jax.jit, static_argnames=("batch_size", "padding"))
def crop_flip_params(key, batch_size: int, *, padding: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The random choices :func:`random_crop_flip` makes for ``key``.

    Returns:
        ``offsets``: ``(batch_size, 2)`` int32, the (row, column) of each crop's
        top-left corner in the padded image, each uniform in ``[0, 2 * padding]``;
        ``flips``: ``(batch_size,)`` bool, True with probability 0.5.
    """
    _check_nonnegative_int(batch_size, "batch_size")
    _check_padding(padding)
    crop_key, flip_key = jax.random.split(key)
    offsets = jax.random.randint(crop_key, (batch_size, 2), 0, 2 * padding + 1, dtype=jnp.int32)
    flips = jax.random.bernoulli(flip_key, 0.5, (batch_size,))
    return offsets, flips


@functools.partial(jax.jit, static_argnames="padding")
def random_crop_flip(key, images, *, padding: int = 4):
    """Random translation by up to ``padding`` pixels and a random horizontal flip, per image.

    As in He et al. 2015 (CIFAR-10): pad each side by ``padding`` pixels with
    zeros, take an ``H x W`` crop at a uniformly random position, and mirror it
    left-right with probability 0.5. The pad value is 0 in the input's units:
    black on uint8 images, the dataset mean on normalized images (He et al.
    subtract the mean first).

    Args:
        key: a ``jax.random`` key; the same key gives the same result.
        images: ``(B, H, W, C)`` NHWC, any dtype.
        padding: pixels added on each side, >= 0 (0 gives flips only); static
            (the function is jit-compiled once per value).

    Returns:
        ``(B, H, W, C)``, the dtype of ``images``: ``apply_crop_flip(images,
        *crop_flip_params(key, B, padding=padding), padding=padding)``.
    """
    check_ndim(images, 2, "images")
    _check_padding(padding)
    offsets, flips = crop_flip_params(key, images.shape[0], padding=padding)
    return apply_crop_flip(images, offsets, flips, padding=padding)


def apply_crop_flip(images, offsets, flips, *, padding: int):
    """The deterministic half of :func:`random_crop_flip`: given crops and flips.

    Args:
        images: ``(B, H, W, C)`` NHWC, any dtype.
        offsets: ``(B, 2)`` int, (row, column) of each crop's top-left corner in
            the zero-padded ``(H + 2 * padding, W + 2 * padding)`` image, each in
            ``[0, 2 * padding]`` (larger values are clamped to the last valid window).
        flips: ``(B,)`` bool, mirror the crop left-right where True.
        padding: pixels of zeros added on each side, >= 0.

    Returns:
        ``(B, H, W, C)``: image ``i`` is ``padded[i, r:r + H, c:c + W]`` with
        ``(r, c) = offsets[i]``, reversed along W when ``flips[i]``.
    """
    check_ndim(images, 2, "images")
    _check_padding(padding)
    batch, height, width, channels = images.shape
    offsets, flips = jnp.asarray(offsets), jnp.asarray(flips)
    if offsets.shape != (batch, 2) or flips.shape != (batch,):
        raise ValueError(
            f"expected offsets of shape ({batch}, 2) and flips of shape ({batch},) for {batch} images, "
            f"got {offsets.shape} and {flips.shape}"
        )
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

    def crop(image, offset):
        return lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, channels))

    cropped = jax.vmap(crop)(padded, offsets)
    return jnp.where(flips[:, None, None, None], cropped[:, :, ::-1, :], cropped)
