"""Solvers: latent-space recovery with a generator prior, and classical baselines.

Every solver has ``solve(operator, y, *, seed) -> Recovery`` and works on a whole batch of
signals (and, for latent-space solvers, all random restarts) as one tensor program.
"""

from genprior.solvers.base import Recovery, Solver
from genprior.solvers.baselines import (
    LassoSolver,
    PseudoInverseSolver,
    lasso_path,
    tune_lasso_lambda,
)
from genprior.solvers.csgm import CSGMSolver
from genprior.solvers.transforms import TRANSFORMS, OrthogonalTransform, make_transform

__all__ = [
    "TRANSFORMS",
    "CSGMSolver",
    "LassoSolver",
    "OrthogonalTransform",
    "PseudoInverseSolver",
    "Recovery",
    "Solver",
    "lasso_path",
    "make_transform",
    "tune_lasso_lambda",
]
