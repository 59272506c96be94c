"""Every forward operator by name, with its one parameter and its default.

A new operator joins :data:`OPERATORS`; the generic tests in ``tests/test_operators.py`` then
cover it (shapes, batching, seeds, adjointness, pseudo-inverse, bad input).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from genprior.errors import check_choice
from genprior.operators.base import Operator
from genprior.operators.linear import (
    BoxInpainting,
    Denoising,
    GaussianCS,
    RandomInpainting,
    SuperResolution,
)
from genprior.operators.phase import PhaseRetrieval

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorSpec:
    """How to build one operator.

    Attributes:
        builder: ``builder(in_shape, param, seed) -> Operator``.
        param_name: what the single parameter means (m, fraction, size, factor, std).
        default_param: the parameter used when none is given; valid for (1, 28, 28) MNIST and
            (1, 8, 8) digits alike.
        description: one line, for listings and help texts.
    """

    builder: Callable[[tuple[int, ...], float, int], Operator]
    param_name: str
    default_param: float
    description: str


OPERATORS: dict[str, OperatorSpec] = {
    "cs": OperatorSpec(
        lambda shape, m, seed: GaussianCS(shape, m, seed=seed),
        "m",
        50,
        "compressed sensing y = A x, A (M, D) with i.i.d. N(0, 1/M) entries",
    ),
    "inpaint-random": OperatorSpec(
        lambda shape, fraction, seed: RandomInpainting(shape, fraction, seed=seed),
        "fraction",
        0.5,
        "observe a random fraction of the pixels",
    ),
    "inpaint-box": OperatorSpec(
        lambda shape, size, seed: BoxInpainting(shape, size),
        "size",
        4,
        "hide a centred size x size square (the seed is ignored)",
    ),
    "superres": OperatorSpec(
        lambda shape, factor, seed: SuperResolution(shape, factor),
        "factor",
        4,
        "average pooling by an integer factor",
    ),
    "denoise": OperatorSpec(
        lambda shape, std, seed: Denoising(shape),
        "std",
        0.1,
        "identity; the parameter is the noise std, applied by GaussianNoise, not here",
    ),
    "phase": OperatorSpec(
        lambda shape, m, seed: PhaseRetrieval(shape, m, seed=seed),
        "m",
        50,
        "phase retrieval y = |A x|, A as in cs",
    ),
}


def make_operator(
    name: str, in_shape: tuple[int, ...], param: float | None = None, *, seed: int = 0
) -> Operator:
    """Build the operator registered as ``name``.

    Args:
        name: a key of :data:`OPERATORS`.
        in_shape: shape of one signal, e.g. (1, 28, 28).
        param: the operator's parameter (see :attr:`OperatorSpec.param_name`); None uses
            :attr:`OperatorSpec.default_param`.
        seed: seed of random operators; ignored by deterministic ones.

    Returns:
        The operator, with buffers in the default dtype on the CPU.
    """
    check_choice("operator name", name, list(OPERATORS))
    spec = OPERATORS[name]
    param = spec.default_param if param is None else param
    logger.debug("building operator %s with %s=%s, seed %s", name, spec.param_name, param, seed)
    return spec.builder(in_shape, param, seed)
