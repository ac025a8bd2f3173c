"""Unshared-weight convolutions for NNX: locally connected, tiled, and LeNet-5's connection-table conv.

The math is :mod:`jaxcnn.functional.local` and :func:`jaxcnn.functional.conv.conv2d`;
parameter layouts and initialisation are those of the linen modules
(:mod:`jaxcnn.nn.local`, :class:`jaxcnn.nn.ConnectionTableConv`), so the
arrays move between the front ends unchanged. Built eagerly: the locally
connected layer's kernel grid depends on the output size, so it takes the
input's ``(H, W)``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import jax.numpy as jnp
from flax import nnx

from jaxcnn.functional import conv as conv_ops
from jaxcnn.functional import local as local_ops
from jaxcnn.functional.args import as_tuple, positive_tuple
from jaxcnn.functional.init import he_normal, zeros
from jaxcnn.functional.shapes import conv_output_shape
from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.nn.conv import _packed_initializer, _table_indices
from jaxcnn.nn.local import grid_initializer

__all__ = ["LocallyConnected2D", "TiledConv2D", "ConnectionTableConv"]


def _check_input(layer, x, channels: int) -> None:
    if getattr(x, "ndim", None) != 4 or x.shape[-1] != channels:
        raise ValueError(
            f"{type(layer).__name__} expects NHWC input with {channels} channels, got shape "
            f"{getattr(x, 'shape', x)}"
        )


class _UnsharedConv(nnx.Module):
    summary_kind: ClassVar[str] = "local"
    dilation: ClassVar[int] = 1
    groups: ClassVar[int] = 1

    def _build(self, in_features, out_features, kernel_size, grid, stride, padding, use_bias,
               kernel_init, bias_init, param_dtype, rngs):
        self.in_features, self.out_features = in_features, out_features
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size")
        self.stride, self.padding = stride, padding
        shape = (*grid, *self.kernel_size, in_features, out_features)
        self.kernel = nnx.Param(grid_initializer(kernel_init)(rngs.params(), shape, param_dtype))
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (*grid, out_features), param_dtype)) if use_bias else None
        )


class LocallyConnected2D(_UnsharedConv):
    """A conv with its own kernel at every output position.

    Shapes: x ``(N, H, W, in_features)`` with ``(H, W) = input_size``; params
    ``kernel`` ``(H', W', KH, KW, in_features, out_features)``, ``bias``
    ``(H', W', out_features)``, ``H' = floor((H + top + bottom - KH) / SH) + 1``;
    output ``(N, H', W', out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, kernel_size, *, input_size: Sequence[int],
                 stride=1, padding=0, use_bias: bool = True, kernel_init: Callable = he_normal,
                 bias_init: Callable = zeros, param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.input_size = positive_tuple(input_size, 2, "input_size")
        kernel_hw = as_tuple(kernel_size, 2, "kernel_size")
        out = conv_output_shape((1, *self.input_size, in_features), (*kernel_hw, in_features, out_features),
                                stride=stride, padding=padding)
        self._build(in_features, out_features, kernel_size, out[1:3], stride, padding, use_bias,
                    kernel_init, bias_init, param_dtype, rngs)

    def __call__(self, x):
        _check_input(self, x, self.in_features)
        if tuple(x.shape[1:3]) != self.input_size:
            raise ValueError(
                f"LocallyConnected2D was built for input size {self.input_size}, got {tuple(x.shape[1:3])}"
            )
        bias = None if self.bias is None else self.bias[...]
        return local_ops.locally_connected2d(x, self.kernel[...], bias, stride=self.stride, padding=self.padding)


class TiledConv2D(_UnsharedConv):
    """Tiled convolution: a ``tiles = (TH, TW)`` grid of kernels cycled over the output positions.

    Params ``kernel`` ``(TH, TW, KH, KW, in_features, out_features)``, ``bias``
    ``(TH, TW, out_features)``; x ``(N, H, W, in_features)`` -> ``(N, H', W', out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, kernel_size, *, tiles=2, stride=1, padding=0,
                 use_bias: bool = True, kernel_init: Callable = he_normal, bias_init: Callable = zeros,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.tiles = positive_tuple(tiles, 2, "tiles")
        self._build(in_features, out_features, kernel_size, self.tiles, stride, padding, use_bias,
                    kernel_init, bias_init, param_dtype, rngs)

    def __call__(self, x):
        _check_input(self, x, self.in_features)
        bias = None if self.bias is None else self.bias[...]
        return local_ops.tiled_conv2d(x, self.kernel[...], bias, stride=self.stride, padding=self.padding)


class ConnectionTableConv(nnx.Module):
    """2-D conv where output map ``o`` sees only input maps ``connections[o]`` (LeNet-5's C3).

    ``kernel`` is packed ``(KH, KW, T)``, ``T = sum(len(c) for c in connections)``,
    scattered into a zero HWIO kernel ``(KH, KW, in_features, O)`` before
    :func:`jaxcnn.functional.conv.conv2d`; ``bias`` ``(O,)``, ``O = len(connections)``.
    See :class:`jaxcnn.nn.ConnectionTableConv` for the initialisation.
    """

    summary_kind: ClassVar[str] = "conv"
    dilation: ClassVar[int] = 1
    groups: ClassVar[int] = 1

    def __init__(self, in_features: int, connections, kernel_size, *, stride=1, padding=0,
                 use_bias: bool = True, impl: str = DEFAULT_CONV_IMPL, kernel_init: Callable = he_normal,
                 bias_init: Callable = zeros, param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.connections = tuple(tuple(row) for row in connections) if connections else ()
        in_index, out_index, fan_in = _table_indices(self.connections, in_features)
        self.in_features, self.features = in_features, len(self.connections)
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size")
        self.stride, self.padding, self.impl = stride, padding, impl
        self.in_index, self.out_index = tuple(in_index.tolist()), tuple(out_index.tolist())
        packed_init = _packed_initializer(kernel_init, fan_in)
        self.kernel = nnx.Param(packed_init(rngs.params(), (*self.kernel_size, len(in_index)), param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (self.features,), param_dtype)) if use_bias else None

    def __call__(self, x):
        _check_input(self, x, self.in_features)
        packed = self.kernel[...]
        kernel = jnp.zeros((*self.kernel_size, self.in_features, self.features), packed.dtype)
        kernel = kernel.at[:, :, list(self.in_index), list(self.out_index)].set(packed)
        bias = None if self.bias is None else self.bias[...]
        return conv_ops.conv2d(x, kernel, bias, stride=self.stride, padding=self.padding,
                               impl=self.impl)
