"""Orbax checkpoints of NNX training: ``nnx.state(model)`` and ``nnx.state(optimizer)``.

One checkpoint = ``<directory>/<step>/`` with ``state`` (the arrays of
``nnx.state(model)`` -- parameters, batch statistics, the ``nnx.Rngs`` keys and
counters -- and of ``nnx.state(optimizer)`` when given: moments and step
count) and ``metadata`` (JSON: ``step`` plus what the caller adds). As
:class:`jaxcnn.train.Checkpointer`, it uses Orbax's ``CheckpointManager``: a
checkpoint is written to a temporary directory and renamed when complete, and
saving is asynchronous (:meth:`NNXCheckpointer.wait_until_finished`).

PRNG key arrays (``nnx.RngKey``) are stored as their raw ``uint32`` key data
and wrapped again on restore with the template's key implementation.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

__all__ = ["NNXCheckpointer"]


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _arrays(nodes: dict) -> dict:
    """Pure nested dicts of arrays, PRNG keys as their key data."""
    pure = {name: nnx.to_pure_dict(nnx.state(node)) for name, node in nodes.items()}
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, pure)


class NNXCheckpointer:
    """Save and restore the state of an NNX model (and its optimizer) under ``directory``.

    Usage::

        with NNXCheckpointer(workdir / "checkpoints", max_to_keep=3) as ckpt:
            meta = ckpt.restore_latest(model, optimizer)   # None when there is none
            ...
            ckpt.save(step, model, optimizer, {"epoch": epoch})

    Restoring writes the saved arrays into ``model`` / ``optimizer`` in place
    (``nnx.update``); their structure, shapes and dtypes must match the saved ones.
    """

    def __init__(self, directory, *, max_to_keep: int = 3):
        if isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int) or max_to_keep < 1:
            raise ValueError(f"max_to_keep must be an int >= 1, got {max_to_keep!r}")
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    @staticmethod
    def _nodes(model, optimizer) -> dict:
        if not isinstance(model, nnx.Module):
            raise ValueError(f"model must be an nnx.Module, got {type(model).__name__}")
        return {"model": model} if optimizer is None else {"model": model, "optimizer": optimizer}

    def save(self, step: int, model: nnx.Module, optimizer=None, metadata: dict[str, Any] | None = None) -> int:
        """Start writing a checkpoint named ``step`` (asynchronously); returns ``step``.

        A checkpoint already present for ``step`` is replaced. ``metadata``: a
        JSON-serialisable dict; ``step`` is added.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        meta = dict(metadata or {})
        meta["step"] = step
        try:
            json.dumps(meta)
        except TypeError as error:
            raise ValueError(f"checkpoint metadata must be JSON-serialisable: {error}") from None
        arrays = _arrays(self._nodes(model, optimizer))
        self._manager.wait_until_finished()
        if step in self._manager.all_steps():
            self._manager.delete(step)
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(arrays), metadata=ocp.args.JsonSave(meta)),
            force=True,
        )
        return step

    def steps(self) -> list[int]:
        """The steps of the checkpoints on disk, oldest first."""
        self._manager.wait_until_finished()
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def restore(self, step: int, model: nnx.Module, optimizer=None) -> dict:
        """Write checkpoint ``step`` into ``model`` (and ``optimizer``) in place; returns its metadata."""
        nodes = self._nodes(model, optimizer)
        template = _arrays(nodes)
        self._manager.wait_until_finished()
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(template), metadata=ocp.args.JsonRestore()),
        )
        for name, node in nodes.items():
            state = nnx.state(node)
            saved = restored["state"][name]
            current = nnx.to_pure_dict(state)
            saved = jax.tree.map(
                lambda old, new: jax.random.wrap_key_data(new, impl=jax.random.key_impl(old)) if _is_key(old) else new,
                current,
                saved,
            )
            nnx.replace_by_pure_dict(state, saved)
            nnx.update(node, state)
        return dict(restored["metadata"])

    def restore_latest(self, model: nnx.Module, optimizer=None) -> dict | None:
        """Restore the newest checkpoint into ``model`` (and ``optimizer``); its metadata, or None if none exists."""
        steps = self.steps()
        return None if not steps else self.restore(steps[-1], model, optimizer)

    def wait_until_finished(self) -> None:
        """Block until pending saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release Orbax's resources."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> NNXCheckpointer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
