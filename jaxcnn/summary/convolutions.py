"""The convolutions a model performs: input shape, HWIO kernel, stride, padding, dilation, groups.

:func:`conv_layers` finds them by tracing ``model.init`` shape-only with a
Flax method interceptor (nothing is computed), as :func:`summarize` finds
its rows; the benchmark times them (:mod:`jaxcnn.bench.layer_bench`) and the
tests check ``impl="auto"``'s rule on them.
"""
from __future__ import annotations

import dataclasses
import math

__all__ = ["ConvLayer", "conv_layers"]


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One convolution as the functional op sees it (2-D, NHWC / HWIO).

    Attributes:
      name: dotted module path, e.g. ``"stage1_block1.conv1"`` (the first of
        the layers sharing this geometry when listed by :func:`conv_layers`
        with ``unique=True``).
      input_shape: ``(N, H, W, C)``.
      kernel_shape: ``(KH, KW, C // groups, O)``.
      stride, dilation: ``(SH, SW)``, ``(DH, DW)``.
      padding: ``((top, bottom), (left, right))``.
      groups: feature groups.
      count: how many layers of the model have this geometry.
    """

    name: str
    input_shape: tuple[int, int, int, int]
    kernel_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    groups: int
    count: int = 1

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """``(N, H', W', O)``, ``H' = floor((H + top + bottom - DH*(KH-1) - 1) / SH) + 1``."""
        from jaxcnn.functional.shapes import conv_output_size

        spatial = tuple(
            conv_output_size(size, k, s, pad, d)
            for size, k, s, pad, d in zip(
                self.input_shape[1:3], self.kernel_shape[:2], self.stride, self.padding, self.dilation
            )
        )
        return (self.input_shape[0], *spatial, self.kernel_shape[-1])

    @property
    def macs(self) -> int:
        """Forward multiply-adds: ``N * H' * W' * O * KH * KW * C / groups``."""
        return math.prod(self.output_shape) * math.prod(self.kernel_shape[:3])

    def key(self) -> tuple:
        """The geometry, without name and count."""
        return (self.input_shape, self.kernel_shape, self.stride, self.padding, self.dilation,
                self.groups)


def conv_layers(model, input_shape, *, unique: bool = True) -> list[ConvLayer]:
    """The 2-D convolutions ``model`` performs on an input of ``input_shape`` (batch first).

    Recognises :class:`jaxcnn.nn.Conv` with a 2-D kernel and
    :class:`jaxcnn.nn.ConnectionTableConv` (as the dense HWIO kernel it
    convolves with). Nothing is computed: ``model.init`` is traced with
    ``jax.eval_shape``.

    Args:
      model: an unbound Flax module called ``model(x, train=False)``.
      input_shape: ``(N, H, W, C)``.
      unique: merge layers of identical geometry into one entry (its
        ``count`` says how many), keeping the first name.

    Returns the layers in call order.
    """
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    from jaxcnn.functional.args import as_tuple, explicit_padding, positive_tuple
    from jaxcnn.nn.conv import ConnectionTableConv, Conv

    found: list[ConvLayer] = []

    def record(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, (Conv, ConnectionTableConv)):
            x_shape = tuple(args[0].shape)
            kernel_size = module.kernel_size
            if len(x_shape) == 4 and (isinstance(kernel_size, int) or len(kernel_size) == 2):
                kernel = as_tuple(kernel_size, 2, "kernel_size")
                stride = positive_tuple(module.stride, 2, "stride")
                dilation = positive_tuple(module.dilation, 2, "dilation")
                groups = module.groups
                pads = explicit_padding(module.padding, x_shape[1:3], kernel, stride, dilation)
                found.append(
                    ConvLayer(
                        name=".".join(module.path),
                        input_shape=x_shape,
                        kernel_shape=(*kernel, x_shape[-1] // groups, module.features),
                        stride=stride,
                        padding=tuple(tuple(p) for p in pads),
                        dilation=dilation,
                        groups=groups,
                    )
                )
        return next_fun(*args, **kwargs)

    def init(x):
        return model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x,
                          train=False)

    with nn.intercept_methods(record):
        jax.eval_shape(init, jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32))
    if not unique:
        return found
    merged: dict[tuple, ConvLayer] = {}
    for layer in found:
        if layer.key() in merged:
            first = merged[layer.key()]
            merged[layer.key()] = dataclasses.replace(first, count=first.count + 1)
        else:
            merged[layer.key()] = layer
    return list(merged.values())
