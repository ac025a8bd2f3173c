"""GoogLeNet / Inception v1 (Szegedy et al. 2014), following the paper's Table 1.

As in the paper: convolutions with biases and ReLU, no batch norm, local
response normalization after the stem's first pool and after conv2, global
average pooling, dropout 0.4 before the classifier. Not included: the two
auxiliary classifiers (training-time only in the paper) -- so the parameter
count is that of the inference network, 6,998,552 for 1000 classes.

``dtype``: the computation dtype of every layer (default float32;
``jnp.bfloat16`` for mixed precision: parameters stay float32).
"""
from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.nn import Conv, Dense, Dropout, GlobalAvgPool, LocalResponseNorm, MaxPool, ReLU

__all__ = ["Inception", "InceptionSpec", "GoogLeNet", "GOOGLENET_TABLE"]


class InceptionSpec(NamedTuple):
    """One row of the paper's Table 1: output channels of each branch's convs."""

    conv1x1: int
    reduce3x3: int
    conv3x3: int
    reduce5x5: int
    conv5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.conv1x1 + self.conv3x3 + self.conv5x5 + self.pool_proj


# Szegedy et al. 2014, Table 1 ("#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj").
GOOGLENET_TABLE: dict[str, InceptionSpec] = {
    "inception3a": InceptionSpec(64, 96, 128, 16, 32, 32),
    "inception3b": InceptionSpec(128, 128, 192, 32, 96, 64),
    "inception4a": InceptionSpec(192, 96, 208, 16, 48, 64),
    "inception4b": InceptionSpec(160, 112, 224, 24, 64, 64),
    "inception4c": InceptionSpec(128, 128, 256, 24, 64, 64),
    "inception4d": InceptionSpec(112, 144, 288, 32, 64, 64),
    "inception4e": InceptionSpec(256, 160, 320, 32, 128, 128),
    "inception5a": InceptionSpec(256, 160, 320, 32, 128, 128),
    "inception5b": InceptionSpec(384, 192, 384, 48, 128, 128),
}


def _caffe_lrn(name: str, dtype=None) -> LocalResponseNorm:
    # The paper gives no LRN constants; these are the BVLC Caffe GoogLeNet's
    # (local_size 5, alpha 1e-4 over the mean of squares, beta 0.75, k 1).
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0, dtype=dtype, name=name)


# A 3x3/2 max pool (with "SAME" padding: ceil(size / 2)) follows these modules.
_POOL_AFTER = {"inception3b": "pool3", "inception4e": "pool4"}


class Inception(nn.Module):
    """Four parallel branches concatenated on channels.

    branch1: 1x1 conv; branch2: 1x1 reduce -> 3x3 (pad 1); branch3: 1x1 reduce
    -> 5x5 (pad 2); branch4: 3x3/1 max pool (pad 1) -> 1x1 projection; every
    conv followed by ReLU. Shapes: ``(N, H, W, C) -> (N, H, W, spec.out_channels)``,
    channel order branch1, branch2, branch3, branch4. ``conv_impl``: the
    ``impl`` of every conv.
    """

    summary_kind: ClassVar[str] = "block"

    spec: InceptionSpec
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train

        def conv_relu(y, features, size, name):
            y = Conv(features, (size, size), padding=size // 2, impl=self.conv_impl, dtype=self.dtype, name=name)(y)
            return ReLU(name=f"{name}_relu")(y)

        s = self.spec
        branch1 = conv_relu(x, s.conv1x1, 1, "branch1_1x1")
        branch2 = conv_relu(x, s.reduce3x3, 1, "branch2_reduce")
        branch2 = conv_relu(branch2, s.conv3x3, 3, "branch2_3x3")
        branch3 = conv_relu(x, s.reduce5x5, 1, "branch3_reduce")
        branch3 = conv_relu(branch3, s.conv5x5, 5, "branch3_5x5")
        branch4 = MaxPool(3, 1, padding=1, name="branch4_pool")(x)
        branch4 = conv_relu(branch4, s.pool_proj, 1, "branch4_proj")
        return jnp.concatenate([branch1, branch2, branch3, branch4], axis=-1)


class GoogLeNet(nn.Module):
    """Inception v1: stem, inception 3a-3b, pool, 4a-4e, pool, 5a-5b, global avg pool, dropout, fc.

    Stem: conv1 64@7x7/2 (pad 3) -> pool1 3x3/2 -> norm1 (LRN) -> conv2_reduce
    64@1x1 -> conv2 192@3x3 (pad 1) -> norm2 (LRN) -> pool2 3x3/2. The 3x3/2
    max pools use ``"SAME"`` padding, so each halves the size rounding up:
    for 224x224 the maps are 112 (conv1), 56, 28 (inception 3), 14 (4), 7 (5),
    then the global average pool gives 1024 features. Any ``H, W >= 1`` works.

    Input ``(N, H, W, C)``; output ``(N, num_classes)`` logits. Dropout
    (``dropout_rate``, 0.4) is active only with ``train=True`` (rng stream
    ``"dropout"``). ``conv_impl``: the ``impl`` of every conv (default ``"auto"``).
    """

    num_classes: int = 1000
    dropout_rate: float = 0.4
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv(64, (7, 7), stride=2, padding=3, impl=self.conv_impl, dtype=self.dtype, name="conv1")(x)
        x = ReLU(name="relu1")(x)
        x = MaxPool(3, 2, padding="SAME", name="pool1")(x)
        x = _caffe_lrn("norm1", self.dtype)(x)
        x = Conv(64, (1, 1), impl=self.conv_impl, dtype=self.dtype, name="conv2_reduce")(x)
        x = ReLU(name="relu2_reduce")(x)
        x = Conv(192, (3, 3), padding=1, impl=self.conv_impl, dtype=self.dtype, name="conv2")(x)
        x = ReLU(name="relu2")(x)
        x = _caffe_lrn("norm2", self.dtype)(x)
        x = MaxPool(3, 2, padding="SAME", name="pool2")(x)
        for name, spec in GOOGLENET_TABLE.items():
            x = Inception(spec, conv_impl=self.conv_impl, dtype=self.dtype, name=name)(x, train)
            if name in _POOL_AFTER:
                x = MaxPool(3, 2, padding="SAME", name=_POOL_AFTER[name])(x)
        x = GlobalAvgPool(name="avgpool")(x)
        x = Dropout(self.dropout_rate, name="dropout")(x, train)
        return Dense(self.num_classes, dtype=self.dtype, name="fc")(x)
