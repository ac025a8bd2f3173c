"""Model names -> constructors and input shapes: ``get("resnet20", num_classes=100)``,
``names()``, ``input_shape("resnet20") == (32, 32, 3)``."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

from flax import linen as nn

from jaxcnn.models import alexnet, googlenet, lenet, resnet, vgg

__all__ = ["get", "names", "input_shape", "MODELS", "INPUT_SHAPES"]

# Every constructor returns an unbound flax Module called model(x, train=...).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet.LeNet5,
    "lenet5_classic": lenet.LeNet5Classic,
    "lenet5_adaptive": lenet.LeNet5Adaptive,
    "alexnet": alexnet.AlexNet,
    "vgg11": vgg.VGG11,
    "vgg13": vgg.VGG13,
    "vgg16": vgg.VGG16,
    "vgg19": vgg.VGG19,
    "googlenet": googlenet.GoogLeNet,
    "resnet18": resnet.ResNet18,
    "resnet34": resnet.ResNet34,
    "resnet50": resnet.ResNet50,
    "resnet152": resnet.ResNet152,
    "resnet20": resnet.ResNet20,
    "resnet32": resnet.ResNet32,
    "resnet44": resnet.ResNet44,
    "resnet56": resnet.ResNet56,
    "resnet110": resnet.ResNet110,
}

# Input (height, width, channels) each model was designed for; every name in MODELS has one.
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "lenet5": (28, 28, 1),
    "lenet5_classic": (32, 32, 1),
    "lenet5_adaptive": (28, 28, 1),
    "alexnet": (227, 227, 3),
    "vgg11": (224, 224, 3),
    "vgg13": (224, 224, 3),
    "vgg16": (224, 224, 3),
    "vgg19": (224, 224, 3),
    "googlenet": (224, 224, 3),
    "resnet18": (224, 224, 3),
    "resnet34": (224, 224, 3),
    "resnet50": (224, 224, 3),
    "resnet152": (224, 224, 3),
    "resnet20": (32, 32, 3),
    "resnet32": (32, 32, 3),
    "resnet44": (32, 32, 3),
    "resnet56": (32, 32, 3),
    "resnet110": (32, 32, 3),
}


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def _fields(constructor) -> list[str]:
    """The keyword arguments a constructor (a Module class or a partial of one) accepts."""
    cls = constructor.func if isinstance(constructor, partial) else constructor
    fixed = set(constructor.keywords) if isinstance(constructor, partial) else set()
    return [
        f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name") and f.name not in fixed
    ]


def get(name: str, **kwargs) -> nn.Module:
    """The model registered as ``name``, built with ``kwargs`` (e.g. ``num_classes=10``).

    Every model accepts ``conv_impl`` (default ``"auto"``,
    :data:`jaxcnn.functional.conv.DEFAULT_CONV_IMPL`): the ``impl`` of each of
    its convolutions, and ``dtype`` (default float32): the computation dtype of
    every layer (``jnp.bfloat16`` or ``"bfloat16"`` for mixed precision;
    parameters and batch statistics stay float32).

    Raises ValueError for an unknown name (listing the valid ones) or a
    keyword the model does not have (listing the ones it has).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(names())}")
    constructor = MODELS[name]
    accepted = _fields(constructor)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; it accepts: {', '.join(accepted)}"
        )
    return constructor(**kwargs)


def input_shape(name: str) -> tuple[int, int, int]:
    """The input ``(H, W, C)`` model ``name`` was designed for, e.g. ``(32, 32, 3)`` for resnet20.

    ``lenet5_adaptive`` accepts any size; its entry is MNIST's. Raises ValueError
    for an unknown name (listing the valid ones).
    """
    if name not in INPUT_SHAPES:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(names())}")
    return INPUT_SHAPES[name]
