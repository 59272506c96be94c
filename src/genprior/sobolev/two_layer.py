"""The two-layer ReLU setting of Sobolev training's convergence theory.

Cocola & Hand ("Global Convergence of Sobolev Training for Overparameterized Neural
Networks", arXiv 2006.07928) prove that gradient flow from a random start drives an
overparameterized two-layer ReLU network to fit any values and any directional derivatives
when the inputs are separated. The formulation here is our own reading, not the paper's
exact parameterization (which we could not check):

    f(x) = (1/sqrt(m)) sum_r a_r relu(w_r . x),   a_r = +-1 fixed,  only W (m, D) trained,
    grad f(x) . v = (1/sqrt(m)) sum_r a_r 1[w_r . x > 0] (w_r . v),
    L(W) = 1/2 sum_i (f(x_i) - y_i)^2 + 1/2 sum_{i,k} (grad f(x_i) . v_ik - z_ik)^2.

Since relu'' = 0 almost everywhere, the derivative term's gradient in w_r is
``a_r 1[w_r . x_i > 0] v_ik / sqrt(m)`` times its residual. The NTK-style Gram matrix
(our formulation) stacks, for each residual, its gradient in W as one feature row, and
H = J J^T (n(1+K) x n(1+K)); its smallest eigenvalue at initialisation controls the rate.

Inputs lie on the unit sphere S^{D-1}. Since f is positively homogeneous,
``grad f(x) . x = f(x)``: a derivative along x itself repeats the value, so the directions
used here are tangent to the sphere (orthogonal to x).
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import betainc

from genprior.errors import NonFiniteError, ShapeError

logger = logging.getLogger(__name__)


class TwoLayerReLU(torch.nn.Module):
    """f(x) = (1/sqrt(m)) sum_r a_r relu(w_r . x) with fixed random signs a_r.

    Args:
        dim: input dimension D.
        width: number of hidden units m.
        seed: seeds W ~ N(0, I) and the signs a_r = +-1.
        dtype: parameter dtype (float64 by default, to follow the loss down to 1e-12).
    """

    def __init__(
        self, dim: int, width: int, *, seed: int = 0, dtype: torch.dtype = torch.float64
    ) -> None:
        super().__init__()
        if dim < 1 or width < 1:
            raise ValueError(f"dim and width must be >= 1; received {dim}, {width}")
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(width, dim, generator=generator, dtype=dtype))
        signs = torch.randint(0, 2, (width,), generator=generator).to(dtype) * 2 - 1
        self.register_buffer("signs", signs)

    @property
    def width(self) -> int:
        """The number of hidden units m."""
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Values at x (B, D): (B,)."""
        return torch.relu(x @ self.weight.T) @ self.signs / math.sqrt(self.width)

    def directional_derivative(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The closed form ``(1/sqrt(m)) sum_r a_r 1[w_r . x > 0] w_r . v``.

        Args:
            x: points, (B, D).
            v: directions, (B, K, D).

        Returns:
            (B, K).
        """
        active = (x @ self.weight.T > 0).to(x.dtype)  # (B, m)
        slopes = v @ self.weight.T  # (B, K, m)
        return torch.einsum("bm,bkm,m->bk", active, slopes, self.signs) / math.sqrt(self.width)

    def residuals(
        self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, dy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Value residuals (B,) and derivative residuals (B, K)."""
        return self(x) - y, self.directional_derivative(x, v) - dy

    def loss_gradient(
        self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, dy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Residuals and the closed-form gradient of L(W) (half sums of squares).

        Returns:
            Value residuals (B,), derivative residuals (B, K) and dL/dW (m, D).
        """
        with torch.no_grad():
            active = (x @ self.weight.T > 0).to(x.dtype)  # (B, m)
            value_res = torch.relu(x @ self.weight.T) @ self.signs / math.sqrt(self.width) - y
            slopes = v @ self.weight.T  # (B, K, m)
            derivative = torch.einsum("bm,bkm,m->bk", active, slopes, self.signs)
            derivative_res = derivative / math.sqrt(self.width) - dy
            # dL/dw_r = a_r/sqrt(m) sum_i 1[w_r.x_i > 0] (r_i x_i + sum_k s_ik v_ik)
            pulled = value_res[:, None] * x + torch.einsum("bk,bkd->bd", derivative_res, v)
            grad = (active.T @ pulled) * self.signs[:, None] / math.sqrt(self.width)
        return value_res, derivative_res, grad


# Sampling separated points on the sphere ------------------------------------------------


def min_separation(x: torch.Tensor) -> float:
    """The smallest Euclidean distance between two of the points x (n, D)."""
    if x.shape[0] < 2:
        return math.inf
    distances = torch.cdist(x, x)
    distances.fill_diagonal_(math.inf)
    return float(distances.min())


def separation_is_impossible(n: int, dim: int, separation: float) -> str | None:
    """A reason why n points on S^{D-1} cannot be ``separation`` apart, or None.

    Two necessary conditions: the mean squared pairwise distance of n unit vectors is at
    most 2n/(n-1), and the caps of angular radius theta/2 around the points, with
    theta = 2 arcsin(separation/2), must not overlap, so together they cover at most the
    sphere. Passing both does not prove the separation can be reached.
    """
    if n < 2:
        return None
    if separation > 2:
        return f"two unit vectors are at most 2 apart, below separation={separation}"
    if separation**2 > 2 * n / (n - 1):
        return (
            f"n={n} unit vectors have mean squared pairwise distance at most 2n/(n-1) = "
            f"{2 * n / (n - 1):.3f} < separation^2 = {separation**2:.3f}"
        )
    half_angle = math.asin(separation / 2)  # angular radius of each cap
    if dim >= 2 and half_angle < math.pi / 2:
        cap = 0.5 * betainc((dim - 1) / 2, 0.5, math.sin(half_angle) ** 2)
        if n * cap > 1:
            return (
                f"n={n} disjoint caps of angular radius {half_angle:.3f} would cover "
                f"{n * cap:.2f} times the sphere S^{dim - 1}"
            )
    return None


def sample_separated_sphere(
    n: int,
    dim: int,
    separation: float,
    *,
    seed: int = 0,
    tight: bool = False,
    max_draws: int = 100_000,
) -> torch.Tensor:
    """n points uniform on S^{D-1}, each pair at least ``separation`` apart (float64).

    Points are drawn one by one and kept when far enough from those kept so far; the result
    is checked before it is returned.

    Args:
        n: number of points.
        dim: dimension D of the ambient space.
        separation: the smallest allowed Euclidean distance between two points.
        seed: random seed.
        tight: place the last point exactly ``separation`` away from the first (in a random
            tangent direction), so the minimum distance equals ``separation`` instead of
            typically exceeding it.
        max_draws: random draws tried before giving up.

    Raises:
        ValueError: when the separation is provably impossible (see
            :func:`separation_is_impossible`), or not reached within ``max_draws`` draws.
    """
    if n < 1 or dim < 1:
        raise ValueError(f"n and dim must be >= 1; received n={n}, dim={dim}")
    if not separation >= 0:
        raise ValueError(f"separation must be >= 0; received {separation!r}")
    reason = separation_is_impossible(n, dim, separation)
    if reason is not None:
        raise ValueError(f"separation={separation} is impossible for n={n} in D={dim}: {reason}")
    rng = np.random.default_rng(seed)
    kept = np.empty((n, dim))
    count, draws = 0, 0
    while count < n:
        block = rng.standard_normal((256, dim))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        for point in block:
            draws += 1
            if count == 0 or np.linalg.norm(kept[:count] - point, axis=1).min() >= separation:
                kept[count] = point
                count += 1
                if count == n:
                    break
        if draws >= max_draws and count < n:
            raise ValueError(
                f"separation={separation}: found only {count} of n={n} points on S^{dim - 1} "
                f"in {draws} random draws; lower separation or n, or raise max_draws"
            )
    if tight and n >= 2:
        kept[-1] = _point_at_distance(kept, separation, rng, max_draws)
    x = torch.from_numpy(kept)
    if min_separation(x) < separation * (1 - 1e-9):  # an internal invariant
        raise RuntimeError("sample_separated_sphere returned points closer than requested")
    return x


def _point_at_distance(
    kept: np.ndarray, separation: float, rng: np.random.Generator, max_draws: int
) -> np.ndarray:
    """A unit vector exactly ``separation`` from kept[0] and at least that from kept[1:-1]."""
    angle = 2 * math.asin(min(separation / 2, 1.0))
    for _ in range(max_draws):
        tangent = rng.standard_normal(kept.shape[1])
        tangent -= (tangent @ kept[0]) * kept[0]
        norm = np.linalg.norm(tangent)
        if norm == 0:
            continue
        point = math.cos(angle) * kept[0] + math.sin(angle) * tangent / norm
        others = kept[1:-1]
        if len(others) == 0 or np.linalg.norm(others - point, axis=1).min() >= separation:
            return point
    raise ValueError(
        f"separation={separation}: could not place a point exactly that far from the first "
        f"in {max_draws} draws; lower separation or n"
    )


def tangent_directions(
    x: torch.Tensor, directions: int = 1, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random unit directions tangent to the sphere at each point, (n, K, D)."""
    if x.ndim != 2:
        raise ShapeError(f"x must have shape (n, D); received {tuple(x.shape)}")
    v = torch.randn(x.shape[0], directions, x.shape[1], generator=generator, dtype=x.dtype)
    v = v - (v @ x.unsqueeze(-1)) * x.unsqueeze(1)  # remove the radial part
    return v / v.norm(dim=2, keepdim=True)


# Gram matrices ------------------------------------------------------------------------


def _features(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Stacked value and derivative directions u, (n(1+K), D): x_i first, then v_ik."""
    return torch.cat([x, v.reshape(-1, x.shape[1])])


def _owners(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """For each feature row, the point it belongs to, (n(1+K),)."""
    n, k = v.shape[:2]
    points = torch.arange(n)
    return torch.cat([points, points.repeat_interleave(k)])


def gram_matrix(model: TwoLayerReLU, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of the residuals' gradients in W at the model's current weights.

    Entry (s, t) = (1/m) sum_r 1[w_r.x_i > 0] 1[w_r.x_j > 0] (u_s . u_t), where residual s
    belongs to point i with feature u_s = x_i (value) or v_ik (derivative). Shape
    (n(1+K), n(1+K)), ordered as all values, then the derivatives point by point.
    """
    with torch.no_grad():
        active = (x @ model.weight.T > 0).to(x.dtype)[_owners(x, v)]  # (n(1+K), m)
        u = _features(x, v)
        return (active @ active.T) / model.width * (u @ u.T)


def limit_gram_matrix(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The infinite-width limit of :func:`gram_matrix` for w ~ N(0, I).

    E[1[w.x_i > 0] 1[w.x_j > 0]] = (pi - angle(x_i, x_j)) / (2 pi) for unit x_i, x_j.
    """
    owners = _owners(x, v)
    cosine = (x @ x.T).clamp(-1, 1)[owners][:, owners]
    u = _features(x, v)
    return (math.pi - torch.arccos(cosine)) / (2 * math.pi) * (u @ u.T)


def smallest_eigenvalue(matrix: torch.Tensor) -> float:
    """The smallest eigenvalue of a symmetric matrix."""
    return float(torch.linalg.eigvalsh(matrix.double())[0])


# Gradient descent as discretised gradient flow ----------------------------------------


@dataclass
class FlowResult:
    """Losses along a gradient-descent run.

    Attributes:
        steps: the iterations at which losses were recorded (always includes 0 and the last).
        value_loss: mean squared value residual at each recorded step.
        derivative_loss: mean squared derivative residual at each recorded step.
        step_size: the step size used.
        converged: whether both losses fell below the tolerance.
    """

    steps: list[int]
    value_loss: list[float]
    derivative_loss: list[float]
    step_size: float
    converged: bool


def gradient_flow(
    model: TwoLayerReLU,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    dy: torch.Tensor,
    *,
    steps: int,
    step_size: float | None = None,
    tol: float = 0.0,
    record_every: int = 10,
    callback: Callable[[int], None] | None = None,
) -> FlowResult:
    """Full-batch gradient descent on L(W), the Euler discretisation of gradient flow.

    Args:
        model: the network; its W is updated in place.
        x: points (n, D); y: values (n,); v: directions (n, K, D); dy: derivatives (n, K).
        steps: maximum number of iterations.
        step_size: the Euler step; None picks 1 / lambda_max of the Gram matrix at the start,
            which keeps the linearised dynamics stable (any step below 2 / lambda_max does).
        tol: stop once both mean squared residuals are below it (0: run every step).
        record_every: record the losses every this many steps.
        callback: called with the number of steps done, every ``record_every`` steps.

    Raises:
        NonFiniteError: when the losses blow up (step too large).
    """
    if step_size is None:
        step_size = 1.0 / float(torch.linalg.eigvalsh(gram_matrix(model, x, v))[-1])
    result = FlowResult([], [], [], step_size, False)
    for step in range(steps + 1):
        value_res, derivative_res, grad = model.loss_gradient(x, y, v, dy)
        value_loss = float(value_res.pow(2).mean())
        derivative_loss = float(derivative_res.pow(2).mean())
        done = value_loss < tol and derivative_loss < tol
        if step % record_every == 0 or step == steps or done:
            result.steps.append(step)
            result.value_loss.append(value_loss)
            result.derivative_loss.append(derivative_loss)
            if callback is not None and step % record_every == 0:
                callback(step)
        if not math.isfinite(value_loss + derivative_loss):
            raise NonFiniteError(
                f"gradient descent diverged at step {step} with step_size={step_size:.3g}; "
                f"use a smaller step_size"
            )
        if done:
            result.converged = True
            break
        if step < steps:
            with torch.no_grad():
                model.weight -= step_size * grad
    logger.debug(
        "width %d: %d steps, value %.3g, derivative %.3g",
        model.width,
        result.steps[-1],
        result.value_loss[-1],
        result.derivative_loss[-1],
    )
    return result
