"""Convolution modules: an N-d ``Conv`` and LeNet-5's connection-table conv.

Both hold a kernel (and bias) and call :mod:`jaxcnn.functional.conv`; the
math lives there. Layouts: activations NLC / NHWC / NDHWC, kernels KIO / HWIO /
DHWIO.

The convolution implementation is a field of each module (``impl``,
default :data:`jaxcnn.functional.conv.DEFAULT_CONV_IMPL`, ``"auto"``), passed
to the functional call: a model sets it on every conv it builds from its own
``conv_impl`` field, so the choice is part of the module (and of every jit
cache key that holds the module) and nothing global is read at trace time.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

from jaxcnn.functional import conv as conv_ops
from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.functional.args import ACTIVATION_LAYOUTS, as_tuple
from jaxcnn.functional.init import he_normal

__all__ = ["DEFAULT_CONV_IMPL", "Conv", "ConnectionTableConv", "LECUN_C3_TABLE"]

_CONV_BY_NDIM = {1: conv_ops.conv1d, 2: conv_ops.conv2d, 3: conv_ops.conv3d}

Initializer = Callable[..., jnp.ndarray]


def _spatial_ndim(kernel_size, x) -> int:
    """Number of spatial dims: the kernel's length, or the input's rank - 2 for an int kernel."""
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        ndim = getattr(x, "ndim", 0) - 2
        if ndim not in _CONV_BY_NDIM:
            raise ValueError(
                f"Conv with an int kernel_size needs an NLC, NHWC or NDHWC input (rank 3-5), "
                f"got shape {getattr(x, 'shape', x)}"
            )
        return ndim
    if isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str):
        if len(kernel_size) in _CONV_BY_NDIM:
            return len(kernel_size)
    raise ValueError(
        f"kernel_size must be an int or a sequence of 1, 2 or 3 ints (picks conv1d/2d/3d), "
        f"got {kernel_size!r}"
    )


class Conv(nn.Module):
    """N-d convolution layer: ``y = conv(x, kernel) + bias``.

    The length of ``kernel_size`` picks :func:`conv1d`, :func:`conv2d` or
    :func:`conv3d`; an int ``kernel_size`` is square/cubic with the number of
    spatial dims taken from the input's rank.

    Shapes (``d`` spatial dims, ``C`` input channels, ``O = features``):
      x: ``(N, *spatial, C)`` -- NLC, NHWC or NDHWC;
      params ``kernel``: ``(*kernel_size, C // groups, O)``, ``bias``: ``(O,)``;
      output: ``(N, *spatial', O)`` with, per spatial dim,
      ``out = floor((size + P_lo + P_hi - dilation * (K - 1) - 1) / stride) + 1``
      (``"SAME"``: ``ceil(size / stride)``).

    Attributes:
      features: output channels ``O``.
      kernel_size: int or ``d`` ints.
      stride, dilation: int or ``d`` ints, >= 1.
      padding: int, ``d`` ints, ``d`` ``(low, high)`` pairs, ``"SAME"`` or ``"VALID"``.
      groups: channel groups (1 dense, ``C`` depthwise); must divide ``C`` and ``O``.
      use_bias: add a learned ``(O,)`` bias (turn off before a batch norm).
      impl: one of :data:`jaxcnn.functional.conv.IMPLS` (``"xla"``, ``"im2col"``,
        ``"onednn"``, ``"auto"``, ``"auto_xla"``); default :data:`DEFAULT_CONV_IMPL` (``"auto"``).
      kernel_init, bias_init: Flax initializers ``(key, shape, dtype) -> array``;
        He normal (a conv is usually followed by a ReLU) and zeros by default.
      param_dtype: dtype of the parameters.
      dtype: computation dtype (e.g. ``jnp.bfloat16``): input, kernel and bias are cast to it
        and the output has it; None: their promoted dtype. Parameters stay ``param_dtype``.
    """

    summary_kind: ClassVar[str] = "conv"

    features: int
    kernel_size: int | Sequence[int]
    stride: int | Sequence[int] = 1
    padding: int | str | Sequence = 0
    dilation: int | Sequence[int] = 1
    groups: int = 1
    use_bias: bool = True
    impl: str = DEFAULT_CONV_IMPL
    kernel_init: Initializer = he_normal
    bias_init: Initializer = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        ndim = _spatial_ndim(self.kernel_size, x)
        if getattr(x, "ndim", None) != ndim + 2:
            raise ValueError(
                f"Conv with kernel_size={self.kernel_size!r} expects {ACTIVATION_LAYOUTS[ndim]} "
                f"input (rank {ndim + 2}), got shape {getattr(x, 'shape', x)}"
            )
        kernel_size = as_tuple(self.kernel_size, ndim, "kernel_size")
        in_channels = x.shape[-1]
        _check_groups(self.groups, in_channels, self.features)
        kernel = self.param(
            "kernel",
            self.kernel_init,
            (*kernel_size, in_channels // self.groups, self.features),
            self.param_dtype,
        )
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
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


def _check_groups(groups, in_channels: int, features: int) -> None:
    # Checked here, before the kernel is created, so the message speaks of the
    # layer's channels rather than of a kernel shape the user never chose.
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide the input channels C={in_channels}")
    if features % groups:
        raise ValueError(f"groups={groups} must divide features (output channels) O={features}")


# LeCun et al. 1998, Table I: which S2 maps (0-5) each C3 map (0-15) reads.
# Maps 0-5 take 3 contiguous inputs, 6-11 four contiguous, 12-14 four
# non-contiguous, 15 all six: 60 connections of 25 weights, plus 16 biases.
LECUN_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ConnectionTableConv(nn.Module):
    """2-D conv in which output map ``o`` sees only the input maps ``connections[o]``.

    LeNet-5's C3 layer (LeCun et al. 1998): "break the symmetry" by connecting
    each output map to a subset of the input maps. Only the connected
    ``(KH, KW)`` filters are parameters: ``kernel`` is packed as
    ``(KH, KW, T)`` with ``T = sum(len(c) for c in connections)``, in table
    order, and scattered into a zero HWIO kernel ``(KH, KW, C, O)`` before
    calling :func:`jaxcnn.functional.conv.conv2d`, so unconnected weights are
    exactly zero and receive no gradient.

    Shapes: x ``(N, H, W, C)`` with ``C > max(table index)``; output
    ``(N, H', W', O)``, ``O = len(connections)``,
    ``H' = floor((H + P_lo + P_hi - KH) / stride) + 1``; ``bias`` ``(O,)``.
    Params: ``T * KH * KW + O`` (C3: ``60 * 25 + 16 = 1516``). ``impl``: as
    :class:`Conv`'s.

    Initialisation: ``kernel_init`` draws the packed filters as an HWIO kernel
    ``(KH, KW, 1, T)`` (fan-in ``KH * KW``), and the filters of output map ``o``
    are then scaled by ``1 / sqrt(len(connections[o]))``, so each map starts
    with the variance ``kernel_init`` gives a conv with its true fan-in
    ``KH * KW * len(connections[o])`` (for variance-scaling inits such as He).

    ``dtype``: computation dtype as in :class:`Conv` (None: the promoted dtype).
    """

    summary_kind: ClassVar[str] = "conv"
    dilation: ClassVar[int] = 1
    groups: ClassVar[int] = 1

    connections: tuple[tuple[int, ...], ...]
    kernel_size: int | Sequence[int]
    stride: int | Sequence[int] = 1
    padding: int | str | Sequence = 0
    use_bias: bool = True
    impl: str = DEFAULT_CONV_IMPL
    kernel_init: Initializer = he_normal
    bias_init: Initializer = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32
    dtype: jnp.dtype | None = None

    @property
    def features(self) -> int:
        """Output channels: one per row of the connection table."""
        return len(self.connections)

    @nn.compact
    def __call__(self, x):
        kernel_size = as_tuple(self.kernel_size, 2, "kernel_size")
        if getattr(x, "ndim", None) != 4:
            raise ValueError(
                f"ConnectionTableConv expects NHWC input (rank 4), got shape {getattr(x, 'shape', x)}"
            )
        in_channels = x.shape[-1]
        in_index, out_index, fan_in = _table_indices(self.connections, in_channels)
        packed = self.param(
            "kernel",
            _packed_initializer(self.kernel_init, fan_in),
            (*kernel_size, len(in_index)),
            self.param_dtype,
        )
        kernel = jnp.zeros((*kernel_size, in_channels, self.features), packed.dtype)
        kernel = kernel.at[:, :, in_index, out_index].set(packed)
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        return conv_ops.conv2d(
            x, kernel, bias, stride=self.stride, padding=self.padding, impl=self.impl
        )


def _packed_initializer(kernel_init: Initializer, fan_in: np.ndarray) -> Initializer:
    """Draw ``(KH, KW, T)`` as an HWIO ``(KH, KW, 1, T)`` kernel, then scale connection ``t`` by ``1/sqrt(fan_in[t])``."""

    def init(key, shape, dtype=jnp.float32):
        filters = kernel_init(key, (*shape[:-1], 1, shape[-1]), dtype).reshape(shape)
        return filters / jnp.sqrt(jnp.asarray(fan_in, dtype))

    return init


def _table_indices(connections, in_channels: int):
    """Static ``(in_index, out_index, per-connection fan-in count)`` arrays for the table."""
    if not connections or not all(
        isinstance(row, Sequence) and len(row) > 0 for row in connections
    ):
        raise ValueError(
            f"connections must be a non-empty sequence of non-empty tuples of input-map "
            f"indices (one tuple per output map), got {connections!r}"
        )
    in_index, out_index, fan_in = [], [], []
    for out_map, row in enumerate(connections):
        if len(set(row)) != len(row):
            raise ValueError(f"connections[{out_map}] repeats an input map: {row!r}")
        for in_map in row:
            if isinstance(in_map, bool) or not isinstance(in_map, int) or not 0 <= in_map < in_channels:
                raise ValueError(
                    f"connections[{out_map}] refers to input map {in_map!r}, but the input has "
                    f"{in_channels} channels (valid indices 0..{in_channels - 1})"
                )
            in_index.append(in_map)
            out_index.append(out_map)
            fan_in.append(len(row))
    return np.array(in_index), np.array(out_index), np.array(fan_in, np.float32)
