"""Every model through jax.eval_shape only (no compile): exact parameter counts, output shapes
in train and eval, the slides' intermediate sizes, and the summary protocol of every layer."""
import math

import jax
import jax.numpy as jnp
import pytest
from flax import linen as nn

from jaxcnn import models

# (name, input HWC, parameter count of the "params" collection for 1000/10 classes).
PUBLISHED = [
    ("lenet5", (28, 28, 1), 1_256_080),
    ("lenet5_classic", (32, 32, 1), 60_850),  # LeCun's 60,000 + a 84x10 dense output
    ("lenet5_adaptive", (28, 28, 1), 1_256_080 - (2450 - 200) * 500),  # fc3 sees 2x2x50
    ("alexnet", (227, 227, 3), 62_378_344),
    ("vgg11", (224, 224, 3), 132_863_336),
    ("vgg13", (224, 224, 3), 133_047_848),  # torchvision vgg13
    ("vgg16", (224, 224, 3), 138_357_544),
    ("vgg19", (224, 224, 3), 143_667_240),  # torchvision vgg19
    ("googlenet", (224, 224, 3), 6_998_552),
    ("resnet18", (224, 224, 3), 11_689_512),
    ("resnet34", (224, 224, 3), 21_797_672),
    ("resnet50", (224, 224, 3), 25_557_032),
    ("resnet152", (224, 224, 3), 60_192_808),  # torchvision resnet152
    ("resnet20", (32, 32, 3), 269_722),
    ("resnet32", (32, 32, 3), 464_154),
    ("resnet44", (32, 32, 3), 658_586),
    ("resnet56", (32, 32, 3), 853_018),
    ("resnet110", (32, 32, 3), 1_727_962),
]

SUMMARY_KINDS = {"conv", "pool", "dense", "norm", "activation", "flatten", "dropout", "block", "local"}
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _trace(model, x):
    """Shapes of (variables, eval logits, train logits, train updates) and the classes of called submodules."""
    called = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and type(context.module) is not type(model):
            called.append(context.module)
        return next_fun(*args, **kwargs)

    def run(x):
        with nn.intercept_methods(record):
            variables = model.init(RNGS, x)
            logits_eval = model.apply(variables, x, train=False)
            logits_train, updates = model.apply(
                variables, x, train=True, mutable=["batch_stats"], rngs={"dropout": RNGS["dropout"]}
            )
        return variables, logits_eval, logits_train, updates

    return jax.eval_shape(run, x), called


@pytest.mark.parametrize("name, hwc, expected_params", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_parameter_count_output_shapes_and_summary_protocol(name, hwc, expected_params):
    model = models.get(name)
    (variables, logits_eval, logits_train, updates), called = _trace(model, jax.ShapeDtypeStruct((2, *hwc), jnp.float32))
    assert _count(variables["params"]) == expected_params
    classes = model.num_classes  # 10 for the LeNets and CIFAR ResNets, 1000 for ImageNet models
    assert classes == (1000 if hwc[0] >= 224 else 10)
    assert logits_eval.shape == logits_train.shape == (2, classes)
    assert logits_eval.dtype == jnp.float32
    # Running statistics are in batch_stats, not params, and train mode returns all of them.
    assert jax.tree.structure(updates.get("batch_stats", {})) == jax.tree.structure(variables.get("batch_stats", {}))
    for module in called:
        assert getattr(type(module), "summary_kind", None) in SUMMARY_KINDS, type(module).__name__


def test_batch_stats_of_resnet20_hold_mean_and_var_of_every_bn():
    (variables, *_), _ = _trace(models.get("resnet20"), jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    stats = variables["batch_stats"]
    # 19 BN layers (conv1 + 2 per block x 9 blocks), each with (C,) mean and var: 2 * (16 + 6*16 + 6*32 + 6*64).
    assert _count(stats) == 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    assert set(stats["stage2_block1"]["bn1"]) == {"mean", "var"}


def _intermediate_shapes(model, hwc):
    def run(x):
        variables = model.init(RNGS, x)
        _, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
        return state["intermediates"]

    shapes = jax.eval_shape(run, jax.ShapeDtypeStruct((1, *hwc), jnp.float32))
    return {name: value["__call__"][0].shape[1:] for name, value in shapes.items() if name != "__call__"}


def test_alexnet_layer_sizes_match_the_slides():
    shapes = _intermediate_shapes(models.get("alexnet"), (227, 227, 3))
    assert shapes["conv1"] == (55, 55, 96)
    assert shapes["pool1"] == (27, 27, 96)
    assert shapes["conv2"] == (27, 27, 256)
    assert shapes["pool2"] == (13, 13, 256)
    assert shapes["conv5"] == (13, 13, 256)
    assert shapes["pool5"] == (6, 6, 256)
    assert shapes["flatten"] == (9216,)


def test_googlenet_and_resnet50_stage_sizes_follow_the_papers():
    shapes = _intermediate_shapes(models.get("googlenet"), (224, 224, 3))
    assert shapes["conv1"] == (112, 112, 64)
    assert shapes["pool2"] == (28, 28, 192)
    assert shapes["inception3a"] == (28, 28, 256)
    assert shapes["inception3b"] == (28, 28, 480)
    assert shapes["inception4e"] == (14, 14, 832)
    assert shapes["inception5b"] == (7, 7, 1024)
    shapes = _intermediate_shapes(models.get("resnet50"), (224, 224, 3))
    assert shapes["pool1"] == (56, 56, 64)
    assert shapes["layer1_block3"] == (56, 56, 256)
    assert shapes["layer4_block3"] == (7, 7, 2048)


def test_vgg16_and_lenet5_read_the_flatten_size_from_the_input():
    (variables, *_), _ = _trace(models.get("vgg16"), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    assert variables["params"]["fc6"]["kernel"].shape == (2 * 2 * 512, 4096)
    (variables, logits, *_), _ = _trace(models.get("lenet5"), jax.ShapeDtypeStruct((1, 8, 8, 1), jnp.float32))
    assert variables["params"]["fc3"]["kernel"].shape == (2 * 2 * 50, 500)
    assert logits.shape == (1, 10)
