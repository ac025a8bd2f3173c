"""What :mod:`jaxcnn.summary` reads from a layer module: its kind and window geometry.

The jaxcnn.nn summary protocol: every layer module class has a
``summary_kind: ClassVar[str]`` (one of :data:`KINDS`); conv and locally
connected modules expose ``kernel_size``, ``stride``, ``dilation`` and
``groups``; pool modules expose ``window`` and ``stride``, or ``output_size``
for adaptive pooling (PyTorch's bins, see
:func:`jaxcnn.functional.adaptive_pool.adaptive_bins`); a pool with neither pools globally
over its input. Defaults when an attribute is absent: stride 1 (pool: its
window), dilation 1, groups 1.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxcnn.functional.args import positive_tuple
from jaxcnn.functional.adaptive_pool import adaptive_bins
from jaxcnn.summary.receptive_field import Field, compose

# Values of the ``summary_kind`` class attribute of jaxcnn.nn layer modules.
KINDS = frozenset(
    {"conv", "pool", "dense", "norm", "activation", "flatten", "dropout", "block", "local"}
)
# Kinds whose output is a grid of windows over their input: they compose the
# receptive field with their window.
WINDOWED_KINDS = frozenset({"conv", "pool", "local"})
# Kinds whose rows report a receptive field: the windowed ones, and blocks (the
# field of the block's output, the largest over its branches).
FIELD_KINDS = WINDOWED_KINDS | {"block"}

# Attribute names read from a module, first match wins. The protocol names come
# first; the alternatives are flax.linen's spellings of the same hyperparameters.
_KERNEL_ATTRS = ("kernel_size",)
_WINDOW_ATTRS = ("window", "window_shape")
_STRIDE_ATTRS = ("stride", "strides")
_DILATION_ATTRS = ("dilation", "kernel_dilation")
_GROUPS_ATTRS = ("groups", "feature_group_count")
_OUTPUT_SIZE_ATTRS = ("output_size",)


@dataclasses.dataclass
class LayerCall:
    """What the interceptor of :func:`jaxcnn.summary.summarize` saw of one ``__call__``."""

    index: int
    path: tuple[str, ...]
    module: nn.Module
    kind: str | None
    input_shape: tuple[int, ...] | None
    outputs: list[jax.ShapeDtypeStruct] = dataclasses.field(default_factory=list)
    input_field: Field | None = None
    output_field: Field | None = None


def summary_kind_of(layer: nn.Module) -> str | None:
    """``layer``'s ``summary_kind`` (None outside the protocol); ValueError if not in KINDS."""
    kind = getattr(type(layer), "summary_kind", None)
    if kind is not None and kind not in KINDS:
        raise ValueError(
            f"{type(layer).__name__}.summary_kind is {kind!r}; expected one of {sorted(KINDS)}"
        )
    return kind


def attribute(call: LayerCall, names: Sequence[str], *, default=None, required: bool = True):
    """The first of the attributes ``names`` the module sets (not None), else ``default``.

    Raises ValueError naming the protocol when there is neither a value nor a
    default and ``required`` is true.
    """
    for attr in names:
        value = getattr(call.module, attr, None)
        if value is not None:
            return value
    if default is None and required:
        raise ValueError(
            f"{display_name(call)} ({type(call.module).__name__}, summary_kind "
            f"{call.kind!r}) has no attribute {names[0]!r}; the summary protocol needs "
            f"kernel_size (pool: window), stride, dilation and groups on conv/pool/local modules"
        )
    return default


def window_geometry(call: LayerCall) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(window, stride, dilation) of a conv/pool/local layer, one entry per spatial dim."""
    if call.input_shape is None or len(call.input_shape) < 3:
        raise ValueError(
            f"{display_name(call)} (summary_kind {call.kind!r}) was called on input of shape "
            f"{call.input_shape}; expected (batch, spatial..., channels)"
        )
    spatial = call.input_shape[1:-1]
    n = len(spatial)
    if call.kind == "pool":
        output_size = attribute(call, _OUTPUT_SIZE_ATTRS, required=False)
        if output_size is not None:
            return adaptive_geometry(call, spatial, output_size)
        window = attribute(call, _WINDOW_ATTRS, required=False)
        if window is None:  # global pooling: one window over the whole input
            return tuple(spatial), (1,) * n, (1,) * n
        window = positive_tuple(window, n, "window")
        # A pool's stride defaults to its window (non-overlapping pooling).
        stride = positive_tuple(attribute(call, _STRIDE_ATTRS, default=window), n, "stride")
    else:
        window = positive_tuple(attribute(call, _KERNEL_ATTRS), n, "kernel_size")
        stride = positive_tuple(attribute(call, _STRIDE_ATTRS, default=1), n, "stride")
    dilation = positive_tuple(attribute(call, _DILATION_ATTRS, default=1), n, "dilation")
    return window, stride, dilation


def adaptive_geometry(
    call: LayerCall, spatial: Sequence[int], output_size
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(window, stride, dilation) bounding an adaptive pool's bins on this input.

    Bin ``i`` of a dim of size ``H`` pooled to ``H'`` covers ``[floor(i*H/H'),
    ceil((i+1)*H/H'))``: bins differ in size by one and their starts are not
    evenly spaced, so the window is the largest bin and the stride the largest
    gap between starts (the receptive field reported is that of the largest
    bin). ``output_size``: an int, or one entry per dim (None keeps that dim).
    """
    n = len(spatial)
    sizes = (output_size,) * n if isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != n or not all(
        s is None or (isinstance(s, int) and not isinstance(s, bool) and s >= 1) for s in sizes
    ):
        raise ValueError(
            f"{display_name(call)}: output_size must be an int >= 1 or {n} of them "
            f"(None keeps a dim), got {output_size!r}"
        )
    window, stride = [], []
    for size, out in zip(spatial, sizes):
        starts, ends = adaptive_bins(size, size if out is None else out)
        window.append(int((ends - starts).max()))
        stride.append(int(max(starts[1:] - starts[:-1], default=1)))
    return tuple(window), tuple(stride), (1,) * n


