"""Per-example normalizations (group, layer, instance) and local response normalization.

Layout: ``x`` is ``(N, ..., C)`` with channels last (NLC, NHWC, NDHWC).
Unlike :func:`jaxcnn.functional.batch_norm.batch_norm` these use only each
example's own values, so they carry no state and behave the same in training
and inference. The affine parameters are per channel::

    params = {"scale": (C,), "bias": (C,)}    # or None: no affine transform

Statistics are computed in float32 even for bf16/f16 inputs; outputs keep
the input dtype. Variances are biased (divide by the count), as in PyTorch.
"""
from __future__ import annotations

import numpy as np
import jax.numpy as jnp
from jax import lax

from jaxcnn.functional.args import check_floating
from jaxcnn.functional.batch_norm import check_channel_dict

__all__ = ["group_norm", "layer_norm", "instance_norm", "local_response_norm"]


def _check_input(x, op: str, min_rank: int) -> None:
    if getattr(x, "ndim", 0) < min_rank:
        raise ValueError(
            f"{op}: expected input (N, ..., C) of rank >= {min_rank} with channels last, "
            f"got shape {getattr(x, 'shape', x)}"
        )
    check_floating(x, op)


def _check_eps(eps, op: str) -> None:
    if not eps > 0:
        raise ValueError(f"{op}: eps must be > 0, got {eps!r}")


def _grouped_normalize(x, params, num_groups: int, eps: float, op: str):
    """Normalize each (example, group of C/G channels) over its spatial positions and channels."""
    channels = x.shape[-1]
    if params is not None:
        check_channel_dict(params, ("scale", "bias"), channels, f"{op} params")
    compute_dtype = jnp.promote_types(x.dtype, jnp.float32)
    spatial = x.shape[1:-1]
    grouped = x.astype(compute_dtype).reshape(
        (x.shape[0],) + spatial + (num_groups, channels // num_groups)
    )
    # every axis but the batch axis and the group axis
    axes = tuple(range(1, grouped.ndim - 2)) + (grouped.ndim - 1,)
    mean = jnp.mean(grouped, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(grouped - mean), axis=axes, keepdims=True)
    y = ((grouped - mean) * lax.rsqrt(var + eps)).reshape(x.shape)
    if params is not None:
        y = y * params["scale"].astype(compute_dtype) + params["bias"].astype(compute_dtype)
    return y.astype(x.dtype)


def group_norm(x, params, num_groups: int, eps: float = 1e-5):
    """Group normalization (Wu & He 2018).

    Args:
      x: ``(N, ..., C)``, e.g. NHWC; ``C`` must be divisible by ``num_groups``.
      params: ``{"scale": (C,), "bias": (C,)}`` or ``None`` (no affine).
      num_groups: ``G``; channels ``[g*C/G, (g+1)*C/G)`` form group ``g``.
      eps: added to the variance.

    Returns ``y`` of ``x``'s shape and dtype: for each example and group, the
    values over all spatial positions and the group's ``C/G`` channels are
    shifted to mean 0 and scaled to variance 1 (biased), then
    ``y = y * scale + bias`` per channel. Equals ``torch.nn.GroupNorm``.
    ``G = 1`` is :func:`layer_norm`; ``G = C`` is :func:`instance_norm`.
    """
    _check_input(x, "group_norm", 2)
    _check_eps(eps, "group_norm")
    channels = x.shape[-1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
        raise ValueError(f"group_norm: num_groups must be a positive int, got {num_groups!r}")
    if channels % num_groups:
        raise ValueError(
            f"group_norm: num_groups={num_groups} must divide the {channels} channels"
        )
    return _grouped_normalize(x, params, num_groups, eps, "group_norm")


def layer_norm(x, params, eps: float = 1e-5):
    """Layer normalization over every non-batch axis, with a per-channel affine.

    Args:
      x: ``(N, ..., C)``, e.g. NHWC or ``(N, C)``.
      params: ``{"scale": (C,), "bias": (C,)}`` or ``None``.
      eps: added to the variance.

    Returns ``y`` of ``x``'s shape and dtype. Each example is normalized with
    the mean and (biased) variance of ALL its values (``H*W*C`` of them for
    NHWC), then scaled and shifted per channel -- the scale/bias are ``(C,)``,
    not ``(H, W, C)``, so the op works at any spatial size. This is
    ``torch.nn.GroupNorm(1, C)``; ``torch.nn.LayerNorm((C, H, W))`` normalizes
    the same way but learns a per-element affine. For ``(N, C)`` input it is
    the usual ``torch.nn.LayerNorm(C)``.
    """
    _check_input(x, "layer_norm", 2)
    _check_eps(eps, "layer_norm")
    return _grouped_normalize(x, params, 1, eps, "layer_norm")


def instance_norm(x, params, eps: float = 1e-5):
    """Instance normalization (Ulyanov et al. 2016): each (example, channel) over its spatial positions.

    Args:
      x: ``(N, ..., C)`` with at least one spatial axis, e.g. NHWC.
      params: ``{"scale": (C,), "bias": (C,)}`` or ``None``.
      eps: added to the variance.

    Returns ``y`` of ``x``'s shape and dtype. Equals
    ``torch.nn.functional.instance_norm`` (no running statistics).
    """
    _check_input(x, "instance_norm", 3)
    _check_eps(eps, "instance_norm")
    return _grouped_normalize(x, params, x.shape[-1], eps, "instance_norm")


def local_response_norm(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    """Local response normalization across channels, exactly as ``torch.nn.functional.local_response_norm``.

    Args:
      x: ``(N, ..., C)``, e.g. NHWC; channels last.
      size: ``n``, the number of neighbouring channels in each sum.
      alpha, beta, k: see below.

    Returns ``y`` of ``x``'s shape and dtype, with (PyTorch's definition)::

        y[..., c] = x[..., c] / (k + alpha / n * sum_{c'} x[..., c']**2) ** beta

    where ``c'`` runs over ``c - n//2 ... c + (n-1)//2`` clipped to
    ``[0, C)`` (an odd ``n`` is centred on ``c``). Note the ``alpha / n``:
    PyTorch (and this function) average the squares, while the AlexNet paper
    (Krizhevsky et al. 2012, Sec. 3.3) writes ``k + alpha * sum`` with no
    division. The paper's setting ``n=5, alpha=1e-4, beta=0.75, k=2`` is
    therefore ``local_response_norm(x, size=5, alpha=5e-4, beta=0.75, k=2.0)``
    here (``alpha = paper_alpha * n``). The defaults take ``n=5, beta=0.75,
    k=2`` from the paper and ``alpha=1e-4`` in PyTorch's convention (paper
    ``alpha = 2e-5``); note ``torch.nn.LocalResponseNorm`` defaults to ``k=1``.
    """
    _check_input(x, "local_response_norm", 2)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    compute_dtype = jnp.promote_types(x.dtype, jnp.float32)
    x32 = x.astype(compute_dtype)
    window = (1,) * (x.ndim - 1) + (size,)
    pads = ((0, 0),) * (x.ndim - 1) + ((size // 2, (size - 1) // 2),)
    sums = lax.reduce_window(
        jnp.square(x32), np.array(0, compute_dtype), lax.add, window, (1,) * x.ndim, pads
    )
    denominator = (k + (alpha / size) * sums) ** beta
    return (x32 / denominator).astype(x.dtype)
