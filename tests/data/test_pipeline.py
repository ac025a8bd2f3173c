"""batches / epoch_permutation / num_batches: reproducible, complete, resumable."""
import numpy as np
import pytest

from jaxcnn import data


def indexed_dataset(n):
    """Image i stores i in its two pixels (high byte, low byte); label is i % 10."""
    index = np.arange(n)
    images = np.stack([index // 256, index % 256], axis=-1).astype(np.uint8).reshape(n, 1, 2, 1)
    return data.ArrayDataset(images=images, labels=(index % 10).astype(np.int32), num_classes=10, name="indexed")


def indices_of(images):
    return images[:, 0, 0, 0].astype(np.int64) * 256 + images[:, 0, 1, 0]


def test_epoch_permutation_depends_only_on_seed_and_epoch():
    first = data.epoch_permutation(3, 7, 500)
    data.epoch_permutation(0, 0, 500)  # unrelated calls in between change nothing
    np.random.seed(123)
    np.testing.assert_array_equal(first, data.epoch_permutation(3, 7, 500))
    assert sorted(first.tolist()) == list(range(500))
    assert not np.array_equal(first, data.epoch_permutation(3, 8, 500))
    assert not np.array_equal(first, data.epoch_permutation(4, 7, 500))
    assert not np.array_equal(first, np.arange(500))
    assert data.epoch_permutation(0, 0, 0).shape == (0,)


@pytest.mark.parametrize(
    "args, message",
    [((-1, 0, 5), "seed must be an int >= 0"), ((0, -1, 5), "epoch must be an int >= 0"), ((0, 0, 2.5), "n must be an int >= 0")],
)
def test_epoch_permutation_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        data.epoch_permutation(*args)


@pytest.mark.parametrize(
    "n, batch_size, drop_remainder, expected",
    [(10, 4, False, 3), (10, 4, True, 2), (8, 4, False, 2), (8, 4, True, 2), (3, 5, False, 1), (3, 5, True, 0), (0, 5, False, 0)],
)
def test_num_batches(n, batch_size, drop_remainder, expected):
    assert data.num_batches(n, batch_size, drop_remainder) == expected


def test_num_batches_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        data.num_batches(10, 0)


def test_each_example_exactly_once_in_the_epoch_order():
    dataset = indexed_dataset(1000)
    seen = []
    for images, labels in data.batches(dataset, 64, seed=5, epoch=2):
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        assert images.shape[1:] == (1, 2, 1) and images.shape[0] == labels.shape[0]
        index = indices_of(images)
        np.testing.assert_array_equal(labels, index % 10)  # images and labels stay paired
        seen.append(index)
    seen = np.concatenate(seen)
    np.testing.assert_array_equal(seen, data.epoch_permutation(5, 2, 1000))
    assert np.bincount(seen, minlength=1000).tolist() == [1] * 1000


def test_same_seed_and_epoch_same_batches_other_epoch_other_order():
    dataset = indexed_dataset(50)
    run = lambda epoch: np.concatenate([indices_of(x) for x, _ in data.batches(dataset, 8, seed=1, epoch=epoch)])
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))
    np.testing.assert_array_equal(np.sort(run(1)), np.arange(50))


def test_partial_last_batch_and_drop_remainder():
    dataset = indexed_dataset(10)
    sizes = [len(labels) for _, labels in data.batches(dataset, 4)]
    assert sizes == [4, 4, 2]
    assert [len(labels) for _, labels in data.batches(dataset, 4, drop_remainder=True)] == [4, 4]
    dropped = np.concatenate([indices_of(x) for x, _ in data.batches(dataset, 4, drop_remainder=True)])
    np.testing.assert_array_equal(dropped, data.epoch_permutation(0, 0, 10)[:8])


def test_no_shuffle_is_file_order():
    dataset = indexed_dataset(10)
    order = np.concatenate([indices_of(x) for x, _ in data.batches(dataset, 3, shuffle=False, epoch=4)])
    np.testing.assert_array_equal(order, np.arange(10))


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_start_batch_resumes_with_the_tail_of_the_epoch(drop_remainder):
    dataset = indexed_dataset(23)
    full = [indices_of(x) for x, _ in data.batches(dataset, 5, seed=9, epoch=3, drop_remainder=drop_remainder)]
    assert len(full) == data.num_batches(23, 5, drop_remainder)
    for start in range(len(full) + 1):
        resumed = [
            indices_of(x)
            for x, _ in data.batches(dataset, 5, seed=9, epoch=3, drop_remainder=drop_remainder, start_batch=start)
        ]
        assert len(resumed) == len(full) - start
        for got, expected in zip(resumed, full[start:]):
            np.testing.assert_array_equal(got, expected)


def test_bad_batches_arguments_raise_at_the_call():
    dataset = indexed_dataset(10)
    with pytest.raises(ValueError, match=r"start_batch 4 is past the end of the epoch \(3 batches of 4\)"):
        data.batches(dataset, 4, start_batch=4)
    with pytest.raises(ValueError, match="start_batch must be an int >= 0"):
        data.batches(dataset, 4, start_batch=-1)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        data.batches(dataset, 0)
    with pytest.raises(ValueError, match="dataset must be an ArrayDataset, got tuple"):
        data.batches((dataset.images, dataset.labels), 4)
