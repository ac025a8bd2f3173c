"""jaxcnn.nnx layers: against lax/NumPy references, hand-derived batch-norm updates, NNX modes and rngs."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxcnn import nn as linen_nn
from jaxcnn.nnx import layers as L


def normal(seed, shape):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), ((1, 0), (2, 1)))])
def test_conv_matches_lax_and_the_linen_layer(stride, padding):
    conv = L.Conv(3, 4, (3, 2), stride=stride, padding=padding, rngs=nnx.Rngs(0))
    assert conv.kernel.shape == (3, 2, 3, 4) and conv.bias.shape == (4,)
    conv.bias[...] = jnp.arange(4.0)
    x = normal(1, (2, 7, 6, 3))
    pads = [(padding, padding)] * 2 if isinstance(padding, int) else padding
    strides = (stride, stride) if isinstance(stride, int) else stride
    expected = jax.lax.conv_general_dilated(
        x, conv.kernel[...], strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=jax.lax.Precision.HIGHEST,
    ) + jnp.arange(4.0)
    np.testing.assert_allclose(conv(x), expected, rtol=1e-4, atol=1e-4)
    linen = linen_nn.Conv(4, (3, 2), stride=stride, padding=padding)
    variables = {"params": {"kernel": conv.kernel[...], "bias": conv.bias[...]}}
    np.testing.assert_allclose(conv(x), linen.apply(variables, x), rtol=1e-6, atol=1e-6)


def test_conv_and_batch_norm_gradients_match_a_lax_reference():
    conv, bn = L.Conv(2, 3, 3, padding=1, rngs=nnx.Rngs(0)), L.BatchNorm(3, rngs=nnx.Rngs(1))
    x = normal(6, (2, 5, 5, 2))

    def reference(kernel, bias, scale):
        y = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        ) + bias
        mean, var = y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))
        return jnp.sum(jnp.sin((y - mean) / jnp.sqrt(var + 1e-5) * scale))

    grads = nnx.grad(lambda c, b: jnp.sum(jnp.sin(b(c(x)))), argnums=(0, 1))(conv, bn)
    expected = jax.grad(reference, argnums=(0, 1, 2))(conv.kernel[...], conv.bias[...], bn.scale[...])
    np.testing.assert_allclose(grads[0]["kernel"][...], expected[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(grads[0]["bias"][...], expected[1], atol=1e-4)
    np.testing.assert_allclose(grads[1]["scale"][...], expected[2], rtol=1e-3, atol=1e-4)


def test_conv_1d_grouped_and_impl_field():
    conv = L.Conv(4, 6, (3,), groups=2, use_bias=False, impl="im2col", rngs=nnx.Rngs(0))
    assert conv.kernel.shape == (3, 2, 6) and conv.bias is None
    x = normal(2, (2, 9, 4))
    expected = jax.lax.conv_general_dilated(
        x, conv.kernel[...], (1,), [(0, 0)], dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=2,
        precision=jax.lax.Precision.HIGHEST,
    )
    np.testing.assert_allclose(conv(x), expected, rtol=1e-4, atol=1e-4)


def test_dense_and_flatten_match_numpy():
    dense = L.Dense(6, 3, rngs=nnx.Rngs(0))
    dense.bias[...] = jnp.array([1.0, -1.0, 0.5])
    x = normal(3, (2, 2, 3))
    flat = L.Flatten()(x)
    np.testing.assert_array_equal(flat, np.asarray(x).reshape(2, 6))
    np.testing.assert_allclose(
        dense(flat), np.asarray(flat) @ np.asarray(dense.kernel[...]) + [1.0, -1.0, 0.5], rtol=1e-5, atol=1e-5
    )
    # LeCun normal: std sqrt(1 / fan_in) (120,000 draws: within 4%).
    big = L.Dense(400, 300, rngs=nnx.Rngs(1))
    assert abs(float(jnp.std(big.kernel[...])) - (1 / 400) ** 0.5) < 0.002


def test_batch_norm_train_and_eval_modes():
    bn = L.BatchNorm(3, rngs=nnx.Rngs(0))
    bn.scale[...] = jnp.array([1.0, 2.0, 0.5])
    bn.bias[...] = jnp.array([0.0, 1.0, -1.0])
    x = 2.0 + 3.0 * normal(4, (4, 5, 5, 3))
    xn = np.asarray(x, np.float64).reshape(-1, 3)
    mean, var = xn.mean(0), xn.var(0)
    y = bn(x)  # training mode by default, as nnx.BatchNorm
    expected = (xn - mean) / np.sqrt(var + 1e-5) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 3), expected, rtol=1e-4, atol=1e-4)
    # One EMA step from (0, 1) with momentum 0.9; the running variance is unbiased.
    n = xn.shape[0]
    np.testing.assert_allclose(bn.mean[...], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.var[...], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    assert len(nnx.state(bn, nnx.BatchStat)) == 2
    bn.eval()
    assert bn.use_running_average
    before = np.asarray(bn.mean[...])
    y_eval = bn(x)
    np.testing.assert_array_equal(bn.mean[...], before)
    expected_eval = (xn - 0.1 * mean) / np.sqrt(np.asarray(bn.var[...]) + 1e-5) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    np.testing.assert_allclose(np.asarray(y_eval).reshape(-1, 3), expected_eval, rtol=1e-4, atol=1e-4)


def test_dropout_uses_module_rngs_and_respects_eval():
    drop = L.Dropout(0.25, rngs=nnx.Rngs(dropout=3))
    x = jnp.ones((200, 50))
    y1, y2 = drop(x), drop(x)
    kept = np.asarray(y1) != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(np.asarray(y1)[kept], 1 / 0.75)
    assert not np.array_equal(y1, y2)  # the stream advances
    np.testing.assert_array_equal(L.Dropout(0.25, rngs=nnx.Rngs(dropout=3))(x), y1)
    drop.eval()
    np.testing.assert_array_equal(drop(x), x)
    with pytest.raises(ValueError, match="drop probability"):
        L.Dropout(1.0, rngs=nnx.Rngs(0))


def test_pools_lrn_relu_call_functional():
    x = normal(5, (2, 6, 6, 4))
    np.testing.assert_array_equal(L.MaxPool(2)(x), np.asarray(x).reshape(2, 3, 2, 3, 2, 4).max(axis=(2, 4)))
    np.testing.assert_allclose(
        L.AvgPool(2)(x), np.asarray(x).reshape(2, 3, 2, 3, 2, 4).mean(axis=(2, 4)), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(L.GlobalAvgPool()(x), np.asarray(x).mean(axis=(1, 2)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(L.ReLU()(x), np.maximum(np.asarray(x), 0))
    np.testing.assert_allclose(
        L.LocalResponseNorm(size=3)(x), linen_nn.LocalResponseNorm(size=3).apply({}, x), rtol=1e-6
    )


def test_dtype_is_the_compute_dtype_and_param_dtype_the_storage():
    conv = L.Conv(3, 4, 3, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert conv.kernel[...].dtype == jnp.float32
    assert conv(normal(0, (1, 5, 5, 3))).dtype == jnp.bfloat16
    dense = L.Dense(3, 2, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert dense.kernel[...].dtype == jnp.bfloat16
    bn = L.BatchNorm(4, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    bn(normal(0, (2, 3, 3, 4)))
    assert bn.mean[...].dtype == jnp.float32


def test_errors_name_the_expected_input():
    with pytest.raises(ValueError, match="with 3 channels"):
        L.Conv(3, 4, 3, rngs=nnx.Rngs(0))(jnp.zeros((1, 5, 5, 2)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        L.Dense(6, 2, rngs=nnx.Rngs(0))(jnp.zeros((1, 5)))
    with pytest.raises(ValueError, match="groups=2 must divide the input channels"):
        L.Conv(3, 4, 3, groups=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="rngs must be an nnx.Rngs"):
        L.Dense(2, 2, rngs=0)


class TinyCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv = L.Conv(1, 4, 3, padding=1, use_bias=False, rngs=rngs)
        self.bn = L.BatchNorm(4, rngs=rngs)
        self.pool = L.MaxPool(2)
        self.drop = L.Dropout(0.5, rngs=rngs)
        self.fc = L.Dense(4 * 4 * 4, 3, rngs=rngs)

    def __call__(self, x):
        y = self.pool(L.ReLU()(self.bn(self.conv(x))))
        return self.fc(self.drop(L.Flatten()(y)))


def test_a_model_of_layers_trains_with_nnx_optimizer_under_nnx_jit():
    model = TinyCNN(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    x, labels = normal(1, (8, 8, 8, 1)), jnp.arange(8) % 3

    @nnx.jit
    def step(model, optimizer):
        loss_fn = lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), labels).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert float(jnp.abs(model.bn.mean[...]).max()) > 0  # BatchStat updated inside nnx.jit
    model.eval()
    assert model.drop.deterministic and model.bn.use_running_average
    np.testing.assert_array_equal(model(x), model(x))


# (NNX layer, the linen layer, its linen params from the NNX layer's): the linen
# layers are tested against NumPy/PyTorch references in tests/nn.
PARAMETER_FREE = [
    (lambda: L.LeakyReLU(0.2), linen_nn.LeakyReLU(0.2)),
    (lambda: L.ELU(0.5), linen_nn.ELU(0.5)),
    (L.Sigmoid, linen_nn.Sigmoid()),
    (L.Tanh, linen_nn.Tanh()),
    (L.ScaledTanh, linen_nn.ScaledTanh()),
    (lambda: L.Maxout(2), linen_nn.Maxout(2)),
    (L.GlobalMaxPool, linen_nn.GlobalMaxPool()),
    (lambda: L.LpPool(2.0, 2), linen_nn.LpPool(2.0, 2, 2)),
    (lambda: L.AvgPool(3, 2, 1, count_include_pad=False), linen_nn.AvgPool(3, 2, 1, count_include_pad=False)),
    (lambda: L.AdaptiveAvgPool((4, 3)), linen_nn.AdaptiveAvgPool((4, 3))),
    (lambda: L.AdaptiveMaxPool(5), linen_nn.AdaptiveMaxPool(5)),
]


@pytest.mark.parametrize("make,linen", PARAMETER_FREE, ids=lambda v: type(v).__name__)
def test_parameter_free_layers_equal_the_linen_layers(make, linen):
    x = normal(7, (2, 9, 7, 4))
    layer = make()
    assert layer.summary_kind == type(linen).summary_kind
    np.testing.assert_allclose(layer(x), linen.apply({}, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make,linen",
    [
        (lambda r: L.GroupNorm(4, num_groups=2, rngs=r), linen_nn.GroupNorm(num_groups=2)),
        (lambda r: L.LayerNorm(4, rngs=r), linen_nn.LayerNorm()),
        (lambda r: L.InstanceNorm(4, rngs=r), linen_nn.InstanceNorm()),
        (lambda r: L.Subsampling(4, rngs=r), linen_nn.Subsampling()),
    ],
    ids=["GroupNorm", "LayerNorm", "InstanceNorm", "Subsampling"],
)
def test_affine_layers_equal_the_linen_layers_with_the_same_params(make, linen):
    x = 1.0 + 2.0 * normal(8, (2, 6, 6, 4))
    layer = make(nnx.Rngs(0))
    params = nnx.state(layer, nnx.Param)
    # Non-trivial affine parameters, written into the NNX layer and given to linen.
    params = jax.tree.map(lambda p: p + jnp.arange(4.0) / 4, params)
    nnx.update(layer, params)
    variables = {"params": nnx.to_pure_dict(params)}
    np.testing.assert_allclose(layer(x), linen.apply(variables, x), rtol=1e-5, atol=1e-5)
    assert len(jax.tree.leaves(params)) == 2
    with pytest.raises(ValueError, match="4"):
        layer(jnp.zeros((2, 6, 6, 3)))


@pytest.mark.parametrize(
    "make,linen",
    [
        (lambda r: L.LocallyConnected2D(3, 4, (3, 2), input_size=(7, 6), stride=2, padding=1, rngs=r),
         linen_nn.LocallyConnected2D(4, (3, 2), stride=2, padding=1)),
        (lambda r: L.TiledConv2D(3, 4, 3, tiles=(2, 3), padding=1, rngs=r),
         linen_nn.TiledConv2D(4, 3, tiles=(2, 3), padding=1)),
        (lambda r: L.ConnectionTableConv(3, ((0,), (0, 1), (1, 2), (0, 1, 2)), 3, rngs=r),
         linen_nn.ConnectionTableConv(((0,), (0, 1), (1, 2), (0, 1, 2)), 3)),
    ],
    ids=["LocallyConnected2D", "TiledConv2D", "ConnectionTableConv"],
)
def test_unshared_convs_equal_the_linen_layers_with_the_same_params(make, linen):
    x = normal(9, (2, 7, 6, 3))
    layer = make(nnx.Rngs(0))
    variables = linen.init(jax.random.PRNGKey(0), x)
    params = nnx.to_pure_dict(nnx.state(layer, nnx.Param))
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, dict(variables["params"]))
    params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero biases
    nnx.update(layer, params)
    np.testing.assert_allclose(layer(x), linen.apply({"params": params}, x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="3 channels"):
        layer(jnp.zeros((2, 7, 6, 2)))
