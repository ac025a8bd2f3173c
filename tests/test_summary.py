"""jaxcnn.summary: the slides' layer tables, receptive fields, and the row protocol.

Expected numbers are derived by hand in the tests (the slides' arithmetic), or
measured independently (receptive fields from the support of a gradient).
"""
from __future__ import annotations

import io
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import models
from jaxcnn import nn as jnn
from jaxcnn.summary import (
    KINDS,
    Row,
    default_input_shape,
    format_table,
    print_summary,
    summarize,
)


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {row.name: row for row in rows}


# --- the slides' examples ----------------------------------------------------


def test_slide_example_one_conv_layer():
    # "3x32x32 input, ten 5x5 filters, stride 1, pad 2 -> 10x32x32,
    #  760 parameters, 768,000 multiply-adds"
    rows = summarize(jnn.Conv(10, (5, 5), stride=1, padding=2), (1, 32, 32, 3))
    assert [r.kind for r in rows] == ["input", "conv"]
    conv = rows[1]
    assert conv.output_shape == (1, 32, 32, 10)
    assert conv.params == 760 == 10 * (5 * 5 * 3 + 1)
    assert conv.macs == 768_000 == 32 * 32 * 10 * (5 * 5 * 3)
    assert conv.weight_shape == (5, 5, 3, 10)
    assert conv.param_shapes == {"bias": (10,), "kernel": (5, 5, 3, 10)}
    assert conv.activation_elements == 32 * 32 * 10
    assert conv.activation_bytes == 32 * 32 * 10 * 4
    assert conv.receptive_field == (5, 5)
    assert rows[0].output_shape == (1, 32, 32, 3) and rows[0].activation_elements == 3072


def test_macs_and_memory_scale_with_batch():
    single, = summarize(jnn.Conv(10, (5, 5), padding=2), (1, 32, 32, 3))[1:]
    batched, = summarize(jnn.Conv(10, (5, 5), padding=2), (3, 32, 32, 3))[1:]
    assert batched.macs == 3 * single.macs
    assert batched.activation_elements == 3 * single.activation_elements
    assert batched.params == single.params


def test_lenet5_table_row_by_row():
    rows = summarize(models.get("lenet5"), (1, 28, 28, 1), train=False)
    expected = [
        # name, kind, output shape, params, MACs
        ("input", "input", (1, 28, 28, 1), 0, 0),
        ("conv1", "conv", (1, 28, 28, 20), 5 * 5 * 1 * 20 + 20, 28 * 28 * 20 * 5 * 5 * 1),
        ("relu1", "activation", (1, 28, 28, 20), 0, 0),
        ("pool1", "pool", (1, 14, 14, 20), 0, 0),
        ("conv2", "conv", (1, 14, 14, 50), 5 * 5 * 20 * 50 + 50, 14 * 14 * 50 * 5 * 5 * 20),
        ("relu2", "activation", (1, 14, 14, 50), 0, 0),
        ("pool2", "pool", (1, 7, 7, 50), 0, 0),
        ("flatten", "flatten", (1, 2450), 0, 0),
        ("fc3", "dense", (1, 500), 2450 * 500 + 500, 2450 * 500),
        ("relu3", "activation", (1, 500), 0, 0),
        ("fc4", "dense", (1, 10), 500 * 10 + 10, 500 * 10),
    ]
    got = [(r.name, r.kind, r.output_shape, r.params, r.macs) for r in rows]
    assert got == expected
    # The slides' figures, spelled out.
    assert [r.params for r in rows if r.params] == [520, 25_050, 1_225_500, 5_010]
    assert [r.macs for r in rows if r.macs] == [392_000, 4_900_000, 1_225_000, 5_000]
    assert sum(r.params for r in rows) == 1_256_080
    # Receptive fields: 5; pool 2/2 adds 1; conv 5 after a stride-2 pool adds 4*2; pool adds 1*2.
    assert [r.receptive_field for r in rows if r.kind in ("conv", "pool")] == [
        (5, 5), (6, 6), (14, 14), (16, 16)
    ]
    assert all(r.receptive_field is None for r in rows if r.kind not in ("conv", "pool"))


