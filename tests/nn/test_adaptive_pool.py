"""AdaptiveAvgPool / AdaptiveMaxPool modules: PyTorch's bins, any input size, no parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.functional.adaptive_pool import adaptive_avg_pool2d, adaptive_max_pool2d
from jaxcnn.nn import AdaptiveAvgPool, AdaptiveMaxPool


@pytest.mark.parametrize("module_cls, functional", [(AdaptiveAvgPool, adaptive_avg_pool2d), (AdaptiveMaxPool, adaptive_max_pool2d)])
def test_adaptive_pools_match_torch_on_uneven_bins(module_cls, functional):
    torch = pytest.importorskip("torch")
    x = jax.random.normal(jax.random.key(0), (2, 7, 5, 3))
    module = module_cls((3, 2))
    assert module.init(jax.random.key(1), x) == {}
    y = module.apply({}, x)
    np.testing.assert_array_equal(y, functional(x, (3, 2)))
    torch_fn = getattr(torch.nn.functional, "adaptive_avg_pool2d" if module_cls is AdaptiveAvgPool else "adaptive_max_pool2d")
    expected = torch_fn(torch.tensor(np.asarray(x)).permute(0, 3, 1, 2), (3, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    assert module_cls.summary_kind == "pool"


def test_quadrant_statistics_for_two_input_sizes():
    # The slides' "four sets of summary statistics, one for each quadrant", by hand.
    module = AdaptiveAvgPool(2)
    for size in (4, 6):
        x = jnp.arange(size * size, dtype=jnp.float32).reshape(1, size, size, 1)
        half = size // 2
        quadrants = np.asarray(x[0, :, :, 0]).reshape(2, half, 2, half).mean(axis=(1, 3))
        np.testing.assert_allclose(module.apply({}, x)[0, :, :, 0], quadrants, rtol=1e-6)


def test_bad_output_size_is_rejected():
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveMaxPool((0, 2)).apply({}, jnp.ones((1, 4, 4, 1)))
