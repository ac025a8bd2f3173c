"""Per-epoch metrics: ``metrics.jsonl`` (one JSON object per epoch) and ``curves.png``.

A record has exactly the keys in :data:`RECORD_KEYS`, plus those of
:data:`OPTIONAL_RECORD_KEYS` it has (``test_top5_accuracy``: models with at
least 10 classes)::

    {"epoch": 1, "train_loss": 0.21, "train_accuracy": 0.93, "test_loss": 0.06,
     "test_accuracy": 0.981, "epoch_seconds": 41.2, "images_per_second": 1530.0}

``epoch`` counts from 1; accuracies are fractions in [0, 1]; ``epoch_seconds`` is
the wall time of the epoch including evaluation (and, in the first epoch, XLA
compilation); ``images_per_second`` is training throughput (training images /
training seconds of that epoch).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

RECORD_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "epoch_seconds",
    "images_per_second",
)
# Keys a record may have: top-5 accuracy on the test split, for >= 10 classes.
OPTIONAL_RECORD_KEYS = ("test_top5_accuracy",)
METRICS_FILENAME = "metrics.jsonl"
CURVES_FILENAME = "curves.png"
# ``--eval-every STEPS``: one record per evaluation inside and at the end of epochs.
STEP_EVALS_FILENAME = "step_evals.jsonl"
STEP_EVAL_KEYS = ("step", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                  "elapsed_seconds")


def check_record(record: Mapping) -> dict:
    """The record as a plain dict; ValueError when a key is missing or extra."""
    missing = [k for k in RECORD_KEYS if k not in record]
    extra = sorted(set(record) - set(RECORD_KEYS) - set(OPTIONAL_RECORD_KEYS))
    if missing or extra:
        raise ValueError(
            f"a metrics record needs exactly the keys {list(RECORD_KEYS)} (optionally "
            f"{list(OPTIONAL_RECORD_KEYS)}); missing {missing}, unexpected {extra}"
        )
    keys = RECORD_KEYS + tuple(k for k in OPTIONAL_RECORD_KEYS if k in record)
    return {k: (int(record[k]) if k == "epoch" else float(record[k])) for k in keys}


def write_metrics(workdir: str | Path, records: Sequence[Mapping]) -> Path:
    """(Re)write ``<workdir>/metrics.jsonl`` with ``records``, atomically.

    Rewriting the whole (small) file from the checkpointed history, rather than
    appending, keeps it consistent with the checkpoint after a crash at any point.
    """
    return _write_jsonl(Path(workdir) / METRICS_FILENAME, [check_record(r) for r in records])


def _write_jsonl(path: Path, records: Sequence[Mapping]) -> Path:
    """Write one JSON object per line to a temporary file, then rename it over ``path``."""
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(record) + "\n" for record in records))
    os.replace(tmp, path)
    return path


def write_step_evals(workdir: str | Path, records: Sequence[Mapping]) -> Path:
    """(Re)write ``<workdir>/step_evals.jsonl`` atomically: one line per ``--eval-every`` evaluation.

    A record has exactly :data:`STEP_EVAL_KEYS`: ``step`` (the updates done),
    ``epoch`` (fractional: 1.5 = half-way through the second epoch),
    ``train_loss``/``train_accuracy`` (the running means of the epoch so far),
    ``test_loss``/``test_accuracy``, and ``elapsed_seconds``: wall time since
    the run started (set-up, compilation, training and evaluations; a resumed
    run continues from the checkpoint's value).
    """
    checked = []
    for record in records:
        if sorted(record) != sorted(STEP_EVAL_KEYS):
            raise ValueError(f"a step evaluation record needs exactly the keys {list(STEP_EVAL_KEYS)}, "
                             f"got {sorted(record)}")
        checked.append({k: (int(record[k]) if k == "step" else float(record[k]))
                        for k in STEP_EVAL_KEYS})
    return _write_jsonl(Path(workdir) / STEP_EVALS_FILENAME, checked)


def read_step_evals(workdir: str | Path) -> list[dict]:
    """The records of ``<workdir>/step_evals.jsonl`` ([] when the file does not exist)."""
    path = Path(workdir) / STEP_EVALS_FILENAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(workdir: str | Path) -> list[dict]:
    """The records of ``<workdir>/metrics.jsonl`` ([] when the file does not exist)."""
    path = Path(workdir) / METRICS_FILENAME
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(check_record(json.loads(line)))
        except (json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"{path}, line {number}: {err}") from None
    return records


def format_record(record: Mapping, total_epochs: int | None = None) -> str:
    """One human-readable summary line for an epoch."""
    epoch = f"epoch {record['epoch']}" + (f"/{total_epochs}" if total_epochs else "")
    return (
        f"{epoch}: train loss {record['train_loss']:.4f} acc {100 * record['train_accuracy']:.2f}% | "
        f"test loss {record['test_loss']:.4f} acc {100 * record['test_accuracy']:.2f}% | "
        f"{record['epoch_seconds']:.1f}s, {record['images_per_second']:.0f} img/s"
    )


def plot_curves(workdir: str | Path, records: Sequence[Mapping]) -> Path:
    """Write ``<workdir>/curves.png``: loss (left) and accuracy (right) vs epoch.

    Uses matplotlib's non-interactive Agg backend through the object API, so it
    works without a display and does not touch pyplot's global state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in records]
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for split, style in (("train", "o-"), ("test", "s-")):
        losses = [r[f"{split}_loss"] for r in records]
        accuracies = [100 * r[f"{split}_accuracy"] for r in records]
        loss_axes.plot(epochs, losses, style, label=split)
        accuracy_axes.plot(epochs, accuracies, style, label=split)
    finite_losses = [r[k] for r in records for k in ("train_loss", "test_loss")
                     if math.isfinite(r[k]) and r[k] > 0]
    if finite_losses and max(finite_losses) / min(finite_losses) > 20:
        loss_axes.set_yscale("log")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(True, alpha=0.3)
        axes.legend()
        if epochs:
            axes.set_xticks(_epoch_ticks(epochs))
    figure.tight_layout()
    path = Path(workdir) / CURVES_FILENAME
    tmp = path.with_name(path.stem + ".tmp.png")
    figure.savefig(tmp)
    os.replace(tmp, path)
    return path


def _epoch_ticks(epochs: Sequence[int]) -> list[int]:
    # Integer ticks, at most ~10 of them.
    last = max(epochs)
    step = max(1, math.ceil(last / 10))
    return list(range(step if step > 1 else 1, last + 1, step)) or [last]
