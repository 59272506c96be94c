"""Rank-one spiked matrix models with a generative prior, and their classical baselines.

Cocola, Hand & Voroninski (NeurIPS 2020, arXiv 2006.07953) estimate a spike y* = G(x*) from

- Wishart: N samples x_i = u_i y* + sigma z_i (u_i ~ N(0, 1), z_i ~ N(0, I_n)), through
  M = X^T X / N - sigma^2 I, with X (N, n) the samples as rows;
- Wigner: Y = y* y*^T + nu H, with H a GOE matrix, (W + W^T) / sqrt(2n) for W (n, n) i.i.d.
  N(0, 1),

by minimising f(x) = 1/4 ||G(x) G(x)^T - M||_F^2 with gradient descent (see
:mod:`genprior.solvers.negation`). The baselines are the top eigenvector of M (spectral) and
sparse PCA by the truncated power method (Yuan & Zhang, JMLR 2013). Both return unit vectors
(the experiments' spikes have norm 1) and cannot tell y* from -y*, so their errors are taken up
to sign; G(x) >= 0 fixes the sign of the generative estimate.

Shapes: R trials, S starts, N samples (Wishart), n = the spike's length (the network's output).
"""

import logging
import math
import time
from collections.abc import Callable, Sequence

import torch

from genprior.errors import NonFiniteError, ShapeError, check_choice
from genprior.priors.random_relu import RandomReLUNetwork, trial_generator
from genprior.solvers.negation import (
    NEGATION,
    DescentResult,
    Objective,
    check_count,
    check_positive,
    descend,
    finish,
    point_masks,
    starts,
    tile_points,
    tile_starts,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SpikedDescent",
    "SpikedMatrix",
    "SpikedObjective",
    "StackedWigner",
    "StackedWishart",
    "WishartSamples",
    "goe",
    "sign_free_error",
    "spectral_estimate",
    "spiked_wigner",
    "spiked_wigner_points",
    "spiked_wishart",
    "spiked_wishart_points",
    "truncated_power_method",
]

NOISE_STREAM = 201  # trial_generator stream of the spiked models' noise
SYMMETRY_TOL = 1e-6


