"""LeNet-5: the slides' version, LeCun et al.'s 1998 original, and a variable-input-size variant.

All take NHWC images and return ``(N, num_classes)`` logits; ``train`` is
accepted for the common model protocol (none of them has dropout or batch norm).

``conv_impl`` (every model here): the ``impl`` of each of its convolutions
(default ``"auto"``, see :mod:`jaxcnn.functional.conv`).
``dtype`` (every model here): the computation dtype of every layer (default
float32; ``jnp.bfloat16`` for mixed precision: parameters and batch statistics
stay float32, logits come out in ``dtype``).
"""
from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.functional.init import initializer
from jaxcnn.nn import (
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    ConnectionTableConv,
    Conv,
    Dense,
    Flatten,
    LECUN_C3_TABLE,
    MaxPool,
    ReLU,
    ScaledTanh,
    Sigmoid,
    Subsampling,
    Tanh,
)

__all__ = ["LeNet5", "LeNet5Adaptive", "LeNet5Classic"]


def _kernel_inits(name: str | None) -> dict[str, dict]:
    """``{"conv": kwargs, "dense": kwargs}`` for the layers: empty for None (their defaults)."""
    if name is None:
        return {"conv": {}, "dense": {}}
    init = initializer(name)
    return {"conv": {"kernel_init": init}, "dense": {"kernel_init": init}}


class LeNet5(nn.Module):
    """The slides' LeNet-5 (1,256,080 params for 28x28x1 input and 10 classes).

    conv1 20@5x5 pad 2 -> relu -> pool1 max 2/2 -> conv2 50@5x5 pad 2 -> relu ->
    pool2 max 2/2 -> flatten -> fc3 500 -> relu -> fc4 ``num_classes``.

    Input ``(N, H, W, C)``, any ``H, W >= 4``; the convs keep the size and each
    pool halves it (floor), so fc3 sees ``floor(floor(H/2)/2) * floor(floor(W/2)/2) * 50``
    features -- 2450 for 28x28, 200 for 8x8 -- read from the shape at init.
    Output ``(N, num_classes)`` logits.

    ``kernel_init``: None (default) keeps each layer's own initializer (He normal
    for the convs, LeCun normal for the dense layers); a name from
    :data:`jaxcnn.functional.init.INITIALIZERS` (e.g. ``"torch_uniform"``,
    PyTorch's default) draws every conv and dense kernel with it. Biases start at 0.
    """

    num_classes: int = 10
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32
    kernel_init: str | None = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no train/eval difference in this model
        init = _kernel_inits(self.kernel_init)
        x = Conv(20, (5, 5), padding=2, impl=self.conv_impl, dtype=self.dtype, name="conv1",
                 **init["conv"])(x)
        x = ReLU(name="relu1")(x)
        x = MaxPool(2, 2, name="pool1")(x)
        x = Conv(50, (5, 5), padding=2, impl=self.conv_impl, dtype=self.dtype, name="conv2",
                 **init["conv"])(x)
        x = ReLU(name="relu2")(x)
        x = MaxPool(2, 2, name="pool2")(x)
        x = Flatten(name="flatten")(x)
        x = Dense(500, dtype=self.dtype, name="fc3", **init["dense"])(x)
        x = ReLU(name="relu3")(x)
        return Dense(self.num_classes, dtype=self.dtype, name="fc4", **init["dense"])(x)


