"""Small models for real: jit-compiled forward passes, BN/dropout behaviour, the wiring
checked against the functional ops, and the variable-input-size LeNet."""
import jax
import jax.numpy as jnp
import numpy as np
import flax
import pytest

from jaxcnn import functional as F
from jaxcnn import models
from jaxcnn.models.googlenet import Inception, InceptionSpec
from jaxcnn.models.resnet import BasicBlock, Bottleneck, ResNet, zero_pad_shortcut
from jaxcnn.models.vgg import VGG

KEY = jax.random.key(0)


def numpy_variables(model, x, seed=0):
    """Variables with model.init's structure, drawn by NumPy: N(0, 0.1^2) params, BN stats (0, 1).

    Compiling jax.random for every parameter is the slowest part of a small
    model's init on CPU; the wiring tests only need some values.
    """
    shapes = jax.eval_shape(model.init, KEY, x)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "var":
            return jnp.ones(leaf.shape, leaf.dtype)
        if name == "mean":
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray(rng.normal(0.0, 0.1, leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _lenet5_by_hand(params, x):
    """LeNet-5 written directly with jaxcnn.functional: the model must compute exactly this."""
    p = params
    x = F.relu(F.conv2d(x, p["conv1"]["kernel"], p["conv1"]["bias"], padding=2))
    x = F.max_pool2d(x, 2, 2)
    x = F.relu(F.conv2d(x, p["conv2"]["kernel"], p["conv2"]["bias"], padding=2))
    x = F.max_pool2d(x, 2, 2).reshape(x.shape[0], -1)
    x = F.relu(x @ p["fc3"]["kernel"] + p["fc3"]["bias"])
    return x @ p["fc4"]["kernel"] + p["fc4"]["bias"]


def test_lenet5_jit_on_8x8_digits_equals_the_functional_composition():
    model = models.get("lenet5")
    x = jax.random.normal(KEY, (2, 8, 8, 1))

    @jax.jit
    def run(x):
        variables = model.init(KEY, x)
        return variables, model.apply(variables, x), _lenet5_by_hand(variables["params"], x)

    variables, logits, by_hand = run(x)
    params = variables["params"]
    assert params["fc3"]["kernel"].shape == (2 * 2 * 50, 500)
    # Convs are He normal (std sqrt(2 / fan_in)), the dense layers LeCun normal
    # (sqrt(1 / fan_in)) so the logits start small; 5 standard errors of the std.
    for name, fan_in, gain in (("conv2", 5 * 5 * 20, 2), ("fc3", 200, 1), ("fc4", 500, 1)):
        kernel = np.asarray(params[name]["kernel"])
        assert abs(kernel.std() / np.sqrt(gain / fan_in) - 1) < 5 / np.sqrt(2 * kernel.size), name
    assert logits.shape == (2, 10)
    np.testing.assert_allclose(logits, by_hand, rtol=1e-4, atol=1e-4)


def test_lenet5_kernel_init_names_one_initializer_for_every_kernel():
    x = jnp.zeros((1, 8, 8, 1))
    shapes = jax.eval_shape(models.get("lenet5").init, KEY, x)
    params = models.get("lenet5", kernel_init="torch_uniform").init(KEY, x)["params"]
    assert jax.tree.map(lambda a: a.shape, params) == jax.tree.map(lambda a: a.shape, shapes["params"])
    # PyTorch's default: U(+-1/sqrt(fan_in)) for convs and dense layers alike; biases stay 0.
    for name, fan_in in (("conv1", 25), ("conv2", 5 * 5 * 20), ("fc3", 200), ("fc4", 500)):
        kernel = np.asarray(params[name]["kernel"])
        limit = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit, name
        np.testing.assert_array_equal(params[name]["bias"], 0)
    with pytest.raises(ValueError, match="unknown initializer 'kaiming'"):
        models.get("lenet5", kernel_init="kaiming").init(KEY, x)


def test_lenet5_adaptive_classifies_two_input_sizes_with_one_set_of_parameters():
    model = models.get("lenet5_adaptive")
    variables = numpy_variables(model, jnp.zeros((1, 28, 28, 1)))
    apply = jax.jit(model.apply)
    small, large = jax.random.normal(KEY, (3, 12, 12, 1)), jax.random.normal(KEY, (3, 29, 21, 1))
    assert apply(variables, small).shape == apply(variables, large).shape == (3, 10)
    # The head pools conv2's map to 2x2 quadrant means whatever the size: check on the large input.
    p = variables["params"]

    @jax.jit
    def conv_features(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, p["conv1"]["kernel"], p["conv1"]["bias"], padding=2)), 2, 2)
        return F.relu(F.conv2d(h, p["conv2"]["kernel"], p["conv2"]["bias"], padding=2))

    h = conv_features(large)  # (3, 14, 10, 50)
    quadrants = np.stack(
        [np.asarray(h)[:, r0:r1, c0:c1].mean(axis=(1, 2)) for r0, r1 in ((0, 7), (7, 14)) for c0, c1 in ((0, 5), (5, 10))],
        axis=1,
    ).reshape(3, -1)
    hidden = np.maximum(quadrants @ np.asarray(p["fc3"]["kernel"]) + np.asarray(p["fc3"]["bias"]), 0)
    expected = hidden @ np.asarray(p["fc4"]["kernel"]) + np.asarray(p["fc4"]["bias"])
    np.testing.assert_allclose(apply(variables, large), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='pool must be "avg" or "max"'):
        models.get("lenet5_adaptive", pool="median").init(KEY, small)


