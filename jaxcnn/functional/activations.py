"""Elementwise nonlinearities, maxout, softmax and dropout.

Every function here keeps the shape and dtype of its input unless its docstring
says otherwise (``maxout`` shrinks the last axis). Layout does not matter for the
elementwise ones; ``maxout`` and the softmaxes act on the channel (last) axis, which
is ``C`` in NHWC / NLC / NDHWC and ``K`` for logits of shape (N, K).

Derivatives at the kinks follow PyTorch, so gradients can be compared one to one:
``relu'(0) = 0``, ``leaky_relu'(0) = alpha``, ``elu'(0) = alpha``.

Each public function validates its arguments in Python and hands the math to a
jitted private function (as ``jax.nn`` does), so an eager call compiles one fused
program instead of dispatching op by op; under an outer ``jit`` it is inlined.
"""
from __future__ import annotations

from functools import partial
from numbers import Real

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "relu",
    "leaky_relu",
    "elu",
    "sigmoid",
    "tanh",
    "maxout",
    "softmax",
    "log_softmax",
    "dropout",
]


def _check_static_number(value, name: str) -> float:
    # Hyperparameters are Python numbers fixed at trace time (static arguments of
    # the jitted cores); a traced array cannot be one, so reject it with a clear message.
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a Python float, got {value!r}")
    return float(value)


def relu(x: jax.Array) -> jax.Array:
    """Rectified linear unit ``max(x, 0)``, elementwise.

    Shapes: ``x`` any shape -> same shape and dtype. Derivative at 0 is 0.
    """
    return _relu(jnp.asarray(x))


@jax.jit
def _relu(x):
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def leaky_relu(x: jax.Array, alpha: float = 0.01) -> jax.Array:
    """``x`` for ``x > 0``, ``alpha * x`` otherwise, elementwise.

    Args:
      x: any shape; the output has the same shape and dtype.
      alpha: slope for non-positive inputs (a Python float; may be negative or > 1,
        as in PyTorch's ``negative_slope``). Derivative at 0 is ``alpha``.
    """
    alpha = _check_static_number(alpha, "alpha")
    return _leaky_relu(jnp.asarray(x), alpha)


@partial(jax.jit, static_argnums=1)
def _leaky_relu(x, alpha):
    return jnp.where(x > 0, x, alpha * x)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise.

    Args:
      x: any shape; the output has the same shape and dtype.
      alpha: saturation value for large negative inputs (output tends to ``-alpha``).
        Derivative at 0 is ``alpha``.
    """
    alpha = _check_static_number(alpha, "alpha")
    return _elu(jnp.asarray(x), alpha)


@partial(jax.jit, static_argnums=1)
def _elu(x, alpha):
    # exp is evaluated only on the non-positive part: on the unused branch of the
    # where, exp(large x) would overflow and its inf would turn the gradient into NaN.
    # (A where, not jnp.minimum, whose derivative at the tie x == 0 is 1/2.)
    negative_part = jnp.where(x > 0, jnp.zeros_like(x), x)
    return jnp.where(x > 0, x, alpha * jnp.expm1(negative_part))


def sigmoid(x: jax.Array) -> jax.Array:
    """Logistic function ``1 / (1 + exp(-x))``, elementwise; same shape and dtype.

    Evaluated with ``lax.logistic``, which does not overflow for large ``|x|``.
    Raises ValueError for an integer ``x`` (``lax.logistic`` needs floats).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        raise ValueError(f"sigmoid: x must be a floating-point array, got dtype {x.dtype}; "
                         "cast first, e.g. x.astype(jnp.float32)")
    return lax.logistic(x)


