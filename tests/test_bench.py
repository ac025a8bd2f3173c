"""The benchmark on a tiny setting: report structure, consistency of derived numbers, CLI, errors.

Nothing here asserts a speed: timings on a shared machine are not a test.
"""
import json
import math

import jax
import pytest

from jaxcnn import models, native, summary
from jaxcnn.bench import (
    BenchSettings,
    format_report,
    interleave,
    main,
    run_benchmark,
)
from jaxcnn.bench.torch_models import TORCH_MODELS, torch_available, torch_model
from jaxcnn.cli import main as cli_main

HAS_TORCH = torch_available()


def test_interleave_alternates_order_and_reports_every_round():
    calls = []

    def runner(name):
        return lambda iterations: calls.append((name, iterations))

    seconds = interleave({"a": runner("a"), "b": runner("b")}, rounds=3, iterations=2, warmup=1,
                         pause=0.001)
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("b", 2), ("a", 2), ("a", 2), ("b", 2)]
    assert set(seconds) == {"a", "b"} and all(len(v) == 3 for v in seconds.values())
    assert all(s >= 0 for v in seconds.values() for s in v)
    with pytest.raises(ValueError, match="rounds and iterations must be >= 1"):
        interleave({"a": runner("a")}, rounds=0, iterations=1)


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch for the twins")
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_torch_twin_has_the_jax_models_parameter_count(name):
    model = models.get(name)
    shape = (1, *models.input_shape(name))
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jax.numpy.zeros(shape), train=False))
    jax_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables["params"]))
    twin = torch_model(name)
    assert sum(p.numel() for p in twin.parameters() if p.requires_grad) == jax_params
    import torch

    with torch.no_grad():
        logits = twin.eval()(torch.zeros(2, shape[3], shape[1], shape[2]))
    assert tuple(logits.shape) == (2, 10)


@pytest.fixture(scope="module")
def tiny_report():
    settings = BenchSettings(models=("lenet5",), batch_sizes=(4,), rounds=2, iterations=1,
                             warmup=0, pause=0.0, matmul_size=64, per_layer=True,
                             impls=("xla", "auto"), with_torch=HAS_TORCH)
    return run_benchmark(settings)


def test_report_structure_and_derived_numbers(tiny_report):
    report = tiny_report
    assert set(report) == {"machine", "settings", "matmul", "models", "layers", "memory"}
    assert report["memory"] == []  # measured only with memory=True
    matmul = report["matmul"]
    assert matmul["peak_gflops"] == max(v for k, v in matmul.items()
                                        if k.endswith("_gflops") and k != "peak_gflops" and v)
    (result,) = report["models"]
    assert result["model"] == "lenet5" and result["batch_size"] == 4
    assert result["params"] == 1_256_080  # the slides' LeNet-5
    assert result["forward_macs"] == 4 * sum(r.macs for r in summary.summarize(
        models.get("lenet5"), (1, 28, 28, 1), train=False))
    assert result["conv_impl"] == "auto"
    for phase, flops_per_mac in (("train", 6), ("eval", 2)):
        timing = result["jax"][phase]
        assert len(timing["rounds_ms"]) == 2
        assert timing["images_per_s"] == pytest.approx(4 / (timing["step_ms"] / 1e3))
        assert timing["gflops"] == pytest.approx(
            flops_per_mac * result["forward_macs"] / (timing["step_ms"] / 1e3) / 1e9)
        assert timing["peak_fraction"] == pytest.approx(timing["gflops"] / matmul["peak_gflops"])
        assert result["jax"][f"first_{phase}_step_ms"] > 0
    if HAS_TORCH:
        for phase in ("train", "eval"):
            assert result["ratio"][phase] == pytest.approx(
                result["jax"][phase]["images_per_s"] / result["torch"][phase]["images_per_s"])
        assert result["torch"]["threads"] >= 1 and result["torch"]["channels_last"] is False
        assert result["torch"]["device"] == "cpu"
    else:
        assert result["torch"] is None and result["ratio"] is None
    layers = report["layers"]["lenet5"]
    assert [layer["name"] for layer in layers] == ["conv1", "conv2"]
    for layer in layers:
        assert set(layer["ms"]) == {"xla", "auto"} | ({"torch"} if HAS_TORCH else set())
        # Measured rule: oneDNN's kernels where they are built, else XLA's convolution.
        assert layer["auto_choice"] == ("onednn" if native.available() else "xla")
        assert all(v > 0 for v in layer["ms"].values())
    json.dumps(report)  # serialisable as is


def test_format_report_shows_every_model_phase_and_layer(tiny_report):
    text = format_report(tiny_report)
    lines = text.splitlines()
    assert any(line.startswith("lenet5") and " train " in line for line in lines)
    assert any(line.startswith("lenet5") and " eval " in line for line in lines)
    assert "lenet5: conv forward+backward" in text
    assert any(line.startswith("conv2 ") and "5x5x20x50" in line for line in lines)
    assert "fp32 matmul 64^2" in text


