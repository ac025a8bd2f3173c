"""models.get / models.names: the registry's contents and its errors."""
import inspect

import pytest

from jaxcnn import models

EXPECTED_NAMES = [
    "alexnet",
    "googlenet",
    "lenet5",
    "lenet5_adaptive",
    "lenet5_classic",
    "resnet110",
    "resnet152",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
]


def test_names_lists_every_model_sorted():
    assert models.names() == EXPECTED_NAMES


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'; valid names: alexnet, googlenet, .*vgg19"):
        models.get("resnet19")


def test_unknown_option_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"model 'lenet5' has no option\(s\) dropout; it accepts: num_classes"):
        models.get("lenet5", dropout=0.5)


def test_options_fixed_by_the_family_cannot_be_overridden():
    with pytest.raises(ValueError, match="has no option.*depth"):
        models.get("resnet20", depth=56)


def test_get_passes_options_through():
    model = models.get("resnet20", num_classes=100, zero_init_last_norm=True, bn_axis_name="batch")
    assert (model.depth, model.num_classes, model.zero_init_last_norm, model.bn_axis_name) == (20, 100, True, "batch")
    assert models.get("vgg16").stages[-1] == (512, 512, 512)


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_every_model_takes_train_defaulting_to_false_and_num_classes(name):
    model = models.get(name, num_classes=7)
    assert model.num_classes == 7
    parameter = inspect.signature(type(model).__call__).parameters["train"]
    assert parameter.default is False


def test_every_model_has_an_input_shape_that_it_accepts():
    assert sorted(models.INPUT_SHAPES) == models.names()
    assert models.input_shape("resnet20") == (32, 32, 3)
    assert models.input_shape("alexnet") == (227, 227, 3)
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'; valid names: alexnet"):
        models.input_shape("resnet19")
