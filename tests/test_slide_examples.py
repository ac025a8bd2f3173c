"""Every worked example and identity of the five lecture decks that the library reproduces, pinned.

Each test names its slide (by title) in its docstring. Expected values are the
numbers printed on the slides or derived by hand, never read back from the code
under test. The layer tables (LeNet-5, AlexNet, VGG-16, ResNet-50, GoogLeNet)
live in ``tests/summary/``; the Lp pooling and loss formulas in ``tests/functional/``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import functional as F
from jaxcnn import nn as jnn
from jaxcnn.functional import filters
from jaxcnn.summary import summarize

RNG = np.random.default_rng(15)


def _nhwc(image) -> jnp.ndarray:
    return jnp.asarray(np.asarray(image, np.float32)[None, :, :, None])


def _hwio(kernel) -> jnp.ndarray:
    return jnp.asarray(np.asarray(kernel, np.float32)[:, :, None, None])


def _param_count(module, input_shape) -> int:
    variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros(input_shape))
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(variables["params"]))


def test_vertical_edge_detection_rows_are_0_30_30_0():
    """Slide "Edge detection example": 6x6 image (10s left, 0s right) * 3x3 vertical-edge kernel -> rows [0, 30, 30, 0]."""
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6)
    kernel = np.array([[1, 0, -1]] * 3)
    out = F.conv2d(_nhwc(image), _hwio(kernel))[0, :, :, 0]
    np.testing.assert_array_equal(out, [[0, 30, 30, 0]] * 4)
    np.testing.assert_array_equal(filters.correlate2d(image, kernel, mode="valid"), out)


def test_i_star_k_7x7_worked_table():
    """Slide "Convolution: I * K": the 7x7 binary image with the 3x3 "X" kernel gives the 5x5 table."""
    image = [
        [0, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
    ]
    kernel = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    expected = [
        [1, 4, 3, 4, 1],
        [1, 2, 4, 3, 3],
        [1, 2, 3, 4, 1],
        [1, 3, 3, 1, 1],
        [3, 3, 1, 1, 0],
    ]
    np.testing.assert_array_equal(F.conv2d(_nhwc(image), _hwio(kernel))[0, :, :, 0], expected)
    # The kernel is symmetric, so convolution and correlation agree here.
    np.testing.assert_array_equal(filters.convolve2d(image, kernel, mode="valid"), expected)


def test_5x5_image_3x3_kernel_convolved_feature():
    """Slide "Convolution example" (the 5x5 image / 3x3 filter animation): the convolved feature [[4,3,4],[2,4,3],[2,3,4]]."""
    image = [
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 0],
        [0, 1, 1, 0, 0],
    ]
    kernel = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    expected = [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    for impl in ("xla", "im2col"):
        np.testing.assert_array_equal(F.conv2d(_nhwc(image), _hwio(kernel), impl=impl)[0, :, :, 0], expected)


def test_max_pooling_2x2_stride_2_example():
    """Slide "Max pooling": the 4x4 single-depth slice, 2x2 filters and stride 2 -> [[6, 8], [3, 4]]."""
    x = _nhwc([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    np.testing.assert_array_equal(F.max_pool2d(x, 2, 2)[0, :, :, 0], [[6, 8], [3, 4]])
    # Slide "Pooling: L_p norm; P = 1 -> average, P = inf -> max" on the same slice.
    np.testing.assert_array_equal(F.lp_pool2d(x, float("inf"), 2)[0, :, :, 0], [[6, 8], [3, 4]])
    np.testing.assert_array_equal(F.lp_pool2d(x, 1, 2)[0, :, :, 0], [[3.25, 5.25], [2, 2]])


def test_integer_gaussian_kernel_one_sixteenth():
    """Slide "Gaussian filter": (1/16) [[1, 2, 1], [2, 4, 2], [1, 2, 1]], the sampled Gaussian with sigma = 1/sqrt(2 ln 2)."""
    integer = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    # exp(-1 / (2 sigma^2)) = 1/2 at distance 1 and 1/4 at the corners exactly when 2 sigma^2 = 1 / ln 2.
    np.testing.assert_allclose(filters.gaussian(3, 1 / math.sqrt(2 * math.log(2))), integer, rtol=1e-6)
    assert integer.sum() == 1
    # It is separable: [1, 2, 1]/4 applied along rows then columns.
    image = RNG.uniform(size=(6, 7)).astype(np.float32)
    row = np.array([[1, 2, 1]], np.float32) / 4
    np.testing.assert_allclose(
        filters.correlate2d(filters.correlate2d(image, row), row.T), filters.correlate2d(image, integer),
        rtol=1e-5, atol=1e-6,
    )


def test_one_by_one_convolution_64_to_32_on_56x56():
    """Slide "1x1 convolutions": 56x56x64 input, 32 filters of 1x1x64 -> 56x56x32 (a dot product over depth at every pixel)."""
    rows = summarize(jnn.Conv(32, (1, 1)), (1, 56, 56, 64))
    conv = rows[1]
    assert conv.output_shape == (1, 56, 56, 32)
    assert conv.params == 64 * 32 + 32 == 2080
    assert conv.macs == 56 * 56 * 32 * 64 == 6_422_528
    # Numerically: a 1x1 conv is a matrix product over the channel axis at every pixel.
    x = jnp.asarray(RNG.normal(size=(1, 5, 5, 64)).astype(np.float32))
    w = jnp.asarray(RNG.normal(size=(1, 1, 64, 32)).astype(np.float32))
    np.testing.assert_allclose(F.conv2d(x, w), np.asarray(x) @ np.asarray(w)[0, 0], rtol=1e-4, atol=1e-4)


def test_local_connectivity_counts_21_9_3():
    """Slide "Local connectivity / parameter sharing": 7 inputs, 3 hidden units: fully connected 21 weights,
    locally connected (receptive field 3, stride 2) 9, convolution (shared weights) 3."""
    x_shape = (1, 1, 7, 1)  # a 1-D signal of 7 inputs as a 1x7 image
    assert _param_count(jnn.Dense(3, use_bias=False), (1, 7)) == 21
    local = jnn.LocallyConnected2D(1, (1, 3), stride=(1, 2), use_bias=False)
    assert _param_count(local, x_shape) == 9
    assert jax.eval_shape(lambda: local.init_with_output(jax.random.PRNGKey(0), jnp.zeros(x_shape))[0]).shape == (1, 1, 3, 1)
    assert _param_count(jnn.Conv(1, (1, 3), stride=(1, 2), use_bias=False), x_shape) == 3


def test_two_stacked_convolutions_equal_one_convolution():
    """Slide "Stacking convolutions": two 3x3 convolutions equal one 5x5 convolution whose kernel is their full convolution."""
    image = RNG.normal(size=(9, 8)).astype(np.float32)
    a = RNG.normal(size=(3, 3)).astype(np.float32)
    b = RNG.normal(size=(3, 3)).astype(np.float32)
    combined = filters.convolve2d(a, b, mode="full")  # (5, 5)
    assert combined.shape == (5, 5)
    # Deep-learning conv (correlation): corr(corr(I, a), b) = corr(I, a (*) b), the kernels' full convolution.
    stacked = F.conv2d(F.conv2d(_nhwc(image), _hwio(a)), _hwio(b))
    np.testing.assert_allclose(stacked, F.conv2d(_nhwc(image), _hwio(combined)), rtol=1e-4, atol=1e-4)


def test_convolution_is_associative_and_cross_correlation_is_not():
    """Slide "Convolution vs cross-correlation": (I * K1) * K2 = I * (K1 * K2) for convolution only."""
    image = RNG.normal(size=(7, 8)).astype(np.float32)
    k1 = RNG.normal(size=(3, 3)).astype(np.float32)
    k2 = RNG.normal(size=(2, 3)).astype(np.float32)
    conv, corr = filters.convolve2d, filters.correlate2d
    np.testing.assert_allclose(conv(conv(image, k1, "full"), k2, "full"), conv(image, conv(k1, k2, "full"), "full"),
                               rtol=1e-4, atol=1e-4)
    left = corr(corr(image, k1, "full"), k2, "full")
    right = corr(image, corr(k1, k2, "full"), "full")
    assert left.shape == right.shape
    assert not np.allclose(left, right, atol=1e-2)


def test_convolution_is_translation_equivariant():
    """Slide "Translation equivariance": shifting the input shifts the feature map by the same amount."""
    image = np.zeros((1, 12, 12, 2), np.float32)
    image[:, 3:7, 2:6, :] = RNG.normal(size=(1, 4, 4, 2))  # content away from the borders
    w = jnp.asarray(RNG.normal(size=(3, 3, 2, 4)).astype(np.float32))
    shift = (2, 3)
    shifted = np.roll(image, shift, axis=(1, 2))
    np.testing.assert_allclose(F.conv2d(shifted, w, padding=1), np.roll(F.conv2d(image, w, padding=1), shift, axis=(1, 2)),
                               rtol=1e-5, atol=1e-5)
    # Max pooling is only equivariant to shifts by multiples of its stride.
    np.testing.assert_array_equal(F.max_pool2d(np.roll(image, (2, 4), axis=(1, 2)), 2),
                                  np.roll(F.max_pool2d(image, 2), (1, 2), axis=(1, 2)))


@pytest.mark.parametrize("stride,padding", [(2, 0), (2, 1), (3, 1), ((2, 3), 2)])
def test_strided_convolution_equals_convolution_then_downsampling(stride, padding):
    """Slide "Strided convolution": a stride-S convolution is the stride-1 convolution sampled every S pixels."""
    x = jnp.asarray(RNG.normal(size=(2, 11, 10, 3)).astype(np.float32))
    w = jnp.asarray(RNG.normal(size=(3, 3, 3, 4)).astype(np.float32))
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    full = F.conv2d(x, w, padding=padding)
    np.testing.assert_allclose(F.conv2d(x, w, stride=stride, padding=padding), full[:, ::sh, ::sw, :],
                               rtol=1e-5, atol=1e-5)


def test_output_size_7x7_3x3_stride_3_does_not_fit():
    """Slide "Spatial arrangement": N = 7, F = 3: stride 1 -> 5, stride 2 -> 3, stride 3 doesn't fit ((N - F)/S + 1)."""
    assert F.conv_output_size(7, 3, 1) == 5
    assert F.conv_output_size(7, 3, 2) == 3
    with pytest.raises(ValueError, match="doesn't fit"):
        F.conv2d(jnp.ones((1, 7, 7, 1)), jnp.ones((3, 3, 1, 1)), stride=3, strict=True)