def test_alexnet_conv1_and_pool1():
    rows = by_name(summarize(models.get("alexnet"), (1, 227, 227, 3), train=False))
    # (227 - 11) / 4 + 1 = 55; 11*11*3*96 + 96 = 34,944
    assert rows["conv1"].output_shape == (1, 55, 55, 96)
    assert rows["conv1"].params == 34_944 == 11 * 11 * 3 * 96 + 96
    assert rows["conv1"].macs == 55 * 55 * 96 * 11 * 11 * 3  # 105,415,200
    assert rows["conv1"].receptive_field == (11, 11)
    # (55 - 3) / 2 + 1 = 27
    assert rows["pool1"].output_shape == (1, 27, 27, 96)
    assert rows["pool1"].params == 0 and rows["pool1"].macs == 0
    assert rows["pool1"].receptive_field == (11 + 2 * 4, 11 + 2 * 4)
    assert sum(r.params for r in rows.values()) == 62_378_344


# VGG-16 (configuration D): conv widths per stage, 3x3 pad 1 convs, 2x2/2 pools.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def vgg16_reference_table():
    """(kind, activations, params, MACs) of each conv/pool/fc layer, from the config alone."""
    table, size, channels = [], 224, 3
    for widths in VGG16_STAGES:
        for width in widths:
            table.append(
                ("conv", size * size * width, 9 * channels * width + width,
                 size * size * width * 9 * channels)
            )
            channels = width
        size //= 2
        table.append(("pool", size * size * channels, 0, 0))
    features = size * size * channels
    for width in (4096, 4096, 1000):
        table.append(("dense", width, features * width + width, features * width))
        features = width
    return table


def test_vgg16_totals_and_memory_column():
    rows = summarize(models.get("vgg16"), (1, 224, 224, 3), train=False)
    layers = [r for r in rows if r.kind in ("conv", "pool", "dense")]
    reference = vgg16_reference_table()
    assert [(r.kind, r.activation_elements, r.params, r.macs) for r in layers] == reference
    # CS231n's memory column starts 224*224*64 = 3.2M, 3.2M, 112*112*64 = 800K ...
    assert [r.activation_elements for r in layers[:3]] == [3_211_264, 3_211_264, 802_816]
    assert sum(r.params for r in rows) == 138_357_544
    assert sum(r.macs for r in rows) == 15_470_264_320  # ~15.5 G multiply-adds
    outputs = sum(r.activation_elements for r in layers)
    assert outputs == 15_087_080
    # With the 224*224*3 input, as CS231n counts: ~15.2M activations, x4 bytes ~61 MB.
    assert outputs + 224 * 224 * 3 == 15_237_608
    table = format_table(rows)
    assert "15,237,608 elements (60.95 MB)" in table
    assert "params: 138,357,544 (553.43 MB)" in table


def test_vgg_receptive_fields_stack_like_the_slides_say():
    rows = by_name(summarize(models.get("vgg16"), (1, 224, 224, 3), train=False))
    # Two stacked 3x3 stride-1 convs see 5x5, three see 7x7 (conv3_1..3 after
    # two pools: jump 4, so each adds 2*4).
    assert rows["conv1_1"].receptive_field == (3, 3)
    assert rows["conv1_2"].receptive_field == (5, 5)
    assert rows["conv3_3"].receptive_field[0] - rows["conv3_1"].receptive_field[0] == 2 * 2 * 4
    # Published value for VGG-16's last pooling layer (Araujo et al., Distill 2019).
    assert rows["pool5"].receptive_field == (212, 212)


def test_three_stacked_3x3_convs_see_7x7():
    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i in range(3):
                x = jnn.Conv(4, (3, 3), padding=1, name=f"conv{i}")(x)
            return x

    rows = summarize(Stack(), (1, 16, 16, 2))
    assert [r.receptive_field for r in rows[1:]] == [(3, 3), (5, 5), (7, 7)]


# --- receptive fields against an independent measurement -------------------


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


# --- the model zoo ------------------------------------------------------------


