"""The slides' simplified AlexNet (Krizhevsky, Sutskever & Hinton 2012), on one device.

No two-GPU channel split, so every conv sees all channels of the previous
layer: 62,378,344 parameters for 227x227x3 input and 1000 classes.

``conv_impl`` (every model here): the ``impl`` of each of its convolutions
(default ``"auto"``, see :mod:`jaxcnn.functional.conv`).
``dtype`` (every model here): the computation dtype of every layer (default
float32; ``jnp.bfloat16`` for mixed precision: parameters and batch statistics
stay float32, logits come out in ``dtype``).
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.functional.conv import DEFAULT_CONV_IMPL
from jaxcnn.nn import Conv, Dense, Dropout, Flatten, LocalResponseNorm, MaxPool, ReLU

__all__ = ["AlexNet"]

PAPER_LRN_SIZE = 5
PAPER_LRN_ALPHA = 1e-4  # the paper's alpha, applied to the SUM of squares


def _paper_lrn(name: str, dtype=None) -> LocalResponseNorm:
    # LocalResponseNorm averages the squares (alpha / size), the paper sums them.
    return LocalResponseNorm(
        size=PAPER_LRN_SIZE, alpha=PAPER_LRN_ALPHA * PAPER_LRN_SIZE, beta=0.75, k=2.0, dtype=dtype,
        name=name
    )


class AlexNet(nn.Module):
    """conv1 96@11x11/4 -> pool1 3/2 -> norm1 -> conv2 256@5x5 p2 -> pool2 3/2 -> norm2 ->
    conv3 384@3x3 p1 -> conv4 384@3x3 p1 -> conv5 256@3x3 p1 -> pool5 3/2 ->
    fc6 4096 -> fc7 4096 -> fc8 ``num_classes``.

    Every conv and fc6/fc7 is followed by a ReLU; fc6 and fc7 by dropout
    (``dropout_rate``, 0.5, active only with ``train=True``, rng stream
    ``"dropout"``). norm1/norm2 are local response normalization with the
    paper's ``n=5, alpha=1e-4, beta=0.75, k=2``; the paper does not divide
    alpha by n, so in :class:`~jaxcnn.nn.LocalResponseNorm`'s (PyTorch's)
    convention that is ``alpha = 5e-4``.

    Shapes for 227x227x3: conv1 55x55x96, pool1 27x27x96, conv2 27x27x256,
    pool2 13x13x256, conv3-5 13x13, pool5 6x6x256, so fc6 sees 9216 features
    (read from the shape: any input with ``H, W >= 67`` works). Output
    ``(N, num_classes)`` logits.
    """

    num_classes: int = 1000
    dropout_rate: float = 0.5
    conv_impl: str = DEFAULT_CONV_IMPL
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = Conv(96, (11, 11), stride=4, impl=self.conv_impl, dtype=self.dtype, name="conv1")(x)
        x = ReLU(name="relu1")(x)
        x = MaxPool(3, 2, name="pool1")(x)
        x = _paper_lrn("norm1", self.dtype)(x)
        x = Conv(256, (5, 5), padding=2, impl=self.conv_impl, dtype=self.dtype, name="conv2")(x)
        x = ReLU(name="relu2")(x)
        x = MaxPool(3, 2, name="pool2")(x)
        x = _paper_lrn("norm2", self.dtype)(x)
        x = Conv(384, (3, 3), padding=1, impl=self.conv_impl, dtype=self.dtype, name="conv3")(x)
        x = ReLU(name="relu3")(x)
        x = Conv(384, (3, 3), padding=1, impl=self.conv_impl, dtype=self.dtype, name="conv4")(x)
        x = ReLU(name="relu4")(x)
        x = Conv(256, (3, 3), padding=1, impl=self.conv_impl, dtype=self.dtype, name="conv5")(x)
        x = ReLU(name="relu5")(x)
        x = MaxPool(3, 2, name="pool5")(x)
        x = Flatten(name="flatten")(x)
        for layer in (6, 7):
            x = Dense(4096, dtype=self.dtype, name=f"fc{layer}")(x)
            x = ReLU(name=f"relu{layer}")(x)
            x = Dropout(self.dropout_rate, name=f"drop{layer}")(x, train)
        return Dense(self.num_classes, dtype=self.dtype, name="fc8")(x)
