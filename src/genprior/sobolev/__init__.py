"""Sobolev training: fit a network's values and its directional derivatives.

Library: :func:`sobolev_loss` for any torch module, :func:`directional_derivatives` in
forward or reverse mode, :func:`make_sobolev_data` from any differentiable target. Theory:
:class:`TwoLayerReLU` and the separated-sphere setting of Cocola & Hand (arXiv 2006.07928).
Experiments: :mod:`~genprior.sobolev.convergence`, :mod:`~genprior.sobolev.regression`,
:mod:`~genprior.sobolev.distill`.
"""

from genprior.sobolev.derivatives import (
    MODES,
    NotDifferentiableError,
    choose_mode,
    directional_derivatives,
)
from genprior.sobolev.loss import (
    SobolevData,
    SobolevTerms,
    jacobian_directions,
    make_sobolev_data,
    random_directions,
    sobolev_loss,
    sobolev_terms,
)
from genprior.sobolev.two_layer import (
    TwoLayerReLU,
    gradient_flow,
    gram_matrix,
    limit_gram_matrix,
    min_separation,
    sample_separated_sphere,
    tangent_directions,
)

__all__ = [
    "MODES",
    "NotDifferentiableError",
    "SobolevData",
    "SobolevTerms",
    "TwoLayerReLU",
    "choose_mode",
    "directional_derivatives",
    "gradient_flow",
    "gram_matrix",
    "jacobian_directions",
    "limit_gram_matrix",
    "make_sobolev_data",
    "min_separation",
    "random_directions",
    "sample_separated_sphere",
    "sobolev_loss",
    "sobolev_terms",
    "tangent_directions",
]
