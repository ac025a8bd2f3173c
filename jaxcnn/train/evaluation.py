"""Evaluation over a whole dataset, of a saved run, and the post-training batch-norm recomputation.

Kept apart from the epoch loop: :func:`evaluate_dataset` averages whatever
metrics an eval step returns (loss, accuracy, and top-5 accuracy for models
with >= 10 classes), :func:`evaluate_workdir` is ``jaxcnn eval`` (the latest
checkpoint of a run, on one device), and :func:`recompute_after_training` is
what ``jaxcnn train --recompute-batch-stats N`` runs after the last epoch.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxcnn import data
from jaxcnn.train import distributed, steps
from jaxcnn.train.batch_stats import recompute_batch_stats
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import TrainConfig
from jaxcnn.train.executors import OneDevice
from jaxcnn.train.run_setup import build_state, load_datasets

__all__ = ["evaluate", "evaluate_dataset", "evaluate_workdir", "recompute_after_training",
           "RECOMPUTE_FILENAME", "CHECKPOINT_SUBDIR"]

RECOMPUTE_FILENAME = "batch_stats_recomputed.json"
# A run's checkpoints are in <workdir>/checkpoints.
CHECKPOINT_SUBDIR = "checkpoints"


def evaluate_dataset(eval_step: Callable, state, dataset, batch_size: int, preprocess_eval: Callable) -> dict:
    """Means over all of ``dataset`` (no example dropped) of every metric ``eval_step`` returns.

    Args:
      eval_step: ``(state, images, labels) -> {name: scalar}``, e.g.
        :func:`jaxcnn.train.eval_step` or an executor's.
      state: the state ``eval_step`` takes.
      dataset: an :class:`jaxcnn.data.ArrayDataset`.
      batch_size: evaluation batch size.
      preprocess_eval: ``uint8 images -> float32 model input``.

    Returns:
      ``{"loss": ..., "accuracy": ..., ["top5_accuracy": ...]}`` as Python floats;
      batch means are weighted by batch size, so a final partial batch counts
      for what it holds.
    """
    sums: dict[str, float] = {}
    for images, labels in data.batches(dataset, batch_size, shuffle=False):
        metrics = eval_step(state, preprocess_eval(images), labels)
        for name, value in metrics.items():
            # pmap returns one copy per device; the copies are equal after pmean.
            sums[name] = sums.get(name, 0.0) + float(np.asarray(value).reshape(-1)[0]) * len(labels)
    return {name: total / len(dataset) for name, total in sums.items()}


def recompute_after_training(config, state, train_set, test_set, preprocess_eval: Callable,
                             before: dict, workdir: str | Path):
    """Population batch-norm statistics over ``config.recompute_batch_stats`` training batches.

    The batches are the first ones of the run's data order for epoch
    ``config.epochs`` (a pass the training never made), ``config.batch_size``
    each, with the evaluation preprocessing (no augmentation). Evaluates the
    new state on ``test_set``, prints before/after and writes both to
    ``<workdir>/batch_stats_recomputed.json`` (process 0 of a multi-process
    run; every process computes the same on one of its devices).

    Args:
      config: the run's :class:`jaxcnn.train.config.TrainConfig`.
      state: the trained single-device (host) state; its model has batch norm.
      before: the test metrics of ``state`` (``{"loss", "accuracy", ...}``).

    Returns:
      ``(new_state, report)`` with ``report = {"batches", "before", "after"}``.
    """
    batches = data.batches(train_set, config.batch_size, seed=config.seed, epoch=config.epochs,
                           shuffle=True, drop_remainder=True)
    images = (preprocess_eval(images) for images, _ in itertools.islice(batches, config.recompute_batch_stats))
    new_state = recompute_batch_stats(state, images)
    after = evaluate_dataset(steps.eval_step, new_state, test_set, config.eval_batch_size, preprocess_eval)
    count = min(config.recompute_batch_stats, data.num_batches(len(train_set), config.batch_size,
                                                                drop_remainder=True))
    report = {"batches": count, "before": dict(before), "after": after}
    if distributed.is_main_process():  # every process computed the same; one writes
        Path(workdir, RECOMPUTE_FILENAME).write_text(
            json.dumps(report, indent=2, sort_keys=True) + "\n")
        print(f"batch-norm statistics recomputed over {count} training batches: test accuracy "
              f"{100 * before['accuracy']:.2f}% -> {100 * after['accuracy']:.2f}% "
              f"(loss {before['loss']:.4f} -> {after['loss']:.4f})", flush=True)
    return new_state, report


def evaluate(executor, state, dataset, batch_size: int, preprocess) -> tuple[float, float]:
    """Mean loss and accuracy of ``state`` over all of ``dataset`` (no example dropped).

    Batch means are weighted by batch size, so a final partial batch counts for
    what it holds. Returns Python floats ``(loss, accuracy)``.
    """

    metrics = evaluate_dataset(executor.eval_step, state, dataset, batch_size, preprocess.eval)
    return metrics["loss"], metrics["accuracy"]


def evaluate_workdir(workdir: str | Path, *, data_dir: str | None = None) -> dict:
    """Evaluate the latest checkpoint of the run in ``workdir`` on its test split (one device).

    Returns ``{"dataset", "test_loss", "test_accuracy", "test_images", "step"}``.
    Raises FileNotFoundError when ``workdir`` has no config.json or no checkpoint.
    """

    config = TrainConfig.load(workdir)
    if data_dir is not None:
        config = config.replace(data_dir=data_dir)
    config.check_names()
    checkpoint_dir = Path(workdir) / CHECKPOINT_SUBDIR
    if not checkpoint_dir.is_dir() or not any(checkpoint_dir.iterdir()):
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}: train first")
    _, test_set = load_datasets(config)
    # The optimizer-state structure does not depend on the schedule's length.
    template, _ = build_state(config, test_set.num_classes, test_set.image_shape, 1)
    with Checkpointer(checkpoint_dir, max_to_keep=config.keep_checkpoints) as checkpointer:
        restored = checkpointer.restore_latest(template)
    if restored is None:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}: train first")
    state, _ = restored
    mean, std = data.normalization_stats(config.dataset, test_set)
    loss, accuracy = evaluate(OneDevice(), state, test_set, config.eval_batch_size,
                              data.Preprocess(mean, std, augmentation=None))
    return {"dataset": config.dataset, "test_loss": loss, "test_accuracy": accuracy,
            "test_images": len(test_set), "step": int(state.step)}
