"""The model zoo for Flax NNX: ``jaxcnn.nnx.models.get(name, num_classes=..., rngs=...)``.

Every registered model (``jaxcnn.models.names()``) is available, as an
``nnx.Module`` that behaves like any NNX model::

    model = jaxcnn.nnx.models.get("resnet20", num_classes=10, rngs=nnx.Rngs(0))
    model.train()                       # batch statistics, running stats updated, dropout on
    logits = model(images)              # (N, 32, 32, 3) -> (N, 10)
    model.eval()                        # running statistics, no dropout
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    nnx.state(model, nnx.BatchStat)     # the running statistics

Why a wrapper around the linen definitions rather than a second set of
architectures: the architectures are written once (``jaxcnn.models``), so
both front ends compute the same function by construction (same layers, same
``jaxcnn.functional`` calls, same parameter names and initialisation), and
every model -- 15 of them, including GoogLeNet's inception blocks and
LeNet-5's connection table -- is covered without a 1,000-line copy that would
drift. What makes it NNX rather than ``nnx.bridge.ToNNX`` (which fails in
training mode unless the user passes ``mutable=["batch_stats"]``):

- parameters are ``nnx.Param`` and running statistics ``nnx.BatchStat``, in
  nested dicts named as the linen variables (``model.params["conv1"]["kernel"]``,
  ``model.batch_stats["bn1"]["mean"]``), so ``nnx.state(model, nnx.Param)``,
  ``nnx.Optimizer(..., wrt=nnx.Param)``, ``nnx.grad`` and ``nnx.jit`` see them;
- ``model.train()`` / ``model.eval()`` set ``use_running_average`` and
  ``deterministic`` (the attributes NNX's own BatchNorm and Dropout use);
  in training mode a call updates the ``BatchStat`` values in place;
- dropout keys come from the module's ``nnx.Rngs`` (stream ``"dropout"``, which
  falls back to ``"default"``), advanced on each training call.

The wrapper's models start in training mode, as NNX's ``BatchNorm`` and
``Dropout`` do (``use_running_average=False``, ``deterministic=False``); call
``model.eval()`` before inference.

NNX builds eagerly, so a model is built for an input shape (default: the
registry's, ``jaxcnn.models.input_shape(name)``). Calling it on another
(H, W, C) works where the parameters do not depend on the size (the ResNets,
``lenet5_adaptive``: global or adaptive pooling before the classifier) and
raises ValueError naming both shapes otherwise (a flatten -> dense head).

Layering: this module sits on top of :mod:`jaxcnn.models` (the architectures)
and is the NNX face of them; :mod:`jaxcnn.nnx`'s layers import only
:mod:`jaxcnn.functional`.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen
from flax import nnx
from flax.core import unfreeze

from jaxcnn import models as linen_models

__all__ = ["LinenModel", "get", "names", "from_linen_variables", "to_linen_variables"]

_COLLECTIONS = {"params": nnx.Param, "batch_stats": nnx.BatchStat}


def names() -> list[str]:
    """The model names :func:`get` accepts: every name of ``jaxcnn.models.names()``."""
    return linen_models.names()


def _wrap(tree, variable_type):
    return {k: _wrap(v, variable_type) if isinstance(v, Mapping) else variable_type(v) for k, v in tree.items()}


def _unwrap(tree):
    return {k: _unwrap(v) if isinstance(v, Mapping) else v[...] for k, v in tree.items()}


def _assign(variables, values, path: str = "") -> None:
    """Set each Variable of the nested dict ``variables`` to the matching array of ``values``."""
    for key, variable in variables.items():
        value = values[key]
        if isinstance(variable, Mapping):
            _assign(variable, value, f"{path}/{key}")
        else:
            variable[...] = value


def _structure(tree) -> Any:
    return jax.tree.map(lambda leaf: (tuple(leaf.shape), jnp.dtype(leaf.dtype)), tree)


@functools.lru_cache(maxsize=64)
def _variable_shapes(module: linen.Module, input_shape: tuple[int, ...]):
    """Shapes and dtypes of ``module``'s variables when built for ``(1, *input_shape)`` (shape evaluation only)."""
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}
    shapes = jax.eval_shape(lambda x: module.init(keys, x, train=False), x)
    return _structure(unfreeze(shapes))


