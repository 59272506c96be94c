"""A fully connected VAE: the MNIST prior of the CSGM experiments (Bora et al., 2017).

Encoder D-500-500-2K and decoder K-500-500-D with softplus activations and a sigmoid output;
the likelihood is Bernoulli on grey levels in [0, 1] (binary cross-entropy), the prior N(0, I).
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genprior.errors import ShapeError
from genprior.priors.base import Generator


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of a :class:`VAE`.

    Attributes:
        latent_dim: K, the latent size (20 in CSGM).
        hidden: widths of the hidden layers of the decoder; the encoder mirrors them.
        image_shape: (C, H, W) of the signals.
    """

    latent_dim: int = 20
    hidden: tuple[int, ...] = (500, 500)
    image_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1; received {self.latent_dim}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be positive widths; received {self.hidden}")
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W); received {self.image_shape}")

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VAEConfig":
        """Inverse of :meth:`to_dict`."""
        return cls(
            latent_dim=int(data["latent_dim"]),
            hidden=tuple(int(h) for h in data["hidden"]),
            image_shape=tuple(int(s) for s in data["image_shape"]),
        )


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(nn.Softplus())
    return nn.Sequential(*layers)


class VAE(Generator):
    """Variational autoencoder whose decoder is the generator G.

    Args:
        config: the architecture; defaults to CSGM's 20-500-500-784.
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or VAEConfig()
        self.latent_dim = self.config.latent_dim
        self.output_shape = self.config.image_shape
        dim = math.prod(self.output_shape)
        hidden = list(self.config.hidden)
        self.encoder = _mlp([dim, *hidden, 2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim, *reversed(hidden), dim])

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid decoder output: (B, K) -> (B, D)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) in [0, 1]: (B, K) -> (B, C, H, W)."""
        return torch.sigmoid(self.decode_logits(z)).view(-1, *self.output_shape)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each (B, K), of images x (B, C, H, W)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.output_shape:
            raise ShapeError(
                f"x must have shape (B, {', '.join(map(str, self.output_shape))}); "
                f"received {tuple(x.shape)}"
            )
        mean, log_var = self.encoder(x.flatten(1)).chunk(2, dim=1)
        return mean, log_var

    def elbo(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Evidence lower bound per image, in nats, with one reparametrised sample: (B,)."""
        mean, log_var = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * log_var) * noise
        logits = self.decode_logits(z)
        log_likelihood = -F.binary_cross_entropy_with_logits(
            logits, x.flatten(1), reduction="none"
        ).sum(1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(1)
        return log_likelihood - kl
