"""Dense, Flatten, Dropout and activation modules."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn.functional import activations as act_ops
from jaxcnn.nn import ELU, Dense, Dropout, Flatten, LeakyReLU, Maxout, ReLU, ScaledTanh, Sigmoid, Tanh

KEY = jax.random.key(0)


def test_dense_infers_its_input_size_and_computes_x_w_plus_b():
    x = jax.random.normal(KEY, (3, 2, 7))
    module = Dense(4)
    variables = module.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, variables["params"]) == {"kernel": (7, 4), "bias": (4,)}
    params = {"kernel": jnp.arange(28.0).reshape(7, 4) / 10, "bias": jnp.array([1.0, 2.0, 3.0, 4.0])}
    expected = np.einsum("abi,io->abo", np.asarray(x, np.float64), np.asarray(params["kernel"])) + [1, 2, 3, 4]
    np.testing.assert_allclose(module.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-5)
    loss = jax.jit(lambda p: jnp.sum(module.apply({"params": p}, x) ** 2))
    check_grads(loss, (params,), order=1, modes=["rev"], rtol=1e-2)


def test_dense_kernel_is_lecun_normal_and_bias_zero():
    # 512 x 144 = 73,728 draws, the size test_init's samplers use (one compile).
    params = Dense(144).init(jax.random.key(2), jnp.ones((1, 512)))["params"]
    np.testing.assert_array_equal(params["bias"], np.zeros(144))
    kernel = np.asarray(params["kernel"], np.float64)
    # std sqrt(1 / fan_in) within 5 standard errors (He normal would be sqrt(2) times larger).
    assert abs(kernel.std() / np.sqrt(1 / 512) - 1) < 5 / np.sqrt(2 * kernel.size)
    assert abs(kernel.mean()) < 5 * np.sqrt(1 / 512) / np.sqrt(kernel.size)


def test_dense_without_bias():
    assert set(Dense(3, use_bias=False).init(KEY, jnp.ones((1, 5)))["params"]) == {"kernel"}


def test_flatten_is_row_major_over_h_w_c():
    x = jnp.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    y = Flatten().apply({}, x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y[1, 5 * 4 + 2 * 5 + 3], x[1, 1, 2, 3])


def test_dropout_is_identity_in_eval_and_drops_in_train():
    x = jnp.ones((100, 100))
    module = Dropout(0.3)
    np.testing.assert_array_equal(module.apply({}, x, train=False), x)
    y = module.apply({}, x, train=True, rngs={"dropout": jax.random.key(3)})
    dropped = float(jnp.mean(y == 0))
    assert abs(dropped - 0.3) < 0.03  # 10,000 Bernoulli draws: std 0.0046
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    y_again = module.apply({}, x, train=True, rngs={"dropout": jax.random.key(3)})
    np.testing.assert_array_equal(y, y_again)


def test_dropout_in_train_needs_the_dropout_rng_stream():
    with pytest.raises(Exception, match="dropout"):
        Dropout(0.5).apply({}, jnp.ones((2, 2)), train=True)


def test_dropout_rate_is_the_drop_probability():
    with pytest.raises(ValueError, match="drop probability"):
        Dropout(1.0).apply({}, jnp.ones((2, 2)), train=True, rngs={"dropout": KEY})


X = jnp.linspace(-3.0, 3.0, 12).reshape(1, 2, 6)


@pytest.mark.parametrize(
    "module, expected",
    [
        (ReLU(), act_ops.relu(X)),
        (LeakyReLU(0.2), act_ops.leaky_relu(X, 0.2)),
        (ELU(0.5), act_ops.elu(X, 0.5)),
        (Sigmoid(), act_ops.sigmoid(X)),
        (Tanh(), act_ops.tanh(X)),
        (Maxout(3), act_ops.maxout(X, 3)),
    ],
)
def test_activation_modules_equal_the_functional_ops(module, expected):
    assert module.summary_kind == "activation"
    np.testing.assert_allclose(module.apply({}, X), expected, rtol=1e-6)


def test_scaled_tanh_is_lecuns_squashing_function():
    y = ScaledTanh().apply({}, jnp.array([-1.0, 0.0, 1.0, 3.0]))
    np.testing.assert_allclose(y, 1.7159 * np.tanh(np.array([-1.0, 0.0, 1.0, 3.0]) * 2 / 3), rtol=1e-6)
    np.testing.assert_allclose(y[2], 1.0, atol=2e-4)  # f(1) ~ 1 by design
