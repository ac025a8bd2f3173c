"""The TFDS fallback offline and online, without the network: a prepared copy is
read as is, and a download is only attempted once the download host answers."""
import re
import socket
import time

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.data import sources, tfds_source

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def no_repo_data(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "REPO_DATA_DIR", tmp_path / "no_repo_data")


def resolve_to(monkeypatch, address):
    """Make every DNS lookup answer ``address`` (host, port), and record the hosts asked for."""
    asked = []

    def lookup(host, port, *args, **kwargs):
        asked.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return asked


def test_real_tfds_offline_fails_in_seconds_without_downloading(tmp_path, no_repo_data, monkeypatch):
    # The real tfds.data_source on an empty data_dir; DNS fails (tests/data/conftest.py).
    # A download attempt would retry for ~3.5 minutes: record it and fail at once instead.
    attempts = []

    def download_and_prepare(builder, *args, **kwargs):
        attempts.append(builder.name)
        raise AssertionError("TFDS was asked to download although the host is unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download_and_prepare)
    empty = tmp_path / "empty"
    empty.mkdir()
    # Through $JAXCNN_DATA_DIR: a data_dir argument is the only place looked at (no TFDS).
    monkeypatch.setenv("JAXCNN_DATA_DIR", str(empty))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as raised:
        data.load("mnist", "test")
    assert time.monotonic() - start < 20  # seconds, TFDS import included; was ~210
    assert attempts == []
    message = str(raised.value)
    assert f"TFDS tfds.data_source('mnist', split='test', data_dir={empty}): ConnectionError" in message
    assert "cannot reach storage.googleapis.com:443" in message
    assert "gaierror" in message and "not asking TFDS to download" in message


def test_reachable_host_lets_tfds_download(no_repo_data, monkeypatch):
    calls = []
    examples = [{"image": np.full((2, 3, 1), i, np.uint8), "label": i} for i in range(3)]

    def data_source(name, **kwargs):
        calls.append(kwargs.get("download", True))
        if not kwargs.get("download", True):
            raise NotImplementedError("nothing prepared")
        return examples

    probed = []
    monkeypatch.setattr(tfds, "data_source", data_source)
    monkeypatch.setattr(tfds_source, "check_download_reachable", probed.append)
    dataset = data.load("fashion_mnist", "train")
    assert calls == [False, True] and probed == [tfds_source.DOWNLOAD_URLS["fashion_mnist"]]
    assert dataset.images.shape == (3, 2, 3, 1) and dataset.labels.tolist() == [0, 1, 2]
    assert dataset.images[2].max() == 2 and dataset.name == "fashion_mnist"


def test_a_prepared_copy_is_read_without_probing(no_repo_data, monkeypatch):
    examples = [{"image": np.zeros((2, 2, 3), np.uint8), "label": 4}]
    calls = []
    monkeypatch.setattr(tfds, "data_source", lambda name, **kwargs: calls.append(kwargs) or examples)
    monkeypatch.setattr(tfds_source, "check_download_reachable", pytest.fail)
    assert data.load("cifar10", "test").labels.tolist() == [4]
    assert calls == [{"split": "test", "data_dir": None, "download": False}]


def test_probe_connects_to_a_listening_port(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as server:
        asked = resolve_to(monkeypatch, server.getsockname())
        tfds_source.check_download_reachable("https://storage.googleapis.com/cvdf-datasets/mnist/")
        tfds_source.check_download_reachable("http://fashion-mnist.example.org:8080/x")
    assert asked == [("storage.googleapis.com", 443), ("fashion-mnist.example.org", 8080)]


def test_probe_reports_a_refused_connection(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as server:
        closed = server.getsockname()  # nothing listens there once the server is closed
    resolve_to(monkeypatch, closed)
    with pytest.raises(ConnectionError, match=r"cannot reach www\.cs\.toronto\.edu:443 .*ConnectionRefusedError"):
        tfds_source.check_download_reachable("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")


def test_probe_gives_up_on_a_hanging_dns_lookup(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(3))
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"TimeoutError: DNS lookup of slow\.example took longer than 0\.2 s"):
        tfds_source.check_download_reachable("https://slow.example/data", timeout=0.2)
    assert time.monotonic() - start < 2


def test_probe_is_skipped_behind_a_proxy(monkeypatch):
    # The proxy reaches the host, not this machine; DNS (which fails here) is not consulted.
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    tfds_source.check_download_reachable("https://storage.googleapis.com/cvdf-datasets/mnist/")
    with pytest.raises(ConnectionError, match=re.escape("cannot reach fashion-mnist")):
        tfds_source.check_download_reachable(tfds_source.DOWNLOAD_URLS["fashion_mnist"])  # http: no proxy


def test_download_urls_are_the_installed_tfds_builders(tmp_path):
    from tensorflow_datasets.image_classification import cifar, mnist

    assert tfds_source.DOWNLOAD_URLS["mnist"] == mnist.MNIST.URL
    assert tfds_source.DOWNLOAD_URLS["fashion_mnist"] == mnist.FashionMNIST.URL
    assert tfds_source.DOWNLOAD_URLS["cifar10"] == cifar.Cifar10(data_dir=str(tmp_path))._cifar_info.url
    assert set(tfds_source.DOWNLOAD_URLS) == set(data.names()) - {"digits"}
