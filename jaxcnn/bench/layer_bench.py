"""The conv layers of a model, and each one's forward+backward time per implementation.

:func:`conv_layers` lists the convolution every conv module of a model
performs (input shape, HWIO kernel shape, stride, padding, dilation, groups),
found by tracing ``model.init`` shape-only with a Flax method interceptor.
:func:`benchmark_conv_layers` times, for each distinct layer, one jitted
forward + backward (gradients w.r.t. input and kernel) per implementation,
interleaved, plus PyTorch's ``conv2d`` when available.
"""
from __future__ import annotations

import dataclasses
import math

__all__ = ["ConvLayer", "conv_layers", "benchmark_conv_layers"]


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


def benchmark_conv_layers(
    layers: list[ConvLayer],
    impls: tuple[str, ...],
    *,
    rounds: int = 5,
    iterations: int = 3,
    pause: float = 0.0,
    with_torch: bool = True,
    peak_gflops: float | None = None,
) -> list[dict]:
    """Forward + backward time of each layer for each implementation.

    For each layer, ``jax.jit(jax.vjp(conv2d(..., impl=impl)))`` with a random
    cotangent (gradients w.r.t. input and kernel) per impl, compiled with the
    steps' options (:func:`jaxcnn.train.xla_options.step_compiler_options`),
    and PyTorch's ``conv2d`` forward + ``autograd.grad`` on NCHW tensors,
    interleaved (``rounds``, ``iterations``, ``pause``: see
    :func:`jaxcnn.bench.timing.interleave`).

    Returns one dict per layer::

        {"name", "count", "input_shape", "kernel_shape", "stride", "padding",
         "dilation", "groups", "macs", "auto_choice": impl "auto" resolves to,
         "ms": {impl or "torch": median ms}, "gflops": {...}, "peak_fraction": {...}}

    GFLOP/s count ``6 * macs`` per forward + backward.
    """
    import numpy as np

    from jaxcnn.bench.timing import interleave, median

    results = []
    for index, layer in enumerate(layers):
        rng = np.random.default_rng(index)
        x = rng.standard_normal(layer.input_shape, dtype=np.float32)
        w = rng.standard_normal(layer.kernel_shape, dtype=np.float32) / math.sqrt(
            math.prod(layer.kernel_shape[:3])
        )
        g = rng.standard_normal(layer.output_shape, dtype=np.float32)
        runners = {}
        for impl in impls:
            if _can_compute(impl, layer):  # e.g. "onednn" skips grouped/dilated layers
                runners[impl] = _jax_runner(layer, impl, x, w, g)
        if with_torch:
            runners["torch"] = _torch_runner(layer, x, w, g)
        seconds = interleave(runners, rounds=rounds, iterations=iterations, warmup=1, pause=pause)
        flops = 6 * layer.macs
        ms = {name: 1e3 * median(values) for name, values in seconds.items()}
        gflops = {name: flops / (value / 1e3) / 1e9 for name, value in ms.items()}
        results.append(
            {
                "name": layer.name,
                "count": layer.count,
                "input_shape": list(layer.input_shape),
                "kernel_shape": list(layer.kernel_shape),
                "stride": list(layer.stride),
                "padding": [list(p) for p in layer.padding],
                "dilation": list(layer.dilation),
                "groups": layer.groups,
                "macs": layer.macs,
                "auto_choice": _auto_choice(layer),
                "ms": ms,
                "gflops": gflops,
                "peak_fraction": {
                    name: (value / peak_gflops if peak_gflops else None)
                    for name, value in gflops.items()
                },
            }
        )
    return results


def _can_compute(impl: str, layer: ConvLayer) -> bool:
    """Whether ``impl`` computes ``layer`` here (only "onednn" has restrictions)."""
    if impl != "onednn":
        return True
    from jaxcnn.functional import conv_onednn

    return conv_onednn.available() and conv_onednn.supports(
        layer.input_shape, layer.kernel_shape, layer.stride, layer.padding, layer.dilation,
        layer.groups, "float32")


def _auto_choice(layer: ConvLayer) -> str | None:
    """The implementation ``impl="auto"`` picks for ``layer`` (None if there is no "auto")."""
    from jaxcnn.functional import conv as conv_ops

    choose = getattr(conv_ops, "auto_impl", None)
    if choose is None:
        return None
    return choose(layer.input_shape, layer.kernel_shape, layer.stride, layer.padding,
                  layer.dilation, layer.groups)


def _jax_runner(layer: ConvLayer, impl: str, x, w, g):
    import jax
    import jax.numpy as jnp

    from jaxcnn.functional.conv import conv2d
    from jaxcnn.train.xla_options import step_compiler_options

    def forward(x, w):
        return conv2d(x, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                      groups=layer.groups, impl=impl)

    def forward_backward(x, w, g):
        y, vjp = jax.vjp(forward, x, w)
        return y, vjp(g)

    # Compiled as inside jaxcnn.train.train_step, whose options decide which
    # XLA:CPU library runs each convolution.
    forward_backward = jax.jit(forward_backward, compiler_options=step_compiler_options())

    x, w, g = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)

    def run(iterations: int) -> None:
        for _ in range(iterations):
            out = forward_backward(x, w, g)
        jax.block_until_ready(out)

    return run


def _torch_runner(layer: ConvLayer, x, w, g):
    import torch
    import torch.nn.functional as F

    (top, bottom), (left, right) = layer.padding
    x_t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    w_t = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous().requires_grad_(True)
    g_t = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous()
    symmetric = top == bottom and left == right

    def run(iterations: int) -> None:
        for _ in range(iterations):
            inputs = x_t if symmetric else F.pad(x_t, (left, right, top, bottom))
            y = F.conv2d(inputs, w_t, stride=layer.stride, padding=(top, left) if symmetric else 0,
                         dilation=layer.dilation, groups=layer.groups)
            torch.autograd.grad(y, (x_t, w_t), g_t)

    return run
