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


# Small inputs every architecture accepts, so tracing stays cheap.
_SMALL_INPUTS = {"lenet5": (28, 28, 1), "lenet5_classic": (32, 32, 1),
                 "lenet5_adaptive": (12, 12, 1), "alexnet": (67, 67, 3), "googlenet": (16, 16, 3),
                 "resnet18": (16, 16, 3), "resnet50": (16, 16, 3), "resnet20": (8, 8, 3),
                 "vgg11": (32, 32, 3)}


def _conv_impls(model, hwc) -> list[str]:
    """The ``impl`` of every conv layer ``model`` calls on a (1, *hwc) input."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    from jaxcnn.nn import ConnectionTableConv, Conv

    impls = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, (Conv, ConnectionTableConv)) and context.method_name == "__call__":
            impls.append(context.module.impl)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x),
                       jax.ShapeDtypeStruct((1, *hwc), jnp.float32))
    return impls


@pytest.mark.parametrize("name", sorted(_SMALL_INPUTS))
def test_conv_impl_reaches_every_conv_of_the_model(name):
    from jaxcnn.functional.conv import DEFAULT_CONV_IMPL

    assert models.get(name).conv_impl == DEFAULT_CONV_IMPL == "auto"
    impls = _conv_impls(models.get(name, conv_impl="im2col"), _SMALL_INPUTS[name])
    assert impls and set(impls) == {"im2col"}, impls


def test_every_model_has_a_conv_impl_field():
    for name in models.names():
        assert models.get(name, conv_impl="xla").conv_impl == "xla", name


def test_conv_impl_changes_the_traced_program():
    # The choice is part of the module, so jit caches keyed on it (a TrainState's
    # apply_fn) trace again: the programs differ in their convolution primitives.
    import jax
    import jax.numpy as jnp

    from jaxcnn import native

    x = jnp.zeros((2, 8, 8, 3))
    variables = models.get("resnet20").init(jax.random.PRNGKey(0), x)
    jaxprs = {impl: str(jax.make_jaxpr(models.get("resnet20", conv_impl=impl).apply)(variables, x))
              for impl in ("xla", "im2col", "auto", "auto_xla")}
    assert "conv_general_dilated" in jaxprs["xla"] and "conv_general_dilated" not in jaxprs["im2col"]
    assert jaxprs["auto_xla"] == jaxprs["xla"]  # 3x3 pad-1 convs: the rule picks XLA's
    assert ("jaxcnn_onednn_conv_fwd" in jaxprs["auto"]) == native.available()
    assert models.get("resnet20", conv_impl="auto") != models.get("resnet20", conv_impl="auto_xla")
