"""Additive white Gaussian noise on measurements."""

import math
import numbers

import torch


class GaussianNoise:
    """Adds i.i.d. N(0, std**2) noise to measurements: y (B, *out_shape) -> same shape.

    For compressed sensing with A ~ N(0, 1/M) entries
    (:class:`~genprior.operators.linear.GaussianCS`), ``std = 0.1 / sqrt(M)`` is the normalised
    form of CSGM's noise (Bora et al., 2017), "std 0.1 per measurement" with unnormalised
    N(0, 1) entries: with A' = sqrt(M) A, y' = A' x + 0.1 e = sqrt(M) (A x + 0.1 / sqrt(M) e).

    Args:
        std: standard deviation of the noise, finite and >= 0.
    """

    def __init__(self, std: float) -> None:
        real = isinstance(std, numbers.Real) and not isinstance(std, bool)
        if not real or not math.isfinite(std) or std < 0:
            raise ValueError(f"std must be a finite number >= 0; received {std!r}")
        self.std = float(std)

    def __call__(
        self,
        y: torch.Tensor,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Return y + std * e, e ~ N(0, I), as a new tensor.

        Args:
            y: measurements, any shape, floating point.
            seed: seeds a fresh generator on y's device; 0 when neither seed nor generator is
                given, so calls are reproducible by default.
            generator: draws e from this generator (advancing it) instead; not with seed.

        Returns:
            The noisy measurements, same shape, dtype and device as y; a copy of y if std is 0.
        """
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor; received {type(y).__name__}")
        if seed is not None and generator is not None:
            raise ValueError("pass seed or generator, not both; received both")
        if self.std == 0:
            return y.clone()
        if generator is None:
            generator = torch.Generator(device=y.device).manual_seed(0 if seed is None else seed)
        e = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        return y + self.std * e

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"