def test_cli_bench_writes_json_and_rejects_bad_settings(tmp_path, capsys):
    path = tmp_path / "bench.json"
    status = cli_main(["bench", "--models", "lenet5", "--batch-size", "2", "--rounds", "1",
                       "--iterations", "1", "--warmup", "0", "--pause", "0", "--matmul-size", "32",
                       "--no-torch",
                       "--json", str(path)])
    assert status == 0
    report = json.loads(path.read_text())
    assert report["models"][0]["torch"] is None and report["models"][0]["batch_size"] == 2
    assert "lenet5" in capsys.readouterr().out
    assert cli_main(["bench", "--models", "no_such_model", "--no-torch"]) == 2
    assert "models must be zoo names" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--impls", "fft", "--no-torch"])
    assert "unknown conv implementation" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(models=()), "models must be zoo names"),
        (dict(batch_sizes=(0,)), "batch_sizes must be positive ints"),
        (dict(rounds=0), "rounds must be a positive int"),
        (dict(warmup=-1), "warmup must be an int >= 0"),
        (dict(pause=-0.1), r"pause must be a number of seconds in \[0, 10\]"),
        (dict(models=("alexnet",), with_torch=True), "no PyTorch twin for alexnet"),
        (dict(with_torch=True, torch_device="tpu"), "torch_device must be 'cpu' or 'cuda'"),
    ],
)
def test_settings_errors_name_the_problem(kwargs, match):
    if kwargs.get("with_torch") and not HAS_TORCH:
        match = "PyTorch is not installed"
    kwargs.setdefault("with_torch", False)
    with pytest.raises(ValueError, match=match):
        BenchSettings(**kwargs)


def test_conv_impl_setting_builds_the_models_with_it_and_changes_nothing_global():
    settings = BenchSettings(models=("lenet5",), batch_sizes=(2,), rounds=1, iterations=1,
                             warmup=0, pause=0.0, matmul_size=32, with_torch=False,
                             conv_impl="im2col")
    report = run_benchmark(settings)
    assert report["models"][0]["conv_impl"] == "im2col"
    assert models.get("lenet5").conv_impl == "auto"


def test_per_layer_skips_implementations_that_cannot_compute_a_layer():
    from jaxcnn.bench.layer_bench import benchmark_conv_layers
    from jaxcnn.bench.runner import format_report
    from jaxcnn.summary import ConvLayer

    grouped = ConvLayer("grouped", (2, 6, 6, 4), (3, 3, 2, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), 2)
    plain = ConvLayer("plain", (2, 6, 6, 4), (3, 3, 4, 4), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    layers = benchmark_conv_layers([grouped, plain], ("xla", "onednn"), rounds=1, iterations=1,
                                   pause=0.0, with_torch=False)
    assert set(layers[0]["ms"]) == {"xla"}  # oneDNN does not compute grouped convolutions
    assert set(layers[1]["ms"]) == ({"xla", "onednn"} if native.available() else {"xla"})
    text = format_report({
        "machine": {"cpus": 2, "processor": "x86_64", "jax": jax.__version__, "torch": None},
        "matmul": {"size": 64, "xla_gflops": 1.0, "torch_gflops": None, "peak_gflops": 1.0},
        "models": [], "layers": {"toy": layers},
    })
    grouped_row = next(line for line in text.splitlines() if line.startswith("grouped"))
    assert " - " in grouped_row  # a missing implementation shows as "-"


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_memory_mode_measures_fresh_processes_and_tables_the_ratio(capsys):
    """`jaxcnn bench --memory`: three fresh processes per model; the table's ratio is theirs."""
    assert cli_main(["bench", "--models", "lenet5", "--batch-size", "8", "--rounds", "1",
                     "--iterations", "1", "--warmup", "0", "--pause", "0", "--matmul-size", "32",
                     "--memory"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("model") and "PyTorch" in line
                  and "glibc" in line)
    row = out.splitlines()[out.splitlines().index(header) + 2].split()
    assert row[:2] == ["lenet5", "8"]
    mine, plain, theirs = (float(v) for v in row[2:5])
    assert min(mine, plain, theirs) > 50  # a Python process with its library loaded
    assert float(row[5].rstrip("x")) == pytest.approx(mine / theirs, abs=0.006)


def test_peak_memory_grows_with_what_the_process_holds():
    """In a fresh process: this test process's high-water mark may already be above any block."""
    import subprocess
    import sys

    code = ("import numpy as np; from jaxcnn.bench.memory import peak_memory_mb; "
            "before = peak_memory_mb(); block = np.ones(128 * 2**20 // 8); "
            "print(peak_memory_mb() - before)")
    grown = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, timeout=120).stdout)
    assert 120 < grown < 200  # the 128 MiB block (134 MB), touched by np.ones


def test_sweep_defaults_to_the_depth_batch_grid_and_plots_what_was_measured(tmp_path, capsys,
                                                                            tiny_report):
    import argparse

    from jaxcnn.bench.runner import add_arguments, settings_from_args
    from jaxcnn.bench.sweep_plot import SWEEP_BATCH_SIZES, SWEEP_MODELS, plot_sweep

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = settings_from_args(parser.parse_args(["--sweep"]))
    assert (settings.models, settings.batch_sizes) == (SWEEP_MODELS, SWEEP_BATCH_SIZES)
    assert SWEEP_BATCH_SIZES == (32, 64, 128, 256, 512)
    narrowed = settings_from_args(parser.parse_args(["--sweep", "--models", "lenet5",
                                                     "--batch-size", "2,4"]))
    assert (narrowed.models, narrowed.batch_sizes) == (("lenet5",), (2, 4))
    plain = settings_from_args(parser.parse_args([]))
    assert (plain.models, plain.batch_sizes) == (("lenet5", "resnet20"), (128,))

    path = plot_sweep(tiny_report, tmp_path / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no model measurements"):
        plot_sweep({"models": []}, tmp_path / "empty.png")
    status = cli_main(["bench", "--sweep", "--models", "lenet5", "--batch-size", "2,4",
                       "--rounds", "1", "--iterations", "1", "--warmup", "0", "--pause", "0",
                       "--matmul-size", "32", "--no-torch", "--plot", str(tmp_path / "cli.png")])
    assert status == 0 and (tmp_path / "cli.png").is_file()
    out = capsys.readouterr().out
    assert sum(line.startswith("lenet5") and " train " in line for line in out.splitlines()) == 2
