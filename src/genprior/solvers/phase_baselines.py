"""A classical phase-retrieval baseline: sparse amplitude flow from a spectral start.

For y = |A x| (+ noise) with a real Gaussian A (M, D), minimise

    1/2 || |A Psi^T c| - y ||^2 + lam ||c||_1

over the coefficients c = Psi x in an orthonormal basis Psi (DCT or Haar wavelets) by
proximal gradient descent. The amplitude loss is not differentiable where (A x)_i = 0; its
generalised gradient A^T (A x - y * sign(A x)) is the one amplitude flow uses (Wang, Giannakis
& Eldar, arXiv 1605.08285). The start is the truncated spectral estimate: the leading
eigenvector of A^T diag(y^2 1[y^2 <= 9 mean y^2]) A (power iteration), scaled to ||y||, which
matches ||x|| because A has N(0, 1/M) entries. The loss cannot tell x from -x, so the final
sign is the one whose pixels sum to a non-negative number (images are non-negative).

Shapes: B signals, M measurements, D = C * H * W pixels.
"""

import logging
from collections.abc import Sequence

import torch

from genprior.operators.base import Operator
from genprior.operators.phase import PhaseRetrieval
from genprior.solvers.base import Recovery, check_finite_result, measurement_loss
from genprior.solvers.baselines import (
    _check_iters,
    _check_lams,
    _check_nonnegative,
    _check_transform_arg,
    _resolve_transform,
    check_validation_set,
)
from genprior.solvers.transforms import OrthogonalTransform

logger = logging.getLogger(__name__)

__all__ = ["SparseAmplitudeFlow", "spectral_start", "tune_amplitude_flow_lambda"]

SPECTRAL_ITERS = 100
TRUNCATION = 9.0  # keep measurements with y^2 <= TRUNCATION * mean(y^2) in the spectral start


class SparseAmplitudeFlow:
    """Phase retrieval without a learned prior (the baseline of ``recover --task phase``).

    Args:
        transform: the sparsifying basis, "dct" or "wavelet", or an
            :class:`~genprior.solvers.transforms.OrthogonalTransform` on the operator's signals.
        lam: the l1 weight, >= 0, in the units of the squared amplitude error; tune it on
            validation images with :func:`tune_amplitude_flow_lambda`.
        iters: proximal gradient steps, >= 1.
    """

    def __init__(
        self, transform: str | OrthogonalTransform = "dct", lam: float = 0.0, *, iters: int = 300
    ) -> None:
        _check_transform_arg(transform)
        self.transform = transform
        self.lam = _check_nonnegative("lam", lam)
        self.iters = _check_iters(iters)

    def solve(self, operator: Operator, y: torch.Tensor, *, seed: int = 0) -> Recovery:
        """Recover x (B, C, H, W) from y = |A x| (B, M).

        Args:
            operator: a :class:`~genprior.operators.phase.PhaseRetrieval` operator.
            y: the magnitudes, (B, M).
            seed: seeds the spectral start's power iteration.

        Raises:
            TypeError: for any other operator.
            ShapeError, NonFiniteError: for y of the wrong shape or with NaN or inf.
        """
        x = _amplitude_flow(operator, y, self.transform, [self.lam], self.iters, seed)[0]
        check_finite_result(x, "SparseAmplitudeFlow")
        return Recovery(
            x=x, measurement_loss=measurement_loss(operator, x, y), iterations=self.iters
        )

    def __repr__(self) -> str:
        return (
            f"SparseAmplitudeFlow(transform={self.transform!r}, lam={self.lam:g}, "
            f"iters={self.iters})"
        )


def spectral_start(A: torch.Tensor, y: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """The truncated spectral estimate of x from y = |A x|: A (M, D), y (B, M) -> (B, D).

    The leading eigenvector of A^T diag(w) A with w = y^2 (truncated at 9 mean y^2), by
    power iteration from a seeded random start, scaled to norm ||y||.
    """
    y2 = y.pow(2)
    weights = y2 * (y2 <= TRUNCATION * y2.mean(dim=1, keepdim=True))  # (B, M)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(y.shape[0], A.shape[1], generator=generator, dtype=A.dtype).to(A.device)
    for _ in range(SPECTRAL_ITERS):
        v = (weights * (v @ A.T)) @ A  # (B, D)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(A.dtype).tiny)
    return v * y.norm(dim=1, keepdim=True)


def tune_amplitude_flow_lambda(
    operator: Operator,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    transform: str | OrthogonalTransform,
    lams: torch.Tensor | Sequence[float],
    *,
    iters: int = 300,
    seed: int = 0,
) -> tuple[float, torch.Tensor]:
    """Pick the l1 weight whose estimates of validation signals have the lowest mean MSE.

    All weights run as one batch from the same spectral start.

    Args:
        operator: a PhaseRetrieval operator with in_shape (C, H, W).
        x_val: validation signals (never the test signals), (B, C, H, W).
        y_val: their magnitudes, (B, M).
        transform, iters, seed: as for :class:`SparseAmplitudeFlow`.
        lams: candidate weights, (L,).

    Returns:
        (best_lam, mse_per_lam) with mse_per_lam (L,).
    """
    check_validation_set(operator, x_val, y_val)
    lam_vec = _check_lams(lams)
    path = _amplitude_flow(operator, y_val, transform, lam_vec.tolist(), iters, seed)
    mse = (path - x_val.unsqueeze(0)).pow(2).flatten(1).mean(1)  # (L,)
    best = int(torch.argmin(mse))
    logger.info("amplitude flow lambda %g: validation MSE %.4g", lam_vec[best], mse[best])
    if path[best].abs().max() == 0:
        logger.warning(
            "amplitude flow with M = %d: the best weight (%g) shrinks every estimate to zero; "
            "without a learned prior these magnitudes do not determine the signals",
            y_val.shape[1],
            lam_vec[best],
        )
    return float(lam_vec[best]), mse


def _amplitude_flow(
    operator: Operator,
    y: torch.Tensor,
    transform: str | OrthogonalTransform,
    lams: Sequence[float],
    iters: int,
    seed: int,
) -> torch.Tensor:
    """Estimates for every weight: (L, B, C, H, W)."""
    if not isinstance(operator, PhaseRetrieval):
        raise TypeError(
            f"SparseAmplitudeFlow needs a PhaseRetrieval operator; received "
            f"{type(operator).__name__}"
        )
    operator.check_measurements(y)
    basis = _resolve_transform(transform, operator)
    A = operator.matrix.to(y.dtype)  # (M, D)
    psi = basis.matrix_like(y)  # (D, D), rows are basis images
    step = 1.0 / torch.linalg.matrix_norm(A, ord=2).pow(2)

    n_lams, n_signals = len(lams), y.shape[0]
    c = spectral_start(A, y, seed=seed) @ psi.T  # (B, D)
    c = c.repeat(n_lams, 1)  # (L * B, D)
    y_all = y.repeat(n_lams, 1)
    threshold = step * torch.tensor(lams, dtype=y.dtype).repeat_interleave(n_signals)
    threshold = threshold.unsqueeze(1).to(y.device)
    for _ in range(iters):
        ax = (c @ psi) @ A.T  # (L * B, M)
        grad_x = (ax - y_all * torch.sign(ax)) @ A  # (L * B, D)
        c = c - step * (grad_x @ psi.T)
        c = torch.sign(c) * (c.abs() - threshold).clamp_min(0)

    x = c @ psi  # (L * B, D)
    x = x * torch.where(x.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    return x.reshape(n_lams, n_signals, *operator.in_shape)
