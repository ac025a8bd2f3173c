"""Residual networks (He, Zhang, Ren & Sun 2015): ImageNet ResNet-18/34/50 and CIFAR ResNet-20...110.

Families are partials of one class each (as in flax ``examples/imagenet/models.py``):
``ResNet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)``.
Every model maps NHWC images to ``(N, num_classes)`` logits and is called
``model(x, train=...)``: batch norm uses batch statistics (and updates
``batch_stats``, so pass ``mutable=["batch_stats"]``) only when ``train=True``.
``dtype`` (every model here): the computation dtype of every layer (default
float32; ``jnp.bfloat16`` for mixed precision: parameters and batch statistics
stay float32, logits come out in ``dtype``).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.nn import BatchNorm, Conv, Dense, GlobalAvgPool, MaxPool, ReLU

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "CifarResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet152",
    "ResNet20",
    "ResNet32",
    "ResNet44",
    "ResNet56",
    "ResNet110",
]

SHORTCUTS = ("projection", "zero_pad")


def zero_pad_shortcut(x, features: int, stride: int):
    """He et al.'s option A: subsample by ``stride`` and zero-pad channels to ``features``.

    ``(N, H, W, C) -> (N, ceil(H / stride), ceil(W / stride), features)``; the
    ``features - C`` new channels are zeros split evenly before and after the
    old ones (as in the common CIFAR reproductions). Parameter-free. The
    spatial size matches a 3x3, padding-1 conv with the same stride.
    """
    extra = features - x.shape[-1]
    if extra < 0:
        raise ValueError(
            f"zero-padding shortcut cannot reduce channels: input has {x.shape[-1]}, "
            f"block outputs {features}"
        )
    x = x[:, ::stride, ::stride, :]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class _ResidualBlock(nn.Module):
    """Shared fields and shortcut of the residual blocks."""

    summary_kind: ClassVar[str] = "block"
    # Output channels over the block's width ``features`` (4 for bottlenecks).
    expansion: ClassVar[int] = 1

    features: int
    stride: int = 1
    shortcut: str = "projection"
    zero_init_last_norm: bool = False
    bn_axis_name: str | None = None
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32

    def norm(self, name: str, *, last: bool = False):
        zero = last and self.zero_init_last_norm
        scale_init = nn.initializers.zeros if zero else nn.initializers.ones
        return BatchNorm(axis_name=self.bn_axis_name, dtype=self.dtype, scale_init=scale_init, name=name)

    def residual(self, x, train: bool):
        """The identity, or (when the shape changes) option A or B of He et al."""
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {self.shortcut!r}")
        out_features = self.features * self.expansion
        if self.stride == 1 and x.shape[-1] == out_features:
            return x
        if self.shortcut == "zero_pad":
            return zero_pad_shortcut(x, out_features, self.stride)
        x = Conv(out_features, (1, 1), stride=self.stride, use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="proj_conv")(x)
        return self.norm("proj_bn")(x, train)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convs with a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Shapes: ``(N, H, W, C) -> (N, ceil(H / stride), ceil(W / stride), features)``.
    conv1 carries the stride. The shortcut is the identity when the shape is
    kept, else a 1x1 strided conv + BN (``shortcut="projection"``, option B) or
    subsampling + zero channels (``"zero_pad"``, option A, no parameters).
    ``zero_init_last_norm`` starts bn2's scale at 0 so the block starts as
    the identity (Goyal et al. 2017).
    """

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = Conv(self.features, (3, 3), stride=self.stride, padding=1, use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="conv1")(x)
        y = self.norm("bn1")(y, train)
        y = ReLU(name="relu1")(y)
        y = Conv(self.features, (3, 3), padding=1, use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="conv2")(y)
        y = self.norm("bn2", last=True)(y, train)
        return ReLU(name="relu2")(y + self.residual(x, train))


