"""The train state: parameters, batch-norm statistics, optimizer state, step, dropout key.

One pytree holds everything a step reads and writes, so a step is a pure
function ``(state, batch) -> (state, metrics)`` and a checkpoint of the state
is a checkpoint of the run (plus the epoch and data seed the loop keeps).
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
    """Flax's ``TrainState`` (``step``, ``apply_fn``, ``params``, ``tx``, ``opt_state``) plus:

    Attributes:
      batch_stats: the model's ``"batch_stats"`` collection (running means and
        variances of its BatchNorm layers); ``{}`` for models without BatchNorm.
      dropout_key: a raw ``uint32[2]`` PRNG key. The dropout rng of an update is
        ``fold_in(dropout_key, step)`` (see :meth:`dropout_rng`), so masks
        depend only on the key and the step: a resumed run draws the same masks
        as an uninterrupted one.
    """

    batch_stats: Any
    dropout_key: jax.Array

    def dropout_rng(self) -> jax.Array:
        """The dropout key for the update that is about to be applied (step ``self.step``)."""
        return jax.random.fold_in(self.dropout_key, self.step)

    def variables(self) -> dict:
        """``{"params": ..., "batch_stats": ...}`` for ``apply_fn`` (no batch_stats entry when empty)."""
        if self.batch_stats:
            return {"params": self.params, "batch_stats": self.batch_stats}
        return {"params": self.params}


def _raw_key(key) -> jax.Array:
    """Typed keys (``jax.random.key``) as raw uint32 data: checkpointable and pmap-replicable."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _init(model, params_key, init_dropout_key, x):
    return model.init({"params": params_key, "dropout": init_dropout_key}, x, train=False)


# Keyed on the (hashable) module, so creating a state twice compiles once.
_cached_init = jax.jit(_init, static_argnums=0)


def create_train_state(
    model: flax.linen.Module,
    tx: optax.GradientTransformation,
    key: jax.Array,
    sample_input: jax.Array,
) -> TrainState:
    """Initialise ``model`` on ``sample_input`` and wrap it with the optimizer ``tx``.

    The model is initialised with ``model.init({"params": k1, "dropout": k2},
    sample_input, train=False)`` under ``jax.jit`` (eager init of a deep net is
    slow), so it must accept a ``train`` keyword, like every jaxcnn model.

    Args:
      model: a Flax linen module, ``model.apply(vars, x, train=...)``.
      tx: an Optax transformation, e.g. from :func:`jaxcnn.train.make_optimizer`.
      key: a PRNG key (raw ``PRNGKey`` or typed ``jax.random.key``); split into
        the init keys and the run's dropout key.
      sample_input: an input batch of the shape the model will see, e.g.
        ``(1, H, W, C)`` float32 NHWC; only its shape and dtype matter.

    Returns:
      A :class:`TrainState` at step 0 with ``batch_stats`` = the model's
      ``"batch_stats"`` collection or ``{}``.
    """
    if not hasattr(sample_input, "shape") or len(sample_input.shape) < 2:
        raise ValueError(
            "sample_input must be a batch array such as (1, H, W, C) NHWC, "
            f"got {getattr(sample_input, 'shape', sample_input)!r}"
        )
    key = _raw_key(jnp.asarray(key) if not isinstance(key, jax.Array) else key)
    params_key, init_dropout_key, dropout_key = jax.random.split(key, 3)

    sample_input = jnp.asarray(sample_input)
    try:
        hash(model)
    except TypeError:  # a module with unhashable fields: compile for this call only
        variables = jax.jit(functools.partial(_init, model))(params_key, init_dropout_key, sample_input)
    else:
        variables = _cached_init(model, params_key, init_dropout_key, sample_input)
    variables = flax.core.unfreeze(variables)
    unknown = set(variables) - {"params", "batch_stats"}
    if unknown:
        raise ValueError(
            f"model has variable collections {sorted(unknown)}; TrainState keeps only "
            "'params' and 'batch_stats'"
        )
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=tx,
        batch_stats=variables.get("batch_stats", {}),
        dropout_key=dropout_key,
    )
    # An int32 array rather than Python's 0: the same pytree leaf type before
    # and after a step, so checkpoint templates and jit caches line up.
    return state.replace(step=jnp.asarray(0, jnp.int32))
