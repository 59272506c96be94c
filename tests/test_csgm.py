import pytest
import torch
from torch import nn

from genprior.errors import NonFiniteError, ShapeError
from genprior.operators import GaussianCS, PhaseRetrieval, RandomInpainting
from genprior.priors.base import Generator
from genprior.solvers.csgm import CSGMSolver


class SmoothGenerator(Generator):
    """A random two-layer tanh network from R^K to images (1, H, W), for known answers."""

    def __init__(self, latent_dim=4, side=8, hidden=32, seed=0):
        super().__init__()
        self.latent_dim, self.output_shape = latent_dim, (1, side, side)
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, side * side)
        )
        self.requires_grad_(False)

    def decode(self, z):
        return self.net(z).view(-1, *self.output_shape)


def test_noiseless_recovery_returns_the_true_signal():
    generator = SmoothGenerator()
    z_true = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    x_true = generator(z_true)
    operator = GaussianCS((1, 8, 8), 24, seed=2)  # m = 24, six times the latent size
    solver = CSGMSolver(generator, lam=0.0, lr=0.05, steps=1500, restarts=4)
    result = solver.solve(operator, operator(x_true), seed=3)
    relative = (result.x - x_true).flatten(1).norm(dim=1) / x_true.flatten(1).norm(dim=1)
    assert float(relative.max()) < 1e-3
    assert float(result.measurement_loss.max()) < 1e-6


def test_batched_solve_equals_separate_solves():
    generator = SmoothGenerator()
    operator = RandomInpainting((1, 8, 8), 0.5, seed=0)
    y = operator(generator(torch.randn(3, 4)))
    solver = CSGMSolver(generator, lam=0.1, lr=0.02, steps=40, restarts=2)
    z0 = torch.randn(2, 3, 4)
    batched = solver.solve(operator, y, z0=z0)
    for b in range(3):
        single = solver.solve(operator, y[b : b + 1], z0=z0[:, b : b + 1])
        torch.testing.assert_close(single.x[0], batched.x[b], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(single.measurement_loss[0], batched.measurement_loss[b])


def test_best_restart_is_kept_and_history_is_recorded():
    generator = SmoothGenerator()
    operator = GaussianCS((1, 8, 8), 16, seed=0)
    y = operator(generator(torch.randn(2, 4)))
    solver = CSGMSolver(generator, steps=30, restarts=3, record_history=True)
    z0 = torch.randn(3, 2, 4)
    result = solver.solve(operator, y, z0=z0)
    assert result.history.shape == (2, 30)
    assert result.latent.shape == (2, 4)
    per_restart = [
        CSGMSolver(generator, steps=30, restarts=1)
        .solve(operator, y, z0=z0[r : r + 1])
        .measurement_loss
        for r in range(3)
    ]
    torch.testing.assert_close(result.measurement_loss, torch.stack(per_restart).min(0).values)


def test_phase_retrieval_recovers_up_to_measurement_fit():
    generator = SmoothGenerator(seed=4)
    x_true = generator(torch.randn(2, 4, generator=torch.Generator().manual_seed(5)))
    operator = PhaseRetrieval((1, 8, 8), 40, seed=1)
    solver = CSGMSolver(generator, lam=0.0, lr=0.05, steps=1000, restarts=6)
    result = solver.solve(operator, operator(x_true))
    assert float(result.measurement_loss.max()) < 1e-4


def test_early_stopping_ends_the_solve_sooner():
    generator = SmoothGenerator()
    operator = GaussianCS((1, 8, 8), 16, seed=0)
    y = operator(generator(torch.randn(2, 4)))
    result = CSGMSolver(generator, steps=2000, tol=1e-3, patience=20).solve(operator, y)
    assert 20 <= result.iterations < 2000


def test_bad_input_is_rejected():
    generator = SmoothGenerator()
    solver = CSGMSolver(generator, steps=5)
    with pytest.raises(ShapeError, match="generator produces"):
        solver.solve(GaussianCS((1, 28, 28), 10), torch.zeros(1, 10))
    operator = GaussianCS((1, 8, 8), 10)
    with pytest.raises(ShapeError, match=r"y must have shape \(B, 10\)"):
        solver.solve(operator, torch.zeros(2, 11))
    with pytest.raises(NonFiniteError):
        solver.solve(operator, torch.full((2, 10), float("nan")))
    with pytest.raises(ShapeError, match="z0 must have shape"):
        solver.solve(operator, torch.zeros(2, 10), z0=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="steps must be > 0"):
        CSGMSolver(generator, steps=0)
    with pytest.raises(ValueError, match="lam must be finite"):
        CSGMSolver(generator, lam=float("nan"))
