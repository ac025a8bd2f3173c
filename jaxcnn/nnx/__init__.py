"""Flax NNX front end: jaxcnn's layers and model zoo as stateful ``nnx.Module`` s.

- layers (:mod:`jaxcnn.nnx.layers`, every :mod:`jaxcnn.nn` layer): ``Conv``, ``Dense``, ``BatchNorm``, ``Dropout``, ...
  built eagerly with ``rngs=nnx.Rngs(...)``, calling :mod:`jaxcnn.functional`;
- the model zoo (:mod:`jaxcnn.nnx.models`): ``models.get(name, num_classes=..., rngs=...)``
  for every registered model, with ``to_linen_variables`` / ``from_linen_variables``;
- training (:mod:`jaxcnn.nnx.training`): ``train_step(model, optimizer, images, labels)``
  under ``nnx.jit``, ``sharded_train_step`` over a device mesh, ``replicate``;
- checkpoints (:mod:`jaxcnn.nnx.checkpoint`): ``NNXCheckpointer`` (Orbax) of ``nnx.state``;
- ``jaxcnn train --api nnx`` (:mod:`jaxcnn.train.nnx_executor`, imported by the loop on demand).

The layers import only :mod:`jaxcnn.functional` (and :mod:`jaxcnn.nn`'s
shared checks and the conv default); the zoo, steps and executor sit on top
of :mod:`jaxcnn.models` and :mod:`jaxcnn.train`, as their NNX face.
"""
from jaxcnn.nnx import models
from jaxcnn.nnx.checkpoint import NNXCheckpointer
from jaxcnn.nnx.models import from_linen_variables, to_linen_variables
from jaxcnn.nnx.training import eval_step, replicate, sharded_eval_step, sharded_train_step, train_step
from jaxcnn.nnx.layers import (
    ELU,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    BatchNorm,
    ConnectionTableConv,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    LeakyReLU,
    LocallyConnected2D,
    LocalResponseNorm,
    LpPool,
    Maxout,
    MaxPool,
    ReLU,
    ScaledTanh,
    Sigmoid,
    Subsampling,
    Tanh,
    TiledConv2D,
)
