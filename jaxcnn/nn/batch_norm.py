"""Batch normalization as a Flax module, with running statistics in ``batch_stats``."""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional.batch_norm import batch_norm

__all__ = ["BatchNorm"]


class BatchNorm(nn.Module):
    """Batch norm over the channel (last) axis; calls :func:`jaxcnn.functional.batch_norm.batch_norm`.

    Shapes: x ``(N, ..., C)`` (``(N, C)``, NLC, NHWC, NDHWC) -> same shape, and
    dtype ``dtype`` (None: ``x``'s). Statistics are computed in float32 whatever
    the input's dtype (mixed precision: bf16 activations, f32 statistics).

    Variables:
      ``params``: ``scale`` ``(C,)`` (gamma, ``scale_init``, ones by default --
      zeros to start a residual branch as the identity), ``bias`` ``(C,)`` (beta, zeros).
      ``batch_stats``: ``mean`` ``(C,)`` zeros and ``var`` ``(C,)`` ones, float32.

    ``module(x, train=False)`` normalizes with the running statistics.
    ``module(x, train=True)`` normalizes with this batch's statistics and writes
    ``new = momentum * old + (1 - momentum) * batch`` (unbiased variance) into
    ``batch_stats``, so apply it with ``mutable=["batch_stats"]``. ``init`` never
    updates the running statistics, whatever ``train`` is.

    ``axis_name``: the pmap / shard_map axis over which to average the batch
    statistics (one collective). Calling with ``train=True`` where that axis is
    not bound raises ValueError naming the axis (the functional op turns JAX's
    NameError into it). ``init`` skips the collective, as flax's BatchNorm
    does, so a model built for pmap can be initialised outside it.
    """

    summary_kind: ClassVar[str] = "norm"

    momentum: float = 0.9
    eps: float = 1e-5
    axis_name: str | None = None
    scale_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        if getattr(x, "ndim", 0) < 2:
            raise ValueError(
                f"BatchNorm expects (N, ..., C) input with channels last, got shape "
                f"{getattr(x, 'shape', x)}"
            )
        channels = x.shape[-1]
        params = {
            "scale": self.param("scale", self.scale_init, (channels,), self.param_dtype),
            "bias": self.param("bias", self.bias_init, (channels,), self.param_dtype),
        }
        # Running statistics stay float32 even for bf16 params (see functional batch_norm).
        mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32)
        var = self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32)
        # As in flax.linen.BatchNorm, init skips the collective, so a model built
        # for pmap can be initialised outside it.
        axis_name = None if self.is_initializing() else self.axis_name
        y, new_state = batch_norm(
            x,
            params,
            {"mean": mean.value, "var": var.value},
            train=train,
            momentum=self.momentum,
            eps=self.eps,
            axis_name=axis_name,
        )
        if train and not self.is_initializing():
            mean.value = new_state["mean"]
            var.value = new_state["var"]
        return y if self.dtype is None else y.astype(self.dtype)
