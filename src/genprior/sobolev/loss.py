"""The Sobolev loss: fit a model's values and its directional derivatives.

Data come as (x, y, v, dy): points x (B, D), values y (B, P), directions v (B, K, D) and the
target's derivatives along them dy (B, K, P), with ``dy[b, k, p] = grad y_p(x_b) . v[b, k]``.
A scalar target may use y (B,) and dy (B, K). The full Jacobian is the special case
v = the D basis vectors (:func:`jacobian_directions`); one or a few random unit directions
per point give the stochastic variant (Czarnecki et al., NeurIPS 2017, arXiv 1706.04859).

    loss = value_weight * mean_{b,p} (f_p(x_b) - y_bp)^2
         + derivative_weight * mean_{b,k,p} (J_p f(x_b) . v_bk - dy_bkp)^2
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from genprior.errors import NonFiniteError, ShapeError
from genprior.sobolev.derivatives import Model, directional_derivatives


@dataclass(frozen=True)
class SobolevData:
    """Values and directional derivatives of a target, checked on construction.

    Attributes:
        x: points, (B, D).
        y: values, (B, P), or (B,) for a scalar target.
        v: directions, (B, K, D); any nonzero vectors.
        dy: derivatives of the target along v, (B, K, P), or (B, K) for a scalar target.

    Raises:
        ShapeError: when the shapes do not agree.
        NonFiniteError: when any entry is NaN or infinite.
        ValueError: when a direction is the zero vector.
        TypeError: when a field is not a floating-point tensor.
    """

    x: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor
    dy: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("x", "y", "v", "dy"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                received = value.dtype if isinstance(value, torch.Tensor) else type(value)
                raise TypeError(f"{name} must be a floating-point tensor; received {received}")
        _check_shapes(self.x, self.y, self.v, self.dy)
        for name in ("x", "y", "v", "dy"):
            bad = ~torch.isfinite(getattr(self, name))
            if bad.any():
                where = tuple(int(i) for i in bad.nonzero()[0])
                raise NonFiniteError(
                    f"{name} must be finite; {int(bad.sum())} entries are NaN or infinite "
                    f"(first at index {where})"
                )
        zero = self.v.abs().amax(dim=2) == 0  # (B, K)
        if zero.any():
            b, k = (int(i) for i in zero.nonzero()[0])
            raise ValueError(
                f"v must hold nonzero directions; v[{b}, {k}] and {int(zero.sum()) - 1} "
                f"others are zero vectors"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def scalar(self) -> bool:
        """Whether the target is scalar (y (B,), dy (B, K))."""
        return self.y.ndim == 1

    def subset(self, index: torch.Tensor | slice) -> "SobolevData":
        """The points selected by ``index`` (a slice, or an index or boolean tensor)."""
        return SobolevData(self.x[index], self.y[index], self.v[index], self.dy[index])


def _check_shapes(x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, dy: torch.Tensor) -> None:
    if x.ndim != 2:
        raise ShapeError(f"x must have shape (B, D); received {tuple(x.shape)}")
    batch, dim = x.shape
    if y.ndim not in (1, 2) or y.shape[0] != batch:
        raise ShapeError(
            f"y must have shape (B, P) or (B,) with B={batch} as in x; received {tuple(y.shape)}"
        )
    if v.ndim != 3 or v.shape[0] != batch or v.shape[2] != dim:
        raise ShapeError(
            f"v must have shape (B, K, D) = ({batch}, K, {dim}) to match x {tuple(x.shape)}; "
            f"received {tuple(v.shape)}"
        )
    expected = (batch, v.shape[1]) + tuple(y.shape[1:])
    if tuple(dy.shape) != expected:
        raise ShapeError(
            f"dy must have shape (B, K{', P' if y.ndim == 2 else ''}) = {expected} to match "
            f"x {tuple(x.shape)}, v {tuple(v.shape)} and y {tuple(y.shape)}; "
            f"received {tuple(dy.shape)}"
        )


def random_directions(
    batch: int,
    directions: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Independent directions uniform on the unit sphere, (B, K, D)."""
    if directions < 1 or dim < 1:
        raise ValueError(f"directions and dim must be >= 1; received {directions}, {dim}")
    while True:
        v = torch.randn(batch, directions, dim, generator=generator, dtype=dtype)
        norms = v.norm(dim=2, keepdim=True)
        if bool((norms > 0).all()):
            return v / norms