def _check_input_shape(input_shape) -> tuple[int, ...]:
    if (
        not isinstance(input_shape, Sequence)
        or isinstance(input_shape, str)
        or len(input_shape) < 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_shape)
    ):
        raise ValueError(
            f"input_shape must be the per-example shape without the batch axis, e.g. (32, 32, 3) "
            f"for NHWC images, got {input_shape!r}"
        )
    return tuple(input_shape)


class LinenModel(nnx.Module):
    """An NNX model computing a ``jaxcnn.models`` (linen) architecture; see the module docstring.

    Call: ``model(x)`` with ``x`` float ``(N, *input_shape)`` NHWC -> logits
    ``(N, num_classes)``; training mode (``model.train()``, the default) uses
    batch statistics, writes the running statistics and draws dropout keys
    from ``rngs``; ``model.eval()`` uses the running statistics and no dropout.

    Attributes:
      linen_module: the linen definition (static); ``summary`` reads it.
      input_shape: the per-example shape the model was built for, e.g. ``(32, 32, 3)``.
      params: nested dict of ``nnx.Param``, keyed as the linen ``params`` collection.
      batch_stats: nested dict of ``nnx.BatchStat`` (``{}`` for models without batch norm).
      rngs: the ``nnx.Rngs`` dropout keys are drawn from.
      use_running_average, deterministic: set by ``model.eval()`` (True) and
        ``model.train()`` (False); both must agree, since the linen definition
        has one ``train`` flag.
    """

    def __init__(
        self,
        linen_module: linen.Module,
        *,
        input_shape: Sequence[int],
        rngs: nnx.Rngs,
        variables: Mapping[str, Any] | None = None,
    ):
        if not isinstance(linen_module, linen.Module):
            raise ValueError(f"linen_module must be a flax.linen Module, got {type(linen_module).__name__}")
        if not isinstance(rngs, nnx.Rngs):
            raise ValueError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0)), got {type(rngs).__name__}")
        self.linen_module = linen_module
        self.input_shape = _check_input_shape(input_shape)
        expected = _variable_shapes(linen_module, self.input_shape)
        if variables is None:
            # linen's own init, so both front ends start from the same draws for the same key.
            keys = {"params": rngs.params(), "dropout": rngs.dropout()}
            variables = linen_module.init(keys, jnp.zeros((1, *self.input_shape), jnp.float32), train=False)
        else:
            unknown = sorted(set(variables) - set(_COLLECTIONS))
            if unknown or "params" not in variables:
                raise ValueError(
                    f"variables must be a linen variable dict with 'params' (and 'batch_stats' for "
                    f"models with batch norm), got collections {sorted(variables)}"
                )
            got = _structure(unfreeze({k: v for k, v in variables.items() if v}))
            want = {k: v for k, v in expected.items() if v}
            if got != want:
                raise ValueError(
                    f"variables do not match {type(linen_module).__name__} built for input "
                    f"{self.input_shape}: expected shapes {want}, got {got}"
                )
        self.params = nnx.data(_wrap(variables["params"], nnx.Param))
        self.batch_stats = nnx.data(_wrap(variables.get("batch_stats", {}), nnx.BatchStat))
        self.rngs = rngs
        self.use_running_average = False
        self.deterministic = False

    @property
    def training(self) -> bool:
        """True in training mode (``model.train()``), False after ``model.eval()``."""
        if self.use_running_average != self.deterministic:
            raise ValueError(
                "a jaxcnn NNX zoo model has one training flag: use_running_average and deterministic "
                f"must agree (got {self.use_running_average} and {self.deterministic}); use "
                "model.train() or model.eval()"
            )
        return not self.use_running_average

    def _check_call_shape(self, x) -> None:
        if getattr(x, "ndim", 0) != len(self.input_shape) + 1:
            raise ValueError(
                f"{type(self.linen_module).__name__} expects a batch (N, {', '.join(map(str, self.input_shape))}), "
                f"got shape {getattr(x, 'shape', x)}"
            )
        shape = tuple(x.shape[1:])
        if shape != self.input_shape:
            built = _variable_shapes(self.linen_module, self.input_shape)
            if _variable_shapes(self.linen_module, shape) != built:
                raise ValueError(
                    f"{type(self.linen_module).__name__} was built for input {self.input_shape} and "
                    f"called on {shape}: its parameters depend on the input size; build it with "
                    f"input_shape={shape}"
                )

    def __call__(self, x):
        """Logits ``(N, num_classes)`` of ``x`` ``(N, *input_shape)``; see the class docstring."""
        self._check_call_shape(x)
        variables = {"params": _unwrap(self.params)}
        if self.batch_stats:
            variables["batch_stats"] = _unwrap(self.batch_stats)
        if not self.training:
            return self.linen_module.apply(variables, x, train=False)
        logits, updates = self.linen_module.apply(
            variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": self.rngs.dropout()}
        )
        if self.batch_stats:
            _assign(self.batch_stats, updates["batch_stats"])
        return logits


