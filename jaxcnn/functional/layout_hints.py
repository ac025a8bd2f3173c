"""Hints for arrays in PyTorch's layouts: channels-first inputs and OIHW kernels.

jaxcnn's activations are channels-last (NLC, NHWC, NDHWC) and its kernels
spatial-first (KIO, HWIO, DHWIO). A channels-first input or a PyTorch-layout
kernel shows up as a channel mismatch; these helpers say which array looks
transposed and the transpose that fixes it, to append to that message.
"""
from __future__ import annotations

from collections.abc import Sequence

_CHANNELS_FIRST = {1: "NCL", 2: "NCHW", 3: "NCDHW"}
_CHANNELS_LAST = {1: "NLC", 2: "NHWC", 3: "NDHWC"}
_TORCH_KERNELS = {1: "OIK", 2: "OIHW", 3: "OIDHW"}
_KERNELS = {1: "KIO", 2: "HWIO", 3: "DHWIO"}


def channels_first_hint(x_shape: Sequence[int], channels: int, ndim: int) -> str:
    """A sentence when ``x_shape`` looks channels-first (axis 1 holds ``channels``), else ``""``."""
    # Channels-first images end in a spatial axis: as large as or larger than C, or equal to
    # the axis before it (square images); a channels-last H that happens to equal C does not.
    if (ndim in _CHANNELS_FIRST and len(x_shape) == ndim + 2 and x_shape[1] == channels and x_shape[-1] != channels
            and (x_shape[-1] > channels or (ndim > 1 and x_shape[-1] == x_shape[-2]))):
        order = (0, *range(2, ndim + 2), 1)
        return (f"; the input {tuple(x_shape)} looks channels-first ({_CHANNELS_FIRST[ndim]}, "
                f"PyTorch's layout): jaxcnn takes {_CHANNELS_LAST[ndim]}, use x.transpose{order}")
    return ""


def torch_kernel_hint(w_shape: Sequence[int], in_channels: int, groups: int, ndim: int) -> str:
    """A sentence when ``w_shape`` looks like PyTorch's (O, I, *K) kernel for ``in_channels``, else ``""``."""
    group_in = in_channels // groups if groups and in_channels % groups == 0 else None
    # Read as HWIO, an (O, I, KH, KW) kernel has "spatial" dims (O, I) and "channels" (KH, KW):
    # I matches the input, and the real spatial dims are no larger than O.
    if (len(w_shape) == ndim + 2 and group_in is not None and w_shape[1] == group_in
            and w_shape[-2] != group_in and max(w_shape[2:]) <= w_shape[0]):
        order = (*range(2, ndim + 2), 1, 0)
        return (f"; the kernel {tuple(w_shape)} looks like PyTorch's {_TORCH_KERNELS[ndim]} "
                f"(out, in, spatial...): jaxcnn takes {_KERNELS[ndim]}, use w.transpose{order}")
    return ""
