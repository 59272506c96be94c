"""Sampling estimates of the weight distribution condition (WDC) and its range-restricted form.

Hand & Voroninski (arXiv 1705.07576) say W (n, m) satisfies the WDC with constant eps when,
for all non-zero x, y in R^m,

    || W_{+,x}^T W_{+,y} - Q_{x,y} || <= eps,
    Q_{x,y} = (pi - t) / (2 pi) I + sin(t) / (2 pi) M_{x<->y},

with W_{+,x} = diag(W x > 0) W, t the angle between x and y, and M_{x<->y} the matrix that
swaps the unit vectors of x and y and is zero on the complement of their span. Q_{x,y} is the
expectation of W_{+,x}^T W_{+,y} for i.i.d. N(0, 1/n) entries. Cocola (arXiv 2204.13599)
weakens it to the R2WDC, which asks the bound only for x, y in the range of the preceding
layers and only along directions in that range.

The exact quantifiers are in the papers; here, for each layer, we estimate

- ``wdc``: the largest spectral-norm deviation over sampled pairs (x, y) of random directions
  at angles spread over [0, pi];
- ``r2wdc``: the largest deviation over pairs x = G_{i-1}(a), y = G_{i-1}(b) (outputs of the
  preceding layers at random latents, spread over angles), measured on the span of x, y and
  the columns of the preceding layers' Jacobians at a and b.

Sampling finds lower bounds of the suprema: a small value is evidence, not proof. Each weight
matrix is first rescaled so that ||W||_F^2 = n_in (entries of variance 1/n on average): a
ReLU layer's scale does not change the range, and the conditions assume that variance.
"""

import logging
import math
from pathlib import Path

import torch

from genprior.errors import CheckpointError, ShapeError
from genprior.priors.random_relu import RandomReLUNetwork, check_widths, trial_generator

logger = logging.getLogger(__name__)

__all__ = ["check_conditions", "expected_gram", "load_weights", "random_weights"]

CONDITION_STREAM = 401


def expected_gram(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Q_{x,y} (m, m) for vectors x, y (m,): E[W_{+,x}^T W_{+,y}] for W ~ N(0, 1/n)."""
    u, v = x / x.norm(), y / y.norm()
    angle = torch.arccos(torch.clamp(u @ v, -1.0, 1.0))
    eye = torch.eye(len(x), dtype=x.dtype)
    basis = torch.stack([u, v], dim=1)  # (m, 2)
    if torch.linalg.matrix_rank(basis) < 2:
        swap = torch.outer(u, u) if angle < 1 else -torch.outer(u, u)
    else:
        swap = torch.stack([v, u], dim=1) @ torch.linalg.pinv(basis)  # u -> v, v -> u
    return (math.pi - angle) / (2 * math.pi) * eye + torch.sin(angle) / (2 * math.pi) * swap


def _deviation(
    w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, basis: torch.Tensor | None
) -> float:
    wx, wy = w * (w @ x > 0).unsqueeze(1), w * (w @ y > 0).unsqueeze(1)
    diff = wx.T @ wy - expected_gram(x, y)
    if basis is not None:
        diff = basis.T @ diff @ basis
    return torch.linalg.matrix_norm(diff, ord=2).item()


def _pair(m: int, angle: float, gen: torch.Generator, dtype: torch.dtype) -> tuple:
    x = torch.randn(m, generator=gen, dtype=dtype)
    z = torch.randn(m, generator=gen, dtype=dtype)
    x, z = x / x.norm(), z - (z @ x) * x / x.norm() ** 2
    return x, math.cos(angle) * x + math.sin(angle) * z / z.norm()


def check_conditions(
    weights: list[torch.Tensor], *, pairs: int = 200, seed: int = 0
) -> list[dict]:
    """Estimate the WDC and R2WDC deviations of every layer of one network.

    Args:
        weights: W_1, ..., W_d, each (n_i, n_{i-1}); consecutive shapes must chain.
        pairs: sampled (x, y) pairs per layer and condition.
        seed: seeds the sampling.

    Returns:
        One dict per layer: layer (1-based), n_out, n_in, wdc, r2wdc.

    Raises:
        ShapeError: for weights that are not a chain of matrices.
    """
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"pairs must be an integer >= 1; received {pairs!r}")
    layers = [_normalised(w, i) for i, w in enumerate(weights)]
    network = RandomReLUNetwork.from_weights(layers)
    k = network.latent_dim
    gen = trial_generator(seed, 0, CONDITION_STREAM)
    angles = [math.pi * (i + 0.5) / pairs for i in range(pairs)]
    rows = []
    for i, w in enumerate(layers):
        wdc = max(_deviation(w, *_pair(w.shape[1], a, gen, w.dtype), None) for a in angles)
        r2wdc = 0.0
        for angle in angles:
            a, b = _pair(k, angle, gen, w.dtype)
            r2wdc = max(r2wdc, _range_deviation(network, i, w, a, b))
        rows.append(
            {"layer": i + 1, "n_out": w.shape[0], "n_in": w.shape[1], "wdc": wdc, "r2wdc": r2wdc}
        )
        logger.info("layer %d: WDC eps >= %.4f, R2WDC eps >= %.4f", i + 1, wdc, r2wdc)
    return rows


def _range_deviation(
    network: RandomReLUNetwork, layer: int, w: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> float:
    """Deviation at x = G_{layer}(a), y = G_{layer}(b), on the span of the local ranges."""
    if layer == 0:
        return _deviation(w, a, b, None)
    head = RandomReLUNetwork.from_weights(network.weights[:layer])
    points = torch.stack([a, b]).unsqueeze(0)  # (1, 2, K)
    x, y = head.trials_forward(points)[0]
    if x.norm() == 0 or y.norm() == 0:
        return 0.0
    jac = [head.jacobian(p.view(1, -1))[0] for p in (a, b)]  # (n, K) each
    basis, _ = torch.linalg.qr(torch.cat([x[:, None], y[:, None], *jac], dim=1))
    return _deviation(w, x, y, basis)


def _normalised(w: torch.Tensor, index: int) -> torch.Tensor:
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ShapeError(f"weights[{index}] must be a matrix (n_out, n_in); received {shape}")
    w = w.detach().to(torch.float64)
    return w * math.sqrt(w.shape[1]) / w.norm().clamp_min(1e-300)


def random_weights(widths: str, networks: int, *, seed: int = 0) -> list[list[torch.Tensor]]:
    """Weights of ``networks`` random networks of widths "k-n1-...-nd", in float64."""
    try:
        parsed = [int(part) for part in str(widths).split("-")]
    except ValueError:
        raise ValueError(
            f"widths must be positive integers joined by '-', e.g. 10-250-1700; received "
            f"{widths!r}"
        ) from None
    check_widths(parsed)
    net = RandomReLUNetwork(parsed, trials=networks, seed=seed, dtype=torch.float64)
    return [[w[r] for w in net.weights] for r in range(networks)]


def _read_tensors(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(path: str | Path) -> list[torch.Tensor]:
    """W1, W2, ... from a .safetensors file or a .pt file (a list or a dict of matrices)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        tensors = _read_tensors(path)
    except Exception as error:  # torch and safetensors raise many unrelated types
        raise CheckpointError(
            f"weights file {path} is not a readable .safetensors or torch .pt file "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if isinstance(tensors, dict):
        names = sorted(tensors, key=lambda name: (len(name), name))
        tensors = [tensors[name] for name in names]
    if not isinstance(tensors, list | tuple) or not tensors:
        raise ShapeError(f"{path} must hold a list or a dict of weight matrices")
    return list(tensors)
