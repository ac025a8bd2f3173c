"""Mixed precision in the layers: ``dtype`` is the computation dtype, parameters stay float32.

Every layer with parameters or statistics is checked with ``dtype=jnp.bfloat16``:
the output is bfloat16, the parameters (and their gradients) float32, batch
statistics float32, and the values equal the float32 layer's within bfloat16's
precision (8 mantissa bits: ~0.4% relative per rounding).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import nn as jnn

BF16 = jnp.bfloat16

LAYERS = {
    "Conv": lambda dtype: jnn.Conv(6, (3, 3), padding=1, dtype=dtype),
    "Conv1d": lambda dtype: jnn.Conv(6, (3,), dtype=dtype),
    "ConnectionTableConv": lambda dtype: jnn.ConnectionTableConv(((0, 1), (1, 2), (0, 2)), (3, 3), dtype=dtype),
    "Dense": lambda dtype: jnn.Dense(5, dtype=dtype),
    "LocallyConnected2D": lambda dtype: jnn.LocallyConnected2D(4, (3, 3), dtype=dtype),
    "TiledConv2D": lambda dtype: jnn.TiledConv2D(4, (3, 3), tiles=2, dtype=dtype),
    "GroupNorm": lambda dtype: jnn.GroupNorm(num_groups=3, dtype=dtype),
    "LayerNorm": lambda dtype: jnn.LayerNorm(dtype=dtype),
    "InstanceNorm": lambda dtype: jnn.InstanceNorm(dtype=dtype),
    "LocalResponseNorm": lambda dtype: jnn.LocalResponseNorm(size=3, dtype=dtype),
    "Subsampling": lambda dtype: jnn.Subsampling(2, 2, dtype=dtype),
}


def _input(name):
    key = jax.random.PRNGKey(0)
    if name == "Conv1d":
        return jax.random.normal(key, (2, 9, 3))
    if name == "Dense":
        return jax.random.normal(key, (2, 7))
    return jax.random.normal(key, (2, 8, 8, 3)) + 0.5


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_bfloat16_layer_computes_in_bfloat16_with_float32_params(name):
    x = _input(name)
    f32_layer, bf16_layer = LAYERS[name](None), LAYERS[name](BF16)
    variables = f32_layer.init(jax.random.PRNGKey(1), x)
    assert bf16_layer.init(jax.random.PRNGKey(1), x) is not None
    for leaf in jax.tree.leaves(variables):
        assert leaf.dtype == jnp.float32, name
    expected = f32_layer.apply(variables, x)
    got = bf16_layer.apply(variables, x)
    assert expected.dtype == jnp.float32 and got.dtype == BF16, name
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(expected), atol=0.03 * scale)

    if variables.get("params"):
        grads = jax.grad(lambda v: jnp.sum(bf16_layer.apply(v, x).astype(jnp.float32) ** 2))(variables)
        for leaf in jax.tree.leaves(grads):
            assert leaf.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(leaf))), name


def test_bfloat16_input_to_a_default_layer_is_promoted_like_flax():
    """dtype=None keeps flax's rule: the promoted dtype of input and params (f32 params win)."""
    x = _input("Conv").astype(BF16)
    layer = jnn.Conv(4, (3, 3))
    variables = layer.init(jax.random.PRNGKey(0), x)
    assert layer.apply(variables, x).dtype == jnp.float32


@pytest.mark.parametrize("train", [True, False])
def test_bfloat16_batch_norm_keeps_float32_statistics(train):
    x = (_input("Conv") * 3 + 1).astype(BF16)
    layer = jnn.BatchNorm(dtype=BF16)
    variables = layer.init(jax.random.PRNGKey(0), x)
    y, updates = layer.apply(variables, x, train=train, mutable=["batch_stats"])
    assert y.dtype == BF16
    for leaf in jax.tree.leaves(updates["batch_stats"]):
        assert leaf.dtype == jnp.float32
    if train:
        # One EMA step from (0, 1) with momentum 0.9: the new mean is 0.1 * batch mean,
        # computed in float32 from the bfloat16 activations.
        batch_mean = jnp.mean(x.astype(jnp.float32), axis=(0, 1, 2))
        np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * batch_mean, rtol=1e-5)
        normalized = (x.astype(jnp.float32) - batch_mean) / jnp.sqrt(jnp.var(x.astype(jnp.float32), axis=(0, 1, 2)) + 1e-5)
        np.testing.assert_allclose(np.asarray(y, np.float32), normalized, atol=0.05)


# ------------------------------------------------------------------ models
def test_every_zoo_model_takes_a_dtype_and_keeps_float32_variables():
    from jaxcnn import models

    for name in models.names():
        model = models.get(name, num_classes=10, dtype=BF16)
        sample = jnp.zeros((1, *models.input_shape(name)), jnp.float32)
        logits, variables = jax.eval_shape(lambda x, m=model: m.init_with_output(jax.random.PRNGKey(0), x), sample)
        assert logits.dtype == BF16, name
        assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}, name


def test_bfloat16_resnet_trains_with_float32_state_and_bfloat16_activations():
    from jaxcnn.models import resnet
    from jaxcnn.train import create_train_state, make_optimizer, train_step

    def model(dtype):
        return resnet.CifarResNet(depth=8, num_filters=4, num_classes=10, dtype=dtype)

    images = jax.random.normal(jax.random.PRNGKey(1), (8, 8, 8, 3))
    labels = jnp.arange(8, dtype=jnp.int32) % 10
    tx = make_optimizer("sgd", 0.1, momentum=0.9)
    state32 = create_train_state(model(jnp.float32), tx, jax.random.PRNGKey(0), images[:1])
    # The same variables drive both dtypes: checkpoints are interchangeable.
    state16 = jax.tree.map(jnp.array, state32).replace(apply_fn=model(BF16).apply)  # train_step donates

    _, intermediates = model(BF16).apply(state16.variables(), images, capture_intermediates=True)
    activation_dtypes = {leaf.dtype for leaf in jax.tree.leaves(intermediates)}
    assert jnp.dtype(BF16) in activation_dtypes

    new16, metrics16 = train_step(state16, images, labels)
    new32, metrics32 = train_step(jax.tree.map(jnp.array, state32), images, labels)
    assert metrics16["loss"].dtype == jnp.float32  # softmax and loss in float32
    for tree in (new16.params, new16.batch_stats, new16.opt_state):
        assert {leaf.dtype for leaf in jax.tree.leaves(tree) if hasattr(leaf, "dtype")} <= {
            jnp.dtype(jnp.float32), jnp.dtype(jnp.int32)}
    assert abs(float(metrics16["loss"]) - float(metrics32["loss"])) < 0.05 * float(metrics32["loss"])
    # One step's update points where float32's does. Measured relative L2 0.17: XLA:CPU
    # accumulates the bfloat16 kernel gradient (a 512-term sum here) in bfloat16; a wrong
    # path (no update, wrong sign, a layer left out) measures >= 1.
    update16 = jax.tree.map(lambda a, b: a - b, new16.params, state32.params)
    update32 = jax.tree.map(lambda a, b: a - b, new32.params, state32.params)
    diff = sum(float(jnp.sum((a - b) ** 2)) for a, b in zip(jax.tree.leaves(update16), jax.tree.leaves(update32)))
    norm = sum(float(jnp.sum(b ** 2)) for b in jax.tree.leaves(update32))
    assert (diff / norm) ** 0.5 < 0.3
