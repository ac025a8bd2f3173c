"""Initializers: fans per layout (vs hand values and PyTorch), and the distribution of large draws."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxcnn.functional import init

# Library layout (receptive..., I, O) -> (fan_in, fan_out), worked out by hand.
# All four hold 73728 weights: samplers compile per size (seconds each), so equal
# sizes keep the suite fast while the fans, and so the scales, all differ.
FAN_CASES = {
    "dense": ((512, 144), (512, 144)),
    "KIO": ((9, 64, 128), (9 * 64, 9 * 128)),
    "HWIO": ((3, 2, 64, 192), (3 * 2 * 64, 3 * 2 * 192)),
    "DHWIO": ((3, 3, 2, 16, 256), (18 * 16, 18 * 256)),
}


@pytest.mark.parametrize("layout", list(FAN_CASES))
def test_fan_in_fan_out_by_layout(layout):
    shape, expected = FAN_CASES[layout]
    assert init.fan_in_fan_out(shape) == expected


@pytest.mark.parametrize("layout", list(FAN_CASES))
def test_fans_match_torch_on_the_transposed_kernel(layout):
    torch = pytest.importorskip("torch")
    shape, _ = FAN_CASES[layout]
    # PyTorch stores (O, I, *receptive); same kernel, other axis order.
    torch_shape = (shape[-1], shape[-2], *shape[:-2])
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_shape))
    assert init.fan_in_fan_out(shape) == tuple(expected)


def test_fan_errors():
    with pytest.raises(ValueError, match=r"rank 2 to 5.*\(7,\) of rank 1"):
        init.fan_in_fan_out((7,))
    with pytest.raises(ValueError, match="rank 2 to 5"):
        init.fan_in_fan_out((1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="must be >= 1"):
        init.fan_in_fan_out((3, 0))
    with pytest.raises(ValueError, match="sequence of ints"):
        init.fan_in_fan_out((3.0, 4))
    with pytest.raises(ValueError, match="sequence of ints"):
        init.fan_in_fan_out(5)


def _expected_scale(name, shape):
    fan_in, fan_out = init.fan_in_fan_out(shape)
    return {
        "he_normal": math.sqrt(2 / fan_in),
        "he_uniform": math.sqrt(6 / fan_in),
        "glorot_normal": math.sqrt(2 / (fan_in + fan_out)),
        "glorot_uniform": math.sqrt(6 / (fan_in + fan_out)),
        "lecun_normal": math.sqrt(1 / fan_in),
        "lecun_uniform": math.sqrt(3 / fan_in),
        "torch_uniform": 1 / math.sqrt(fan_in),
    }[name]


# He and Glorot on two layouts, he_normal (Conv's default) on all four, LeCun
# normal (Dense's default) on the dense layout and LeCun uniform on HWIO.
DRAW_CASES = [(name, layout) for name in ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform")
              for layout in ("dense", "HWIO")] + [("he_normal", "KIO"), ("he_normal", "DHWIO"),
                                                  ("lecun_normal", "dense"), ("lecun_uniform", "HWIO"),
                                                  ("torch_uniform", "HWIO")]


@pytest.mark.parametrize("name,layout", DRAW_CASES)
def test_large_draw_has_the_documented_distribution(name, layout):
    shape, _ = FAN_CASES[layout]
    draw = getattr(init, name)(jax.random.key(0), shape)
    assert draw.shape == shape and draw.dtype == jnp.float32
    samples = np.asarray(draw, dtype=np.float64).ravel()
    n = samples.size  # 73728
    scale = _expected_scale(name, shape)
    if name.endswith("normal"):
        std = scale
        # Plain (untruncated) Gaussian with exactly this std: a KS test rejects a
        # truncated normal of the same variance at these sample sizes.
        assert stats.kstest(samples / std, "norm").pvalue > 1e-3
    else:
        limit = scale
        std = limit / math.sqrt(3)
        assert np.abs(samples).max() <= limit
        assert np.abs(samples).max() > limit * (1 - 20 / n)  # the range is actually used
        assert stats.kstest(samples, "uniform", args=(-limit, 2 * limit)).pvalue > 1e-3
    # Sample std within 5 standard errors (std * sqrt(1/(2n)) for a normal; the
    # uniform's is smaller) and a mean near 0.
    assert abs(samples.std() / std - 1) < 5 / math.sqrt(2 * n)
    assert abs(samples.mean()) < 5 * std / math.sqrt(n)


def test_truncated_normal_would_fail_the_distribution_test():
    # Guards the KS check above: it must be able to tell the two apart.
    # What flax.linen.initializers.he_normal draws: N(0, 1) truncated to [-2, 2],
    # rescaled to unit variance (sampled with SciPy here, same size as the draws above).
    n = math.prod(FAN_CASES["HWIO"][0])
    truncated = stats.truncnorm.rvs(-2, 2, size=n, random_state=0) / stats.truncnorm.std(-2, 2)
    assert abs(truncated.std() - 1) < 0.01  # same variance, so the std check alone would pass
    assert stats.kstest(truncated, "norm").pvalue < 1e-6


def test_initializers_keep_dtype_are_deterministic_and_differ_by_key():
    shape = FAN_CASES["HWIO"][0]
    # One normal and one uniform initializer cover both sampling paths (each new
    # shape/dtype/key type costs a compile, so the sweep stays small).
    for fn in (init.he_normal, init.glorot_uniform):
        a = fn(jax.random.key(1), shape)
        np.testing.assert_array_equal(a, fn(jax.random.key(1), shape))
        assert not np.array_equal(a, fn(jax.random.key(2), shape))
    assert init.he_normal(jax.random.key(1), shape, jnp.bfloat16).dtype == jnp.bfloat16
    # Legacy uint32 keys and a list shape are accepted too.
    assert init.he_normal(jax.random.PRNGKey(1), list(shape)).shape == shape
    for name in ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal", "lecun_uniform",
                 "torch_uniform"):
        fn = getattr(init, name)
        with pytest.raises(ValueError, match="floating dtype, got int32"):
            fn(jax.random.key(1), shape, jnp.int32)
        with pytest.raises(ValueError, match="rank 2 to 5"):
            fn(jax.random.key(1), (8,))


def test_torch_uniform_is_pytorchs_default_conv_weight_range():
    torch = pytest.importorskip("torch")
    # nn.Conv2d(64, 192, (3, 2)) weights: kaiming_uniform_(a=sqrt(5)) -> U(+-1/sqrt(fan_in)).
    conv = torch.nn.Conv2d(64, 192, (3, 2))
    limit = 1 / math.sqrt(3 * 2 * 64)
    torch_max = float(conv.weight.detach().abs().max())
    assert limit * 0.99 < torch_max <= limit
    ours = init.torch_uniform(jax.random.key(0), FAN_CASES["HWIO"][0])
    assert limit * 0.99 < float(jnp.abs(ours).max()) <= limit
    # A sixth of He normal's variance: std sqrt(6) = 2.45 times smaller.
    assert math.sqrt(2 / (3 * 2 * 64)) / (limit / math.sqrt(3)) == pytest.approx(math.sqrt(6))


def test_initializers_by_name():
    assert init.initializer("torch_uniform") is init.torch_uniform
    assert init.initializer("he_normal") is init.he_normal
    assert set(init.INITIALIZERS) == {"he_normal", "he_uniform", "glorot_normal", "glorot_uniform",
                                      "lecun_normal", "lecun_uniform", "torch_uniform"}
    with pytest.raises(ValueError, match="unknown initializer 'kaiming'.*torch_uniform"):
        init.initializer("kaiming")


def test_zeros_and_ones():
    np.testing.assert_array_equal(init.zeros(jax.random.key(0), (3,)), np.zeros(3))
    np.testing.assert_array_equal(init.ones(None, (2, 2), jnp.bfloat16), np.ones((2, 2)))
    assert init.ones(None, (2, 2), jnp.bfloat16).dtype == jnp.bfloat16
    assert init.zeros(None, ()).shape == ()
    with pytest.raises(ValueError, match=">= 1"):
        init.zeros(None, (2, -1))


def test_usable_as_flax_kernel_init():
    nn = pytest.importorskip("flax.linen")
    module = nn.Conv(features=192, kernel_size=(3, 2), kernel_init=init.he_normal, bias_init=init.zeros)
    params = module.init(jax.random.key(0), jnp.zeros((1, 4, 4, 64)))["params"]
    assert params["kernel"].shape == FAN_CASES["HWIO"][0]
    np.testing.assert_array_equal(params["bias"], np.zeros(192))
    # Flax passed the HWIO shape, so the fan-in is 3*2*64.
    n = params["kernel"].size
    assert abs(float(params["kernel"].std()) / math.sqrt(2 / 384) - 1) < 5 / math.sqrt(2 * n)


@pytest.mark.parametrize("name", ["he_normal", "he_uniform"])
def test_he_fan_out_mode_uses_the_number_of_outputs(name):
    """Slide "Weight initialization": He with n = number of outputs (fan-out), vs torch.nn.init's fans."""
    torch = pytest.importorskip("torch")
    shape = (3, 3, 64, 16)  # HWIO: fan_in = 576, fan_out = 144, so the two modes differ by 2x in std
    _, torch_fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(16, 64, 3, 3))  # OIHW
    assert init.fan_in_fan_out(shape)[1] == torch_fan_out == 144
    key = jax.random.key(3)
    fan_out_draw = np.asarray(getattr(init, name)(key, shape, mode="fan_out"), np.float64).ravel()
    fan_in_draw = np.asarray(getattr(init, name)(key, shape), np.float64).ravel()
    std = math.sqrt(2 / 144)  # torch: kaiming_*_(mode="fan_out") has gain sqrt(2) / sqrt(fan_out)
    n = fan_out_draw.size
    assert abs(fan_out_draw.std() / std - 1) < 5 / math.sqrt(2 * n)
    # Same key, same underlying draw: fan_out is the fan_in draw scaled by sqrt(fan_in / fan_out) = 2.
    np.testing.assert_allclose(fan_out_draw, 2 * fan_in_draw, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(getattr(init, name)(key, shape, mode="fan_in"), getattr(init, name)(key, shape))
    if name == "he_uniform":
        assert np.abs(fan_out_draw).max() <= math.sqrt(6 / 144)
    with pytest.raises(ValueError, match='mode must be "fan_in".*"fan_out".*fan_avg'):
        getattr(init, name)(key, shape, mode="fan_avg")
