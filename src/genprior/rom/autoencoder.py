"""Autoencoders with a shallow, locally connected (banded) decoder, their training, and the
hand-written numpy decoder used online.

Decoder: z (K) -> h = sigmoid(A z + b) (H hidden units) ->
out_i = sum_j W_ij h_band(i,j) + S_i z + c_i -> y_i = lo_i + (hi_i - lo_i) out_i
(min-max scaling per dof). Hidden units sit on a coarse grid (``units`` per ``stride`` x
``stride`` cells and component) and output dof i sees the units of the 3 x 3 coarse cells
around its cell: the output layer is a sparse, stencil-like mask stored as gathered weights
(N, 9 units) instead of a dense masked matrix. This follows the masked design of Kim et al.
(JCP 2022) at a size that trains on two CPU cores (their decoder has 33730 hidden units and
their encoder 2.27e7 parameters).

Both halves start at POD (:meth:`Autoencoder.start_at_pod`): the encoder is linear,
initialised to the normalised POD coefficients, and the decoder's linear skip term S to the POD
modes, so training starts from the POD approximation and the banded sigmoid layer learns the
rest. After a few Adam epochs the output layer (W, S, c) is set to its exact least-squares fit,
row by row: on the 30 x 30 quick problem this took the test projection error from about 4%
(Adam alone, 5 epochs) to below 0.3%, where 300 L-BFGS iterations reached 0.6% in ten minutes
and a randomly initialised encoder with Adam stalled near 3%.
"""

