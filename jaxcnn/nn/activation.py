"""Activation modules, so nonlinearities appear as named rows in a model summary.

Each wraps the function of the same name in :mod:`jaxcnn.functional.activations`
and keeps the input's shape and dtype (``Maxout`` divides the channels).
"""
from __future__ import annotations

from typing import ClassVar

from flax import linen as nn

from jaxcnn.functional import activations as act_ops

__all__ = ["ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "ScaledTanh", "Maxout"]


class _Activation(nn.Module):
    summary_kind: ClassVar[str] = "activation"


class ReLU(_Activation):
    """``max(x, 0)``; ``(...) -> (...)``."""

    @nn.compact
    def __call__(self, x):
        return act_ops.relu(x)


class LeakyReLU(_Activation):
    """``x if x > 0 else alpha * x``; ``(...) -> (...)``."""

    alpha: float = 0.01

    @nn.compact
    def __call__(self, x):
        return act_ops.leaky_relu(x, self.alpha)


class ELU(_Activation):
    """``x if x > 0 else alpha * (exp(x) - 1)``; ``(...) -> (...)``."""

    alpha: float = 1.0

    @nn.compact
    def __call__(self, x):
        return act_ops.elu(x, self.alpha)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``; ``(...) -> (...)``."""

    @nn.compact
    def __call__(self, x):
        return act_ops.sigmoid(x)


class Tanh(_Activation):
    """``tanh(x)``; ``(...) -> (...)``."""

    @nn.compact
    def __call__(self, x):
        return act_ops.tanh(x)


class ScaledTanh(_Activation):
    """LeCun's squashing function ``amplitude * tanh(slope * x)``; ``(...) -> (...)``.

    The defaults ``1.7159 * tanh(2/3 * x)`` (LeCun et al. 1998, Appendix A) make
    ``f(1) = 1`` and ``f(-1) = -1`` with the largest second derivative at +-1.
    """

    amplitude: float = 1.7159
    slope: float = 2.0 / 3.0

    @nn.compact
    def __call__(self, x):
        return self.amplitude * act_ops.tanh(self.slope * x)


class Maxout(_Activation):
    """Max over contiguous groups of ``num_pieces`` channels: ``(..., C) -> (..., C // num_pieces)``."""

    num_pieces: int

    @nn.compact
    def __call__(self, x):
        return act_ops.maxout(x, self.num_pieces)
