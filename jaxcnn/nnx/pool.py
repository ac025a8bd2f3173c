"""Pooling layers for NNX, calling :mod:`jaxcnn.functional.pool` / ``adaptive_pool``.

Window pools: ``(N, H, W, C) -> (N, H', W', C)``, ``H' = floor((H + P_lo + P_hi - KH) / SH) + 1``,
stride defaulting to the window. Global pools ``(N, *spatial, C) -> (N, C)``.
Adaptive pools: a fixed ``output_size`` grid with PyTorch's bins.
"""
from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from flax import nnx

from jaxcnn.functional import adaptive_pool as adaptive_ops
from jaxcnn.functional import pool as pool_ops
from jaxcnn.functional.init import ones, zeros

__all__ = [
    "MaxPool", "AvgPool", "LpPool", "GlobalAvgPool", "GlobalMaxPool", "AdaptiveAvgPool", "AdaptiveMaxPool",
    "Subsampling",
]


class _WindowPool(nnx.Module):
    summary_kind: ClassVar[str] = "pool"
    dilation: ClassVar[int] = 1

    def __init__(self, window, stride=None, padding=0):
        self.window, self.stride, self.padding = window, stride, padding


class MaxPool(_WindowPool):
    """Max over each window."""

    def __call__(self, x):
        return pool_ops.max_pool2d(x, self.window, self.stride, self.padding)


class AvgPool(_WindowPool):
    """Mean over each window; ``count_include_pad`` as in PyTorch (True: divide by the full window)."""

    def __init__(self, window, stride=None, padding=0, count_include_pad: bool = True):
        super().__init__(window, stride, padding)
        self.count_include_pad = count_include_pad

    def __call__(self, x):
        return pool_ops.avg_pool2d(x, self.window, self.stride, self.padding, self.count_include_pad)


class LpPool(_WindowPool):
    """``(sum over the window of x**p) ** (1/p)`` (no padding)."""

    def __init__(self, p: float, window, stride=None):
        super().__init__(window, stride, 0)
        self.p = p

    def __call__(self, x):
        return pool_ops.lp_pool2d(x, self.p, self.window, self.stride)


class GlobalAvgPool(nnx.Module):
    """Mean over all spatial positions."""

    summary_kind: ClassVar[str] = "pool"

    def __call__(self, x):
        return pool_ops.global_avg_pool(x)


class GlobalMaxPool(nnx.Module):
    """Max over all spatial positions."""

    summary_kind: ClassVar[str] = "pool"

    def __call__(self, x):
        return pool_ops.global_max_pool(x)


class AdaptiveAvgPool(nnx.Module):
    """Mean over each adaptive bin: ``(N, H, W, C) -> (N, H', W', C)``, ``(H', W') = output_size``."""

    summary_kind: ClassVar[str] = "pool"

    def __init__(self, output_size):
        self.output_size = output_size

    def __call__(self, x):
        return adaptive_ops.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool(AdaptiveAvgPool):
    """Max over each adaptive bin (the bins of :class:`AdaptiveAvgPool`)."""

    def __call__(self, x):
        return adaptive_ops.adaptive_max_pool2d(x, self.output_size)


class Subsampling(_WindowPool):
    """LeNet-5's trainable subsampling ``coef[c] * avg_pool(x)[..., c] + bias[c]`` (see :class:`jaxcnn.nn.Subsampling`).

    Params ``coef`` (ones) and ``bias`` (zeros), ``(num_features,)``.
    """

    def __init__(self, num_features: int, window=2, stride=2, padding=0, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(window, stride, padding)
        self.num_features = num_features
        self.coef = nnx.Param(ones(rngs.params(), (num_features,), param_dtype))
        self.bias = nnx.Param(zeros(rngs.params(), (num_features,), param_dtype))

    def __call__(self, x):
        if getattr(x, "ndim", None) != 4 or x.shape[-1] != self.num_features:
            raise ValueError(
                f"Subsampling expects NHWC input with {self.num_features} channels, got shape "
                f"{getattr(x, 'shape', x)}"
            )
        pooled = pool_ops.avg_pool2d(x, self.window, self.stride, self.padding)
        return pooled * self.coef[...] + self.bias[...]
