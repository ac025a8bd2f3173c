"""random_crop_flip: a shifted window of the zero-padded image, mirrored half the time."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn import data

PADDING = 2


@pytest.fixture(scope="module")
def images():
    # Distinct random content: no two windows of an image coincide by chance.
    return np.random.default_rng(0).integers(1, 256, (16, 6, 5, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def augmented(images):
    return np.asarray(data.random_crop_flip(jax.random.key(0), images, padding=PADDING))


def windows(image, padding):
    """Every (offset, flipped, crop) of the zero-padded image, by loops."""
    height, width, _ = image.shape
    padded = np.zeros((height + 2 * padding, width + 2 * padding, image.shape[2]), image.dtype)
    padded[padding : padding + height, padding : padding + width] = image
    for row in range(2 * padding + 1):
        for col in range(2 * padding + 1):
            crop = padded[row : row + height, col : col + width]
            yield (row, col), False, crop
            yield (row, col), True, crop[:, ::-1]


def test_shape_dtype_and_jit_equals_eager(images, augmented):
    assert augmented.shape == images.shape and augmented.dtype == np.uint8
    offsets, flips = data.crop_flip_params(jax.random.key(0), len(images), padding=PADDING)
    eager = data.apply_crop_flip(images, offsets, flips, padding=PADDING)  # op by op
    np.testing.assert_array_equal(np.asarray(eager), augmented)


def test_apply_crop_flip_hand_derived():
    # One 2x3 single-channel image, padding 1: padded rows are
    # [0 0 0 0 0], [0 1 2 3 0], [0 4 5 6 0], [0 0 0 0 0].
    image = np.array([[1, 2, 3], [4, 5, 6]], np.float32)[None, :, :, None]
    images = np.concatenate([image, image])
    offsets = np.array([[0, 0], [2, 1]], np.int32)
    flips = np.array([False, True])
    out = np.asarray(data.apply_crop_flip(images, offsets, flips, padding=1))[..., 0]
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [0, 1, 2]])
    np.testing.assert_array_equal(out[1], [[6, 5, 4], [0, 0, 0]])


def test_every_output_is_a_window_of_the_padded_image_at_the_reported_offset(images, augmented):
    offsets, flips = data.crop_flip_params(jax.random.key(0), len(images), padding=PADDING)
    offsets, flips = np.asarray(offsets), np.asarray(flips)
    for image, out, offset, flip in zip(images, augmented, offsets, flips):
        matches = [(where, flipped) for where, flipped, crop in windows(image, PADDING) if np.array_equal(crop, out)]
        assert matches == [(tuple(offset), bool(flip))]


def test_determinism_per_key(images, augmented):
    again = data.random_crop_flip(jax.random.key(0), images, padding=PADDING)
    np.testing.assert_array_equal(np.asarray(again), augmented)
    other = data.random_crop_flip(jax.random.key(1), images, padding=PADDING)
    assert not np.array_equal(np.asarray(other), augmented)


def test_padding_zero_only_mirrors(images):
    key = jax.random.key(3)
    out = np.asarray(data.random_crop_flip(key, images, padding=0))
    _, flips = data.crop_flip_params(key, len(images), padding=0)
    mirrored = np.all(out == images[:, :, ::-1], axis=(1, 2, 3))
    same = np.all(out == images, axis=(1, 2, 3))
    np.testing.assert_array_equal(mirrored, np.asarray(flips))
    np.testing.assert_array_equal(same, ~np.asarray(flips))
    assert 0 < mirrored.sum() < len(images)


def test_offsets_uniform_over_the_whole_range_and_flips_half_the_time():
    offsets, flips = data.crop_flip_params(jax.random.key(5), 2000, padding=4)
    offsets, flips = np.asarray(offsets), np.asarray(flips)
    assert offsets.shape == (2000, 2) and offsets.dtype == np.int32 and flips.dtype == bool
    for axis in range(2):
        counts = np.bincount(offsets[:, axis], minlength=9)
        assert counts.shape == (9,)  # nothing outside 0..8
        assert counts.min() > 2000 / 9 * 0.7
    # Binomial(2000, 0.5): mean 1000, std 22; a 4.5-sigma band.
    assert 900 <= flips.sum() <= 1100


def test_gradient_routes_back_to_the_cropped_pixels():
    images = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 3, 2)), jnp.float32)
    offsets, flips = jnp.array([[0, 2], [1, 1]], jnp.int32), jnp.array([True, False])
    crop = jax.jit(lambda x: data.apply_crop_flip(x, offsets, flips, padding=1))
    check_grads(crop, (images,), order=1, modes=["rev"])
    # Hand-derived: the gradient of sum() is 1 on input pixels inside the window.
    # Image 0, window rows -1..1, cols 1..3 of the input: rows 0-1, cols 1-2 are inside.
    grad = np.asarray(jax.grad(lambda x: crop(x).sum())(images))[..., 0]
    np.testing.assert_array_equal(grad[0], [[0, 1, 1], [0, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(grad[1], np.ones((3, 3)))


@pytest.mark.parametrize(
    "images, padding, message",
    [
        (np.zeros((4, 4, 3), np.uint8), 4, r"expected NHWC images \(rank 4\), got shape \(4, 4, 3\)"),
        (np.zeros((1, 4, 4, 3), np.uint8), -1, "padding must be an int >= 0, got -1"),
        (np.zeros((1, 4, 4, 3), np.uint8), 1.5, "padding must be an int >= 0, got 1.5"),
    ],
)
def test_rejects_bad_input(images, padding, message):
    with pytest.raises(ValueError, match=message):
        data.random_crop_flip(jax.random.key(0), images, padding=padding)


def test_apply_rejects_mismatched_offsets():
    with pytest.raises(ValueError, match=r"expected offsets of shape \(2, 2\) and flips of shape \(2,\) for 2 images"):
        data.apply_crop_flip(np.zeros((2, 4, 4, 1)), np.zeros((3, 2), np.int32), np.zeros(2, bool), padding=1)


@pytest.mark.parametrize("batch_size", [-1, 2.0, True])
def test_crop_flip_params_rejects_a_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be an int >= 0, got {batch_size!r}"):
        data.crop_flip_params(jax.random.key(0), batch_size, padding=4)