def test_resnet50_rows():
    rows = summarize(models.get("resnet50"), (1, 224, 224, 3), train=False)
    named = by_name(rows)
    assert sum(r.params for r in rows) == 25_557_032
    assert rows[-1].output_shape == (1, 1000)
    blocks = [r for r in rows if r.kind == "block"]
    assert len(blocks) == 3 + 4 + 6 + 3
    # Every layer inside a block is one level deeper and named under it.
    for row in rows:
        parent = row.name.rpartition(".")[0]
        if parent:
            assert named[parent].kind == "block" and row.depth == named[parent].depth + 1
    # Batch norm: scale and bias are params; running stats are not.
    norm = next(r for r in rows if r.kind == "norm")
    assert norm.param_shapes == {"bias": (64,), "scale": (64,)} and norm.macs == 0
    # The stem: 7x7/2 conv (rf 7, jump 2), 3x3/2 max pool (7 + 2*2 = 11, jump 4).
    assert named["conv1"].receptive_field == (7, 7)
    pool = next(r for r in rows if r.kind == "pool")
    assert pool.receptive_field == (11, 11) and pool.output_shape == (1, 56, 56, 64)
    # Published multiply-adds of ResNet-50 are ~4.1 G (He et al. 2015: 3.8 G FLOPs
    # with the stride on the first 1x1 conv; this zoo puts it on the 3x3).
    assert 4.0e9 < sum(r.macs for r in rows) < 4.2e9


def test_train_flag_reaches_the_model():
    # Dropout needs an rng and BatchNorm mutates batch_stats under train=True;
    # the traced init supplies both.
    rows_train = summarize(models.get("resnet20"), (2, 32, 32, 3), train=True)
    rows_eval = summarize(models.get("resnet20"), (2, 32, 32, 3), train=False)
    assert [(r.name, r.output_shape, r.params) for r in rows_train] == [
        (r.name, r.output_shape, r.params) for r in rows_eval
    ]
    assert sum(r.params for r in rows_eval) == 269_722


# --- params attribution, repeated calls, modules outside the protocol --------


class Scale(nn.Module):
    """A helper without summary_kind that declares a parameter."""

    @nn.compact
    def __call__(self, x):
        return x * self.param("gain", nn.initializers.ones, (x.shape[-1],))


class ConvWithHelper(nn.Module):
    summary_kind: ClassVar[str] = "conv"
    kernel_size: int = 3
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        return Scale(name="scale")(jnn.Conv(4, (3, 3), name="inner")(x))


def test_params_owned_by_the_enclosing_layer_or_an_other_row():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = ConvWithHelper(name="custom")(x)  # helper params belong to the conv
            x = Scale(name="top_scale")(x)  # not inside any layer: "other" row
            x = x.reshape(x.shape[0], -1)
            return nn.Dense(3, name="flax_dense")(x)  # flax's own Dense: "other"

    rows = summarize(Net(), (1, 6, 6, 2))
    named = by_name(rows)
    custom = named["custom"]
    # The inner jnn.Conv is itself a protocol layer and keeps its own row.
    assert named["custom.inner"].params == 3 * 3 * 2 * 4 + 4
    assert custom.params == 4 and custom.param_shapes == {"scale.gain": (4,)}
    assert named["top_scale"].kind == "other" and named["top_scale"].params == 4
    assert named["flax_dense"].kind == "other"
    assert named["flax_dense"].param_shapes == {"bias": (3,), "kernel": (64, 3)}
    variables = jax.eval_shape(Net().init, jax.random.key(0), jnp.zeros((1, 6, 6, 2)))
    total = sum(math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))
    assert sum(r.params for r in rows) == total


def test_a_module_called_twice_is_two_rows_and_its_params_count_once():
    class Shared(nn.Module):
        @nn.compact
        def __call__(self, x):
            conv = jnn.Conv(3, (3, 3), padding=1, name="shared")
            return conv(jnn.ReLU(name="relu")(conv(x)))

    rows = summarize(Shared(), (1, 8, 8, 3))
    assert [r.name for r in rows] == ["input", "shared", "relu", "shared (call 2)"]
    assert [r.params for r in rows] == [0, 84, 0, 0]
    assert rows[3].macs == rows[1].macs == 8 * 8 * 3 * 27
    assert rows[3].receptive_field == (5, 5)


def test_connection_table_conv_counts_only_connected_weights():
    rows = by_name(summarize(models.get("lenet5_classic"), (1, 32, 32, 1), train=False))
    # LeNet-5's C3: 60 connected 5x5 filters on a 10x10 map.
    assert rows["c3"].output_shape == (1, 10, 10, 16)
    assert rows["c3"].params == 60 * 25 + 16
    assert rows["c3"].macs == 10 * 10 * 60 * 25
    assert rows["c3"].receptive_field == (5 + 1 + 4 * 2, 5 + 1 + 4 * 2)


