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
