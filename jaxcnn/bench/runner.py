"""``jaxcnn bench``: settings, one run of every measurement, a table and a JSON report.

    jaxcnn bench                                  # lenet5 + resnet20 at B=128 vs PyTorch
    jaxcnn bench --models resnet20 --batch-size 64,128 --json bench.json
    jaxcnn bench --per-layer --impls xla,im2col,auto
    jaxcnn bench --sweep --memory                 # ResNet-20/56/110 x batch 32..512, plot, memory

One run measures, in this order: the matmul peak (XLA and PyTorch), then per
model and batch size the train and eval steps (JAX and PyTorch interleaved),
then with ``--per-layer`` every distinct conv layer's forward+backward per
implementation. The machine's load average is recorded at the start and end.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform

__all__ = ["BenchSettings", "add_arguments", "settings_from_args", "run_benchmark",
           "format_report", "main"]

DEFAULT_MODELS = ("lenet5", "resnet20")


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What one benchmark run measures.

    Attributes:
      models: zoo model names.
      batch_sizes: images per step; every model is timed at each.
      rounds, iterations, warmup, pause: interleaved timing (:func:`jaxcnn.bench.timing.interleave`).
      with_torch: compare with the PyTorch twins (needs torch).
      torch_channels_last: PyTorch in channels_last memory format instead of NCHW.
      torch_device: where PyTorch runs, ``"cpu"`` or ``"cuda"`` (JAX uses its default backend).
      threads: PyTorch intra-op threads (XLA uses every core by itself).
      matmul_size: side of the square fp32 GEMM that measures the peak.
      per_layer: also time every distinct conv layer of every model.
      impls: conv implementations for ``per_layer``.
      conv_impl: if set, every model is built with ``models.get(name,
        conv_impl=conv_impl)`` (to measure an alternative to the default,
        :data:`jaxcnn.functional.conv.DEFAULT_CONV_IMPL`).
      memory: also measure each model's peak resident memory in training,
        in fresh processes (:mod:`jaxcnn.bench.memory`): jaxcnn as
        ``jaxcnn train`` runs it, jaxcnn with glibc's default malloc, and
        PyTorch (with ``with_torch``).
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    batch_sizes: tuple[int, ...] = (128,)
    rounds: int = 7
    iterations: int = 3
    warmup: int = 2
    pause: float = 0.5
    with_torch: bool = True
    torch_channels_last: bool = False
    torch_device: str = "cpu"
    threads: int = os.cpu_count() or 1
    matmul_size: int = 2048
    per_layer: bool = False
    impls: tuple[str, ...] = ()
    conv_impl: str | None = None
    memory: bool = False

    def __post_init__(self):
        from jaxcnn import models

        unknown = [name for name in self.models if name not in models.names()]
        if not self.models or unknown:
            raise ValueError(
                f"models must be zoo names ({', '.join(models.names())}), got {list(self.models)}"
            )
        for field in ("rounds", "iterations", "threads", "matmul_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")
        if not self.batch_sizes or any(
            isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.batch_sizes
        ):
            raise ValueError(f"batch_sizes must be positive ints, got {list(self.batch_sizes)}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an int >= 0, got {self.warmup!r}")
        if isinstance(self.pause, bool) or not isinstance(self.pause, (int, float)) or not (
            0 <= self.pause <= 10
        ):
            raise ValueError(f"pause must be a number of seconds in [0, 10], got {self.pause!r}")
        if self.with_torch:
            from jaxcnn.bench.torch_models import TORCH_MODELS, torch_available

            if not torch_available():
                raise ValueError("PyTorch is not installed; install it or pass --no-torch")
            if self.torch_device not in ("cpu", "cuda"):
                raise ValueError(f"torch_device must be 'cpu' or 'cuda', got {self.torch_device!r}")
            missing = [name for name in self.models if name not in TORCH_MODELS]
            if missing:
                raise ValueError(
                    f"no PyTorch twin for {', '.join(missing)} (twins: {', '.join(TORCH_MODELS)});"
                    " pass --no-torch to time JAX alone"
                )


def _impl_names() -> tuple[str, ...]:
    from jaxcnn.functional import conv as conv_ops

    return tuple(conv_ops.IMPLS)


def _comma_list(kind):
    def parse(text: str):
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's flags to ``parser`` (shared by ``jaxcnn bench`` and experiments/bench.py)."""
    defaults = BenchSettings.__dataclass_fields__
    add = parser.add_argument
    add("--models", type=_comma_list(str), default=None, metavar="A,B",
        help=f"zoo models; default: {','.join(DEFAULT_MODELS)} (--sweep: resnet20,resnet56,resnet110)")
    add("--batch-size", dest="batch_sizes", type=_comma_list(int), default=None,
        metavar="N[,M]", help="batch size(s); default: 128 (--sweep: 32,64,128,256,512)")
    add("--rounds", type=int, default=defaults["rounds"].default, metavar="N",
        help="interleaved timing rounds (the median is reported); default: %(default)s")
    add("--iterations", type=int, default=defaults["iterations"].default, metavar="N",
        help="steps per contestant per round; default: %(default)s")
    add("--warmup", type=int, default=defaults["warmup"].default, metavar="N",
        help="untimed steps per contestant before the rounds; default: %(default)s")
    add("--pause", type=float, default=defaults["pause"].default, metavar="SECONDS",
        help="sleep before each timed run so the previous contestant's threads go idle; "
        "default: %(default)s")
    add("--no-torch", dest="with_torch", action="store_false",
        help="time JAX only (no PyTorch comparison)")
    add("--torch-channels-last", action="store_true",
        help="run PyTorch in channels_last memory format (default: NCHW)")
    add("--torch-device", default="cpu", choices=("cpu", "cuda"),
        help="where PyTorch runs (cuda: the GPU, to compare with JAX on it); default: cpu")
    add("--threads", type=int, default=os.cpu_count() or 1, metavar="N",
        help="PyTorch threads; default: the number of cores (%(default)s)")
    add("--matmul-size", type=int, default=defaults["matmul_size"].default, metavar="N",
        help="side of the fp32 GEMM measuring the machine's peak; default: %(default)s")
    add("--per-layer", action="store_true",
        help="also time each distinct conv layer's forward+backward per implementation")
    add("--impls", type=_comma_list(str), default=None, metavar="A,B",
        help="conv implementations for --per-layer; default: all")
    add("--conv-impl", default=None, metavar="IMPL",
        help="build every model with this conv_impl (to measure alternatives); default: the models' own")
    add("--memory", action="store_true",
        help="also measure each model's peak resident memory while training (fresh processes: "
        "jaxcnn, jaxcnn with glibc's default malloc, PyTorch)")
    add("--sweep", action="store_true",
        help="the depth x batch-size grid: ResNet-20/56/110 at batch 32,64,128,256,512 (unless "
        "--models/--batch-size are given), with a plot (--plot)")
    add("--plot", dest="plot_path", default=None, metavar="PATH",
        help="with --sweep: where the plot goes; default: bench_sweep.png")
    add("--json", dest="json_path", default=None, metavar="PATH",
        help="also write the full report (every round's time) as JSON")


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    """The :class:`BenchSettings` of parsed :func:`add_arguments` flags."""
    impls = tuple(args.impls) if args.impls else _impl_names()
    unknown = [impl for impl in impls + ((args.conv_impl,) if args.conv_impl else ())
               if impl not in _impl_names()]
    if unknown:
        raise ValueError(f"unknown conv implementation(s) {unknown}; expected {list(_impl_names())}")
    models, batch_sizes = DEFAULT_MODELS, (128,)
    if args.sweep:
        from jaxcnn.bench.sweep_plot import SWEEP_BATCH_SIZES, SWEEP_MODELS

        models, batch_sizes = SWEEP_MODELS, SWEEP_BATCH_SIZES
    models = models if args.models is None else tuple(args.models)
    batch_sizes = batch_sizes if args.batch_sizes is None else tuple(args.batch_sizes)
    return BenchSettings(
        models=models,
        batch_sizes=batch_sizes,
        rounds=args.rounds,
        iterations=args.iterations,
        warmup=args.warmup,
        pause=args.pause,
        with_torch=args.with_torch,
        torch_channels_last=args.torch_channels_last,
        torch_device=args.torch_device,
        threads=args.threads,
        matmul_size=args.matmul_size,
        per_layer=args.per_layer,
        impls=impls,
        conv_impl=args.conv_impl,
        memory=args.memory,
    )


