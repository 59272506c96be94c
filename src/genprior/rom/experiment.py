"""The 2D Burgers experiment: FOM, POD-LSPG(-HR), AE-LSPG(-HR) and HRAE at a test parameter.

Offline: full-order trajectories at the training parameters (cached), a POD basis, a sample
mesh by Q-DEIM on the POD basis of the right-hand-side snapshots (f(y^n) = (y^n - y^{n-1}) / dt
at converged steps, so no Newton iterates are needed), a gappy-POD basis, an autoencoder on the
full snapshots, and an HRAE (the same design, trained only on the stencil-mesh rows). Online:
every reduced model marches the test parameter's trajectory, and the FOM is solved in the same
run for the speed-up.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from genprior.errors import OptionError, check_choice
from genprior.io import write_npz_atomic
from genprior.rom.autoencoder import (
    AutoencoderConfig,
    DecoderMap,
    TrainedAutoencoder,
    band_index,
    fit,
    load_trained,
    save_trained,
    train_in_subprocess,
)
from genprior.rom.burgers import Burgers2D, SampleMesh, check_amplitude, initial_state
from genprior.rom.linear import GappyPOD, pod, sample_points
from genprior.rom.lspg import AffineMap, solve_lspg
from genprior.rom.snapshots import load_or_solve

logger = logging.getLogger(__name__)

METHODS = ("pod-lspg", "pod-lspg-hr", "ae-lspg", "ae-lspg-hr", "hrae")
SUMMARY_COLUMNS = [
    "method",
    "latent_dim",
    "mean_rel_error",
    "max_rel_error",
    "online_seconds",
    "speedup",
    "train_seconds",
    "train_peak_mb",
]

Progress = Callable[[str, int], Callable[..., None]]


@dataclass(frozen=True)
class BurgersROMConfig:
    """Settings of ``genprior rom burgers`` (defaults: the full 60 x 60 run).

    Args:
        nx: grid points per direction, boundary included.
        reynolds: Re.
        dt: backward-Euler step.
        t_final: final time.
        train_params: values of a whose trajectories are the snapshots.
        test_param: the value of a the reduced models predict.
        latent_dim: K for every reduced model (POD modes or autoencoder latents).
        n_samples: sample-mesh rows (Q-DEIM points of as many right-hand-side modes).
        gappy_modes: most POD modes of the gappy reconstruction of HRAE's full field (fewer if
            the sampled basis would have a condition number above 10).
        time_stride: training uses every ``time_stride``-th snapshot of each trajectory.
        autoencoder: architecture and training of the full autoencoder (its latent size and
            seed are set to ``latent_dim`` and ``seed``).
        hrae_epochs: epochs of the HRAE, >= 0 (None: as many as the full autoencoder; 0: see
            :class:`AutoencoderConfig`).
        hrae_units: hidden units per coarse cell of the HRAE (None: as the full autoencoder).
            Its training stays cheap because it only sees the stencil-mesh rows.
        methods: the reduced models to run.
        sampling: ``qdeim`` or ``deim``.
        hyper_residual: how POD-LSPG-HR and AE-LSPG-HR weigh the sampled residual: ``gappy``
            minimises its gappy-POD coefficients in the right-hand-side basis (DEIM/GNAT),
            ``collocation`` the sampled residual itself.
        hrae_residual: the same choice for HRAE.
        isolate: train each network in a fresh process so its peak memory is its own.
        seed: seed of the networks' initialisation and shuffling.
    """

    nx: int = 60
    reynolds: float = 10000.0
    dt: float = 1.0 / 750.0
    t_final: float = 2.0
    train_params: tuple[float, ...] = (0.9, 0.95, 1.05, 1.1)
    test_param: float = 1.0
    latent_dim: int = 8
    n_samples: int = 60
    gappy_modes: int = 40
    time_stride: int = 2
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    hrae_epochs: int | None = None
    hrae_units: int | None = 64
    methods: tuple[str, ...] = METHODS
    sampling: str = "qdeim"
    hyper_residual: str = "gappy"
    hrae_residual: str = "collocation"
    isolate: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for method in self.methods:
            check_choice("method", method, METHODS)
        check_choice("sampling", self.sampling, ("qdeim", "deim"))
        check_choice("hyper_residual", self.hyper_residual, ("gappy", "collocation"))
        check_choice("hrae_residual", self.hrae_residual, ("gappy", "collocation"))
        for a in (*self.train_params, self.test_param):
            check_amplitude(a)
        if len(set(self.train_params)) != len(self.train_params):
            raise OptionError(
                f"train_params must be distinct values of a; received {self.train_params}"
            )
        _check_int_range("time_stride", self.time_stride, None)
        _check_int_range("seed", self.seed, 2**32 - 1, low=0)
        # Everything below is checked from the grid and time step alone, before any solve.
        problem = self.problem  # validates nx, dt, t_final
        n_snapshots = sum(training_lengths(self))
        _check_int_range(
            "latent_dim", self.latent_dim, min(n_snapshots, problem.n_dofs), "snapshots and dofs"
        )
        # sample rows are Q-DEIM points of as many modes of the right-hand-side snapshots
        # (one per time step and training parameter), so at most that many and N
        n_rhs = len(self.train_params) * problem.n_steps
        _check_int_range(
            "samples",
            self.n_samples,
            min(n_rhs, problem.n_dofs),
            "right-hand-side snapshots and dofs",
        )
        if self.hrae_epochs is not None:  # the autoencoder's epochs are checked by its config
            _check_int_range("hrae_epochs", self.hrae_epochs, None, low=0)
        if self.hrae_units is not None:
            _check_int_range("hrae_units", self.hrae_units, None)
        # the networks use the experiment's latent size and seed; record them as used
        network = replace(self.autoencoder, latent_dim=self.latent_dim, seed=self.seed)
        object.__setattr__(self, "autoencoder", network)

    @property
    def problem(self) -> Burgers2D:
        """The discretised problem."""
        return Burgers2D(self.nx, self.reynolds, self.dt, self.t_final)

    @classmethod
    def quick(cls, **overrides: object) -> "BurgersROMConfig":
        """A 30 x 30 grid to T = 1 with dt = 1/375 and short training: a few minutes."""
        settings = {
            "nx": 30,
            "dt": 1.0 / 375.0,
            "t_final": 1.0,
            "n_samples": 30,
            "gappy_modes": 30,
            "time_stride": 1,
            "autoencoder": AutoencoderConfig(units=16),
            "hrae_units": 16,
        }
        return cls(**(settings | overrides))

    def to_dict(self) -> dict:
        """The settings as JSON-ready data."""
        return asdict(self)


def _check_int_range(
    name: str, value: object, high: int | None, why: str = "", *, low: int = 1
) -> None:
    """Raise a one-line :class:`OptionError` naming ``name`` unless ``value`` is an integer in
    [low, high] (no upper bound if ``high`` is None)."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if ok and low <= value and (high is None or value <= high):
        return
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    reason = f" ({why} available)" if why else ""
    raise OptionError(f"{name} must be {allowed}{reason}; received {value!r}")


