"""Locally connected and tiled convolution modules, wrapping :mod:`jaxcnn.functional.local`.

Both slide a ``(KH, KW)`` window like a conv (same stride/padding forms and
output size ``H' = floor((H + top + bottom - KH) / SH) + 1``) but do not share
one kernel over all positions.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

from jaxcnn.functional import local as local_ops
from jaxcnn.functional.args import as_tuple, positive_tuple
from jaxcnn.functional.init import he_normal
from jaxcnn.functional.shapes import conv_output_shape

__all__ = ["LocallyConnected2D", "TiledConv2D"]


def grid_initializer(kernel_init: Callable) -> Callable:
    """An initializer for a ``(GH, GW, KH, KW, C, O)`` grid that draws each HWIO kernel
    independently with ``kernel_init``, so every kernel gets a conv's fan-in ``KH*KW*C``."""

    def init(key, shape, dtype=jnp.float32):
        grid, hwio = shape[:2], tuple(shape[2:])
        keys = jax.random.split(key, grid[0] * grid[1])
        kernels = jax.vmap(lambda k: kernel_init(k, hwio, dtype))(keys)
        return kernels.reshape(shape)

    return init


class _UnsharedConv(nn.Module):
    summary_kind: ClassVar[str] = "local"
    dilation: ClassVar[int] = 1
    groups: ClassVar[int] = 1

    features: int
    kernel_size: int | Sequence[int]
    stride: int | Sequence[int] = 1
    padding: int | str | Sequence = 0
    use_bias: bool = True
    kernel_init: Callable = he_normal
    bias_init: Callable = nn.initializers.zeros
    param_dtype: jnp.dtype = jnp.float32
    # Computation dtype: input, kernel and bias are cast to it; None: their promoted dtype.
    dtype: jnp.dtype | None = None

    def kernel_and_bias(self, x, grid_shape):
        """Params ``kernel (*grid, KH, KW, C, O)`` and ``bias (*grid, O)`` (or None)."""
        kernel_h, kernel_w = as_tuple(self.kernel_size, 2, "kernel_size")
        kernel = self.param(
            "kernel",
            grid_initializer(self.kernel_init),
            (*grid_shape, kernel_h, kernel_w, x.shape[-1], self.features),
            self.param_dtype,
        )
        bias = (
            self.param("bias", self.bias_init, (*grid_shape, self.features), self.param_dtype)
            if self.use_bias
            else None
        )
        return kernel, bias


class LocallyConnected2D(_UnsharedConv):
    """A conv with a separate kernel for every output position (unshared weights).

    Shapes: x ``(N, H, W, C)``; params ``kernel`` ``(H', W', KH, KW, C, O)`` and
    ``bias`` ``(H', W', O)`` with ``O = features`` and
    ``H' = floor((H + top + bottom - KH) / SH) + 1`` (likewise ``W'``); output
    ``(N, H', W', O)``. The parameter shapes depend on the input size fixed at ``init``.
    """

    @nn.compact
    def __call__(self, x):
        kernel_hw = as_tuple(self.kernel_size, 2, "kernel_size")
        if getattr(x, "ndim", None) != 4:
            raise ValueError(f"LocallyConnected2D expects NHWC input (rank 4), got shape {getattr(x, 'shape', x)}")
        out_shape = conv_output_shape(
            x.shape, (*kernel_hw, x.shape[-1], self.features), stride=self.stride, padding=self.padding
        )
        kernel, bias = self.kernel_and_bias(x, out_shape[1:3])
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        return local_ops.locally_connected2d(x, kernel, bias, stride=self.stride, padding=self.padding)


class TiledConv2D(_UnsharedConv):
    """Tiled convolution: a ``tiles = (TH, TW)`` grid of kernels cycled over the output.

    Output position ``(i, j)`` uses kernel ``(i % TH, j % TW)``. Shapes: x
    ``(N, H, W, C)``; params ``kernel`` ``(TH, TW, KH, KW, C, O)``, ``bias``
    ``(TH, TW, O)``; output ``(N, H', W', O)`` with
    ``H' = floor((H + top + bottom - KH) / SH) + 1``.
    """

    tiles: int | Sequence[int] = 2

    @nn.compact
    def __call__(self, x):
        tiles = positive_tuple(self.tiles, 2, "tiles")
        kernel, bias = self.kernel_and_bias(x, tiles)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        return local_ops.tiled_conv2d(x, kernel, bias, stride=self.stride, padding=self.padding)
