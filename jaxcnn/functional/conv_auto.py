"""``impl="auto"``: which convolution implementation to use for a given shape, decided statically.

The choice is a pure function of static shapes and geometry (no timing at run
time), so it is deterministic, costs nothing at trace time, and the same
program is compiled on every machine.

The rule comes from timing one jitted forward + backward (gradients w.r.t.
input and kernel) of ``impl="xla"`` (one ``lax.conv_general_dilated``) against
``impl="im2col"`` (patches + one matrix product) on this project's 2-core
machine, for every conv layer shape of the model zoo and a few more, with the
train step's compiler options (``python experiments/bench.py --per-layer``;
numbers in experiments/PERFORMANCE.md). ``xla`` wins nearly everywhere --
by 1.3-4x on 3x3 and 5x5 kernels, whose patch matrix costs more memory
traffic than XLA's convolution -- except where the convolution *is* a matrix
product and the patch extraction is free:

- a 1x1 kernel with stride > 1 and no padding: the patches are a strided
  slice, and XLA's input gradient of a strided convolution (a convolution
  over a zero-dilated gradient) costs more than slicing (measured 68 vs
  83 ms for a 1x1/2 256->512 conv at 28x28, batch 32);
- a kernel that covers the whole padded input, so the output is one pixel
  (LeNet-5 1998's C5): the patches are a reshape and the layer is a dense
  layer (0.6 vs 2.1 ms forward + backward for 5x5 over 5x5, 16->120).

Grouped and dilated convolutions always use ``xla``.
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["auto_impl", "AUTO_CHOICES"]

# The implementations auto_impl can return (a subset of conv.IMPLS).
AUTO_CHOICES = ("xla", "im2col")


def auto_impl(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    strides: Sequence[int],
    pads: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int,
) -> str:
    """The implementation ``impl="auto"`` uses for this convolution: ``"xla"`` or ``"im2col"``.

    Args (validated, explicit, as :func:`jaxcnn.functional.conv` computes them):
      x_shape: ``(N, *spatial, C)``.
      w_shape: ``(*kernel, C // groups, O)``.
      strides, dilation: one int per spatial dim.
      pads: one ``(low, high)`` pair per spatial dim.
      groups: feature groups.

    Returns ``"im2col"`` when the convolution is a matrix product whose patch
    extraction is a slice or a reshape (see the module docstring), else ``"xla"``.
    """
    ndim = len(x_shape) - 2
    kernel = tuple(w_shape[:ndim])
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