import json
import logging
import resource
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from genprior.errors import GenpriorError, NonFiniteError, OptionError
from genprior.io import write_npz_atomic
from genprior.rom.burgers import Burgers2D
from genprior.rom.linear import pod

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture and training of one autoencoder.

    Args:
        latent_dim: K.
        stride: hidden units are placed on every ``stride``-th cell in x and y.
        units: hidden units per coarse cell and component.
        epochs: Adam passes over the snapshots before the least-squares output layer, >= 0.
            0 skips Adam: the encoder stays the linear POD projection, the hidden layer keeps
            its random initialisation, and only the output layer (banded weights, POD skip
            term, bias) is fitted by least squares.
        batch_size: snapshots per Adam step.
        lr: initial Adam learning rate (cosine decay to lr / 100).
        seed: initialisation and shuffling seed.
        threads: torch CPU threads during training.
    """

    latent_dim: int = 5
    stride: int = 2
    units: int = 4
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        epochs = self.epochs
        if not isinstance(epochs, int | np.integer) or isinstance(epochs, bool) or epochs < 0:
            raise OptionError(f"epochs must be an integer >= 0; received {epochs!r}")


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

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled states (B, P) from latents (B, K)."""
        return (self.features(z) * self.out_weight).sum(-1) + z @ self.skip.T + self.out_bias

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The hidden units each output row sees, (B, P, B_band), from latents (B, K)."""
        h = torch.sigmoid(self.hidden(z))  # (B, H)
        return torch.index_select(h, 1, self.band.flatten()).view(len(z), *self.band.shape)

    @torch.no_grad()
    def solve_output_layer(self, x: torch.Tensor, ridge: float = 1e-10) -> None:
        """Set the output layer (band weights, skip, bias) of every row to its exact
        least-squares fit to the scaled snapshots x (T, P) given the hidden units: one small
        ridge-regularised normal-equation solve per row, batched over rows."""
        z = self.encoder(x)
        parts = []
        for chunk in torch.arange(x.shape[1]).split(max(1, x.shape[1] // 32)):
            feats = torch.cat(
                [
                    self._features_rows(z, chunk),
                    z[:, None, :].expand(-1, len(chunk), -1),
                    torch.ones(len(z), len(chunk), 1, dtype=z.dtype),
                ],
                dim=2,
            )  # (T, p, F)
            feats = feats.permute(1, 2, 0)  # (p, F, T)
            gram = feats @ feats.transpose(1, 2)
            rhs = (feats @ x[:, chunk].T[:, :, None])[:, :, 0]
            scale = gram.diagonal(dim1=1, dim2=2).mean(1)[:, None, None]
            eye = torch.eye(gram.shape[1], dtype=gram.dtype)
            parts.append(torch.linalg.solve(gram + ridge * scale * eye, rhs))
        coef = torch.cat(parts)  # (P, F)
        nb = self.band.shape[1]
        self.out_weight.copy_(coef[:, :nb])
        self.skip.copy_(coef[:, nb:-1])
        self.out_bias.copy_(coef[:, -1])

    def _features_rows(self, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        h = torch.sigmoid(self.hidden(z))
        band = self.band[rows]
        return torch.index_select(h, 1, band.flatten()).view(len(z), *band.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, P) of scaled states (B, P)."""
        return self.decode(self.encoder(x))


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
        model = Autoencoder(band.shape[0], band, n_hidden, self.config)
        model.load_state_dict({k: torch.as_tensor(v) for k, v in self.weights.items()})
        return model.double().eval()

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
    progress: Callable[..., None] | None = None,
) -> TrainedAutoencoder:
    """Train an autoencoder on snapshots ``data`` (T, P) whose output row p sees hidden units
    ``band[p]`` (P, B) of H = ``n_hidden``: start at POD, Adam on the MSE of min-max scaled
    values for ``config.epochs`` epochs, then the exact least-squares output layer
    (:meth:`Autoencoder.solve_output_layer`), which lowers the error several-fold at the cost
    of a few epochs.

    Cost: wall time from scaling the data to the end of training, and peak memory as the growth
    of the peak resident set size over the resident size at the start (the peak is reset
    through /proc/self/clear_refs where Linux allows it, else ``ru_maxrss`` is used, which
    can only under-count).
    """
    baseline = start_peak_memory()
    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    scaling = Scaling.fit(data)
    x = torch.as_tensor(scaling.forward(data), dtype=torch.float32)
    model = Autoencoder(x.shape[1], band, n_hidden, config)
    model.start_at_pod(x)
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
    model.double().solve_output_layer(x.double())
    with torch.no_grad():
        final = (
            sum(
                ((model(part.double()) - part.double()) ** 2).sum().item()
                for part in x.split(config.batch_size)
            )
            / x.numel()
        )
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    weights = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in weights.items()}
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
        self.a, self.b, self.local, self.w, self.c, self.skip = a, b, local, w, c, skip
        self.lo, self.span = lo, span
        self.latent_dim = a.shape[1]

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

    def evaluate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """g(z) (P,) and dg/dz (P, K) for one latent z (K,)."""
        h = 1.0 / (1.0 + np.exp(-(self.a @ z + self.b)))
        y = self.lo + self.span * ((self.w * h[self.local]).sum(1) + self.skip @ z + self.c)
        slopes = (h * (1.0 - h))[:, None] * self.a  # (H', K)
        jac = np.einsum("pb,pbk->pk", self.w, slopes[self.local]) + self.skip
        jac *= self.span[:, None]
        return y, jac

    def decode(self, z: np.ndarray, chunk: int = 64) -> np.ndarray:
        """g(z) (T, P) for latents (T, K), in chunks of time steps to bound memory."""
        parts = []
        for zc in np.array_split(z, max(1, -(-len(z) // chunk))):
            h = 1.0 / (1.0 + np.exp(-(zc @ self.a.T + self.b)))  # (t, H')
            out = np.einsum("tpb,pb->tp", h[:, self.local], self.w) + zc @ self.skip.T + self.c
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

    def decode(self, z: np.ndarray) -> np.ndarray:
        """y (T, P) for latents (T, K)."""
        return self.reference + self.decoder.decode(z)


def _warm_up(config: AutoencoderConfig) -> None:
    """Train an eight-row network for one epoch, so that torch's lazily loaded kernels and
    libraries are not counted as the training's memory."""
    tiny = replace(config, latent_dim=2, epochs=1, batch_size=4)
    data = np.random.default_rng(0).standard_normal((16, 8))
    fit(data, np.zeros((8, 1), dtype=np.int64), 1, tiny)


def _train_worker(
    connection: object, data_path: str, band: np.ndarray, n_hidden: int, config: AutoencoderConfig
) -> None:
    """Body of the training process: load the snapshots, train, send the result back."""
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
    progress: Callable[..., None] | None = None,
) -> TrainedAutoencoder:
    """:func:`fit` in a fresh process on the snapshots saved at ``data_path`` (npz, key
    ``data``), so that its peak memory (growth of the peak resident set size from before
    loading the data) is its own and includes holding the snapshots."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_train_worker, args=(child, str(data_path), band, n_hidden, config)
    )
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
            kind, payload = parent.recv()
            if kind == "epoch" and progress is not None:
                progress(postfix=payload)
            elif kind == "error":
                raise payload
            elif kind == "done":
                return payload
    finally:
        process.join()


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
    arrays |= {
        "lo": trained.scaling.lo,
        "span": trained.scaling.span,
        "meta": np.array(json.dumps(meta)),
    }
    write_npz_atomic(path, arrays)


def load_trained(path: str | Path, key: dict) -> TrainedAutoencoder | None:
    """The network saved at ``path`` if it was trained for ``key``; None if missing, stale or
    unreadable (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as archive:
            meta = json.loads(str(archive["meta"]))
            weights = {n[2:]: archive[n] for n in archive.files if n.startswith("w/")}
            scaling = Scaling(archive["lo"], archive["span"])
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
