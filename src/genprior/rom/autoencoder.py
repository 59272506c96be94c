"""Autoencoders with a shallow, locally connected (banded) decoder, their training, and the
hand-written numpy decoder used online.

Decoder: z (K) -> h = sigmoid(A z + b) (H hidden units) ->
out_i = sum_j W_ij h_band(i,j) + S_i z + c_i -> y_i = lo_i + (hi_i - lo_i) out_i
(min-max scaling per dof). Hidden units sit on a coarse grid (``units`` per ``stride`` x
``stride`` cells and component) and output dof i sees the units of the 3 x 3 coarse cells
around its cell: the output layer is a sparse, stencil-like mask stored as gathered weights
(N, 9 units) instead of a dense masked matrix. This follows the masked design of Kim et al.
(JCP 2022), whose decoder (33730 hidden units, 2000 GPU epochs) does not train on two CPU
cores.

Training needs no gradient descent by default. The encoder is linear, set to the normalised
POD coefficients, and the skip term S to the POD modes. Each hidden unit is then placed
between two snapshots of one trajectory, drawn where the rows that see the unit change most
per unit of latent distance (:meth:`Autoencoder.sample_hidden_units`, after the sampled
networks of Bolager et al., NeurIPS 2023), so its sigmoid switches where the front passes its
cells. Last, the output layer (W, S, c) is set to its ridge-regularised least-squares fit,
one small solve per coarse cell. On the 60 x 60 problem this trains in 62-141 s (see
:func:`_return_large_blocks`) where 60 Adam epochs of a smaller decoder took 900 s, and lowers
the hyper-reduced model's mean error from 8.3% to 0.5% at latent size 5 (docs/rom.md). Adam
epochs (``epochs``) between the placement and the least squares remain available.
"""

import contextlib
import hashlib
import json
import logging
import numbers
import os
import resource
import signal
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import expit

from genprior.errors import GenpriorError, NonFiniteError, OptionError, check_choice
from genprior.io import write_npz_atomic
from genprior.rom.burgers import Burgers2D
from genprior.rom.linear import pod

logger = logging.getLogger(__name__)

