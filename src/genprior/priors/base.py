"""The generator interface that every prior implements."""

import torch
from torch import nn

from genprior.errors import NonFiniteError, ShapeError


class Generator(nn.Module):
    """A map G from latent codes (B, K) to signals (B, *output_shape).

    Subclasses set :attr:`latent_dim` and :attr:`output_shape` and implement :meth:`decode`.
    """

    latent_dim: int
    output_shape: tuple[int, ...]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latent codes z (B, K) to signals (B, *output_shape)."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Check z and decode it: (B, K) -> (B, *output_shape)."""
        self.check_latent(z)
        return self.decode(z)

    def check_latent(self, z: torch.Tensor) -> None:
        """Raise :class:`ShapeError` unless z has shape (B, K) with K = latent_dim."""
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor; received {type(z).__name__}")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ShapeError(
                f"z must have shape (B, {self.latent_dim}) for this generator; "
                f"received {tuple(z.shape)}"
            )
        if not torch.isfinite(z).all():
            raise NonFiniteError("z holds NaN or infinite values")

    def sample_latent(
        self, batch: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw (batch, K) standard normal latent codes."""
        param = next(self.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        return torch.randn(batch, self.latent_dim, generator=generator, dtype=dtype)