def jacobian_directions(
    batch: int, dim: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The D basis vectors at every point, (B, D, D): derivatives along them form the Jacobian."""
    return torch.eye(dim, dtype=dtype).expand(batch, dim, dim).clone()


def make_sobolev_data(
    target: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    directions: int | None = 1,
    generator: torch.Generator | None = None,
    mode: str = "auto",
) -> SobolevData:
    """Values and directional derivatives of a differentiable ``target`` at the points ``x``.

    Args:
        target: a torch function (or module) mapping x (B, D) to (B, P) or (B,).
        x: points, (B, D).
        directions: K random unit directions per point (the stochastic variant), or None for
            the full Jacobian (the D basis vectors).
        generator: random source of the directions.
        mode: how the derivatives are computed (see :func:`directional_derivatives`).

    Returns:
        The checked data; nothing in it requires grad.
    """
    if x.ndim != 2:
        raise ShapeError(f"x must have shape (B, D); received {tuple(x.shape)}")
    if directions is not None and (not isinstance(directions, int) or directions < 1):
        raise ValueError(f"directions must be a positive int or None; received {directions!r}")
    x = x.detach()
    batch, dim = x.shape
    if directions is None:
        v = jacobian_directions(batch, dim, dtype=x.dtype)
    else:
        v = random_directions(batch, directions, dim, generator=generator, dtype=x.dtype)
    y, dy = directional_derivatives(target, x, v, mode=mode, create_graph=False)
    return SobolevData(x, y.detach().contiguous(), v, dy.detach().contiguous())


class SobolevTerms(NamedTuple):
    """The two mean squared errors of the Sobolev loss (scalar tensors)."""

    value: torch.Tensor
    derivative: torch.Tensor


def sobolev_terms(
    model: Model,
    data: "SobolevData | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]",
    *,
    mode: str = "auto",
) -> SobolevTerms:
    """Mean squared errors of the model's values and of its directional derivatives.

    Args:
        model: maps x (B, D) to (B, P) like y, or to (B,) for a scalar target.
        data: a :class:`SobolevData` or a tuple (x, y, v, dy), checked as one.
        mode: ``"auto"``, ``"forward"`` or ``"reverse"`` (see :func:`directional_derivatives`).

    Returns:
        ``value = mean (f(x) - y)^2`` and ``derivative = mean (J f(x) v - dy)^2``, both
        differentiable with respect to the model's parameters.
    """
    if not isinstance(data, SobolevData):
        data = SobolevData(*data)
    y_model, dy_model = directional_derivatives(model, data.x, data.v, mode=mode)
    if y_model.shape != data.y.shape:
        raise ShapeError(
            f"model output must have the shape of y, {tuple(data.y.shape)}; "
            f"received {tuple(y_model.shape)}"
        )
    value = (y_model - data.y).pow(2).mean()
    derivative = (dy_model - data.dy).pow(2).mean()
    return SobolevTerms(value, derivative)


def sobolev_loss(
    model: Model,
    data: "SobolevData | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]",
    *,
    value_weight: float = 1.0,
    derivative_weight: float = 1.0,
    mode: str = "auto",
) -> torch.Tensor:
    """``value_weight * value MSE + derivative_weight * derivative MSE`` (a scalar tensor).

    Args:
        model: maps x (B, D) to (B, P) like y, or to (B,) for a scalar target.
        data: a :class:`SobolevData` or a tuple (x, y, v, dy).
        value_weight: weight of the value term (>= 0).
        derivative_weight: weight of the derivative term (>= 0); 0 gives plain regression.
        mode: ``"auto"``, ``"forward"`` or ``"reverse"``.

    Raises:
        NonFiniteError: when the loss is NaN or infinite (the model's output or derivative
            overflowed).
    """
    for name, weight in (("value_weight", value_weight), ("derivative_weight", derivative_weight)):
        if not (weight >= 0 and weight < float("inf")):
            raise ValueError(f"{name} must be finite and >= 0; received {weight!r}")
    terms = sobolev_terms(model, data, mode=mode)
    loss = value_weight * terms.value + derivative_weight * terms.derivative
    if not torch.isfinite(loss):
        raise NonFiniteError(
            f"the Sobolev loss is not finite (value term {float(terms.value):.3g}, derivative "
            f"term {float(terms.derivative):.3g}); the model's output or derivatives overflowed"
        )
    return loss
