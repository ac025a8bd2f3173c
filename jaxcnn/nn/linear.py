"""Fully connected layer and the flatten that feeds it."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional.init import he_normal


__all__ = ["Dense", "Flatten"]


class Dense(nn.Module):
    """Fully connected layer ``y = x @ kernel + bias`` over the last axis.

    Shapes: x ``(..., I)``; params ``kernel`` ``(I, features)``, ``bias``
    ``(features,)``; output ``(..., features)``. ``I`` is read from the input at
    ``init``, so a classifier head needs no hard-coded flatten size.
    """

    summary_kind: ClassVar[str] = "dense"

    features: int
    use_bias: bool = True
    kernel_init: Callable = he_normal
    bias_init: Callable = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Dense expects an input (..., features_in), got shape {getattr(x, 'shape', x)}")
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), self.param_dtype)
        y = jnp.dot(x, kernel)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return y


class Flatten(nn.Module):
    """Flatten everything but the batch axis: ``(N, d1, ..., dk) -> (N, d1 * ... * dk)``.

    For NHWC the features are ordered row-major (h, then w, then c).
    """

    summary_kind: ClassVar[str] = "flatten"

    @nn.compact
    def __call__(self, x):
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Flatten expects a batch axis, got shape {getattr(x, 'shape', x)}")
        return jnp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))