def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent, elementwise; same shape and dtype."""
    return jnp.tanh(jnp.asarray(x))


def maxout(x: jax.Array, num_pieces: int) -> jax.Array:
    """Maxout over contiguous groups of the last axis (Goodfellow et al. 2013).

    With ``k = num_pieces``, output channel ``j`` is the max of input channels
    ``j*k, j*k + 1, ..., j*k + k - 1``:

        y[..., j] = max(x[..., j*k : (j+1)*k])

    Shapes: ``x`` (..., C) -> (..., C // num_pieces); ``C`` must be divisible by
    ``num_pieces``. The preceding layer should therefore emit ``C_out * k`` channels
    laid out as ``C_out`` consecutive blocks of ``k`` pieces.

    Gradient: flows to the arg-max piece of each group; on exact ties it is split
    equally between the tied pieces (JAX's rule for ``max`` reductions).
    """
    if isinstance(num_pieces, bool) or not isinstance(num_pieces, int) or num_pieces < 1:
        raise ValueError(f"num_pieces must be an int >= 1, got {num_pieces!r}")
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"maxout needs an input with a channel (last) axis, got shape {x.shape}")
    channels = x.shape[-1]
    if channels % num_pieces != 0:
        raise ValueError(
            f"maxout: the last axis has {channels} channels, which num_pieces={num_pieces} "
            f"does not divide; expected a multiple of {num_pieces}"
        )
    return _maxout(x, num_pieces)


@partial(jax.jit, static_argnums=1)
def _maxout(x, num_pieces):
    grouped = x.reshape(*x.shape[:-1], x.shape[-1] // num_pieces, num_pieces)
    return jnp.max(grouped, axis=-1)


def _check_axis(x: jax.Array, axis: int) -> None:
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis must be an int in [{-x.ndim}, {x.ndim}), got {axis!r} for shape {x.shape}")


def log_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """``x - logsumexp(x)`` along ``axis``; same shape and dtype as ``x``.

    The max along ``axis`` is subtracted first, so large logits do not overflow.
    """
    x = jnp.asarray(x)
    _check_axis(x, axis)
    return _log_softmax(x, axis)


def _shift_by_max(x, axis):
    """``x - max(x)`` along ``axis``: exp of it cannot overflow. The shift cancels
    in (log-)softmax mathematically, so it needs no gradient of its own."""
    return x - lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))


@partial(jax.jit, static_argnums=1)
def _log_softmax(x, axis):
    shifted = _shift_by_max(x, axis)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """``exp(x) / sum(exp(x))`` along ``axis``; same shape and dtype, sums to 1 along ``axis``."""
    x = jnp.asarray(x)
    _check_axis(x, axis)
    return _softmax(x, axis)


@partial(jax.jit, static_argnums=1)
def _softmax(x, axis):
    unnormalized = jnp.exp(_shift_by_max(x, axis))
    return unnormalized / jnp.sum(unnormalized, axis=axis, keepdims=True)


def dropout(x: jax.Array, rate: float, *, key: jax.Array | None, train: bool) -> jax.Array:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest.

    Args:
      x: any shape, floating dtype; the output has the same shape and dtype.
      rate: the DROP probability (not the keep probability), a Python float in
        ``[0, 1)``. Kept elements are multiplied by ``1 / (1 - rate)`` so that the
        expected value of every element is unchanged and inference needs no rescaling.
      key: a ``jax.random`` key; required when ``train`` is True and ``rate > 0``.
        Each element gets an independent Bernoulli draw.
      train: when False (inference), or when ``rate == 0``, ``x`` is returned unchanged.

    Returns:
      ``where(keep, x / (1 - rate), 0)`` with ``keep ~ Bernoulli(1 - rate)`` elementwise.
    """
    if isinstance(rate, bool) or not isinstance(rate, Real) or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"dropout rate is the drop probability and must be a Python float in [0, 1), got {rate!r}"
        )
    if not isinstance(train, bool):
        raise ValueError(f"train must be a Python bool, got {train!r}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"dropout expects a floating-point input, got dtype {x.dtype}")
    rate = float(rate)
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError("dropout with train=True and rate > 0 needs a PRNG key (key=...), got None")
    keep_probability = jnp.float32(1.0 - rate)
    # The mask has its own jitted function: it does not depend on x, so gradients
    # and other dtypes reuse its compiled sampler (threefry is by far the slowest
    # part to compile). The probability is an array so every rate shares one program.
    keep = _keep_mask(key, keep_probability, x.shape)
    return _apply_keep_mask(x, keep, keep_probability)


@partial(jax.jit, static_argnums=2)
def _keep_mask(key, keep_probability, shape):
    return jax.random.bernoulli(key, keep_probability, shape)


@jax.jit
def _apply_keep_mask(x, keep, keep_probability):
    return jnp.where(keep, x / keep_probability.astype(x.dtype), jnp.zeros_like(x))