def run_benchmark(settings: BenchSettings, *, log=None) -> dict:
    """Run every measurement of ``settings``; returns the report (see :func:`format_report`).

    ``log``: optional ``callable(str)`` told what is being measured.

    Report::

        {"machine": {"cpus", "processor", "platform", "jax", "jaxlib", "torch",
                     "load_average_start", "load_average_end"},
         "settings": dataclasses.asdict(settings),
         "matmul": {"size", "xla_gflops", "torch_gflops", "peak_gflops"},
         "models": [benchmark_model(...) per model and batch size],
         "layers": {model: benchmark_conv_layers(...)},  # {} without per_layer
         "memory": [{"model", "batch_size", "runs": [measure_training_memory(...)]}]}  # [] without memory
    """
    from jaxcnn.native.malloc import keep_freed_memory

    keep_freed_memory()  # what `jaxcnn train` runs with; see jaxcnn.native.malloc
    say = log or (lambda message: None)
    torch_version = None
    if settings.with_torch:
        import torch

        torch.set_num_threads(settings.threads)
        torch_version = torch.__version__
    return _measure(settings, torch_version, say)


def _measure(settings: BenchSettings, torch_version, say) -> dict:
    """Every measurement of ``settings``, in order; see :func:`run_benchmark`."""
    import jax
    import jaxlib

    from jaxcnn import models, summary
    from jaxcnn.bench.layer_bench import benchmark_conv_layers
    from jaxcnn.bench.model_bench import benchmark_model
    from jaxcnn.bench.timing import load_average, matmul_peak

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(),
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "jax_devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
            "torch_device": settings.torch_device if settings.with_torch else None,
            "torch": torch_version,
            "load_average_start": load_average(),
        },
        "settings": dataclasses.asdict(settings),
    }
    say(f"matmul peak ({settings.matmul_size}x{settings.matmul_size} fp32)")
    report["matmul"] = matmul_peak(settings.matmul_size, rounds=max(3, settings.rounds // 2),
                                   with_torch=settings.with_torch, pause=settings.pause,
                                   torch_device=settings.torch_device)
    peak = report["matmul"]["peak_gflops"]
    report["models"] = []
    for name in settings.models:
        for batch_size in settings.batch_sizes:
            say(f"{name} at batch {batch_size}: train and eval steps")
            report["models"].append(
                benchmark_model(
                    name, batch_size=batch_size, rounds=settings.rounds,
                    iterations=settings.iterations, warmup=settings.warmup, pause=settings.pause,
                    with_torch=settings.with_torch,
                    torch_channels_last=settings.torch_channels_last,
                    torch_device=settings.torch_device, peak_gflops=peak,
                    conv_impl=settings.conv_impl,
                )
            )
    report["layers"] = {}
    if settings.per_layer:
        for name in settings.models:
            shape = (settings.batch_sizes[0], *models.input_shape(name))
            say(f"{name}: conv layers forward+backward per implementation")
            report["layers"][name] = benchmark_conv_layers(
                summary.conv_layers(models.get(name), shape), settings.impls, rounds=settings.rounds,
                iterations=settings.iterations, pause=settings.pause,
                with_torch=settings.with_torch, peak_gflops=peak,
            )
    report["memory"] = []
    if settings.memory:
        from jaxcnn.bench.memory import measure_training_memory

        variants = [("jaxcnn", True), ("jaxcnn", False)]
        if settings.with_torch and settings.torch_device == "cpu":
            variants.append(("pytorch", True))
        for name in settings.models:
            for batch_size in settings.batch_sizes:
                say(f"{name} at batch {batch_size}: peak memory while training")
                report["memory"].append({
                    "model": name, "batch_size": batch_size,
                    "runs": [measure_training_memory(library, name, batch_size, malloc_tuning=tuned)
                             for library, tuned in variants]})
    report["machine"]["load_average_end"] = load_average()
    return report


def _percent(fraction) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f}%"


