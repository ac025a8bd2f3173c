"""Fully connected layer and the flatten that feeds it.

Initialisation: ``Dense`` draws its kernel from LeCun normal (std
``sqrt(1 / fan_in)``, :func:`jaxcnn.functional.init.lecun_normal`), as Flax's
``nn.Dense`` does (PyTorch's ``nn.Linear`` is smaller still, variance
``1 / (3 fan_in)``); :class:`~jaxcnn.nn.Conv` keeps He normal for conv -> ReLU.

Why not He normal here too: a Dense layer is most often the classifier, whose
logits should start small so that the softmax starts near uniform (loss near
``ln K``). He's factor 2 doubles the logits' variance, on top of the second
moment that max pooling has already inflated. Measured on LeNet-5, MNIST
(normalised, batch 128, plain SGD lr 0.05, 3 seeds): with He-normal fc layers
the first loss is ~5.2 and test accuracy after 100 steps 85% (77% in the worst
seed); with LeCun normal ~3.2 and 92% (91% worst). With Adam at lr 1e-3 (the
main job's optimizer), 300 steps, 2 seeds: 96.9% vs 97.5%. With SGD lr 0.05
and momentum 0.9, one of 2 seeds collapsed to a constant prediction with
either init (the other reached 39% with He, 94% with LeCun) -- started at the
full rate; with a 0.1-epoch linear warm-up none of 10 seeds collapses
(experiments/PERFORMANCE.md, "Seed robustness of the classic SGD recipe"). Pass ``kernel_init=he_normal`` to a hidden
Dense layer for He's scale.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from flax import linen as nn

from jaxcnn.functional.init import lecun_normal


__all__ = ["Dense", "Flatten"]


class Dense(nn.Module):
    """Fully connected layer ``y = x @ kernel + bias`` over the last axis.

    Shapes: x ``(..., I)``; params ``kernel`` ``(I, features)``, ``bias``
    ``(features,)``; output ``(..., features)``. ``I`` is read from the input at
    ``init``, so a classifier head needs no hard-coded flatten size.

    ``kernel_init`` defaults to LeCun normal, ``bias_init`` to zeros (see the
    module docstring for why not He normal). ``dtype`` is the computation
    dtype (e.g. ``jnp.bfloat16``): input, kernel and bias are cast to it and the
    output has it; None: their promoted dtype. Parameters stay ``param_dtype``.
    """

    summary_kind: ClassVar[str] = "dense"

    features: int
    use_bias: bool = True
    kernel_init: Callable = lecun_normal
    bias_init: Callable = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Dense expects an input (..., features_in), got shape {getattr(x, 'shape', x)}")
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = jnp.dot(x, kernel)
        return y if bias is None else y + bias


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