# --- the printed table ---------------------------------------------------------


def test_format_table_lenet5():
    table = format_table(summarize(models.get("lenet5"), (1, 28, 28, 1), train=False))
    lines = table.splitlines()
    assert lines[0] == "batch 1: activations and MACs are for the whole batch"
    assert lines[1].split() == [
        "layer", "kind", "output", "weights", "activations", "params", "MACs", "RF"
    ]
    cells = {line.split()[0]: line.split() for line in lines[2:] if line and line[0] != "-"}
    assert cells["input"] == ["input", "input", "28x28x1", "-", "784", "0", "0", "-"]
    assert cells["conv1"] == ["conv1", "conv", "28x28x20", "5x5x1x20", "15,680", "520", "392,000", "5"]
    assert cells["pool2"] == ["pool2", "pool", "7x7x50", "-", "2,450", "0", "0", "16"]
    assert cells["fc3"] == ["fc3", "dense", "500", "2450x500", "500", "1,225,500", "1,225,000", "-"]
    # Totals: activations of input + conv/pool/dense outputs (not relu, flatten).
    activations = 784 + 15_680 + 3_920 + 9_800 + 2_450 + 500 + 10
    assert cells["total"] == ["total", f"{activations:,}", "1,256,080", "6,522,000"]
    assert "params: 1,256,080 (5.02 MB)" in lines
    assert "multiply-adds: 6,522,000" in lines


def test_format_table_memory_kinds_and_block_indent():
    rows = summarize(ResidualNet(), (1, 8, 8, 1))
    everything = format_table(rows, memory_kinds=KINDS | {"input"})
    total = sum(r.activation_elements for r in rows)
    assert f"{total:,} elements" in everything
    assert "\n  block.conv_a " in everything  # depth 1 is indented
    with pytest.raises(ValueError, match="at least one row"):
        format_table([])


def test_print_summary_uses_the_default_input_shape():
    out = io.StringIO()
    rows = print_summary("lenet5", file=out)
    text = out.getvalue()
    assert text.startswith("lenet5 on input 1x28x28x1\n")
    assert "params: 1,256,080" in text
    assert rows[0].output_shape == default_input_shape("lenet5") == (1, 28, 28, 1)
    assert default_input_shape("resnet50") == (1, 224, 224, 3)
    assert default_input_shape("resnet20") == (1, 32, 32, 3)
    # Any input size the pooling allows: lenet5 on 8x8 digits.
    rows = print_summary("lenet5", (2, 8, 8, 1), file=io.StringIO())
    assert by_name(rows)["fc3"].params == 2 * 2 * 50 * 500 + 500


def test_every_zoo_model_has_a_default_input_shape():
    for name in models.names():
        shape = default_input_shape(name)
        assert len(shape) == 4 and shape[0] == 1


# --- bad input -------------------------------------------------------------------


def test_bad_input_shape():
    conv = jnn.Conv(2, (3, 3))
    with pytest.raises(ValueError, match="input_shape must be a sequence of ints"):
        summarize(conv, "1x8x8x1")
    with pytest.raises(ValueError, match="at least 2 positive ints"):
        summarize(conv, (1, 0, 8, 1))
    with pytest.raises(ValueError, match="at least 2 positive ints"):
        summarize(conv, (8,))


def test_unknown_summary_kind():
    class Odd(nn.Module):
        summary_kind: ClassVar[str] = "convolution"

        def __call__(self, x):
            return x

    with pytest.raises(ValueError, match=r"Odd.summary_kind is 'convolution'; expected one of"):
        summarize(Odd(), (1, 4, 4, 1))


def test_conv_without_protocol_attributes():
    class NoKernelSize(nn.Module):
        summary_kind: ClassVar[str] = "conv"

        def __call__(self, x):
            return x[:, ::2, ::2]

    with pytest.raises(ValueError, match="has no attribute 'kernel_size'"):
        summarize(NoKernelSize(), (1, 4, 4, 1))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="no default input shape for model 'lenet6'"):
        default_input_shape("lenet6")
    with pytest.raises(ValueError, match="lenet5"):  # the registry lists the valid names
        print_summary("lenet6", file=io.StringIO())
