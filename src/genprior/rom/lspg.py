"""Least-squares Petrov-Galerkin on a trial manifold, solved by Gauss-Newton each time step.

Manifold LSPG with backward Euler (Lee and Carlberg, JCP 404:108973, 2020): with y = g(z) on
the stencil mesh, z^n = argmin_z ||W r_S(g(z); g(z^{n-1}))||_2 where r_S is the residual on the
sample mesh. W = I is collocation; W = (U_S)^+, the gappy-POD coefficients of the residual in a
residual basis U (N, R) sampled on the sample rows, is the DEIM/GNAT variant of Kim et al. (JCP
2022) and Carlberg et al. (GNAT). Gauss-Newton: J = W (dr/dy) (dg/dz), dz = argmin ||J dz + W r||.
"""

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from genprior.errors import ConvergenceWarning, ShapeError
from genprior.rom.burgers import SampleMesh, check_residual

logger = logging.getLogger(__name__)


class TrialMap(Protocol):
    """y = g(z) on some rows, with its Jacobian by the latent z (K,)."""

    latent_dim: int

    def evaluate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """g(z) (P,) and dg/dz (P, K)."""

    def value(self, z: np.ndarray) -> np.ndarray:
        """g(z) (P,) alone."""


class AffineMap:
    """The linear trial space y = reference + basis z.

    Args:
        reference: (P,) offset.
        basis: (P, K).
    """

    def __init__(self, reference: np.ndarray, basis: np.ndarray) -> None:
        if reference.shape != basis.shape[:1]:
            raise ShapeError(
                f"reference must be ({basis.shape[0]},) to match basis {basis.shape}; "
                f"received {reference.shape}"
            )
        self.reference, self.basis = reference, np.ascontiguousarray(basis)
        self.latent_dim = basis.shape[1]

    def evaluate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """reference + basis z (P,) and basis (P, K)."""
        return self.reference + self.basis @ z, self.basis

    def value(self, z: np.ndarray) -> np.ndarray:
        """reference + basis z (P,)."""
        return self.reference + self.basis @ z


@dataclass
class LSPGResult:
    """Latent trajectory (T + 1, K), online wall time, Gauss-Newton iterations per step (T,),
    and how many steps stopped at the iteration cap."""

    latents: np.ndarray
    seconds: float
    iterations: np.ndarray
    unconverged: int


def solve_lspg(
    mesh: SampleMesh,
    trial: TrialMap,
    z0: np.ndarray,
    n_steps: int,
    *,
    weight: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 10,
    progress: Callable[..., None] | None = None,
) -> LSPGResult:
    """March ``n_steps`` backward-Euler steps of LSPG from the latent ``z0`` (K,).

    ``trial`` must give values on ``mesh.stencil``; ``weight`` (R, S) multiplies the sampled
    residual (None: collocation, W = I). Gauss-Newton stops when
    ``||dz|| <= tol (1 + ||z||)``; steps that reach ``max_iter`` are counted and reported in
    one :class:`ConvergenceWarning`; a non-finite or exploding residual raises
    :class:`~genprior.rom.burgers.SolverDivergedError` naming the step.
    """
    y0, _ = trial.evaluate(z0)
    if y0.shape != mesh.stencil.shape:
        raise ShapeError(
            f"trial map gives {y0.shape[0]} rows but the sample mesh needs "
            f"{len(mesh.stencil)} stencil rows"
        )
    latents = np.empty((n_steps + 1, len(z0)))
    latents[0] = z0
    iterations = np.zeros(n_steps, dtype=np.int64)
    y_prev = y0[mesh.sample_in_stencil]
    start = time.perf_counter()
    for step in range(1, n_steps + 1):
        z, iterations[step - 1], y = gauss_newton_step(
            mesh, trial, latents[step - 1], y_prev, step, tol, max_iter, weight
        )
        latents[step], y_prev = z, y[mesh.sample_in_stencil]
        if progress is not None:
            progress()
    seconds = time.perf_counter() - start
    unconverged = int((iterations >= max_iter).sum())
    if unconverged:
        warnings.warn(
            f"Gauss-Newton reached {max_iter} iterations in {unconverged} of {n_steps} time "
            f"steps (first at step {int(np.argmax(iterations >= max_iter)) + 1})",
            ConvergenceWarning,
            stacklevel=2,
        )
    return LSPGResult(latents, seconds, iterations, unconverged)


def gauss_newton_step(
    mesh: SampleMesh,
    trial: TrialMap,
    z_prev: np.ndarray,
    y_prev_sample: np.ndarray,
    step: int,
    tol: float,
    max_iter: int,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, int, np.ndarray]:
    """One LSPG time step: the new latent (K,), the iterations, and g(z) on the stencil (P,)."""
    z = z_prev.copy()
    for iteration in range(1, max_iter + 1):
        y, dg = trial.evaluate(z)
        r, jac = mesh.residual_and_projected_jacobian(y, y_prev_sample, dg)
        check_residual(r, step, iteration, "Gauss-Newton")
        if weight is not None:
            r, jac = weight @ r, weight @ jac
        dz = np.linalg.lstsq(jac, -r, rcond=None)[0]
        z = z + dz
        if np.linalg.norm(dz) <= tol * (1.0 + np.linalg.norm(z)):
            break
    y = trial.value(z)  # the next step's previous state; no Jacobian needed
    if not np.isfinite(y).all():
        check_residual(np.array([np.inf]), step, iteration, "Gauss-Newton")
    return z, iteration, y
