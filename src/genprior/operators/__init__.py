"""Forward operators y = A(x): the interface, linear and nonlinear operators, noise, registry."""

from genprior.operators.base import Operator
from genprior.operators.linear import (
    BoxInpainting,
    Denoising,
    GaussianCS,
    RandomInpainting,
    SuperResolution,
)
from genprior.operators.noise import GaussianNoise
from genprior.operators.phase import PhaseRetrieval
from genprior.operators.registry import OPERATORS, OperatorSpec, make_operator

__all__ = [
    "OPERATORS",
    "BoxInpainting",
    "Denoising",
    "GaussianCS",
    "GaussianNoise",
    "Operator",
    "OperatorSpec",
    "PhaseRetrieval",
    "RandomInpainting",
    "SuperResolution",
    "make_operator",
]
