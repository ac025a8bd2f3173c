"""Each conv layer's forward+backward time per implementation.

The layers come from :func:`jaxcnn.summary.conv_layers` (the summary owns
finding them). :func:`benchmark_conv_layers` times, for each distinct layer, one jitted
forward + backward (gradients w.r.t. input and kernel) per implementation,
interleaved, plus PyTorch's ``conv2d`` when available.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxcnn.summary.convolutions import ConvLayer

__all__ = ["benchmark_conv_layers"]


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


def _auto_choice(layer: ConvLayer) -> str:
    """The implementation ``impl="auto"`` picks for ``layer``."""
    from jaxcnn.functional.conv_auto import auto_impl

    return auto_impl(layer.input_shape, layer.kernel_shape, layer.stride, layer.padding,
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
