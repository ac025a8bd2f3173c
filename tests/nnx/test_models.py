"""The NNX zoo against the linen models: same structure for every model, same logits and gradients.

Every registered model is checked by shape evaluation at its registry input
(parameter tree and count equal to the linen model's, logits shape). Numbers
(logits in eval and train mode, updated running statistics, gradients) are
compared on a batch of 2 for one model of each class -- LeNet-5 (3 variants),
AlexNet, VGG, GoogLeNet, ImageNet ResNet, CIFAR ResNet -- the big ones built
for a small input (32x32, AlexNet 67x67) to keep this module fast; vgg16,
resnet34/50 and resnet32-110 are the same classes at other depths. GoogLeNet
and ResNet-18 are marked slow (compiling both front ends' gradients takes
30-50 s of CPU each): ``-m "not slow"`` runs the rest in about a minute.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxcnn import models as linen_models
from jaxcnn.functional.losses import softmax_cross_entropy
from jaxcnn.nnx import models as zoo


def assert_trees_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)


def count(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", linen_models.names())
def test_every_model_has_the_linen_structure(name):
    shape = linen_models.input_shape(name)
    model = nnx.eval_shape(lambda: zoo.get(name, num_classes=7, rngs=nnx.Rngs(0)))
    linen = linen_models.get(name, num_classes=7)
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    variables = jax.eval_shape(lambda x: linen.init(jax.random.PRNGKey(0), x), x)
    # NNX paths start with the attribute holding the variables: params / batch_stats.
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))["params"]
    as_shapes = lambda tree: jax.tree.map(lambda a: a.shape, tree)
    assert as_shapes(params) == as_shapes(dict(variables["params"]))
    stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)).get("batch_stats", {})
    assert as_shapes(stats) == as_shapes(dict(variables.get("batch_stats", {})))
    assert model.input_shape == shape
    model.eval()
    assert nnx.eval_shape(lambda m, x: m(x), model, x).shape == (1, 7)


def test_parameter_counts_match_the_readme_table():
    # The README's counts (tests/models asserts them for linen).
    for name, expected in [("lenet5", 1_256_080), ("resnet20", 269_722), ("resnet50", 25_557_032)]:
        model = nnx.eval_shape(lambda: zoo.get(name, rngs=nnx.Rngs(0)))
        assert count(nnx.state(model, nnx.Param)) == expected, name


# name, per-example input shape: one model of each class.
NUMERIC = [
    ("lenet5", None),
    ("lenet5_classic", None),
    ("lenet5_adaptive", (20, 24, 1)),
    ("resnet20", (8, 8, 3)),
    pytest.param("resnet18", (32, 32, 3), marks=pytest.mark.slow),
    ("alexnet", (67, 67, 3)),
    ("vgg11", (32, 32, 3)),
    pytest.param("googlenet", (32, 32, 3), marks=pytest.mark.slow),
]


def both_front_ends(model, x, labels):
    """Eval logits, train logits, gradients and new running stats of ``model`` and of its linen twin.

    One jit-compiled program computes both (op-by-op execution of the big
    models' gradients is minutes on this CPU); the NNX half runs through
    ``nnx.merge`` of the model's own state, the linen half through
    ``linen.apply`` of :func:`to_linen_variables`, with the dropout key the
    model's ``nnx.Rngs`` would give.
    """
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, variables, dropout_key):
        model = nnx.merge(graphdef, state)
        linen = model.linen_module
        model.eval()
        eval_logits = model(x), linen.apply(variables, x, train=False)
        model.train()

        def nnx_loss(model):
            logits = model(x)
            return softmax_cross_entropy(logits, labels).mean(), logits

        (_, nnx_logits), nnx_grads = nnx.value_and_grad(nnx_loss, has_aux=True)(model)

        def linen_loss(params):
            logits, updates = linen.apply(
                {**variables, "params": params}, x, train=True, mutable=["batch_stats"], rngs={"dropout": dropout_key}
            )
            return softmax_cross_entropy(logits, labels).mean(), (logits, updates)

        (_, (linen_logits, updates)), linen_grads = jax.value_and_grad(linen_loss, has_aux=True)(variables["params"])
        nnx_stats = zoo.to_linen_variables(model).get("batch_stats", {})
        return (
            eval_logits,
            (nnx_logits, linen_logits),
            (nnx.to_pure_dict(nnx_grads)["params"], linen_grads),
            (nnx_stats, updates.get("batch_stats", {})),
        )

    dropout_key = nnx.clone(model).rngs.dropout()
    return run(state, zoo.to_linen_variables(model), dropout_key)


@pytest.mark.parametrize("name,input_shape", NUMERIC)
def test_logits_and_gradients_equal_the_linen_model(name, input_shape):
    model = zoo.get(name, num_classes=5, rngs=nnx.Rngs(3), input_shape=input_shape)
    linen = model.linen_module
    variables = zoo.to_linen_variables(model)
    # Initialisation: linen's init with the key the NNX model drew.
    reference_init = linen.init({"params": nnx.Rngs(3).params()}, jnp.zeros((1, *model.input_shape)), train=False)
    assert_trees_equal(dict(reference_init["params"]), variables["params"])

    x = jax.random.normal(jax.random.PRNGKey(1), (2, *model.input_shape))
    labels = jnp.array([1, 4])
    eval_logits, train_logits, grads, stats = both_front_ends(model, x, labels)
    np.testing.assert_allclose(*eval_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(*train_logits, rtol=1e-6, atol=1e-6)
    if name not in ("lenet5", "lenet5_classic", "lenet5_adaptive"):  # batch norm or dropout: modes differ
        assert not np.allclose(eval_logits[0], train_logits[0])
    assert jax.tree.structure(grads[0]) == jax.tree.structure(dict(grads[1]))
    for got, want in zip(*map(jax.tree.leaves, grads)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads[0])) > 0
    assert jax.tree.structure(stats[0]) == jax.tree.structure(dict(stats[1]))
    for got, want in zip(*map(jax.tree.leaves, stats)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # Parameters round-trip: linen variables -> NNX model -> linen variables.
    back = zoo.to_linen_variables(
        zoo.from_linen_variables(name, variables, num_classes=5, input_shape=model.input_shape)
    )
    assert_trees_equal(back, variables)


def test_batch_stats_are_updated_in_train_mode_only():
    model = zoo.get("resnet20", rngs=nnx.Rngs(0), input_shape=(8, 8, 3))
    x = 3.0 + jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 3))
    model.eval()
    model(x)
    np.testing.assert_array_equal(model.batch_stats["bn1"]["mean"][...], jnp.zeros(16))
    model.train()
    model(x)
    # One EMA step from zero: 0.9 * 0 + 0.1 * batch mean of bn1's input.
    conv1 = jax.lax.conv_general_dilated(
        x, model.params["conv1"]["kernel"][...], (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    np.testing.assert_allclose(
        model.batch_stats["bn1"]["mean"][...], 0.1 * conv1.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6
    )
    assert len(nnx.state(model, nnx.BatchStat)) > 0


def test_dropout_keys_come_from_the_module_rngs():
    model = zoo.get("alexnet", num_classes=3, rngs=nnx.Rngs(0, dropout=7), input_shape=(67, 67, 3))
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 67, 67, 3))
    model.train()
    first, second = model(x), model(x)
    assert not np.allclose(first, second)  # a new mask per call
    same_seed = zoo.get("alexnet", num_classes=3, rngs=nnx.Rngs(0, dropout=7), input_shape=(67, 67, 3))
    np.testing.assert_array_equal(same_seed(x), first)
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


def test_errors_say_what_was_expected():
    model = zoo.get("lenet5", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"built for input \(28, 28, 1\) and called on \(32, 32, 1\)"):
        model(jnp.zeros((1, 32, 32, 1)))
    with pytest.raises(ValueError, match="unknown model"):
        zoo.get("resnet7", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="has no option"):
        zoo.get("lenet5", rngs=nnx.Rngs(0), depth=3)
    with pytest.raises(ValueError, match="input_shape"):
        zoo.get("lenet5", rngs=nnx.Rngs(0), input_shape=(28, -1, 1))
    variables = zoo.to_linen_variables(model)
    with pytest.raises(ValueError, match="do not match"):
        zoo.from_linen_variables("lenet5", variables, input_shape=(32, 32, 1))
    model.use_running_average = True  # deterministic left False
    with pytest.raises(ValueError, match="must agree"):
        model(jnp.zeros((1, 28, 28, 1)))
    # Size-independent parameters: the CIFAR ResNet runs on another size.
    resnet = zoo.get("resnet20", rngs=nnx.Rngs(0), input_shape=(8, 8, 3))
    assert resnet(jnp.zeros((1, 12, 12, 3))).shape == (1, 10)
