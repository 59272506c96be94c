"""Subgradient descent with the negation step, batched over independent trials.

For a random ReLU network G (:class:`~genprior.priors.random_relu.RandomReLUNetwork`), minimise
an objective f(x) = L(G(x)) of the network output by

    1. (negation) if f(-x_t) < f(x_t), set x_t <- -x_t;
    2. x_{t+1} = x_t - lr * Lambda_x^T grad L(G(x_t)),

where Lambda_x is the network's Jacobian at x (weights with inactive rows zeroed). The
negation step escapes the basin of the negative multiple of the solution that Hand &
Voroninski (arXiv 1705.07576) identify; Cocola (arXiv 2204.13599) uses it at every iteration,
Cocola, Hand & Voroninski (arXiv 2006.07953) run plain descent from x_0 and -x_0 and keep the
lower final loss (the "two-start" variant). Each trial stops once ||grad f|| <= grad_tol or
after max_iters steps; finished trials leave the batch, so the others run faster.

This module has the loop and the measurement objectives (compressed sensing, denoising, phase
retrieval with the amplitude loss); :mod:`genprior.solvers.spiked` adds the spiked-matrix
objective. Shapes: R trials, S starts per trial, K latent size, N signal size, M measurements.
"""

import logging
import math
import numbers
import time
from dataclasses import dataclass

import torch

from genprior.errors import NonFiniteError, ShapeError, check_choice
from genprior.operators.base import Operator
from genprior.operators.phase import PhaseRetrieval
from genprior.priors.random_relu import RandomReLUNetwork, trial_generator

logger = logging.getLogger(__name__)

__all__ = [
    "LOSSES",
    "NEGATION",
    "DescentResult",
    "MeasurementObjective",
    "NegationDescent",
    "Objective",
    "descend",
    "relative_error",
]

NEGATION = ("every-step", "two-start", "none")
LOSSES = ("squared", "amplitude")
# Default stopping tolerances on ||grad f||, per dtype (the papers use 1e-10 in float64).
GRAD_TOL = {torch.float64: 1e-10, torch.float32: 1e-6}
START_STREAM = 101  # trial_generator stream of the random starts


@dataclass
class DescentResult:
    """The outcome of a batched descent, one entry per trial.

    Attributes:
        x: the estimates, (R, K).
        signal: G(x), (R, N).
        loss: f(x), (R,).
        iterations: gradient steps taken, (R,).
        grad_norm: ||grad f|| at the last evaluated point, (R,).
        flips: negation steps taken, (R,).
        converged: whether ||grad f|| reached grad_tol before max_iters, (R,).
        start: which start was kept (0: x_0, 1: -x_0 for the two-start variant), (R,).
        seconds: wall time of the solve.
    """

    x: torch.Tensor
    signal: torch.Tensor
    loss: torch.Tensor
    iterations: torch.Tensor
    grad_norm: torch.Tensor
    flips: torch.Tensor
    converged: torch.Tensor
    start: torch.Tensor
    seconds: float = 0.0


