"""Window pooling over NHWC activations: max, average, Lp (power mean), distance-weighted, global.

Shapes (all functions here): ``x`` is ``(N, H, W, C)``; a window ``(KH, KW)``
moves with stride ``(SH, SW)`` (default: the window, i.e. non-overlapping)
over the input padded by ``(top, bottom), (left, right)``. The output is
``(N, H', W', C)`` with the usual floor formula per spatial dim::

    H' = floor((H + top + bottom - KH) / SH) + 1

Pooling acts on each channel separately and never mixes examples.

Adaptive pooling (a fixed output size for any input size) lives in :mod:`jaxcnn.functional.adaptive_pool`.
"""
from __future__ import annotations

import numbers

import numpy as np
import jax.numpy as jnp
from jax import lax

from jaxcnn.functional.args import (
    check_floating,
    check_ndim,
    check_window_fits,
    explicit_padding,
    positive_tuple,
)
from jaxcnn.functional.window_max import window_max

__all__ = [
    "max_pool2d",
    "avg_pool2d",
    "lp_pool2d",
    "global_avg_pool",
    "global_max_pool",
    "weighted_avg_pool2d",
]


def pool_geometry(x, window, stride, padding, *, op: str):
    """Validated ``(window, strides, pads)`` for a 2-D pool over NHWC ``x``.

    Shared by every windowed pool in the package (``op`` names the caller in
    error messages). Raises ValueError for a non-NHWC input, a window or
    stride below 1, a malformed or negative padding, a window larger than the
    padded input, or padding so large that a window could hold only padding
    (each side must be smaller than the window, so every output sees at least
    one input element; PyTorch is stricter and allows at most half a window).
    """
    check_ndim(x, 2, what=f"{op} input")
    window = positive_tuple(window, 2, "window")
    strides = window if stride is None else positive_tuple(stride, 2, "stride")
    spatial = tuple(x.shape[1:3])
    pads = explicit_padding(padding, spatial, window, strides)
    check_window_fits(spatial, window, pads, what="window")
    for k, (lo, hi) in zip(window, pads):
        if lo >= k or hi >= k:
            raise ValueError(
                f"{op}: padding {pads} must be smaller than the window {window} on every "
                f"side, otherwise some windows would contain only padding"
            )
    return window, strides, pads


def _as_nhwc(dims2d, fill):
    """Lift per-spatial-dim values (H, W) to the 4 NHWC dims."""
    return (fill,) + tuple(dims2d) + (fill,)


def _positive_finite(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
        and value > 0
    )


def _accumulation_dtype(dtype):
    """Sums of bf16/f16 values are accumulated in float32 to avoid round-off."""
    return jnp.promote_types(dtype, jnp.float32)


