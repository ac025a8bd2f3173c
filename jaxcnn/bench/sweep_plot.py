"""``jaxcnn bench --sweep``: the models x batch sizes grid, and its plot.

    jaxcnn bench --sweep                      # ResNet-20/56/110 at batch 32..512, both libraries
    jaxcnn bench --sweep --models resnet20 --batch-size 32,128 --plot sweep.png

:func:`plot_sweep` draws, per phase (train, eval), images/s and GFLOP/s
against the batch size, one line per model and library (jaxcnn solid,
PyTorch dashed), from a report's ``"models"`` entries.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["SWEEP_MODELS", "SWEEP_BATCH_SIZES", "plot_sweep"]

SWEEP_MODELS = ("resnet20", "resnet56", "resnet110")
SWEEP_BATCH_SIZES = (32, 64, 128, 256, 512)


def plot_sweep(report: dict, path: str | Path) -> Path:
    """Write the sweep's 2x2 figure (train/eval x img/s, GFLOP/s) to ``path`` (PNG); returns it.

    Raises ValueError when the report holds no model measurements.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results = report.get("models") or []
    if not results:
        raise ValueError("the report has no model measurements to plot")
    figure = Figure(figsize=(11, 8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2)
    names = list(dict.fromkeys(result["model"] for result in results))
    colors = {name: f"C{index}" for index, name in enumerate(names)}
    for row, phase in enumerate(("train", "eval")):
        for column, (key, label) in enumerate((("images_per_s", "images/s"),
                                               ("gflops", "GFLOP/s"))):
            ax = axes[row][column]
            for name in names:
                mine = sorted((r["batch_size"], r["jax"][phase][key]) for r in results
                              if r["model"] == name)
                ax.plot(*zip(*mine), "o-", color=colors[name], label=f"{name} jaxcnn")
                theirs = sorted((r["batch_size"], r["torch"][phase][key]) for r in results
                                if r["model"] == name and r["torch"])
                if theirs:
                    ax.plot(*zip(*theirs), "s--", color=colors[name], label=f"{name} PyTorch")
            ax.set_xscale("log", base=2)
            sizes = sorted({r["batch_size"] for r in results})
            ax.set_xticks(sizes, [str(size) for size in sizes])
            ax.minorticks_off()
            ax.set(xlabel="batch size", ylabel=label, title=f"{phase} step: {label}")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    machine = report.get("machine", {})
    figure.suptitle(f"jaxcnn vs PyTorch, {machine.get('cpus', '?')} CPUs "
                    f"({machine.get('processor', '')}), jax {machine.get('jax', '?')}")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    return path
