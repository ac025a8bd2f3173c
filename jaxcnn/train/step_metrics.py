"""Per-step metrics that stay on the device until the host asks for them.

A training loop that turns every step's loss into a Python float waits for
that step to finish before it can dispatch the next one: an accelerator idles
while the host catches up. :class:`StepMetricsBuffer` keeps the metric arrays
the steps return (device arrays: appending is free and asynchronous) and
transfers them in one go when :meth:`StepMetricsBuffer.flush` is called,
every N steps (the progress bar) and at the end of an epoch. The flush still
knows every step's loss, so divergence is reported with the exact step where
the loss first became non-finite.

Reads happen inside ``jax.transfer_guard_device_to_host("allow")``, so on an
accelerator a program may disallow device-to-host transfers everywhere else to
prove that the steps between flushes never wait on the host (on the CPU
backend the guard does not fire: arrays already live in host memory; the
tests count reads instead).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["StepMetricsBuffer", "FlushedSteps"]


@dataclasses.dataclass(frozen=True)
class FlushedSteps:
    """What one :meth:`StepMetricsBuffer.flush` read back.

    Attributes:
      steps: global step number of each buffered step, in order.
      losses, accuracies: the steps' batch-mean loss and accuracy (floats).
      sizes: images in each step's batch.
      label_errors: labels outside ``0..K-1`` in each step's batch (0 where the
        step's metrics have no ``"label_errors"``).
    """

    steps: tuple[int, ...]
    losses: tuple[float, ...]
    accuracies: tuple[float, ...]
    sizes: tuple[int, ...]
    label_errors: tuple[float, ...] = ()

    @property
    def first_label_error(self) -> tuple[int, float] | None:
        """``(step, count)`` of the first step that saw labels out of range, else None."""
        for step, count in zip(self.steps, self.label_errors):
            if count:
                return step, count
        return None

    @property
    def first_non_finite(self) -> tuple[int, float] | None:
        """``(step, loss)`` of the first step whose loss is NaN or infinite, else None."""
        for step, loss in zip(self.steps, self.losses):
            if not math.isfinite(loss):
                return step, loss
        return None

    @property
    def images(self) -> int:
        return sum(self.sizes)

    @property
    def loss_sum(self) -> float:
        """Sum over steps of ``loss * batch size`` (for an image-weighted mean)."""
        return sum(loss * size for loss, size in zip(self.losses, self.sizes))

    @property
    def correct_sum(self) -> float:
        return sum(accuracy * size for accuracy, size in zip(self.accuracies, self.sizes))


def _scalar_on_device(value):
    """A step metric as a scalar, still on its device(s).

    pmap returns one identical entry per device (``(devices,)``); jit and the
    sharded step return a scalar. Taking entry 0 is a device-side slice.
    """
    value = jnp.asarray(value) if not isinstance(value, jax.Array) else value
    return value.reshape(-1)[0] if value.ndim else value


class StepMetricsBuffer:
    """Collects ``{"loss", "accuracy"[, "label_errors"]}`` of many steps; the host reads them on :meth:`flush`.

    ``add`` never transfers anything to the host; ``flush`` makes one
    device-to-host transfer of all buffered losses and accuracies (stacked
    on the device first) and empties the buffer.
    """

    def __init__(self):
        self._steps: list[int] = []
        self._losses: list = []
        self._accuracies: list = []
        self._label_errors: list = []
        self._sizes: list[int] = []

    def __len__(self) -> int:
        return len(self._steps)

    def add(self, step: int, metrics, batch_size: int) -> None:
        """Buffer one step's metrics (device arrays, scalar or one entry per device)."""
        self._steps.append(int(step))
        self._losses.append(_scalar_on_device(metrics["loss"]))
        self._accuracies.append(_scalar_on_device(metrics["accuracy"]))
        self._label_errors.append(_scalar_on_device(metrics.get("label_errors", 0.0)))
        self._sizes.append(int(batch_size))

    def flush(self) -> FlushedSteps:
        """Read every buffered step's loss and accuracy (one transfer) and clear the buffer."""
        if not self._steps:
            return FlushedSteps((), (), (), (), ())
        with jax.transfer_guard_device_to_host("allow"):
            stacked = np.asarray(
                jax.device_get(_stack(self._losses, self._accuracies, self._label_errors)), np.float64)
        flushed = FlushedSteps(tuple(self._steps), tuple(stacked[0].tolist()),
                               tuple(stacked[1].tolist()), tuple(self._sizes),
                               tuple(stacked[2].tolist()))
        self._steps, self._losses, self._accuracies, self._sizes = [], [], [], []
        self._label_errors = []
        return flushed


def _stack(*rows):
    """``(len(rows), steps)`` float32 on the device: the losses, accuracies, label errors."""
    return jnp.stack([jnp.stack([jnp.asarray(v, jnp.float32) for v in values]) for values in rows])
