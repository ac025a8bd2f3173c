"""``impl="auto"`` and ``impl="auto_xla"``: which convolution implementation a shape gets, decided statically.

The choice is a function of static shapes, geometry and dtype, of the
``allow_onednn`` argument, and of two facts about the machine that do not
change while a program runs: whether JAX's default backend is the CPU, and
whether jaxcnn's oneDNN kernels (:mod:`jaxcnn.native`) are built and loaded
there. Nothing is timed or compiled at trace time.

The rule (:func:`auto_impl`):

1. ``"onednn"`` when ``allow_onednn``, the backend is the CPU, the kernels are
   available and :func:`jaxcnn.functional.conv_onednn.supports` the
   convolution (float32, 2-D, ungrouped, undilated);
2. else ``"xla"`` for grouped or dilated convolutions;
3. else ``"im2col"`` where the convolution is a matrix product whose patch
   extraction is free: a 1x1 kernel with stride > 1 and no padding (the
   patches are a strided slice), or a kernel that covers the whole unpadded
   input (the output is one pixel; the patches are a reshape);
4. else ``"xla"``.

``impl="auto_xla"`` applies the rule with ``allow_onednn=False``: only
implementations made of XLA operations, which XLA's SPMD partitioner (GSPMD)
can split across devices -- it cannot partition a custom call, and would
all-gather the batch onto every device instead. The measurements behind the
rule are in experiments/PERFORMANCE.md ("Why impl="auto" chooses what it
chooses").
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["auto_impl", "AUTO_CHOICES"]


def _onednn_applies(x_shape, w_shape, strides, pads, dilation, groups, dtype) -> bool:
    import jax

    from jaxcnn.functional import conv_onednn

    dtype = "float32" if dtype is None else dtype
    return (
        conv_onednn.supports(x_shape, w_shape, strides, pads, dilation, groups, dtype)
        and jax.default_backend() == "cpu"
        and conv_onednn.available()
    )

# The implementations auto_impl can return (a subset of conv.IMPLS).
AUTO_CHOICES = ("xla", "im2col", "onednn")


def auto_impl(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int,
    dtype=None,
    *,
    allow_onednn: bool = True,
) -> str:
    """The implementation ``impl="auto"`` uses: ``"onednn"``, ``"xla"`` or ``"im2col"``.

    Args (validated, explicit, as :func:`jaxcnn.functional.conv` computes them):
      x_shape: ``(N, *spatial, C)``.
      w_shape: ``(*kernel, C // groups, O)``.
      strides, dilation: one int per spatial dim.
      pads: one ``(low, high)`` pair per spatial dim.
      groups: feature groups.
      dtype: the convolution's (promoted) dtype; ``None`` means float32.
      allow_onednn: False for ``impl="auto_xla"`` (never ``"onednn"``).

    Returns ``"onednn"`` on the CPU when ``allow_onednn``,
    :func:`jaxcnn.functional.conv_onednn.supports` the convolution and the
    kernels are available; otherwise ``"im2col"`` when the convolution is a
    matrix product whose patch extraction is a slice or a reshape (see the
    module docstring), else ``"xla"``.
    """
    ndim = len(x_shape) - 2
    kernel = tuple(w_shape[:ndim])
    if allow_onednn and _onednn_applies(x_shape, w_shape, strides, pads, dilation, groups, dtype):
        return "onednn"
    if groups != 1 or any(d != 1 for d in dilation):
        return "xla"
    no_padding = all(lo == 0 and hi == 0 for lo, hi in pads)
    if no_padding and all(k == 1 for k in kernel) and any(s > 1 for s in strides):
        return "im2col"
    covers_input = all(
        k == size + lo + hi for k, size, (lo, hi) in zip(kernel, x_shape[1:-1], pads)
    )
    if covers_input and no_padding:
        return "im2col"
    return "xla"
