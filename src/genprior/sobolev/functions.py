"""Classic optimisation test functions, written in torch so autograd gives their gradients.

Each maps x (B, D) to (B,). Domains are boxes [-h, h]^D; the Ackley and Rastrigin boxes are
narrower than the customary ones so that a few hundred points can resolve their ripples.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from genprior.errors import check_choice


def styblinski_tang(x: torch.Tensor) -> torch.Tensor:
    """0.5 sum_i (x_i^4 - 16 x_i^2 + 5 x_i); minimum near x_i = -2.9035."""
    return 0.5 * (x.pow(4) - 16 * x.pow(2) + 5 * x).sum(dim=1)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2; minimum 0 at x = 1."""
    head, tail = x[:, :-1], x[:, 1:]
    return (100 * (tail - head.pow(2)).pow(2) + (1 - head).pow(2)).sum(dim=1)


def ackley(x: torch.Tensor) -> torch.Tensor:
    """-20 exp(-0.2 rms(x)) - exp(mean cos(2 pi x)) + 20 + e; minimum 0 at x = 0."""
    rms = x.pow(2).mean(dim=1).clamp_min(1e-12).sqrt()
    ripples = torch.cos(2 * math.pi * x).mean(dim=1)
    return -20 * torch.exp(-0.2 * rms) - torch.exp(ripples) + 20 + math.e


def rastrigin(x: torch.Tensor) -> torch.Tensor:
    """10 D + sum_i (x_i^2 - 10 cos(2 pi x_i)); minimum 0 at x = 0."""
    return 10 * x.shape[1] + (x.pow(2) - 10 * torch.cos(2 * math.pi * x)).sum(dim=1)


@dataclass(frozen=True)
class BenchmarkFunction:
    """A test function and its box [-half_width, half_width]^D.

    Attributes:
        name: registry key.
        function: maps x (B, D) to (B,).
        half_width: the box's half side.
        min_dim: the smallest dimension it is defined for.
    """

    name: str
    function: Callable[[torch.Tensor], torch.Tensor]
    half_width: float
    min_dim: int = 1

    def sample(self, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
        """n points uniform in the box, (n, D) float64."""
        unit = torch.rand(n, dim, generator=generator, dtype=torch.float64)
        return (2 * unit - 1) * self.half_width


FUNCTIONS = {
    f.name: f
    for f in (
        BenchmarkFunction("styblinski-tang", styblinski_tang, 5.0),
        BenchmarkFunction("rosenbrock", rosenbrock, 2.0, min_dim=2),
        BenchmarkFunction("ackley", ackley, 2.0),
        BenchmarkFunction("rastrigin", rastrigin, 1.0),
    )
}


def get_function(name: str) -> BenchmarkFunction:
    """The test function called ``name``."""
    check_choice("function", name, list(FUNCTIONS))
    return FUNCTIONS[name]