def test_lenet5_classic_on_32x32_equals_the_functional_composition():
    from jaxcnn.nn import LECUN_C3_TABLE

    model = models.get("lenet5_classic")
    x = jax.random.normal(KEY, (2, 32, 32, 1))
    variables = numpy_variables(model, x)
    p = variables["params"]
    assert p["c3"]["kernel"].shape == (5, 5, 60)
    # C3's packed filters scattered into a full HWIO kernel by a loop over Table I.
    c3_kernel = np.zeros((5, 5, 6, 16), np.float32)
    packed = iter(np.moveaxis(np.asarray(p["c3"]["kernel"]), -1, 0))
    for out_map, in_maps in enumerate(LECUN_C3_TABLE):
        for in_map in in_maps:
            c3_kernel[:, :, in_map, out_map] = next(packed)

    def squash(v):
        return 1.7159 * F.tanh(2 / 3 * v)

    def subsample(v, name):
        return F.avg_pool2d(v, 2, 2) * p[name]["coef"] + p[name]["bias"]

    @jax.jit
    def run(variables, x):
        h = squash(F.conv2d(x, p["c1"]["kernel"], p["c1"]["bias"]))  # 28x28x6
        h = squash(subsample(h, "s2"))  # 14x14x6
        h = squash(F.conv2d(h, c3_kernel, p["c3"]["bias"]))  # 10x10x16
        h = squash(subsample(h, "s4"))  # 5x5x16
        h = squash(F.conv2d(h, p["c5"]["kernel"], p["c5"]["bias"])).reshape(2, 120)  # 1x1x120
        h = squash(h @ p["f6"]["kernel"] + p["f6"]["bias"])
        return model.apply(variables, x), h @ p["output"]["kernel"] + p["output"]["bias"]

    logits, by_hand = run(variables, x)
    assert logits.shape == (2, 10)
    np.testing.assert_allclose(logits, by_hand, rtol=1e-5, atol=1e-5)


