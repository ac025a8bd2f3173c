"""Argument normalisation and validation shared by the functional ops, ``nn``, ``data`` and ``summary``.

Everything here runs on static Python values (shapes, ints, strings) at trace
time, so a bad argument raises a ValueError before XLA sees anything.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax.numpy as jnp
from jax import lax

# The layout names used in error messages, by number of spatial dims.
ACTIVATION_LAYOUTS = {1: "NLC", 2: "NHWC", 3: "NDHWC"}
KERNEL_LAYOUTS = {1: "KIO (width, in, out)", 2: "HWIO", 3: "DHWIO"}


def is_int(value) -> bool:
    """A Python or NumPy integer (sizes often come from NumPy arithmetic), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_tuple(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of ints (Python or NumPy), as a tuple of ``n`` Python ints."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int or {n} ints, got {value!r}")
    if is_int(value):
        return (int(value),) * n
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) == n and all(is_int(v) for v in values):
            return tuple(int(v) for v in values)
    raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")


def positive_tuple(value, n: int, name: str) -> tuple[int, ...]:
    """Like :func:`as_tuple`, and every entry must be >= 1 (strides, dilations, windows)."""
    values = as_tuple(value, n, name)
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be >= 1 in every dimension, got {value!r}")
    return values


def check_ndim(x, ndim: int, what: str = "input") -> None:
    """Raise unless ``x`` has rank ``ndim + 2`` (batch, spatial..., channels)."""
    layout = ACTIVATION_LAYOUTS.get(ndim, f"rank {ndim + 2}")
    if getattr(x, "ndim", None) != ndim + 2:
        raise ValueError(
            f"expected {layout} {what} (rank {ndim + 2}), got shape {getattr(x, 'shape', x)}"
        )


def explicit_padding(
    padding,
    spatial_shape: Sequence[int],
    window_shape: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int] | None = None,
) -> tuple[tuple[int, int], ...]:
    """Every padding form the library accepts, as explicit ``(low, high)`` pairs.

    Accepted forms (``n = len(spatial_shape)``):
      - ``int``: the same on both sides of every spatial dim;
      - ``n`` ints: per dim, both sides;
      - ``n`` pairs ``((top, bottom), (left, right), ...)``;
      - ``"SAME"`` (output size ``ceil(W / S)``) or ``"VALID"`` (no padding).

    Raises ValueError for negative padding or a form that does not match ``n``.
    """
    n = len(spatial_shape)
    dilation = tuple(dilation) if dilation is not None else (1,) * n
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in ("SAME", "VALID"):
            raise ValueError(
                f'padding must be an int, {n} ints, {n} (low, high) pairs, "SAME" or "VALID"; '
                f"got {padding!r}"
            )
        effective = [(k - 1) * d + 1 for k, d in zip(window_shape, dilation)]
        return tuple(
            tuple(p) for p in lax.padtype_to_pads(tuple(spatial_shape), effective, tuple(strides), mode)
        )
    if isinstance(padding, Sequence) and len(padding) == n and all(
        isinstance(p, Sequence) and not isinstance(p, str) for p in padding
    ):
        pairs = tuple(tuple(p) for p in padding)
        if not all(len(p) == 2 and all(is_int(v) for v in p) for p in pairs):
            raise ValueError(f"padding pairs must be (low, high) ints, got {padding!r}")
        pairs = tuple((int(lo), int(hi)) for lo, hi in pairs)
    else:
        pads = as_tuple(padding, n, "padding")
        pairs = tuple((p, p) for p in pads)
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pairs


def check_window_fits(
    spatial_shape: Sequence[int],
    window_shape: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int] | None = None,
    what: str = "kernel",
) -> None:
    """Raise when the (dilated) window is larger than the padded input."""
    dilation = tuple(dilation) if dilation is not None else (1,) * len(spatial_shape)
    for size, k, (lo, hi), d in zip(spatial_shape, window_shape, pads, dilation):
        effective = (k - 1) * d + 1
        if effective > size + lo + hi:
            raise ValueError(
                f"{what} {tuple(window_shape)} (dilated extent {effective}) is larger than the "
                f"padded input {tuple(spatial_shape)} with padding {tuple(pads)}"
            )


def check_floating(x, op: str) -> None:
    """Raise unless ``x`` has a floating dtype (means and normalizations of integers would truncate)."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"{op}: expected a floating-point input, got {dtype}; cast first, e.g. x.astype(jnp.float32)"
        )


def check_batch(images, labels) -> None:
    """Raise ValueError unless ``images`` is (B, ...) with rank >= 2 and ``labels`` is int (B,).

    Runs on static shapes, so it fails at trace time with a readable message.
    """
    if getattr(images, "ndim", 0) < 2:
        raise ValueError(
            f"images must be a batch (B, H, W, C) NHWC, got shape {getattr(images, 'shape', images)}"
        )
    if getattr(labels, "ndim", None) != 1:
        raise ValueError(
            f"labels must be integer class indices of shape (B,), got shape "
            f"{getattr(labels, 'shape', labels)}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"images and labels must have the same batch size, got {images.shape[0]} images "
            f"and {labels.shape[0]} labels"
        )
