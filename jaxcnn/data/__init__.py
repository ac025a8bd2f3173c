"""jaxcnn.data: datasets in host memory and the input pipeline.

    ds = load("mnist", "train")                        # ArrayDataset: uint8 NHWC images, int32 labels
    mean, std = stats_for("mnist")
    for images, labels in batches(ds, 128, seed=0, epoch=3):
        x = normalize(images, mean, std)               # float32, jit-able
        x = random_crop_flip(key, x, padding=4)        # CIFAR-style augmentation, jit-able
    preprocess = Preprocess(mean, std, augmentation_for("mnist", augment=None))  # training's policy

Knows nothing of models or training.
"""
from jaxcnn.data.augment import apply_crop_flip, crop_flip_params, random_crop_flip
from jaxcnn.data.cifar import read_binary_batch, read_pickle_batch
from jaxcnn.data.dataset import ArrayDataset
from jaxcnn.data.idx import read_idx
from jaxcnn.data.preprocess import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DIGITS_MEAN,
    DIGITS_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_MEAN,
    MNIST_STD,
    channel_stats,
    mean_image,
    normalize,
    stats_for,
)
from jaxcnn.data.pipeline import batches, epoch_permutation, num_batches
from jaxcnn.data.policy import (
    AUGMENTATIONS,
    AUGMENTED_BY_DEFAULT,
    DEFAULT_AUGMENTATION,
    Preprocess,
    augmentation_for,
    describe_augmentation,
    normalization_stats,
)
from jaxcnn.data.sources import DATA_DIR_ENV, load, names

__all__ = [
    "ArrayDataset",
    "load",
    "names",
    "DATA_DIR_ENV",
    "read_idx",
    "read_pickle_batch",
    "read_binary_batch",
    "epoch_permutation",
    "batches",
    "num_batches",
    "channel_stats",
    "mean_image",
    "normalize",
    "stats_for",
    "random_crop_flip",
    "crop_flip_params",
    "apply_crop_flip",
    "AUGMENTATIONS",
    "AUGMENTED_BY_DEFAULT",
    "DEFAULT_AUGMENTATION",
    "Preprocess",
    "augmentation_for",
    "describe_augmentation",
    "normalization_stats",
    "MNIST_MEAN",
    "MNIST_STD",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DIGITS_MEAN",
    "DIGITS_STD",
]
