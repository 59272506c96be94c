"""Phase retrieval: magnitudes of Gaussian measurements, y = |A x|."""

import torch

from genprior.operators.base import Operator
from genprior.operators.linear import gaussian_matrix


class PhaseRetrieval(Operator):
    """y = |A x|, with the same A (M, D) as :class:`~genprior.operators.linear.GaussianCS`.

    The operator is not linear: :meth:`adjoint` and :meth:`pseudo_inverse` raise TypeError.
    A is a registered buffer, so ``.double()`` or ``.to(device)`` converts it.

    Args:
        in_shape: shape of one signal, e.g. (C, H, W).
        m: M, the number of measurements, an integer in 1..D.
        seed: seed of the matrix; the same (in_shape, m, seed) gives GaussianCS's matrix.
    """

    linear = False

    def __init__(self, in_shape: tuple[int, ...], m: int, *, seed: int = 0) -> None:
        a = gaussian_matrix(in_shape, m, seed=seed)  # (M, D)
        super().__init__(in_shape, (a.shape[0],))
        self.seed = seed
        self.register_buffer("A", a.to(torch.get_default_dtype()))

    @property
    def matrix(self) -> torch.Tensor:
        """A, (M, D)."""
        return self.A

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) -> (B, M), non-negative."""
        return (x.flatten(1) @ self.A.T).abs()
