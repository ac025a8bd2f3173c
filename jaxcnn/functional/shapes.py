"""Output sizes of sliding-window layers, computed on static Python ints.

The one formula (CS231n's ``(W - K + 2P)/S + 1``, with dilation)::

    K_eff = dilation * (K - 1) + 1
    out   = floor((W + P_lo + P_hi - K_eff) / S) + 1
"""
from __future__ import annotations

from collections.abc import Sequence

from jaxcnn.functional.args import (
    ACTIVATION_LAYOUTS,
    KERNEL_LAYOUTS,
    check_window_fits,
    explicit_padding,
    is_int,
    positive_tuple,
)


def _positive_int(value, name: str) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _padding_pair(padding, size: int, extent: int, stride: int) -> tuple[int, int]:
    """int (both sides), (low, high), "SAME" or "VALID" as (low, high) for one dim."""
    if isinstance(padding, str):
        return explicit_padding(padding, (size,), (extent,), (stride,))[0]
    if isinstance(padding, Sequence) and not isinstance(padding, str):
        pair = tuple(padding)
        if len(pair) != 2 or not all(is_int(p) for p in pair):
            raise ValueError(f"padding must be an int or a (low, high) pair of ints, got {padding!r}")
        pair = (int(pair[0]), int(pair[1]))
    elif is_int(padding):
        pair = (int(padding), int(padding))
    else:
        raise ValueError(
            f'padding must be an int, a (low, high) pair, "SAME" or "VALID", got {padding!r}'
        )
    if min(pair) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pair


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1, strict=False) -> int:
    """Output length of a convolution or pooling window along one spatial dim.

    Args:
      size: input length W (>= 1).
      kernel: window length K (>= 1).
      stride: S (>= 1).
      padding: P on both sides (int), ``(low, high)``, "SAME" or "VALID".
      dilation: spacing between window taps (>= 1); the window spans
        ``K_eff = dilation * (K - 1) + 1`` inputs.
      strict: if True, the window must tile the padded input exactly, i.e.
        ``(W + P_lo + P_hi - K_eff)`` divisible by S.

    Returns:
      ``floor((W + P_lo + P_hi - K_eff) / S) + 1`` — the slides' ``(W - K + 2P)/S + 1``.

    Raises:
      ValueError: a non-positive size/kernel/stride/dilation, negative padding,
        a window larger than the padded input, or (strict) a window that does not fit,
        e.g. "7x7 input, 3x3 filter, stride 3: doesn't fit".
    """
    size = _positive_int(size, "size")
    kernel = _positive_int(kernel, "kernel")
    stride = _positive_int(stride, "stride")
    dilation = _positive_int(dilation, "dilation")
    extent = dilation * (kernel - 1) + 1
    low, high = _padding_pair(padding, size, extent, stride)
    span = size + low + high - extent
    if span < 0:
        raise ValueError(
            f"kernel {kernel} (dilated extent {extent}) is larger than the padded input "
            f"{size} + {low} + {high}"
        )
    if strict and span % stride:
        filter_text = f"{kernel}x{kernel} filter" + (f" (dilation {dilation})" if dilation > 1 else "")
        raise ValueError(
            f"{size}x{size} input, {filter_text}, stride {stride}: doesn't fit — "
            f"(W - K + P_lo + P_hi)/S + 1 = ({size} - {extent} + {low + high})/{stride} + 1 "
            f"= {span / stride + 1:.2f} is not an integer"
        )
    return span // stride + 1


def conv_output_shape(x_shape, w_shape, *, stride=1, padding=0, dilation=1) -> tuple[int, ...]:
    """Shape of ``conv{1,2,3}d(x, w, ...)`` from the shapes alone.

    Args:
      x_shape: (N, *spatial, C) — NLC, NHWC or NDHWC.
      w_shape: (*kernel, I, O) — KIO, HWIO or DHWIO, same number of spatial dims.
      stride, padding, dilation: as for :func:`jaxcnn.functional.conv2d`.

    Returns:
      ``(N, *out_spatial, O)`` with each ``out`` from :func:`conv_output_size`.
      Channels are not checked here (that needs ``groups``); the conv functions do it.
    """
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    ndim = len(x_shape) - 2
    if ndim not in ACTIVATION_LAYOUTS:
        raise ValueError(f"expected an NLC, NHWC or NDHWC input shape (rank 3-5), got {x_shape}")
    if len(w_shape) != ndim + 2:
        raise ValueError(
            f"expected {KERNEL_LAYOUTS[ndim]} kernel shape (rank {ndim + 2}) for "
            f"{ACTIVATION_LAYOUTS[ndim]} input, got {w_shape}"
        )
    spatial, kernel = x_shape[1:-1], w_shape[:ndim]
    strides = positive_tuple(stride, ndim, "stride")
    dilations = positive_tuple(dilation, ndim, "dilation")
    pads = explicit_padding(padding, spatial, kernel, strides, dilations)
    check_window_fits(spatial, kernel, pads, dilations)
    out = tuple(
        conv_output_size(size, k, s, pad, d)
        for size, k, s, pad, d in zip(spatial, kernel, strides, pads, dilations)
    )
    return (x_shape[0], *out, w_shape[-1])