def _max_identity(dtype) -> np.ndarray:
    """The identity of max for ``dtype`` (-inf, or the lowest integer).

    Passing it as a concrete scalar of the input's dtype makes JAX lower to the
    reduce_window_max primitive, whose VJP/JVP rules are documented in max_pool2d.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return np.array(-np.inf, dtype)
    return np.array(jnp.iinfo(dtype).min, dtype)


def max_pool2d(x, window, stride=None, padding=0):
    """Max over each ``window`` of NHWC ``x``; output ``(N, H', W', C)``.

    Args:
      x: ``(N, H, W, C)``.
      window: ``KH`` or ``(KH, KW)``.
      stride: ``S`` or ``(SH, SW)``; ``None`` (default) means the window.
      padding: int, ``(PH, PW)``, ``((top, bottom), (left, right))``, ``"SAME"``
        or ``"VALID"``. Padded positions hold ``-inf`` so they never win.

    ``H' = floor((H + top + bottom - KH) / SH) + 1`` (likewise ``W'``).

    Gradient rule for ties (the VJP of ``lax.reduce_window`` max, determined by
    experiment and pinned by tests): each output's gradient goes, whole, to a
    single input -- the FIRST maximal element of its window in row-major order
    (top row first, left to right). Other tied elements get zero. When windows
    overlap, an input that is the chosen maximum of several windows receives
    the sum of their gradients. The forward-mode (JVP) rule picks the same
    element, and so does PyTorch's ``max_pool2d`` (padding never wins there).
    NaN handling: see :mod:`jaxcnn.functional.window_max`.

    Computed by :func:`jaxcnn.functional.window_max.window_max`: the value by
    ``lax.reduce_window``, the derivative by a cheap select over strided views
    (XLA:CPU's own reduce_window max derivative is an argmax plus a scatter),
    with exactly these rules; windows over 25 elements keep reduce_window's.
    """
    window, strides, pads = pool_geometry(x, window, stride, padding, op="max_pool2d")
    return window_max(x, window, strides, pads)


def _window_counts_1d(size: int, k: int, s: int, lo: int, hi: int) -> np.ndarray:
    """How many real (non-padding) inputs each 1-D window covers."""
    out = (size + lo + hi - k) // s + 1
    starts = np.arange(out) * s - lo
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


def avg_pool2d(x, window, stride=None, padding=0, count_include_pad=True):
    """Mean over each ``window`` of NHWC ``x``; output ``(N, H', W', C)``.

    Args:
      x: ``(N, H, W, C)``.
      window, stride, padding: as in :func:`max_pool2d`; padding is zeros.
      count_include_pad: if True (PyTorch's default), every window is divided
        by ``KH * KW``, padding included; if False, by the number of real
        inputs it covers (so border outputs are true means of real pixels).

    ``H' = floor((H + top + bottom - KH) / SH) + 1`` (likewise ``W'``).
    bf16/f16 inputs are summed in float32 and returned in their own dtype.
    Gradient: each output distributes its gradient equally (divided by the
    same count) to every input of its window.
    """
    window, strides, pads = pool_geometry(x, window, stride, padding, op="avg_pool2d")
    check_floating(x, "avg_pool2d")
    if not isinstance(count_include_pad, bool):
        raise ValueError(f"count_include_pad must be a bool, got {count_include_pad!r}")
    acc = x.astype(_accumulation_dtype(x.dtype))
    sums = lax.reduce_window(
        acc, np.array(0, acc.dtype), lax.add,
        _as_nhwc(window, 1), _as_nhwc(strides, 1), _as_nhwc(pads, (0, 0)),
    )
    if count_include_pad:
        counts = np.array(window[0] * window[1], dtype=np.float64)
    else:
        # The counts depend only on static shapes, so they are NumPy constants.
        per_dim = [
            _window_counts_1d(n, k, s, lo, hi)
            for n, k, s, (lo, hi) in zip(x.shape[1:3], window, strides, pads)
        ]
        counts = np.outer(per_dim[0], per_dim[1])[None, :, :, None].astype(np.float64)
    return (sums / counts.astype(acc.dtype)).astype(x.dtype)


def _abs_zero_subgradient(x):
    """``|x|`` whose derivative at 0 is 0 (``jnp.abs``'s is 1 there)."""
    return jnp.where(x > 0, x, jnp.where(x < 0, -x, jnp.zeros_like(x)))


def _window_views(x, window, strides, pads):
    """The ``KH * KW`` strided views of zero-padded ``x``, one per window offset.

    View ``(a, b)`` has shape ``(N, H', W', C)`` and holds, at output position
    ``(i, j)``, the input element at window offset ``(a, b)``: stacking them is
    im2col without the reshape.
    """
    padded = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out = [
        (n + lo + hi - k) // s + 1
        for n, k, s, (lo, hi) in zip(x.shape[1:3], window, strides, pads)
    ]
    batch, channels = x.shape[0], x.shape[-1]
    return [
        lax.slice(
            padded,
            (0, a, b, 0),
            (batch, a + (out[0] - 1) * strides[0] + 1, b + (out[1] - 1) * strides[1] + 1, channels),
            (1, strides[0], strides[1], 1),
        )
        for a in range(window[0])
        for b in range(window[1])
    ]


LP_FORMS = ("mean", "sum")


def lp_pool2d(x, p, window, stride=None, padding=0, *, form="mean"):
    """Lp pooling: the ``L_p`` norm of each window, as on the slides ("P = 1 -> average, P = inf -> max").

    Args:
      x: ``(N, H, W, C)``, floating.
      p: the power. ``form="mean"``: a number ``>= 1`` or ``float("inf")``.
        ``form="sum"``: a positive finite number.
      window, stride, padding: as in :func:`max_pool2d`; padding is zeros and
        counts in the window size (as ``avg_pool2d``'s ``count_include_pad=True``).
      form: which formula, keyword-only:

        - ``"mean"`` (default, the slides' power mean of ``|x|``)::

              y = ( (1 / (KH * KW)) * sum_{window} |x|**p ) ** (1/p)

          ``p = 1`` is ``avg_pool2d(|x|)``, ``p = 2`` the root mean square,
          ``p = inf`` is ``max_pool2d(|x|)``, and as ``p`` grows the value
          increases to that maximum. It is computed scaled by the window
          maximum ``m = max |x|``, ``y = m * (mean (|x| / m)**p) ** (1/p)``, so
          every power lies in ``[0, 1]``: a large finite ``p`` (64, 1000) never
          overflows, and the mean stays in ``[1 / (KH * KW), 1]``, so nothing
          underflows either. Negative inputs are fine (``|x|``); gradients are
          finite everywhere: 0 for an all-zero window, and ``|x|`` has
          subgradient 0 at 0. ``p = inf`` has max pooling's gradient (the first
          maximal ``|x|`` of each window gets it). Memory: ``KH * KW`` strided
          views of the output's size.

        - ``"sum"`` (PyTorch's ``torch.nn.functional.lp_pool2d`` /
          ``LPPool2d``)::

              y = ( sum_{window} x**p ) ** (1/p)

          no ``|x|``: ``p = 1`` is sum pooling (``KH * KW`` times the average),
          ``x**p`` of a negative ``x`` with non-integer ``p`` is NaN, large
          ``p`` overflows, and a window whose power-sum is 0 has an infinite
          gradient for ``p > 1``, all as in PyTorch. For a non-negative ``x``
          it is ``(KH * KW) ** (1/p)`` times the mean form.

    Output ``(N, H', W', C)``, ``H' = floor((H + top + bottom - KH) / SH) + 1``
    (likewise ``W'``), the input's dtype (bf16/f16 are computed in float32).
    """
    if form not in LP_FORMS:
        raise ValueError(f'lp_pool2d: form must be "mean" (the slides) or "sum" (PyTorch), got {form!r}')
    if form == "mean":
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or np.isnan(p) or not p >= 1:
            raise ValueError(
                f'lp_pool2d: p must be a number >= 1 or float("inf") for form="mean" '
                f"(the L_p norm of each window), got {p!r}"
            )
    elif not _positive_finite(p):
        raise ValueError(
            f'lp_pool2d: p must be a positive finite number for form="sum", got {p!r} '
            '(use form="mean" with p = float("inf"), or max_pool2d)'
        )
    window, strides, pads = pool_geometry(x, window, stride, padding, op="lp_pool2d")
    check_floating(x, "lp_pool2d")
    acc = jnp.asarray(x, _accumulation_dtype(x.dtype))
    if form == "sum":
        powered = acc if p == 1 else acc**p
        sums = lax.reduce_window(
            powered, np.array(0, acc.dtype), lax.add,
            _as_nhwc(window, 1), _as_nhwc(strides, 1), _as_nhwc(pads, (0, 0)),
        )
        return (sums if p == 1 else sums ** (1.0 / p)).astype(x.dtype)
    magnitude = _abs_zero_subgradient(acc)
    if np.isinf(p):
        return window_max(magnitude, window, strides, pads).astype(x.dtype)
    views = jnp.stack(_window_views(magnitude, window, strides, pads))  # (KH*KW, N, H', W', C)
    # Any positive constant scale gives the same function, so the scale carries no gradient.
    scale = lax.stop_gradient(jnp.max(views, axis=0))
    nonzero = scale > 0
    ratios = views / jnp.where(nonzero, scale, 1)
    if float(p).is_integer() and p <= 2**16:
        powered = lax.integer_pow(ratios, int(p))  # exact repeated products; derivative 0 at r = 0
    else:
        powered = ratios**p
    mean = jnp.mean(powered, axis=0)  # in [1 / (KH * KW), 1] where the window is not all zeros
    root = jnp.where(nonzero, mean, 1) ** (1.0 / p)
    return jnp.where(nonzero, scale * root, 0).astype(x.dtype)


def _gaussian_window_weights(window: tuple[int, int], sigma: float) -> np.ndarray:
    """``(KH, KW)`` weights ``exp(-d^2 / (2 sigma^2))`` normalized to sum 1; d from the window centre."""
    rows = np.arange(window[0]) - (window[0] - 1) / 2
    cols = np.arange(window[1]) - (window[1] - 1) / 2
    squared_distance = rows[:, None] ** 2 + cols[None, :] ** 2
    weights = np.exp(-squared_distance / (2.0 * sigma**2))
    return weights / weights.sum()


def weighted_avg_pool2d(x, window, stride=None, sigma=1.0):
    """Distance-weighted average pooling: a Gaussian-weighted mean of each window.

    Args:
      x: ``(N, H, W, C)``.
      window: ``KH`` or ``(KH, KW)``.
      stride: ``S`` or ``(SH, SW)``; ``None`` (default) means the window.
      sigma: the Gaussian's standard deviation in pixels, a positive number.

    Output ``(N, H', W', C)`` with ``H' = floor((H - KH) / SH) + 1`` (no padding),
    ``y = sum_{a,b} weight[a, b] * x[window position (a, b)]`` where::

        weight[a, b] = exp(-d^2 / (2 sigma^2)) / (sum of all such terms)
        d^2 = (a - (KH - 1) / 2)^2 + (b - (KW - 1) / 2)^2

    i.e. the weights sum to 1, are largest at the window's centre (between
    pixels for an even window), and tend to a plain average as sigma grows.
    Computed as a depthwise convolution; bf16/f16 accumulate in float32.
    """
    if not _positive_finite(sigma):
        raise ValueError(f"weighted_avg_pool2d: sigma must be a positive finite number, got {sigma!r}")
    window, strides, _ = pool_geometry(x, window, stride, 0, op="weighted_avg_pool2d")
    check_floating(x, "weighted_avg_pool2d")
    acc = x.astype(_accumulation_dtype(x.dtype))
    channels = x.shape[-1]
    weights = _gaussian_window_weights(window, float(sigma)).astype(acc.dtype)
    # one copy of the weights per channel; feature groups keep channels apart
    kernel = np.broadcast_to(weights[:, :, None, None], window + (1, channels))
    pooled = lax.conv_general_dilated(
        acc, jnp.asarray(kernel), strides, "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
        precision=lax.Precision.HIGHEST,
    )
    return pooled.astype(x.dtype)


def _check_global_input(x, op: str) -> tuple[int, ...]:
    if getattr(x, "ndim", None) not in (3, 4, 5):
        raise ValueError(
            f"{op}: expected NLC, NHWC or NDHWC input (rank 3-5, channels last), "
            f"got shape {getattr(x, 'shape', x)}"
        )
    if any(d == 0 for d in x.shape[1:-1]):
        raise ValueError(f"{op}: spatial dims must be non-empty, got shape {x.shape}")
    return tuple(range(1, x.ndim - 1))


def global_avg_pool(x):
    """Mean over every spatial position: ``(N, H, W, C) -> (N, C)``.

    Also accepts NLC ``(N, L, C)`` and NDHWC ``(N, D, H, W, C)``. bf16/f16 are
    averaged in float32 and returned in their own dtype.
    """
    axes = _check_global_input(x, "global_avg_pool")
    check_floating(x, "global_avg_pool")
    return jnp.mean(x.astype(_accumulation_dtype(x.dtype)), axis=axes).astype(x.dtype)


def global_max_pool(x):
    """Max over every spatial position: ``(N, H, W, C) -> (N, C)``.

    Also accepts NLC and NDHWC. Same gradient rule for ties as
    :func:`max_pool2d`: the first maximal position in row-major order gets the
    whole gradient (``jnp.max`` would instead split it among all ties).
    """
    axes = _check_global_input(x, "global_max_pool")
    full_window = (1,) + tuple(x.shape[1:-1]) + (1,)
    pooled = lax.reduce_window(x, _max_identity(x.dtype), lax.max, full_window, (1,) * x.ndim, "VALID")
    return pooled.reshape(x.shape[0], x.shape[-1])
