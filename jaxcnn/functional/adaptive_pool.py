"""Adaptive pooling: a fixed output size for any input size (PyTorch's ``adaptive_*_pool2d``).

The slides' "final pooling layer outputs four sets of summary statistics, one
for each quadrant" is ``adaptive_avg_pool2d(x, 2)`` (or ``adaptive_max_pool2d``):
whatever ``H x W`` the input has, the output is ``2 x 2``, so a classifier's
dense layers see a fixed size.

Bins (per spatial dim, input size ``H``, output size ``H'``): output row ``i``
pools input rows ``[start_i, end_i)`` with::

    start_i = floor(i * H / H'),    end_i = ceil((i + 1) * H / H')

exactly as PyTorch, so neighbouring bins may overlap by one row and differ
in size by one. When ``H'`` divides ``H`` the bins are a plain
``H/H' x W/W'`` pool with that stride, and that faster path is used.
"""
from __future__ import annotations

import numpy as np
import jax.numpy as jnp
from jax import lax

from jaxcnn.functional.args import check_floating, check_ndim
from jaxcnn.functional.pool import _max_identity, avg_pool2d, max_pool2d

__all__ = ["adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_bins"]


def adaptive_bins(size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive-pool bins: ``(starts, ends)``, each ``(output_size,)`` ints; bin i is ``[starts[i], ends[i])``."""
    index = np.arange(output_size)
    starts = (index * size) // output_size
    ends = -((-(index + 1) * size) // output_size)  # ceil division on ints
    return starts, ends


def _output_hw(x, output_size, op: str) -> tuple[int, int]:
    check_ndim(x, 2, what=f"{op} input")
    if isinstance(output_size, (int, type(None))) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    if not (isinstance(output_size, (tuple, list)) and len(output_size) == 2):
        raise ValueError(
            f"{op}: output_size must be an int or (out_h, out_w) (None keeps that input dim), "
            f"got {output_size!r}"
        )
    resolved = []
    for requested, size in zip(output_size, x.shape[1:3]):
        if requested is None:
            requested = size
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"{op}: output_size must be >= 1 in every dim, got {output_size!r}")
        resolved.append(requested)
    if any(size == 0 for size in x.shape[1:3]):
        raise ValueError(f"{op}: input spatial dims must be non-empty, got shape {x.shape}")
    return tuple(resolved)


def _divides(x, out_hw) -> bool:
    return all(size % out == 0 for size, out in zip(x.shape[1:3], out_hw))


def _averaging_matrix(size: int, output_size: int, dtype) -> np.ndarray:
    """``(output_size, size)``: row i averages bin i."""
    starts, ends = adaptive_bins(size, output_size)
    matrix = np.zeros((output_size, size))
    for i, (start, end) in enumerate(zip(starts, ends)):
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix.astype(dtype)


def adaptive_avg_pool2d(x, output_size):
    """Mean over each adaptive bin: ``(N, H, W, C) -> (N, H', W', C)``.

    Args:
      x: ``(N, H, W, C)``.
      output_size: ``H'`` (square) or ``(H', W')``; a ``None`` entry keeps
        that input dim. May exceed the input size (bins then repeat rows).

    Bins as in the module docstring; matches ``torch.nn.functional.adaptive_avg_pool2d``
    forward and gradient. bf16/f16 accumulate in float32.
    """
    out_h, out_w = _output_hw(x, output_size, "adaptive_avg_pool2d")
    check_floating(x, "adaptive_avg_pool2d")
    height, width = x.shape[1:3]
    if _divides(x, (out_h, out_w)):
        return avg_pool2d(x, (height // out_h, width // out_w))
    acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
    # Bins are separable: average rows, then columns, as two small matmuls.
    rows = jnp.asarray(_averaging_matrix(height, out_h, acc_dtype))
    cols = jnp.asarray(_averaging_matrix(width, out_w, acc_dtype))
    pooled = jnp.einsum(
        "ih,jw,nhwc->nijc", rows, cols, x.astype(acc_dtype), precision=lax.Precision.HIGHEST
    )
    return pooled.astype(x.dtype)


def _bin_gather(size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(output_size, max_bin)`` input indices of each bin, and which of them are real.

    Short bins are padded with their last index, masked out.
    """
    starts, ends = adaptive_bins(size, output_size)
    longest = int((ends - starts).max())
    offsets = np.arange(longest)
    real = offsets[None, :] < (ends - starts)[:, None]
    indices = np.where(real, starts[:, None] + offsets[None, :], (ends - 1)[:, None])
    return indices, real


def adaptive_max_pool2d(x, output_size):
    """Max over each adaptive bin: ``(N, H, W, C) -> (N, H', W', C)``.

    Args:
      x: ``(N, H, W, C)``.
      output_size: ``H'`` or ``(H', W')``; a ``None`` entry keeps that input dim.

    Bins as in the module docstring; matches ``torch.nn.functional.adaptive_max_pool2d``.
    Gradient rule: the whole gradient of a bin goes to the FIRST maximal
    element of the bin in row-major order (as :func:`jaxcnn.functional.pool.max_pool2d`
    and PyTorch); an input that is the maximum of two overlapping bins gets both.
    """
    out_h, out_w = _output_hw(x, output_size, "adaptive_max_pool2d")
    height, width = x.shape[1:3]
    if _divides(x, (out_h, out_w)):
        return max_pool2d(x, (height // out_h, width // out_w))
    row_index, row_real = _bin_gather(height, out_h)
    col_index, col_real = _bin_gather(width, out_w)
    n, channels = x.shape[0], x.shape[-1]
    # (N, H', bh, W', bw, C): every bin's values, short bins padded
    gathered = x[:, row_index][:, :, :, col_index]
    real = (row_real[:, :, None, None] & col_real[None, None, :, :])[None, :, :, :, :, None]
    gathered = jnp.where(real, gathered, _max_identity(x.dtype))
    bin_size = row_index.shape[1] * col_index.shape[1]
    # (N, H', W', bh * bw, C) flattened in row-major order within each bin, so
    # argmax (first occurrence) picks the first maximum, and the gradient of
    # take_along_axis goes to that one element only.
    flat = gathered.transpose(0, 1, 3, 2, 4, 5).reshape(n, out_h, out_w, bin_size, channels)
    winner = jnp.argmax(flat, axis=3, keepdims=True)
    return jnp.take_along_axis(flat, winner, axis=3)[:, :, :, 0, :]
