"""CSGM: recovery by optimising the latent code of a generator (Bora et al., ICML 2017).

For every signal b and restart r, minimise over z

    f(z) = ||A(G(z)) - y_b||^2 + lam ||z||^2

with Adam from z ~ N(0, I), and keep, per signal, the restart with the smallest measurement
loss ||A(G(z)) - y_b||^2. With A ~ N(0, 1/m) the first term equals CSGM's mean measurement
loss for unnormalised N(0, 1) entries.

All signals and all restarts form one (R * B, K) tensor that a single Adam optimiser updates.
Adam acts coordinate-wise and the objective is a sum of independent terms, so this batched
program computes exactly what R * B separate optimisations would.
"""

import logging
from collections.abc import Callable

import torch

from genprior.errors import ShapeError
from genprior.operators.base import Operator
from genprior.priors.base import Generator
from genprior.solvers.base import Recovery, check_finite_result

logger = logging.getLogger(__name__)


class CSGMSolver:
    """Latent-space recovery with a generator prior, batched over signals and restarts.

    Args:
        generator: the prior G, mapping (N, K) codes to (N, *in_shape) signals.
        lam: weight of the latent prior term lam ||z||^2 (CSGM's MNIST value: 0.1).
        lr: Adam learning rate.
        steps: maximum Adam steps.
        restarts: random initialisations per signal (R).
        tol: early stopping: stop when no problem's objective fell by more than this
            relative amount over the last ``patience`` steps; 0 disables it.
        patience: window of the early-stopping test, in steps.
        record_history: keep every problem's objective at every step.
    """

    def __init__(
        self,
        generator: Generator,
        *,
        lam: float = 0.1,
        lr: float = 0.01,
        steps: int = 1000,
        restarts: int = 10,
        tol: float = 0.0,
        patience: int = 50,
        record_history: bool = False,
    ) -> None:
        _check_positive(steps=steps, restarts=restarts, patience=patience, lr=lr)
        for name, value in (("lam", lam), ("tol", tol)):
            if not (value >= 0 and value < float("inf")):
                raise ValueError(f"{name} must be finite and >= 0; received {value}")
        self.generator = generator
        self.lam, self.lr, self.steps, self.restarts = lam, lr, steps, restarts
        self.tol, self.patience, self.record_history = tol, patience, record_history

    def solve(
        self,
        operator: Operator,
        y: torch.Tensor,
        *,
        seed: int = 0,
        z0: torch.Tensor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Recovery:
        """Recover x = G(z) from y.

        Args:
            operator: the forward model A; its in_shape must equal the generator's output.
            y: measurements (B, *out_shape).
            seed: seeds the initial codes.
            z0: initial codes (R, B, K) instead of random ones (warm starts, tests).
            progress: called as ``progress(step, steps)`` every 10 steps.

        Returns:
            Recovery with x (B, *in_shape), latent (B, K), measurement_loss (B,) and, if
            requested, history (B, T): the objective of each signal's best restart.
        """
        self._check_compatible(operator)
        operator.check_measurements(y)
        batch, restarts = y.shape[0], self.restarts
        y_all = y.unsqueeze(0).expand(restarts, *y.shape).reshape(restarts * batch, *y.shape[1:])

        z = self._initial_codes(batch, seed, z0).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=self.lr)
        history: list[torch.Tensor] = []
        window_start: torch.Tensor | None = None

        step = 0
        for step in range(1, self.steps + 1):
            objective = self._objective(operator, z, y_all)
            (grad,) = torch.autograd.grad(objective.sum(), z)
            z.grad = grad
            optimizer.step()
            if self.record_history:
                history.append(objective.detach())
            if progress is not None and step % 10 == 0:
                progress(step, self.steps)
            if self.tol > 0 and step % self.patience == 0:
                current = objective.detach()
                if window_start is not None and _converged(window_start, current, self.tol):
                    logger.info("early stop after %d steps", step)
                    break
                window_start = current

        return self._finish(operator, z.detach(), y_all, batch, history, step)

    def _initial_codes(self, batch: int, seed: int, z0: torch.Tensor | None) -> torch.Tensor:
        """(R * B, K) starting codes: z0 flattened, or standard normal draws."""
        shape = (self.restarts, batch, self.generator.latent_dim)
        if z0 is None:
            generator = torch.Generator().manual_seed(seed)
            return self.generator.sample_latent(self.restarts * batch, generator=generator)
        if tuple(z0.shape) != shape:
            raise ShapeError(f"z0 must have shape (R, B, K) = {shape}; received {tuple(z0.shape)}")
        return z0.detach().reshape(-1, shape[2]).clone()

    def _objective(self, operator: Operator, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-problem objective (N,) for codes z (N, K) and measurements y (N, *out_shape)."""
        residual = operator.apply(self.generator.decode(z)) - y
        return residual.flatten(1).pow(2).sum(1) + self.lam * z.pow(2).sum(1)

    @torch.no_grad()
    def _finish(
        self,
        operator: Operator,
        z: torch.Tensor,
        y: torch.Tensor,
        batch: int,
        history: list[torch.Tensor],
        steps: int,
    ) -> Recovery:
        """Pick each signal's best restart by measurement loss."""
        x = self.generator.decode(z)
        loss = (operator.apply(x) - y).flatten(1).pow(2).sum(1).view(self.restarts, batch)
        best = loss.argmin(0)  # (B,)
        columns = torch.arange(batch)
        x = x.view(self.restarts, batch, *x.shape[1:])[best, columns]
        latent = z.view(self.restarts, batch, -1)[best, columns]
        check_finite_result(x, "CSGM")
        trace = None
        if history:
            trace = torch.stack(history).view(len(history), self.restarts, batch)
            trace = trace[:, best, columns].T.contiguous()  # (B, T)
        return Recovery(
            x=x,
            measurement_loss=loss[best, columns],
            latent=latent,
            history=trace,
            iterations=steps,
        )

    def _check_compatible(self, operator: Operator) -> None:
        if tuple(operator.in_shape) != tuple(self.generator.output_shape):
            raise ShapeError(
                f"operator expects signals of shape {operator.in_shape} but the generator "
                f"produces {tuple(self.generator.output_shape)}"
            )


def _converged(before: torch.Tensor, after: torch.Tensor, tol: float) -> bool:
    """True when no problem improved by more than ``tol`` relative to its earlier objective."""
    improvement = (before - after) / before.abs().clamp_min(1e-12)
    return bool(improvement.max() < tol)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0; received {value}")
