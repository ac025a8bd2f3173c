"""Group, layer, instance and local response norm for NNX; the math is :mod:`jaxcnn.functional.norm`.

Batch norm, which has running statistics, is :class:`jaxcnn.nnx.layers.BatchNorm`.
Affine norms take ``num_features`` (built eagerly) and hold ``scale`` (ones)
and ``bias`` (zeros), ``(num_features,)`` ``nnx.Param`` s; ``use_affine=False`` has none.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import jax.numpy as jnp
from flax import nnx

from jaxcnn.functional import norm as norm_ops
from jaxcnn.functional.init import ones, zeros

__all__ = ["GroupNorm", "LayerNorm", "InstanceNorm", "LocalResponseNorm"]


class _AffineNorm(nnx.Module):
    summary_kind: ClassVar[str] = "norm"

    def __init__(
        self,
        num_features: int,
        *,
        eps: float = 1e-5,
        use_affine: bool = True,
        scale_init: Callable = ones,
        bias_init: Callable = zeros,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps = num_features, eps
        self.scale = nnx.Param(scale_init(rngs.params(), (num_features,), param_dtype)) if use_affine else None
        self.bias = nnx.Param(bias_init(rngs.params(), (num_features,), param_dtype)) if use_affine else None

    def affine_params(self, x):
        if getattr(x, "ndim", 0) < 2 or x.shape[-1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expects (N, ..., {self.num_features}) input, got shape "
                f"{getattr(x, 'shape', x)}"
            )
        return None if self.scale is None else {"scale": self.scale[...], "bias": self.bias[...]}


class GroupNorm(_AffineNorm):
    """Group norm with ``num_groups`` groups of channels: ``(N, ..., C) -> (N, ..., C)``."""

    def __init__(self, num_features: int, num_groups: int = 32, **kwargs):
        super().__init__(num_features, **kwargs)
        self.num_groups = num_groups

    def __call__(self, x):
        return norm_ops.group_norm(x, self.affine_params(x), self.num_groups, self.eps)


class LayerNorm(_AffineNorm):
    """Layer norm over all non-batch axes, per-channel affine: ``(N, ..., C) -> (N, ..., C)``."""

    def __call__(self, x):
        return norm_ops.layer_norm(x, self.affine_params(x), self.eps)


class InstanceNorm(_AffineNorm):
    """Each (example, channel) normalised over its spatial positions: ``(N, ..., C) -> (N, ..., C)``."""

    def __call__(self, x):
        return norm_ops.instance_norm(x, self.affine_params(x), self.eps)


class LocalResponseNorm(nnx.Module):
    """LRN across ``size`` channels, PyTorch's convention (see :class:`jaxcnn.nn.LocalResponseNorm`); no parameters."""

    summary_kind: ClassVar[str] = "norm"

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def __call__(self, x):
        return norm_ops.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
