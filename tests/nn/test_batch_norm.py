"""BatchNorm module: variables, running statistics in batch_stats, train/eval, axis_name."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxcnn.functional.batch_norm import batch_norm
from jaxcnn.nn import BatchNorm

X = jax.random.normal(jax.random.key(0), (4, 3, 3, 2)) * 2.0 + 1.0


def test_init_creates_params_and_identity_running_stats_even_with_train_true():
    for train in (False, True):
        variables = BatchNorm().init(jax.random.key(1), X, train=train)
        assert set(variables) == {"params", "batch_stats"}
        np.testing.assert_array_equal(variables["params"]["scale"], np.ones(2))
        np.testing.assert_array_equal(variables["params"]["bias"], np.zeros(2))
        np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(2))
        np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(2))
        assert variables["batch_stats"]["mean"].dtype == jnp.float32


def test_train_step_updates_stats_by_one_ema_step_and_normalizes_with_batch_stats():
    module = BatchNorm(momentum=0.8, eps=1e-3)
    variables = module.init(jax.random.key(1), X)
    params = {"scale": jnp.array([2.0, 0.5]), "bias": jnp.array([0.1, -0.3])}
    y, updates = module.apply(
        {"params": params, "batch_stats": variables["batch_stats"]}, X, train=True, mutable=["batch_stats"]
    )
    x64 = np.asarray(X, np.float64).reshape(-1, 2)
    m = x64.shape[0]  # 36 values per channel
    batch_mean, batch_var = x64.mean(0), x64.var(0)
    # Hand-derived EMA: 0.8 * (0, 1) + 0.2 * (batch mean, unbiased batch var).
    np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.2 * batch_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        updates["batch_stats"]["var"], 0.8 + 0.2 * batch_var * m / (m - 1), rtol=1e-5
    )
    expected = (x64 - batch_mean) / np.sqrt(batch_var + 1e-3) * np.array([2.0, 0.5]) + np.array([0.1, -0.3])
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 2), expected, rtol=1e-4, atol=1e-5)


def test_eval_uses_running_stats_and_returns_no_updates():
    module = BatchNorm()
    stats = {"mean": jnp.array([1.0, -1.0]), "var": jnp.array([4.0, 0.25])}
    params = {"scale": jnp.ones(2), "bias": jnp.zeros(2)}
    y, updates = module.apply({"params": params, "batch_stats": stats}, X, train=False, mutable=["batch_stats"])
    expected, _ = batch_norm(X, params, stats, train=False)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_array_equal(updates["batch_stats"]["mean"], stats["mean"])
    np.testing.assert_array_equal(updates["batch_stats"]["var"], stats["var"])


def test_train_without_mutable_batch_stats_is_an_error():
    variables = BatchNorm().init(jax.random.key(1), X)
    with pytest.raises(Exception, match="batch_stats"):
        BatchNorm().apply(variables, X, train=True)


def test_scale_init_zeros_for_residual_branches():
    variables = BatchNorm(scale_init=nn.initializers.zeros).init(jax.random.key(1), X)
    np.testing.assert_array_equal(variables["params"]["scale"], np.zeros(2))


def test_axis_name_outside_pmap_raises_a_value_error_naming_the_axis():
    module = BatchNorm(axis_name="devices")
    variables = module.init(jax.random.key(1), X, train=True)  # init skips the collective
    with pytest.raises(ValueError, match="'devices'"):
        module.apply(variables, X, train=True, mutable=["batch_stats"])


def test_axis_name_under_pmap_gives_the_full_batch_statistics():
    module = BatchNorm(axis_name="devices")
    variables = module.init(jax.random.key(1), X)
    shards = X.reshape(2, 2, 3, 3, 2)  # 2 devices x 2 examples each

    def step(x):
        return module.apply(variables, x, train=True, mutable=["batch_stats"])

    y, updates = jax.pmap(step, axis_name="devices", devices=jax.devices()[:2])(shards)
    y_full, updates_full = BatchNorm().apply(variables, X, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(y).reshape(X.shape), y_full, rtol=1e-4, atol=1e-5)
    for key in ("mean", "var"):
        np.testing.assert_allclose(updates["batch_stats"][key][0], updates_full["batch_stats"][key], rtol=1e-5)


def test_rejects_input_without_a_channel_axis():
    with pytest.raises(ValueError, match="channels last"):
        BatchNorm().init(jax.random.key(1), jnp.ones((3,)))
