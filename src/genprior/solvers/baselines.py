"""Classical baselines: Lasso in an orthonormal basis, solved by FISTA, and the pseudo-inverse.

The Lasso estimate of an image x (C, H, W) from y = A x + noise is x = Psi^T c with

    c = argmin_c 1/2 ||A Psi^T c - y||^2 + lam ||c||_1,

per signal, where Psi is an orthonormal DCT or wavelet basis
(:mod:`genprior.solvers.transforms`). lam is in the units of the unnormalised squared error:
it is neither divided by the number of measurements nor by the batch size. FISTA (Beck and
Teboulle, SIAM J. Imaging Sci. 2009) solves all signals of a batch, and all lambdas of a path,
in one tensor program. Both solvers work for any linear
:class:`~genprior.operators.base.Operator` (compressed sensing, inpainting,
super-resolution...).
"""

import functools
import logging
import math
import numbers
from collections.abc import Sequence

import torch

from genprior.errors import ShapeError, check_choice
from genprior.operators.base import Operator
from genprior.solvers.base import Recovery, check_finite_result, measurement_loss
from genprior.solvers.transforms import TRANSFORMS, OrthogonalTransform, make_transform

logger = logging.getLogger(__name__)

__all__ = [
    "LassoSolver",
    "PseudoInverseSolver",
    "lasso_objective",
    "lasso_path",
    "tune_lasso_lambda",
]

# Power iteration for L = ||A Psi^T||^2: a few independent start vectors, a fixed number of
# steps, and a safety factor on the estimate (which can only be low).
POWER_ITERS = 100
POWER_VECTORS = 4
LIPSCHITZ_SAFETY = 1.01
# Auto-materialise A Psi^T as a dense (D, M) matrix when it has at most this many entries.
MATERIALIZE_MAX_ENTRIES = 2**24


class LassoSolver:
    """Sparse recovery in an orthonormal basis: 1/2 ||A Psi^T c - y||^2 + lam ||c||_1 by FISTA.

    Args:
        transform: the sparsifying basis, "dct" or "wavelet" (Haar, the largest even number of
            levels), or an :class:`OrthogonalTransform` whose shape is the operator's in_shape.
        lam: the l1 weight, >= 0, in units of the unnormalised squared error (see the module
            docstring); tune it with :func:`tune_lasso_lambda`.
        iters: the most FISTA iterations, >= 1.
        tol: stop once max over the batch of ||c_k - c_{k-1}|| / ||c_k|| is below tol;
            0 runs all iters.
        history: record the objective of every signal at every iteration in Recovery.history.
        materialize: compute A Psi^T once as a dense (D, M) matrix (faster when it fits; the
            operator is applied to the D basis images); None does so when D*M <= 2**24.
    """

    def __init__(
        self,
        transform: str | OrthogonalTransform = "dct",
        lam: float = 0.1,
        *,
        iters: int = 500,
        tol: float = 1e-6,
        history: bool = False,
        materialize: bool | None = None,
    ) -> None:
        _check_transform_arg(transform)
        self.transform = transform
        self.lam = _check_nonnegative("lam", lam)
        self.iters = _check_iters(iters)
        self.tol = _check_nonnegative("tol", tol)
        self.history = bool(history)
        self.materialize = materialize

    def solve(self, operator: Operator, y: torch.Tensor, *, seed: int = 0) -> Recovery:
        """Recover x (B, C, H, W) from y (B, *out_shape).

        Args:
            operator: a linear operator with in_shape (C, H, W).
            y: measurements, (B, *out_shape).
            seed: seeds the power iteration that estimates the step size.

        Returns:
            Recovery with x (B, C, H, W), measurement_loss (B,), history (B, T) if requested
            and iterations T.

        Raises:
            TypeError: for a nonlinear operator.
            ShapeError, NonFiniteError: for y of the wrong shape or with NaN or inf.
        """
        _check_operator(operator, "LassoSolver")
        operator.check_measurements(y)
        transform = _resolve_transform(self.transform, operator)
        lam_rows = torch.full((y.shape[0], 1), self.lam, dtype=y.dtype, device=y.device)
        c, iterations, hist = _fista(
            operator,
            transform,
            y,
            lam_rows,
            iters=self.iters,
            tol=self.tol,
            seed=seed,
            materialize=self.materialize,
            record=self.history,
        )
        x = transform.inverse(c)
        check_finite_result(x, "LassoSolver")
        return Recovery(
            x=x,
            measurement_loss=measurement_loss(operator, x, y),
            history=hist,
            iterations=iterations,
        )

    def __repr__(self) -> str:
        return (
            f"LassoSolver(transform={self.transform!r}, lam={self.lam:g}, iters={self.iters}, "
            f"tol={self.tol:g})"
        )


