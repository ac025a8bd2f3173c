"""Data-parallel training with ``jax.pmap``: one replica of the state per device.

The global batch ``(B, ...)`` is split into ``(devices, B / devices, ...)`` by
:func:`shard`; each device runs the step on its shard; gradients and metrics
are averaged across devices with ``lax.pmean`` over the axis ``BATCH_AXIS``
(``"batch"``), so every replica applies the same update.

Batch norm must be synchronised too, or the update depends on the device
count: each BatchNorm has to compute its mean and variance over the global
batch. That is a property of the model, not of the step: its BatchNorm layers
need ``axis_name=BATCH_AXIS``. jaxcnn models with batch norm take it as the
field ``bn_axis_name`` (``models.get("resnet20", bn_axis_name=BATCH_AXIS)``, or
``model.clone(bn_axis_name=BATCH_AXIS)``); the variables do not depend on it, so
the usual recipe is::

    state = create_train_state(model, tx, key, sample)       # bn_axis_name=None
    synced = state.replace(apply_fn=model.clone(bn_axis_name=BATCH_AXIS).apply)
    replicated = replicate(synced)

A model with the axis name only trains inside ``pmap``; evaluation and
checkpoint restore on one device use the state with the plain model. A model
without batch norm needs nothing.

``jax.jit`` with ``NamedSharding`` (``sharded.py``) is the modern alternative
and needs no axis name in the model.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxcnn.train.steps import eval_step_body, train_step_body

BATCH_AXIS = "batch"


def _num_devices(num_devices: int | None) -> int:
    available = jax.local_device_count()
    if num_devices is None:
        return available
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or not (
        1 <= num_devices <= available
    ):
        raise ValueError(
            f"num_devices must be an int in [1, {available}] (local devices), got {num_devices!r}"
        )
    return num_devices


def replicate(tree, num_devices: int | None = None):
    """Copy every leaf of ``tree`` to each of the first ``num_devices`` local devices.

    Args:
      tree: a pytree of arrays (e.g. a TrainState); leaf shape ``S``.
      num_devices: default: all local devices.

    Returns:
      The same pytree with leaves of shape ``(num_devices, *S)``, one copy per
      device (the layout ``pmap`` expects for its replicated arguments).
    """
    devices = jax.local_devices()[: _num_devices(num_devices)]
    # Leading axis split over the devices: the layout pmap takes without copying.
    sharding = NamedSharding(Mesh(np.asarray(devices), ("devices",)), PartitionSpec("devices"))

    def copies(leaf):
        leaf = jnp.asarray(leaf)
        return jax.device_put(jnp.broadcast_to(leaf, (len(devices),) + leaf.shape), sharding)

    return jax.tree.map(copies, tree)


def unreplicate(tree):
    """The first replica of a replicated pytree: leaves ``(devices, *S)`` -> ``(*S)``.

    Use it before checkpointing or evaluating on one device. The result lives
    on one device (a plain single-device array per leaf).
    """

    def first(leaf):
        if getattr(leaf, "ndim", 0) == 0:
            raise ValueError(
                f"unreplicate expects leaves with a leading device axis, got a scalar {leaf!r}"
            )
        if isinstance(leaf, jax.Array) and len(leaf.addressable_shards) > 1:
            # Taking shard 0 avoids a cross-device gather of the whole array.
            shard = leaf.addressable_shards[0].data
            return shard[0] if shard.shape == leaf.shape else shard.reshape(leaf.shape[1:])
        return leaf[0]

    return jax.tree.map(first, tree)


def shard(array, num_devices: int | None = None):
    """Split the batch axis over devices: ``(B, ...)`` -> ``(num_devices, B // num_devices, ...)``.

    Args:
      array: a NumPy or JAX array whose leading axis is the global batch.
      num_devices: default: all local devices.

    Raises:
      ValueError: when ``B`` is not divisible by the device count.
    """
    n = _num_devices(num_devices)
    if getattr(array, "ndim", 0) < 1:
        raise ValueError(f"shard expects an array with a batch axis, got {array!r}")
    batch = array.shape[0]
    if batch % n:
        raise ValueError(
            f"batch size {batch} is not divisible by the number of devices {n}; "
            f"use a batch size that is a multiple of {n}"
        )
    return array.reshape((n, batch // n) + tuple(array.shape[1:]))


_pmap_train_step = jax.pmap(
    functools.partial(train_step_body, axis_name=BATCH_AXIS),
    axis_name=BATCH_AXIS,
    donate_argnums=(0,),
)
_pmap_eval_step = jax.pmap(
    functools.partial(eval_step_body, axis_name=BATCH_AXIS), axis_name=BATCH_AXIS
)


def _check_sharded(state, images, labels) -> None:
    devices = jax.tree.leaves(state.params)[0].shape[0] if jax.tree.leaves(state.params) else None
    for name, value in (("images", images), ("labels", labels)):
        if getattr(value, "ndim", 0) < 2:
            raise ValueError(
                f"{name} must be sharded to (devices, per_device_batch, ...) with shard(); "
                f"got shape {getattr(value, 'shape', value)}"
            )
    if devices is not None and images.shape[0] != devices:
        raise ValueError(
            f"the state is replicated on {devices} devices but images are sharded over "
            f"{images.shape[0]}; use replicate() and shard() with the same num_devices"
        )


def pmap_train_step(replicated_state, sharded_images, sharded_labels):
    """One data-parallel update under ``pmap`` (axis ``"batch"``); the state is donated.

    Equivalent to :func:`jaxcnn.train.train_step` on the global batch (up to
    float reordering) when the model's BatchNorm uses ``axis_name="batch"``:
    gradients and metrics are ``pmean``-averaged, and batch statistics are
    global. Each device folds its index into the dropout key.

    Args:
      replicated_state: ``replicate(state)``; leaves ``(devices, *S)``.
      sharded_images: ``shard(images)``: float32 ``(devices, B / devices, H, W, C)``.
      sharded_labels: ``shard(labels)``: int ``(devices, B / devices)``.

    Returns:
      ``(replicated_state, metrics)`` with metrics ``{"loss", "accuracy", "label_errors"}`` of
      shape ``(devices,)`` (identical entries: the global-batch means).
    """
    _check_sharded(replicated_state, sharded_images, sharded_labels)
    return _pmap_train_step(replicated_state, sharded_images, sharded_labels)


def pmap_eval_step(replicated_state, sharded_images, sharded_labels):
    """Global-batch loss and accuracy in inference mode under ``pmap``.

    Args and shapes as :func:`pmap_train_step`; returns ``{"loss", "accuracy", "label_errors"}``
    of shape ``(devices,)``, every entry the global mean.
    """
    _check_sharded(replicated_state, sharded_images, sharded_labels)
    return _pmap_eval_step(replicated_state, sharded_images, sharded_labels)
