"""Batch-norm population statistics recomputed over training batches (Ioffe & Szegedy 2015, Alg. 2).

During training each batch-norm layer keeps an exponential running average of
its batch statistics. The slides' inference statistics are instead the
population estimates over the training mini-batches ``B`` of ``m`` values per
channel each (``m = N * H * W`` for an ``(N, H, W, C)`` input)::

    E[x]   = E_B[ mu_B ]
    Var[x] = m / (m - 1) * E_B[ sigma^2_B ]          (unbiased)

with ``mu_B`` / ``sigma^2_B`` the mean and (biased) variance of the layer's input
over the batch, the network running in training mode (every batch-norm layer
normalising with its own batch statistics). :func:`recompute_batch_stats`
computes them after training, with the final parameters, and writes them into
``state.batch_stats``; ``jaxcnn train --recompute-batch-stats N`` does it with N
training batches at the end of a run.
"""
from __future__ import annotations

from collections.abc import Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.nn import BatchNorm
from jaxcnn.train.state import TrainState

__all__ = ["batch_moments", "recompute_batch_stats"]


def _moments_of_every_batch_norm(state: TrainState, images):
    """``{path: (mean (C,), biased var (C,), m)}`` of every BatchNorm input, in training mode."""
    moments = {}

    def record(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, BatchNorm) and args:
            x32 = jnp.asarray(args[0]).astype(jnp.float32)
            axes = tuple(range(x32.ndim - 1))
            mean = jnp.mean(x32, axis=axes)
            var = jnp.mean(jnp.square(x32 - mean), axis=axes)
            moments.setdefault(tuple(module.path), []).append((mean, var, int(np.prod(x32.shape[:-1]))))
        return next_fun(*args, **kwargs)

    variables = {"params": state.params, "batch_stats": state.batch_stats}
    with nn.intercept_methods(record):
        state.apply_fn(variables, images, train=True, mutable=["batch_stats"],
                       rngs={"dropout": state.dropout_rng()})
    return moments


@jax.jit
def _batch_moments(state: TrainState, images):
    moments = _moments_of_every_batch_norm(state, images)
    # A layer called more than once per forward pass: its calls weigh equally.
    return {
        "/".join(path): (
            jnp.mean(jnp.stack([m for m, _, _ in calls]), axis=0),
            jnp.mean(jnp.stack([v * n / (n - 1) for _, v, n in calls]), axis=0),
        )
        for path, calls in moments.items()
    }


def batch_moments(state: TrainState, images) -> dict:
    """Per BatchNorm layer, the batch mean and the UNBIASED batch variance of its input.

    Args:
      state: a single-device :class:`TrainState` whose model contains
        :class:`jaxcnn.nn.BatchNorm` layers.
      images: float32 ``(B, H, W, C)``, normalised as for training.

    Returns:
      ``{"layer1_block1/bn1": (mean (C,), m / (m - 1) * sigma^2_B (C,)), ...}``,
      float32, keyed by the module path joined with ``/``; ``m`` is the number of
      values per channel (``B * H' * W'``), which must be >= 2.
    """
    return _batch_moments(state, jnp.asarray(images, jnp.float32))


def recompute_batch_stats(state: TrainState, batches: Iterable) -> TrainState:
    """``state`` with ``batch_stats`` replaced by the population statistics over ``batches``.

    ``mean = E_B[mu_B]`` and ``var = E_B[m / (m - 1) * sigma^2_B]`` per channel of
    every batch-norm layer (equal to ``m / (m - 1) * E_B[sigma^2_B]`` for
    equal-sized batches, as in Ioffe & Szegedy's Algorithm 2), each batch
    weighing the same: pass equal-sized batches (``drop_remainder=True``).
    The forward passes run in training mode with the state's parameters and
    its dropout rng; nothing else in the state changes.

    Args:
      state: a single-device :class:`TrainState` (``executor.to_host`` of a
        replicated one).
      batches: an iterable of float32 image batches ``(B, H, W, C)``
        (normalised, not augmented), or of ``(images, labels)`` pairs.

    Returns:
      A new :class:`TrainState`.

    Raises:
      ValueError: a state without batch-norm statistics, or no batches.
    """
    if not state.batch_stats:
        raise ValueError("recompute_batch_stats: the model has no batch-norm statistics (state.batch_stats is empty)")
    sums = None
    count = 0
    for batch in batches:
        images = batch[0] if isinstance(batch, tuple) else batch
        moments = batch_moments(state, images)
        sums = moments if sums is None else jax.tree.map(jnp.add, sums, moments)
        count += 1
    if count == 0:
        raise ValueError("recompute_batch_stats: got no batches")
    population = {path: (mean / count, var / count) for path, (mean, var) in sums.items()}

    def replace(path, leaf):
        keys = tuple(str(getattr(k, "key", k)) for k in path)
        layer, which = "/".join(keys[:-1]), keys[-1]
        if layer not in population:
            return leaf  # a BatchNorm the forward pass did not call keeps its statistics
        return population[layer][0 if which == "mean" else 1].astype(leaf.dtype)

    return state.replace(batch_stats=jax.tree_util.tree_map_with_path(replace, state.batch_stats))
