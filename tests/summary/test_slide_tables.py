"""jaxcnn.summary reproduces the slides' arithmetic: one conv layer, LeNet-5,
AlexNet, VGG-16 and ResNet-50, row by row and in the printed table.

Expected numbers are derived by hand from the architectures (the slides'
formulas), never read back from the code under test.
"""
from __future__ import annotations

import io

import pytest

from jaxcnn import models
from jaxcnn import nn as jnn
from jaxcnn.summary import Row, format_table, print_summary, summarize


def by_name(rows: list[Row]) -> dict[str, Row]:
    return {row.name: row for row in rows}


@pytest.fixture(scope="module")
def lenet5_rows():
    return summarize(models.get("lenet5"), (1, 28, 28, 1), train=False)


@pytest.fixture(scope="module")
def vgg16_rows():
    return summarize(models.get("vgg16"), (1, 224, 224, 3), train=False)


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


def test_lenet5_table_row_by_row(lenet5_rows):
    rows = lenet5_rows
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


def test_format_table_lenet5(lenet5_rows):
    lines = format_table(lenet5_rows).splitlines()
    assert lines[0] == "batch 1: activations and MACs are for the whole batch, connections for one example"
    assert lines[1].split() == [
        "layer", "kind", "output", "weights", "activations", "params", "MACs", "connections", "RF"
    ]
    cells = {line.split()[0]: line.split() for line in lines[2:] if line and line[0] != "-"}
    assert cells["input"] == ["input", "input", "28x28x1", "-", "784", "0", "0", "0", "-"]
    # Connections (LeCun's count): every output unit's inputs plus its bias; 28*28*20*(25 + 1).
    assert cells["conv1"] == ["conv1", "conv", "28x28x20", "5x5x1x20", "15,680", "520", "392,000", "407,680", "5"]
    assert cells["pool2"] == ["pool2", "pool", "7x7x50", "-", "2,450", "0", "0", "9,800", "16"]
    assert cells["fc3"] == ["fc3", "dense", "500", "2450x500", "500", "1,225,500", "1,225,000", "1,225,500", "-"]
    # Totals: activations of input + conv/pool/dense outputs (not relu, flatten).
    activations = 784 + 15_680 + 3_920 + 9_800 + 2_450 + 500 + 10
    connections = 407_680 + 14 * 14 * 20 * 4 + 14 * 14 * 50 * (25 * 20 + 1) + 9_800 + 1_225_500 + 5_010
    assert cells["total"] == ["total", f"{activations:,}", "1,256,080", "6,522,000", f"{connections:,}"]
    assert "params: 1,256,080 (5.02 MB)" in lines
    assert "multiply-adds: 6,522,000" in lines


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


def test_vgg16_totals_and_memory_column(vgg16_rows):
    layers = [r for r in vgg16_rows if r.kind in ("conv", "pool", "dense")]
    assert [(r.kind, r.activation_elements, r.params, r.macs) for r in layers] == vgg16_reference_table()
    # CS231n's memory column starts 224*224*64 = 3.2M, 3.2M, 112*112*64 = 800K ...
    assert [r.activation_elements for r in layers[:3]] == [3_211_264, 3_211_264, 802_816]
    assert sum(r.params for r in vgg16_rows) == 138_357_544
    assert sum(r.macs for r in vgg16_rows) == 15_470_264_320  # ~15.5 G multiply-adds
    outputs = sum(r.activation_elements for r in layers)
    assert outputs == 15_087_080
    # With the 224*224*3 input, as CS231n counts: ~15.2M activations, x4 bytes ~61 MB.
    assert outputs + 224 * 224 * 3 == 15_237_608
    table = format_table(vgg16_rows)
    assert "15,237,608 elements (60.95 MB)" in table
    assert "params: 138,357,544 (553.43 MB)" in table


def test_vgg_receptive_fields_stack_like_the_slides_say(vgg16_rows):
    rows = by_name(vgg16_rows)
    # Two stacked 3x3 stride-1 convs see 5x5, three see 7x7 (conv3_1..3 after
    # two pools: jump 4, so each adds 2*4).
    assert rows["conv1_1"].receptive_field == (3, 3)
    assert rows["conv1_2"].receptive_field == (5, 5)
    assert rows["conv3_3"].receptive_field[0] - rows["conv3_1"].receptive_field[0] == 2 * 2 * 4
    # Published value for VGG-16's last pooling layer (Araujo et al., Distill 2019).
    assert rows["pool5"].receptive_field == (212, 212)


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


def test_connection_table_conv_counts_only_connected_weights():
    rows = by_name(summarize(models.get("lenet5_classic"), (1, 32, 32, 1), train=False))
    # LeNet-5's C3: 60 connected 5x5 filters on a 10x10 map.
    assert rows["c3"].output_shape == (1, 10, 10, 16)
    assert rows["c3"].params == 60 * 25 + 16
    assert rows["c3"].macs == 10 * 10 * 60 * 25
    assert rows["c3"].receptive_field == (5 + 1 + 4 * 2, 5 + 1 + 4 * 2)


def test_print_summary_uses_the_default_input_shape():
    out = io.StringIO()
    rows = print_summary("lenet5", file=out)
    text = out.getvalue()
    assert text.startswith("lenet5 on input 1x28x28x1\n")
    assert "params: 1,256,080" in text
    assert rows[0].output_shape == (1, *models.input_shape("lenet5")) == (1, 28, 28, 1)
    # Any input size the pooling allows: lenet5 on 8x8 digits.
    rows = print_summary("lenet5", (2, 8, 8, 1), file=io.StringIO())
    assert by_name(rows)["fc3"].params == 2 * 2 * 50 * 500 + 500
