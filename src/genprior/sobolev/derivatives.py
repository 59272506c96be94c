"""Directional derivatives of a torch module, batched, in forward or reverse mode.

Shapes: B points, D input dimension, P outputs, K directions per point. A model maps
x (B, D) to (B, P), or to (B,) for a scalar function (then treated as P = 1), and must act
on each point independently (no batch statistics).

The two modes compute the same numbers, ``dy[b, k, p] = J_p(x_b) . v[b, k]``, at different
costs:

- forward mode pushes the K tangents through the network (one batched JVP, the primal
  computed once): cost about ``min(K, D)`` network passes, since for K > D it pushes the D
  basis vectors and contracts the full Jacobian with the directions;
- reverse mode pulls back the P output basis vectors (batched VJPs, one Jacobian row each):
  cost about ``P`` network passes, whatever K is.

``mode="auto"`` picks the smaller of the two estimates by :func:`choose_mode`, whose
constant was measured with ``benchmarks/sobolev_speed.py``.
"""

import logging
import weakref
from collections.abc import Callable

import torch
import torch.autograd.forward_ad as forward_ad
from torch.func import jvp, vjp, vmap

from genprior.errors import GenpriorError, ShapeError, check_choice

logger = logging.getLogger(__name__)

MODES = ("auto", "forward", "reverse")

# One training step (loss and parameter gradient) costs about a + b * min(K, D) in forward
# mode and c + b * P in reverse mode: the same slope b per tangent or cotangent pass, and an
# intercept a - c of about 2.5 b, since forward mode carries the primal and the tangents
# together while reverse mode shares one forward pass. Measured on a 2-core CPU with an MLP
# D=32 -> 256 -> 256 -> P and B=128 (benchmarks/sobolev_speed.py).
REVERSE_OFFSET = 2.5

Model = Callable[[torch.Tensor], torch.Tensor]


class NotDifferentiableError(GenpriorError, TypeError):
    """The model's output does not depend differentiably on its input."""


def choose_mode(outputs: int, directions: int, dim: int) -> str:
    """The cheaper mode for P = ``outputs``, K = ``directions`` and D = ``dim``.

    Reverse mode when ``P < min(K, D) + REVERSE_OFFSET``, else forward mode: the costs are
    affine in min(K, D) and in P with equal slopes (see ``REVERSE_OFFSET``). So one or two
    outputs always go reverse, and many outputs with few directions go forward.
    """
    return "reverse" if outputs < min(directions, dim) + REVERSE_OFFSET else "forward"


