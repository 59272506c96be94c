"""Shared fixtures: small datasets, a tiny trained VAE, and a skip for missing MNIST."""

import pytest
import torch

from genprior.data import load_dataset
from genprior.data.datasets import ImageDataset
from genprior.errors import DatasetNotFoundError
from genprior.priors.training import TrainConfig, train_vae


@pytest.fixture(scope="session")
def digits() -> ImageDataset:
    """scikit-learn's 8x8 digits."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def mnist() -> ImageDataset:
    """Full MNIST, or skip when this machine does not have it."""
    try:
        return load_dataset("mnist")
    except DatasetNotFoundError as error:
        pytest.skip(f"full MNIST is not available here: {error}")


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory, digits):
    """A 4-latent VAE trained for 3 epochs on the 8x8 digits (a checkpoint folder)."""
    folder = tmp_path_factory.mktemp("tiny-vae")
    config = TrainConfig(epochs=3, batch_size=50, latent_dim=4, hidden=(32, 32), seed=1)
    train_vae(config, digits, folder)
    return folder


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
