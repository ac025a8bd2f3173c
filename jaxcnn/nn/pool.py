"""Pooling modules over NHWC activations, wrapping :mod:`jaxcnn.functional.pool`.

Windowed pools expose ``window``, ``stride``, ``padding`` and ``dilation``
(always 1) as plain attributes for :mod:`jaxcnn.summary`. ``stride`` has no
default: "pool 3/2" and "pool 2" are both common, so the layer states it.
Adaptive pools live in :mod:`jaxcnn.nn.adaptive_pool`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import jax.numpy as jnp
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

from jaxcnn.functional import pool as pool_ops

__all__ = ["MaxPool", "AvgPool", "LpPool", "GlobalAvgPool", "GlobalMaxPool", "Subsampling"]


class _WindowPool(nn.Module):
    summary_kind: ClassVar[str] = "pool"
    dilation: ClassVar[int] = 1


class MaxPool(_WindowPool):
    """Max over each window: ``(N, H, W, C) -> (N, H', W', C)``.

    ``H' = floor((H + top + bottom - KH) / SH) + 1`` (likewise ``W'``); padded
    positions never win. ``padding`` takes every form of
    :func:`jaxcnn.functional.pool.max_pool2d` (int, pairs, ``"SAME"``, ``"VALID"``).
    """

    window: int | Sequence[int]
    stride: int | Sequence[int]
    padding: int | str | Sequence = 0

    @nn.compact
    def __call__(self, x):
        return pool_ops.max_pool2d(x, self.window, self.stride, self.padding)


class AvgPool(_WindowPool):
    """Mean over each window: ``(N, H, W, C) -> (N, H', W', C)``.

    ``H' = floor((H + top + bottom - KH) / SH) + 1``. With padding,
    ``count_include_pad`` chooses the divisor: the full window (True, PyTorch's
    default) or the real inputs covered (False).
    """

    window: int | Sequence[int]
    stride: int | Sequence[int]
    padding: int | str | Sequence = 0
    count_include_pad: bool = True

    @nn.compact
    def __call__(self, x):
        return pool_ops.avg_pool2d(x, self.window, self.stride, self.padding, self.count_include_pad)


class LpPool(_WindowPool):
    """Lp pooling, :func:`jaxcnn.functional.pool.lp_pool2d`: ``(N, H, W, C) -> (N, H', W', C)``.

    ``form="mean"`` (default, the slides): ``(mean over window of |x|**p) ** (1/p)``,
    ``p >= 1`` or ``inf`` (``p = 1`` average of ``|x|``, ``p = inf`` max of ``|x|``);
    ``form="sum"``: PyTorch's ``LPPool2d``, ``(sum over window of x**p) ** (1/p)``.
    ``H' = floor((H + top + bottom - KH) / SH) + 1``; padding is zeros.
    """

    p: float
    window: int | Sequence[int]
    stride: int | Sequence[int]
    padding: int | str | Sequence = 0
    form: str = "mean"

    @nn.compact
    def __call__(self, x):
        return pool_ops.lp_pool2d(x, self.p, self.window, self.stride, self.padding, form=self.form)


class GlobalAvgPool(nn.Module):
    """Mean over all spatial positions: ``(N, H, W, C) -> (N, C)`` (also NLC, NDHWC)."""

    summary_kind: ClassVar[str] = "pool"

    @nn.compact
    def __call__(self, x):
        return pool_ops.global_avg_pool(x)


class GlobalMaxPool(nn.Module):
    """Max over all spatial positions: ``(N, H, W, C) -> (N, C)`` (also NLC, NDHWC)."""

    summary_kind: ClassVar[str] = "pool"

    @nn.compact
    def __call__(self, x):
        return pool_ops.global_max_pool(x)


class Subsampling(_WindowPool):
    """LeNet-5's trainable subsampling (S2, S4): ``coef[c] * avg_pool(x)[..., c] + bias[c]``.

    LeCun et al. 1998 sum the 2x2 inputs of each unit, multiply by a trainable
    coefficient and add a trainable bias, one pair per feature map. Summing
    is averaging times ``KH * KW``, a constant the coefficient absorbs, so this
    layer averages (``coef`` initialised to 1 starts as a plain average pool).

    Shapes: x ``(N, H, W, C)``; params ``coef`` ``(C,)`` and ``bias`` ``(C,)``
    (``2 * C`` parameters); output ``(N, H', W', C)`` with
    ``H' = floor((H + top + bottom - KH) / SH) + 1``. ``dtype``: computation
    dtype (input, ``coef`` and ``bias`` cast to it; None: their promoted dtype).
    """

    window: int | Sequence[int] = 2
    stride: int | Sequence[int] = 2
    padding: int | str | Sequence = 0
    param_dtype: jnp.dtype = jnp.float32
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        coef = self.param("coef", nn.initializers.ones, (channels,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (channels,), self.param_dtype)
        x, coef, bias = promote_dtype(x, coef, bias, dtype=self.dtype)
        pooled = pool_ops.avg_pool2d(x, self.window, self.stride, self.padding)
        return pooled * coef + bias
