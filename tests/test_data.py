import gzip

import numpy as np
import pytest

from genprior.data import load_dataset
from genprior.data import mnist as mnist_module
from genprior.errors import ChecksumError, DatasetNotFoundError, OptionError


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def test_digits_shapes_and_range(digits):
    assert digits.train_images.shape == (1497, 8, 8)
    assert digits.test_images.shape == (300, 8, 8)
    x = digits.tensor("test")
    assert x.shape == (300, 1, 8, 8)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert digits.image_shape == (1, 8, 8)


def test_fingerprint_is_stable_and_content_sensitive(digits):
    again = load_dataset("digits")
    assert again.fingerprint == digits.fingerprint
    changed = type(digits)(**{**digits.__dict__, "test_labels": digits.test_labels[::-1]})
    assert changed.fingerprint != digits.fingerprint


def test_unknown_dataset_lists_choices():
    with pytest.raises(OptionError, match=r"dataset must be one of mnist.*received 'nope'"):
        load_dataset("nope")


def test_unknown_split(digits):
    with pytest.raises(OptionError, match="split"):
        digits.tensor("validation")


def test_parse_idx_round_trip_and_truncation():
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    data = _idx_bytes(array)
    np.testing.assert_array_equal(mnist_module.parse_idx(data, "x"), array)
    with pytest.raises(ChecksumError, match="truncated"):
        mnist_module.parse_idx(data[:-1], "x")
    with pytest.raises(ChecksumError, match="magic"):
        mnist_module.parse_idx(b"\x01" + data[1:], "x")


def test_missing_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("GENPRIOR_MNIST", raising=False)
    monkeypatch.setattr(mnist_module, "_candidate_raw_folders", lambda: [])
    with pytest.raises(DatasetNotFoundError, match="make data"):
        mnist_module.load_mnist(tmp_path)


def test_env_var_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("GENPRIOR_MNIST", str(tmp_path / "absent"))
    with pytest.raises(DatasetNotFoundError, match="GENPRIOR_MNIST"):
        load_dataset("mnist")


def test_prepare_rejects_files_that_are_not_mnist(tmp_path):
    for name in mnist_module.IDX_SHA256:
        shape = (5, 28, 28) if "images" in name else (5,)
        (tmp_path / name).write_bytes(_idx_bytes(np.zeros(shape, dtype=np.uint8)))
    with pytest.raises(ChecksumError, match="SHA-256"):
        mnist_module.prepare_mnist(tmp_path, tmp_path / "cache")


def test_download_checks_the_checksum(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in mnist_module.IDX_SHA256:
        (mirror / f"{name}.gz").write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(ChecksumError, match="does not match"):
        mnist_module.download_mnist(tmp_path / "cache", base_url=mirror.as_uri())


def test_download_from_a_mirror_caches_mnist(tmp_path, mnist):
    folder = mnist_module.NPM_SUBDIR
    source = next(path for path in mnist_module._candidate_raw_folders() if path.is_dir())
    assert source.name == folder.name
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in mnist_module.IDX_SHA256:
        (mirror / f"{name}.gz").write_bytes(gzip.compress((source / name).read_bytes(), 1))
    cache = mnist_module.download_mnist(tmp_path / "cache", base_url=mirror.as_uri())
    loaded = mnist_module.load_mnist(tmp_path / "cache")
    assert cache.is_file() and loaded.fingerprint == mnist.fingerprint


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch, mnist):
    monkeypatch.delenv("GENPRIOR_MNIST", raising=False)
    (tmp_path / mnist_module.CACHE_NAME).write_bytes(b"PK\x03\x04 broken")
    loaded = mnist_module.load_mnist(tmp_path)
    assert loaded.fingerprint == mnist.fingerprint
    assert mnist_module.read_cache(tmp_path / mnist_module.CACHE_NAME) is not None


def test_full_mnist_is_the_real_one(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert np.bincount(mnist.train_labels)[0] == 5923
    assert mnist.train_images.mean() == pytest.approx(33.32, abs=0.01)
