"""``impl="auto"``: which convolution implementation to use for a given shape, decided statically.

The choice is a function of static shapes, geometry and dtype, and of two
facts about the machine that do not change while a program runs: whether
JAX's default backend is the CPU, and whether jaxcnn's oneDNN kernels
(:mod:`jaxcnn.native`) are built there. No timing happens at run time, so
the choice is deterministic and costs nothing at trace time.

On the CPU, with the kernels available, every float32, ungrouped, undilated
2-D convolution uses ``impl="onednn"``: measured on the project's 2-core
machine (``jaxcnn bench --per-layer``, experiments/PERFORMANCE.md), oneDNN's
forward, input-gradient and kernel-gradient kernels are 1.0-5x faster than
XLA:CPU's on every conv layer of LeNet-5 and ResNet-20 (the kernel gradient,
which XLA computes with two transposes around an Eigen convolution, gains
most). Elsewhere -- other backends, bf16/f16, grouped or dilated convs,
1-D/3-D, or no oneDNN -- the rule below chooses between ``xla`` and ``im2col``.

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

import contextlib
import contextvars
from collections.abc import Sequence

__all__ = ["auto_impl", "AUTO_CHOICES", "without_onednn"]

# Set while tracing a program whose convolutions XLA will partition (GSPMD).
_ONEDNN_ALLOWED = contextvars.ContextVar("jaxcnn_onednn_allowed", default=True)


@contextlib.contextmanager
def without_onednn():
    """While active, ``impl="auto"`` does not choose ``"onednn"``.

    Use it around the tracing of a ``jax.jit`` whose inputs are sharded over
    several devices (``NamedSharding``/GSPMD): XLA cannot partition a custom
    call, so it would all-gather the batch and run every oneDNN convolution on
    the whole batch on every device, where XLA's own convolution is split
    across them. :func:`jaxcnn.train.sharded.sharded_train_step` does this;
    ``pmap`` and ``shard_map`` see per-device shapes and need nothing.
    """
    token = _ONEDNN_ALLOWED.set(False)
    try:
        yield
    finally:
        _ONEDNN_ALLOWED.reset(token)


def _onednn_applies(x_shape, w_shape, strides, pads, dilation, groups, dtype) -> bool:
    import jax

    from jaxcnn.functional import conv_onednn

    dtype = "float32" if dtype is None else dtype
    return (
        _ONEDNN_ALLOWED.get()
        and conv_onednn.supports(x_shape, w_shape, strides, pads, dilation, groups, dtype)
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
) -> str:
    """The implementation ``impl="auto"`` uses: ``"onednn"``, ``"xla"`` or ``"im2col"``.

    Args (validated, explicit, as :func:`jaxcnn.functional.conv` computes them):
      x_shape: ``(N, *spatial, C)``.
      w_shape: ``(*kernel, C // groups, O)``.
      strides, dilation: one int per spatial dim.
      pads: one ``(low, high)`` pair per spatial dim.
      groups: feature groups.
      dtype: the convolution's (promoted) dtype; ``None`` means float32.

    Returns ``"onednn"`` on the CPU when :func:`jaxcnn.functional.conv_onednn.supports`
    the convolution and the kernels are available; otherwise ``"im2col"`` when the convolution is a matrix product whose patch
    extraction is a slice or a reshape (see the module docstring), else ``"xla"``.
    """
    ndim = len(x_shape) - 2
    kernel = tuple(w_shape[:ndim])
    if _onednn_applies(x_shape, w_shape, strides, pads, dilation, groups, dtype):
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