class PseudoInverseSolver:
    """The minimum-norm least-squares estimate x = A^+ y, via ``operator.pseudo_inverse``."""

    def solve(self, operator: Operator, y: torch.Tensor, *, seed: int = 0) -> Recovery:
        """Recover x (B, *in_shape) = A^+ y from y (B, *out_shape); seed is unused.

        Returns:
            Recovery with x, measurement_loss (B,) and iterations 0 (a closed form).

        Raises:
            TypeError: for a nonlinear operator.
            ShapeError, NonFiniteError: for y of the wrong shape or with NaN or inf.
        """
        _check_operator(operator, "PseudoInverseSolver")
        x = operator.pseudo_inverse(y)
        check_finite_result(x, "PseudoInverseSolver")
        return Recovery(x=x, measurement_loss=measurement_loss(operator, x, y), iterations=0)

    def __repr__(self) -> str:
        return "PseudoInverseSolver()"


def lasso_path(
    operator: Operator,
    y: torch.Tensor,
    transform: str | OrthogonalTransform,
    lams: torch.Tensor | Sequence[float],
    *,
    iters: int = 500,
    tol: float = 1e-6,
    seed: int = 0,
    materialize: bool | None = None,
) -> torch.Tensor:
    """Lasso estimates for several lambdas at once, batched with the signals.

    Args:
        operator: a linear operator with in_shape (C, H, W).
        y: measurements, (B, *out_shape).
        transform: "dct", "wavelet" or an :class:`OrthogonalTransform`.
        lams: the l1 weights, (L,), each finite and >= 0.
        iters, tol, seed, materialize: as for :class:`LassoSolver`; the stopping test takes the
            max over all L*B problems.

    Returns:
        The estimates, (L, B, C, H, W); entry l equals LassoSolver(transform, lams[l]).solve.
    """
    _check_operator(operator, "lasso_path")
    operator.check_measurements(y)
    _check_transform_arg(transform)
    tf = _resolve_transform(transform, operator)
    lam_vec = _check_lams(lams).to(dtype=y.dtype, device=y.device)  # (L,)
    n_lams, batch = lam_vec.shape[0], y.shape[0]
    y_all = y.repeat(n_lams, *[1] * (y.ndim - 1))  # (L*B, *out_shape), lambda-major
    lam_rows = lam_vec.repeat_interleave(batch)[:, None]  # (L*B, 1)
    c, _, _ = _fista(
        operator,
        tf,
        y_all,
        lam_rows,
        iters=_check_iters(iters),
        tol=_check_nonnegative("tol", tol),
        seed=seed,
        materialize=materialize,
        record=False,
    )
    x = tf.inverse(c).reshape(n_lams, batch, *tf.shape)
    check_finite_result(x, "lasso_path")
    return x