HIDDEN_LAYERS = ("sampled", "random")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture and training of one autoencoder.

    Args:
        latent_dim: K.
        stride: hidden units are placed on every ``stride``-th cell in x and y.
        units: hidden units per coarse cell and component.
        hidden: ``sampled`` places each unit between two snapshots where its rows change
            (:meth:`Autoencoder.sample_hidden_units`); ``random`` keeps torch's random
            initialisation.
        sharpness: s, the rise of a sampled unit's pre-activation between its two snapshots.
        pairs: candidate snapshot pairs the sampled units are drawn from.
        ridge: Tikhonov weight of the least-squares output layer, relative to the mean
            diagonal of each normal matrix.
        epochs: Adam passes over the snapshots before the least-squares output layer, >= 0.
            0 skips Adam: the encoder stays the linear POD projection, the hidden units stay
            where ``hidden`` put them, and only the output layer (banded weights, POD skip
            term, bias) is fitted by least squares.
        batch_size: snapshots per Adam step.
        lr: initial Adam learning rate (cosine decay to lr / 100).
        seed: initialisation and shuffling seed.
        threads: torch CPU threads during training.
    """

    latent_dim: int = 5
    stride: int = 2
    units: int = 32
    hidden: str = "sampled"
    sharpness: float = 8.0
    pairs: int = 4000
    ridge: float = 1e-10
    epochs: int = 0
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("latent_dim", "stride", "units", "pairs", "batch_size", "threads"):
            _check_number(self, name, low=1, integer=True)
        _check_number(self, "epochs", low=0, integer=True)
        check_choice("hidden", self.hidden, HIDDEN_LAYERS)
        _check_number(self, "sharpness", low=0.0, strict=True)
        _check_number(self, "lr", low=0.0, strict=True)
        # edge rows see some hidden units twice, so the normal matrices need a ridge
        _check_number(self, "ridge", low=1e-12)


def _check_number(
    config: object, name: str, low: float, *, integer: bool = False, strict: bool = False
) -> None:
    """Raise :class:`OptionError` unless ``config.name`` is a finite real number (an integer
    if ``integer``) >= ``low`` (> if ``strict``); store it as a plain int or float."""
    value = getattr(config, name)
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        what = "an integer" if integer else "a number"
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise OptionError(f"{name} must be {what} {bound}; received {value!r}")
    object.__setattr__(config, name, int(value) if integer else float(value))


def band_index(problem: Burgers2D, stride: int, units: int) -> tuple[np.ndarray, int]:
    """The hidden units each output dof sees.

    Returns:
        index: (N, 9 units) hidden-unit numbers (repeats at the domain edges).
        n_hidden: H, the total number of hidden units.
    """
    if stride < 1 or units < 1:
        raise OptionError(f"stride and units must be >= 1; received {stride}, {units}")
    m = problem.m
    mc = -(-m // stride)
    c, j, i = np.meshgrid(np.arange(2), np.arange(m), np.arange(m), indexing="ij")
    c, jc, ic = c.reshape(-1, 1), (j // stride).reshape(-1, 1), (i // stride).reshape(-1, 1)
    dj, di = np.meshgrid([-1, 0, 1], [-1, 0, 1], indexing="ij")
    cells = (c * mc + np.clip(jc + dj.ravel(), 0, mc - 1)) * mc + np.clip(
        ic + di.ravel(), 0, mc - 1
    )  # (N, 9)
    index = (cells[:, :, None] * units + np.arange(units)).reshape(len(cells), -1)
    return index, 2 * mc * mc * units


def band_matrix(band: np.ndarray, values: np.ndarray, n_hidden: int) -> sp.csr_matrix:
    """The sparse (P, H) matrix with ``values[p, j]`` (P, B) at column ``band[p, j]`` (P, B);
    repeated units of a row (at the domain edges) add up."""
    rows = np.repeat(np.arange(len(band)), band.shape[1])
    return sp.csr_matrix((values.ravel(), (rows, band.ravel())), shape=(len(band), n_hidden))


class Autoencoder(torch.nn.Module):
    """Encoder and banded decoder on a set of output rows.

    Args:
        n_rows: P, the number of state rows in and out.
        band: (P, B) hidden-unit numbers each output row sees, in [0, H).
        n_hidden: H.
        config: the architecture.
    """

    def __init__(
        self, n_rows: int, band: np.ndarray, n_hidden: int, config: AutoencoderConfig
    ) -> None:
        super().__init__()
        k = config.latent_dim
        self.encoder = torch.nn.Linear(n_rows, k)
        self.skip = torch.nn.Parameter(torch.zeros(n_rows, k))
        self.hidden = torch.nn.Linear(k, n_hidden)
        self.register_buffer("band", torch.as_tensor(band, dtype=torch.long))
        fan_in = band.shape[1]
        self.out_weight = torch.nn.Parameter(torch.randn(band.shape) / np.sqrt(fan_in) / 10)
        self.out_bias = torch.nn.Parameter(torch.zeros(n_rows))

    @torch.no_grad()
    def start_at_pod(self, x: torch.Tensor) -> None:
        """Initialise encoder and linear decoder part at the POD of the scaled snapshots x (T, P):
        z = Sigma^-1 V^T (x - mean) has unit scale and mean + V Sigma z is the projection."""
        mean = x.mean(0)
        k = self.encoder.out_features
        u, s = pod((x - mean).T.double().numpy(), k)
        u = torch.as_tensor(u, dtype=x.dtype)
        scale = torch.as_tensor(s[:k] / np.sqrt(len(x)), dtype=x.dtype)  # (K,) coefficient std
        self.encoder.weight.copy_(u[:, :k].T / scale[:, None])
        self.encoder.bias.copy_(-(u[:, :k].T @ mean) / scale)
        self.skip.copy_(u[:, :k] * scale)
        self.out_bias.copy_(mean)

    @torch.no_grad()
    def sample_hidden_units(
        self,
        x: torch.Tensor,
        lengths: tuple[int, ...],
        sharpness: float,
        n_pairs: int,
        rng: np.random.Generator,
    ) -> None:
        """Place each hidden unit's sigmoid between two snapshots where its output rows change.

        Candidate pairs (t1, t2) are drawn within one trajectory (``lengths`` splits the T
        snapshots of x (T, P) into trajectories). Unit j draws a pair with probability
        proportional to ||x_t2 - x_t1|| on the rows that see j, divided by ||z_t2 - z_t1||
        (the data-driven sampling of Bolager et al., NeurIPS 2023), and becomes
        sigmoid(w . z + b) with w = s dz / ||dz||^2 and b = -w . (z_t1 + z_t2) / 2: it switches
        from sigmoid(-s/2) at z_t1 to sigmoid(s/2) at z_t2, s = ``sharpness``. The units then
        sit where the front passes their cells, at the latent speed it passes them.
        """
        z = self.encoder(x).numpy()
        first, second = _candidate_pairs(lengths, n_pairs, rng)
        dz = z[second] - z[first]  # (Q, K)
        dist = np.linalg.norm(dz, axis=1)
        keep = dist > 1e-12 * max(1.0, dist.max(initial=0.0))
        if not keep.any():
            raise OptionError(
                "sampled hidden units need a trajectory with two snapshots of different "
                f"latents; received trajectories of {tuple(lengths)} snapshots (use "
                "hidden='random')"
            )
        first, second, dz, dist = first[keep], second[keep], dz[keep], dist[keep]
        sets, unit_set = self._row_sets()
        rates = np.empty((sets.shape[0], len(dist)))  # (S, Q)
        for block in np.array_split(np.arange(len(dist)), -(-len(dist) // 256)):
            change = ((x[second[block]] - x[first[block]]) ** 2).numpy()  # (Q', P)
            rates[:, block] = np.sqrt(sets @ change.T) / dist[block]
        pick = _draw(rates, unit_set, rng)  # (H,) the pair of each unit
        dz, dist, z = dz.astype(np.float64), dist.astype(np.float64), z.astype(np.float64)
        weight = sharpness * dz[pick] / dist[pick, None] ** 2
        bias = -(weight * (z[first[pick]] + z[second[pick]]) / 2).sum(1)
        limit = np.finfo(np.float32).max  # the weights live in float32 during training
        if not (np.abs(weight) < limit).all() or not (np.abs(bias) < limit).all():
            raise NonFiniteError(
                f"sampled hidden units overflow (sharpness {sharpness}); lower sharpness"
            )
        self.hidden.weight.copy_(torch.as_tensor(weight))
        self.hidden.bias.copy_(torch.as_tensor(bias))

    def _row_sets(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """The distinct sets of output rows that see a hidden unit, as a 0/1 matrix (S, P)
        (units of one coarse cell share theirs), and the set of each unit (H,)."""
        band = self.band.numpy()
        seen = band_matrix(band, np.ones(band.shape), self.hidden.out_features).T.tocsr()
        seen.sum_duplicates()
        seen.data[:] = 1.0  # a row seeing a unit twice (edge repeats) counts once
        ids: dict[bytes, int] = {}
        unit_set = np.array(
            [
                ids.setdefault(seen.indices[start:stop].tobytes(), len(ids))
                for start, stop in zip(seen.indptr[:-1], seen.indptr[1:], strict=True)
            ]
        )
        first_unit = np.unique(unit_set, return_index=True)[1]
        return seen[first_unit], unit_set

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled states (B, P) from latents (B, K)."""
        return (self.features(z) * self.out_weight).sum(-1) + z @ self.skip.T + self.out_bias

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The hidden units each output row sees, (B, P, B_band), from latents (B, K)."""
        h = torch.sigmoid(self.hidden(z))  # (B, H)
        return torch.index_select(h, 1, self.band.flatten()).view(len(z), *self.band.shape)

    @torch.no_grad()
    def solve_output_layer(
        self, x: torch.Tensor, ridge: float = 1e-10, buffer_mb: float = 16.0
    ) -> None:
        """Set the output layer (band weights, skip, bias) of every row to its least-squares
        fit to the scaled snapshots x (T, P) given the hidden units, with a Tikhonov term
        ``ridge`` times the mean diagonal of each normal matrix.

        Rows with the same band (the dofs of one coarse cell and component) share their
        features, so there is one ridge-regularised normal-equation solve per group of rows,
        with as many right-hand sides as rows, batched over as many groups as fit a feature
        buffer of ``buffer_mb`` MiB, so that memory follows the size of the data.
        """
        z = self.encoder(x)
        ones = torch.ones(len(z), 1, dtype=z.dtype)
        bands, group = np.unique(self.band.numpy(), axis=0, return_inverse=True)
        group = group.ravel()
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=len(bands))
        width = int(counts.max())
        slots = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
        table = np.full((len(bands), width), -1)
        table[group[order], slots] = order  # rows of each group, -1 pads
        coef = torch.empty(x.shape[1], bands.shape[1] + z.shape[1] + 1, dtype=x.dtype)
        group_bytes = coef.shape[1] * (len(x) + coef.shape[1]) * x.element_size()
        chunk = max(1, int(buffer_mb * 2**20 // group_bytes))
        for start in range(0, len(bands), chunk):
            units, band = np.unique(bands[start : start + chunk], return_inverse=True)
            band = torch.as_tensor(band.reshape(-1, bands.shape[1]))
            rows = torch.as_tensor(table[start : start + chunk])
            units = torch.as_tensor(units)
            h = torch.sigmoid(z @ self.hidden.weight[units].T + self.hidden.bias[units])
            feats = torch.cat(
                [
                    h[:, band.flatten()].view(len(z), *band.shape),
                    z[:, None, :].expand(-1, len(band), -1),
                    ones[:, None, :].expand(-1, len(band), -1),
                ],
                dim=2,
            ).permute(1, 2, 0)  # (g, F, T)
            gram = feats @ feats.transpose(1, 2)
            rhs = feats @ x[:, rows.clamp(min=0)].permute(1, 0, 2)  # (g, F, width)
            scale = gram.diagonal(dim1=1, dim2=2).mean(1)[:, None, None]
            eye = torch.eye(gram.shape[1], dtype=gram.dtype)
            solution = torch.linalg.solve(gram + ridge * scale * eye, rhs)  # (g, F, width)
            valid = rows >= 0
            coef[rows[valid]] = solution.transpose(1, 2)[valid]
        nb = self.band.shape[1]
        self.out_weight.copy_(coef[:, :nb])
        self.skip.copy_(coef[:, nb:-1])
        self.out_bias.copy_(coef[:, -1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, P) of scaled states (B, P)."""
        return self.decode(self.encoder(x))


