"""``jaxcnn train --api nnx``: the training loop's steps run on the NNX front end.

The loop (:mod:`jaxcnn.train.loop`) keeps its data order, metrics, plateau
controller and checkpoints (one format for both APIs, so a run can resume
with the other ``--api``); this executor turns its single-device TrainState
into an NNX model (:func:`jaxcnn.nnx.from_linen_variables`) and an
``nnx.Optimizer`` holding the same optimizer state (``place``), runs
:func:`jaxcnn.nnx.train_step` / :func:`jaxcnn.nnx.eval_step` (or their sharded
versions over ``devices`` devices), and writes the NNX state back into a
TrainState for checkpoints (``to_host``).

Dropout: the model's ``nnx.Rngs`` stream is seeded with
``fold_in(state.dropout_key, state.step)`` when the state is placed, so a run
is reproducible, and a resumed run draws its masks from the step it resumed
at (for models without dropout -- LeNet-5, the ResNets -- resuming
reproduces the uninterrupted run).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxcnn.nnx.models import from_linen_variables, to_linen_variables
from jaxcnn.nnx.training import eval_step, replicate, sharded_eval_step, sharded_train_step, train_step
from jaxcnn.train import sharded


@dataclasses.dataclass
class NNXRun:
    """What the executor's steps carry: the NNX model and optimizer, and the TrainState they came from."""

    model: nnx.Module
    optimizer: nnx.Optimizer
    template: object  # the TrainState placed last: its structure, apply_fn and tx


def _optimizer_variables(optimizer: nnx.Optimizer) -> list[nnx.Variable]:
    return jax.tree.leaves(optimizer.opt_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


class NNXExecutor:
    """The loop's executor protocol (``place``, ``to_host``, ``checkpoint_state``, ``train_step``, ``eval_step``) on NNX.

    Args:
      config: the run's TrainConfig (``model``, ``model_kwargs``, ``devices``, ``parallel``).
      num_classes: the dataset's classes.
      image_shape: ``(H, W, C)`` of the dataset: the NNX model is built for it.
    """

    def __init__(self, config, num_classes: int, image_shape):
        if config.devices > 1 and config.parallel != "sharded":
            raise ValueError(
                f"--api nnx runs on several devices with parallel 'sharded' (jit over a mesh), "
                f"got parallel {config.parallel!r}; use --parallel sharded"
            )
        self.model_name, self.model_kwargs = config.model, dict(config.model_kwargs)
        # The linen model's choices, and on a mesh a convolution XLA can partition.
        conv_impl = config.conv_impl
        if config.devices > 1 and conv_impl == "auto":
            conv_impl = "auto_xla"
        self.model_kwargs.update(conv_impl=conv_impl, dtype=config.dtype)
        self.num_classes, self.image_shape = num_classes, tuple(image_shape)
        self.mesh = sharded.make_mesh(config.devices) if config.devices > 1 else None
        self.num_devices = config.devices
        self.description = (
            f"NNX front end, {config.devices} devices (nnx over jax.jit on a sharded mesh)"
            if self.mesh is not None else "NNX front end, 1 device (nnx.jit)"
        )

    def place(self, state) -> NNXRun:
        variables = {"params": state.params}
        if state.batch_stats:
            variables["batch_stats"] = state.batch_stats
        dropout_key = jax.random.fold_in(state.dropout_key, state.step)
        model = from_linen_variables(
            self.model_name,
            jax.tree.map(jnp.copy, variables),
            rngs=nnx.Rngs(params=0, dropout=dropout_key),
            input_shape=self.image_shape,
            num_classes=self.num_classes,
            **self.model_kwargs,
        )
        optimizer = nnx.Optimizer(model, state.tx, wrt=nnx.Param)
        # Same optax transformation, parameter trees with the same leaf order: the
        # loop's optimizer state maps leaf by leaf onto the NNX optimizer's.
        targets, values = _optimizer_variables(optimizer), jax.tree.leaves(state.opt_state)
        if len(targets) != len(values):
            raise ValueError(
                f"optimizer state mismatch: the NNX optimizer has {len(targets)} arrays, the "
                f"checkpointed state {len(values)}"
            )
        for variable, value in zip(targets, values):
            variable.set_value(jnp.asarray(value))
        optimizer.step.set_value(jnp.asarray(state.step, optimizer.step.dtype))
        if self.mesh is not None:
            replicate(self.mesh, model, optimizer)
        return NNXRun(model, optimizer, state)

    def to_host(self, run: NNXRun):
        device = jax.devices()[0]
        variables = jax.device_put(to_linen_variables(run.model), device)
        opt_state = jax.tree.unflatten(
            jax.tree.structure(run.template.opt_state),
            [jax.device_put(v[...], device) for v in _optimizer_variables(run.optimizer)],
        )
        step = jnp.asarray(jax.device_get(run.optimizer.step[...]), jnp.asarray(run.template.step).dtype)
        return run.template.replace(
            step=step,
            params=variables["params"],
            batch_stats=variables.get("batch_stats", run.template.batch_stats),
            opt_state=opt_state,
        )

    def checkpoint_state(self, run: NNXRun):
        return self.to_host(run)

    def train_step(self, run: NNXRun, images, labels):
        if self.mesh is None:
            return run, train_step(run.model, run.optimizer, images, labels)
        metrics = sharded_train_step(
            run.model, run.optimizer, sharded.shard_batch(self.mesh, images), sharded.shard_batch(self.mesh, labels)
        )
        return run, metrics

    def eval_step(self, run: NNXRun, images, labels):
        if self.mesh is None:
            return eval_step(run.model, images, labels)
        if len(labels) % self.mesh.devices.size:  # the last partial batch: replicated
            everywhere = NamedSharding(self.mesh, PartitionSpec())
            return eval_step(run.model, jax.device_put(images, everywhere), jax.device_put(labels, everywhere))
        return sharded_eval_step(
            run.model, sharded.shard_batch(self.mesh, images), sharded.shard_batch(self.mesh, labels)
        )
