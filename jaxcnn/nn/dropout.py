"""Dropout as a module: the ``"dropout"`` rng stream feeds :func:`jaxcnn.functional.activations.dropout`."""
from __future__ import annotations

from typing import ClassVar

from flax import linen as nn

from jaxcnn.functional import activations as act_ops

__all__ = ["Dropout"]


class Dropout(nn.Module):
    """Inverted dropout with DROP probability ``rate`` (not the keep probability).

    ``module(x, train=True)`` zeroes each element with probability ``rate`` and
    scales the rest by ``1 / (1 - rate)``; it draws its key from the ``"dropout"``
    rng stream, so apply it with ``rngs={"dropout": key}``. ``train=False``
    returns ``x`` unchanged. Shape and dtype are kept: ``(...) -> (...)``.
    """

    summary_kind: ClassVar[str] = "dropout"

    rate: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        use_rng = train and self.rate > 0.0
        key = self.make_rng("dropout") if use_rng else None
        return act_ops.dropout(x, self.rate, key=key, train=train)
