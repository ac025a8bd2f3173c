"""Data-parallel training with ``jax.jit`` over a device ``Mesh`` (the successor of pmap).

The state is one logical array per leaf, replicated on every device of the
mesh (``NamedSharding(mesh, P())``); the batch is one logical ``(B, ...)``
array split along its first axis (``NamedSharding(mesh, P("batch"))``). The
step is the single-device step, compiled once with those input/output
shardings: XLA's SPMD partitioner inserts the gradient all-reduce, and a
BatchNorm mean over the batch axis is an all-reduce over the global batch, so
batch norm is synchronised without any ``axis_name`` in the model.

XLA cannot partition a custom call such as the oneDNN convolution: traced
with one, every device would all-gather the whole batch and convolve all of
it. Build the model of a sharded state with a partitionable conv
implementation -- :func:`partitionable` turns ``conv_impl="auto"`` into
``"auto_xla"`` -- as the sharded executor of :mod:`jaxcnn.train.executors`
does; ``pmap`` and ``shard_map`` see per-device shapes and need nothing.
"""
from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxcnn.train.steps import eval_step_body, train_step_body

MESH_AXIS = "batch"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices, axis name ``"batch"``.

    Args:
      num_devices: default: all devices (``jax.devices()``).
    """
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or not (
        1 <= num_devices <= available
    ):
        raise ValueError(
            f"num_devices must be an int in [1, {available}] (available devices), got {num_devices!r}"
        )
    return Mesh(np.asarray(jax.devices()[:num_devices]), (MESH_AXIS,))


def make_global_mesh(local_devices: int | None = None) -> Mesh:
    """A 1-D mesh (axis ``"batch"``) over the first ``local_devices`` devices of every process.

    Process 0's devices come first, so each process holds one contiguous block
    of every batch. In a single process this is :func:`make_mesh`.

    Args:
      local_devices: devices per process; default: all of each process's.
    """
    if jax.process_count() == 1:
        return make_mesh(local_devices)
    available = jax.local_device_count()
    if local_devices is None:
        local_devices = available
    if isinstance(local_devices, bool) or not isinstance(local_devices, int) or not (
        1 <= local_devices <= available
    ):
        raise ValueError(f"local_devices must be an int in [1, {available}] (this process's "
                         f"devices), got {local_devices!r}")
    by_process: dict[int, list] = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    chosen = [device for process in sorted(by_process)
              for device in sorted(by_process[process], key=lambda d: d.id)[:local_devices]]
    return Mesh(np.asarray(chosen), (MESH_AXIS,))


def _batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(MESH_AXIS))


def _replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(mesh: Mesh, array):
    """Place a global batch ``(B, ...)`` on the mesh, split along ``B``.

    Returns a ``jax.Array`` of the same shape ``(B, ...)`` whose device ``i``
    holds rows ``[i * B/n, (i+1) * B/n)`` (``n`` = mesh size).

    Raises:
      ValueError: when ``B`` is not divisible by the number of devices.
    """
    if getattr(array, "ndim", 0) < 1:
        raise ValueError(f"shard_batch expects an array with a batch axis, got {array!r}")
    n = mesh.devices.size
    if array.shape[0] % n:
        raise ValueError(
            f"batch size {array.shape[0]} is not divisible by the number of devices {n}; "
            f"use a batch size that is a multiple of {n}"
        )
    return jax.device_put(array, _batch_sharding(mesh))


def replicate_state(mesh: Mesh, state):
    """Copy a (single-device) state to every device of ``mesh``; shapes are unchanged."""
    return jax.device_put(state, _replicated(mesh))


@functools.lru_cache(maxsize=32)
def partitionable(model):
    """``model`` with a conv implementation GSPMD can partition (``"auto"`` -> ``"auto_xla"``).

    A model without a ``conv_impl`` field, or with any other implementation,
    is returned unchanged (an explicit ``"onednn"`` stays: it runs, gathered).
    Equal models give the *same* clone, so its ``apply`` (a static part of the
    train state, compared by identity) keeps the jitted steps' cache warm
    across runs.
    """
    if getattr(model, "conv_impl", None) == "auto":
        return model.clone(conv_impl="auto_xla")
    return model


@functools.cache
def _compiled(mesh: Mesh):
    replicated, batch = _replicated(mesh), _batch_sharding(mesh)
    train = jax.jit(
        train_step_body,
        in_shardings=(replicated, batch, batch),
        out_shardings=(replicated, replicated),
        donate_argnums=(0,),
    )
    evaluate = jax.jit(
        eval_step_body, in_shardings=(replicated, batch, batch), out_shardings=replicated
    )
    return train, evaluate


def _mesh_of(images) -> Mesh:
    sharding = getattr(images, "sharding", None)
    if not isinstance(sharding, NamedSharding):
        raise ValueError(
            "images must be placed on a mesh with shard_batch(mesh, images); got "
            f"{type(images).__name__} with sharding {sharding!r}"
        )
    return sharding.mesh


def _check_state_on(mesh: Mesh, state) -> None:
    devices = set(mesh.devices.flat)
    for leaf in jax.tree.leaves(state):
        sharding = getattr(leaf, "sharding", None)
        if sharding is None or sharding.device_set != devices:
            raise ValueError(
                f"the state must be replicated on the batch's mesh ({len(devices)} devices) "
                "with replicate_state(mesh, state); got a leaf on "
                f"{'no device' if sharding is None else f'{len(sharding.device_set)} device(s)'}"
            )


def sharded_train_step(state, images, labels):
    """One data-parallel update: ``jax.jit`` with explicit in/out shardings; the state is donated.

    Computes exactly what :func:`jaxcnn.train.train_step` computes on the
    global batch (up to float reordering), BatchNorm statistics included.

    Args:
      state: ``replicate_state(mesh, state)``; leaves keep their shapes.
      images: ``shard_batch(mesh, images)``: float32 (B, H, W, C), B divisible
        by the mesh size. The mesh is read from its sharding.
      labels: ``shard_batch(mesh, labels)``: int (B,).

    Returns:
      ``(state, {"loss", "accuracy", "label_errors"})``, the state replicated on the mesh and
      scalar metrics.
    """
    mesh = _mesh_of(images)
    _check_state_on(mesh, state)
    train, _ = _compiled(mesh)
    return train(state, images, labels)


def sharded_eval_step(state, images, labels):
    """Global-batch loss and accuracy in inference mode; arguments as :func:`sharded_train_step`."""
    mesh = _mesh_of(images)
    _check_state_on(mesh, state)
    _, evaluate = _compiled(mesh)
    return evaluate(state, images, labels)