def tune_lasso_lambda(
    operator: Operator,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    transform: str | OrthogonalTransform,
    lams: torch.Tensor | Sequence[float],
    *,
    iters: int = 500,
    tol: float = 1e-6,
    seed: int = 0,
) -> tuple[float, torch.Tensor]:
    """Pick the lambda whose Lasso estimates have the lowest mean per-pixel MSE.

    Use validation signals (e.g. from the training split), never the test signals.

    Args:
        operator: a linear operator with in_shape (C, H, W).
        x_val: validation signals, (B, C, H, W).
        y_val: their measurements, (B, *out_shape).
        transform: "dct", "wavelet" or an :class:`OrthogonalTransform`.
        lams: candidate l1 weights, (L,).
        iters, tol, seed: as for :func:`lasso_path`.

    Returns:
        (best_lam, mse_per_lam) with mse_per_lam (L,): mean over signals and pixels of
        (x_hat - x_val)^2.
    """
    check_validation_set(operator, x_val, y_val)
    lam_vec = _check_lams(lams)
    path = lasso_path(operator, y_val, transform, lam_vec, iters=iters, tol=tol, seed=seed)
    mse = (path - x_val.unsqueeze(0)).pow(2).flatten(1).mean(1)  # (L,)
    best = int(torch.argmin(mse))
    logger.info("lasso lambda %g: validation MSE %.4g", lam_vec[best].item(), mse[best].item())
    if lam_vec.numel() > 1 and best in (int(lam_vec.argmin()), int(lam_vec.argmax())):
        logger.warning(
            "best lambda %g lies at the edge of the grid [%g, %g]; widen the grid",
            lam_vec[best].item(),
            lam_vec.min().item(),
            lam_vec.max().item(),
        )
    return lam_vec[best].item(), mse


def check_validation_set(operator: Operator, x_val: torch.Tensor, y_val: torch.Tensor) -> None:
    """Check validation signals x_val (B, *in_shape) against their measurements y_val.

    Raises:
        ShapeError, NonFiniteError: for wrong shapes, differing B, or NaN/inf entries.
    """
    operator.check_signal(x_val)
    operator.check_measurements(y_val)
    if x_val.shape[0] != y_val.shape[0]:
        raise ShapeError(
            f"x_val and y_val must hold the same number of signals; received "
            f"{x_val.shape[0]} and {y_val.shape[0]}"
        )


