"""Checkpoints of a training run with Orbax's ``CheckpointManager``.

One checkpoint = one directory ``<directory>/<step>/`` holding

- ``state``: the arrays of the TrainState: ``params``, ``batch_stats``,
  ``opt_state`` (optimizer moments, schedule count, plateau controller),
  ``step`` and ``dropout_key``;
- ``metadata``: a JSON object with ``epoch``, ``step`` and whatever the caller
  adds (data-order seed, position inside the epoch, best accuracy, ...).

Checkpoints are named by the global step (``state.step``), so several per
epoch are possible. Orbax writes each into a temporary directory and renames
it when complete, so a process killed while saving leaves the previous
checkpoints intact and the half-written one is never listed. Saving is
asynchronous (the arrays are copied, then written in a background thread);
:meth:`Checkpointer.wait_until_finished` and :meth:`Checkpointer.close` block.
An OS error while writing (disk full, permission denied) is raised -- by the
next ``save``, ``wait_until_finished`` or ``close`` -- as
:class:`CheckpointWriteError`, naming the checkpoints that are kept.

States replicated for ``pmap`` must be ``unreplicate``-d before saving; states
sharded over a mesh are saved as their global arrays. Either restores on one
device by passing a single-device template state.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxcnn.train.state import TrainState

logger = logging.getLogger(__name__)

_STATE_FIELDS = ("params", "batch_stats", "opt_state", "step", "dropout_key")


class CheckpointWarning(UserWarning):
    """A checkpoint could not be read and an older one is used instead."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (disk full, permission denied, ...); the older ones are kept.

    Carries the original ``errno``; the message names the directory, the OS
    error and the checkpoints still on disk.
    """


def _check_single_copy(state: TrainState, what: str) -> None:
    if getattr(state.step, "ndim", 0) != 0:
        raise ValueError(
            f"{what}: state.step has shape {state.step.shape}; this looks like a pmap-replicated "
            "state. Pass jaxcnn.train.unreplicate(state) (one copy, leaves without the device axis)"
        )


def _arrays(state: TrainState) -> dict:
    return {name: getattr(state, name) for name in _STATE_FIELDS}


class Checkpointer:
    """Save and restore TrainStates under ``directory``, keeping the newest ``max_to_keep``.

    Usage::

        with Checkpointer(workdir / "checkpoints", max_to_keep=3) as ckpt:
            restored = ckpt.restore_latest(state)
            if restored is not None:
                state, meta = restored
            ...
            ckpt.save(epoch, state, {"data_seed": seed})
    """

    def __init__(self, directory, *, max_to_keep: int = 3):
        if isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int) or max_to_keep < 1:
            raise ValueError(f"max_to_keep must be an int >= 1, got {max_to_keep!r}")
        self.directory = Path(directory).absolute()
        self.max_to_keep = max_to_keep
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    # -- saving -----------------------------------------------------------
    def save(self, epoch: int, state: TrainState, metadata: dict[str, Any] | None = None) -> int:
        """Start writing a checkpoint of ``state`` (asynchronously); returns its step.

        Args:
          epoch: the epoch the state belongs to (stored in the metadata; the
            loop decides whether that is "completed epochs" or "current epoch"
            and documents it in its metadata).
          state: a single-copy TrainState (``unreplicate`` pmap states first);
            mesh-sharded states are fine.
          metadata: JSON-serialisable dict (str keys) saved next to the arrays,
            e.g. ``{"data_seed": 0}``. ``epoch`` and ``step`` are added.

        A checkpoint already present for the same step is replaced (the arrays
        are the same; the metadata may differ, e.g. mid-epoch vs end of epoch).
        """
        _check_single_copy(state, "Checkpointer.save")
        step = int(jax.device_get(state.step))
        meta = dict(metadata or {})
        meta.update(epoch=int(epoch), step=step)
        try:
            json.dumps(meta)
        except TypeError as error:
            raise ValueError(f"checkpoint metadata must be JSON-serialisable: {error}") from None
        self._wait()
        try:
            if step in self._manager.all_steps():
                self._manager.delete(step)
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(_arrays(state)),
                    metadata=ocp.args.JsonSave(meta),
                ),
                force=True,
            )
        except OSError as error:
            raise self._write_error(error) from error
        return step

    def _wait(self) -> None:
        # An asynchronous save's OS error (disk full, permission denied) surfaces here.
        try:
            self._manager.wait_until_finished()
        except OSError as error:
            raise self._write_error(error) from error

    def _write_error(self, error: OSError) -> CheckpointWriteError:
        try:
            self._manager.reload()
            kept = sorted(self._manager.all_steps())
        except Exception:  # the directory itself may be unreadable now
            kept = []
        where = f" ({error.filename})" if error.filename else ""
        return CheckpointWriteError(
            error.errno,
            f"cannot write a checkpoint in {self.directory}: {error.strerror or error}{where}; "
            + (f"the checkpoints already written (steps {', '.join(map(str, kept))}) are kept"
               if kept else "no complete checkpoint was written"))

    def wait_until_finished(self) -> None:
        """Block until pending saves are on disk; :class:`CheckpointWriteError` if one failed."""
        self._wait()

    def close(self) -> None:
        """Finish pending saves and release Orbax's resources (raises like :meth:`wait_until_finished`)."""
        try:
            self._wait()
        finally:
            self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- restoring --------------------------------------------------------
    def steps(self) -> list[int]:
        """The steps of the checkpoints on disk, oldest first."""
        self._wait()
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def restore(self, step: int, template_state: TrainState) -> tuple[TrainState, dict]:
        """The checkpoint at ``step``, as ``template_state`` with its arrays replaced.

        ``template_state`` fixes the structure, shapes, dtypes and devices of
        the result (and supplies ``apply_fn`` and ``tx``): a state created on
        one device restores there, whatever the saving run used.

        Returns:
          ``(state, metadata)``.
        """
        _check_single_copy(template_state, "Checkpointer.restore")
        self._manager.wait_until_finished()
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_arrays(template_state)),
                metadata=ocp.args.JsonRestore(),
            ),
        )
        arrays = restored["state"]
        return template_state.replace(**{name: arrays[name] for name in _STATE_FIELDS}), dict(
            restored["metadata"]
        )

    def restore_latest(self, template_state: TrainState) -> tuple[TrainState, dict] | None:
        """The newest readable checkpoint, or None when the directory holds none.

        A checkpoint that fails to restore (corrupt or truncated files) is
        reported with a :class:`CheckpointWarning` (and a log line) and the
        next older one is tried.

        Raises:
          ValueError: checkpoints exist but none can be restored into
            ``template_state`` (the message lists each failure).
        """
        failures = []
        for step in reversed(self.steps()):
            try:
                return self.restore(step, template_state)
            except Exception as error:  # Orbax/TensorStore raise many types for bad files.
                message = (
                    f"checkpoint {self.directory / str(step)} could not be restored "
                    f"({type(error).__name__}: {str(error)[:300]}); trying the previous one"
                )
                logger.warning(message)
                warnings.warn(message, CheckpointWarning, stacklevel=2)
                failures.append(f"step {step}: {type(error).__name__}: {str(error)[:300]}")
        if failures:
            raise ValueError(
                f"no checkpoint in {self.directory} could be restored into the given template state: "
                + "; ".join(failures)
            )
        return None