def test_resnet20_jit_train_and_eval_and_batch_stats_only_change_when_training():
    model = models.get("resnet20")
    x = jax.random.normal(KEY, (4, 8, 8, 3)) + 2.0  # tiny images: the compile is what is tested
    variables = numpy_variables(model, x)
    stats = variables["batch_stats"]

    @jax.jit
    def run(variables, x):
        logits_eval, eval_updates = model.apply(variables, x, train=False, mutable=["batch_stats"])
        logits_train, train_updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        conv1_out = F.conv2d(x, variables["params"]["conv1"]["kernel"], padding=1)
        return logits_eval, eval_updates, logits_train, train_updates, conv1_out

    logits_eval, eval_updates, logits_train, train_updates, conv1_out = run(variables, x)
    assert logits_eval.shape == logits_train.shape == (4, 10)
    # eval: the stats come back untouched; train: every BN's running mean and var moved.
    jax.tree.map(np.testing.assert_array_equal, eval_updates["batch_stats"], stats)
    moved = jax.tree.map(lambda new, old: bool(jnp.any(new != old)), train_updates["batch_stats"], stats)
    assert all(jax.tree.leaves(moved))
    # The first BN sees conv1's output; its new mean is 0.1 * the batch mean of that output.
    np.testing.assert_allclose(
        train_updates["batch_stats"]["bn1"]["mean"], 0.1 * jnp.mean(conv1_out, axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
    )
    assert not np.allclose(logits_eval, logits_train)


def test_zero_pad_shortcut_subsamples_and_pads_channels_symmetrically():
    x = jnp.arange(2 * 5 * 5 * 2.0).reshape(2, 5, 5, 2)
    y = zero_pad_shortcut(x, 6, 2)
    assert y.shape == (2, 3, 3, 6)
    np.testing.assert_array_equal(y[..., 2:4], np.asarray(x)[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., :2], 0)
    np.testing.assert_array_equal(y[..., 4:], 0)
    with pytest.raises(ValueError, match="cannot reduce channels"):
        zero_pad_shortcut(x, 1, 1)


@pytest.mark.parametrize("block_cls, out_channels", [(BasicBlock, 8), (Bottleneck, 32)])
def test_zero_init_last_norm_makes_a_block_start_as_relu_of_its_shortcut(block_cls, out_channels):
    x = jax.random.normal(KEY, (2, 6, 6, out_channels))
    block = block_cls(8, zero_init_last_norm=True)

    @jax.jit
    def init_and_apply(x):
        variables = block.init(KEY, x)
        return variables, block.apply(variables, x)

    variables, y = init_and_apply(x)
    last = "bn2" if block_cls is BasicBlock else "bn3"
    np.testing.assert_array_equal(variables["params"][last]["scale"], 0)
    # Identity shortcut, residual branch scaled by 0 (and bias 0): y = relu(x).
    np.testing.assert_allclose(y, np.maximum(np.asarray(x), 0), rtol=1e-6)


def test_projection_and_zero_pad_shortcuts_and_bad_shortcut_name():
    x = jnp.ones((1, 8, 8, 4))
    projection = jax.eval_shape(BasicBlock(8, stride=2).init, KEY, x)["params"]
    assert projection["proj_conv"]["kernel"].shape == (1, 1, 4, 8) and "proj_bn" in projection
    zero_pad = jax.eval_shape(BasicBlock(8, stride=2, shortcut="zero_pad").init, KEY, x)["params"]
    assert set(zero_pad) == {"conv1", "bn1", "conv2", "bn2"}
    with pytest.raises(ValueError, match="shortcut must be one of"):
        jax.eval_shape(BasicBlock(4, shortcut="identity").init, KEY, x)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        jax.eval_shape(models.CifarResNet(depth=21).init, KEY, x)


def test_tiny_imagenet_resnet_with_bottlenecks_compiles():
    model = ResNet(stage_sizes=(1, 1), block_cls=Bottleneck, num_filters=4, num_classes=5)
    x = jax.random.normal(KEY, (2, 16, 16, 3))
    variables = numpy_variables(model, x)
    logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    assert logits.shape == (2, 5)
    # stem 16 -> 8 (conv 7x7/2) -> 4 (pool 3/2 p1) -> 2 (stage 2, stride 2); widths 4*4, 8*4.
    assert variables["params"]["layer2_block1"]["conv3"]["kernel"].shape == (1, 1, 8, 32)


def test_dropout_is_off_in_eval_and_on_in_train_for_a_tiny_vgg():
    model = VGG(stages=((4,), (8,)), fc_features=32, num_classes=3, dropout_rate=0.5)
    x = jax.random.normal(KEY, (2, 8, 8, 3))
    variables = numpy_variables(model, x)

    @jax.jit
    def run(variables, x, key_a, key_b):
        eval_a = model.apply(variables, x, rngs={"dropout": key_a})
        eval_b = model.apply(variables, x, rngs={"dropout": key_b})
        train_a = model.apply(variables, x, train=True, rngs={"dropout": key_a})
        train_a2 = model.apply(variables, x, train=True, rngs={"dropout": key_a})
        train_b = model.apply(variables, x, train=True, rngs={"dropout": key_b})
        return eval_a, eval_b, train_a, train_a2, train_b

    eval_a, eval_b, train_a, train_a2, train_b = run(variables, x, jax.random.key(1), jax.random.key(2))
    np.testing.assert_array_equal(eval_a, eval_b)
    np.testing.assert_array_equal(train_a, train_a2)
    assert not np.allclose(train_a, train_b) and not np.allclose(train_a, eval_a)
    assert eval_a.shape == (2, 3)


def test_inception_module_concatenates_its_four_branches():
    spec = InceptionSpec(2, 3, 4, 1, 2, 3)
    x = jax.random.normal(KEY, (1, 5, 5, 6))
    module = Inception(spec)
    variables = numpy_variables(module, x)
    y = jax.jit(module.apply)(variables, x)
    assert y.shape == (1, 5, 5, spec.out_channels) == (1, 5, 5, 11)
    p = variables["params"]

    def conv_relu(v, name, padding):
        return F.relu(F.conv2d(v, p[name]["kernel"], p[name]["bias"], padding=padding))

    @jax.jit
    def branches_3_and_4(x):
        branch3 = conv_relu(conv_relu(x, "branch3_reduce", 0), "branch3_5x5", 2)
        return branch3, conv_relu(F.max_pool2d(x, 3, 1, 1), "branch4_proj", 0)

    branch3, branch4 = branches_3_and_4(x)
    np.testing.assert_allclose(y[..., 2 + 4 : 2 + 4 + 2], branch3, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[..., 8:], branch4, rtol=1e-5, atol=1e-5)
    assert Inception.summary_kind == BasicBlock.summary_kind == "block"


def test_every_layer_of_resnet20_has_a_readable_name():
    variables = jax.eval_shape(models.get("resnet20").init, KEY, jnp.zeros((1, 32, 32, 3)))
    assert set(variables["params"]) == {"conv1", "bn1", "fc"} | {
        f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2, 3)
    }


