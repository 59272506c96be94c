"""The dataset registry and the :class:`ImageDataset` container."""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genprior.errors import DatasetNotFoundError, check_choice

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageDataset:
    """Images in [0, 1] with labels, split into train and test.

    Attributes:
        name: registry name, e.g. ``"mnist"``.
        train_images: uint8 array (N, H, W).
        train_labels: int64 array (N,).
        test_images: uint8 array (N', H, W).
        test_labels: int64 array (N',).
        levels: the value that maps to 1.0 (255 for MNIST, 16 for the 8x8 digits).
        source: where the arrays came from (a path or a package), for provenance.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    levels: int
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (1, *self.train_images.shape[1:])

    @property
    def fingerprint(self) -> str:
        """Short SHA-256 of all arrays: two datasets with the same fingerprint are identical."""
        digest = hashlib.sha256()
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(np.ascontiguousarray(array).tobytes())
        return f"{self.name}:{digest.hexdigest()[:16]}"

    def tensor(self, split: str, indices: "slice | list[int] | None" = None) -> torch.Tensor:
        """Images of ``split`` (``"train"`` or ``"test"``) as float32 (N, C, H, W) in [0, 1]."""
        check_choice("split", split, ("train", "test"))
        images = self.train_images if split == "train" else self.test_images
        if indices is not None:
            images = images[indices]
        x = torch.from_numpy(np.asarray(images, dtype=np.float32) / self.levels)
        return x.unsqueeze(1)


def _load_digits(data_dir: Path | None = None) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits: the first 1,497 train, the last 300 test."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    return ImageDataset(
        name="digits",
        train_images=images[:1497],
        train_labels=labels[:1497],
        test_images=images[1497:],
        test_labels=labels[1497:],
        levels=16,
        source="scikit-learn load_digits (UCI optical digits, 8x8)",
    )


def _load_mnist(data_dir: Path | None = None) -> ImageDataset:
    from genprior.data.mnist import load_mnist

    return load_mnist(data_dir)


def _load_mnist_5k(data_dir: Path | None = None) -> ImageDataset:
    from genprior.data.mnist import load_mnist_5k

    return load_mnist_5k()


DATASETS: dict[str, Callable[[Path | None], ImageDataset]] = {
    "mnist": _load_mnist,
    "mnist-5k": _load_mnist_5k,
    "digits": _load_digits,
}


def load_dataset(name: str, *, data_dir: str | Path | None = None) -> ImageDataset:
    """Load a dataset by registry name.

    Args:
        name: one of :data:`DATASETS` (``"mnist"``, ``"mnist-5k"``, ``"digits"``).
        data_dir: folder of the MNIST cache; defaults to ``$GENPRIOR_DATA_DIR`` or
            ``~/.cache/genprior``.

    Raises:
        OptionError: unknown name.
        DatasetNotFoundError: the data is not on this machine; the message says how to get it.
    """
    check_choice("dataset", name, tuple(DATASETS))
    dataset = DATASETS[name](Path(data_dir) if data_dir is not None else None)
    logger.info("loaded %s from %s (fingerprint %s)", name, dataset.source, dataset.fingerprint)
    return dataset


__all__ = ["DATASETS", "DatasetNotFoundError", "ImageDataset", "load_dataset"]
