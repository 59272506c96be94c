"""Datasets: real, offline sources first; explicit download with checksum; caching; fingerprints.

Datasets are returned as :class:`ImageDataset` with float32 images of shape (N, C, H, W) in
[0, 1]. The registry :data:`DATASETS` maps a name to its loader.
"""

from genprior.data.datasets import DATASETS, ImageDataset, load_dataset
from genprior.data.mnist import download_mnist, prepare_mnist

__all__ = ["DATASETS", "ImageDataset", "download_mnist", "load_dataset", "prepare_mnist"]
