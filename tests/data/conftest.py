"""Writers for tiny dataset files in the official formats, independent of jaxcnn's readers."""
import gzip
import pickle
import socket
import struct

import numpy as np
import pytest


def write_idx(path, array, *, compress=None):
    """An IDX file (big-endian header, type byte 0x08 for uint8) as the MNIST release writes it."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if compress is None:
        compress = str(path).endswith(".gz")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def write_mnist_split(directory, split, images, labels, *, gz=True):
    """The two IDX files of one split, with the official names."""
    directory.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return directory


def tiny_mnist(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def cifar_rows(images_nhwc):
    """(N, 32, 32, 3) -> the official (N, 3072) rows: the R plane, then G, then B, each row-major."""
    n = images_nhwc.shape[0]
    rows = np.empty((n, 3072), np.uint8)
    for i in range(n):
        for c in range(3):
            for y in range(32):
                for x in range(32):
                    rows[i, c * 1024 + y * 32 + x] = images_nhwc[i, y, x, c]
    return rows


def write_cifar_pickle(path, images_nhwc, labels):
    batch = {
        b"batch_label": b"testing batch",
        b"labels": [int(v) for v in labels],
        b"data": cifar_rows(images_nhwc),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return path


def write_cifar_binary(path, images_nhwc, labels):
    rows = cifar_rows(images_nhwc)
    path.write_bytes(b"".join(bytes([int(label)]) + row.tobytes() for label, row in zip(labels, rows)))
    return path


def tiny_cifar(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)


@pytest.fixture
def formats():
    """The writers above, for tests that build files."""
    import types

    return types.SimpleNamespace(
        write_idx=write_idx,
        write_mnist_split=write_mnist_split,
        tiny_mnist=tiny_mnist,
        write_cifar_pickle=write_cifar_pickle,
        write_cifar_binary=write_cifar_binary,
        tiny_cifar=tiny_cifar,
        cifar_rows=cifar_rows,
    )


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    """Tests choose their data locations explicitly; a developer's $JAXCNN_DATA_DIR must not leak in."""
    monkeypatch.delenv("JAXCNN_DATA_DIR", raising=False)


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """No test here touches the network: every DNS lookup fails at once, as offline.

    Proxies are cleared too, so the download-host probe is not skipped.
    """
    for variable in PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    def offline(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, f"no network in tests (looked up {host})")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
