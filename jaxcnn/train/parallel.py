"""Data-parallel training with ``jax.pmap``: one replica of the state per device.

The global batch ``(B, ...)`` is split into ``(devices, B / devices, ...)`` by
:func:`shard`; each device runs the step on its shard; gradients and metrics
are averaged across devices with ``lax.pmean`` over the axis ``BATCH_AXIS``
(``"batch"``), so every replica applies the same update.

Batch norm is synchronised too, or the update would depend on the device
count: each BatchNorm must compute its mean and variance over the global
batch, i.e. with ``axis_name=BATCH_AXIS``. That is a property of the model;
jaxcnn models with batch norm take it as the field ``bn_axis_name``.
:func:`pmap_train_step` sets it by itself (:func:`synchronize_batch_norm`):
a state built from plain ``models.get(name)`` trains with global statistics,
and the state it returns keeps the caller's ``apply_fn``, so evaluation and
checkpoints on one device work unchanged. A model with batch statistics but no
``bn_axis_name`` field is refused with a ValueError rather than trained with
per-device statistics.

``jax.jit`` with ``NamedSharding`` (``sharded.py``) is the modern alternative
and needs no axis name in the model.
"""
from __future__ import annotations

import functools

import flax.linen as nn
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


@functools.lru_cache(maxsize=64)
def _synchronized_apply(apply_fn, axis_name: str):
    """``apply_fn``'s module rebuilt with ``bn_axis_name=axis_name``; cached, so that the
    step's static ``apply_fn`` (part of pmap's cache key) is the same object every call."""
    return apply_fn.__self__.clone(bn_axis_name=axis_name).apply


def synchronize_batch_norm(state, axis_name: str = BATCH_AXIS):
    """``state`` with an ``apply_fn`` whose batch norm averages statistics over ``axis_name``.

    A state without batch statistics is returned as it is. Otherwise
    ``state.apply_fn`` must be the ``apply`` of a Flax module with a
    ``bn_axis_name`` field (every jaxcnn model with batch norm has one): when
    it is None the module is cloned with ``bn_axis_name=axis_name`` (the
    variables do not depend on it); when it is already ``axis_name`` nothing
    changes.

    Raises:
      ValueError: the state has batch statistics and its model has no
        ``bn_axis_name`` field, or one set to another axis: under ``pmap``
        each device would normalise with its own statistics.
    """
    if not state.batch_stats:
        return state
    module = getattr(state.apply_fn, "__self__", None)
    if not isinstance(module, nn.Module) or not hasattr(module, "bn_axis_name"):
        what = type(module).__name__ if isinstance(module, nn.Module) else repr(state.apply_fn)
        raise ValueError(
            f"the state's model ({what}) has batch norm but no bn_axis_name field, so under pmap "
            "each device would normalise with its own batch statistics; give the model a "
            f"bn_axis_name field passed to its BatchNorm layers' axis_name, or use "
            "sharded_train_step (jit + NamedSharding), which needs no axis name"
        )
    if module.bn_axis_name == axis_name:
        return state
    if module.bn_axis_name is not None:
        raise ValueError(
            f"the state's model has bn_axis_name={module.bn_axis_name!r}, but pmap's axis is "
            f"{axis_name!r}; build it with bn_axis_name=None or {axis_name!r}"
        )
    return state.replace(apply_fn=_synchronized_apply(state.apply_fn, axis_name))


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
    float reordering): gradients and metrics are ``pmean``-averaged, and batch
    statistics are global (:func:`synchronize_batch_norm` is applied for the
    step; the returned state keeps the ``apply_fn`` it was given). Each device
    folds its index into the dropout key.

    Args:
      replicated_state: ``replicate(state)``; leaves ``(devices, *S)``.
      sharded_images: ``shard(images)``: float32 ``(devices, B / devices, H, W, C)``.
      sharded_labels: ``shard(labels)``: int ``(devices, B / devices)``.

    Returns:
      ``(replicated_state, metrics)`` with metrics ``{"loss", "accuracy", "label_errors"}`` of
      shape ``(devices,)`` (identical entries: the global-batch means).

    Raises:
      ValueError: unsharded or mismatched inputs; a model with batch norm that
        cannot be synchronised (see :func:`synchronize_batch_norm`).
    """
    _check_sharded(replicated_state, sharded_images, sharded_labels)
    synced = synchronize_batch_norm(replicated_state)
    new_state, metrics = _pmap_train_step(synced, sharded_images, sharded_labels)
    return new_state.replace(apply_fn=replicated_state.apply_fn), metrics


def pmap_eval_step(replicated_state, sharded_images, sharded_labels):
    """Global-batch loss and accuracy in inference mode under ``pmap``.

    Args and shapes as :func:`pmap_train_step`; returns ``{"loss", "accuracy", "label_errors"}``
    of shape ``(devices,)``, every entry the global mean.
    """
    _check_sharded(replicated_state, sharded_images, sharded_labels)
    return _pmap_eval_step(replicated_state, sharded_images, sharded_labels)
