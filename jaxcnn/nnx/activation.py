"""Activation layers for NNX (no parameters): each calls :mod:`jaxcnn.functional.activations`.

Shapes are kept, ``(...) -> (...)``, except :class:`Maxout` ``(..., C) -> (..., C / num_pieces)``.
"""
from __future__ import annotations

from typing import ClassVar

from flax import nnx

from jaxcnn.functional import activations as act_ops

__all__ = ["ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "ScaledTanh", "Maxout"]


class _Activation(nnx.Module):
    summary_kind: ClassVar[str] = "activation"


class ReLU(_Activation):
    """``max(x, 0)``."""

    def __call__(self, x):
        return act_ops.relu(x)


class LeakyReLU(_Activation):
    """``x`` if ``x > 0`` else ``alpha * x``."""

    def __init__(self, alpha: float = 0.01):
        self.alpha = alpha

    def __call__(self, x):
        return act_ops.leaky_relu(x, self.alpha)


class ELU(_Activation):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def __call__(self, x):
        return act_ops.elu(x, self.alpha)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    def __call__(self, x):
        return act_ops.sigmoid(x)


class Tanh(_Activation):
    """``tanh(x)``."""

    def __call__(self, x):
        return act_ops.tanh(x)


class ScaledTanh(_Activation):
    """``amplitude * tanh(slope * x)``; LeCun et al. 1998's ``1.7159 * tanh(2/3 x)`` by default."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0):
        self.amplitude, self.slope = amplitude, slope

    def __call__(self, x):
        return self.amplitude * act_ops.tanh(self.slope * x)


class Maxout(_Activation):
    """Max over ``num_pieces`` consecutive channels: ``(..., C) -> (..., C / num_pieces)``."""

    def __init__(self, num_pieces: int):
        self.num_pieces = num_pieces

    def __call__(self, x):
        return act_ops.maxout(x, self.num_pieces)
