"""How train and eval steps run on the devices: one :class:`Executor` per strategy.

    executor = make_executor(config, model)      # OneDevice, Pmap or Sharded
    device_state = executor.place(state)         # single-device TrainState -> the executor's layout
    device_state, metrics = executor.train_step(device_state, images, labels)   # global NHWC batch
    metrics = executor.eval_step(device_state, images, labels)                  # any batch size
    state = executor.to_host(device_state)       # back to one device of this process (plateau, eval)
    saved = executor.checkpoint_state(device_state)  # what the Checkpointer writes (every process calls it)

Each strategy owns the variant of the model its steps need, made from the one
model the run built: pmap clones it with ``bn_axis_name="batch"`` (batch norm
over the global batch), sharded clones it with a convolution implementation
XLA's SPMD partitioner can split (:func:`jaxcnn.train.sharded.partitionable`).
``to_host`` always returns the state with the plain model's ``apply_fn``.

Several processes (:mod:`jaxcnn.train.distributed`): :class:`Sharded` spans
every process's first ``devices`` local devices. An executor may also offer
``batch_sharding`` and ``put_batch`` (where the loop puts each batch ahead of
its step) and ``local_rows(batch_size)`` (the rows of each global batch this
process reads); the loop falls back to the default device and the whole batch.
"""
from __future__ import annotations

from typing import Protocol

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxcnn.train import distributed, parallel, sharded, steps

__all__ = ["Executor", "OneDevice", "Pmap", "Sharded", "make_executor"]


class Executor(Protocol):
    """Runs the steps of a run on its devices (see the module docstring)."""

    description: str
    num_devices: int  # the global batch is split over this many devices

    def place(self, state):
        """A single-device TrainState -> the state in this executor's device layout."""

    def to_host(self, state):
        """The inverse of :meth:`place`: one device of this process, the plain model's ``apply_fn``."""

    def checkpoint_state(self, state):
        """The state as the Checkpointer saves it: one copy (global arrays across processes)."""

    def train_step(self, state, images, labels):
        """One update on a global batch: ``(state, {"loss", "accuracy"})``."""

    def eval_step(self, state, images, labels):
        """``{"loss", "accuracy"}`` of a batch of any size (a partial batch may run on one device)."""


def make_executor(config, model, *, num_classes: int | None = None, image_shape=None) -> Executor:
    """The executor for ``config.devices``, ``config.parallel`` and ``config.api``, running ``model``.

    ``config.api == "nnx"`` gives :class:`jaxcnn.train.nnx_executor.NNXExecutor`, which
    steps the same model as an NNX module built for ``image_shape`` (the
    dataset's ``(H, W, C)``) with ``num_classes`` outputs.

    ``config.devices`` "auto"/"all" is resolved first (:meth:`TrainConfig.resolved`);
    it counts the devices of each process. In a multi-process run
    (``jax.process_count() > 1``) the executor is always :class:`Sharded`.
    Raises ValueError when a process has fewer than ``config.devices`` devices,
    or for settings a multi-process run does not support.
    """
    config = config.resolved()
    if jax.process_count() > 1:
        _check_multiprocess(config)
        return Sharded(model, config.devices)
    if config.api == "nnx":
        from jaxcnn.train.nnx_executor import NNXExecutor

        _check_device_count(config)
        return NNXExecutor(config, num_classes, image_shape)
    if config.devices == 1:
        return OneDevice()
    _check_device_count(config)
    if config.parallel == "pmap":
        return Pmap(model, config.devices)
    return Sharded(model, config.devices)


def _check_multiprocess(config) -> None:
    processes = jax.process_count()
    unsupported = {"api": ("nnx", "--api linen"), "parallel": ("pmap", "--parallel sharded")}
    for field, (value, instead) in unsupported.items():
        if getattr(config, field) == value:
            raise ValueError(f"a run over {processes} processes uses jax.jit over a mesh of all "
                             f"their devices; {field} {value!r} runs in one process only, use {instead}")
    _check_device_count(config)
    global_devices = config.devices * processes
    for field in ("batch_size", "eval_batch_size"):
        size = getattr(config, field)
        if size % global_devices:
            raise ValueError(
                f"{field} {size} must be divisible by the devices of all processes "
                f"({processes} processes x {config.devices} devices = {global_devices})")


def _check_device_count(config) -> None:
    available = jax.local_device_count()
    if config.devices > available:
        raise ValueError(
            f"devices={config.devices} but JAX sees {available} device(s); on a CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={config.devices} (the jaxcnn "
            "command does that itself) or use fewer devices"
        )


class OneDevice:
    """``jax.jit`` on the default device: the state stays as it is."""

    description = "1 device (jax.jit)"
    num_devices = 1

    def __init__(self):
        # Looked up at construction (not import) time, so a patched step is seen.
        self.train_step, self.eval_step = steps.train_step, steps.eval_step

    def place(self, state):
        return state

    def to_host(self, state):
        return state

    def checkpoint_state(self, state):
        return state


