"""Batch normalization with explicit running-statistics state, and folding it into a conv.

Layout: ``x`` is ``(N, ..., C)`` -- NLC, NHWC, NDHWC or a plain ``(N, C)``
batch of features. Statistics are per channel (the last axis), over every
other axis. Parameters and state are dicts of ``(C,)`` arrays::

    params = {"scale": (C,), "bias": (C,)}
    state  = {"mean": (C,), "var": (C,)}      # running statistics, float32

The state is threaded explicitly, ``y, state = batch_norm(x, params, state, train=...)``,
so the function stays pure and jit-able; see :func:`batch_norm`.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn.functional.args import check_floating
from jaxcnn.functional.layout_hints import channels_first_hint

__all__ = ["batch_norm", "batch_norm_init", "fold_batch_norm"]

_PARAM_KEYS = ("scale", "bias")
_STATE_KEYS = ("mean", "var")


def batch_norm_init(num_channels: int, dtype=jnp.float32):
    """Initial ``(params, state)`` for :func:`batch_norm` over ``num_channels`` channels.

    ``params = {"scale": ones (C,), "bias": zeros (C,)}`` (the identity affine map),
    ``state = {"mean": zeros (C,), "var": ones (C,)}`` (PyTorch's initial running stats).
    ``dtype`` applies to both; keep the state float32 (see :func:`batch_norm`).
    """
    if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
        raise ValueError(f"num_channels must be a positive int, got {num_channels!r}")
    params = {"scale": jnp.ones((num_channels,), dtype), "bias": jnp.zeros((num_channels,), dtype)}
    state = {"mean": jnp.zeros((num_channels,), dtype), "var": jnp.ones((num_channels,), dtype)}
    return params, state


def check_channel_dict(tree, keys, num_channels: int, what: str) -> None:
    """Raise unless ``tree`` is a dict with exactly ``keys``, each of shape ``(num_channels,)``.

    Shared by the normalization ops; the message names the expected channel count.
    """
    if not isinstance(tree, dict) or set(tree) != set(keys):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise ValueError(
            f"{what} must be a dict with keys {list(keys)} (each of shape ({num_channels},)), "
            f"got {found}"
        )
    for key in keys:
        shape = tuple(getattr(tree[key], "shape", ()))
        if shape != (num_channels,):
            raise ValueError(
                f'{what}["{key}"] must have shape ({num_channels},) to match the input\'s '
                f"{num_channels} channels, got shape {shape}"
            )


def _stats_dtype(dtype):
    """Statistics are kept in at least float32, even for bf16/f16 activations."""
    return jnp.promote_types(dtype, jnp.float32)


def _check_state_dtypes(state, stats_dtype) -> None:
    """Reject a state whose new value would have a different dtype.

    A state carried through ``lax.scan``/``fori_loop`` or a jitted training loop
    must keep its structure, shape and dtype from step to step, or the carry
    fails to type-check (or every step recompiles). The new statistics are
    ``stats_dtype``, so the incoming state must be too (NumPy float64 arrays
    count as float32 when x64 is disabled, as jit treats them).
    """
    for key in _STATE_KEYS:
        old = jax.dtypes.canonicalize_dtype(jnp.result_type(state[key]))
        if old != stats_dtype:
            raise ValueError(
                f'batch_norm: state["{key}"] has dtype {old}, but the updated running '
                f"statistics are {stats_dtype}; a new state whose dtype differs from the old "
                f"would break scan/jit carries. Keep the state in {stats_dtype} "
                "(batch_norm_init does)."
            )


def _psum(value, axis_name):
    try:
        return lax.psum(value, axis_name)
    except NameError as error:
        raise ValueError(
            f"batch_norm: axis_name={axis_name!r} is not bound here; call batch_norm inside "
            f"jax.pmap / shard_map / vmap with axis_name={axis_name!r}, or pass axis_name=None"
        ) from error


def _batch_moments(x32, mask, shift, axis_name):
    """Per-channel ``(mean, biased var, count)`` over all axes but the last.

    Without ``axis_name``: two passes (mean, then mean squared deviation),
    which is the numerically safest. With ``axis_name``: sums over the local
    shard of ``x - shift``, its square, and the count go through ONE ``psum``
    (one collective for both moments, and counts so unequal shards weigh
    right). ``shift`` (the running mean, identical on every device) keeps
    ``E[d^2] - E[d]^2`` from cancelling catastrophically when |mean| >> std.
    """
    reduce_axes = tuple(range(x32.ndim - 1))
    channels = x32.shape[-1]
    if mask is None:
        weights = None
        count = jnp.asarray(math.prod(x32.shape[:-1]), x32.dtype)
    else:
        per_position = math.prod(x32.shape[1:-1])
        weights = mask.astype(x32.dtype).reshape((-1,) + (1,) * (x32.ndim - 1))
        count = jnp.sum(weights) * per_position

    def total(values):
        return jnp.sum(values if weights is None else values * weights, axis=reduce_axes)

    if axis_name is None:
        mean = total(x32) / count
        var = total(jnp.square(x32 - mean)) / count
        return mean, var, count
    deviations = x32 - shift
    local = jnp.concatenate(
        [total(deviations), total(jnp.square(deviations)), jnp.reshape(count, (1,))]
    )
    reduced = _psum(local, axis_name)
    sum_d, sum_d2, count = reduced[:channels], reduced[channels:-1], reduced[-1]
    mean_d = sum_d / count
    var = jnp.maximum(sum_d2 / count - jnp.square(mean_d), 0.0)
    return mean_d + shift, var, count


def batch_norm(
    x,
    params,
    state,
    *,
    train: bool,
    momentum: float = 0.9,
    eps: float = 1e-5,
    axis_name=None,
    mask=None,
):
    """Batch normalization (Ioffe & Szegedy 2015) with explicit running statistics.

    Args:
      x: ``(N, ..., C)``: ``(N, C)``, NLC, NHWC or NDHWC; channels last.
      params: ``{"scale": (C,), "bias": (C,)}`` (gamma, beta).
      state: ``{"mean": (C,), "var": (C,)}`` running statistics, float32
        (float64 for float64 input under x64).
      train: True: normalize with this batch's statistics and update the
        running ones; False: normalize with the running statistics and
        return ``state`` unchanged (the same object).
      momentum: ``new = momentum * old + (1 - momentum) * batch`` (PyTorch's
        ``momentum=0.1`` is ``momentum=0.9`` here).
      eps: added to the variance before the square root.
      axis_name: a mapped axis name (``pmap``/``shard_map``/``vmap``); the
        statistics then cover the whole cross-device batch (one ``psum`` of
        sums, squared sums and counts). Ignored when ``train=False``.
      mask: optional ``(N,)`` bool, which examples are real (e.g. a padded last
        batch); masked-out examples are excluded from the statistics (but are
        still normalized). With ``axis_name`` the shards may hold different
        numbers of real examples. At least one example must be real.

    Returns:
      ``(y, new_state)``: ``y`` has ``x``'s shape and dtype; ``new_state`` has
      ``state``'s structure, shapes and dtypes.

    In training, with ``m`` the number of values per channel (``N*H*W`` for
    NHWC), ``y = scale * (x - mean_B) / sqrt(var_B + eps) + bias`` with the
    biased batch variance ``var_B``, while the running variance is updated
    with the UNBIASED ``var_B * m / (m - 1)`` (BN paper, Alg. 2; PyTorch does
    the same). Gradients flow through the batch statistics but not into the
    new state. Statistics are computed in float32 even for bf16/f16 input.
    """
    if not isinstance(train, bool):
        raise ValueError(f"batch_norm: train must be a Python bool, got {train!r}")
    if getattr(x, "ndim", 0) < 2:
        raise ValueError(
            f"batch_norm: expected input (N, ..., C) of rank >= 2 with channels last, "
            f"got shape {getattr(x, 'shape', x)}"
        )
    check_floating(x, "batch_norm")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm: momentum must be in [0, 1], got {momentum!r}")
    if not eps > 0:
        raise ValueError(f"batch_norm: eps must be > 0, got {eps!r}")
    channels = x.shape[-1]
    try:
        check_channel_dict(params, _PARAM_KEYS, channels, "batch_norm params")
    except ValueError as error:  # say so when the params fit a channels-first reading of x
        scale_shape = tuple(getattr(params.get("scale"), "shape", ())) if isinstance(params, dict) else ()
        hint = channels_first_hint(x.shape, scale_shape[0], x.ndim - 2) if len(scale_shape) == 1 else ""
        raise ValueError(f"{error}{hint}") from None
    check_channel_dict(state, _STATE_KEYS, channels, "batch_norm state")
    stats_dtype = _stats_dtype(x.dtype)
    _check_state_dtypes(state, stats_dtype)
    x32 = x.astype(stats_dtype)

    if not train:
        mean, var = state["mean"], state["var"]
        new_state = state
    else:
        if mask is not None and tuple(getattr(mask, "shape", ())) != (x.shape[0],):
            raise ValueError(
                f"batch_norm: mask must have shape ({x.shape[0]},), one flag per example, "
                f"got {getattr(mask, 'shape', mask)}"
            )
        if mask is None and axis_name is None and math.prod(x.shape[:-1]) < 2:
            raise ValueError(
                f"batch_norm: training needs more than 1 value per channel, got input "
                f"shape {x.shape}"
            )
        shift = lax.stop_gradient(state["mean"].astype(stats_dtype))
        mean, var, count = _batch_moments(x32, mask, shift, axis_name)
        # Unbiased for the running estimate; guard count <= 1 (only reachable
        # with masks or collectives, where the count is not static).
        unbiased = var * count / jnp.maximum(count - 1, 1)
        new_mean = momentum * state["mean"] + (1 - momentum) * lax.stop_gradient(mean)
        new_var = momentum * state["var"] + (1 - momentum) * lax.stop_gradient(unbiased)
        new_state = {"mean": new_mean.astype(stats_dtype), "var": new_var.astype(stats_dtype)}

    inv_std = lax.rsqrt(var.astype(stats_dtype) + eps)
    scale = params["scale"].astype(stats_dtype) * inv_std
    y = (x32 - mean.astype(stats_dtype)) * scale + params["bias"].astype(stats_dtype)
    return y.astype(x.dtype), new_state


def fold_batch_norm(w, b, params, state, eps: float = 1e-5):
    """Fold an inference-mode batch norm into the preceding conv (or dense) layer.

    For ``y = batch_norm(conv(x, w) + b, params, state, train=False)`` returns
    ``(w', b')`` with ``conv(x, w') + b' == y`` (up to float rounding)::

        factor = scale / sqrt(var + eps)           # (O,)
        w' = w * factor                            # scales each output channel
        b' = (b - mean) * factor + bias            # b = 0 when None

    Args:
      w: kernel with output channels last: HWIO ``(KH, KW, I, O)``, also KIO,
        DHWIO or a dense ``(I, O)``.
      b: ``(O,)`` or ``None``.
      params, state: the batch norm's ``{"scale","bias"}`` / ``{"mean","var"}``, each ``(O,)``.
      eps: the batch norm's eps.

    Returns ``(w', b')`` with ``w'`` of ``w``'s shape and ``b'`` of shape ``(O,)``.
    """
    if getattr(w, "ndim", 0) < 2:
        raise ValueError(
            f"fold_batch_norm: w must be a kernel with output channels last (e.g. HWIO), "
            f"got shape {getattr(w, 'shape', w)}"
        )
    out_channels = w.shape[-1]
    check_channel_dict(params, _PARAM_KEYS, out_channels, "fold_batch_norm params")
    check_channel_dict(state, _STATE_KEYS, out_channels, "fold_batch_norm state")
    if b is not None and tuple(getattr(b, "shape", ())) != (out_channels,):
        raise ValueError(
            f"fold_batch_norm: bias b must have shape ({out_channels},) to match the kernel's "
            f"{out_channels} output channels, got {getattr(b, 'shape', b)}"
        )
    if not eps > 0:
        raise ValueError(f"fold_batch_norm: eps must be > 0, got {eps!r}")
    factor = params["scale"] * lax.rsqrt(state["var"] + eps)
    bias = jnp.zeros((out_channels,), w.dtype) if b is None else b
    new_w = (w * factor).astype(w.dtype)
    new_b = ((bias - state["mean"]) * factor + params["bias"]).astype(w.dtype)
    return new_w, new_b

