"""Datasets through TensorFlow Datasets' ``tfds.data_source`` (random access, no TensorFlow).

Used when no local files are found. Where the network allows (e.g. Colab)
``tfds.data_source`` downloads and prepares the dataset in ArrayRecord format
under its data_dir the first time, and reads it from there afterwards.

Offline, TFDS's downloader retries a failed request 10 times with exponential
back-off (``MAX_RETRIES`` in ``tensorflow_datasets/core/download/downloader.py``,
no setting to change it): about 3.5 minutes before it gives up. So a copy
already prepared in the data_dir is read without touching the network, and
only when there is none is the dataset's download host probed (DNS and a TCP
connection, a few seconds at most) before TFDS is asked to download.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from jaxcnn.data.dataset import ArrayDataset

# Where the TFDS 4.9 builders download each dataset from (their ``URL`` /
# ``_cifar_info.url``); tests/data checks these against the installed TFDS.
DOWNLOAD_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
}
# Seconds allowed for each of the DNS lookup and the TCP connection of the probe.
PROBE_TIMEOUT_SECONDS = 5.0


def _resolve(host: str, port: int, timeout: float) -> list:
    """``socket.getaddrinfo`` with a time limit (it has none of its own)."""
    outcome: dict = {}

    def lookup():
        try:
            outcome["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            outcome["error"] = error

    # A daemon thread: a resolver that hangs must not keep the process alive.
    thread = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"DNS lookup of {host} took longer than {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["addresses"]


def check_download_reachable(url: str, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Raise ConnectionError, within about ``2 * timeout`` seconds, if ``url``'s host is unreachable.

    Resolves the host and opens (then closes) one TCP connection to its port;
    nothing is sent. Skipped when a proxy is configured for the URL's scheme
    (``$HTTPS_PROXY``/``$HTTP_PROXY``...): the proxy, not this machine, reaches
    the host, and TFDS's downloader goes through it.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in urllib.request.getproxies():
        return
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        family, kind, protocol, _, address = _resolve(host, port, timeout)[0]
        with socket.socket(family, kind, protocol) as connection:
            connection.settimeout(timeout)
            connection.connect(address)
    except OSError as error:  # gaierror, refused, unreachable, timeouts
        raise ConnectionError(
            f"cannot reach {host}:{port} to download the dataset "
            f"({type(error).__name__}: {error}); not asking TFDS to download "
            "(offline, its downloader retries for minutes)"
        ) from error


@contextlib.contextmanager
def _quiet_absl_warnings():
    """Hide TFDS's absl warnings while it probes for a prepared copy.

    Asking for a copy that is not prepared logs e.g. "Variant folder
    ~/tensorflow_datasets/cifar10/3.0.2 has no dataset_info.json" before the
    exception this module reports in its own words; errors still show.
    """
    absl_logger = logging.getLogger("absl")
    previous = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_logger.setLevel(previous)


def load_tfds_split(
    tfds_name: str, split: str, *, name: str, num_classes: int, data_dir: Path | None
) -> ArrayDataset:
    """All examples of one TFDS split, as arrays.

    Reads the copy prepared under ``data_dir`` if there is one; otherwise
    checks that the download host answers (:func:`check_download_reachable`)
    and lets ``tfds.data_source`` download and prepare the dataset.

    Args:
        tfds_name: the TFDS builder name, e.g. ``"cifar10"``.
        split: a TFDS split name, e.g. ``"train"``.
        name: the jaxcnn name given to the returned dataset.
        num_classes: number of classes of the ``label`` feature.
        data_dir: TFDS data directory; None means TFDS's default
            (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).

    Returns:
        an ArrayDataset with images ``(N, H, W, C)`` uint8 (the ``image`` feature)
        and labels ``(N,)`` int32 (the ``label`` feature).

    Raises:
        ConnectionError: nothing prepared and the download host is unreachable.
        ValueError: the split is empty, or its examples are not ``image``
            uint8 HWC + integer ``label``.
        Anything else ``tfds.data_source`` raises (unknown name, a failed
        download, ...).
    """
    # Imported on demand: importing TFDS costs a second and local data never needs it.
    import tensorflow_datasets as tfds

    tfds_dir = None if data_dir is None else str(data_dir)
    try:
        with _quiet_absl_warnings():
            source = tfds.data_source(tfds_name, split=split, data_dir=tfds_dir, download=False)
    except Exception:  # nothing (readable) prepared there; TFDS's error types vary by cause
        if tfds_name in DOWNLOAD_URLS:
            check_download_reachable(DOWNLOAD_URLS[tfds_name])
        source = tfds.data_source(tfds_name, split=split, data_dir=tfds_dir)
    count = len(source)
    if count == 0:
        raise ValueError(f"TFDS {tfds_name!r} split {split!r} is empty")
    first = source[0]
    image_shape = np.shape(first["image"])
    images = np.empty((count, *image_shape), dtype=np.uint8)
    labels = np.empty((count,), dtype=np.int32)
    # Item by item: it is the access every DataSource supports; a few seconds for 70k images.
    for index in range(count):
        example = first if index == 0 else source[index]
        image = np.asarray(example["image"])
        if image.dtype != np.uint8 or image.shape != image_shape or image.ndim != 3:
            raise ValueError(
                f"TFDS {tfds_name!r} example {index}: expected a uint8 HWC image of shape {image_shape}, "
                f"got {image.shape} {image.dtype}"
            )
        images[index] = image
        labels[index] = int(example["label"])
    return ArrayDataset(images=images, labels=labels, num_classes=num_classes, name=name)
