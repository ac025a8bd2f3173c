"""Receptive fields in summary rows: composed by hand, and checked against an
independent measurement (the support of a gradient), through strides,
dilations, branches, remat, 1-D, global, adaptive and locally connected layers.
"""
from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import functional as F
from jaxcnn import nn as jnn
from jaxcnn.summary import Row, summarize


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {row.name: row for row in rows}


def gradient_support(model: nn.Module, input_shape, unit) -> tuple[int, ...]:
    """Extent (per spatial dim) of the input pixels that affect one output unit.

    All weights are 1 and biases 0, and the pools are averages, so nothing
    cancels: the support of d y[unit] / d x is the whole receptive field.
    """
    x = jnp.ones(input_shape)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    ones = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
    grad = jax.jit(jax.grad(lambda x: model.apply(ones, x)[unit]))(x)
    support = np.nonzero(np.asarray(grad[0]).sum(axis=-1))
    return tuple(int(idx.max() - idx.min() + 1) for idx in support)


def test_three_stacked_3x3_convs_see_7x7():
    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i in range(3):
                x = jnn.Conv(4, (3, 3), padding=1, name=f"conv{i}")(x)
            return x

    rows = summarize(Stack(), (1, 16, 16, 2))
    assert [r.receptive_field for r in rows[1:]] == [(3, 3), (5, 5), (7, 7)]


class StridedDilatedStack(nn.Module):
    """VALID padding everywhere, so every output unit's window lies inside the input."""

    @nn.compact
    def __call__(self, x):
        x = jnn.Conv(2, (3, 3), stride=2, name="strided")(x)
        x = jnn.Conv(2, (3, 3), dilation=2, name="dilated")(x)
        x = jnn.AvgPool(2, 2, name="pool")(x)
        return jnn.Conv(1, (5, 3), name="rect")(x)


def test_receptive_field_matches_gradient_support():
    model = StridedDilatedStack()
    rows = by_name(summarize(model, (1, 64, 48, 1)))
    # By hand: 3 (jump 2); 3 + 2*2*2 = 11; 11 + 1*2 = 13 (jump 4); 13 + 4*4, 13 + 2*4.
    assert rows["strided"].receptive_field == (3, 3)
    assert rows["dilated"].receptive_field == (11, 11)
    assert rows["pool"].receptive_field == (13, 13)
    assert rows["rect"].receptive_field == (29, 21)
    assert gradient_support(model, (1, 64, 48, 1), (0, 4, 3, 0)) == (29, 21)


class ResidualBlock(nn.Module):
    """conv3x3/s -> conv3x3 on the main path, 1x1/s conv on the shortcut."""

    summary_kind: ClassVar[str] = "block"
    stride: int = 2

    @nn.compact
    def __call__(self, x):
        y = jnn.Conv(2, (3, 3), stride=self.stride, padding=1, name="conv_a")(x)
        y = jnn.ReLU(name="relu")(y)
        y = jnn.Conv(2, (3, 3), padding=1, name="conv_b")(y)
        shortcut = jnn.Conv(2, (1, 1), stride=self.stride, name="shortcut")(x)
        return y + shortcut


class ResidualNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = ResidualBlock(name="block")(x)
        return jnn.Conv(1, (3, 3), padding=1, name="head")(x)


def test_receptive_field_follows_branches_not_call_order():
    rows = by_name(summarize(ResidualNet(), (1, 32, 32, 1)))
    assert rows["block"].kind == "block" and rows["block.conv_a"].depth == 1
    # Main path: 3 (jump 2), 3 + 2*2 = 7. Shortcut: 1 (jump 2). The add keeps
    # the larger: 7, jump 2; the head adds 2*2 -> 11. Composing in call order
    # (shortcut after conv_b) would give jump 4 and 15.
    assert rows["block.conv_a"].receptive_field == (3, 3)
    assert rows["block.conv_b"].receptive_field == (7, 7)
    assert rows["block.shortcut"].receptive_field == (1, 1)
    assert rows["block"].receptive_field == (7, 7)
    assert rows["head"].receptive_field == (11, 11)
    # Interior unit of the 16x16 output, far from the zero padding.
    assert gradient_support(ResidualNet(), (1, 32, 32, 1), (0, 8, 8, 0)) == (11, 11)


