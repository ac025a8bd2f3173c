"""Adaptive pooling modules: a fixed output grid for any input size (PyTorch's bins).

They wrap :mod:`jaxcnn.functional.adaptive_pool`. Unlike window pools they have
no fixed window or stride (both depend on the input size); :mod:`jaxcnn.summary`
reads ``output_size`` instead.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from flax import linen as nn

from jaxcnn.functional import adaptive_pool as adaptive_ops

__all__ = ["AdaptiveAvgPool", "AdaptiveMaxPool"]


class AdaptiveAvgPool(nn.Module):
    """Mean over each adaptive bin: ``(N, H, W, C) -> (N, H', W', C)``, ``(H', W') = output_size``.

    Output row ``i`` averages input rows ``floor(i * H / H')`` to
    ``ceil((i + 1) * H / H') - 1`` (likewise columns). ``output_size`` is an
    int (square) or ``(H', W')``; ``None`` in a dim keeps the input size.
    """

    summary_kind: ClassVar[str] = "pool"

    output_size: int | Sequence[int | None]

    @nn.compact
    def __call__(self, x):
        return adaptive_ops.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool(nn.Module):
    """Max over each adaptive bin: ``(N, H, W, C) -> (N, H', W', C)``, ``(H', W') = output_size``.

    Same bins as :class:`AdaptiveAvgPool`.
    """

    summary_kind: ClassVar[str] = "pool"

    output_size: int | Sequence[int | None]

    @nn.compact
    def __call__(self, x):
        return adaptive_ops.adaptive_max_pool2d(x, self.output_size)
