"""Benchmarks: jaxcnn's train and eval steps against PyTorch, and conv layers per implementation.

    jaxcnn bench [--models lenet5,resnet20] [--batch-size 128] [--per-layer] [--json PATH]

- :mod:`jaxcnn.bench.timing`: interleaved timing rounds, matmul peak, load average.
- :mod:`jaxcnn.bench.model_bench`: :func:`benchmark_model` (one model, JAX vs its PyTorch twin).
- :mod:`jaxcnn.bench.layer_bench`: :func:`benchmark_conv_layers` (of the layers
  :func:`jaxcnn.summary.conv_layers` finds).
- :mod:`jaxcnn.bench.torch_models`: the PyTorch twins (torch is imported only when used).
- :mod:`jaxcnn.bench.runner`: :class:`BenchSettings`, :func:`run_benchmark`,
  :func:`format_report` and the command line.
"""
from jaxcnn.bench.layer_bench import benchmark_conv_layers
from jaxcnn.bench.model_bench import benchmark_model
from jaxcnn.bench.runner import BenchSettings, format_report, main, run_benchmark
from jaxcnn.bench.timing import interleave, matmul_peak

__all__ = [
    "BenchSettings",
    "benchmark_conv_layers",
    "benchmark_model",
    "format_report",
    "interleave",
    "main",
    "matmul_peak",
    "run_benchmark",
]