def _check_lengths(lengths: object, total: int) -> tuple[int, ...]:
    """``lengths`` as a tuple of positive integers summing to ``total`` (None: one
    trajectory); else :class:`OptionError`."""
    if lengths is None:
        return (total,)
    values = tuple(lengths) if isinstance(lengths, tuple | list | np.ndarray) else None
    integers = values is not None and all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in values
    )
    if not integers or sum(values) != total:
        raise OptionError(
            f"lengths must be positive integers summing to the {total} snapshots; "
            f"received {lengths!r}"
        )
    return tuple(int(n) for n in values)


def _candidate_pairs(
    lengths: tuple[int, ...], n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` random snapshot pairs (two (Q,) index arrays), both of each pair from the
    same trajectory; trajectories are consecutive blocks of ``lengths`` snapshots.

    Pairs across trajectories at one time step (units that switch with the parameter) were
    measured worse on the 60 x 60 Burgers problem: with half the pairs drawn that way, HRAE
    diverged for two seeds out of two."""
    lengths = np.asarray(lengths)
    starts = np.cumsum(lengths) - lengths
    which = rng.choice(len(lengths), n_pairs, p=lengths / lengths.sum())
    first = starts[which] + rng.integers(0, lengths[which])
    second = starts[which] + rng.integers(0, lengths[which])
    return first, second


def _draw(rates: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column of ``rates`` (S, Q) per unit, for units whose rows are ``group`` (H,), drawn
    with probability proportional to the rate (uniformly where a row is all zero)."""
    rates = rates + 1e-12 * rates.max(initial=0.0) + 1e-300
    cumulative = np.cumsum(rates, axis=1)
    draw = rng.random(len(group)) * cumulative[group, -1]
    pick = np.empty(len(group), dtype=np.int64)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(rates) + 1))
    for row, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        units = order[start:stop]
        pick[units] = np.searchsorted(cumulative[row], draw[units])
    return np.minimum(pick, rates.shape[1] - 1)


@dataclass
class Scaling:
    """Min-max scaling per dof: scaled = (y - lo) / span, span 1 where a dof never changes."""

    lo: np.ndarray
    span: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray) -> "Scaling":
        """From snapshots (T, P)."""
        lo, hi = data.min(0), data.max(0)
        span = hi - lo
        return cls(lo, np.where(span > 1e-12, span, 1.0))

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Scaled (..., P) from states (..., P)."""
        return (y - self.lo) / self.span


@dataclass
class TrainedAutoencoder:
    """Weights (numpy), scaling and the cost of training."""

    config: AutoencoderConfig
    weights: dict[str, np.ndarray]
    scaling: Scaling
    seconds: float
    peak_mb: float
    final_loss: float

    def model(self) -> Autoencoder:
        """The torch module with these weights."""
        band = self.weights["band"]
        n_hidden = self.weights["hidden.weight"].shape[0]
        model = Autoencoder(band.shape[0], band, n_hidden, self.config).double()
        model.load_state_dict({k: torch.as_tensor(v) for k, v in self.weights.items()})
        return model.eval()

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Latents (T, K) of states (T, P)."""
        x = torch.as_tensor(self.scaling.forward(np.atleast_2d(y)), dtype=torch.float64)
        with torch.no_grad():
            return self.model().encoder(x).numpy()

    def decoder(self, rows: np.ndarray | None = None) -> "NumpyDecoder":
        """The numpy decoder restricted to positions ``rows`` of its output (all if None)."""
        return NumpyDecoder.from_weights(self.weights, self.scaling, rows)


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB; None where unavailable."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def start_peak_memory() -> float:
    """Reset this process's peak resident set size where Linux allows it (/proc/self/clear_refs)
    and return the baseline in MiB to pass to :func:`peak_memory_mb`."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _status_mb("VmRSS") or 0.0
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_memory_mb(baseline: float) -> float:
    """Growth of the peak resident set size (VmHWM, else ru_maxrss) over ``baseline``, MiB."""
    peak = _status_mb("VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return max(0.0, peak - baseline)


def fit(
    data: np.ndarray,
    band: np.ndarray,
    n_hidden: int,
    config: AutoencoderConfig,
    *,
    lengths: tuple[int, ...] | None = None,
    progress: Callable[..., None] | None = None,
) -> TrainedAutoencoder:
    """Train an autoencoder on snapshots ``data`` (T, P) whose output row p sees hidden units
    ``band[p]`` (P, B) of H = ``n_hidden``: start at POD, place the hidden units between
    snapshot pairs of one trajectory (``config.hidden == "sampled"``; ``lengths`` splits the T
    snapshots into consecutive trajectories, one if None), run ``config.epochs`` Adam epochs
    on the MSE of min-max scaled values, then fit the output layer by ridge-regularised least
    squares (:meth:`Autoencoder.solve_output_layer`).

    Cost: wall time from scaling the data to the end of training, and peak memory as the growth
    of the peak resident set size over the resident size at the start (the peak is reset
    through /proc/self/clear_refs where Linux allows it, else ``ru_maxrss`` is used, which
    can only under-count).
    """
    lengths = _check_lengths(lengths, len(data))
    baseline = start_peak_memory()
    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    scaling = Scaling.fit(data)
    x = torch.as_tensor(scaling.forward(data), dtype=torch.float32)
    model = Autoencoder(x.shape[1], band, n_hidden, config)
    model.start_at_pod(x)
    if config.hidden == "sampled":
        rng = np.random.default_rng(config.seed)
        model.sample_hidden_units(x, lengths, config.sharpness, config.pairs, rng)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = -(-len(x) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch, eta_min=config.lr / 100
    )
    loss = torch.tensor(float("nan"))
    for epoch in range(config.epochs):
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(config.batch_size):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[batch]), x[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        if not np.isfinite(total):
            raise NonFiniteError(f"autoencoder training loss is not finite at epoch {epoch + 1}")
        if progress is not None:
            progress(postfix={"mse": f"{total / len(x):.2e}"})
    model.double().solve_output_layer(x.double(), ridge=config.ridge)
    per_batch = max(1, 2**21 // model.band.numel())  # a 16 MiB buffer of gathered features
    with torch.no_grad():
        final = (
            sum(
                ((model(part.double()) - part.double()) ** 2).sum().item()
                for part in x.split(per_batch)
            )
            / x.numel()
        )
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    weights = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in weights.items()}
    if not (np.isfinite(final) and all(np.isfinite(v).all() for v in weights.values())):
        raise NonFiniteError(
            f"autoencoder training gave non-finite weights or loss ({final}); lower "
            f"sharpness ({config.sharpness}) or raise ridge ({config.ridge})"
        )
    return TrainedAutoencoder(
        config,
        weights,
        scaling,
        seconds=time.perf_counter() - start,
        peak_mb=peak_memory_mb(baseline),
        final_loss=final,
    )


class NumpyDecoder:
    """The decoder on a subset of its output rows, in numpy, with its Jacobian by z.

    Only the hidden units that feed the kept rows are kept, so evaluating it on the stencil mesh
    costs O(P B K) for P kept rows. Shapes: A (H', K), b (H',), local (P, B) positions into the
    H' kept hidden units, W (P, B), c, lo, span (P,).
    """

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        local: np.ndarray,
        w: np.ndarray,
        c: np.ndarray,
        skip: np.ndarray,
        lo: np.ndarray,
        span: np.ndarray,
    ) -> None:
        self.a, self.b, self.c, self.skip = a, b, c, skip
        self.lo, self.span = lo, span
        self.latent_dim = a.shape[1]
        self.mix = band_matrix(local, w, len(b))  # the banded output layer, (P, H')

    @classmethod
    def from_weights(
        cls, weights: dict[str, np.ndarray], scaling: Scaling, rows: np.ndarray | None = None
    ) -> "NumpyDecoder":
        """Keep output positions ``rows`` (all if None) and the hidden units they see."""
        band = weights["band"]
        rows = np.arange(len(band)) if rows is None else np.asarray(rows)
        used = np.unique(band[rows])
        local = np.searchsorted(used, band[rows])
        return cls(
            weights["hidden.weight"][used],
            weights["hidden.bias"][used],
            local,
            weights["out_weight"][rows],
            weights["out_bias"][rows],
            weights["skip"][rows],
            scaling.lo[rows],
            scaling.span[rows],
        )

    @property
    def n_hidden(self) -> int:
        """H', the hidden units kept."""
        return len(self.b)

    def value(self, z: np.ndarray) -> np.ndarray:
        """g(z) (P,) for one latent z (K,), without the Jacobian (about K times cheaper)."""
        return self._output(expit(self.a @ z + self.b), z)

    def evaluate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """g(z) (P,) and dg/dz (P, K) for one latent z (K,)."""
        h = expit(self.a @ z + self.b)
        y = self._output(h, z)
        jac = self.mix @ ((h * (1.0 - h))[:, None] * self.a) + self.skip  # (P, K)
        jac *= self.span[:, None]
        return y, jac

    def _output(self, h: np.ndarray, z: np.ndarray) -> np.ndarray:
        """g(z) (P,) from the hidden units h (H',) at z (K,)."""
        return self.lo + self.span * (self.mix @ h + self.skip @ z + self.c)

    def decode(self, z: np.ndarray, chunk: int = 64) -> np.ndarray:
        """g(z) (T, P) for latents (T, K), in chunks of time steps to bound memory."""
        parts = []
        for zc in np.array_split(z, max(1, -(-len(z) // chunk))):
            h = expit(zc @ self.a.T + self.b)  # (t, H')
            out = (self.mix @ h.T).T + zc @ self.skip.T + self.c
            parts.append(self.lo + self.span * out)
        return np.concatenate(parts)


class DecoderMap:
    """The trial map y = y0 + g(z) - g(z0): exact at the initial latent ``z0``.

    Args:
        decoder: g on P rows.
        y0: (P,) the initial state on those rows.
        z0: (K,) the initial latent.
    """

    def __init__(self, decoder: NumpyDecoder, y0: np.ndarray, z0: np.ndarray) -> None:
        self.decoder = decoder
        self.latent_dim = decoder.latent_dim
        self.reference = y0 - decoder.evaluate(z0)[0]

    def evaluate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """y (P,) and dy/dz (P, K)."""
        y, jac = self.decoder.evaluate(z)
        return self.reference + y, jac

    def value(self, z: np.ndarray) -> np.ndarray:
        """y (P,) alone."""
        return self.reference + self.decoder.value(z)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """y (T, P) for latents (T, K)."""
        return self.reference + self.decoder.decode(z)


def _warm_up(config: AutoencoderConfig) -> None:
    """Train an eight-row network for one epoch, so that torch's lazily loaded kernels and
    libraries are not counted as the training's memory."""
    tiny = replace(config, latent_dim=2, epochs=1, batch_size=4)
    data = np.random.default_rng(0).standard_normal((16, 8))
    fit(data, np.zeros((8, 1), dtype=np.int64), 1, tiny)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to stop this process when its parent (pid ``parent``) dies (prctl
    PR_SET_PDEATHSIG), so a killed experiment leaves no training behind; a no-op elsewhere."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))
    except OSError:
        logger.debug("prctl is unavailable; the training may outlive a killed parent")
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _return_large_blocks() -> None:
    """Have glibc serve blocks of 1 MiB and more by mmap (mallopt M_MMAP_THRESHOLD), so they go
    back to the system when freed: the peak resident size then counts the arrays alive at
    once, not the heap the allocator kept (which made the same training's peak vary from
    111 to 194 MB). A no-op where glibc is not the C library."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        logger.debug("mallopt is unavailable; peak memory includes the allocator's heap")


def _train_worker(
    connection: object,
    data_path: str,
    band: np.ndarray,
    n_hidden: int,
    config: AutoencoderConfig,
    lengths: tuple[int, ...] | None,
    parent: int,
) -> None:
    """Body of the training process: load the snapshots, train, send the result back."""
    _die_with_parent(parent)
    _return_large_blocks()
    try:
        _warm_up(config)
        baseline = start_peak_memory()
        with np.load(data_path) as archive:
            data = archive["data"]
        result = fit(
            data,
            band,
            n_hidden,
            config,
            lengths=lengths,
            progress=lambda postfix: connection.send(("epoch", postfix)),
        )
        result.peak_mb = peak_memory_mb(baseline)
        connection.send(("done", result))
    except Exception as error:  # sent back and raised in the parent
        connection.send(("error", error))
    finally:
        connection.close()


def train_in_subprocess(
    data_path: str | Path,
    band: np.ndarray,
    n_hidden: int,
    config: AutoencoderConfig,
    *,
    lengths: tuple[int, ...] | None = None,
    progress: Callable[..., None] | None = None,
) -> TrainedAutoencoder:
    """:func:`fit` in a fresh process on the snapshots saved at ``data_path`` (npz, key
    ``data``), so that its peak memory (growth of the peak resident set size from before
    loading the data) is its own and includes holding the snapshots."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_train_worker,
        args=(child, str(data_path), band, n_hidden, config, lengths, os.getpid()),
        daemon=True,
    )
    with _sigint_ignored():  # the child inherits it: Ctrl-C reaches only this process
        process.start()
    child.close()
    try:
        while True:
            if not parent.poll(1.0):
                if not process.is_alive():
                    raise GenpriorError(
                        f"the training process died (exit code {process.exitcode}); run it "
                        "from a script guarded by `if __name__ == '__main__':`"
                    )
                continue
            try:
                kind, payload = parent.recv()
            except EOFError:  # the child exited without a result
                process.join(timeout=10.0)
                raise GenpriorError(
                    f"the training process died without a result (exit code "
                    f"{process.exitcode}; a negative code is the signal that stopped it)"
                ) from None
            if kind == "epoch" and progress is not None:
                progress(postfix=payload)
            elif kind == "error":
                raise payload
            elif kind == "done":
                return payload
    except BaseException:  # failed or interrupted: stop the training now
        process.terminate()
        raise
    finally:
        process.join(timeout=10.0)
        if process.is_alive():
            process.terminate()
            process.join()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while the block runs (in the main thread only), so that a process started
    in it ignores Ctrl-C and is stopped by its parent instead of printing a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def save_trained(path: str | Path, trained: TrainedAutoencoder, key: dict) -> None:
    """Write weights, scaling, cost and ``key`` (what the network was trained on) to npz."""
    meta = {
        "key": key,
        "config": asdict(trained.config),
        "seconds": trained.seconds,
        "peak_mb": trained.peak_mb,
        "final_loss": trained.final_loss,
    }
    arrays = {f"w/{name}": value for name, value in trained.weights.items()}
    arrays |= {"lo": trained.scaling.lo, "span": trained.scaling.span}
    meta["sha256"] = _checksum(arrays)
    write_npz_atomic(path, arrays | {"meta": np.array(json.dumps(meta))})


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the named arrays' names, shapes, dtypes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{value.shape}{value.dtype.str}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def load_trained(path: str | Path, key: dict) -> TrainedAutoencoder | None:
    """The network saved at ``path`` if it was trained for ``key``; None if missing, stale or
    unreadable (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as archive:
            meta = json.loads(str(archive["meta"]))
            arrays = {n: archive[n] for n in archive.files if n != "meta"}
        if meta.get("sha256") != _checksum(arrays):
            logger.warning("network file %s fails its checksum; retraining", path)
            return None
        weights = {n[2:]: v for n, v in arrays.items() if n.startswith("w/")}
        scaling = Scaling(arrays["lo"], arrays["span"])
        if meta["key"] != key:
            logger.info("network %s was trained for other settings; retraining", path)
            return None
        config = AutoencoderConfig(**meta["config"])
        return TrainedAutoencoder(
            config, weights, scaling, meta["seconds"], meta["peak_mb"], meta["final_loss"]
        )
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        logger.warning("network file %s is unreadable (%s); retraining", path, error)
        return None
