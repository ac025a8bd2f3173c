"""Pooling modules: equal to the functional ops, summary attributes, LeNet's Subsampling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn.functional import pool as pool_ops
from jaxcnn.nn import AvgPool, GlobalAvgPool, GlobalMaxPool, LpPool, MaxPool, Subsampling

X = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))


@pytest.mark.parametrize(
    "module, expected",
    [
        (MaxPool(3, 2, padding=1), pool_ops.max_pool2d(X, 3, 2, 1)),
        (MaxPool((3, 2), (2, 1), padding="SAME"), pool_ops.max_pool2d(X, (3, 2), (2, 1), "SAME")),
        (AvgPool(2, 2), pool_ops.avg_pool2d(X, 2, 2)),
        (AvgPool(3, 2, padding=1, count_include_pad=False), pool_ops.avg_pool2d(X, 3, 2, 1, False)),
        (LpPool(2.0, 2, 2), pool_ops.lp_pool2d(X, 2.0, 2, 2)),
        (GlobalAvgPool(), jnp.mean(X, axis=(1, 2))),
        (GlobalMaxPool(), jnp.max(X, axis=(1, 2))),
    ],
)
def test_pool_modules_equal_the_functional_ops(module, expected):
    variables = module.init(jax.random.key(1), X)
    assert variables == {}  # no parameters
    np.testing.assert_allclose(module.apply(variables, X), expected, rtol=1e-6, atol=1e-6)


def test_max_pool_hand_computed_3_2_pool_on_a_ramp():
    x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    y = MaxPool(3, 2).apply({}, x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[12.0, 14.0], [22.0, 24.0]])


def test_window_pools_expose_summary_attributes():
    pool = MaxPool((3, 3), 2, padding=1)
    assert (pool.summary_kind, pool.window, pool.stride, pool.padding, pool.dilation) == ("pool", (3, 3), 2, 1, 1)
    assert AvgPool(2, 2).dilation == 1 and LpPool(2.0, 2, 2).padding == 0
    assert GlobalAvgPool.summary_kind == "pool"


def test_subsampling_is_coef_times_window_mean_plus_bias_per_map():
    x = jax.random.normal(jax.random.key(2), (2, 4, 6, 3))
    module = Subsampling(2, 2)
    variables = module.init(jax.random.key(1), x)
    np.testing.assert_array_equal(variables["params"]["coef"], np.ones(3))
    np.testing.assert_array_equal(variables["params"]["bias"], np.zeros(3))
    params = {"coef": jnp.array([1.5, -2.0, 0.25]), "bias": jnp.array([0.1, 0.2, 0.3])}
    y = module.apply({"params": params}, x)
    xn = np.asarray(x, np.float64)
    means = xn.reshape(2, 2, 2, 3, 2, 3).mean(axis=(2, 4))  # 2x2 blocks, numpy reshape
    np.testing.assert_allclose(y, means * np.asarray(params["coef"]) + np.asarray(params["bias"]), rtol=1e-5, atol=1e-6)

    @jax.jit
    def loss(params, x):
        return jnp.sum(jnp.sin(module.apply({"params": params}, x)))

    check_grads(loss, (params, x), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_pool_errors_come_from_the_functional_checks():
    with pytest.raises(ValueError, match="NHWC"):
        MaxPool(2, 2).apply({}, jnp.ones((4, 4, 3)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        AvgPool(8, 1).apply({}, X)


def test_lp_pool_module_passes_padding_and_form_through():
    x = np.random.default_rng(3).normal(size=(1, 5, 5, 2)).astype(np.float32)
    variables = {}
    for form in ("mean", "sum"):
        module = LpPool(3.0, 2, 2, padding=1, form=form) if form == "mean" else LpPool(3.0, 2, 2, form="sum")
        expected = (pool_ops.lp_pool2d(x, 3.0, 2, 2, 1) if form == "mean"
                    else pool_ops.lp_pool2d(np.abs(x), 3.0, 2, 2, form="sum"))
        got = module.apply(variables, x if form == "mean" else np.abs(x))
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert LpPool(1.0, 2, 2).form == "mean"