class Objective:
    """f(x) = L(G(x)) for R networks; subclasses implement :meth:`output_loss_grad`.

    Args:
        network: the R networks.
    """

    def __init__(self, network: RandomReLUNetwork) -> None:
        self.network = network

    def output_loss_grad(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L and its gradient at network outputs g (R, S, N): (R, S) and (R, S, N)."""
        raise NotImplementedError

    def subset(self, index: torch.Tensor) -> "Objective":
        """The same objective for the trials ``index`` only."""
        raise NotImplementedError

    def loss_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f and its (sub)gradient at x (R, S, K): (R, S) and (R, S, K)."""
        g, masks = self.network.forward_with_masks(x)
        loss, grad_g = self.output_loss_grad(g)
        return loss, self.network.vjp(masks, grad_g)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """f at x (R, S, K) -> (R, S)."""
        return self.output_loss_grad(self.network.trials_forward(x))[0]


class MeasurementObjective(Objective):
    """f(x) = 1/2 ||A G(x) - y||^2, or 1/2 || |A G(x)| - y ||^2 with the amplitude loss.

    Args:
        network: the R networks, output size N.
        y: measurements, (R, M); (R, N) when A is None.
        A: per-trial matrices (R, M, N), one shared matrix (M, N), or None for the identity
            (denoising).
        loss: "squared" or "amplitude" (phase retrieval, y = |A G(x*)|).
    """

    def __init__(
        self,
        network: RandomReLUNetwork,
        y: torch.Tensor,
        A: torch.Tensor | None = None,
        loss: str = "squared",
    ) -> None:
        super().__init__(network)
        check_choice("loss", loss, LOSSES)
        self.y, self.A, self.amplitude = y, A, loss == "amplitude"

    def output_loss_grad(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`Objective.output_loss_grad`."""
        ag = g if self.A is None else torch.bmm(g, self.A.transpose(1, 2))  # (R, S, M)
        r = (ag.abs() if self.amplitude else ag) - self.y.unsqueeze(1)
        loss = 0.5 * r.pow(2).sum(-1)
        if self.amplitude:
            r = r * torch.sign(ag)
        return loss, r if self.A is None else torch.bmm(r, self.A)

    def subset(self, index: torch.Tensor) -> "MeasurementObjective":
        """See :meth:`Objective.subset`."""
        A = None if self.A is None else self.A[index]
        loss = "amplitude" if self.amplitude else "squared"
        return MeasurementObjective(self.network.subset(index), self.y[index], A, loss)


def descend(
    objective: Objective,
    x0: torch.Tensor,
    *,
    lr: float,
    max_iters: int,
    grad_tol: float,
    negate: bool,
) -> dict[str, torch.Tensor]:
    """Run (negation) gradient descent from x0 (R, S, K), every start independently.

    A start stops once ||grad f|| <= grad_tol; a trial leaves the batch once all its starts
    have stopped.

    Returns:
        "x" (R, S, K), "loss", "grad_norm" (R, S) at the last evaluated point, and
        "iterations", "flips" (R, S) int64, "converged" (R, S) bool.
    """
    n_trials, n_starts, _ = x0.shape
    out = {
        "x": x0.clone(),
        "loss": torch.full((n_trials, n_starts), math.inf, dtype=x0.dtype),
        "grad_norm": torch.full((n_trials, n_starts), math.inf, dtype=x0.dtype),
        "iterations": torch.zeros(n_trials, n_starts, dtype=torch.long),
        "flips": torch.zeros(n_trials, n_starts, dtype=torch.long),
        "converged": torch.zeros(n_trials, n_starts, dtype=torch.bool),
    }
    active = torch.arange(n_trials)
    state = {key: value.clone() for key, value in out.items()}
    for step in range(max_iters + 1):
        running = ~state["converged"]  # (R', S)
        x, loss, grad, flipped = _evaluate(objective, state["x"], negate, running)
        gnorm = grad.norm(dim=-1)
        state["x"] = x
        state["loss"] = torch.where(running, loss, state["loss"])
        state["grad_norm"] = torch.where(running, gnorm, state["grad_norm"])
        state["flips"] += flipped.long()
        state["iterations"] = torch.where(running, step, state["iterations"])
        state["converged"] = state["converged"] | (running & (gnorm <= grad_tol))
        if step == max_iters:
            break
        moving = ~state["converged"]
        state["x"] = torch.where(moving.unsqueeze(-1), x - lr * grad, x)
        finished = state["converged"].all(dim=1)
        if finished.any():
            _store(out, state, active, finished)
            keep = (~finished).nonzero().squeeze(1)
            if keep.numel() == 0:
                return out
            active, objective = active[keep], objective.subset(keep)
            state = {key: value[keep] for key, value in state.items()}
    _store(out, state, active, torch.ones(len(active), dtype=torch.bool))
    return out


def _evaluate(
    objective: Objective, x: torch.Tensor, negate: bool, running: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """f and grad f at x (R, S, K), after the negation step when ``negate``.

    x and -x go through the network as one batch (R, 2S, K), so the check costs about one
    extra pass over the activations, not over the weights twice. Stopped starts never flip.
    """
    if not negate:
        loss, grad = objective.loss_grad(x)
        return x, loss, grad, torch.zeros_like(running)
    n_starts = x.shape[1]
    loss, grad = objective.loss_grad(torch.cat([x, -x], dim=1))
    flipped = running & (loss[:, n_starts:] < loss[:, :n_starts])  # (R, S)
    pick = flipped.unsqueeze(-1)
    return (
        torch.where(pick, -x, x),
        torch.where(flipped, loss[:, n_starts:], loss[:, :n_starts]),
        torch.where(pick, grad[:, n_starts:], grad[:, :n_starts]),
        flipped,
    )


def _store(
    out: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    active: torch.Tensor,
    finished: torch.Tensor,
) -> None:
    rows = active[finished]
    for key, value in state.items():
        out[key][rows] = value[finished]


def finish(objective: Objective, raw: dict[str, torch.Tensor], started: float) -> DescentResult:
    """Keep the start with the lowest final loss per trial and compute G(x)."""
    best = raw["loss"].argmin(dim=1)  # (R,)
    rows = torch.arange(len(best))
    x = raw["x"][rows, best]  # (R, K)
    signal = objective.network.trials_forward(x.unsqueeze(1))[:, 0]
    if not torch.isfinite(signal).all():
        raise NonFiniteError(
            "the descent produced NaN or infinite estimates; lower lr or check the data's scale"
        )
    return DescentResult(
        x=x,
        signal=signal,
        loss=raw["loss"][rows, best],
        iterations=raw["iterations"][rows, best],
        grad_norm=raw["grad_norm"][rows, best],
        flips=raw["flips"][rows, best],
        converged=raw["converged"][rows, best],
        start=best,
        seconds=time.perf_counter() - started,
    )


def starts(
    network: RandomReLUNetwork, x0: torch.Tensor | None, negation: str, seed: int, scale: float
) -> torch.Tensor:
    """The starting points (R, S, K): x0 (R, K) or N(0, scale^2 I) draws, and -x0 for
    the two-start variant."""
    n_trials, k = network.trials, network.latent_dim
    if x0 is None:
        x0 = torch.stack(
            [
                torch.randn(
                    k, generator=trial_generator(seed, r, START_STREAM), dtype=torch.float64
                )
                for r in range(n_trials)
            ]
        ).to(network.dtype)
        x0 = scale * x0
    else:
        _check_tensor("x0", x0, (n_trials, k), "(R, K)")
        x0 = x0.to(network.dtype)
    x0 = x0.unsqueeze(1)
    return torch.cat([x0, -x0], dim=1) if negation == "two-start" else x0


class NegationDescent:
    """Recover x* from y = A G(x*) (+ noise) by subgradient descent with the negation step.

    Covers compressed sensing (A Gaussian, squared loss), denoising (A = None) and phase
    retrieval (y = |A G(x*)|, amplitude loss), for R networks and R measurement vectors at
    once. Cocola (arXiv 2204.13599) uses lr 0.7, 20000 iterations and grad_tol 1e-10 with
    W_i ~ N(0, 1/n_i), A ~ N(0, 1/M) and ||G(x*)|| = 1.

    Args:
        lr: step size, > 0.
        max_iters: the most gradient steps per trial, >= 0.
        grad_tol: stop a trial once ||grad f|| <= grad_tol; None takes 1e-10 in float64
            and 1e-6 in float32 (for ||y|| near 1).
        negation: "every-step" (compare f(-x) with f(x) before every step), "two-start"
            (plain descent from x_0 and -x_0, keep the lower final loss) or "none".
        loss: "squared" or "amplitude".
        x0_std: random starts are N(0, x0_std^2 I).
    """

    def __init__(
        self,
        *,
        lr: float = 0.7,
        max_iters: int = 20000,
        grad_tol: float | None = None,
        negation: str = "every-step",
        loss: str = "squared",
        x0_std: float = 1.0,
    ) -> None:
        self.lr = check_positive("lr", lr)
        self.max_iters = check_count("max_iters", max_iters, low=0)
        self.grad_tol = None if grad_tol is None else check_positive("grad_tol", grad_tol, 0)
        check_choice("negation", negation, NEGATION)
        check_choice("loss", loss, LOSSES)
        self.negation, self.loss = negation, loss
        self.x0_std = check_positive("x0_std", x0_std)

    def solve(
        self,
        network: RandomReLUNetwork,
        y: torch.Tensor,
        A: torch.Tensor | Operator | None = None,
        *,
        x0: torch.Tensor | None = None,
        seed: int = 0,
    ) -> DescentResult:
        """Recover one latent point per network.

        Args:
            network: R networks with output size N.
            y: measurements, (R, M); (R, N) when A is None.
            A: per-trial matrices (R, M, N), a shared matrix (M, N), a linear genprior
                :class:`~genprior.operators.base.Operator` with in_shape (N,) (shared), a
                :class:`~genprior.operators.phase.PhaseRetrieval` (forces the amplitude
                loss), or None for the identity (denoising).
            x0: starting points (R, K); None draws them from ``seed`` per trial.
            seed: seeds the random starts.

        Returns:
            A :class:`DescentResult`.

        Raises:
            ShapeError: for y, A or x0 of the wrong shape.
            NonFiniteError: for NaN or inf in y, A or x0, or in the result.
        """
        started = time.perf_counter()
        loss = self.loss
        if isinstance(A, PhaseRetrieval):
            loss = "amplitude"
        matrices = sensing_matrices(A, network)
        m = network.output_shape[0] if matrices is None else matrices.shape[1]
        _check_tensor("y", y, (network.trials, m), "(R, M)")
        objective = MeasurementObjective(network, y.to(network.dtype), matrices, loss)
        x_start = starts(network, x0, self.negation, seed, self.x0_std)
        grad_tol = self.grad_tol if self.grad_tol is not None else GRAD_TOL.get(network.dtype, 0)
        raw = descend(
            objective,
            x_start,
            lr=self.lr,
            max_iters=self.max_iters,
            grad_tol=grad_tol,
            negate=self.negation == "every-step",
        )
        result = finish(objective, raw, started)
        logger.debug(
            "negation descent: %d trials, mean %.0f iterations, %.2f s",
            network.trials,
            result.iterations.double().mean(),
            result.seconds,
        )
        return result


def sensing_matrices(
    A: torch.Tensor | Operator | None, network: RandomReLUNetwork
) -> torch.Tensor | None:
    """A as per-trial matrices (R, M, N) in the network's dtype, or None for the identity."""
    n, n_trials = network.output_shape[0], network.trials
    if A is None:
        return None
    if isinstance(A, Operator):
        if A.in_shape != (n,):
            raise ShapeError(
                f"A must act on signals of shape ({n},), the network's output; received an "
                f"operator with in_shape {A.in_shape}"
            )
        if isinstance(A, PhaseRetrieval):
            matrix = A.matrix
        elif A.linear:
            eye = torch.eye(n, dtype=A.matrix.dtype if hasattr(A, "matrix") else network.dtype)
            matrix = A.apply(eye).reshape(n, -1).T  # (M, N): column j is A e_j
        else:
            raise TypeError(f"A must be linear or PhaseRetrieval; received {type(A).__name__}")
        A = matrix
    if not isinstance(A, torch.Tensor) or A.ndim not in (2, 3) or A.shape[-1] != n:
        shape = tuple(A.shape) if isinstance(A, torch.Tensor) else type(A).__name__
        raise ShapeError(f"A must have shape (R, M, {n}) or (M, {n}); received {shape}")
    if A.ndim == 3 and A.shape[0] != n_trials:
        raise ShapeError(
            f"A must hold one matrix per network, shape ({n_trials}, M, {n}); "
            f"received {tuple(A.shape)}"
        )
    if not torch.isfinite(A).all():
        raise NonFiniteError("A holds NaN or infinite values")
    A = A.to(network.dtype)
    return A.unsqueeze(0).expand(n_trials, -1, -1) if A.ndim == 2 else A


def relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """||estimate - truth|| / ||truth|| per row: (R, N), (R, N) -> (R,)."""
    return (estimate - truth).norm(dim=-1) / truth.norm(dim=-1)


def check_positive(name: str, value: object, low: float | None = None) -> float:
    """value as a float; it must be finite and > 0 (>= low when low is given)."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = real and math.isfinite(value) and (value >= low if low is not None else value > 0)
    if not ok:
        bound = f">= {low}" if low is not None else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; received {value!r}")
    return float(value)


def check_count(name: str, value: object, low: int = 1) -> int:
    """value as an int; it must be an integer >= low."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; received {value!r}")
    return int(value)


def _check_tensor(name: str, t: object, shape: tuple[int, ...], letters: str) -> None:
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ShapeError(f"{name} must have shape {letters} = {shape}; received {got}")
    if not torch.isfinite(t).all():
        raise NonFiniteError(f"{name} holds NaN or infinite values")
