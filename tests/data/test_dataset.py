"""ArrayDataset: validation with clear messages, read-only arrays, subsets."""
import numpy as np
import pytest

from jaxcnn.data import ArrayDataset


def make(images=None, labels=None, num_classes=3, name="toy"):
    images = np.zeros((4, 2, 2, 1), np.uint8) if images is None else images
    labels = np.array([0, 1, 2, 1], np.int32) if labels is None else labels
    return ArrayDataset(images=images, labels=labels, num_classes=num_classes, name=name)


def test_fields_len_and_repr():
    dataset = make()
    assert len(dataset) == 4 and dataset.image_shape == (2, 2, 1)
    assert repr(dataset) == "ArrayDataset(name='toy', images=(4, 2, 2, 1) uint8, labels=(4,) int32, num_classes=3)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(images=np.zeros((4, 2, 2), np.uint8)), r"images must be a rank-4 NHWC numpy array, got ndarray with shape \(4, 2, 2\)"),
        (dict(images=np.zeros((4, 2, 2, 1), np.float32)), "images must be uint8, got float32"),
        (dict(labels=np.array([0, 1, 2, 1], np.int64)), "labels must be int32, got int64"),
        (dict(labels=[0, 1, 2, 1]), "labels must be a rank-1 numpy array, got list"),
        (dict(labels=np.array([0, 1, 2], np.int32)), "4 images but 3 labels"),
        (dict(labels=np.array([0, 1, 3, 1], np.int32)), r"labels must lie in \[0, 3\), found values in \[0, 3\]"),
        (dict(labels=np.array([0, -1, 2, 1], np.int32)), r"labels must lie in \[0, 3\)"),
        (dict(num_classes=0), "num_classes must be an int >= 1, got 0"),
        (dict(name=""), "name must be a non-empty str"),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_arrays_are_read_only_views_and_callers_arrays_stay_writeable():
    images = np.zeros((4, 2, 2, 1), np.uint8)
    dataset = make(images=images)
    with pytest.raises(ValueError, match="read-only"):
        dataset.images[0, 0, 0, 0] = 1
    images[0, 0, 0, 0] = 7  # the caller's array is untouched by the dataset's flag
    assert dataset.images[0, 0, 0, 0] == 7


def test_subset():
    images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1)
    dataset = make(images=images)
    part = dataset.subset([3, 1])
    assert part.images[:, 0, 0, 0].tolist() == [3, 1] and part.labels.tolist() == [1, 1]
    assert part.name == "toy" and part.num_classes == 3
    assert dataset.subset(slice(0, 2)).labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\)"):
        dataset.subset([0, 4])
    with pytest.raises(ValueError, match="indices must be a slice, a 1-D array of ints or a bool mask"):
        dataset.subset([0.5])


def test_subset_by_mask_and_empty():
    dataset = make(images=np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1))
    ones = dataset.subset(dataset.labels == 1)  # labels [0, 1, 2, 1]
    assert ones.images[:, 0, 0, 0].tolist() == [1, 3] and ones.labels.tolist() == [1, 1]
    empty = dataset.subset([])
    assert len(empty) == 0 and empty.images.shape == (0, 1, 1, 1) and empty.labels.dtype == np.int32
    assert len(dataset.subset(np.zeros(4, bool))) == 0
    with pytest.raises(ValueError, match=r"a bool mask must have shape \(4,\).*got \(3,\)"):
        dataset.subset([True, False, True])
