"""Reproducible, resumable batching on the host.

The example order of an epoch is a function of ``(seed, epoch)`` only, so a run
restarted from a checkpoint that stored (seed, epoch, batches done) replays the
exact same batches: ``batches(..., start_batch=k)`` yields the tail of the
epoch that an uninterrupted run would have seen after its first ``k`` batches.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from jaxcnn.data.dataset import ArrayDataset


def _check_count(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def num_batches(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches per epoch: ``floor(n / batch_size)`` with ``drop_remainder``, else ``ceil(n / batch_size)``."""
    _check_count(n, "n", 0)
    _check_count(batch_size, "batch_size", 1)
    return n // batch_size if drop_remainder else -(-n // batch_size)


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The example order of one epoch: a permutation of ``0..n-1``, shape ``(n,)`` int64.

    It depends only on ``(seed, epoch, n)``: NumPy's PCG64 generator seeded with
    the entropy ``[seed, epoch]`` (so epochs are decorrelated, not shifted copies).
    Same arguments, same order, on any machine with the pinned NumPy.
    """
    _check_count(seed, "seed", 0)
    _check_count(epoch, "epoch", 0)
    _check_count(n, "n", 0)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batches(
    dataset: ArrayDataset,
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_remainder: bool = False,
    start_batch: int = 0,
    rows: slice | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over one epoch of ``dataset`` in batches.

    Args:
        dataset: the examples (images ``(N, H, W, C)`` uint8, labels ``(N,)`` int32).
        batch_size: examples per batch, >= 1.
        seed, epoch: select the order (see :func:`epoch_permutation`); ignored
            when ``shuffle`` is False (file order).
        drop_remainder: skip the final batch when it would be smaller than
            ``batch_size``; otherwise it is yielded with ``N % batch_size`` examples.
        start_batch: number of batches of this epoch already consumed; iteration
            starts at batch ``start_batch`` of the same order (0 ..
            ``num_batches(N, batch_size, drop_remainder)``).
        rows: read only these rows of every batch (``slice(start, stop)``, e.g.
            one process's part of a global batch in a multi-process run:
            :meth:`jaxcnn.train.executors.Sharded.local_rows`); the batches
            themselves, and so the order, are unchanged. Default: all rows.

    Yields:
        ``(images, labels)``: ``(B, H, W, C)`` uint8 and ``(B,)`` int32 NumPy
        copies, ``B = batch_size`` except possibly for the last batch (with
        ``rows``, ``B`` is the number of rows it selects).
    """
    if not isinstance(dataset, ArrayDataset):
        raise ValueError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
    total = num_batches(len(dataset), batch_size, drop_remainder)
    _check_count(start_batch, "start_batch", 0)
    if start_batch > total:
        raise ValueError(
            f"start_batch {start_batch} is past the end of the epoch ({total} batches of {batch_size})"
        )
    # Validate eagerly: a generator body would only run at the first next().
    order = epoch_permutation(seed, epoch, len(dataset)) if shuffle else np.arange(len(dataset))
    if rows is not None and not (isinstance(rows, slice) and rows.step in (None, 1)):
        raise ValueError(f"rows must be a slice(start, stop) of each batch, got {rows!r}")
    return _iterate(dataset, order, batch_size, range(start_batch, total),
                    slice(None) if rows is None else rows)


def _iterate(dataset, order, batch_size, batch_indices, rows: slice):
    for index in batch_indices:
        chosen = order[index * batch_size : (index + 1) * batch_size][rows]
        yield dataset.images[chosen], dataset.labels[chosen]
