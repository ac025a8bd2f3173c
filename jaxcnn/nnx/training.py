"""Training NNX models: one step under ``nnx.jit``, and data-parallel over a device mesh.

``train_step(model, optimizer, images, labels) -> metrics`` updates ``model``
(parameters through ``optimizer``, an ``nnx.Optimizer(model, tx, wrt=nnx.Param)``,
and batch-norm running statistics) in place, as NNX steps do, and returns
``{"loss", "accuracy", "label_errors"}`` measured on the batch before the update: the mean
softmax cross-entropy of :mod:`jaxcnn.functional.losses` and the argmax
accuracy, as :func:`jaxcnn.train.train_step` reports them.

``sharded_train_step`` / ``sharded_eval_step`` are the same step compiled with
``jax.jit`` over a 1-D mesh (:func:`jaxcnn.train.make_mesh`): the model and
optimizer state replicated (:func:`replicate`), the batch split along its first
axis (:func:`jaxcnn.train.shard_batch`). XLA's SPMD partitioner all-reduces the
gradients, and batch norm's mean over the batch axis is a mean over the global
batch, so batch norm is synchronised across devices without an ``axis_name``
(as in :mod:`jaxcnn.train.sharded`). XLA cannot partition the oneDNN custom
call, so a model stepped here should convolve with ``impl="auto_xla"`` (zoo
models: ``conv_impl="auto_xla"``, as :func:`jaxcnn.train.sharded.partitionable`
chooses for linen); with oneDNN it still computes the same numbers, but XLA
gathers each convolution's batch onto every device.
"""
from __future__ import annotations

import functools

import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxcnn.functional.losses import classification_metrics
from jaxcnn.functional.args import check_batch

# The mesh axis of the batch, as in jaxcnn.train.sharded (make_mesh builds meshes with it).
MESH_AXIS = "batch"

__all__ = ["train_step", "eval_step", "sharded_train_step", "sharded_eval_step", "replicate"]


def _metrics(logits, labels) -> dict:
    # The same metrics as jaxcnn.train's steps (float32 loss, device-side label check).
    return classification_metrics(logits, labels)


def _train_body(model, optimizer, images, labels) -> dict:
    check_batch(images, labels)

    def loss_fn(model):
        metrics = _metrics(model(images), labels)
        return metrics["loss"], metrics

    (_, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return metrics


def _eval_body(model, images, labels) -> dict:
    check_batch(images, labels)
    return _metrics(model(images), labels)


_train_jit = nnx.jit(_train_body)
_eval_jit = nnx.jit(_eval_body)


def train_step(model: nnx.Module, optimizer: nnx.Optimizer, images, labels) -> dict:
    """One optimizer update of ``model`` on a batch, compiled with ``nnx.jit``; updates in place.

    Puts ``model`` in training mode (``model.train()``: batch statistics,
    running statistics updated, dropout on, keys from the model's
    ``nnx.Rngs``), takes the gradient of the mean cross-entropy with respect to
    the ``nnx.Param`` s and applies ``optimizer`` (``nnx.Optimizer(model, tx,
    wrt=nnx.Param)``).

    Args:
      model: an NNX model mapping images to logits, e.g. from :func:`jaxcnn.nnx.models.get`.
      optimizer: ``nnx.Optimizer`` built on ``model``.
      images: float32 ``(B, H, W, C)``, normalised.
      labels: int ``(B,)`` class indices.

    Returns:
      ``{"loss": float32[], "accuracy": float32[]}`` of the batch before the update.
    """
    model.train()
    return _train_jit(model, optimizer, images, labels)


def eval_step(model: nnx.Module, images, labels) -> dict:
    """Loss and accuracy in evaluation mode (``model.eval()``: running statistics, no dropout); ``nnx.jit``.

    Shapes as :func:`train_step`; the model's state is not changed (its mode is left at eval).
    """
    model.eval()
    return _eval_jit(model, images, labels)


def _replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def replicate(mesh: Mesh, *nodes) -> None:
    """Place the state of each NNX object (model, optimizer) on every device of ``mesh``, in place."""
    for node in nodes:
        nnx.update(node, jax.device_put(nnx.state(node), _replicated(mesh)))


@functools.lru_cache(maxsize=16)
def _sharded_programs(mesh: Mesh):
    replicated, batch = _replicated(mesh), NamedSharding(mesh, PartitionSpec(MESH_AXIS))

    def train(graphdef, state, images, labels):
        model, optimizer = nnx.merge(graphdef, state)
        metrics = _train_body(model, optimizer, images, labels)
        return nnx.state((model, optimizer)), metrics

    def evaluate(graphdef, state, images, labels):
        return _eval_body(nnx.merge(graphdef, state), images, labels)

    train = jax.jit(
        train,
        static_argnums=0,
        in_shardings=(replicated, batch, batch),
        out_shardings=(replicated, replicated),
        donate_argnums=1,
    )
    evaluate = jax.jit(evaluate, static_argnums=0, in_shardings=(replicated, batch, batch), out_shardings=replicated)
    return train, evaluate


def _mesh_of(images) -> Mesh:
    sharding = getattr(images, "sharding", None)
    if not isinstance(sharding, NamedSharding):
        raise ValueError(
            "images must be placed on a mesh with jaxcnn.train.shard_batch(mesh, images); got "
            f"{type(images).__name__} with sharding {sharding!r}"
        )
    return sharding.mesh


def _check_on(mesh: Mesh, state) -> None:
    devices = set(mesh.devices.flat)
    for leaf in jax.tree.leaves(state):
        sharding = getattr(leaf, "sharding", None)
        if sharding is None or sharding.device_set != devices:
            raise ValueError(
                f"the model and optimizer must be replicated on the batch's mesh ({len(devices)} devices) "
                "with jaxcnn.nnx.replicate(mesh, model, optimizer); got a leaf on "
                f"{'no device' if sharding is None else f'{len(sharding.device_set)} device(s)'}"
            )


def sharded_train_step(model: nnx.Module, optimizer: nnx.Optimizer, images, labels) -> dict:
    """:func:`train_step` on a global batch split over a mesh; updates ``model`` and ``optimizer`` in place.

    Computes what :func:`train_step` computes on the whole batch on one device
    (up to float reordering), batch-norm statistics included.

    Args:
      model, optimizer: replicated with :func:`replicate` ``(mesh, model, optimizer)``.
      images: ``jaxcnn.train.shard_batch(mesh, images)``: float32 ``(B, H, W, C)``,
        ``B`` divisible by the mesh size; the mesh is read from its sharding.
      labels: ``shard_batch(mesh, labels)``: int ``(B,)``.

    Returns:
      ``{"loss", "accuracy", "label_errors"}`` over the global batch (replicated scalars).
    """
    mesh = _mesh_of(images)
    model.train()
    graphdef, state = nnx.split((model, optimizer))
    _check_on(mesh, state)
    train, _ = _sharded_programs(mesh)
    new_state, metrics = train(graphdef, state, images, labels)
    nnx.update((model, optimizer), new_state)
    return metrics


def sharded_eval_step(model: nnx.Module, images, labels) -> dict:
    """:func:`eval_step` on a batch split over a mesh; arguments as :func:`sharded_train_step`."""
    mesh = _mesh_of(images)
    model.eval()
    graphdef, state = nnx.split(model)
    _check_on(mesh, state)
    _, evaluate = _sharded_programs(mesh)
    return evaluate(graphdef, state, images, labels)
