"""Put the next batches on the device while the current step runs.

``jax.device_put`` returns at once and copies in the background, so keeping
``depth`` batches already "put" ahead of the step that consumes them
overlaps the host-to-device copy of batch ``k + 1`` with step ``k`` (JAX
dispatch is asynchronous: the step call returns before the device is done).
"""
from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Iterator

import jax

__all__ = ["prefetch_to_device"]


def prefetch_to_device(
    batches: Iterable, *, depth: int = 2, put: Callable | None = None
) -> Iterator:
    """Yield the items of ``batches`` after placing them on the device, ``depth`` ahead.

    Args:
      batches: an iterable of pytrees of host arrays (e.g. ``(images, labels)``).
      depth: how many batches are on the device before the consumer asks for
        them (>= 1; 2 double-buffers).
      put: ``put(batch) -> batch on device``; default ``jax.device_put`` onto
        the default device. Data-parallel loops pass a function that places
        the batch with the step's sharding (e.g. ``jaxcnn.train.shard_batch``).

    Yields:
      The same batches, in order, already transferred (or transferring).

    Raises:
      ValueError: ``depth`` is not an int >= 1.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"prefetch_to_device: depth must be an int >= 1, got {depth!r}")
    put = put or jax.device_put
    queue: collections.deque = collections.deque()
    iterator = iter(batches)

    def enqueue(count: int) -> None:
        for batch in itertools.islice(iterator, count):
            queue.append(put(batch))

    enqueue(depth)
    while queue:
        yield queue.popleft()
        # Runs when the consumer asks for the next batch, i.e. after it dispatched
        # the step on the one just yielded: the copy overlaps that step.
        enqueue(1)
