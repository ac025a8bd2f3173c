"""LocallyConnected2D and TiledConv2D modules: parameter shapes from the input, equality with functional."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional.local import locally_connected2d, tiled_conv2d
from jaxcnn.nn import LocallyConnected2D, TiledConv2D

X = jax.random.normal(jax.random.key(0), (2, 6, 5, 3))


def test_locally_connected_has_one_kernel_per_output_position():
    module = LocallyConnected2D(4, (3, 2), stride=(1, 2), padding=((1, 0), (0, 1)))
    variables = module.init(jax.random.key(1), X)
    # H' = (6 + 1 - 3) / 1 + 1 = 5, W' = floor((5 + 1 - 2) / 2) + 1 = 3.
    assert jax.tree.map(jnp.shape, variables["params"]) == {"kernel": (5, 3, 3, 2, 3, 4), "bias": (5, 3, 4)}
    params = variables["params"]
    expected = locally_connected2d(X, params["kernel"], params["bias"], stride=(1, 2), padding=((1, 0), (0, 1)))
    np.testing.assert_allclose(module.apply(variables, X), expected, rtol=1e-6)
    assert module.summary_kind == "local"


def test_locally_connected_kernels_are_drawn_independently_with_conv_fan_in():
    variables = LocallyConnected2D(16, 3, use_bias=False).init(jax.random.key(1), jnp.ones((1, 6, 6, 8)))
    kernel = variables["params"]["kernel"]  # (4, 4, 3, 3, 8, 16)
    assert not np.allclose(kernel[0, 0], kernel[0, 1])
    # He normal with fan-in 3 * 3 * 8 = 72 for every position (18,432 draws).
    np.testing.assert_allclose(float(jnp.std(kernel)), np.sqrt(2 / 72), rtol=0.05)


def test_tiled_conv_cycles_a_grid_of_kernels():
    module = TiledConv2D(2, 3, tiles=(2, 1), padding=1)
    variables = module.init(jax.random.key(1), X)
    params = variables["params"]
    assert jax.tree.map(jnp.shape, params) == {"kernel": (2, 1, 3, 3, 3, 2), "bias": (2, 1, 2)}
    np.testing.assert_allclose(
        module.apply(variables, X), tiled_conv2d(X, params["kernel"], params["bias"], padding=1), rtol=1e-6
    )


def test_local_layers_reject_non_nhwc_input():
    with pytest.raises(ValueError, match="NHWC"):
        LocallyConnected2D(2, 3).init(jax.random.key(1), jnp.ones((6, 6, 3)))
