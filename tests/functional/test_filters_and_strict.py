"""The kernel-table filters (identity, edge, Laplacian 4/8, high-pass) by hand and vs SciPy, and conv2d(strict=True)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

from jaxcnn import functional as F
from jaxcnn.functional import filters

RNG = np.random.default_rng(11)
IMAGE = RNG.uniform(0, 1, size=(9, 10)).astype(np.float32)


def test_kernel_table_values_by_hand():
    """Slide "Kernel table" (identity, edge detection, Laplacian 8-neighbour), and the 4-neighbour Laplacian."""
    np.testing.assert_array_equal(filters.identity(), [[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(filters.edge(), [[1, 0, -1], [0, 0, 0], [-1, 0, 1]])
    np.testing.assert_array_equal(filters.laplacian(8), [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(filters.laplacian(neighbours=4), [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(filters.laplacian(), filters.laplacian(4))
    np.testing.assert_allclose(9 * filters.high_pass(3), filters.laplacian(8), atol=1e-6)
    np.testing.assert_array_equal(filters.identity((2, 4)), [[0, 1, 0, 0], [0, 0, 0, 0]])
    assert filters.high_pass(5).shape == (5, 5) and abs(float(filters.high_pass(5).sum())) < 1e-6


@pytest.mark.parametrize("size", [1, 3, 4, (3, 2)])
def test_identity_returns_the_image_and_high_pass_is_image_minus_blur(size):
    for mode in ("same",):
        np.testing.assert_array_equal(filters.correlate2d(IMAGE, filters.identity(size), mode=mode), IMAGE)
    np.testing.assert_allclose(
        filters.correlate2d(IMAGE, filters.high_pass(size)),
        IMAGE - filters.correlate2d(IMAGE, filters.box(size)), rtol=1e-5, atol=1e-6,
    )


@pytest.mark.parametrize("kernel", [filters.edge, lambda: filters.laplacian(8), filters.high_pass],
                         ids=["edge", "laplacian8", "high_pass"])
def test_new_kernels_match_scipy_and_vanish_on_flat_regions(kernel):
    k = np.asarray(kernel())
    np.testing.assert_allclose(filters.correlate2d(IMAGE, k, mode="valid"),
                               signal.correlate2d(IMAGE, k, mode="valid"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(filters.convolve2d(IMAGE, k, mode="full"),
                               signal.convolve2d(IMAGE, k, mode="full"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(filters.correlate2d(np.full((6, 6), 0.3, np.float32), k, mode="valid"), 0, atol=1e-6)


def test_laplacian8_sign_and_edge_kernel_on_a_ramp():
    spot = np.zeros((5, 5), np.float32)
    spot[2, 2] = 1.0
    assert float(filters.correlate2d(spot, filters.laplacian(8))[2, 2]) == 8.0   # the slides' sign: positive
    assert float(filters.correlate2d(spot, filters.laplacian(4))[2, 2]) == -4.0
    rows, cols = np.mgrid[0:6, 0:7].astype(np.float32)
    np.testing.assert_allclose(filters.correlate2d(0.5 * rows - 2 * cols, filters.edge(), mode="valid"), 0, atol=1e-5)
    # The mixed derivative of x*y is 1; the kernel is 4 d2/dxdy (corner products of the +-1 differences).
    np.testing.assert_allclose(filters.correlate2d(rows * cols, filters.edge(), mode="valid"), 4, atol=1e-4)


def test_bad_filter_arguments():
    with pytest.raises(ValueError, match="neighbours must be 4 or 8, got 6"):
        filters.laplacian(6)
    with pytest.raises(ValueError, match="identity size"):
        filters.identity(0)


def test_conv2d_strict_raises_where_the_filter_does_not_fit():
    """Slide "Spatial arrangement": 7x7 input, 3x3 filter, stride 3 "doesn't fit"; stride 2 fits (3x3 output)."""
    x = jnp.ones((1, 7, 7, 1))
    w = jnp.ones((3, 3, 1, 1))
    assert F.conv2d(x, w, stride=3).shape == (1, 2, 2, 1)  # the default floors, like every framework
    with pytest.raises(ValueError, match="7x7 input, 3x3 filter, stride 3: doesn't fit"):
        F.conv2d(x, w, stride=3, strict=True)
    with pytest.raises(ValueError, match="doesn't fit"):
        F.conv_output_size(7, 3, 3, strict=True)
    assert F.conv2d(x, w, stride=2, strict=True).shape == (1, 3, 3, 1)
    # Padding 1 makes stride 3 fit: (7 - 3 + 2) / 3 + 1 = 3.
    assert F.conv2d(x, w, stride=3, padding=1, strict=True).shape == (1, 3, 3, 1)
    # Per dimension: only the width fails here.
    with pytest.raises(ValueError, match="doesn't fit"):
        F.conv2d(jnp.ones((1, 7, 8, 1)), w, stride=(2, 2), strict=True)
    with pytest.raises(ValueError, match="doesn't fit"):
        F.conv1d(jnp.ones((1, 7, 1)), jnp.ones((3, 1, 1)), stride=3, strict=True)
    with pytest.raises(ValueError, match="strict must be a bool"):
        F.conv2d(x, w, strict="yes")
    # Under jit the check runs at trace time on the static shapes.
    with pytest.raises(ValueError, match="doesn't fit"):
        jax.jit(lambda v: F.conv2d(v, w, stride=3, strict=True))(x)