def lasso_objective(
    operator: Operator,
    y: torch.Tensor,
    transform: OrthogonalTransform,
    c: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """1/2 ||A Psi^T c - y||^2 + lam ||c||_1 per signal: c (B, D), y (B, *out_shape) -> (B,)."""
    r = operator.apply(transform.inverse(c)) - y
    return 0.5 * r.flatten(1).pow(2).sum(1) + lam * c.abs().sum(1)


# -- FISTA ----------------------------------------------------------------------------------
class _Problem:
    """The map c -> A Psi^T c on flattened measurements, matrix-free or as a dense matrix."""

    def __init__(
        self,
        operator: Operator,
        transform: OrthogonalTransform,
        like: torch.Tensor,
        materialize: bool | None,
    ) -> None:
        self.operator = operator
        self.transform = transform
        n_meas = math.prod(operator.out_shape)
        if materialize is None:
            materialize = transform.dim * n_meas <= MATERIALIZE_MAX_ENTRIES
        self.mt = None
        if materialize:
            # Row j is A applied to basis image j: (D, M), so A Psi^T c = c @ mt.
            basis = transform.inverse(
                torch.eye(transform.dim, dtype=like.dtype, device=like.device)
            )
            self.mt = operator.apply(basis).reshape(transform.dim, n_meas)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """A Psi^T c: (N, D) -> (N, M)."""
        if self.mt is not None:
            return c @ self.mt
        return self.operator.apply(self.transform.inverse(c)).flatten(1)

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        """Psi A^T r: (N, M) -> (N, D)."""
        if self.mt is not None:
            return r @ self.mt.T
        x = self.operator.apply_adjoint(r.reshape(r.shape[0], *self.operator.out_shape))
        return self.transform.forward(x)


def _fista(
    operator: Operator,
    transform: OrthogonalTransform,
    y: torch.Tensor,
    lam_rows: torch.Tensor,
    *,
    iters: int,
    tol: float,
    seed: int,
    materialize: bool | None,
    record: bool,
) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """FISTA on N problems with weights lam_rows (N, 1); returns c (N, D), iterations, history."""
    problem = _Problem(operator, transform, y, materialize)
    y_flat = y.flatten(1)  # (N, M)
    step = 1.0 / _lipschitz(problem, y, seed)
    thresh = step * lam_rows  # (N, 1)
    tiny = torch.finfo(y.dtype).tiny

    c = torch.zeros(y.shape[0], transform.dim, dtype=y.dtype, device=y.device)  # (N, D)
    z, t, hist, change, k = c, 1.0, [], math.inf, 0
    while k < iters:
        k += 1
        # Proximal gradient step from the extrapolated point z.
        g = z - step * problem.adjoint(problem.forward(z) - y_flat)
        c_new = g - torch.clamp(g, -thresh, thresh)  # soft thresholding
        # Nesterov momentum, no restarts.
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        diff = c_new - c
        z = c_new + ((t - 1.0) / t_new) * diff
        change = (diff.norm(dim=1) / c_new.norm(dim=1).clamp_min(tiny)).max().item()
        c, t = c_new, t_new
        if record:
            r = problem.forward(c) - y_flat
            hist.append(0.5 * r.pow(2).sum(1) + lam_rows[:, 0] * c.abs().sum(1))
        if change < tol:
            break
    if tol > 0 and change >= tol:
        logger.info("FISTA stopped after %d iterations; relative change %.3g > tol", k, change)
    logger.debug("FISTA: %d problems, %d iterations, step %.4g", y.shape[0], k, step)
    return c, k, torch.stack(hist, dim=1) if record else None


def _lipschitz(problem: _Problem, like: torch.Tensor, seed: int) -> float:
    """1.01 times a power-iteration estimate of ||A Psi^T||^2, the largest eigenvalue of the
    normal operator Psi A^T A Psi^T."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(POWER_VECTORS, problem.transform.dim, generator=gen, dtype=torch.float64)
    v = v.to(dtype=like.dtype, device=like.device)
    v = v / v.norm(dim=1, keepdim=True)
    for _ in range(POWER_ITERS):
        w = problem.adjoint(problem.forward(v))
        v = w / w.norm(dim=1, keepdim=True).clamp_min(torch.finfo(like.dtype).tiny)
    estimate = problem.forward(v).pow(2).sum(1).max().item()  # max Rayleigh quotient
    if not estimate > 0 or not math.isfinite(estimate):
        raise ValueError(
            f"cannot estimate the operator's norm: ||A Psi^T||^2 came out as {estimate}; "
            "the operator may map every signal to zero"
        )
    return LIPSCHITZ_SAFETY * estimate


# -- argument checks ------------------------------------------------------------------------
def _check_operator(operator: Operator, owner: str) -> None:
    if not isinstance(operator, Operator):
        raise TypeError(
            f"operator must be a genprior Operator; received {type(operator).__name__}"
        )
    if not operator.linear:
        raise TypeError(
            f"{owner} needs a linear operator; received {type(operator).__name__}, which is "
            "nonlinear"
        )


def _check_transform_arg(transform: object) -> None:
    if not isinstance(transform, OrthogonalTransform):
        check_choice("transform", transform, tuple(TRANSFORMS))


def _resolve_transform(
    transform: str | OrthogonalTransform, operator: Operator
) -> OrthogonalTransform:
    """The transform for the operator's signals: built (and cached) from a name, or checked."""
    if isinstance(transform, OrthogonalTransform):
        if transform.shape != operator.in_shape:
            raise ShapeError(
                f"transform must act on the operator's signals of shape {operator.in_shape}; "
                f"received one for shape {transform.shape}"
            )
        return transform
    if len(operator.in_shape) != 3:
        raise ShapeError(
            f"Lasso baselines need an operator on images (C, H, W); received "
            f"{type(operator).__name__} with in_shape {operator.in_shape}"
        )
    return _cached_transform(transform, operator.in_shape)


@functools.lru_cache(maxsize=8)
def _cached_transform(name: str, shape: tuple[int, int, int]) -> OrthogonalTransform:
    return make_transform(name, shape)


def _check_nonnegative(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0; received {value!r}")
    return float(value)


def _check_iters(iters: object) -> int:
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 1:
        raise ValueError(f"iters must be an int >= 1; received {iters!r}")
    return int(iters)


def _check_lams(lams: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """lams as a float64 tensor (L,), L >= 1, finite and >= 0."""
    t = torch.as_tensor(lams, dtype=torch.float64).detach().cpu()
    if t.ndim != 1 or t.numel() == 0:
        raise ShapeError(f"lams must be a non-empty 1-D sequence; received shape {tuple(t.shape)}")
    if not (torch.isfinite(t).all() and (t >= 0).all()):
        raise ValueError(f"lams must be finite and >= 0; received {t.tolist()}")
    return t