class LeNet5Adaptive(nn.Module):
    """LeNet-5 for images of any size: an adaptive pool replaces pool2.

    As in the slides' "final pooling layer outputs four sets of summary
    statistics, one for each quadrant": pool2 is an adaptive ``pool`` ("avg" or
    "max") to a fixed ``pooled_size`` grid (default 2x2 = the four quadrants),
    so fc3 always sees ``pooled_size[0] * pooled_size[1] * 50`` features
    whatever the input size.

    Input ``(N, H, W, C)`` with ``floor(H/2), floor(W/2) >= 1``; output ``(N, num_classes)``.
    Parameters (1 input channel, 10 classes, 2x2 grid): conv1 520 + conv2 25,050
    + fc3 100,500 + fc4 5,010 = 131,080 at every input size.
    """

    num_classes: int = 10
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32
    pooled_size: tuple[int, int] = (2, 2)
    pool: str = "avg"

    _POOLS: ClassVar[dict] = {"avg": AdaptiveAvgPool, "max": AdaptiveMaxPool}

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train
        if self.pool not in self._POOLS:
            raise ValueError(f'pool must be "avg" or "max", got {self.pool!r}')
        x = Conv(20, (5, 5), padding=2, impl=self.conv_impl, dtype=self.dtype, name="conv1")(x)
        x = ReLU(name="relu1")(x)
        x = MaxPool(2, 2, name="pool1")(x)
        x = Conv(50, (5, 5), padding=2, impl=self.conv_impl, dtype=self.dtype, name="conv2")(x)
        x = ReLU(name="relu2")(x)
        x = self._POOLS[self.pool](self.pooled_size, name="pool2")(x)
        x = Flatten(name="flatten")(x)
        x = Dense(500, dtype=self.dtype, name="fc3")(x)
        x = ReLU(name="relu3")(x)
        return Dense(self.num_classes, dtype=self.dtype, name="fc4")(x)


class LeNet5Classic(nn.Module):
    """LeNet-5 of LeCun, Bottou, Bengio & Haffner 1998 on 32x32 input (60,850 params).

    C1 6@5x5 (28x28) -> S2 (14x14) -> C3 16@5x5 (10x10) -> S4 (5x5) ->
    C5 120@5x5 (1x1) -> F6 84 -> output ``num_classes``; every layer but the
    output is followed by the ``activation``: LeCun's ``1.7159 * tanh(2/3 * a)``
    (``"scaled_tanh"``, the paper and the default), the slides' ``"sigmoid"``
    (their "sigmoid by default"), ``"tanh"`` or ``"relu"``. The activation
    has no parameters, so the count below holds for every choice.

    Choices, where the paper leaves room or is not reproducible here:
      - S2/S4 are :class:`~jaxcnn.nn.Subsampling`: per map a trainable
        coefficient and bias on the 2x2 average (the paper's sum; the factor 4
        is absorbed in the coefficient) -- 12 and 32 parameters.
      - C3 uses the paper's Table I (:data:`~jaxcnn.nn.LECUN_C3_TABLE`) through
        :class:`~jaxcnn.nn.ConnectionTableConv`: 60 connected 5x5 filters + 16
        biases = 1,516 parameters, instead of 2,416 fully connected.
      - The output layer is a Dense layer giving logits (850 parameters), not
        the paper's Euclidean RBF units with fixed +-1 code vectors.
    Parameters: C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 + F6 10,164 =
    60,000 (the paper's count) + output 850 = 60,850.

    Input ``(N, 32, 32, C)`` (C = 1 for MNIST padded to 32x32). Other sizes work
    when C5 is still reachable: H, W >= 32 gives C5 a larger map, which is
    flattened into F6. Output ``(N, num_classes)``.
    """

    num_classes: int = 10
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32
    activation: str = "scaled_tanh"

    ACTIVATIONS: ClassVar[dict] = {"scaled_tanh": ScaledTanh, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU}

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train
        if self.activation not in self.ACTIVATIONS:
            raise ValueError(
                f"lenet5_classic: activation must be one of {', '.join(map(repr, self.ACTIVATIONS))}, "
                f"got {self.activation!r}"
            )
        act = self.ACTIVATIONS[self.activation]
        x = Conv(6, (5, 5), impl=self.conv_impl, dtype=self.dtype, name="c1")(x)
        x = act(name="c1_act")(x)
        x = Subsampling(2, 2, dtype=self.dtype, name="s2")(x)
        x = act(name="s2_act")(x)
        x = ConnectionTableConv(LECUN_C3_TABLE, (5, 5), impl=self.conv_impl, dtype=self.dtype, name="c3")(x)
        x = act(name="c3_act")(x)
        x = Subsampling(2, 2, dtype=self.dtype, name="s4")(x)
        x = act(name="s4_act")(x)
        x = Conv(120, (5, 5), impl=self.conv_impl, dtype=self.dtype, name="c5")(x)
        x = act(name="c5_act")(x)
        x = Flatten(name="flatten")(x)
        x = Dense(84, dtype=self.dtype, name="f6")(x)
        x = act(name="f6_act")(x)
        return Dense(self.num_classes, dtype=self.dtype, name="output")(x)
