"""VGG (Simonyan & Zisserman 2014): stacks of 3x3 convs, 2x2 max pools, three fc layers.

``VGG11``/``VGG13``/``VGG16``/``VGG19`` are partials of :class:`VGG` with the
paper's configurations A, B, D and E; a small ``stages``/``fc_features`` gives a tiny VGG for tests.

``conv_impl`` (every model here): the ``impl`` of each of its convolutions
(default ``"auto"``, see :mod:`jaxcnn.functional.conv`).
``dtype`` (every model here): the computation dtype of every layer (default
float32; ``jnp.bfloat16`` for mixed precision: parameters and batch statistics
stay float32, logits come out in ``dtype``).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.nn import Conv, Dense, Dropout, Flatten, MaxPool, ReLU

__all__ = [
    "VGG", "VGG11", "VGG13", "VGG16", "VGG19", "VGG11_STAGES", "VGG13_STAGES", "VGG16_STAGES", "VGG19_STAGES",
]

# Output channels of each conv, per stage; every stage ends with a 2x2/2 max pool.
VGG11_STAGES = ((64,), (128,), (256, 256), (512, 512), (512, 512))
VGG13_STAGES = ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512))
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG19_STAGES = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


class VGG(nn.Module):
    """conv3x3/1/1 stacks with 2x2/2 max pools, then fc6 -> fc7 -> fc8 with dropout.

    Layers: ``conv{s}_{i}`` + ``relu{s}_{i}`` for stage ``s`` (1-based) and
    conv ``i``, ``pool{s}`` after each stage, then flatten, fc6 and fc7
    (``fc_features`` each, relu, dropout ``dropout_rate`` in training), fc8.

    Input ``(N, H, W, C)``. The convs keep the size and each pool halves it
    (floor), so after ``k = len(stages)`` stages the map is
    ``floor(H / 2**k) x floor(W / 2**k)`` (7x7 for 224 and 5 stages) and fc6
    sees ``7 * 7 * 512 = 25088`` features -- read from the shape at init.
    Needs ``H, W >= 2**k``. Output ``(N, num_classes)`` logits.
    Dropout draws from the ``"dropout"`` rng stream when ``train=True``.
    """

    stages: Sequence[Sequence[int]]
    num_classes: int = 1000
    fc_features: int = 4096
    dropout_rate: float = 0.5
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for s, stage in enumerate(self.stages, start=1):
            for i, features in enumerate(stage, start=1):
                x = Conv(features, (3, 3), padding=1, impl=self.conv_impl, dtype=self.dtype, name=f"conv{s}_{i}")(x)
                x = ReLU(name=f"relu{s}_{i}")(x)
            x = MaxPool(2, 2, name=f"pool{s}")(x)
        x = Flatten(name="flatten")(x)
        for layer in (6, 7):
            x = Dense(self.fc_features, dtype=self.dtype, name=f"fc{layer}")(x)
            x = ReLU(name=f"relu{layer}")(x)
            x = Dropout(self.dropout_rate, name=f"drop{layer}")(x, train)
        return Dense(self.num_classes, dtype=self.dtype, name="fc8")(x)


VGG11 = partial(VGG, stages=VGG11_STAGES)
VGG13 = partial(VGG, stages=VGG13_STAGES)
VGG16 = partial(VGG, stages=VGG16_STAGES)
VGG19 = partial(VGG, stages=VGG19_STAGES)