def get(
    name: str,
    *,
    rngs: nnx.Rngs,
    input_shape: Sequence[int] | None = None,
    **kwargs,
) -> LinenModel:
    """The registered model ``name`` as an NNX module, initialised from ``rngs``.

    Args:
      name: one of :func:`names` (the registry of :mod:`jaxcnn.models`).
      rngs: ``nnx.Rngs``; ``params`` (or ``default``) draws the initial
        parameters (the same draws as ``linen_model.init({"params": key}, ...)``
        with that key), ``dropout`` (or ``default``) the dropout masks.
      input_shape: per-example ``(H, W, C)`` to build for; default
        ``jaxcnn.models.input_shape(name)``.
      **kwargs: the model's options, e.g. ``num_classes=10`` (as ``jaxcnn.models.get``).

    Raises ValueError for an unknown name or option (listing the valid ones).
    """
    module = linen_models.get(name, **kwargs)
    shape = linen_models.input_shape(name) if input_shape is None else input_shape
    return LinenModel(module, input_shape=shape, rngs=rngs)


def from_linen_variables(
    name_or_module: str | linen.Module,
    variables: Mapping[str, Any],
    *,
    rngs: nnx.Rngs | None = None,
    input_shape: Sequence[int] | None = None,
    **kwargs,
) -> LinenModel:
    """An NNX model holding the given linen variables (``{"params": ..., "batch_stats": ...}``).

    ``name_or_module``: a registry name (``kwargs`` are its options) or the
    linen module itself (then ``input_shape`` is required unless it is a
    registered model's default). ``rngs`` seeds the dropout stream (default
    ``nnx.Rngs(0)``). The arrays are used as given (not copied); the variable
    structure and shapes must be those of the model built for ``input_shape``,
    else ValueError showing both.
    """
    if isinstance(name_or_module, str):
        module = linen_models.get(name_or_module, **kwargs)
        shape = linen_models.input_shape(name_or_module) if input_shape is None else input_shape
    else:
        if kwargs:
            raise ValueError(f"options {sorted(kwargs)} apply to a model name, not to a linen module")
        if input_shape is None:
            raise ValueError("input_shape (H, W, C) is required with a linen module")
        module, shape = name_or_module, input_shape
    return LinenModel(
        module, input_shape=shape, rngs=nnx.Rngs(0) if rngs is None else rngs, variables=dict(variables)
    )


def to_linen_variables(model: LinenModel) -> dict:
    """The linen variable dict of ``model``: ``{"params": ..., "batch_stats": ...}`` (arrays, not copies).

    ``model.linen_module.apply(to_linen_variables(model), x, train=False)``
    equals ``model.eval(); model(x)``. ``batch_stats`` is omitted for models without batch norm.
    """
    if not isinstance(model, LinenModel):
        raise ValueError(f"expected a jaxcnn.nnx.models model, got {type(model).__name__}")
    variables = {"params": _unwrap(model.params)}
    if model.batch_stats:
        variables["batch_stats"] = _unwrap(model.batch_stats)
    return variables