class SpikedMatrix:
    """Symmetric data matrices M (R, n, n), e.g. a spiked Wigner matrix Y.

    Args:
        matrix: (R, n, n), symmetric (max |M - M^T| <= 1e-6 max |M|) and finite.

    Raises:
        ShapeError: unless matrix is (R, n, n).
        ValueError: for a matrix that is not symmetric.
        NonFiniteError: for NaN or inf entries.
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 3:
            shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix)
            raise ShapeError(f"matrix must have shape (R, n, n); received {shape}")
        if matrix.shape[1] != matrix.shape[2]:
            raise ShapeError(f"matrix must be square, (R, n, n); received {tuple(matrix.shape)}")
        if not torch.isfinite(matrix).all():
            raise NonFiniteError("matrix holds NaN or infinite values")
        asym = (matrix - matrix.transpose(1, 2)).abs().amax().item()
        scale = matrix.abs().amax().item()
        if asym > SYMMETRY_TOL * max(scale, 1e-30):
            raise ValueError(
                "the Wigner model needs a symmetric matrix; received one with "
                f"max |M - M^T| = {asym:.3g} (max |M| = {scale:.3g}); symmetrise it, e.g. "
                "(M + M^T) / 2"
            )
        self.matrix = matrix

    @property
    def size(self) -> int:
        """n."""
        return self.matrix.shape[-1]

    @property
    def trials(self) -> int:
        """R."""
        return self.matrix.shape[0]

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """M v for v (R, S, n) -> (R, S, n)."""
        return torch.bmm(v, self.matrix)  # M symmetric: v M = (M v^T)^T

    def frobenius_sq(self) -> torch.Tensor:
        """||M||_F^2, (R,)."""
        return self.matrix.pow(2).sum((1, 2))

    def subset(self, index: torch.Tensor) -> "SpikedMatrix":
        """The trials ``index`` only (no symmetry re-check)."""
        data = SpikedMatrix.__new__(SpikedMatrix)
        data.matrix = self.matrix[index]
        return data

    def dense(self) -> torch.Tensor:
        """M, (R, n, n)."""
        return self.matrix


class WishartSamples:
    """M = X^T X / N - sigma^2 I kept in factored form: products cost O(N n), not O(n^2).

    Args:
        samples: X, (R, N, n), one sample per row.
        sigma: the noise level, finite and >= 0.
    """

    def __init__(self, samples: torch.Tensor, sigma: float) -> None:
        if not isinstance(samples, torch.Tensor) or samples.ndim != 3:
            shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples)
            raise ShapeError(f"samples must have shape (R, N, n); received {shape}")
        if not torch.isfinite(samples).all():
            raise NonFiniteError("samples hold NaN or infinite values")
        self.samples = samples
        self.sigma = check_positive("sigma", sigma, 0.0)

    @property
    def size(self) -> int:
        """n."""
        return self.samples.shape[-1]

    @property
    def trials(self) -> int:
        """R."""
        return self.samples.shape[0]

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """M v for v (R, S, n) -> (R, S, n)."""
        n_samples = self.samples.shape[1]
        xv = torch.bmm(v, self.samples.transpose(1, 2))  # (R, S, N)
        return torch.bmm(xv, self.samples) / n_samples - self.sigma**2 * v

    def frobenius_sq(self) -> torch.Tensor:
        """||M||_F^2 = ||X X^T||_F^2 / N^2 - 2 sigma^2 ||X||_F^2 / N + sigma^4 n, (R,)."""
        n_samples = self.samples.shape[1]
        gram = torch.bmm(self.samples, self.samples.transpose(1, 2))  # (R, N, N)
        trace = self.samples.pow(2).sum((1, 2))
        return (
            gram.pow(2).sum((1, 2)) / n_samples**2
            - 2 * self.sigma**2 * trace / n_samples
            + self.sigma**4 * self.size
        )

    def subset(self, index: torch.Tensor) -> "WishartSamples":
        """The trials ``index`` only."""
        return WishartSamples(self.samples[index], self.sigma)

    def dense(self) -> torch.Tensor:
        """M, (R, n, n)."""
        n_samples = self.samples.shape[1]
        eye = torch.eye(self.size, dtype=self.samples.dtype)
        xtx = torch.bmm(self.samples.transpose(1, 2), self.samples)
        return xtx / n_samples - self.sigma**2 * eye


class StackedWigner:
    """P spiked Wigner points sharing each trial's spike and noise: M_p = y y^T + nu_p H.

    Kept as y (R, n), H (R, n, n) and nu (P,), so a product with the S start columns of all
    points reads H once.

    Args:
        spike: y, (R, n).
        noise: H, (R, n, n), symmetric (e.g. from :func:`goe`).
        nus: the P noise levels, finite and >= 0.
    """

    def __init__(self, spike: torch.Tensor, noise: torch.Tensor, nus: torch.Tensor) -> None:
        _check_spike(spike)
        SpikedMatrix(noise)  # checks shape, values and symmetry
        if noise.shape[:2] != spike.shape:
            raise ShapeError(
                f"noise must have shape (R, n, n) = {(*spike.shape, spike.shape[1])} to match "
                f"the spikes; received {tuple(noise.shape)}"
            )
        nus = torch.as_tensor(nus, dtype=spike.dtype)
        if nus.ndim != 1 or not len(nus) or not (torch.isfinite(nus).all() and (nus >= 0).all()):
            raise ValueError(f"nus must be a non-empty list of numbers >= 0; received {nus}")
        self.spike, self.noise, self.nus = spike, noise, nus

    @property
    def size(self) -> int:
        """n."""
        return self.spike.shape[1]

    @property
    def trials(self) -> int:
        """R."""
        return self.spike.shape[0]

    @property
    def points(self) -> int:
        """P."""
        return len(self.nus)

    def matvec(self, v: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """M_{points[r, s]} v_{r, s} for v (R, S, n) and points (R or 1, S) -> (R, S, n)."""
        along = torch.bmm(v, self.spike.unsqueeze(2))  # (R, S, 1)
        nus = self.nus[points].unsqueeze(-1)  # (R or 1, S, 1)
        return along * self.spike.unsqueeze(1) + nus * torch.bmm(v, self.noise)

    def product(self, q: torch.Tensor) -> torch.Tensor:
        """M_p q_p for blocks q (R, P, n, b) of every point -> (R, P, n, b); H is read once."""
        n_trials, n_points, n, width = q.shape
        columns = q.permute(0, 2, 1, 3).reshape(n_trials, n, n_points * width)
        hq = torch.bmm(self.noise, columns).view(n_trials, n, n_points, width).transpose(1, 2)
        along = torch.einsum("rn,rpnb->rpb", self.spike, q).unsqueeze(2)  # (R, P, 1, b)
        return self.spike[:, None, :, None] * along + self.nus.view(1, -1, 1, 1) * hq

    def frobenius_sq(self) -> torch.Tensor:
        """||M_p||_F^2 = ||y||^4 + 2 nu_p y^T H y + nu_p^2 ||H||_F^2, (R, P)."""
        yy = self.spike.pow(2).sum(-1, keepdim=True)  # (R, 1)
        yhy = torch.bmm(self.spike.unsqueeze(1), torch.bmm(self.noise, self.spike.unsqueeze(2)))
        hh = self.noise.pow(2).sum((1, 2)).unsqueeze(1)
        return yy.pow(2) + 2 * self.nus * yhy[:, 0] + self.nus.pow(2) * hh

    def subset(self, index: torch.Tensor) -> "StackedWigner":
        """The trials ``index`` only."""
        data = StackedWigner.__new__(StackedWigner)
        data.spike, data.noise, data.nus = self.spike[index], self.noise[index], self.nus
        return data

    def point(self, p: int) -> SpikedMatrix:
        """Point p's matrices M_p (R, n, n)."""
        data = SpikedMatrix.__new__(SpikedMatrix)
        outer = torch.einsum("ri,rj->rij", self.spike, self.spike)
        data.matrix = outer + self.nus[p] * self.noise
        return data


