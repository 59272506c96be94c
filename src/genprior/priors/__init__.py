"""Generators G(z): the interface, the VAE, their training and checkpoints."""

from genprior.priors.base import Generator
from genprior.priors.checkpoint import SHIPPED, load_generator, save_checkpoint
from genprior.priors.vae import VAE, VAEConfig

__all__ = ["SHIPPED", "VAE", "Generator", "VAEConfig", "load_generator", "save_checkpoint"]
