"""data.policy: per-dataset augmentation choice, normalization statistics, the jitted train/eval pipeline."""
import numpy as np


def test_training_augmentation_is_a_random_shift_or_crop_flip_of_the_padded_image():
    import jax

    from jaxcnn import data
    from jaxcnn.data import AUGMENTATIONS, DEFAULT_AUGMENTATION, Preprocess, augmentation_for

    assert AUGMENTATIONS["cifar10"] == (4, True) and DEFAULT_AUGMENTATION == (2, False)
    assert augmentation_for("cifar10", None) == (4, True)
    assert augmentation_for("mnist", None) == (2, False)
    assert augmentation_for("digits", None) is None and augmentation_for("digits", True) == (2, False)
    assert augmentation_for("cifar10", False) is None
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 7, 6, 2), dtype=np.uint8)
    mean, std = np.array([0.5, 0.25], np.float32), np.array([0.2, 0.4], np.float32)
    key = jax.random.PRNGKey(7)
    for padding, flip in [(2, False), (3, True)]:
        out = np.asarray(Preprocess(mean, std, (padding, flip)).train(images, key))
        offsets, flips = (np.asarray(a) for a in data.crop_flip_params(key, 32, padding=padding))
        assert 0 < flips.sum() < 32
        padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        for i, ((row, col), mirrored) in enumerate(zip(offsets, flips)):
            expected = padded[i, row:row + 7, col:col + 6]
            if flip and mirrored:
                expected = expected[:, ::-1]
            np.testing.assert_allclose(out[i], (expected / 255.0 - mean) / std, rtol=1e-5,
                                       atol=1e-5)
    evaluated = np.asarray(Preprocess(mean, std, None).eval(images))
    np.testing.assert_allclose(evaluated, (images / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_normalization_stats_are_published_constants_or_measured():
    from jaxcnn import data

    for got, want in zip(data.normalization_stats("mnist", None), data.stats_for("mnist")):
        np.testing.assert_array_equal(got, want)
    images = np.zeros((4, 2, 2, 1), np.uint8)
    images[:2] = 255  # half white, half black: mean 0.5, std 0.5
    dataset = data.ArrayDataset(images, np.zeros(4, np.int32), num_classes=1, name="toy")
    mean, std = data.normalization_stats("not-published", dataset)
    np.testing.assert_allclose(mean, [0.5], atol=1e-6)
    np.testing.assert_allclose(std, [0.5], atol=1e-6)


def test_preprocess_takes_every_form_of_statistics_that_normalize_takes():
    """A scalar, per-channel (C,) and per-pixel (H, W, C) mean/std, as `normalize` documents."""
    from jaxcnn.data import Preprocess, normalize

    images = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5, 2)).astype(np.uint8)
    per_pixel = np.linspace(0.1, 0.9, 4 * 5 * 2, dtype=np.float32).reshape(4, 5, 2)
    for mean, std in ((0.5, 0.25), ((0.4, 0.6), (0.2, 0.3)), (per_pixel, 1.0)):
        np.testing.assert_allclose(np.asarray(Preprocess(mean, std, None).eval(images)),
                                   np.asarray(normalize(images, mean, std)), rtol=1e-6, atol=1e-6)
