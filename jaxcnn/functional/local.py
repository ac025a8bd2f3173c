"""Layers between dense and convolutional: unshared and tiled kernels.

Both take NHWC input and slide a (KH, KW) window exactly as :func:`conv2d`
does (same stride/padding forms, zero padding, same output size
``H' = floor((H + top + bottom - KH) / SH) + 1``), but the kernel applied at
output position (i, j) is not the same everywhere (Goodfellow et al.,
*Deep Learning*, ch. 9.5):

- :func:`locally_connected2d`: a separate kernel for every output position —
  weights ``(H', W', KH, KW, C, O)``, bias ``(H', W', O)``.
- :func:`tiled_conv2d`: a (TH, TW) grid of kernels cycled over the output —
  position (i, j) uses kernel ``w[i % TH, j % TW]``; weights
  ``(TH, TW, KH, KW, C, O)``, bias ``(TH, TW, O)``. TH = TW = 1 is a convolution;
  (TH, TW) = (H', W') is a locally connected layer.

The bias follows the kernel's sharing (one bias vector per kernel).
"""
from __future__ import annotations

import jax.numpy as jnp

from jaxcnn.functional.args import check_ndim, check_window_fits, explicit_padding, positive_tuple
from jaxcnn.functional.conv import _unfold_nd
from jaxcnn.functional.shapes import conv_output_size

__all__ = ["locally_connected2d", "tiled_conv2d"]


def _patches(x, w, b, *, stride, padding, op: str, unshared: bool):
    """Validate; return (patches (N, H', W', KH*KW*C), kernel grid (G_H, G_W, KH*KW*C, O)).

    ``unshared``: the kernel grid must be the output size (locally connected);
    otherwise it is a tile grid of any size.
    """
    grid_name = "H', W'" if unshared else "TH, TW"
    check_ndim(x, 2, what=f"{op} input")
    if getattr(w, "ndim", None) != 6:
        raise ValueError(
            f"{op}: expected a kernel of shape ({grid_name}, KH, KW, C, O) (rank 6), "
            f"got shape {getattr(w, 'shape', w)}"
        )
    grid_h, grid_w, kernel_h, kernel_w, in_channels, out_channels = w.shape
    if in_channels != x.shape[-1]:
        raise ValueError(
            f"{op}: channels mismatch: input has C={x.shape[-1]} channels, kernel shape "
            f"{w.shape} expects C={in_channels} at axis 4"
        )
    if b is not None and getattr(b, "shape", None) != (grid_h, grid_w, out_channels):
        raise ValueError(
            f"{op}: bias must have shape ({grid_name}, O) = {(grid_h, grid_w, out_channels)}, "
            f"got {getattr(b, 'shape', b)}"
        )
    strides = positive_tuple(stride, 2, "stride")
    window = (kernel_h, kernel_w)
    pads = explicit_padding(padding, x.shape[1:3], window, strides)
    check_window_fits(x.shape[1:3], window, pads)
    if unshared:
        out_grid = tuple(
            conv_output_size(size, k, s, pad) for size, k, s, pad in zip(x.shape[1:3], window, strides, pads)
        )
        if (grid_h, grid_w) != out_grid:
            raise ValueError(
                f"{op}: kernel grid {(grid_h, grid_w)} must equal the output size "
                f"(H', W') = {out_grid} (one kernel per output position)"
            )
    patches = _unfold_nd(x, window, strides, pads, (1, 1))
    return patches, w.reshape(grid_h, grid_w, -1, out_channels)


def locally_connected2d(x, w, b=None, *, stride=1, padding=0):
    """Convolution with unshared weights: a different kernel at every output position.

    Args:
      x: (N, H, W, C).
      w: (H', W', KH, KW, C, O); ``w[i, j]`` is the HWIO kernel of output (i, j).
      b: optional (H', W', O) bias, one per output position.
      stride: int or (SH, SW), >= 1.
      padding: int, (PH, PW), ((top, bottom), (left, right)), "SAME" or "VALID" (zeros).

    Returns:
      (N, H', W', O) with ``H' = floor((H + top + bottom - KH) / SH) + 1`` (likewise W');
      ``y[n, i, j, o] = sum_{kh, kw, c} xpad[n, i*SH + kh, j*SW + kw, c] * w[i, j, kh, kw, c, o]``.

    Raises:
      ValueError: wrong ranks, channel mismatch, bad stride/padding, a kernel
        larger than the padded input, a kernel grid (H', W') that is not the
        output size, or a bias not of shape (H', W', O).
    """
    x, w = jnp.asarray(x), jnp.asarray(w)
    b = None if b is None else jnp.asarray(b)
    patches, kernels = _patches(
        x, w, b, stride=stride, padding=padding, op="locally_connected2d", unshared=True
    )
    y = jnp.einsum("nhwp,hwpo->nhwo", patches, kernels)
    return y if b is None else y + b


def tiled_conv2d(x, w, b=None, *, stride=1, padding=0):
    """Tiled convolution: a (TH, TW) grid of kernels, cycled over the output positions.

    Args:
      x: (N, H, W, C).
      w: (TH, TW, KH, KW, C, O); output (i, j) uses the HWIO kernel ``w[i % TH, j % TW]``.
        TH = TW = 1 is :func:`conv2d`; (TH, TW) = (H', W') is :func:`locally_connected2d`.
      b: optional (TH, TW, O) bias, cycled like the kernels.
      stride: int or (SH, SW), >= 1.
      padding: int, (PH, PW), ((top, bottom), (left, right)), "SAME" or "VALID" (zeros).

    Returns:
      (N, H', W', O) with ``H' = floor((H + top + bottom - KH) / SH) + 1`` (likewise W').

    Raises:
      ValueError: wrong ranks, channel mismatch, bad stride/padding, a kernel
        larger than the padded input, or a bias not of shape (TH, TW, O).
    """
    x, w = jnp.asarray(x), jnp.asarray(w)
    b = None if b is None else jnp.asarray(b)
    patches, kernels = _patches(
        x, w, b, stride=stride, padding=padding, op="tiled_conv2d", unshared=False
    )
    batch, out_h, out_w, features = patches.shape
    tile_h, tile_w, _, out_channels = kernels.shape
    # Pad the output grid to whole tiles, so row a*TH + t of the output uses
    # kernel row t: one einsum over (tile block, position in tile).
    blocks_h, blocks_w = -(-out_h // tile_h), -(-out_w // tile_w)
    patches = jnp.pad(
        patches, ((0, 0), (0, blocks_h * tile_h - out_h), (0, blocks_w * tile_w - out_w), (0, 0))
    )
    patches = patches.reshape(batch, blocks_h, tile_h, blocks_w, tile_w, features)
    y = jnp.einsum("natbup,tupo->natbuo", patches, kernels)
    if b is not None:
        y = y + b[:, None, :, :]  # (TH, 1, TW, O) against (..., TH, blocks_w, TW, O)
    y = y.reshape(batch, blocks_h * tile_h, blocks_w * tile_w, out_channels)
    return y[:, :out_h, :out_w, :]