def test_alexnet_lrn_is_the_papers_formula_with_alpha_on_the_sum():
    from jaxcnn.models.alexnet import _paper_lrn

    # Activations ~100, so alpha * sum(a^2) ~ 5 dominates k = 2 and a wrong alpha shows.
    a = np.asarray(jax.random.normal(KEY, (1, 2, 2, 7)), np.float64) * 100
    # Krizhevsky et al. 2012, Sec. 3.3: b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2)^beta.
    expected = np.empty_like(a)
    for i in range(7):
        window = a[..., max(0, i - 2) : min(6, i + 2) + 1]
        expected[..., i] = a[..., i] / (2.0 + 1e-4 * np.sum(window**2, axis=-1)) ** 0.75
    np.testing.assert_allclose(_paper_lrn("norm").apply({}, jnp.asarray(a, jnp.float32)), expected, rtol=1e-5)


def test_basic_block_with_projection_shortcut_equals_the_functional_composition():
    # Odd input size: the strided 3x3 conv and the strided 1x1 projection must both give ceil(7 / 2) = 4.
    x = jax.random.normal(KEY, (2, 7, 7, 4))
    block = BasicBlock(8, stride=2)
    variables = numpy_variables(block, x)
    rng = np.random.default_rng(1)
    # Non-trivial running statistics, so eval mode really uses them.
    variables["batch_stats"] = jax.tree.map(
        lambda v: jnp.asarray(rng.uniform(0.5, 2.0, v.shape), v.dtype), variables["batch_stats"]
    )
    p, s = variables["params"], variables["batch_stats"]

    def bn(y, name):
        return F.batch_norm(y, p[name], s[name], train=False)[0]

    @jax.jit
    def by_hand(x):
        y = F.relu(bn(F.conv2d(x, p["conv1"]["kernel"], stride=2, padding=1), "bn1"))
        y = bn(F.conv2d(y, p["conv2"]["kernel"], padding=1), "bn2")
        shortcut = bn(F.conv2d(x, p["proj_conv"]["kernel"], stride=2), "proj_bn")
        return F.relu(y + shortcut)

    y = jax.jit(lambda v, x: block.apply(v, x, train=False))(variables, x)
    assert y.shape == (2, 4, 4, 8)
    np.testing.assert_allclose(y, by_hand(x), rtol=1e-5, atol=1e-5)