@dataclass
class Offline:
    """Everything the online phase needs, and what building it cost."""

    basis: np.ndarray
    mesh: SampleMesh
    weight: np.ndarray | None
    gappy: GappyPOD
    networks: dict[str, TrainedAutoencoder]
    stage_seconds: dict[str, float]
    pod_seconds: float


def run_burgers(
    config: BurgersROMConfig, out_dir: str | Path, *, progress: Progress | None = None
) -> dict:
    """Run the experiment; write results.csv, summary.csv, summary.json and plots to
    ``out_dir``; return the summary document. Snapshots and networks are cached under
    ``out_dir`` so that a rerun resumes."""
    from genprior.rom.output import write_outputs

    out_dir = Path(out_dir)
    stages: dict[str, float] = {}
    start = time.perf_counter()
    train = {
        a: load_or_solve(
            out_dir / "snapshots",
            config.problem,
            a,
            progress=_bar(progress, f"FOM a={a}", config.problem.n_steps),
        )[0]
        for a in config.train_params
    }
    stages["training snapshots"] = time.perf_counter() - start
    offline = build_offline(config, train, out_dir, progress, stages)
    reference, fom_seconds = _solve_reference(config, progress, stages)
    runs = {"fom": {"states": reference, "seconds": fom_seconds}}
    for method in config.methods:
        start = time.perf_counter()
        runs[method] = run_method(method, config, offline, progress)
        stages[f"online {method}"] = time.perf_counter() - start
    return write_outputs(config, out_dir, runs, offline, stages)


