"""Rows beyond the zoo: who owns which parameters, repeated calls, modules
outside the protocol, the table's options, and bad input."""
from __future__ import annotations

import io
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from jaxcnn import models
from jaxcnn import nn as jnn
from jaxcnn.summary import KINDS, Row, format_table, print_summary, summarize


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {row.name: row for row in rows}


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


class Block(nn.Module):
    summary_kind: ClassVar[str] = "block"

    @nn.compact
    def __call__(self, x):
        return x + jnn.Conv(1, (3, 3), padding=1, name="conv_a")(x)


def test_format_table_memory_kinds_and_block_indent():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return jnn.ReLU(name="relu")(Block(name="block")(x))

    rows = summarize(Net(), (1, 8, 8, 1))
    assert [r.kind for r in rows] == ["input", "block", "conv", "activation"]
    everything = format_table(rows, memory_kinds=KINDS | {"input"})
    assert f"{4 * 64:,} elements" in everything  # input, block, conv and relu outputs
    default = format_table(rows)
    assert f"{2 * 64:,} elements" in default  # input and conv only
    assert "\n  block.conv_a " in everything  # depth 1 is indented
    with pytest.raises(ValueError, match="at least one row"):
        format_table([])


def test_bad_input_shape():
    conv = jnn.Conv(2, (3, 3))
    with pytest.raises(ValueError, match="input_shape must be a sequence of ints"):
        summarize(conv, "1x8x8x1")
    with pytest.raises(ValueError, match="at least 2 positive ints"):
        summarize(conv, (1, 0, 8, 1))
    with pytest.raises(ValueError, match="at least 2 positive ints"):
        summarize(conv, (8,))


def test_print_summary_wants_the_batch_dim():
    with pytest.raises(ValueError, match=r"input_shape must be \(batch, H, W, C\).*got \(28, 28, 1\)"):
        print_summary("lenet5", (28, 28, 1), file=io.StringIO())


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


def test_bad_adaptive_output_size():
    class Adaptive(nn.Module):
        summary_kind: ClassVar[str] = "pool"
        output_size: tuple = (2, 2, 2)

        def __call__(self, x):
            return x[:, :2, :2]

    with pytest.raises(ValueError, match=r"output_size must be an int >= 1 or 2 of them.*\(2, 2, 2\)"):
        summarize(Adaptive(), (1, 4, 4, 1))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'lenet6'; valid names: alexnet"):
        models.input_shape("lenet6")
    with pytest.raises(ValueError, match="lenet5"):  # the registry lists the valid names
        print_summary("lenet6", file=io.StringIO())