class Bottleneck(_ResidualBlock):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand to ``4 * features``, plus a shortcut.

    Shapes: ``(N, H, W, C) -> (N, ceil(H / stride), ceil(W / stride), 4 * features)``.
    The stride sits on the 3x3 conv (torchvision's "ResNet v1.5"; the parameter
    count is the same as with the stride on the first 1x1).
    """

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x, train: bool = False):
        y = Conv(self.features, (1, 1), use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="conv1")(x)
        y = self.norm("bn1")(y, train)
        y = ReLU(name="relu1")(y)
        y = Conv(self.features, (3, 3), stride=self.stride, padding=1, use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="conv2")(y)
        y = self.norm("bn2")(y, train)
        y = ReLU(name="relu2")(y)
        y = Conv(self.features * 4, (1, 1), use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="conv3")(y)
        y = self.norm("bn3", last=True)(y, train)
        return ReLU(name="relu3")(y + self.residual(x, train))


class ResNet(nn.Module):
    """ImageNet ResNet: 7x7/2 stem, 3x3/2 max pool, four stages, global average pool, fc.

    Stage ``i`` (0-based) has ``stage_sizes[i]`` blocks of width
    ``num_filters * 2**i``; the first block of stages 1-3 has stride 2.
    Input ``(N, H, W, C)``; for 224x224 the stages run at 56, 28, 14 and 7
    pixels (each stride-2 step is ``ceil(size / 2)``), and any ``H, W >= 1``
    works since the head pools globally. Output ``(N, num_classes)``.

    Attributes:
      stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
      block_cls: :class:`BasicBlock` or :class:`Bottleneck`.
      num_classes: logits per example.
      num_filters: width of the stem and of stage 0.
      zero_init_last_norm: start each block's last BN scale at 0 (block = identity).
      bn_axis_name: pmap/shard_map axis for cross-device batch statistics, or None.
      conv_impl: the ``impl`` of every conv (default ``"auto"``, see
        :mod:`jaxcnn.functional.conv`).
    Shortcuts that change shape are projections (option B), as in the
    published 11.7M / 21.8M / 25.6M parameter counts.
    """

    stage_sizes: Sequence[int]
    block_cls: type[_ResidualBlock]
    num_classes: int = 1000
    num_filters: int = 64
    zero_init_last_norm: bool = False
    bn_axis_name: str | None = None
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv(self.num_filters, (7, 7), stride=2, padding=3, use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="conv1")(x)
        x = BatchNorm(axis_name=self.bn_axis_name, dtype=self.dtype, name="bn1")(x, train)
        x = ReLU(name="relu1")(x)
        x = MaxPool(3, 2, padding=1, name="pool1")(x)
        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                x = self.block_cls(
                    self.num_filters * 2**i,
                    stride=2 if i > 0 and j == 0 else 1,
                    shortcut="projection",
                    zero_init_last_norm=self.zero_init_last_norm,
                    bn_axis_name=self.bn_axis_name,
                    conv_impl=self.conv_impl,
                    dtype=self.dtype,
                    name=f"layer{i + 1}_block{j + 1}",
                )(x, train)
        x = GlobalAvgPool(name="avgpool")(x)
        return Dense(self.num_classes, dtype=self.dtype, name="fc")(x)


class CifarResNet(nn.Module):
    """CIFAR ResNet of He et al. 2015, section 4.2: ``depth = 6n + 2`` layers.

    3x3 conv 16 -> BN -> relu, then three stages of ``n`` basic blocks with
    ``num_filters * (1, 2, 4)`` = 16, 32, 64 channels on 32, 16 and 8 pixels,
    global average pool, fc. ``shortcut="zero_pad"`` is the paper's option A
    (parameter-free; ResNet-20 has 269,722 params), ``"projection"`` option B.

    Input ``(N, H, W, C)`` (32x32x3 for CIFAR, any size works); output
    ``(N, num_classes)``.

    Attributes:
      depth: ``6n + 2`` (20, 32, 44, 56, 110): ``n`` blocks per stage.
      num_classes, num_filters, zero_init_last_norm, bn_axis_name, conv_impl: as in
        :class:`ResNet`.
      shortcut: ``"zero_pad"`` (option A) or ``"projection"`` (option B).
    """

    depth: int
    num_classes: int = 10
    num_filters: int = 16
    shortcut: str = "zero_pad"
    zero_init_last_norm: bool = False
    bn_axis_name: str | None = None
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {self.depth!r}")
        blocks_per_stage = (self.depth - 2) // 6
        x = Conv(self.num_filters, (3, 3), padding=1, use_bias=False, impl=self.conv_impl, dtype=self.dtype, name="conv1")(x)
        x = BatchNorm(axis_name=self.bn_axis_name, dtype=self.dtype, name="bn1")(x, train)
        x = ReLU(name="relu1")(x)
        for i in range(3):
            for j in range(blocks_per_stage):
                x = BasicBlock(
                    self.num_filters * 2**i,
                    stride=2 if i > 0 and j == 0 else 1,
                    shortcut=self.shortcut,
                    zero_init_last_norm=self.zero_init_last_norm,
                    bn_axis_name=self.bn_axis_name,
                    conv_impl=self.conv_impl,
                    dtype=self.dtype,
                    name=f"stage{i + 1}_block{j + 1}",
                )(x, train)
        x = GlobalAvgPool(name="avgpool")(x)
        return Dense(self.num_classes, dtype=self.dtype, name="fc")(x)


ResNet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=Bottleneck)
ResNet152 = partial(ResNet, stage_sizes=(3, 8, 36, 3), block_cls=Bottleneck)

ResNet20 = partial(CifarResNet, depth=20)
ResNet32 = partial(CifarResNet, depth=32)
ResNet44 = partial(CifarResNet, depth=44)
ResNet56 = partial(CifarResNet, depth=56)
ResNet110 = partial(CifarResNet, depth=110)