def _bar(progress: Progress | None, desc: str, total: int) -> Callable[..., None] | None:
    return None if progress is None else progress(desc, total)


def _solve_reference(
    config: BurgersROMConfig, progress: Progress | None, stages: dict[str, float]
) -> tuple[np.ndarray, float]:
    """The FOM at the test parameter, solved (never read from cache) to time it in this run."""
    from genprior.rom.burgers import solve_fom

    start = time.perf_counter()
    bar = _bar(progress, f"FOM a={config.test_param}", config.problem.n_steps)
    states, stats = solve_fom(config.problem, config.test_param, progress=bar)
    stages["test FOM"] = time.perf_counter() - start
    logger.info(
        "test FOM: %.2f s, %.2f Newton iterations per step", stats.seconds, stats.iterations.mean()
    )
    return states, stats.seconds


def training_matrix(config: BurgersROMConfig, train: dict[float, np.ndarray]) -> np.ndarray:
    """Snapshots (T', N) of all training parameters, every ``time_stride``-th step."""
    return np.concatenate([states[:: config.time_stride] for states in train.values()])


def training_lengths(config: "BurgersROMConfig") -> tuple[int, ...]:
    """Snapshots of each training trajectory in :func:`training_matrix`."""
    per_trajectory = -(-(config.problem.n_steps + 1) // config.time_stride)
    return (per_trajectory,) * len(config.train_params)


def build_offline(
    config: BurgersROMConfig,
    train: dict[float, np.ndarray],
    out_dir: Path,
    progress: Progress | None,
    stages: dict[str, float],
) -> Offline:
    """POD basis, sample mesh, gappy POD and networks from the training trajectories."""
    problem = config.problem
    start = time.perf_counter()
    shifted = np.concatenate(
        [(s - s[0])[:: config.time_stride] for s in train.values()]
    )  # (T', N): offsets from each initial state
    basis, _ = pod(shifted.T, config.latent_dim)
    pod_seconds = time.perf_counter() - start
    rhs = np.concatenate([np.diff(s, axis=0) / problem.dt for s in train.values()])
    rhs_basis, _ = pod(rhs.T, config.n_samples, name="samples (sample-mesh rows)")
    rows = sample_points(rhs_basis, config.n_samples, config.sampling)
    mesh = SampleMesh(problem, config.test_param, rows)
    gappy_residual = "gappy" in (config.hyper_residual, config.hrae_residual)
    weight = np.linalg.pinv(rhs_basis[rows]) if gappy_residual else None
    snapshots = training_matrix(config, train)
    gappy = well_posed_gappy(snapshots, mesh.stencil, config.gappy_modes)
    stages["POD, sample mesh, gappy basis"] = time.perf_counter() - start
    logger.info(
        "sample mesh: %d rows, stencil mesh: %d of %d rows",
        len(rows),
        len(mesh.stencil),
        problem.n_dofs,
    )
    networks = {}
    need_full = {"ae-lspg", "ae-lspg-hr"} & set(config.methods)
    if need_full:
        start = time.perf_counter()
        networks["ae"] = _network("ae", config, snapshots, None, out_dir, progress)
        stages["train autoencoder"] = time.perf_counter() - start
    if "hrae" in config.methods:
        start = time.perf_counter()
        networks["hrae"] = _network("hrae", config, snapshots, mesh.stencil, out_dir, progress)
        stages["train HRAE"] = time.perf_counter() - start
    return Offline(basis, mesh, weight, gappy, networks, stages, pod_seconds)


def well_posed_gappy(
    snapshots: np.ndarray, rows: np.ndarray, max_modes: int, max_condition: float = 10.0
) -> GappyPOD:
    """Gappy POD on ``rows`` with the most POD modes of ``snapshots`` (T', N), at most
    ``max_modes``, whose sampled basis has condition number <= ``max_condition``: trailing
    modes with tiny singular values make the reconstruction amplify the reduced model's errors
    (60 modes on the quick problem turned a 1% error on the stencil into 30%)."""
    basis, _ = pod(snapshots.T, min(max_modes, len(rows)), clip=True)
    modes = basis.shape[1]
    while modes > 1 and np.linalg.cond(basis[rows, :modes]) > max_condition:
        modes -= 1
    return GappyPOD(basis[:, :modes], rows)


def _network(
    name: str,
    config: BurgersROMConfig,
    snapshots: np.ndarray,
    rows: np.ndarray | None,
    out_dir: Path,
    progress: Progress | None,
) -> TrainedAutoencoder:
    """Train (or read from the cache) the network on ``snapshots`` restricted to ``rows``."""
    ae = config.autoencoder  # latent size and seed already set by the config
    if name == "hrae" and config.hrae_epochs is not None:
        ae = replace(ae, epochs=config.hrae_epochs)
    if name == "hrae" and config.hrae_units is not None:
        ae = replace(ae, units=config.hrae_units)
    band, n_hidden = band_index(config.problem, ae.stride, ae.units)
    if rows is not None:
        used, local = np.unique(band[rows], return_inverse=True)
        band, n_hidden = local.reshape(len(rows), -1), len(used)
    key = {
        "problem": config.problem.key(),
        "train_params": list(config.train_params),
        "time_stride": config.time_stride,
        "autoencoder": asdict(ae),
        "rows": None if rows is None else rows.tolist(),
    }
    path = out_dir / "networks" / f"{name}.npz"
    trained = load_trained(path, key)
    if trained is not None:
        logger.info("%s read from %s (trained in %.1f s)", name, path, trained.seconds)
        return trained
    data = snapshots if rows is None else snapshots[:, rows]
    lengths = training_lengths(config)  # the trajectories in `snapshots`, in order
    bar = _bar(progress, f"train {name}", ae.epochs)
    if config.isolate:
        data_path = out_dir / "networks" / f"{name}-data.npz"
        write_npz_atomic(data_path, {"data": data})
        try:
            trained = train_in_subprocess(
                data_path, band, n_hidden, ae, lengths=lengths, progress=bar
            )
        finally:  # also when interrupted or failed
            data_path.unlink(missing_ok=True)
    else:
        trained = fit(data, band, n_hidden, ae, lengths=lengths, progress=bar)
    logger.info(
        "%s trained in %.1f s, peak +%.0f MB, final mse %.2e",
        name,
        trained.seconds,
        trained.peak_mb,
        trained.final_loss,
    )
    save_trained(path, trained, key)
    return trained


def run_method(
    method: str, config: BurgersROMConfig, offline: Offline, progress: Progress | None
) -> dict:
    """Run one reduced model online; its full-state trajectory (T + 1, N), online seconds
    (time marching), reconstruction seconds and Gauss-Newton statistics."""
    problem, a = config.problem, config.test_param
    y0 = initial_state(problem, a)
    hyper = method.endswith("-hr") or method == "hrae"
    mesh = offline.mesh if hyper else SampleMesh(problem, a)
    rows = mesh.stencil
    if method.startswith("pod"):
        trial = AffineMap(y0[rows], offline.basis[rows])
        z0 = np.zeros(config.latent_dim)
    else:
        trained = offline.networks["hrae" if method == "hrae" else "ae"]
        positions = None if method == "hrae" else rows
        z0 = trained.encode(y0[rows] if method == "hrae" else y0)[0]
        trial = DecoderMap(trained.decoder(positions), y0[rows], z0)
    bar = _bar(progress, method, problem.n_steps)
    weight = offline.weight if hyper and _residual(method, config) == "gappy" else None
    result = solve_lspg(mesh, trial, z0, problem.n_steps, weight=weight, progress=bar)
    start = time.perf_counter()
    states = _full_states(method, config, offline, result.latents, trial, y0)
    return {
        "states": states,
        "seconds": result.seconds,
        "reconstruct_seconds": time.perf_counter() - start,
        "gn_iterations": float(result.iterations.mean()),
        "unconverged_steps": result.unconverged,
    }


def _residual(method: str, config: BurgersROMConfig) -> str:
    """How the hyper-reduced ``method`` weighs its sampled residual."""
    return config.hrae_residual if method == "hrae" else config.hyper_residual


def _full_states(
    method: str,
    config: BurgersROMConfig,
    offline: Offline,
    latents: np.ndarray,
    trial: object,
    y0: np.ndarray,
) -> np.ndarray:
    """Full states (T + 1, N): basis for POD, full decoder for the autoencoder, gappy POD for
    HRAE."""
    if method.startswith("pod"):
        return y0 + latents @ offline.basis.T
    if method == "hrae":
        return offline.gappy(trial.decode(latents))
    decoder = DecoderMap(offline.networks["ae"].decoder(), y0, latents[0])
    return decoder.decode(latents)