def output_field(call: LayerCall, propagated: Field | None) -> Field | None:
    """Field of a layer's output: composed for windowed layers, else as propagated."""
    if call.kind in WINDOWED_KINDS:
        if call.input_field is None:
            return None
        window, stride, dilation = window_geometry(call)
        return compose(call.input_field, window=window, stride=stride, dilation=dilation)
    if call.kind in ("dense", "flatten"):
        # A dense layer on a feature map acts per position (a 1x1 conv); after a
        # flatten there is no spatial map left.
        keeps_map = (
            call.outputs
            and call.input_shape is not None
            and len(call.outputs[0].shape) == len(call.input_shape) >= 3
        )
        return call.input_field if keeps_map else None
    return propagated


def multiply_adds(call: LayerCall, output: jax.ShapeDtypeStruct, kernel_shape) -> int:
    """Multiply-adds of one layer call for the whole batch (0 for non-weight layers).

    conv/dense with a ``kernel`` parameter: (output positions) x (kernel
    elements); local: N·H'·W'·O·KH·KW·C; conv without a kernel parameter:
    N·H'·W'·O·KH·KW·C/groups from the attributes. ``output`` is the layer's
    (first) output, ``kernel_shape`` its ``kernel`` parameter's shape or None.
    """
    out_elements = math.prod(output.shape)
    if call.kind in ("conv", "dense") and kernel_shape is not None and output.shape:
        # Every output position (N·H'·W' of them) applies the whole kernel once:
        # conv N·H'·W'·(KH·KW·C/groups·O), dense N·(in·out). Counting the stored
        # weights also gets sparse kernels right (LeNet's C3 connection table).
        return out_elements // output.shape[-1] * math.prod(kernel_shape)
    if call.kind in ("conv", "local"):
        # A locally connected layer has its own weights at every position, so
        # the stored kernel is H'·W' times too big: count from the geometry.
        window, _, _ = window_geometry(call)
        in_channels = call.input_shape[-1]
        groups = attribute(call, _GROUPS_ATTRS, default=1) if call.kind == "conv" else 1
        if not isinstance(groups, int) or groups < 1 or in_channels % groups:
            raise ValueError(
                f"{display_name(call)}: groups must be a positive int dividing the "
                f"{in_channels} input channels, got {groups!r}"
            )
        return out_elements * math.prod(window) * in_channels // groups
    if call.kind == "dense" and call.input_shape:
        return out_elements * call.input_shape[-1]
    return 0


def connections(call: LayerCall, output: jax.ShapeDtypeStruct, macs: int, has_bias: bool) -> int:
    """LeCun's connection count of one layer call, for ONE example (LeCun et al. 1998).

    Every output unit counts its inputs plus one for a bias, so conv C1 of
    LeNet-5 has ``(5*5 + 1) * 6 * 28 * 28 = 122,304`` and subsampling S2
    ``(2*2 + 1) * 6 * 14 * 14 = 5,880``:

      conv / local / dense: ``macs / N`` (output units times their inputs;
        a connection-table conv counts only its connections) plus, with a
        bias, one per output unit;
      pool: output units times the window size (for an adaptive pool, its
        largest bin; global pooling: the whole input), plus one per unit for
        a pool with a ``bias`` parameter (LeNet's subsampling);
      other kinds (activations, norms, flatten, dropout, blocks): 0.
    """
    if not output.shape:
        return 0
    batch = output.shape[0]
    units = math.prod(output.shape) // batch
    bias = units if has_bias else 0
    if call.kind in ("conv", "local", "dense"):
        return macs // batch + bias
    if call.kind == "pool":
        window, _, _ = window_geometry(call)
        return units * math.prod(window) + bias
    return 0


def display_name(call: LayerCall) -> str:
    """Dotted module path of the call; the class name for the root module."""
    return ".".join(call.path) if call.path else type(call.module).__name__
