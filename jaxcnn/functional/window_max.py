"""Max over sliding windows, with a cheap exact derivative built from strided views.

``lax.reduce_window`` with ``max`` is the obvious max pooling, but its
derivative is expensive on XLA:CPU: JAX differentiates it through an argmax
(a variadic reduce_window over one iota per dimension) and a scatter of the
cotangents, which in jaxcnn's LeNet-5 train step cost more than the two
convolutions' forward passes together (see experiments/PERFORMANCE.md).

Here the pooled value is still ``lax.reduce_window`` (XLA:CPU computes it in
parallel), but the derivative is a ``jax.custom_jvp`` built from ``KH * KW``
strided slices of the (padded) input and of its tangent, one per window
offset: the output's tangent is the tangent of the first view that holds the
maximum. That tangent is *linear* and made of selects and slices only, so JAX
transposes it for reverse mode (a select per offset plus the transpose of a
strided slice, an interior pad -- all fused into one loop by XLA) and
forward mode, ``vmap``, ``jax.checkpoint`` and higher derivatives keep working.

Tie rule (the same as ``lax.reduce_window``'s, pinned by the pooling tests):
the derivative of each output is that of the FIRST maximal element of its
window in row-major order (top row first, left to right).

NaN: when differentiated, a window holding a NaN outputs NaN and takes the
derivative of its first NaN. Undifferentiated, the value is
``lax.reduce_window``'s, and XLA:CPU's reduce_window propagates NaN for small
arrays but ignores it in its YNNPACK kernel (arrays of 4096+ elements).

Where the views do not pay -- windows of more than :data:`MAX_VIEWS`
elements, or windows overlapping by more than one element along some
dimension (a 3x3 window with stride 1: 9 full-size views, 3x slower than
reduce_window's own derivative) -- ``lax.reduce_window`` and its derivative
are used as they are.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["window_max", "MAX_VIEWS"]

# Windows with more elements than this use lax.reduce_window instead: each
# offset is one strided view, and beyond a few dozen views the fused loop (and
# its compile time) grows past what the reduce_window derivative costs.
MAX_VIEWS = 25

# Measured forward+backward, CPU ms (reduce_window's derivative vs the views'):
# 2x2/2 on 128x28x28x20: 53 vs 8; 3x3/2 pad 1 on 8x112x112x64: 241 vs 81;
# 2x2/1 on 32x56x56x64: 462 vs 27; but 3x3/1 pad 1 on 32x56x56x64: 588 vs 1591.
# So the views are used when consecutive windows share at most one row/column.
MAX_OVERLAP = 1


def _lowest(dtype) -> np.ndarray:
    """The identity of max for ``dtype``: -inf, or the lowest integer."""
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return np.array(-np.inf, dtype)
    if dtype == jnp.bool_:
        return np.array(False)
    return np.array(jnp.iinfo(dtype).min, dtype)


def window_max(x, window, strides, pads):
    """Max over every ``window`` of ``x`` (rank ``n + 2``, channels last), arguments already validated.

    Args:
      x: ``(N, *spatial, C)`` with ``n = len(window)`` spatial dims.
      window: ``n`` window sizes ``(K_0, ...)``.
      strides: ``n`` strides.
      pads: ``n`` ``(low, high)`` paddings; padded positions hold the lowest
        value of the dtype (``-inf`` for floats), so they never win unless a
        window holds nothing else.

    Returns:
      ``(N, *out, C)`` with ``out_i = floor((size_i + low_i + high_i - K_i) / S_i) + 1``,
      the values of ``lax.reduce_window(x, lowest, lax.max, ...)`` (which
      computes them: XLA:CPU runs it in parallel), with the first-maximum
      derivative rule of the module docstring. Windows of more than
      :data:`MAX_VIEWS` elements or overlapping by more than
      :data:`MAX_OVERLAP`, and integer inputs, use ``lax.reduce_window``'s own
      derivative (same rule).
    """
    window, strides = tuple(window), tuple(strides)
    pads = tuple(tuple(p) for p in pads)
    overlap = max(k - s for k, s in zip(window, strides))
    if (
        math.prod(window) > MAX_VIEWS
        or overlap > MAX_OVERLAP
        or not jnp.issubdtype(x.dtype, jnp.inexact)
    ):
        return _reduce_window_max(x, window, strides, pads)
    return _first_max_pool(x, window, strides, pads)


def _reduce_window_max(x, window, strides, pads):
    return lax.reduce_window(
        x, _lowest(x.dtype), lax.max, (1, *window, 1), (1, *strides, 1), ((0, 0), *pads, (0, 0))
    )


def _views(x, fill, window, strides, pads):
    """The ``prod(window)`` strided slices of ``x`` padded with ``fill``, one per window offset."""
    if any(lo or hi for lo, hi in pads):
        x = lax.pad(x, fill, ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
    out_shape = tuple((size - k) // s + 1 for size, k, s in zip(x.shape[1:-1], window, strides))
    views = []
    for offset in np.ndindex(*window):
        limit = tuple(o + (n - 1) * s + 1 for o, n, s in zip(offset, out_shape, strides))
        views.append(
            lax.slice(x, (0, *offset, 0), (x.shape[0], *limit, x.shape[-1]), (1, *strides, 1))
        )
    return views


# window, strides and pads are static tuples: non-differentiable arguments.
@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _first_max_pool(x, window, strides, pads):
    return _reduce_window_max(x, window, strides, pads)


@_first_max_pool.defjvp
def _first_max_pool_jvp(window, strides, pads, primals, tangents):
    (x,), (dx,) = primals, tangents
    views = _views(x, _lowest(x.dtype), window, strides, pads)
    # The same values as reduce_window, but XLA fuses this max with the masks
    # below into one pass (taking it from reduce_window cost 1.3-1.6x more).
    out = views[0]
    for view in views[1:]:
        out = lax.max(out, view)
    tangent_views = _views(dx, np.array(0, dx.dtype), window, strides, pads)
    # For each output, the tangent of the first view holding the maximum (or a
    # NaN, when the maximum is NaN): a select chain, linear in the tangents.
    # lax.max propagates NaN, so a view holding a NaN means the output is NaN.
    tangent_out = jnp.zeros_like(tangent_views[0])
    decided = jnp.zeros(out.shape, jnp.bool_)
    for view, tangent in zip(views, tangent_views):
        is_winner = ((view == out) | (view != view)) & ~decided
        tangent_out = jnp.where(is_winner, tangent, tangent_out)
        decided = decided | is_winner
    return out, tangent_out
