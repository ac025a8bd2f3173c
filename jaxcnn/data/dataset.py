"""The in-memory dataset every loader returns."""
from __future__ import annotations

import dataclasses

import numpy as np


def _read_only_view(array: np.ndarray) -> np.ndarray:
    # A view, so the caller's own array keeps its writeable flag.
    view = array.view()
    view.flags.writeable = False
    return view


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ArrayDataset:
    """A labelled image dataset held in host memory as NumPy arrays.

    Fields:
        images: ``(N, H, W, C)`` uint8, NHWC, pixel values 0..255.
        labels: ``(N,)`` int32, each in ``[0, num_classes)``.
        num_classes: number of classes (>= 1).
        name: the dataset's name, e.g. ``"mnist"``.

    The constructor validates ranks, dtypes, lengths and the label range and
    raises ValueError naming the problem; it never converts silently. The
    stored arrays are read-only views, so a dataset cannot change under a
    training run that shares it.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str

    def __post_init__(self):
        images, labels = self.images, self.labels
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty str, got {self.name!r}")
        where = f"dataset {self.name!r}"
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            raise ValueError(
                f"{where}: images must be a rank-4 NHWC numpy array, got "
                f"{type(images).__name__} with shape {getattr(images, 'shape', None)}"
            )
        if images.dtype != np.uint8:
            raise ValueError(f"{where}: images must be uint8, got {images.dtype}")
        if not isinstance(labels, np.ndarray) or labels.ndim != 1:
            raise ValueError(
                f"{where}: labels must be a rank-1 numpy array, got "
                f"{type(labels).__name__} with shape {getattr(labels, 'shape', None)}"
            )
        if labels.dtype != np.int32:
            raise ValueError(f"{where}: labels must be int32, got {labels.dtype}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; "
                "expected one label per image"
            )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"{where}: num_classes must be an int >= 1, got {self.num_classes!r}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{where}: labels must lie in [0, {self.num_classes}), "
                f"found values in [{labels.min()}, {labels.max()}]"
            )
        object.__setattr__(self, "images", _read_only_view(images))
        object.__setattr__(self, "labels", _read_only_view(labels))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        return tuple(self.images.shape[1:])

    def subset(self, indices) -> "ArrayDataset":
        """The examples at ``indices`` as a new dataset, in that order.

        ``indices``: a slice, ints in ``[0, N)``, or a ``(N,)`` bool mask. Handy
        for quick runs, ``load("mnist", "train").subset(slice(0, 1000))``, or
        for a few classes, ``ds.subset(ds.labels < 2)``.
        """
        if not isinstance(indices, slice):
            indices = np.asarray(indices)
            if indices.dtype == bool:
                if indices.shape != (len(self),):
                    raise ValueError(
                        f"a bool mask must have shape ({len(self)},) (one entry per example), "
                        f"got {indices.shape}"
                    )
                indices = np.flatnonzero(indices)
            elif indices.size == 0 and indices.ndim == 1:
                indices = indices.astype(np.int64)  # np.asarray([]) is float64
            if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
                raise ValueError(
                    f"indices must be a slice, a 1-D array of ints or a bool mask, got {indices!r}"
                )
            if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
                raise ValueError(f"indices must lie in [0, {len(self)}), got {indices.min()}..{indices.max()}")
        return ArrayDataset(
            images=np.ascontiguousarray(self.images[indices]),
            labels=np.ascontiguousarray(self.labels[indices]),
            num_classes=self.num_classes,
            name=self.name,
        )

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, images={self.images.shape} {self.images.dtype}, "
            f"labels={self.labels.shape} {self.labels.dtype}, num_classes={self.num_classes})"
        )
