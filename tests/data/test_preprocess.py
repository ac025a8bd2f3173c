"""channel_stats, stats_for and normalize."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn import data


def test_normalize_hand_derived_values():
    images = np.array([[[[0, 255, 51]]]], np.uint8)  # one 1x1 RGB pixel
    mean = np.array([0.5, 0.5, 0.2], np.float32)
    std = np.array([0.25, 0.5, 0.1], np.float32)
    out = data.normalize(images, mean, std)
    assert out.dtype == jnp.float32 and out.shape == (1, 1, 1, 3)
    # (0 - 0.5) / 0.25 = -2;  (1 - 0.5) / 0.5 = 1;  (0.2 - 0.2) / 0.1 = 0.
    np.testing.assert_allclose(np.asarray(out).ravel(), [-2.0, 1.0, 0.0], atol=1e-6)


def test_normalize_matches_numpy_per_channel_and_under_jit():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    mean, std = data.stats_for("cifar10")
    expected = (images.astype(np.float64) / 255 - mean.astype(np.float64)) / std.astype(np.float64)
    eager = data.normalize(images, mean, std)
    jitted = jax.jit(data.normalize)(images, mean, std)
    np.testing.assert_allclose(np.asarray(eager), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-6)
    # Scalar statistics broadcast to every channel.
    np.testing.assert_allclose(
        np.asarray(data.normalize(images, 0.5, 0.25)), (images / 255 - 0.5) / 0.25, rtol=1e-5, atol=1e-5
    )


def test_normalize_gradients_in_mean_and_std():
    images = np.array([[[[10, 200]], [[90, 0]]]], np.uint8)  # (1, 2, 1, 2)
    check_grads(jax.jit(lambda m, s: data.normalize(images, m, s)), (jnp.array([0.3, 0.6]), jnp.array([0.2, 0.4])), order=1, modes=["rev"])


@pytest.mark.parametrize(
    "images, mean, std, message",
    [
        (np.zeros((1, 2, 2, 3), np.float32), 0.5, 0.5, "normalize expects uint8 images"),
        (np.zeros((1, 2, 2, 3), np.uint8), [0.1, 0.2], 0.5, r"mean must be a scalar, per channel \(3,\) or per pixel \(2, 2, 3\).*got shape \(2,\)"),
        (np.zeros((1, 2, 2, 1), np.uint8), 0.1, [[0.5]], r"std must be a scalar, per channel \(1,\) or per pixel \(2, 2, 1\).*got shape \(1, 1\)"),
        (np.zeros((1, 2, 2, 2), np.uint8), 0.1, [0.5, 0.0], "std must be > 0 in every channel"),
    ],
)
def test_normalize_rejects_bad_input(images, mean, std, message):
    with pytest.raises(ValueError, match=message):
        data.normalize(images, mean, std)


def test_channel_stats_matches_numpy_float64():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (37, 5, 6, 3), dtype=np.uint8)
    dataset = data.ArrayDataset(images=images, labels=np.zeros(37, np.int32), num_classes=1, name="random")
    mean, std = data.channel_stats(dataset)
    pixels = images.reshape(-1, 3).astype(np.float64) / 255
    assert mean.shape == std.shape == (3,) and mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-6)


def test_channel_stats_in_chunks(monkeypatch):
    from jaxcnn.data import preprocess as module

    monkeypatch.setattr(module, "_CHUNK_PIXELS", 7)  # forces many uneven chunks
    images = np.arange(5 * 2 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2, 2)
    dataset = data.ArrayDataset(images=images, labels=np.zeros(5, np.int32), num_classes=1, name="ramp")
    mean, std = data.channel_stats(dataset)
    # Channel 0 holds the even numbers 0..38, channel 1 the odd ones 1..39.
    np.testing.assert_allclose(mean * 255, [19.0, 20.0], rtol=1e-6)
    np.testing.assert_allclose(std * 255, [np.std(np.arange(0, 40, 2))] * 2, rtol=1e-6)


@pytest.mark.parametrize("name", ["mnist", "digits"])
def test_published_constants_equal_the_training_split_statistics(name):
    mean, std = data.channel_stats(data.load(name, "train"))
    expected_mean, expected_std = data.stats_for(name)
    np.testing.assert_allclose(mean, expected_mean, atol=1e-6)
    np.testing.assert_allclose(std, expected_std, atol=1e-6)


def test_stats_for_shapes_and_unknown_name():
    assert data.stats_for("cifar10")[0].shape == (3,) and data.stats_for("fashion_mnist")[1].shape == (1,)
    np.testing.assert_allclose(data.stats_for("mnist")[0], data.MNIST_MEAN)
    np.testing.assert_allclose(data.stats_for("cifar10")[1], data.CIFAR10_STD)
    with pytest.raises(ValueError, match="no statistics for dataset 'svhn'"):
        data.stats_for("svhn")


def test_mean_image_matches_numpy_and_channel_stats():
    """Slide "AlexNet: preprocessing": subtract the mean image ([32, 32, 3] for CIFAR-10) of the training set."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (7, 4, 5, 3), dtype=np.uint8)
    dataset = data.ArrayDataset(images, np.zeros(7, np.int32), 1, "toy")
    mean = data.mean_image(dataset)
    assert mean.shape == (4, 5, 3) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, images.astype(np.float64).mean(axis=0) / 255, rtol=1e-6)
    # The same units as channel_stats: its per-channel mean is the mean image's mean over (H, W).
    np.testing.assert_allclose(mean.mean(axis=(0, 1)), data.channel_stats(dataset)[0], rtol=1e-5)
    # By hand: two 1x1 grey images 0 and 255 -> 0.5.
    pair = data.ArrayDataset(np.array([0, 255], np.uint8).reshape(2, 1, 1, 1), np.zeros(2, np.int32), 1, "pair")
    np.testing.assert_allclose(data.mean_image(pair), [[[0.5]]])


