"""Say which model needs which input when a model cannot run on a dataset's images.

A model built for 227x227x3 images fails deep inside a layer on 8x8x1 digits
("kernel (11, 11) ... is larger than the padded input (8, 8)"). The training
loop initialises the model through :func:`init_on_dataset_images`, which
re-raises such a failure naming the model, the input size it was designed for
(:func:`jaxcnn.models.input_shape`) and the dataset's image size.
"""
from __future__ import annotations

from collections.abc import Callable

from jaxcnn import models


def _hwc(shape) -> str:
    return "x".join(str(int(v)) for v in shape)


def model_input_mismatch(model_name: str, dataset_name: str, image_shape, error: Exception) -> ValueError:
    """A ValueError: model ``model_name`` cannot run on ``dataset_name``'s ``image_shape`` (H, W, C) images."""
    try:
        needed = f"it was built for {_hwc(models.input_shape(model_name))} images (H x W x C)"
    except ValueError:  # a model outside the registry
        needed = "it was built for another input size"
    return ValueError(
        f"model {model_name!r} cannot run on {dataset_name} images of {_hwc(image_shape)}: "
        f"{needed}; choose a model for {_hwc(image_shape)} inputs (e.g. lenet5_adaptive takes "
        f"any size; `jaxcnn summary MODEL` shows a model's input) -- the layer said: {error}"
    )


def init_on_dataset_images(init: Callable, model_name: str, dataset_name: str, image_shape):
    """``init()`` with a ValueError from the model's layers re-raised by :func:`model_input_mismatch`."""
    try:
        return init()
    except ValueError as error:
        raise model_input_mismatch(model_name, dataset_name, image_shape, error) from error
