"""Reduced-order models of 2D Burgers: the full-order model with sample meshes, POD, DEIM and
Q-DEIM, gappy POD, LSPG on linear and autoencoder trial manifolds, hyper-reduction, and HRAE
(an autoencoder trained only on the stencil-mesh rows of the snapshots).

The experiment is :func:`genprior.rom.experiment.run_burgers` (``genprior rom burgers``).
"""

from genprior.rom.burgers import (
    Burgers2D,
    SampleMesh,
    SampleMeshError,
    SolverDivergedError,
    initial_state,
    solve_fom,
)
from genprior.rom.linear import GappyPOD, deim, pod, qdeim
from genprior.rom.lspg import AffineMap, solve_lspg

__all__ = [
    "AffineMap",
    "Burgers2D",
    "GappyPOD",
    "SampleMesh",
    "SampleMeshError",
    "SolverDivergedError",
    "deim",
    "initial_state",
    "pod",
    "qdeim",
    "solve_fom",
    "solve_lspg",
]
