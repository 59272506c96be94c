"""What every solver returns, and the interface they share.

A solver recovers signals x (B, *in_shape) from measurements y (B, *out_shape) of an
:class:`~genprior.operators.base.Operator`. Latent-space solvers and classical baselines
return the same :class:`Recovery`, so experiments treat them alike.
"""

from dataclasses import dataclass
from typing import Protocol

import torch

from genprior.errors import NonFiniteError
from genprior.operators.base import Operator


@dataclass
class Recovery:
    """The result of a solve.

    Attributes:
        x: the estimates, (B, *in_shape).
        measurement_loss: ||A(x) - y||^2 per signal, (B,).
        latent: the latent codes of x for latent-space solvers, (B, K); else None.
        history: per-signal objective at every iteration, (B, T), when requested; else None.
        iterations: iterations actually run (early stopping may end a solve sooner).
    """

    x: torch.Tensor
    measurement_loss: torch.Tensor
    latent: torch.Tensor | None = None
    history: torch.Tensor | None = None
    iterations: int = 0


class Solver(Protocol):
    """Anything with ``solve(operator, y, *, seed) -> Recovery``."""

    def solve(self, operator: Operator, y: torch.Tensor, *, seed: int = 0) -> Recovery:
        """Recover x (B, *in_shape) from y (B, *out_shape)."""
        ...


def measurement_loss(operator: Operator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||A(x) - y||^2 per signal: x (B, *in_shape), y (B, *out_shape) -> (B,)."""
    return (operator.apply(x) - y).flatten(1).pow(2).sum(1)


def check_finite_result(x: torch.Tensor, solver: str) -> None:
    """Raise :class:`NonFiniteError` with a hint if a solve produced NaN or inf."""
    if not torch.isfinite(x).all():
        raise NonFiniteError(
            f"{solver} produced NaN or infinite estimates; lower the learning rate or step "
            "size, or check the measurements' scale"
        )
