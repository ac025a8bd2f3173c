"""jaxcnn's layers as Flax NNX modules, calling :mod:`jaxcnn.functional` (the math lives there).

NNX conventions: built eagerly, so layers with weights take their input size
(``Conv(in_features, out_features, kernel_size, rngs=nnx.Rngs(0))``,
``Dense(in_features, out_features, rngs=...)``, ``BatchNorm(num_features, rngs=...)``);
parameters are ``nnx.Param``, batch-norm running statistics ``nnx.BatchStat``;
``model.train()`` / ``model.eval()`` switch ``BatchNorm.use_running_average``
and ``Dropout.deterministic`` (both start False, as in ``flax.nnx``); dropout
keys come from the layer's ``rngs``.

Precision: ``param_dtype`` is the dtype parameters are stored in; ``dtype``
(default None: the input's) is the compute dtype input and parameters are cast
to before the op. Batch-norm statistics are computed and kept in float32
whatever ``dtype`` is (:func:`jaxcnn.functional.batch_norm.batch_norm`).
``Conv.impl`` picks the convolution implementation (default
:data:`jaxcnn.functional.conv.DEFAULT_CONV_IMPL`, ``"auto"``).

Initial values use the same initializers as :mod:`jaxcnn.nn` (conv He normal,
dense LeCun normal, biases zeros, BN scale ones), and the layers take the
same parameter shapes and names, so ``kernel``/``bias``/``scale`` arrays move
between the front ends unchanged; the summary protocol's ``summary_kind``
class variables are set too.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import jax.numpy as jnp
from flax import nnx

from jaxcnn.functional import activations as act_ops
from jaxcnn.functional import conv as conv_ops
from jaxcnn.functional.args import ACTIVATION_LAYOUTS, as_tuple
from jaxcnn.functional.batch_norm import batch_norm
from jaxcnn.functional.init import he_normal, lecun_normal, ones, zeros
from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.nn.conv import _check_groups

__all__ = [
    "Conv", "Dense", "Flatten", "BatchNorm", "Dropout",
    "MaxPool", "AvgPool", "LpPool", "GlobalAvgPool", "GlobalMaxPool", "AdaptiveAvgPool", "AdaptiveMaxPool",
    "Subsampling", "GroupNorm", "LayerNorm", "InstanceNorm", "LocalResponseNorm",
    "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "ScaledTanh", "Maxout",
    "LocallyConnected2D", "TiledConv2D", "ConnectionTableConv",
]

_CONV_BY_NDIM = {1: conv_ops.conv1d, 2: conv_ops.conv2d, 3: conv_ops.conv3d}


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _cast(dtype, *arrays):
    return arrays if dtype is None else tuple(None if a is None else jnp.asarray(a, dtype) for a in arrays)


def _check_rngs(rngs) -> nnx.Rngs:
    if not isinstance(rngs, nnx.Rngs):
        raise ValueError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0)), got {type(rngs).__name__}")
    return rngs


class Conv(nnx.Module):
    """N-d convolution ``y = conv(x, kernel) + bias``; :func:`jaxcnn.functional.conv.conv2d` (1-D/3-D too).

    Shapes: x ``(N, *spatial, in_features)`` (NLC / NHWC / NDHWC, picked by
    ``len(kernel_size)``; an int ``kernel_size`` means 2-D); ``kernel``
    ``(*kernel_size, in_features // groups, out_features)``, ``bias``
    ``(out_features,)``; output ``(N, *spatial', out_features)`` with
    ``out = floor((size + P_lo + P_hi - dilation * (K - 1) - 1) / stride) + 1``.
    Arguments as :class:`jaxcnn.nn.Conv` (``stride``, ``padding``, ``dilation``,
    ``groups``, ``use_bias``, ``impl``, ``kernel_init``, ``bias_init``,
    ``param_dtype``) plus ``dtype`` (compute dtype).
    """

    summary_kind: ClassVar[str] = "conv"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: int | str | Sequence = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        use_bias: bool = True,
        impl: str = DEFAULT_CONV_IMPL,
        kernel_init: Callable = he_normal,
        bias_init: Callable = zeros,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        _check_rngs(rngs)
        _positive_int(in_features, "in_features")
        _positive_int(out_features, "out_features")
        ndim = 2 if isinstance(kernel_size, int) else len(kernel_size)
        if ndim not in _CONV_BY_NDIM:
            raise ValueError(f"kernel_size must be an int or 1, 2 or 3 ints, got {kernel_size!r}")
        self.kernel_size = as_tuple(kernel_size, ndim, "kernel_size")
        _check_groups(groups, in_features, out_features)
        self.in_features, self.out_features = in_features, out_features
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.impl, self.dtype, self.param_dtype = impl, dtype, param_dtype
        shape = (*self.kernel_size, in_features // groups, out_features)
        self.kernel = nnx.Param(kernel_init(rngs.params(), shape, param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else None

    def __call__(self, x):
        ndim = len(self.kernel_size)
        if getattr(x, "ndim", None) != ndim + 2 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Conv expects {ACTIVATION_LAYOUTS[ndim]} input with {self.in_features} channels, "
                f"got shape {getattr(x, 'shape', x)}"
            )
        bias = None if self.bias is None else self.bias[...]
        x, kernel, bias = _cast(self.dtype, x, self.kernel[...], bias)
        return _CONV_BY_NDIM[ndim](
            x,
            kernel,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            impl=self.impl,
        )


class Dense(nnx.Module):
    """Fully connected ``y = x @ kernel + bias``: ``(..., in_features) -> (..., out_features)``.

    ``kernel`` ``(in_features, out_features)`` LeCun normal, ``bias`` ``(out_features,)`` zeros.
    """

    summary_kind: ClassVar[str] = "dense"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        kernel_init: Callable = lecun_normal,
        bias_init: Callable = zeros,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        _check_rngs(rngs)
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        self.dtype, self.param_dtype = dtype, param_dtype
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features), param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else None

    def __call__(self, x):
        if getattr(x, "ndim", 0) < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Dense expects (..., {self.in_features}) input, got shape {getattr(x, 'shape', x)}"
            )
        bias = None if self.bias is None else self.bias[...]
        x, kernel, bias = _cast(self.dtype, x, self.kernel[...], bias)
        y = jnp.dot(x, kernel)
        return y if bias is None else y + bias


class Flatten(nnx.Module):
    """``(N, d1, ..., dk) -> (N, d1 * ... * dk)``, row-major (NHWC: h, then w, then c)."""

    summary_kind: ClassVar[str] = "flatten"

    def __call__(self, x):
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"Flatten expects a batch axis, got shape {getattr(x, 'shape', x)}")
        return jnp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))


class BatchNorm(nnx.Module):
    """Batch norm over the channel (last) axis; :func:`jaxcnn.functional.batch_norm.batch_norm`.

    Shapes: x ``(N, ..., num_features)`` -> same shape. Params ``scale``
    (ones; pass ``scale_init=zeros`` to start a residual branch at the
    identity) and ``bias`` (zeros), ``(num_features,)``; ``nnx.BatchStat``
    ``mean`` (zeros) and ``var`` (ones), float32.

    ``use_running_average=False`` (``model.train()``, the default): normalise
    with this batch's statistics and set ``mean``/``var`` to
    ``momentum * old + (1 - momentum) * batch`` (unbiased variance).
    ``use_running_average=True`` (``model.eval()``): normalise with the running
    statistics, which are not changed. ``axis_name``: a pmap / shard_map axis
    to average the batch statistics over (not needed under jit + sharding).
    """

    summary_kind: ClassVar[str] = "norm"

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.9,
        eps: float = 1e-5,
        axis_name: str | None = None,
        use_running_average: bool = False,
        scale_init: Callable = ones,
        bias_init: Callable = zeros,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        _check_rngs(rngs)
        self.num_features = _positive_int(num_features, "num_features")
        self.momentum, self.eps, self.axis_name = momentum, eps, axis_name
        self.use_running_average = use_running_average
        self.dtype, self.param_dtype = dtype, param_dtype
        self.scale = nnx.Param(scale_init(rngs.params(), (num_features,), param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (num_features,), param_dtype))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))

    def __call__(self, x):
        if getattr(x, "ndim", 0) < 2 or x.shape[-1] != self.num_features:
            raise ValueError(
                f"BatchNorm expects (N, ..., {self.num_features}) input with channels last, got shape "
                f"{getattr(x, 'shape', x)}"
            )
        train = not self.use_running_average
        (x,) = _cast(self.dtype, x)
        y, new_state = batch_norm(
            x,
            {"scale": self.scale[...], "bias": self.bias[...]},
            {"mean": self.mean[...], "var": self.var[...]},
            train=train,
            momentum=self.momentum,
            eps=self.eps,
            axis_name=self.axis_name,
        )
        if train:
            self.mean[...] = new_state["mean"]
            self.var[...] = new_state["var"]
        return y


class Dropout(nnx.Module):
    """Inverted dropout with DROP probability ``rate``; :func:`jaxcnn.functional.activations.dropout`.

    ``deterministic=False`` (``model.train()``, the default): zero each
    element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``,
    with a key drawn from ``rngs`` (stream ``"dropout"``, else ``"default"``);
    ``deterministic=True`` (``model.eval()``): the identity. Shape and dtype kept.
    """

    summary_kind: ClassVar[str] = "dropout"

    def __init__(self, rate: float, *, deterministic: bool = False, rngs: nnx.Rngs):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"rate is the drop probability, in [0, 1); got {rate!r}")
        self.rate = float(rate)
        self.deterministic = deterministic
        self.rngs = _check_rngs(rngs)

    def __call__(self, x):
        train = not self.deterministic and self.rate > 0.0
        key = self.rngs.dropout() if train else None
        return act_ops.dropout(x, self.rate, key=key, train=train)


# The parameter-free layers and the other norms live in their own files;
# jaxcnn.nnx.layers is the namespace of every layer.
from jaxcnn.nnx.activation import ELU, LeakyReLU, Maxout, ReLU, ScaledTanh, Sigmoid, Tanh  # noqa: E402
from jaxcnn.nnx.local import ConnectionTableConv, LocallyConnected2D, TiledConv2D  # noqa: E402
from jaxcnn.nnx.norm import GroupNorm, InstanceNorm, LayerNorm, LocalResponseNorm  # noqa: E402
from jaxcnn.nnx.pool import (  # noqa: E402
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    GlobalAvgPool,
    GlobalMaxPool,
    LpPool,
    MaxPool,
    Subsampling,
)
