"""Summary rows: LeCun's connection counts (the LeNet-5 table) and block rows totalling their layers
(the GoogLeNet per-module table), through summarize, format_table(depth=) and `jaxcnn summary --depth`."""
from __future__ import annotations

import io

import pytest

from jaxcnn import models
from jaxcnn import nn as jnn
from jaxcnn.cli import EXIT_OK, main
from jaxcnn.summary import format_table, print_summary, summarize


@pytest.fixture(scope="module")
def googlenet_rows():
    return summarize(models.get("googlenet"), (1, 224, 224, 3), train=False)


def test_lenet5_classic_connections_are_lecuns():
    """Slide "LeNet-5" (LeCun et al. 1998): C1 122,304 connections, S2 5,880, C3 151,600, S4 2,000,
    C5 48,120 (= its parameters: a 1x1 map), F6 10,164."""
    rows = {r.name: r for r in summarize(models.get("lenet5_classic"), (1, 32, 32, 1))}
    assert rows["c1"].connections == (5 * 5 + 1) * 6 * 28 * 28 == 122_304
    assert rows["s2"].connections == (2 * 2 + 1) * 6 * 14 * 14 == 5_880
    assert rows["c3"].connections == (60 * 25 + 16) * 10 * 10 == 151_600  # Table I: 60 connected 5x5 filters
    assert rows["s4"].connections == (2 * 2 + 1) * 16 * 5 * 5 == 2_000
    assert rows["c5"].connections == rows["c5"].params == 48_120
    assert rows["f6"].connections == (120 + 1) * 84 == 10_164
    assert rows["c1_act"].connections == 0 and rows["flatten"].connections == 0


def test_connections_are_per_example_and_count_pool_windows_without_bias():
    one = summarize(jnn.MaxPool(3, 2), (1, 9, 9, 4))[1]
    four = summarize(jnn.MaxPool(3, 2), (4, 9, 9, 4))[1]
    assert one.connections == four.connections == 4 * 4 * 4 * 9  # 4x4x4 outputs, 3x3 windows, no bias
    conv = summarize(jnn.Conv(8, (3, 3), use_bias=False), (2, 6, 6, 2))[1]
    assert conv.connections == 4 * 4 * 8 * (3 * 3 * 2) and conv.macs == 2 * conv.connections


# The GoogLeNet paper's Table 1 (Szegedy et al. 2014), per inception module: "ops" (multiply-adds) in
# millions, as printed. Our MACs agree to the printed precision except 5a (51.1M computed, 54M printed:
# the table's own arithmetic; its layer sizes give 51.1M, and the library's value is pinned).
PAPER_OPS_M = {"3a": 128, "3b": 304, "4a": 73, "4b": 88, "4c": 100, "4d": 119, "4e": 170, "5b": 71}


def _inception_kernel_params(c_in, n1, r3, n3, r5, n5, proj):
    return c_in * n1 + c_in * r3 + 9 * r3 * n3 + c_in * r5 + 25 * r5 * n5 + c_in * proj


def test_googlenet_block_rows_total_their_layers(googlenet_rows):
    """Slide "GoogLeNet" (the per-module params/ops table): each inception row totals its branches."""
    blocks = {r.name: r for r in googlenet_rows if r.kind == "block"}
    assert len(blocks) == 9
    for name, ops in PAPER_OPS_M.items():
        # The table rounds some entries and truncates others (73.6M printed as 73M): within 1M.
        assert abs(blocks[f"inception{name}"].total_macs / 1e6 - ops) < 1, name
    assert round(blocks["inception5a"].total_macs / 1e6) == 51
    # The printed 463K for 4c is inconsistent with the module's own sizes (512 -> 128 | 128->256 | 24->64 | 64):
    # its kernels alone hold 509,440 weights; with the 664 biases the module has 510,104 parameters.
    kernels_4c = _inception_kernel_params(512, 128, 128, 256, 24, 64, 64)
    assert kernels_4c == 509_440
    assert blocks["inception4c"].total_params == kernels_4c + (128 + 128 + 256 + 24 + 64 + 64) == 510_104
    assert blocks["inception3a"].total_params == _inception_kernel_params(192, 64, 96, 128, 16, 32, 32) + 368
    # A block owns no parameters itself; the totals are its layers', and summing params still counts each once.
    for i, row in enumerate(googlenet_rows):
        if row.kind == "block":
            inside = [r for r in googlenet_rows if r.name.startswith(row.name + ".")]
            assert row.params == 0 and row.total_params == sum(r.params for r in inside) > 0
            assert row.total_macs == sum(r.macs for r in inside)
            assert row.total_connections == sum(r.connections for r in inside)
        else:
            assert (row.total_params, row.total_macs) == (row.params, row.macs)
    assert sum(r.params for r in googlenet_rows) == 6_998_552


def test_depth_1_prints_the_per_module_table(googlenet_rows, capsys):
    """`jaxcnn summary googlenet --depth 1`: top-level rows only, inception modules with their totals."""
    table = format_table(googlenet_rows, depth=1)
    lines = {line.split()[0]: line.split() for line in table.splitlines()[3:] if line and line[0] != "-"}
    assert "inception4c.branch1" not in table and "inception4c" in lines
    assert lines["inception4c"][1] == "block" and lines["inception4c"][5] == "510,104"
    assert lines["inception4c"][6] == f"{99_850_240:,}"
    assert lines["total"][2] == "6,998,552"  # the total line still counts every layer once
    assert len(format_table(googlenet_rows).splitlines()) > len(table.splitlines())
    assert main(["summary", "googlenet", "--depth", "1"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "inception4c" in out and "510,104" in out and "branch1" not in out
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        format_table(googlenet_rows, depth=0)
    buffer = io.StringIO()
    print_summary("lenet5", file=buffer, depth=1)
    assert "connections" in buffer.getvalue()