def format_report(report: dict) -> str:
    """The report as plain-text tables (models, then per-layer when present)."""
    machine, matmul = report["machine"], report["matmul"]
    load = [machine.get("load_average_start"), machine.get("load_average_end")]
    lines = [
        f"{machine['cpus']} CPUs ({machine['processor']}), jax {machine['jax']}"
        + (f" on {machine['jax_devices']}" if machine.get("jax_devices") else "")
        + (f", torch {machine['torch']}" if machine["torch"] else "")
        + (f" on {machine['torch_device']}" if machine.get("torch_device") not in (None, "cpu") else "")
        + (f"; load average {load[0]:.1f} -> {load[1]:.1f}" if None not in load else ""),
        f"fp32 matmul {matmul['size']}^2: XLA {matmul['xla_gflops']:.0f} GFLOP/s"
        + (f", PyTorch {matmul['torch_gflops']:.0f} GFLOP/s" if matmul["torch_gflops"] else "")
        + f" (peak {matmul['peak_gflops']:.0f})",
        "",
    ]
    header = ("model", "batch", "step", "jax img/s", "torch img/s", "ratio",
              "jax GFLOP/s", "torch GFLOP/s", "first step")
    rows = [header]
    for result in report["models"]:
        for phase in ("train", "eval"):
            mine = result["jax"][phase]
            theirs = result["torch"][phase] if result["torch"] else None
            rows.append((
                result["model"], str(result["batch_size"]), phase,
                f"{mine['images_per_s']:.0f}",
                f"{theirs['images_per_s']:.0f}" if theirs else "-",
                f"{result['ratio'][phase]:.2f}x" if result["ratio"] else "-",
                f"{mine['gflops']:.1f} ({_percent(mine['peak_fraction'])})",
                f"{theirs['gflops']:.1f} ({_percent(theirs['peak_fraction'])})" if theirs else "-",
                f"{result['jax'][f'first_{phase}_step_ms'] / 1e3:.1f} s",
            ))
    lines += _table(rows)
    if report.get("memory"):
        lines += ["", "peak resident memory of a training process (MB; fresh process each)"]
        rows = [("model", "batch", "jaxcnn", "jaxcnn, glibc malloc", "PyTorch", "jaxcnn / PyTorch")]
        for entry in report["memory"]:
            peaks = {(run["library"], run["malloc_tuning"]): run["peak_mb"] for run in entry["runs"]}
            mine, plain = peaks[("jaxcnn", True)], peaks[("jaxcnn", False)]
            theirs = peaks.get(("pytorch", None))
            rows.append((entry["model"], str(entry["batch_size"]), f"{mine:.0f}", f"{plain:.0f}",
                         "-" if theirs is None else f"{theirs:.0f}",
                         "-" if theirs is None else f"{mine / theirs:.2f}x ({plain / theirs:.2f}x)"))
        lines += _table(rows)
    for model, layers in report.get("layers", {}).items():
        if not layers:
            continue
        impls = list(dict.fromkeys(name for layer in layers for name in layer["ms"]))
        lines += ["", f"{model}: conv forward+backward, ms (GFLOP/s)"]
        rows = [("layer", "n", "input", "kernel", "stride", "MFLOP", *impls, "auto picks")]
        for layer in layers:
            rows.append((
                layer["name"], str(layer["count"]),
                "x".join(map(str, layer["input_shape"])),
                "x".join(map(str, layer["kernel_shape"])),
                "x".join(map(str, layer["stride"])),
                f"{6 * layer['macs'] / 1e6:.0f}",
                *(f"{layer['ms'][i]:.1f} ({layer['gflops'][i]:.0f})" if i in layer["ms"] else "-"
                  for i in impls),
                str(layer["auto_choice"] or "-"),
            ))
        lines += _table(rows)
    return "\n".join(lines)


def _table(rows) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ))
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return out


def run_from_args(args: argparse.Namespace, *, out=print) -> int:
    """Run the benchmark for parsed flags; print the table, write ``--json``; returns 0."""
    settings = settings_from_args(args)
    report = run_benchmark(settings, log=lambda message: out(f"... {message}"))
    out(format_report(report))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(report, f, indent=1)
        out(f"wrote {args.json_path}")
    if args.sweep:
        from jaxcnn.bench.sweep_plot import plot_sweep

        out(f"wrote {plot_sweep(report, args.plot_path or 'bench_sweep.png')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python experiments/bench.py [flags]``: the same as ``jaxcnn bench [flags]``."""
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except ValueError as err:
        parser.error(str(err))