def directional_derivatives(
    model: Model,
    x: torch.Tensor,
    v: torch.Tensor,
    *,
    mode: str = "auto",
    create_graph: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's values and its derivatives along K directions per point.

    Args:
        model: maps x (B, D) to (B, P), or to (B,) for a scalar function.
        x: points, (B, D).
        v: directions, (B, K, D); they need not be unit vectors.
        mode: ``"forward"`` (batched JVPs), ``"reverse"`` (Jacobian rows by batched VJPs)
            or ``"auto"`` (the cheaper one by :func:`choose_mode`).
        create_graph: keep the graph so the result can be differentiated again, e.g. for the
            gradient of a loss with respect to the model's parameters.

    Returns:
        The values (B, P) or (B,), and the derivatives (B, K, P) or (B, K) for a scalar
        model: ``dy[b, k, p]`` is the derivative of output p at ``x[b]`` along ``v[b, k]``.

    Raises:
        ShapeError: when x is not (B, D), v is not (B, K, D) or the output is not (B, ...).
        NotDifferentiableError: when the output does not depend differentiably on x.
    """
    check_choice("mode", mode, MODES)
    _check_points_and_directions(x, v)
    scalar, outputs = _probe_outputs(model, x)
    chosen = choose_mode(outputs, v.shape[1], x.shape[1]) if mode == "auto" else mode
    logger.debug("directional derivatives in %s mode (P=%d, K=%d)", chosen, outputs, v.shape[1])
    if chosen == "forward":
        y, dy = _forward(model, x, v, create_graph)
    else:
        y, dy = _reverse(model, x, v, outputs, create_graph)
    if scalar:
        return y.squeeze(-1), dy.squeeze(-1)
    return y, dy


def _check_points_and_directions(x: torch.Tensor, v: torch.Tensor) -> None:
    if x.ndim != 2:
        raise ShapeError(f"x must have shape (B, D); received {tuple(x.shape)}")
    if v.ndim != 3 or v.shape[0] != x.shape[0] or v.shape[2] != x.shape[1]:
        raise ShapeError(
            f"v must have shape (B, K, D) = ({x.shape[0]}, K, {x.shape[1]}) to match x "
            f"{tuple(x.shape)}; received {tuple(v.shape)}"
        )


_OUTPUT_SIZES: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def _probe_outputs(model: Model, x: torch.Tensor) -> tuple[bool, int]:
    """Whether the model is scalar, and its number of outputs P; also checks that the
    output depends differentiably on the input (at the first point).

    The answer is remembered per model object (weakly) and input dimension, so a training
    loop pays for the probe once.
    """
    key = (x.shape[1], x.dtype, x.device)
    try:
        known = _OUTPUT_SIZES.setdefault(model, {})
    except TypeError:  # not weakly referenceable: probe every time
        known = {}
    if key not in known:
        with torch.no_grad():
            out = model(x[:1])
        if not isinstance(out, torch.Tensor) or out.ndim not in (1, 2) or out.shape[0] != 1:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeError(
                f"model must map x (B, D) to (B, P) or (B,); for B=1 it returned {shape}"
            )
        if not out.is_floating_point():
            raise NotDifferentiableError(
                f"model must return floating-point values to be differentiated; "
                f"it returned {out.dtype}"
            )
        _check_differentiable(model, x[:1])
        known[key] = (out.ndim == 1, 1 if out.ndim == 1 else out.shape[1])
    return known[key]


def _check_differentiable(model: Model, point: torch.Tensor) -> None:
    """Raise unless the model's output at one point has a gradient path to the input."""
    with torch.enable_grad():
        point = point.detach().requires_grad_(True)
        out = model(point)
        if not out.requires_grad:
            raise _not_differentiable()
        (grad,) = torch.autograd.grad(out.sum(), point, allow_unused=True)
    if grad is None:
        raise _not_differentiable()


def _as_matrix(model: Model, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out.unsqueeze(-1) if out.ndim == 1 else out


def _not_differentiable() -> NotDifferentiableError:
    return NotDifferentiableError(
        "model output does not depend differentiably on its input x (is it detached, "
        "constant, or computed through a non-differentiable step such as argmax?)"
    )


def _forward(
    model: Model, x: torch.Tensor, v: torch.Tensor, create_graph: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched JVPs: the K tangents (or the D basis vectors when K > D) in one vmap."""
    batch, k, dim = v.shape
    if k > dim:
        basis = torch.eye(dim, dtype=x.dtype, device=x.device).expand(batch, dim, dim)
        y, jac = _forward(model, x, basis, create_graph)  # jac (B, D, P)
        return y, torch.einsum("bkd,bdp->bkp", v, jac)

    def tracked(points: torch.Tensor) -> torch.Tensor:
        out = _as_matrix(model, points)
        if forward_ad.unpack_dual(out).tangent is None:
            raise _not_differentiable()
        return out

    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        return vmap(lambda t: jvp(tracked, (x,), (t,)), in_dims=1, out_dims=(None, 1))(v)


def _reverse(
    model: Model, x: torch.Tensor, v: torch.Tensor, outputs: int, create_graph: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Jacobian rows by P batched VJPs, then contracted with the directions.

    One output uses a plain backward pass; several use ``vmap`` over ``torch.func.vjp``,
    which measured faster than ``autograd.grad(is_grads_batched=True)`` for P >= 16.
    """
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        if outputs == 1:
            with torch.enable_grad():
                points = x.detach().requires_grad_(True)
                y = _as_matrix(model, points)
                if not y.requires_grad:
                    raise _not_differentiable()
                (grad,) = torch.autograd.grad(
                    y.sum(), points, create_graph=create_graph, allow_unused=True
                )
            if grad is None:
                raise _not_differentiable()
            rows = grad.unsqueeze(0)  # (1, B, D)
        else:
            y, pull_back = vjp(lambda points: _as_matrix(model, points), x)
            basis = torch.eye(outputs, dtype=y.dtype, device=y.device)
            (rows,) = vmap(pull_back)(basis.unsqueeze(1).expand(outputs, *y.shape))  # (P, B, D)
        dy = torch.einsum("pbd,bkd->bkp", rows, v)
    if not create_graph:
        y, dy = y.detach(), dy.detach()
    return y, dy