def test_mean_image_in_chunks(monkeypatch):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (9, 3, 3, 2), dtype=np.uint8)
    dataset = data.ArrayDataset(images, np.zeros(9, np.int32), 1, "toy")
    whole = data.mean_image(dataset)
    monkeypatch.setattr("jaxcnn.data.preprocess._CHUNK_PIXELS", 20)  # 1 image (18 values) per chunk
    np.testing.assert_allclose(data.mean_image(dataset), whole, rtol=1e-6)


def test_normalize_per_pixel_mean_and_std_broadcast_over_the_batch():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (3, 4, 5, 2), dtype=np.uint8)
    mean = rng.uniform(0.2, 0.8, (4, 5, 2)).astype(np.float32)
    std = rng.uniform(0.1, 0.5, (4, 5, 2)).astype(np.float32)
    expected = (images / 255 - mean.astype(np.float64)) / std
    np.testing.assert_allclose(data.normalize(images, mean, std), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(data.normalize)(images, mean, 1.0), images / 255 - mean, rtol=1e-5, atol=1e-5)
    # AlexNet-style: subtracting the batch's own mean image centres every pixel.
    dataset = data.ArrayDataset(images, np.zeros(3, np.int32), 1, "toy")
    centred = data.normalize(images, data.mean_image(dataset), 1.0)
    np.testing.assert_allclose(np.asarray(centred).mean(axis=0), 0, atol=1e-6)
    check_grads(lambda m: data.normalize(images, m, std), (jnp.asarray(mean),), order=1, modes=["rev"])
    with pytest.raises(ValueError, match=r"per pixel \(4, 5, 2\).*got shape \(5, 4, 2\)"):
        data.normalize(images, mean.transpose(1, 0, 2), 1.0)
    with pytest.raises(ValueError, match="std must be > 0"):
        data.normalize(images, mean, np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match="is empty"):
        data.mean_image(data.ArrayDataset(images[:0], np.zeros(0, np.int32), 1, "empty"))
