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

Several experiment points can share one network per trial ("stacked points"): point p uses
the first k_p latent coordinates (the network with W_1[:, :k_p]), its own measurements and
its own weights on the rows of A (zero past the first m_p rows, say). All points then go
through each weight matrix together as the columns of one matrix product, so a step reads
the weights once for every point; each trial's unfinished starts are repacked to the front,
so the batch narrows as they finish.

This module has the loop and the measurement objectives (compressed sensing, denoising, phase
retrieval with the amplitude loss); :mod:`genprior.solvers.spiked` adds the spiked-matrix
objective. Shapes: R trials, P points per network, S starts per trial (P, or 2P for the
two-start variant), K latent size, N signal size, M measurements.
"""

import copy
import logging
import math
import numbers
import time
from collections.abc import Sequence
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
    """The outcome of a batched descent, one entry per trial (and point).

    With stacked points, every (R, ...) below is (R, P, ...).

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

    def point(self, p: int) -> "DescentResult":
        """Point p of a stacked result: every (R, P, ...) field becomes (R, ...)."""
        fields = ("x", "signal", "loss", "iterations", "grad_norm", "flips", "converged", "start")
        return DescentResult(
            **{name: getattr(self, name)[:, p] for name in fields}, seconds=self.seconds
        )


class Objective:
    """f(x) = L(G(x)) for R networks; subclasses implement :meth:`output_loss_grad`.

    Data that differ between the S starts of a trial are kept as "per-start" tensors of
    shape (R or 1, S or 1, ...) (1: the same for all trials or starts), listed by name in
    ``per_start``; per-trial data (tensors (R, ...) or objects with ``subset(index)``) are
    listed in ``per_trial``. :meth:`select` follows the descent as it drops finished trials
    and repacks each trial's unfinished starts; a subclass must list every such attribute,
    or it keeps all R rows after trials are dropped.

    Args:
        network: the R networks.
        latent_mask: (S, K) booleans or None; start s moves only the latent coordinates
            where its row is True (the network restricted to them), its gradient is zero
            elsewhere.
    """

    per_trial: tuple[str, ...] = ()
    per_start: tuple[str, ...] = ("latent_mask",)

    def __init__(
        self, network: RandomReLUNetwork, *, latent_mask: torch.Tensor | None = None
    ) -> None:
        self.network = network
        self.latent_mask = None if latent_mask is None else latent_mask.unsqueeze(0)

    def output_loss_grad(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L and its gradient at network outputs g (R, S, N): (R, S) and (R, S, N)."""
        raise NotImplementedError

    def select(
        self, trials: torch.Tensor | None = None, starts: torch.Tensor | None = None
    ) -> "Objective":
        """The same objective for some trials and starts.

        Args:
            trials: (R',) indices of the trials kept, or None for all.
            starts: (R', S') per trial (after ``trials``), the starts kept and their order,
                or None for all.
        """
        sub = copy.copy(self)
        if trials is not None:
            sub.network = self.network.subset(trials)
            for name in self.per_trial:
                setattr(sub, name, _take(getattr(self, name), trials))
            for name in self.per_start:
                value = getattr(self, name)
                setattr(sub, name, value if value is None or len(value) == 1 else value[trials])
        if starts is not None:
            rows = torch.arange(len(starts)).unsqueeze(1)
            for name in self.per_start:
                value = getattr(sub, name)
                if value is not None and value.shape[1] > 1:
                    value = value.expand(len(starts), *value.shape[1:])
                    setattr(sub, name, value[rows, starts])
        return sub

    def loss_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f and its (sub)gradient at x (R, S, K): (R, S) and (R, S, K)."""
        g, masks = self.network.forward_with_masks(x)
        loss, grad_g = self.output_loss_grad(g)
        grad = self.network.vjp(masks, grad_g)
        if self.latent_mask is not None:
            grad = grad * tile_starts(self.latent_mask, x.shape[1])
        return loss, grad

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """f at x (R, S, K) -> (R, S)."""
        return self.output_loss_grad(self.network.trials_forward(x))[0]


def _take(value: object, index: torch.Tensor) -> object:
    """value's trials ``index``: tensors are indexed, other data use their subset()."""
    if value is None:
        return None
    return value[index] if isinstance(value, torch.Tensor) else value.subset(index)


def tile_starts(t: torch.Tensor, n: int) -> torch.Tensor:
    """A per-start tensor (R, S, ...) repeated along its start axis to n starts.

    The negation step evaluates x and -x as one batch of 2S starts; per-start data of
    length S is tiled to match (length 1 broadcasts as it is).
    """
    if t.shape[1] in (1, n):
        return t
    if n % t.shape[1]:
        raise ShapeError(f"cannot tile {t.shape[1]} starts to {n}; n must be a multiple")
    repeats = [1] * t.ndim
    repeats[1] = n // t.shape[1]
    return t.repeat(*repeats)


class MeasurementObjective(Objective):
    """f(x) = 1/2 ||A G(x) - y||^2, or 1/2 || |A G(x)| - y ||^2 with the amplitude loss.

    Args:
        network: the R networks, output size N.
        y: measurements, (R, M) for every start or (R, S, M) one vector per start; M is N
            when A is None.
        A: per-trial matrices (R, M, N), or None for the identity (denoising).
        loss: "squared" or "amplitude" (phase retrieval, y = |A G(x*)|).
        row_weights: (S, M) non-negative weights or None (all 1); start s weighs the
            squared residual of measurement i by row_weights[s, i] (0 drops it).
        latent_mask: see :class:`Objective`.
    """

    per_trial = ("A",)
    per_start = ("latent_mask", "y", "row_weights")

    def __init__(
        self,
        network: RandomReLUNetwork,
        y: torch.Tensor,
        A: torch.Tensor | None = None,
        loss: str = "squared",
        *,
        row_weights: torch.Tensor | None = None,
        latent_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__(network, latent_mask=latent_mask)
        check_choice("loss", loss, LOSSES)
        self.y = y.unsqueeze(1) if y.ndim == 2 else y  # (R, S or 1, M)
        self.A, self.amplitude = A, loss == "amplitude"
        self.row_weights = None if row_weights is None else row_weights.unsqueeze(0)

    def output_loss_grad(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`Objective.output_loss_grad`."""
        n_starts = g.shape[1]
        ag = g if self.A is None else torch.bmm(g, self.A.transpose(1, 2))  # (R, S, M)
        r = (ag.abs() if self.amplitude else ag) - tile_starts(self.y, n_starts)
        if self.row_weights is None:
            loss = 0.5 * r.pow(2).sum(-1)
        else:
            weights = tile_starts(self.row_weights, n_starts)
            loss = 0.5 * (weights * r.pow(2)).sum(-1)
            r = weights * r
        if self.amplitude:
            r = r * torch.sign(ag)
        return loss, r if self.A is None else torch.bmm(r, self.A)


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

    A start stops once ||grad f|| <= grad_tol. A trial leaves the batch once all its starts
    have stopped, and each trial's unfinished starts are repacked to the front, so the
    batch is only as wide as the trial with the most unfinished starts.

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
    # Slot (i, j) of the batch holds start cols[i, j] of trial rows[i].
    rows, cols = torch.arange(n_trials), torch.arange(n_starts).repeat(n_trials, 1)
    state = {key: value.clone() for key, value in out.items()}
    for step in range(max_iters + 1):
        running = ~state["converged"]  # (R', S')
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
        if not moving.all():
            objective, state, rows, cols = _compact(objective, state, out, rows, cols)
            if rows.numel() == 0:
                return out
    _store(out, state, rows, cols)
    return out


def _compact(
    objective: Objective,
    state: dict[str, torch.Tensor],
    out: dict[str, torch.Tensor],
    rows: torch.Tensor,
    cols: torch.Tensor,
) -> tuple[Objective, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Drop the finished trials and narrow the batch to the most unfinished starts of a
    trial, after storing the current state."""
    done = state["converged"]
    keep = (~done.all(dim=1)).nonzero().squeeze(1)
    width = int((~done).sum(dim=1).max())
    if len(keep) == len(rows) and width == done.shape[1]:
        return objective, state, rows, cols
    _store(out, state, rows, cols)
    if len(keep) < len(rows):
        if keep.numel() == 0:
            return objective, state, rows[keep], cols[keep]
        objective = objective.select(trials=keep)
        state = {key: value[keep] for key, value in state.items()}
        rows, cols, done = rows[keep], cols[keep], done[keep]
    if width < done.shape[1]:
        slots = torch.argsort(done.to(torch.int8), dim=1, stable=True)[:, :width]  # (R', W)
        objective = objective.select(starts=slots)
        state = {key: _gather_starts(value, slots) for key, value in state.items()}
        cols = cols.gather(1, slots)
    return objective, state, rows, cols


def _gather_starts(value: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """value (R', S', ...) at the starts slots (R', W) of each trial -> (R', W, ...)."""
    index = slots.view(*slots.shape, *([1] * (value.ndim - 2))).expand(
        *slots.shape, *value.shape[2:]
    )
    return value.gather(1, index)


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
    rows: torch.Tensor,
    cols: torch.Tensor,
) -> None:
    """Copy the batch state (R', S') into ``out``: slot (i, j) is start cols[i, j] of trial
    rows[i]."""
    index = (rows.unsqueeze(1), cols)
    for key, value in state.items():
        out[key][index] = value


def finish(
    objective: Objective,
    raw: dict[str, torch.Tensor],
    started: float,
    points: int | None = None,
) -> DescentResult:
    """Keep, per trial and point, the start with the lowest final loss, and compute G(x).

    Args:
        objective: the objective that was minimised.
        raw: :func:`descend`'s output, starts laid out as (R, C * P) with C copies (starts)
            of the P points: column c * P + p is start c of point p.
        started: the solve's start time (time.perf_counter()).
        points: P, or None for one point and results without the point axis.
    """
    n_trials, n_starts = raw["loss"].shape
    n_points = points or 1
    losses = raw["loss"].reshape(n_trials, n_starts // n_points, n_points)
    best = losses.argmin(dim=1)  # (R, P)
    column = best * n_points + torch.arange(n_points)  # (R, P)

    def pick(t: torch.Tensor) -> torch.Tensor:
        index = column if t.ndim == 2 else column.unsqueeze(-1).expand(-1, -1, t.shape[-1])
        chosen = torch.gather(t, 1, index)
        return chosen if points is not None else chosen[:, 0]

    x = pick(raw["x"])
    signal = objective.network.trials_forward(x if points is not None else x.unsqueeze(1))
    signal = signal if points is not None else signal[:, 0]
    if not torch.isfinite(signal).all():
        raise NonFiniteError(
            "the descent produced NaN or infinite estimates; lower lr or check the data's scale"
        )
    fields = ("loss", "iterations", "grad_norm", "flips", "converged")
    return DescentResult(
        x=x,
        signal=signal,
        **{name: pick(raw[name]) for name in fields},
        start=best if points is not None else best[:, 0],
        seconds=time.perf_counter() - started,
    )


def starts(
    network: RandomReLUNetwork,
    x0: torch.Tensor | None,
    negation: str,
    seed: int,
    scale: float,
    points: int = 1,
    latent_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The starting points (R, S, K), S = C * P (see :func:`finish`).

    x0 is (R, K) (every point starts there), (R, P, K), or None for N(0, scale^2 I) draws
    (one per trial, shared by its P ``points``); the two-start variant appends -x0.
    Coordinates outside a point's latent_mask (P, K) are set to zero.
    """
    n_trials, k, n_points = network.trials, network.latent_dim, points
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
    elif isinstance(x0, torch.Tensor) and x0.ndim == 3:
        _check_tensor("x0", x0, (n_trials, n_points, k), "(R, P, K)")
    else:
        _check_tensor("x0", x0, (n_trials, k), "(R, K)")
    x0 = x0.to(network.dtype)
    x0 = x0 if x0.ndim == 3 else x0.unsqueeze(1).expand(-1, n_points, -1)
    if latent_mask is not None:
        x0 = x0 * latent_mask.to(x0.dtype)  # (P, K) mask
    return torch.cat([x0, -x0], dim=1) if negation == "two-start" else x0.clone()


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
        latent_sizes: Sequence[int] | None = None,
        row_weights: torch.Tensor | None = None,
    ) -> DescentResult:
        """Recover one latent point per network, or one per network and point.

        Stacked points (y of shape (R, P, M), or ``latent_sizes`` / ``row_weights`` given)
        share each trial's network and A: point p is the problem with the network restricted
        to the first latent_sizes[p] latent coordinates (W_1[:, :k_p]) and the squared
        residual of measurement i weighted by row_weights[p, i]. Weights c^2 on the first
        m_p rows and 0 elsewhere give the problem with the matrix c A[:m_p] and data c y[:m_p].

        Args:
            network: R networks with output size N and latent size K.
            y: measurements, (R, M) or (R, P, M); M is N when A is None.
            A: per-trial matrices (R, M, N), a shared matrix (M, N), a linear genprior
                :class:`~genprior.operators.base.Operator` with in_shape (N,) (shared), a
                :class:`~genprior.operators.phase.PhaseRetrieval` (forces the amplitude
                loss), or None for the identity (denoising).
            x0: starting points (R, K) or (R, P, K); None draws them from ``seed`` per trial.
            seed: seeds the random starts.
            latent_sizes: P latent sizes k_p in 1..K, or None (all K).
            row_weights: (P, M) finite non-negative weights, or None (all 1).

        Returns:
            A :class:`DescentResult`; its fields have a point axis, (R, P, ...), when points
            are stacked.

        Raises:
            ShapeError: for y, A, x0 or row_weights of the wrong shape, or points that
                disagree in P.
            ValueError: for latent sizes out of range or negative weights.
            NonFiniteError: for NaN or inf in y, A or x0, or in the result.
        """
        started = time.perf_counter()
        loss = self.loss
        if isinstance(A, PhaseRetrieval):
            loss = "amplitude"
        matrices = sensing_matrices(A, network)
        m = network.output_shape[0] if matrices is None else matrices.shape[1]
        if not isinstance(y, torch.Tensor):
            raise ShapeError(f"y must be a tensor (R, M) or (R, P, M); received {type(y)}")
        stacked = y.ndim == 3 or latent_sizes is not None or row_weights is not None
        n_points, latent_mask, weights = point_masks(network, y, m, latent_sizes, row_weights)
        shape = (network.trials, m) if y.ndim != 3 else (network.trials, n_points, m)
        _check_tensor("y", y, shape, "(R, M)" if y.ndim != 3 else "(R, P, M)")
        x_start = starts(network, x0, self.negation, seed, self.x0_std, n_points, latent_mask)
        n_starts = x_start.shape[1]  # the P points, twice for the two-start variant
        y = y.to(network.dtype)
        objective = MeasurementObjective(
            network,
            y if y.ndim == 2 else tile_starts(y, n_starts),
            matrices,
            loss,
            row_weights=None if weights is None else tile_points(weights, n_starts),
            latent_mask=None if latent_mask is None else tile_points(latent_mask, n_starts),
        )
        grad_tol = self.grad_tol if self.grad_tol is not None else GRAD_TOL.get(network.dtype, 0)
        raw = descend(
            objective,
            x_start,
            lr=self.lr,
            max_iters=self.max_iters,
            grad_tol=grad_tol,
            negate=self.negation == "every-step",
        )
        result = finish(objective, raw, started, n_points if stacked else None)
        logger.debug(
            "negation descent: %d trials x %d points, mean %.0f iterations, %.2f s",
            network.trials,
            n_points,
            result.iterations.double().mean(),
            result.seconds,
        )
        return result


def tile_points(t: torch.Tensor, n: int) -> torch.Tensor:
    """(P, ...) per-point data repeated to n = C * P starts."""
    return tile_starts(t.unsqueeze(0), n)[0]


def point_masks(
    network: RandomReLUNetwork,
    y: torch.Tensor | None,
    m: int,
    latent_sizes: Sequence[int] | None,
    row_weights: torch.Tensor | None,
) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
    """P, the stacked points' latent mask (P, K) and their row weights (P, M), or None.

    Raises:
        ShapeError: when y's P, len(latent_sizes) and row_weights' P disagree, or
            row_weights is not (P, M).
        ValueError: for a k_p outside 1..K, or weights that are negative or not finite.
    """
    counts, mask = {}, None
    if isinstance(y, torch.Tensor) and y.ndim == 3:
        counts["y.shape[1]"] = y.shape[1]
    if latent_sizes is not None:
        k = network.latent_dim
        if not isinstance(latent_sizes, list | tuple | range):
            raise TypeError(
                f"latent_sizes must be a list of integers; received {type(latent_sizes).__name__}"
            )
        sizes = [check_count(f"latent_sizes[{i}]", size) for i, size in enumerate(latent_sizes)]
        if not sizes or max(sizes) > k:
            raise ValueError(
                f"latent_sizes must be a non-empty list of integers in 1..{k} (the network's "
                f"latent size); received {sizes}"
            )
        counts["len(latent_sizes)"] = len(sizes)
        mask = torch.arange(k).unsqueeze(0) < torch.tensor(sizes).unsqueeze(1)
    if row_weights is not None:
        if not isinstance(row_weights, torch.Tensor) or row_weights.ndim != 2:
            got = (
                tuple(row_weights.shape)
                if isinstance(row_weights, torch.Tensor)
                else type(row_weights).__name__
            )
            raise ShapeError(f"row_weights must be a tensor (P, M={m}); received {got}")
        if row_weights.shape[1] != m:
            raise ShapeError(
                f"row_weights must have shape (P, M={m}); received {tuple(row_weights.shape)}"
            )
        if not (torch.isfinite(row_weights).all() and (row_weights >= 0).all()):
            raise ValueError("row_weights must be finite and non-negative")
        counts["row_weights.shape[0]"] = row_weights.shape[0]
        row_weights = row_weights.to(network.dtype)
    if len(set(counts.values())) > 1:
        raise ShapeError(f"the stacked points disagree in P: {counts}")
    if 0 in counts.values():
        raise ShapeError(f"stacked points need P >= 1; received {counts}")
    return next(iter(counts.values()), 1), mask, row_weights


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
