"""The forward-operator interface: y = A(x), batched, shapes checked.

Signals have shape (B, *in_shape), for images (B, C, H, W); measurements (B, *out_shape).
Linear operators also provide :meth:`Operator.adjoint` (A^T) and
:meth:`Operator.pseudo_inverse` (A^+). Noise is not part of an operator: see
:class:`genprior.operators.noise.GaussianNoise`.
"""

from typing import ClassVar

import torch
from torch import nn

from genprior.errors import NonFiniteError, ShapeError


class Operator(nn.Module):
    """Base class of forward operators.

    Subclasses set ``linear`` and implement :meth:`apply` (and, if linear, :meth:`apply_adjoint`
    and optionally :meth:`apply_pseudo_inverse`). The public methods check shapes and finiteness
    and then call these.

    Args:
        in_shape: shape of one signal, e.g. (C, H, W).
        out_shape: shape of one measurement vector, e.g. (M,).
    """

    linear: ClassVar[bool] = True

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)

    # -- what subclasses implement -------------------------------------------------------
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """A(x) for x (B, *in_shape) -> (B, *out_shape), without checks."""
        raise NotImplementedError

    def apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """A^T y for y (B, *out_shape) -> (B, *in_shape), without checks."""
        raise NotImplementedError

    def apply_pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """A^+ y, the minimum-norm least-squares solution, without checks."""
        raise NotImplementedError

    # -- checked public methods ----------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = A(x): (B, *in_shape) -> (B, *out_shape)."""
        self.check_signal(x)
        return self.apply(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """x = A^T y: (B, *out_shape) -> (B, *in_shape). Linear operators only."""
        self._require_linear("adjoint")
        self.check_measurements(y)
        return self.apply_adjoint(y)

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """x = A^+ y: (B, *out_shape) -> (B, *in_shape). Linear operators only."""
        self._require_linear("pseudo_inverse")
        self.check_measurements(y)
        return self.apply_pseudo_inverse(y)

    def check_signal(self, x: torch.Tensor) -> None:
        """Raise unless x is a finite tensor of shape (B, *in_shape)."""
        _check(x, "x", self.in_shape, type(self).__name__)

    def check_measurements(self, y: torch.Tensor) -> None:
        """Raise unless y is a finite tensor of shape (B, *out_shape)."""
        _check(y, "y", self.out_shape, type(self).__name__)

    def _require_linear(self, method: str) -> None:
        if not self.linear:
            raise TypeError(f"{type(self).__name__} is not linear and has no {method}")

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"


def _check(t: torch.Tensor, name: str, shape: tuple[int, ...], owner: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; received {type(t).__name__}")
    if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape:
        expected = ", ".join(["B", *map(str, shape)])
        raise ShapeError(
            f"{owner}: {name} must have shape ({expected}); received {tuple(t.shape)}"
        )
    if not torch.isfinite(t).all():
        raise NonFiniteError(f"{owner}: {name} holds NaN or infinite values")
