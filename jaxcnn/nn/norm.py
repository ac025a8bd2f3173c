"""Stateless normalization modules wrapping :mod:`jaxcnn.functional.norm`.

Group, layer and instance norm use each example's own statistics, so they
behave the same in training and inference and take no ``train`` argument.
Their affine parameters are ``scale`` and ``bias`` of shape ``(C,)``.

Each module has a ``dtype`` (None: the input's): the statistics are computed
in float32 and the output is cast to ``dtype``, so bfloat16 activations are
normalised with float32 means and variances.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional import norm as norm_ops

__all__ = ["GroupNorm", "LayerNorm", "InstanceNorm", "LocalResponseNorm"]


class _AffineNorm(nn.Module):
    """Shared ``scale``/``bias`` parameters; ``use_affine=False`` has none."""

    summary_kind: ClassVar[str] = "norm"

    eps: float = 1e-5
    use_affine: bool = True
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32
    dtype: jnp.dtype | None = None

    def normalize(self, op, x, *args):
        """``op(x, *args)`` in float32 (x and parameters), cast to ``dtype`` (None: x's)."""
        out_dtype = self.dtype or x.dtype
        args = [jax.tree.map(lambda p: p.astype(jnp.float32), a) if isinstance(a, dict) else a for a in args]
        return op(jnp.asarray(x, jnp.float32), *args).astype(out_dtype)

    def affine_params(self, x):
        if not self.use_affine:
            return None
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"{type(self).__name__} expects (N, ..., C) input, got {getattr(x, 'shape', x)}")
        channels = x.shape[-1]
        return {
            "scale": self.param("scale", self.scale_init, (channels,), self.param_dtype),
            "bias": self.param("bias", self.bias_init, (channels,), self.param_dtype),
        }


class GroupNorm(_AffineNorm):
    """Group norm (Wu & He 2018) with ``num_groups`` groups of channels.

    ``(N, ..., C) -> (N, ..., C)``; ``num_groups`` must divide ``C``. Each
    example's group of ``C / num_groups`` channels is normalized over its
    spatial positions and channels, then ``* scale + bias`` per channel.
    """

    num_groups: int = 32

    @nn.compact
    def __call__(self, x):
        return self.normalize(norm_ops.group_norm, x, self.affine_params(x), self.num_groups, self.eps)


class LayerNorm(_AffineNorm):
    """Layer norm over all non-batch axes, per-channel ``(C,)`` affine: ``(N, ..., C) -> (N, ..., C)``."""

    @nn.compact
    def __call__(self, x):
        return self.normalize(norm_ops.layer_norm, x, self.affine_params(x), self.eps)


class InstanceNorm(_AffineNorm):
    """Instance norm: each (example, channel) over its spatial positions: ``(N, ..., C) -> (N, ..., C)``."""

    @nn.compact
    def __call__(self, x):
        return self.normalize(norm_ops.instance_norm, x, self.affine_params(x), self.eps)


class LocalResponseNorm(nn.Module):
    """Local response normalization across ``size`` neighbouring channels; no parameters.

    ``(N, ..., C) -> (N, ..., C)``, ``y_c = x_c / (k + alpha / size * sum_{c'} x_{c'}**2) ** beta``
    -- PyTorch's convention, where ``alpha`` is divided by ``size``; the
    AlexNet paper's ``alpha`` is this one divided by ``size`` (see
    :func:`jaxcnn.functional.norm.local_response_norm`).
    """

    summary_kind: ClassVar[str] = "norm"

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    dtype: jnp.dtype | None = None  # output dtype (None: x's); computed in float32

    @nn.compact
    def __call__(self, x):
        out_dtype = self.dtype or x.dtype
        y = norm_ops.local_response_norm(jnp.asarray(x, jnp.float32), self.size, self.alpha, self.beta, self.k)
        return y.astype(out_dtype)