class Pmap:
    """``jax.pmap`` over the first ``devices`` devices, with BatchNorm synchronised over the batch axis.

    Training uses ``model`` cloned with ``bn_axis_name="batch"`` (so batch
    statistics are global); single-device work uses ``model`` (the variables
    are the same).
    """

    def __init__(self, model, devices: int):
        self.devices, self.model_name = devices, type(model).__name__
        self.num_devices = devices
        self.description = f"{devices} devices (jax.pmap)"
        self.plain_apply = model.apply
        self.synced_apply = (model.clone(bn_axis_name=parallel.BATCH_AXIS).apply
                             if hasattr(model, "bn_axis_name") else None)

    def place(self, state):
        if self.synced_apply is None and state.batch_stats:
            raise ValueError(
                f"model {self.model_name} has batch norm but no bn_axis_name option, so under "
                "pmap each device would normalise with its own statistics; use parallel "
                '"sharded" (--parallel sharded)'
            )
        apply_fn = self.synced_apply or self.plain_apply
        return parallel.replicate(state.replace(apply_fn=apply_fn), self.devices)

    def to_host(self, state):
        return parallel.unreplicate(state).replace(apply_fn=self.plain_apply)

    def checkpoint_state(self, state):
        return self.to_host(state)

    def train_step(self, state, images, labels):
        return parallel.pmap_train_step(state, parallel.shard(images, self.devices),
                                        parallel.shard(labels, self.devices))

    def eval_step(self, state, images, labels):
        if len(labels) % self.devices:  # the last partial batch: one device
            return steps.eval_step(self.to_host(state), images, labels)
        return parallel.pmap_eval_step(state, parallel.shard(images, self.devices),
                                       parallel.shard(labels, self.devices))


class Sharded:
    """``jax.jit`` over a 1-D device mesh: replicated state, batch split along its first axis.

    The mesh holds the first ``devices`` local devices of every process
    (:func:`jaxcnn.train.sharded.make_global_mesh`; one process: just its
    own). With several processes each reads only :meth:`local_rows` of every
    global batch and :meth:`put_batch` assembles the global array from the
    processes' parts.

    The steps run ``sharded.partitionable(model)`` (``conv_impl="auto"`` ->
    ``"auto_xla"``): XLA cannot partition the oneDNN custom call and would
    gather the whole batch onto every device.
    """

    def __init__(self, model, devices: int):
        self.mesh = sharded.make_global_mesh(devices)
        self.num_devices = self.mesh.devices.size
        self.processes = jax.process_count()
        # Where the loop puts each batch ahead of its step: already split over the mesh.
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec(sharded.MESH_AXIS))
        self.description = f"{self.num_devices} devices (jax.jit over a sharded mesh)"
        if self.processes > 1:
            self.description = (f"{self.num_devices} devices in {self.processes} processes "
                                f"(jax.jit over a sharded mesh, jax.distributed)")
        self.plain_apply = model.apply
        self.sharded_apply = sharded.partitionable(model).apply

    def local_rows(self, batch_size: int) -> slice:
        """The rows of a global batch of ``batch_size`` that this process reads (all, when alone)."""
        return distributed.local_rows(self.batch_sharding, batch_size)

    def put_batch(self, batch):
        """This process's rows of a global batch (a pytree of arrays) -> the global arrays on the mesh."""
        if self.processes == 1:
            return jax.device_put(batch, self.batch_sharding)
        return jax.tree.map(
            lambda part: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(part)),
            batch)

    def place(self, state):
        state = state.replace(apply_fn=self.sharded_apply)
        if self.processes > 1:  # every process holds the same values: copy them from the host
            state = jax.device_get(state)
        return sharded.replicate_state(self.mesh, state)

    def to_host(self, state):
        # The copy on this process's first device of the mesh (the state is replicated).
        return jax.tree.map(lambda leaf: leaf.addressable_data(0), state).replace(
            apply_fn=self.plain_apply)

    def checkpoint_state(self, state):
        return state.replace(apply_fn=self.plain_apply)

    def train_step(self, state, images, labels):
        images, labels = self._global_batch(images, labels)
        return sharded.sharded_train_step(state, images, labels)

    def eval_step(self, state, images, labels):
        if len(labels) % self.num_devices:  # the last partial batch: one device of each process
            return steps.eval_step(self.to_host(state), images, labels)
        images, labels = self._global_batch(images, labels)
        return sharded.sharded_eval_step(state, images, labels)

    def _global_batch(self, images, labels):
        """A whole batch in every process (or the global arrays already) -> the global arrays."""
        if self.processes == 1 or _on_mesh(images, self.mesh):
            return sharded.shard_batch(self.mesh, images), sharded.shard_batch(self.mesh, labels)
        rows = self.local_rows(len(labels))
        return self.put_batch((images[rows], labels[rows]))


def _on_mesh(array, mesh) -> bool:
    sharding = getattr(array, "sharding", None)
    return isinstance(sharding, NamedSharding) and sharding.mesh == mesh
