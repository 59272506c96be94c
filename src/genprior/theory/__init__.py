"""Random generative networks: recovery guarantees made runnable.

Experiments that check the theory of random ReLU generative priors (Hand & Voroninski,
arXiv 1705.07576; Cocola, arXiv 2204.13599; Cocola, Hand & Voroninski, arXiv 2006.07953):
phase transitions of compressed sensing, noise, expansivity, phase retrieval, denoising, the
spiked Wishart and Wigner models, and a checker of the weight distribution conditions.
The networks live in :mod:`genprior.priors.random_relu`, the solvers in
:mod:`genprior.solvers.negation` and :mod:`genprior.solvers.spiked`.
"""

from genprior.theory.recovery import (
    DENOISE,
    EXPANSIVITY,
    NOISE,
    PHASE_RETRIEVAL,
    PHASE_TRANSITION,
    DenoiseConfig,
    ExpansivityConfig,
    NoiseConfig,
    PhaseRetrievalConfig,
    PhaseTransitionConfig,
)
from genprior.theory.runner import Experiment, run_experiment
from genprior.theory.spiked import SPIKED, SpikedConfig

EXPERIMENTS = {
    "phase-transition": (PHASE_TRANSITION, PhaseTransitionConfig),
    "noise": (NOISE, NoiseConfig),
    "spiked": (SPIKED, SpikedConfig),
    "expansivity": (EXPANSIVITY, ExpansivityConfig),
    "phase-retrieval": (PHASE_RETRIEVAL, PhaseRetrievalConfig),
    "denoise": (DENOISE, DenoiseConfig),
}

__all__ = [
    "EXPERIMENTS",
    "DenoiseConfig",
    "Experiment",
    "ExpansivityConfig",
    "NoiseConfig",
    "PhaseRetrievalConfig",
    "PhaseTransitionConfig",
    "SpikedConfig",
    "run_experiment",
]
