"""Image filters: kernels by hand and vs SciPy, correlate2d/convolve2d vs scipy.signal, the slides' facts."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import signal

from jaxcnn.functional import filters

RNG = np.random.default_rng(0)
# One image for the SciPy sweep: non-square, 3 channels, filtered channel by channel.
IMAGE = RNG.normal(size=(7, 9, 3)).astype(np.float32)
# Odd square, even square, and non-square kernels of both parities.
KERNEL_SHAPES = [(3, 3), (2, 2), (2, 3), (4, 3)]
MODES = ["valid", "same", "full"]


# ---------------------------------------------------------------- kernels


def test_edge_and_sharpen_kernels_hand_values():
    np.testing.assert_array_equal(filters.sobel_x(), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(filters.sobel_y(), np.transpose(filters.sobel_x()))
    np.testing.assert_array_equal(filters.prewitt_x(), [[-1, 0, 1]] * 3)
    np.testing.assert_array_equal(filters.prewitt_y(), np.transpose(filters.prewitt_x()))
    np.testing.assert_array_equal(filters.laplacian(), [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    identity = np.zeros((3, 3))
    identity[1, 1] = 1
    np.testing.assert_array_equal(filters.sharpen(), identity - np.asarray(filters.laplacian()))
    for make, total in [(filters.sobel_x, 0), (filters.sobel_y, 0), (filters.prewitt_x, 0),
                        (filters.prewitt_y, 0), (filters.laplacian, 0), (filters.sharpen, 1)]:
        kernel = make()
        assert kernel.shape == (3, 3) and kernel.dtype == jnp.float32
        assert float(kernel.sum()) == total


def test_box_kernel():
    np.testing.assert_allclose(filters.box(3), np.full((3, 3), 1 / 9), rtol=1e-7)
    np.testing.assert_allclose(filters.box((2, 5)), np.full((2, 5), 1 / 10), rtol=1e-7)
    assert filters.box(1).dtype == jnp.float32
    for bad in (0, -1, 2.5, (3, 0)):
        with pytest.raises(ValueError, match="box size k"):
            filters.box(bad)


@pytest.mark.parametrize("size,sigma", [(5, 1.0), (4, 0.7), ((3, 7), 2.0)])
def test_gaussian_kernel_matches_scipy_window(size, sigma):
    height, width = (size, size) if isinstance(size, int) else size
    # Independent reference: the outer product of SciPy's 1-D Gaussian windows.
    expected = np.outer(signal.windows.gaussian(height, std=sigma), signal.windows.gaussian(width, std=sigma))
    expected /= expected.sum()
    kernel = filters.gaussian(size, sigma)
    assert kernel.shape == (height, width) and kernel.dtype == jnp.float32
    np.testing.assert_allclose(kernel, expected, rtol=1e-6)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], rtol=1e-6)  # centred


def test_gaussian_errors():
    for bad_sigma in (0.0, -1.0, "1", None):
        with pytest.raises(ValueError, match="sigma must be a Python float > 0"):
            filters.gaussian(3, bad_sigma)
    with pytest.raises(ValueError, match="gaussian size"):
        filters.gaussian(0, 1.0)


# ---------------------------------------------------------------- vs scipy.signal


def _per_channel(scipy_fn, image, kernel, mode):
    return np.stack([scipy_fn(image[:, :, c], kernel, mode=mode) for c in range(image.shape[2])], axis=-1)


@pytest.mark.parametrize(
    "mode,kernel_shape",
    list(itertools.product(MODES, KERNEL_SHAPES)),
    ids=[f"{mode}-{h}x{w}" for mode, (h, w) in itertools.product(MODES, KERNEL_SHAPES)],
)
def test_correlate2d_and_convolve2d_match_scipy(mode, kernel_shape):
    kernel = RNG.normal(size=kernel_shape).astype(np.float32)
    for ours, reference in [(filters.correlate2d, signal.correlate2d), (filters.convolve2d, signal.convolve2d)]:
        expected = _per_channel(reference, IMAGE, kernel, mode)
        out = ours(IMAGE, kernel, mode=mode)
        assert out.shape == expected.shape, (ours.__name__, mode)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5, err_msg=f"{ours.__name__} {mode}")


def test_two_dimensional_image_and_integer_image():
    gray = np.arange(30, dtype=np.uint8).reshape(5, 6)
    kernel = filters.sobel_x()
    out = filters.correlate2d(gray, kernel)  # default mode "same"
    assert out.shape == (5, 6) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, signal.correlate2d(gray.astype(np.float64), kernel, mode="same"), atol=1e-5)
    np.testing.assert_allclose(
        filters.convolve2d(gray, kernel, mode="valid"),
        signal.convolve2d(gray.astype(np.float64), kernel, mode="valid"), atol=1e-5,
    )


def test_gradients_jit_and_convolution_as_flipped_correlation():
    image = jnp.asarray(IMAGE[:5, :6])
    kernel = jnp.asarray(RNG.normal(size=(3, 2)).astype(np.float32))
    check_grads(lambda i, k: filters.correlate2d(i, k, mode="same"), (image, kernel), order=1,
                modes=["rev"], atol=1e-2, rtol=1e-2)
    check_grads(lambda i, k: filters.convolve2d(i, k, mode="full"), (image, kernel), order=1,
                modes=["rev"], atol=1e-2, rtol=1e-2)
    jitted = jax.jit(filters.convolve2d, static_argnames="mode")
    np.testing.assert_allclose(jitted(image, kernel, mode="full"), filters.convolve2d(image, kernel, mode="full"),
                               rtol=1e-6, atol=1e-6)
    # Convolution is correlation with the kernel flipped in both axes ("valid" and "full";
    # "same" too for odd kernels -- the even case is covered by the SciPy sweep).
    flipped = kernel[::-1, ::-1]
    for mode in ("valid", "full"):
        np.testing.assert_allclose(filters.convolve2d(image, kernel, mode=mode),
                                   filters.correlate2d(image, flipped, mode=mode), rtol=1e-6, atol=1e-6)
    odd = jnp.asarray(RNG.normal(size=(3, 3)).astype(np.float32))
    np.testing.assert_allclose(filters.convolve2d(image, odd), filters.correlate2d(image, odd[::-1, ::-1]),
                               rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- the slides' facts


def test_impulse_response_correlation_flips_convolution_does_not():
    impulse = np.zeros((7, 7), np.float32)
    impulse[3, 3] = 1.0
    kernel = np.arange(1, 10, dtype=np.float32).reshape(3, 3)  # asymmetric, so a flip shows
    around_impulse = (slice(2, 5), slice(2, 5))
    np.testing.assert_array_equal(filters.convolve2d(impulse, kernel)[around_impulse], kernel)
    np.testing.assert_array_equal(filters.correlate2d(impulse, kernel)[around_impulse], kernel[::-1, ::-1])
    # Nothing leaks outside the kernel's footprint.
    assert float(jnp.abs(filters.convolve2d(impulse, kernel)).sum()) == kernel.sum()


def test_convolution_is_commutative_and_correlation_is_not():
    a = RNG.normal(size=(4, 5)).astype(np.float32)
    b = RNG.normal(size=(3, 2)).astype(np.float32)
    np.testing.assert_allclose(filters.convolve2d(a, b, mode="full"), filters.convolve2d(b, a, mode="full"),
                               rtol=1e-5, atol=1e-5)
    forward = filters.correlate2d(a, b, mode="full")
    backward = filters.correlate2d(b, a, mode="full")
    assert not np.allclose(forward, backward)
    # Swapping correlation's arguments rotates the result by 180 degrees.
    np.testing.assert_allclose(forward, backward[::-1, ::-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [filters.box(3), filters.gaussian(5, 1.0), filters.sharpen()],
                         ids=["box", "gaussian", "sharpen"])
def test_unit_sum_kernels_preserve_a_constant_interior(kernel):
    constant = np.full((9, 10), 0.7, np.float32)
    kh, kw = kernel.shape
    out = filters.correlate2d(constant, kernel, mode="same")
    # Interior: the kernel sees only the constant, and the weights sum to 1.
    interior = out[kh // 2: 9 - kh // 2, kw // 2: 10 - kw // 2]
    np.testing.assert_allclose(interior, 0.7, rtol=1e-5)
    np.testing.assert_allclose(filters.correlate2d(constant, kernel, mode="valid"), 0.7, rtol=1e-5)
    if float(kernel.min()) >= 0:
        # Zero fill darkens the border of a blurred image; the corner sees the most zeros.
        assert float(out[0, 0]) < 0.7


def test_sobel_on_a_vertical_edge():
    # Dark (0) left half, bright (1) right half: intensity increases left to right.
    edge = np.zeros((6, 8), np.float32)
    edge[:, 4:] = 1.0
    response = np.asarray(filters.correlate2d(edge, filters.sobel_x(), mode="valid"))
    # Valid output column j covers input columns j..j+2; the edge lies between 3 and 4.
    expected_row = np.array([0, 0, 4, 4, 0, 0], np.float32)
    np.testing.assert_array_equal(response, np.tile(expected_row, (4, 1)))
    # No vertical gradient anywhere; convolution gives the opposite sign.
    np.testing.assert_array_equal(filters.correlate2d(edge, filters.sobel_y(), mode="valid"), 0)
    np.testing.assert_array_equal(filters.convolve2d(edge, filters.sobel_x(), mode="valid"), -response)
    # Prewitt: the same pattern with weight 3 instead of 4.
    np.testing.assert_array_equal(filters.correlate2d(edge, filters.prewitt_x(), mode="valid"), 0.75 * response)


def test_laplacian_vanishes_on_a_ramp_and_is_negative_on_a_bright_spot():
    rows, cols = np.mgrid[0:6, 0:7].astype(np.float32)
    ramp = 0.5 * rows - 2.0 * cols + 3.0
    np.testing.assert_allclose(filters.correlate2d(ramp, filters.laplacian(), mode="valid"), 0, atol=1e-5)
    # Sobel on a ramp: 8 * slope (sobel_x) along columns, 8 * slope along rows (sobel_y).
    np.testing.assert_allclose(filters.correlate2d(ramp, filters.sobel_x(), mode="valid"), -16.0, rtol=1e-6)
    np.testing.assert_allclose(filters.correlate2d(ramp, filters.sobel_y(), mode="valid"), 4.0, rtol=1e-6)
    spot = np.zeros((5, 5), np.float32)
    spot[2, 2] = 1.0
    assert float(filters.correlate2d(spot, filters.laplacian())[2, 2]) == -4.0


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("fn", [filters.correlate2d, filters.convolve2d])
def test_filter_errors(fn):
    image, kernel = np.zeros((4, 5)), np.ones((3, 3))
    with pytest.raises(ValueError, match='mode must be one of "valid", "same", "full".*SAME'):
        fn(image, kernel, mode="SAME")
    with pytest.raises(ValueError, match=r"image of shape \(H, W\) or \(H, W, C\).*\(1, 4, 5, 1\)"):
        fn(np.zeros((1, 4, 5, 1)), kernel)
    with pytest.raises(ValueError, match=r"2-D kernel \(KH, KW\).*\(3, 3, 1\)"):
        fn(image, np.ones((3, 3, 1)))
    with pytest.raises(ValueError, match=r'mode "valid": kernel \(5, 3\).*larger than the padded input \(4, 5\)'):
        fn(image, np.ones((5, 3)), mode="valid")
    with pytest.raises(ValueError, match="must not be empty"):
        fn(np.zeros((0, 5)), kernel)