def test_receptive_field_through_concatenated_branches_and_remat():
    class Inception(nn.Module):
        summary_kind: ClassVar[str] = "block"

        @nn.compact
        def __call__(self, x):
            branches = [
                jnn.Conv(2, (k, k), padding=k // 2, name=f"conv{k}x{k}")(x) for k in (1, 3, 5)
            ]
            return jnp.concatenate(branches, axis=-1)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            # nn.remat puts the block inside a `checkpoint` equation of the trace.
            x = nn.remat(Inception)(name="inception")(x)
            return jnn.Conv(1, (1, 1), name="merge")(x)

    rows = by_name(summarize(Net(), (1, 12, 12, 3)))
    assert rows["inception.conv5x5"].receptive_field == (5, 5)
    assert rows["inception"].receptive_field == (5, 5)
    assert rows["merge"].receptive_field == (5, 5)
    assert rows["merge"].macs == 12 * 12 * 1 * 6


def test_receptive_field_one_dimensional():
    class Net1D(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jnn.Conv(4, (3,), stride=2, name="a")(x)
            return jnn.Conv(4, (3,), name="b")(x)

    rows = by_name(summarize(Net1D(), (2, 33, 5)))
    assert rows["a"].receptive_field == (3,) and rows["b"].receptive_field == (7,)
    assert rows["b"].output_shape == (2, 14, 4)
    assert rows["b"].macs == 2 * 14 * 4 * 3 * 4


def test_global_pool_sees_its_whole_input():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jnn.Conv(4, (3, 3), stride=2, name="conv")(x)  # 9 -> 4, jump 2
            return jnn.GlobalAvgPool(name="gap")(x)

    rows = by_name(summarize(Net(), (1, 9, 9, 1)))
    assert rows["gap"].output_shape == (1, 4)
    assert rows["gap"].receptive_field == (3 + 3 * 2, 3 + 3 * 2)


class AdaptiveAvgPool(nn.Module):
    """The summary protocol of an adaptive pool: kind "pool" and ``output_size``."""

    summary_kind: ClassVar[str] = "pool"
    output_size: int | tuple = 2

    def __call__(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)


def test_adaptive_pool_sees_its_largest_bin():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jnn.Conv(1, (3, 3), name="conv")(x)  # 11x8 -> 9x6, field 3, jump 1
            x = AdaptiveAvgPool((2, None), name="quadrants")(x)  # rows: bins [0, 5), [4, 9)
            return AdaptiveAvgPool((1, 3), name="summary")(x)  # 2x6 -> 1x3: cols [0, 2), [2, 4), [4, 6)

    rows = by_name(summarize(Net(), (1, 11, 8, 1)))
    assert rows["quadrants"].output_shape == (1, 2, 6, 1)
    # Rows: largest bin 5 (jump 4); cols kept (window 1): 3 + 4 = 7, 3.
    assert rows["quadrants"].receptive_field == (7, 3)
    # Rows: one bin of both rows: 7 + 1 * 4; cols: bins of 2: 3 + 1.
    assert rows["summary"].receptive_field == (11, 4)
    assert rows["summary"].params == rows["summary"].macs == 0
    # The first output unit sees input rows 0..10 and columns 0..3.
    assert gradient_support(Net(), (1, 11, 8, 1), (0, 0, 0, 0)) == (11, 4)
    # Against a window pool of the same geometry: 4 | 8, bins 2x2 stride 2.
    pooled = summarize(AdaptiveAvgPool(4), (1, 8, 8, 1))[1]
    windowed = summarize(jnn.AvgPool(2, 2), (1, 8, 8, 1))[1]
    assert pooled.receptive_field == windowed.receptive_field == (2, 2)


def test_locally_connected_layers():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jnn.LocallyConnected2D(3, (3, 3), name="local")(x)  # 6x6x2 -> 4x4x3
            return jnn.TiledConv2D(3, (3, 3), stride=2, tiles=2, name="tiled")(x)  # -> 1x1x3

    rows = by_name(summarize(Net(), (1, 6, 6, 2)))
    local, tiled = rows["local"], rows["tiled"]
    assert local.kind == tiled.kind == "local"
    # Unshared weights: one 3x3x2x3 kernel (and 3 biases) per output position ...
    assert local.params == 4 * 4 * (3 * 3 * 2 * 3 + 3)
    # ... but each position still does one kernel's worth of multiply-adds.
    assert local.macs == 4 * 4 * 3 * (3 * 3 * 2)
    assert tiled.params == 2 * 2 * (3 * 3 * 3 * 3 + 3)
    assert tiled.macs == 1 * 1 * 3 * (3 * 3 * 3)
    assert local.receptive_field == (3, 3) and tiled.receptive_field == (5, 5)
