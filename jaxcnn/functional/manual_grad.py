"""Backward passes written out by hand, as the course derives them — no autodiff.

These exist to show (and test) that the textbook formulas are what autodiff
computes; training uses ``jax.grad`` of the forward ops.

Notation (Goodfellow et al., *Deep Learning*, ch. 9.5): a strided convolution
``Z = c(K, V, s)`` of input ``V`` with kernel ``K``, ``G = dJ/dZ`` the gradient
arriving from above. Then

- kernel gradient ``g(G, V, s)``: ``dJ/dK[kh, kw, c, o] = sum_{n, i, j} G[n, i, j, o] *
  Vpad[n, i*s_h + kh, j*s_w + kw, c]`` — a strided correlation of the zero-padded
  input with ``G``;
- input gradient ``h(K, G, s)``: a *transposed* convolution — dilate ``G`` by
  the stride (``s - 1`` zeros between entries), zero-pad it by ``K - 1``, and
  correlate with the kernel flipped in space and with in/out channels swapped.

Pooling (the "gates" of backprop):

- max pooling is a *gradient router*: each output's gradient goes whole to the
  input that won its window;
- average pooling is a *gradient distributor*: each output's gradient is split
  equally over its window.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn.functional.conv import _conv_arguments, _fold_nd, _unfold_nd, conv2d
from jaxcnn.functional.pool import pool_geometry
from jaxcnn.functional.shapes import conv_output_size

__all__ = ["conv2d_backward", "max_pool2d_backward", "avg_pool2d_backward"]


def _check_grad_out(grad_out, expected_shape, op: str):
    grad_out = jnp.asarray(grad_out)
    if grad_out.shape != tuple(expected_shape):
        raise ValueError(
            f"{op}: grad_out must have the forward output's shape (N, H', W', C_out) = "
            f"{tuple(expected_shape)}, got {grad_out.shape}"
        )
    return grad_out


def conv2d_backward(grad_out, x, w, *, stride=1, padding=0):
    """Gradients of ``conv2d(x, w, stride=stride, padding=padding)`` from the course's formulas.

    Args:
      grad_out: (N, H', W', O), ``G = dJ/dy``.
      x: (N, H, W, C) input of the forward pass.
      w: (KH, KW, C, O) HWIO kernel (no groups, no dilation).
      stride: int or (SH, SW), >= 1.
      padding: int, (PH, PW), ((top, bottom), (left, right)), "SAME" or "VALID".

    Returns:
      ``(grad_x, grad_w)`` of shapes (N, H, W, C) and (KH, KW, C, O):

      - ``grad_w = g(G, V, s)``: the strided correlation
        ``sum_{n,i,j} G[n,i,j,o] * xpad[n, i*SH + kh, j*SW + kw, c]``, computed as
        ``unfold(x)^T @ G`` (every patch times the gradient of the output it made);
      - ``grad_x = h(K, G, s)``: ``G`` dilated by the stride and zero-padded by
        ``K - 1`` (plus the rows/columns the forward windows never reached),
        correlated with ``w`` flipped in space and transposed to (KH, KW, O, C),
        then cropped to remove the forward padding.

    Raises:
      ValueError: the same input checks as :func:`conv2d`, or ``grad_out`` not
        of the forward output's shape.
    """
    x, w = jnp.asarray(x), jnp.asarray(w)
    strides, pads, dilation = _conv_arguments(
        x, w, None, ndim=2, stride=stride, padding=padding, dilation=1, groups=1
    )
    kernel_shape = w.shape[:2]
    height, width = x.shape[1:3]
    out_shape = tuple(
        conv_output_size(size, k, s, pad) for size, k, s, pad in zip((height, width), kernel_shape, strides, pads)
    )
    grad_out = _check_grad_out(grad_out, (x.shape[0], *out_shape, w.shape[-1]), "conv2d_backward")

    # g(G, V, s): one patch per output position, weighted by that output's gradient.
    patches = _unfold_nd(x, kernel_shape, strides, pads, dilation)  # (N, H', W', KH*KW*C)
    grad_w = jnp.tensordot(patches, grad_out, axes=((0, 1, 2), (0, 1, 2))).reshape(w.shape)

    # h(K, G, s): transposed convolution. lax.pad does the stride dilation
    # (interior padding s - 1) and the "full" zero padding K - 1 in one step;
    # `unreached` is the far edge of the padded input that no forward window
    # covered (when the stride does not tile it exactly): its gradient is 0.
    pad_config = [(0, 0, 0)]
    for size, (lo, hi), k, s, out in zip((height, width), pads, kernel_shape, strides, out_shape):
        unreached = size + lo + hi - ((out - 1) * s + k)
        pad_config.append((k - 1, k - 1 + unreached, s - 1))
    pad_config.append((0, 0, 0))
    dilated = lax.pad(grad_out, jnp.zeros((), grad_out.dtype), pad_config)
    flipped = jnp.flip(w, axis=(0, 1)).transpose(0, 1, 3, 2)  # (KH, KW, O, C)
    grad_x_padded = conv2d(dilated, flipped)  # (N, H + top + bottom, W + left + right, C)
    (top, _), (left, _) = pads
    grad_x = grad_x_padded[:, top : top + height, left : left + width, :]
    return grad_x, grad_w


def max_pool2d_backward(grad_out, x, window, stride=None, padding=0):
    """Gradient of :func:`jaxcnn.functional.max_pool2d` w.r.t. ``x`` — the max gate routes it.

    Args:
      grad_out: (N, H', W', C), the gradient of the pooled output.
      x: (N, H, W, C), the forward input (needed to know who won each window).
      window, stride, padding: as for ``max_pool2d`` (stride defaults to the window;
        padded positions are -inf and never win).

    Returns:
      (N, H, W, C): each output's gradient added, whole, to the winner of its window.

    Tie rule (the same as ``max_pool2d``'s autodiff rule, i.e. ``lax.reduce_window``
    max): the winner is the FIRST maximal element of the window in row-major
    order (top row first, left to right); other tied elements get 0. An input
    that wins several overlapping windows receives the sum of their gradients.
    """
    x = jnp.asarray(x)
    window, strides, pads = pool_geometry(x, window, stride, padding, op="max_pool2d_backward")
    out_shape = tuple(
        conv_output_size(size, k, s, pad) for size, k, s, pad in zip(x.shape[1:3], window, strides, pads)
    )
    grad_out = _check_grad_out(grad_out, (x.shape[0], *out_shape, x.shape[-1]), "max_pool2d_backward")
    lowest = -jnp.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    padded = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=lowest)
    no_pads = ((0, 0), (0, 0))
    patches = _unfold_nd(padded, window, strides, no_pads, (1, 1))
    patches = patches.reshape(*patches.shape[:3], window[0] * window[1], x.shape[-1])
    # argmax returns the first maximal index; offsets are in row-major (kh, kw) order.
    winner = jnp.argmax(patches, axis=3)  # (N, H', W', C)
    routed = jax.nn.one_hot(winner, window[0] * window[1], axis=3, dtype=grad_out.dtype)
    routed = routed * grad_out[:, :, :, None, :]  # (N, H', W', KH*KW, C)
    routed = routed.reshape(*routed.shape[:3], -1)
    padded_shape = padded.shape[1:3]
    grad_padded = _fold_nd(routed, padded_shape, window, strides, no_pads, (1, 1))
    (top, _), (left, _) = pads
    return grad_padded[:, top : top + x.shape[1], left : left + x.shape[2], :]


def _real_inputs_per_window(size: int, k: int, s: int, lo: int, hi: int) -> np.ndarray:
    """For each 1-D window, how many of its k positions are real input (not padding)."""
    out = (size + lo + hi - k) // s + 1
    first = np.arange(out) * s - lo  # first covered input index (may be negative)
    return np.clip(first + k, 0, size) - np.clip(first, 0, size)


def avg_pool2d_backward(grad_out, x_shape_or_x, window, stride=None, padding=0, *, count_include_pad=True):
    """Gradient of :func:`jaxcnn.functional.avg_pool2d` w.r.t. ``x`` — the add gate distributes it.

    Args:
      grad_out: (N, H', W', C), the gradient of the pooled output.
      x_shape_or_x: the forward input (N, H, W, C), or just its shape (the
        gradient does not depend on the values).
      window, stride, padding: as for ``avg_pool2d`` (stride defaults to the window).
      count_include_pad: as for ``avg_pool2d``: divide by KH*KW (True) or by the
        number of real inputs in the window (False).

    Returns:
      (N, H, W, C) in grad_out's dtype: every input of a window receives that
      output's gradient divided by the window's count; overlapping windows add up;
      padding positions receive nothing.
    """
    if hasattr(x_shape_or_x, "shape"):
        x_shape = tuple(x_shape_or_x.shape)
    else:
        x_shape = tuple(x_shape_or_x)
    x_spec = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    window, strides, pads = pool_geometry(x_spec, window, stride, padding, op="avg_pool2d_backward")
    if not isinstance(count_include_pad, bool):
        raise ValueError(f"count_include_pad must be a bool, got {count_include_pad!r}")
    per_dim = [
        _real_inputs_per_window(size, k, s, lo, hi)
        for size, k, s, (lo, hi) in zip(x_shape[1:3], window, strides, pads)
    ]
    out_shape = tuple(len(counts) for counts in per_dim)
    grad_out = _check_grad_out(grad_out, (x_shape[0], *out_shape, x_shape[-1]), "avg_pool2d_backward")
    if count_include_pad:
        counts = np.full(out_shape, window[0] * window[1], np.float32)
    else:
        counts = np.outer(per_dim[0], per_dim[1]).astype(np.float32)
    share = grad_out / jnp.asarray(counts, grad_out.dtype)[None, :, :, None]  # (N, H', W', C)
    # Every window position receives the same share: broadcast over the window, then col2im.
    spread = jnp.broadcast_to(
        share[:, :, :, None, :], (*share.shape[:3], window[0] * window[1], share.shape[-1])
    )
    return _fold_nd(spread.reshape(*share.shape[:3], -1), x_shape[1:3], window, strides, pads, (1, 1))
