"""Convolution in 1, 2 and 3 spatial dimensions, and the patch extraction behind it.

Layouts (fixed once, below): activations channels-last — NLC, NHWC, NDHWC —
and kernels spatial-first — KIO, HWIO, DHWIO. A grouped kernel has
``I = C / groups`` input channels, and group ``g`` produces output channels
``g * O/groups ... (g + 1) * O/groups - 1`` (``lax`` ``feature_group_count``
semantics, the same as PyTorch's ``groups``).

Output size along each spatial dim (``P_lo + P_hi`` the total padding)::

    out = floor((size + P_lo + P_hi - dilation * (K - 1) - 1) / stride) + 1

Three implementations compute the same numbers, and two rules choose among them:

- ``impl="xla"`` (the default of these functions): one ``lax.conv_general_dilated``;
- ``impl="im2col"``: :func:`unfold` the input into patches (pad + strided
  slices, no convolution primitive), then one matrix product per group;
- ``impl="onednn"`` (2-D, float32, ungrouped, undilated): oneDNN's kernels
  through XLA's FFI on the CPU, XLA's convolution on other backends
  (:mod:`jaxcnn.functional.conv_onednn`);
- ``impl="auto"``: one of the three per shape, by the static rule of
  :func:`jaxcnn.functional.conv_auto.auto_impl`: "onednn" on the CPU wherever
  it applies, else "xla" or "im2col";
- ``impl="auto_xla"``: the same rule without "onednn", for programs XLA
  partitions across devices (GSPMD cannot split a custom call).

:data:`DEFAULT_CONV_IMPL` (``"auto"``) is the one default of the layers
(``jaxcnn.nn.Conv(impl=...)``), the models (``models.get(name,
conv_impl=...)``) and ``TrainConfig.conv_impl``: the choice is data that flows
down from the config to every ``conv2d`` call, and is part of each jitted
step's cache key (the model is a static part of the train state).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import jax.numpy as jnp
from jax import lax

from jaxcnn.functional.args import (
    KERNEL_LAYOUTS,
    check_ndim,
    check_window_fits,
    explicit_padding,
    positive_tuple,
)
from jaxcnn.functional.conv_auto import auto_impl
from jaxcnn.functional.conv_onednn import conv2d_onednn
from jaxcnn.functional.layout_hints import channels_first_hint, torch_kernel_hint
from jaxcnn.functional.shapes import conv_output_size

# (input, kernel, output) layouts per number of spatial dims, for lax.
DIMENSION_NUMBERS = {
    1: ("NWC", "WIO", "NWC"),
    2: ("NHWC", "HWIO", "NHWC"),
    3: ("NDHWC", "DHWIO", "NDHWC"),
}

IMPLS = ("xla", "im2col", "onednn", "auto", "auto_xla")
# The implementation layers, models and TrainConfig use unless told otherwise.
DEFAULT_CONV_IMPL = "auto"

Pads = tuple[tuple[int, int], ...]


# ----------------------------------------------------------------------------
# Patch extraction
# ----------------------------------------------------------------------------


def _unfold_nd(
    x: jnp.ndarray,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    pads: Pads,
    dilation: Sequence[int],
) -> jnp.ndarray:
    """Patches of a channels-last input with validated, explicit arguments.

    ``x``: (N, *spatial, C) -> (N, *out_spatial, prod(kernel_shape) * C), features
    ordered (k_0, k_1, ..., c), i.e. the row-major flattening of a kernel
    ``(*kernel_shape, C)``.

    Built from one zero pad and one strided slice per kernel offset: every
    offset's slice is the input sample that offset sees at every output
    position, so stacking them is exactly im2col.
    """
    out_shape = tuple(
        conv_output_size(size, k, s, pad, d)
        for size, k, s, pad, d in zip(x.shape[1:-1], kernel_shape, strides, pads, dilation)
    )
    padded = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    batch, channels = x.shape[0], x.shape[-1]
    slices = []
    for offset in itertools.product(*(range(k) for k in kernel_shape)):
        start = tuple(o * d for o, d in zip(offset, dilation))
        limit = tuple(st + (out - 1) * s + 1 for st, out, s in zip(start, out_shape, strides))
        slices.append(
            lax.slice(
                padded,
                (0, *start, 0),
                (batch, *limit, channels),
                (1, *strides, 1),
            )
        )
    patches = jnp.stack(slices, axis=-2)  # (N, *out, prod(K), C)
    return patches.reshape(batch, *out_shape, len(slices) * channels)


def unfold(x, kernel_size, *, stride=1, padding=0, dilation=1) -> jnp.ndarray:
    """Image patches of an NHWC batch as vectors (im2col).

    Args:
      x: (N, H, W, C).
      kernel_size: int or (KH, KW).
      stride, dilation: int or (SH, SW) / (DH, DW), each >= 1.
      padding: int, (PH, PW), ((top, bottom), (left, right)), "SAME" or "VALID";
        the padding value is zero.

    Returns:
      (N, H', W', KH * KW * C) with ``H' = floor((H + top + bottom - DH*(KH-1) - 1) / SH) + 1``
      (likewise W'). Features are ordered (kh, kw, c), so for an HWIO kernel
      ``w`` of shape (KH, KW, C, O)::

          unfold(x, (KH, KW)) @ w.reshape(-1, O) == conv2d(x, w)
    """
    check_ndim(x, 2)
    kernel_shape = positive_tuple(kernel_size, 2, "kernel_size")
    strides = positive_tuple(stride, 2, "stride")
    dilations = positive_tuple(dilation, 2, "dilation")
    pads = explicit_padding(padding, x.shape[1:3], kernel_shape, strides, dilations)
    check_window_fits(x.shape[1:3], kernel_shape, pads, dilations)
    return _unfold_nd(x, kernel_shape, strides, pads, dilations)


def _fold_nd(
    patches: jnp.ndarray,
    spatial_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    pads: Pads,
    dilation: Sequence[int],
) -> jnp.ndarray:
    """The adjoint (transpose) of :func:`_unfold_nd` (col2im), arguments validated.

    ``patches``: (N, *out_spatial, prod(kernel_shape) * C) -> (N, *spatial_shape, C):
    every patch entry is added back at the input position it was read from;
    entries that came from the zero padding are dropped.

    Each kernel offset's slice is put back with one ``lax.pad`` — low padding
    to its start, interior padding ``stride - 1`` between samples — which is
    exactly the transpose of the strided slice in ``_unfold_nd``.
    """
    batch, *out_shape, features = patches.shape
    window = math.prod(kernel_shape)
    channels = features // window
    patches = patches.reshape(batch, *out_shape, window, channels)
    padded_shape = tuple(size + lo + hi for size, (lo, hi) in zip(spatial_shape, pads))
    zero = jnp.zeros((), patches.dtype)
    total = None
    for index, offset in enumerate(itertools.product(*(range(k) for k in kernel_shape))):
        config = [(0, 0, 0)]
        for o, d, out, s, padded in zip(offset, dilation, out_shape, strides, padded_shape):
            start, extent = o * d, (out - 1) * s + 1
            config.append((start, padded - start - extent, s - 1))
        config.append((0, 0, 0))
        placed = lax.pad(patches[..., index, :], zero, config)
        total = placed if total is None else total + placed
    return lax.slice(
        total,
        (0, *(lo for lo, _ in pads), 0),
        (batch, *(lo + size for size, (lo, _) in zip(spatial_shape, pads)), channels),
    )


def fold(patches, input_size, kernel_size, *, stride=1, padding=0, dilation=1) -> jnp.ndarray:
    """Sum patch vectors back into an NHWC image (col2im): the adjoint of :func:`unfold`.

    Args:
      patches: (N, H', W', KH * KW * C), features ordered (kh, kw, c) as :func:`unfold` makes them.
      input_size: (H, W) of the image the patches came from.
      kernel_size, stride, padding, dilation: as given to :func:`unfold`.

    Returns:
      (N, H, W, C) where each input position holds the sum of every patch entry
      read from it (so ``fold(unfold(x))`` is ``x`` times how many windows
      cover each pixel, and ``<unfold(x), p> == <x, fold(p)>``). This is the
      gradient of :func:`unfold`, and the "col2im" of an im2col backward pass.

    Raises:
      ValueError: patches not rank 4, a feature size not divisible by KH*KW, or
        patches whose (H', W') is not the output size of the given geometry.
    """
    patches = jnp.asarray(patches)
    if patches.ndim != 4:
        raise ValueError(
            f"expected (N, H', W', KH*KW*C) patches (rank 4), got shape {patches.shape}"
        )
    input_size = positive_tuple(input_size, 2, "input_size")
    kernel_shape = positive_tuple(kernel_size, 2, "kernel_size")
    strides = positive_tuple(stride, 2, "stride")
    dilations = positive_tuple(dilation, 2, "dilation")
    pads = explicit_padding(padding, input_size, kernel_shape, strides, dilations)
    check_window_fits(input_size, kernel_shape, pads, dilations)
    window = math.prod(kernel_shape)
    if patches.shape[-1] % window:
        raise ValueError(
            f"patch features ({patches.shape[-1]}) must be KH*KW*C with KH*KW={window}"
        )
    out_shape = tuple(
        conv_output_size(size, k, s, pad, d)
        for size, k, s, pad, d in zip(input_size, kernel_shape, strides, pads, dilations)
    )
    if patches.shape[1:3] != out_shape:
        raise ValueError(
            f"patches have {patches.shape[1:3]} positions but a {input_size} input with this "
            f"kernel/stride/padding/dilation gives (H', W') = {out_shape}"
        )
    return _fold_nd(patches, input_size, kernel_shape, strides, pads, dilations)


# ----------------------------------------------------------------------------
# Implementations: (x, w, strides, pads, dilation, groups) -> y, arguments validated
# ----------------------------------------------------------------------------


def _conv_xla(x, w, strides, pads, dilation, groups):
    return lax.conv_general_dilated(
        x,
        w,
        window_strides=strides,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=DIMENSION_NUMBERS[x.ndim - 2],
        feature_group_count=groups,
    )


def _conv_im2col(x, w, strides, pads, dilation, groups):
    n = x.ndim - 2
    kernel_shape = w.shape[:n]
    group_in, out_channels = w.shape[-2], w.shape[-1]
    patches = _unfold_nd(x, kernel_shape, strides, pads, dilation)  # (N, *out, K*C)
    if groups == 1:
        return patches @ w.reshape(-1, out_channels)
    # Channel c of the input is (group c // I, index c % I); split the patch
    # features and the kernel that way and contract each group separately.
    window = patches.shape[-1] // x.shape[-1]
    patches = patches.reshape(*patches.shape[:-1], window, groups, group_in)
    kernel = w.reshape(window, group_in, groups, out_channels // groups)
    y = jnp.einsum("...kgi,kigo->...go", patches, kernel)
    return y.reshape(*y.shape[:-2], out_channels)


_IMPLEMENTATIONS: dict[str, Callable] = {
    "xla": _conv_xla, "im2col": _conv_im2col, "onednn": conv2d_onednn,
}


def _select_impl(impl: str, x_shape, w_shape, strides, pads, dilation, groups, dtype) -> Callable:
    """The convolution function for ``impl``; ``"auto"``/``"auto_xla"`` choose one from the shapes."""
    if impl in ("auto", "auto_xla"):
        impl = auto_impl(x_shape, w_shape, strides, pads, dilation, groups, dtype,
                         allow_onednn=impl == "auto")
    if impl not in _IMPLEMENTATIONS:
        names = ", ".join(repr(name) for name in IMPLS)
        raise ValueError(f"unknown impl {impl!r}; expected one of {names}")
    return _IMPLEMENTATIONS[impl]


# ----------------------------------------------------------------------------
# Validation shared by conv1d/2d/3d
# ----------------------------------------------------------------------------


def _conv_arguments(x, w, b, *, ndim, stride, padding, dilation, groups):
    """Validate convolution arguments; return ``(strides, pads, dilation)`` explicit.

    Raises ValueError naming the problem (rank, channels, groups, stride,
    dilation, padding, kernel size, bias shape).
    """
    check_ndim(x, ndim)
    kernel_layout = KERNEL_LAYOUTS[ndim]
    if getattr(w, "ndim", None) != ndim + 2:
        raise ValueError(
            f"expected {kernel_layout} kernel (rank {ndim + 2}), got shape {getattr(w, 'shape', w)}"
        )
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    in_channels = x.shape[-1]
    group_in, out_channels = w.shape[-2], w.shape[-1]
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide the input channels C={in_channels}")
    if out_channels % groups:
        raise ValueError(f"groups={groups} must divide the output channels O={out_channels}")
    if group_in * groups != in_channels:
        raise ValueError(
            f"channels mismatch: input has C={in_channels} channels, so a {kernel_layout} kernel "
            f"with groups={groups} needs I=C/groups={in_channels // groups} input channels; "
            f"got kernel shape {w.shape}"
            + torch_kernel_hint(w.shape, in_channels, groups, ndim)
            + channels_first_hint(x.shape, group_in * groups, ndim)
        )
    if b is not None and getattr(b, "shape", None) != (out_channels,):
        raise ValueError(
            f"bias must have shape ({out_channels},) (the kernel's output channels), "
            f"got {getattr(b, 'shape', b)}"
        )
    strides = positive_tuple(stride, ndim, "stride")
    dilations = positive_tuple(dilation, ndim, "dilation")
    spatial_shape = x.shape[1:-1]
    kernel_shape = w.shape[:ndim]
    pads = explicit_padding(padding, spatial_shape, kernel_shape, strides, dilations)
    check_window_fits(spatial_shape, kernel_shape, pads, dilations)
    return strides, pads, dilations


def _check_strict_fit(spatial_shape, kernel_shape, strides, pads, dilations) -> None:
    """Raise, as ``conv_output_size(..., strict=True)`` does, where the window does not tile."""
    for size, k, s, pad, d in zip(spatial_shape, kernel_shape, strides, pads, dilations):
        conv_output_size(size, k, s, pad, d, strict=True)


def _conv(x, w, b, *, ndim, stride, padding, dilation, groups, impl, strict=False):
    x, w = jnp.asarray(x), jnp.asarray(w)
    strides, pads, dilations = _conv_arguments(
        x, w, b, ndim=ndim, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    if not isinstance(strict, bool):
        raise ValueError(f"strict must be a bool, got {strict!r}")
    if strict:
        _check_strict_fit(x.shape[1:-1], w.shape[:ndim], strides, pads, dilations)
    # Every implementation needs one dtype; promote like jnp arithmetic does.
    dtype = jnp.result_type(x, w)
    conv = _select_impl(impl, x.shape, w.shape, strides, pads, dilations, groups, dtype)
    y = conv(x.astype(dtype), w.astype(dtype), strides, pads, dilations, groups)
    if b is not None:
        y = y + b
    return y


def conv1d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, impl="xla", strict=False):
    """1-D convolution (cross-correlation, as in every deep-learning library).

    Args:
      x: (N, L, C) input.
      w: (K, I, O) kernel with ``I = C / groups``; ``O`` divisible by ``groups``.
      b: optional (O,) bias.
      stride: int or 1 ints, >= 1.
      padding: int, 1 ints, 1 (low, high) pairs, "SAME" (output ``ceil(size / stride)``)
        or "VALID" (none). Pads with zeros.
      dilation: int or 1 ints, >= 1 (spacing between kernel taps).
      groups: number of channel groups (1 = dense, C = depthwise).
      impl: "xla" (``lax.conv_general_dilated``), "im2col" (unfold + matmul),
        "onednn" (2-D float32 only: oneDNN kernels on the CPU), "auto" (one of
        them per shape, :func:`jaxcnn.functional.conv_auto.auto_impl`) or
        "auto_xla" (the same rule without "onednn": partitionable by GSPMD).
      strict: if True, raise where the window does not tile the padded input,
        i.e. ``(size + P_lo + P_hi - K_eff)`` is not divisible by the stride
        (the slides' "7x7 input, 3x3 filter, stride 3: doesn't fit"), as
        :func:`jaxcnn.functional.conv_output_size` with ``strict=True``; if
        False (default), the last partial window is dropped (floor), as in
        every deep-learning library.

    Returns:
      (N, L', O), each spatial size
      ``floor((size + P_lo + P_hi - dilation * (K - 1) - 1) / stride) + 1``.

    Raises:
      ValueError: wrong rank, channel/group mismatch, bad stride/dilation/padding,
        kernel larger than the padded input, bias not (O,), unknown impl, or
        (``strict=True``) a window that does not tile.
    """
    return _conv(
        x, w, b, ndim=1, stride=stride, padding=padding, dilation=dilation, groups=groups, impl=impl,
        strict=strict,
    )


def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, impl="xla", strict=False):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    Args:
      x: (N, H, W, C) input.
      w: (KH, KW, I, O) kernel with ``I = C / groups``; ``O`` divisible by ``groups``.
      b: optional (O,) bias.
      stride: int or 2 ints, >= 1.
      padding: int, 2 ints, 2 (low, high) pairs, "SAME" (output ``ceil(size / stride)``)
        or "VALID" (none). Pads with zeros.
      dilation: int or 2 ints, >= 1 (spacing between kernel taps).
      groups: number of channel groups (1 = dense, C = depthwise).
      impl: "xla" (``lax.conv_general_dilated``), "im2col" (unfold + matmul),
        "onednn" (2-D float32 only: oneDNN kernels on the CPU), "auto" (one of
        them per shape, :func:`jaxcnn.functional.conv_auto.auto_impl`) or
        "auto_xla" (the same rule without "onednn": partitionable by GSPMD).
      strict: if True, raise where the window does not tile the padded input,
        i.e. ``(size + P_lo + P_hi - K_eff)`` is not divisible by the stride
        (the slides' "7x7 input, 3x3 filter, stride 3: doesn't fit"), as
        :func:`jaxcnn.functional.conv_output_size` with ``strict=True``; if
        False (default), the last partial window is dropped (floor), as in
        every deep-learning library.

    Returns:
      (N, H', W', O), each spatial size
      ``floor((size + P_lo + P_hi - dilation * (K - 1) - 1) / stride) + 1``.

    Raises:
      ValueError: wrong rank, channel/group mismatch, bad stride/dilation/padding,
        kernel larger than the padded input, bias not (O,), unknown impl, or
        (``strict=True``) a window that does not tile.
    """
    return _conv(
        x, w, b, ndim=2, stride=stride, padding=padding, dilation=dilation, groups=groups, impl=impl,
        strict=strict,
    )


def conv3d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, impl="xla", strict=False):
    """3-D convolution (cross-correlation, as in every deep-learning library).

    Args:
      x: (N, D, H, W, C) input.
      w: (KD, KH, KW, I, O) kernel with ``I = C / groups``; ``O`` divisible by ``groups``.
      b: optional (O,) bias.
      stride: int or 3 ints, >= 1.
      padding: int, 3 ints, 3 (low, high) pairs, "SAME" (output ``ceil(size / stride)``)
        or "VALID" (none). Pads with zeros.
      dilation: int or 3 ints, >= 1 (spacing between kernel taps).
      groups: number of channel groups (1 = dense, C = depthwise).
      impl: "xla" (``lax.conv_general_dilated``), "im2col" (unfold + matmul),
        "onednn" (2-D float32 only: oneDNN kernels on the CPU), "auto" (one of
        them per shape, :func:`jaxcnn.functional.conv_auto.auto_impl`) or
        "auto_xla" (the same rule without "onednn": partitionable by GSPMD).
      strict: if True, raise where the window does not tile the padded input,
        i.e. ``(size + P_lo + P_hi - K_eff)`` is not divisible by the stride
        (the slides' "7x7 input, 3x3 filter, stride 3: doesn't fit"), as
        :func:`jaxcnn.functional.conv_output_size` with ``strict=True``; if
        False (default), the last partial window is dropped (floor), as in
        every deep-learning library.

    Returns:
      (N, D', H', W', O), each spatial size
      ``floor((size + P_lo + P_hi - dilation * (K - 1) - 1) / stride) + 1``.

    Raises:
      ValueError: wrong rank, channel/group mismatch, bad stride/dilation/padding,
        kernel larger than the padded input, bias not (O,), unknown impl, or
        (``strict=True``) a window that does not tile.
    """
    return _conv(
        x, w, b, ndim=3, stride=stride, padding=padding, dilation=dilation, groups=groups, impl=impl,
        strict=strict,
    )