class StackedWishart:
    """P spiked Wishart points sharing each trial's samples: point p uses the first N_p.

    Args:
        samples: X, (R, N, n), one sample per row, N = max(counts).
        sigma: the noise level, finite and >= 0.
        counts: the P sample counts N_p in 1..N.
    """

    def __init__(self, samples: torch.Tensor, sigma: float, counts: list[int]) -> None:
        self.whole = WishartSamples(samples, sigma)
        counts = [check_count(f"counts[{i}]", c) for i, c in enumerate(counts)]
        if not counts or max(counts) > samples.shape[1]:
            raise ValueError(
                f"counts must be a non-empty list of integers in 1..{samples.shape[1]} (the "
                f"samples held); received {counts}"
            )
        self.counts = torch.tensor(counts)

    @property
    def size(self) -> int:
        """n."""
        return self.whole.size

    @property
    def trials(self) -> int:
        """R."""
        return self.whole.trials

    @property
    def points(self) -> int:
        """P."""
        return len(self.counts)

    def matvec(self, v: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """M_{points[r, s]} v_{r, s} for v (R, S, n) and points (R or 1, S) -> (R, S, n).

        The samples go in blocks of rows [a, 2a); a block only meets the starts whose point
        uses some of its rows, so a start costs O(N_p n), not O(max N n).
        """
        x, counts = self.whole.samples, self.counts[points]  # (R or 1, S)
        out = -(self.whole.sigma**2) * v
        start = 0
        while start < x.shape[1]:
            stop = min(x.shape[1], max(2 * start, 32))
            need = (counts > start).any(dim=0).nonzero().squeeze(1)  # starts using the block
            if need.numel() == 0:
                break
            block, used = x[:, start:stop], counts[:, need].unsqueeze(-1)  # (R or 1, S', 1)
            rows = torch.arange(start, stop)
            xv = torch.bmm(v[:, need], block.transpose(1, 2)) * ((rows < used) / used)
            out[:, need] += torch.bmm(xv.to(v.dtype), block)
            start = stop
        return out

    def frobenius_sq(self) -> torch.Tensor:
        """||M_p||_F^2 from prefix sums of X X^T, (R, P) (see WishartSamples)."""
        x, sigma, last = self.whole.samples, self.whole.sigma, self.counts - 1
        gram = torch.bmm(x, x.transpose(1, 2)).pow(2).cumsum(1).cumsum(2)  # (R, N, N)
        trace = x.pow(2).sum(-1).cumsum(1)  # (R, N)
        n_samples = self.counts.to(x.dtype)
        return (
            gram[:, last, last] / n_samples**2
            - 2 * sigma**2 * trace[:, last] / n_samples
            + sigma**4 * self.size
        )

    def subset(self, index: torch.Tensor) -> "StackedWishart":
        """The trials ``index`` only."""
        data = StackedWishart.__new__(StackedWishart)
        data.whole, data.counts = self.whole.subset(index), self.counts
        return data

    def point(self, p: int) -> WishartSamples:
        """Point p's samples, the first N_p rows."""
        return WishartSamples(self.whole.samples[:, : int(self.counts[p])], self.whole.sigma)


SpikedData = SpikedMatrix | WishartSamples
StackedData = StackedWigner | StackedWishart


def goe(
    n: int, trials: int = 1, *, seed: int = 0, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """GOE matrices H = (W + W^T) / sqrt(2n), W with i.i.d. N(0, 1) entries: (R, n, n).

    Off-diagonal entries have variance 1/n, diagonal ones 2/n; the spectrum fills [-2, 2].
    (The authors' released code adds W^T to itself, which is not symmetric.)
    """
    n = check_count("n", n)
    trials = check_count("trials", trials)
    dtype = dtype or torch.get_default_dtype()
    out = torch.empty(trials, n, n, dtype=dtype)
    for r in range(trials):
        w = torch.randn(n, n, generator=trial_generator(seed, r, NOISE_STREAM), dtype=dtype)
        out[r] = (w + w.T) / math.sqrt(2 * n)
    return out


def spiked_wigner(spike: torch.Tensor, nu: float, *, seed: int = 0) -> SpikedMatrix:
    """Y = y y^T + nu H per trial, for spikes y (R, n); H from :func:`goe`."""
    _check_spike(spike)
    nu = check_positive("nu", nu, 0.0)
    n_trials, n = spike.shape
    y = torch.einsum("ri,rj->rij", spike, spike)  # (R, n, n)
    if nu > 0:
        y = y + nu * goe(n, n_trials, seed=seed, dtype=spike.dtype)
    return SpikedMatrix(y)


def spiked_wigner_points(spike: torch.Tensor, nus: list[float], *, seed: int = 0) -> StackedWigner:
    """P Wigner points sharing each trial's spike y (R, n) and GOE noise: M_p = y y^T + nu_p H."""
    _check_spike(spike)
    n_trials, n = spike.shape
    return StackedWigner(spike, goe(n, n_trials, seed=seed, dtype=spike.dtype), nus)


def spiked_wishart_points(
    spike: torch.Tensor, counts: list[int], sigma: float = 1.0, *, seed: int = 0
) -> StackedWishart:
    """P Wishart points sharing each trial's samples x_i = u_i y + sigma z_i; point p has
    the first counts[p] of them."""
    if not isinstance(counts, list | tuple) or not counts:
        raise ValueError(f"counts must be a non-empty list of sample counts; received {counts!r}")
    samples = spiked_wishart(spike, max(counts), sigma, seed=seed).samples
    return StackedWishart(samples, sigma, counts)


def spiked_wishart(
    spike: torch.Tensor, n_samples: int, sigma: float = 1.0, *, seed: int = 0
) -> WishartSamples:
    """N samples x_i = u_i y + sigma z_i per trial, for spikes y (R, n)."""
    _check_spike(spike)
    n_samples = check_count("n_samples", n_samples)
    sigma = check_positive("sigma", sigma, 0.0)
    n_trials, n = spike.shape
    rows = []
    for r in range(n_trials):
        gen = trial_generator(seed, r, NOISE_STREAM)
        u = torch.randn(n_samples, 1, generator=gen, dtype=spike.dtype)
        z = torch.randn(n_samples, n, generator=gen, dtype=spike.dtype)
        rows.append(u * spike[r] + sigma * z)
    return WishartSamples(torch.stack(rows), sigma)


def _check_spike(spike: torch.Tensor) -> None:
    if not isinstance(spike, torch.Tensor) or spike.ndim != 2:
        shape = tuple(spike.shape) if isinstance(spike, torch.Tensor) else type(spike).__name__
        raise ShapeError(f"spike must have shape (R, n); received {shape}")
    if not torch.isfinite(spike).all():
        raise NonFiniteError("spike holds NaN or infinite values")


class SpikedObjective(Objective):
    """f(x) = 1/4 ||G(x) G(x)^T - M||_F^2; gradient in y = G(x): ||y||^2 y - M y.

    Args:
        network: R networks with output size n.
        data: the data matrices: :class:`SpikedMatrix` or :class:`WishartSamples` (one
            per trial), or stacked points (:class:`StackedWigner`, :class:`StackedWishart`).
        points: for stacked data, the point (0..P-1) of each start column, (S,).
        latent_mask: see :class:`~genprior.solvers.negation.Objective`.
    """

    per_trial = ("data",)
    per_start = ("latent_mask", "points", "constant")

    def __init__(
        self,
        network: RandomReLUNetwork,
        data: SpikedData | StackedData,
        *,
        points: torch.Tensor | None = None,
        latent_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__(network, latent_mask=latent_mask)
        self.data = data
        constant = data.frobenius_sq()  # (R,), or (R, P) for stacked data
        if points is None:
            self.points, self.constant = None, constant.unsqueeze(1)  # (R, 1)
        else:
            self.points, self.constant = points.unsqueeze(0), constant[:, points]  # (R, S)

    def output_loss_grad(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`genprior.solvers.negation.Objective.output_loss_grad`."""
        n_starts = g.shape[1]
        if self.points is None:
            mg = self.data.matvec(g)  # (R, S, n)
        else:
            mg = self.data.matvec(g, tile_starts(self.points, n_starts))
        gg = g.pow(2).sum(-1)  # (R, S)
        # ||y y^T - M||^2 = ||y||^4 - 2 y^T M y + ||M||^2
        loss = 0.25 * (gg.pow(2) - 2 * (g * mg).sum(-1) + tile_starts(self.constant, n_starts))
        return loss, g * gg.unsqueeze(-1) - mg


class SpikedDescent:
    """Estimate the spike G(x*) by gradient descent on f(x) = 1/4 ||G(x) G(x)^T - M||_F^2.

    The authors' settings (weights of std 2/sqrt(n_i), x_0 ~ N(0, (1e-4)^2 I), Wishart lr
    0.005 for 2500 steps, Wigner lr 0.01 for 2000 steps, two starts) translate to
    W_i ~ N(0, 1/n_i) by homogeneity: scaling every weight by c scales the latent space by
    c^d, so lr becomes lr * c^(2d) and x_0 becomes c^d x_0 (c = 2: lr * 16, x_0 * 4 for two
    layers); :mod:`genprior.theory.experiments` does this.

    Args:
        lr: step size, > 0.
        max_iters: gradient steps per start, >= 0.
        grad_tol: stop a start once ||grad f|| <= grad_tol; 0 runs every step.
        negation: "two-start" (the paper), "every-step" or "none".
        x0_std: random starts are N(0, x0_std^2 I).
    """

    def __init__(
        self,
        *,
        lr: float = 0.08,
        max_iters: int = 2500,
        grad_tol: float = 0.0,
        negation: str = "two-start",
        x0_std: float = 4e-4,
    ) -> None:
        self.lr = check_positive("lr", lr)
        self.max_iters = check_count("max_iters", max_iters, low=0)
        self.grad_tol = check_positive("grad_tol", grad_tol, 0.0)
        check_choice("negation", negation, NEGATION)
        self.negation = negation
        self.x0_std = check_positive("x0_std", x0_std)

    def solve(
        self,
        network: RandomReLUNetwork,
        data: SpikedData | StackedData,
        *,
        x0: torch.Tensor | None = None,
        seed: int = 0,
        latent_sizes: Sequence[int] | None = None,
    ) -> DescentResult:
        """Estimate one spike per network (and point); the estimate is ``result.signal``.

        Args:
            network: R networks with output size n and latent size K.
            data: one matrix per trial (:class:`SpikedMatrix`, :class:`WishartSamples`), or
                P stacked points sharing each trial's draws (:class:`StackedWigner`,
                :class:`StackedWishart`).
            x0: starting points (R, K) or (R, P, K); None draws them from ``seed``.
            seed: seeds the random starts.
            latent_sizes: for stacked data, P latent sizes: point p uses the network
                restricted to its first k_p latent coordinates (None: all K).

        Returns:
            A :class:`DescentResult`, with fields (R, P, ...) for stacked data.

        Raises:
            TypeError: for data of another type.
            ShapeError: when data's R or n differ from the networks', or latent_sizes'
                length from data's P.
        """
        started = time.perf_counter()
        if not isinstance(data, SpikedMatrix | WishartSamples | StackedWigner | StackedWishart):
            raise TypeError(
                "data must be a SpikedMatrix (Wigner), WishartSamples, StackedWigner or "
                f"StackedWishart; received {type(data).__name__}"
            )
        expected = (network.trials, network.output_shape[0])
        if (data.trials, data.size) != expected:
            raise ShapeError(
                f"data must hold R={expected[0]} matrices of size n={expected[1]} to match "
                f"the networks; received R={data.trials}, n={data.size}"
            )
        stacked = isinstance(data, StackedWigner | StackedWishart)
        n_points = data.points if stacked else 1
        if latent_sizes is not None and not stacked:
            raise TypeError("latent_sizes needs stacked data (StackedWigner or StackedWishart)")
        _, mask, _ = point_masks(network, None, 1, latent_sizes, None)
        if mask is not None and len(mask) != n_points:
            raise ShapeError(
                f"latent_sizes must hold one size per point (P={n_points}); received {len(mask)}"
            )
        x_start = starts(network, x0, self.negation, seed, self.x0_std, n_points, mask)
        n_starts = x_start.shape[1]
        objective = SpikedObjective(
            network,
            data,
            points=torch.arange(n_points).repeat(n_starts // n_points) if stacked else None,
            latent_mask=None if mask is None else tile_points(mask, n_starts),
        )
        raw = descend(
            objective,
            x_start,
            lr=self.lr,
            max_iters=self.max_iters,
            grad_tol=self.grad_tol,
            negate=self.negation == "every-step",
        )
        return finish(objective, raw, started, n_points if stacked else None)


def sign_free_error(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """min(||e - y||, ||e + y||) per row: (R, n), (R, n) -> (R,)."""
    return torch.minimum((estimate - truth).norm(dim=-1), (estimate + truth).norm(dim=-1))


def spectral_estimate(
    data: SpikedData | StackedData, *, iters: int = 200, block: int = 4
) -> torch.Tensor:
    """The top eigenvector v_1 of M, unit norm: (R, n), or (R, P, n) for stacked data.

    The experiments know ||y*|| = 1 and give the baselines that norm; v_1 scaled by
    sqrt(lambda_1) would be far too long when N << n (Wishart) or past the spectral
    threshold. Wishart: exact, from X X^T or X^T X, whichever is smaller. Symmetric matrices:
    subspace iteration with ``block`` vectors on M + c I (c bounds the most negative
    eigenvalue of a Wigner bulk, so the top eigenvalue dominates), then Rayleigh-Ritz. For
    stacked Wigner points every iteration multiplies each trial's noise matrix with the
    blocks of all points at once.
    """
    if isinstance(data, StackedWishart):
        return torch.stack([spectral_estimate(data.point(p)) for p in range(data.points)], 1)
    if isinstance(data, StackedWigner):
        return _top_eigenvectors(data.product, data.frobenius_sq(), data.size, iters, block)
    if isinstance(data, WishartSamples):
        x = data.samples
        if x.shape[1] >= x.shape[2]:  # N >= n: the covariance is the smaller matrix
            return torch.linalg.eigh(torch.bmm(x.transpose(1, 2), x))[1][..., -1]
        _, vecs = torch.linalg.eigh(torch.bmm(x, x.transpose(1, 2)))  # ascending
        v = torch.bmm(vecs[..., -1:].transpose(1, 2), x)[:, 0]  # X^T u_1, (R, n)
        return v / v.norm(dim=-1, keepdim=True)
    matrix = data.matrix
    return _top_eigenvectors(
        lambda q: torch.bmm(matrix, q), matrix.pow(2).sum((1, 2)), data.size, iters, block
    )


def _top_eigenvectors(
    apply: Callable[[torch.Tensor], torch.Tensor],
    frobenius_sq: torch.Tensor,
    n: int,
    iters: int,
    block: int,
) -> torch.Tensor:
    """Subspace iteration for the top eigenvectors of symmetric matrices M, (..., n).

    Args:
        apply: q (..., n, b) -> M q, with the leading shape of ``frobenius_sq``.
        frobenius_sq: ||M||_F^2, (R,) or (R, P); sets the shift.
        n, iters, block: size, iterations and block vectors b.
    """
    lead = frobenius_sq.shape
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(lead[0], n, block, generator=gen, dtype=torch.float64)
    q = q.to(frobenius_sq.dtype).view(lead[0], *[1] * (len(lead) - 1), n, block)
    q = q.expand(*lead, n, block)
    # A Wigner bulk nu H has rms eigenvalue ||M||_F / sqrt(n) ~ nu and fills [-2 nu, 2 nu].
    shift = 2.2 * (frobenius_sq / n).sqrt()[..., None, None]
    for _ in range(iters):
        q, _ = torch.linalg.qr(apply(q) + shift * q)
    ritz = q.transpose(-1, -2) @ apply(q)  # (..., b, b)
    _, vecs = torch.linalg.eigh(ritz)
    v = (q @ vecs[..., -1:])[..., 0]
    return v / v.norm(dim=-1, keepdim=True)


def truncated_power_method(
    data: SpikedData | StackedData,
    sparsity: int,
    *,
    iters: int = 100,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sparse PCA by the truncated power method: v <- normalise(truncate_s(M v)), unit norm.

    Args:
        data: the data matrices, or stacked points.
        sparsity: s, the number of entries kept, 1..n.
        iters: power steps.
        init: starting vectors (R, n), (R, P, n) for stacked data; None starts from the
            spectral estimate.

    Returns:
        Unit vectors (R, n), or (R, P, n), with at most s non-zero entries.
    """
    n = data.size
    if not (isinstance(sparsity, int) and 1 <= sparsity <= n):
        raise ValueError(f"sparsity must be an integer in 1..{n}; received {sparsity!r}")
    v = spectral_estimate(data) if init is None else init
    v = _truncate(v, sparsity)
    if isinstance(data, StackedWigner | StackedWishart):
        points = torch.arange(data.points).unsqueeze(0)
        for _ in range(iters):
            v = _truncate(data.matvec(v, points), sparsity)
        return v
    for _ in range(iters):
        v = _truncate(data.matvec(v.unsqueeze(1))[:, 0], sparsity)
    return v


def _truncate(v: torch.Tensor, sparsity: int) -> torch.Tensor:
    """Keep the s largest |entries| of each row (R, n), zero the rest, normalise."""
    index = v.abs().topk(sparsity, dim=-1).indices
    out = torch.zeros_like(v).scatter(-1, index, v.gather(-1, index))
    return out / out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
