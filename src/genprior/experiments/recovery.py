"""The recovery protocol of ``genprior cs`` and ``genprior recover``.

For every value of the task's parameter (e.g. the number of measurements m): build the
operator (one seeded operator per value, shared by all images, as in CSGM), measure N test
images with seeded noise, and recover them with every method: the generator prior (CSGM) and
the classical baselines. Lasso's lambda is tuned per parameter value on validation images
drawn from the training split, never on test images. Estimates are clipped to [0, 1] for
every method before errors are computed.

Each finished (parameter, method) point is saved at once, so an interrupted run resumes.
"""

import dataclasses
import json
import logging
import math
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genprior.data import ImageDataset, load_dataset
from genprior.errors import CheckpointError, OptionError, check_choice
from genprior.experiments import report
from genprior.experiments.tasks import Task, get_task
from genprior.io import read_csv, write_csv_atomic, write_json_atomic, write_npz_atomic
from genprior.operators import GaussianNoise, Operator, make_operator
from genprior.priors import Generator, load_generator
from genprior.solvers.base import Recovery
from genprior.solvers.baselines import LassoSolver, PseudoInverseSolver, tune_lasso_lambda
from genprior.solvers.csgm import CSGMSolver
from genprior.solvers.phase_baselines import SparseAmplitudeFlow, tune_amplitude_flow_lambda

logger = logging.getLogger(__name__)

LASSO_LAMBDAS = tuple(float(v) for v in np.logspace(-5, 1, 13))
# Baselines whose l1 weight is tuned on validation images: method prefix -> (solver, tuner).
TUNED_BASELINES = {
    "lasso-": (LassoSolver, tune_lasso_lambda),
    "amplitude-flow-": (SparseAmplitudeFlow, tune_amplitude_flow_lambda),
}
GRID_IMAGES = 8
RESULT_COLUMNS = [
    "method",
    "task",
    "PARAM",
    "image",
    "mse",
    "psnr",
    "seconds",
    "measurement_loss",
    "lam",
]


@dataclass(frozen=True)
class RecoveryConfig:
    """Settings of one recovery sweep; None means the task's default.

    Attributes:
        task: one of :data:`genprior.experiments.tasks.TASKS`.
        dataset: the dataset whose first ``n_images`` test images are recovered.
        checkpoint: the prior: a shipped name (``mnist-vae``) or a checkpoint folder.
        params: parameter values to sweep (None: the task's protocol).
        methods: methods to run (None: the task's defaults).
        n_images: number of test images.
        noise_std: noise level (None: the task's; see :mod:`genprior.experiments.tasks`).
        steps: Adam steps of the prior's solver.
        restarts: random restarts per image.
        lr: Adam learning rate.
        lam: weight of the latent prior term lam ||z||^2.
        tol: early-stopping tolerance of the prior's solver (0: run every step).
        history: keep the objective of every image at every step of the prior's solver,
            written to ``history.npz`` (one (N, T) array per method and parameter value).
        lasso_lambdas: grid for tuning the l1 weight of Lasso and of amplitude flow.
        lasso_iters: iterations of FISTA (Lasso) and of amplitude flow.
        n_val: validation images (from the training split) for tuning lambda.
        seed: seeds operators, noise, restarts and the validation draw.
    """

    task: str = "cs"
    dataset: str = "mnist"
    checkpoint: str = "mnist-vae"
    params: tuple[float, ...] | None = None
    methods: tuple[str, ...] | None = None
    n_images: int = 300
    noise_std: float | None = None
    steps: int = 1000
    restarts: int = 10
    lr: float = 0.01
    lam: float = 0.1
    tol: float = 0.0
    history: bool = False
    lasso_lambdas: tuple[float, ...] = LASSO_LAMBDAS
    lasso_iters: int = 1000
    n_val: int = 50
    seed: int = 0

    def resolved(self) -> "RecoveryConfig":
        """A copy with every None replaced by the task's default, after validation.

        Error messages name the command-line option of each field (``n_images`` is
        ``--n-images``).
        """
        task = get_task(self.task)
        methods = self.methods or task.default_methods
        for method in methods:
            check_choice(f"method (--methods) for task {task.name}", method, task.methods)
        for name in ("n_images", "n_val", "steps", "restarts", "lasso_iters"):
            _check_at_least(name, getattr(self, name), 1)
        _check_at_least("seed", self.seed, 0)
        for name in ("lr", "lam", "tol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and (value > 0 if name == "lr" else value >= 0)):
                relation = "> 0" if name == "lr" else ">= 0"
                raise ValueError(
                    f"{name} ({_flag(name)}) must be finite and {relation}; received {value}"
                )
        if task.name == "denoise" and self.noise_std not in (None, task.noise_std):
            raise ValueError(
                "noise_std (--noise-std) does not apply to the denoise task: its "
                "noise levels are the swept parameter, set with --params"
            )
        noise = task.noise_std if self.noise_std is None else self.noise_std
        if not (noise >= 0 and math.isfinite(noise)):
            raise ValueError(f"noise_std (--noise-std) must be finite and >= 0; received {noise}")
        params = tuple(task.cast(value) for value in (self.params or task.sweep))
        return dataclasses.replace(
            self, params=params, methods=tuple(dict.fromkeys(methods)), noise_std=float(noise)
        )

    @staticmethod
    def quick(**overrides: object) -> "RecoveryConfig":
        """A fast look: the task's quick sweep, 30 images, 500 steps, 5 restarts."""
        task = get_task(str(overrides.get("task", "cs")))
        settings = {
            "params": task.quick_sweep,
            "n_images": 30,
            "steps": 500,
            "restarts": 5,
            "lasso_iters": 300,
            "n_val": 20,
            "lasso_lambdas": LASSO_LAMBDAS[::2],
        }
        return RecoveryConfig(**(settings | overrides))


Progress = Callable[[dict], None]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_at_least(name: str, value: int, low: int) -> None:
    if not value >= low:
        raise ValueError(f"{name} ({_flag(name)}) must be >= {low}; received {value}")


def run_recovery(
    config: RecoveryConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    dataset: ImageDataset | None = None,
    overwrite: bool = False,
) -> dict:
    """Run the sweep and write every output file into ``out_dir``.

    Files: ``results.csv`` (one row per method, parameter value and image), ``summary.csv``
    and ``summary.json`` (mean and standard error per method and parameter value),
    ``error.png`` (error against the parameter) and ``grid.png`` (originals and
    reconstructions), plus ``progress.json`` and ``reconstructions.npz`` for resuming.

    Args:
        config: the sweep's settings.
        out_dir: output folder; a finished point of an identical earlier run is reused.
        progress: called with {"event": "start", "total", "done"} once the inputs are
            loaded, then with {"event": "point", "param", "method", "mse"} per point.
        dataset: an already loaded dataset (else loaded from ``config.dataset``).
        overwrite: replace the results of a run with other settings in ``out_dir``
            (otherwise that is an error).

    Returns:
        The content of ``summary.json``.
    """
    config = config.resolved()
    task = get_task(config.task)
    out_dir = Path(out_dir)
    dataset = dataset or load_dataset(config.dataset)
    generator = _load_prior(config, dataset) if "vae" in config.methods else None
    x_test = dataset.tensor("test", slice(0, config.n_images))
    if len(x_test) < config.n_images:
        raise ValueError(
            f"n_images (--n-images) must be at most {len(x_test)}, the test images "
            f"of {dataset.name}; received {config.n_images}"
        )
    x_val = _validation_images(dataset, config)
    _check_params(config, task, tuple(x_test.shape[1:]))
    state = _RunState.open(out_dir, config, task, overwrite=overwrite)
    if progress is not None:
        progress(
            {
                "event": "start",
                "total": len(config.params) * len(config.methods),
                "done": len(state.done),
            }
        )

    for param in config.params:
        for method in config.methods:
            if state.is_done(param, method):
                continue
            rows, recovered, history = _run_point(
                config, task, generator, x_test, x_val, param, method
            )
            state.add(param, method, rows, recovered[:GRID_IMAGES], history)
            if progress is not None:
                progress(
                    {
                        "event": "point",
                        "param": param,
                        "method": method,
                        "mse": float(np.mean([row["mse"] for row in rows])),
                    }
                )

    return _write_outputs(out_dir, config, task, dataset, generator, x_test, state)


def _check_params(config: RecoveryConfig, task: Task, shape: tuple[int, ...]) -> None:
    """Build every operator of the sweep once, so a bad value fails before any work."""
    for param in config.params:
        try:
            make_operator(task.operator, shape, param, seed=config.seed)
        except ValueError as error:
            raise ValueError(
                f"--params: {task.param}={param} is invalid for images of shape {shape}: {error}"
            ) from error


def _load_prior(config: RecoveryConfig, dataset: ImageDataset) -> Generator:
    try:
        generator = load_generator(config.checkpoint, output_shape=dataset.image_shape)
    except CheckpointError as error:
        if "output shape" not in str(error):
            raise
        raise CheckpointError(
            f"{error}: the prior does not fit {dataset.name}'s images; train one with "
            f"`genprior train vae --dataset {dataset.name} --out DIR` and pass --checkpoint DIR"
        ) from error
    trained_on = generator.meta.get("data", {}).get("dataset")
    if trained_on not in (None, dataset.name) and not {trained_on, dataset.name} <= {
        "mnist",
        "mnist-5k",
    }:
        raise CheckpointError(
            f"checkpoint {config.checkpoint} was trained on {trained_on}, not on {dataset.name}"
        )
    return generator


def _validation_images(dataset: ImageDataset, config: RecoveryConfig) -> torch.Tensor:
    """n_val training images drawn with the seed: Lasso's lambda is tuned on these."""
    rng = np.random.default_rng(config.seed)
    count = min(config.n_val, len(dataset.train_images))
    indices = np.sort(rng.choice(len(dataset.train_images), size=count, replace=False))
    return dataset.tensor("train", indices.tolist())


def _measure(
    task: Task,
    operator: Operator,
    x: torch.Tensor,
    param: float,
    config: RecoveryConfig,
    seed: int,
) -> torch.Tensor:
    noise = GaussianNoise(task.noise_level(param, config.noise_std))
    with torch.no_grad():
        return noise(operator(x), seed=seed)


def _run_point(
    config: RecoveryConfig,
    task: Task,
    generator: Generator | None,
    x_test: torch.Tensor,
    x_val: torch.Tensor,
    param: float,
    method: str,
) -> tuple[list[dict], torch.Tensor, torch.Tensor | None]:
    """Recover every test image at one parameter value with one method.

    Returns:
        The result rows, the clipped estimates (N, C, H, W) and the objective history (N, T)
        or None.
    """
    operator = make_operator(task.operator, tuple(x_test.shape[1:]), param, seed=config.seed)
    y = _measure(task, operator, x_test, param, config, seed=config.seed + 1)
    solver, lam = _build_solver(config, task, generator, operator, x_val, param, method)

    started = time.perf_counter()
    result: Recovery = solver.solve(operator, y, seed=config.seed + 2)
    seconds = time.perf_counter() - started

    x_hat = result.x.clamp(0, 1)
    mse = (x_hat - x_test).flatten(1).pow(2).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
    rows = [
        {
            "method": method,
            "task": task.name,
            task.param: param,
            "image": i,
            "mse": float(mse[i]),
            "psnr": float(psnr[i]),
            "seconds": seconds / len(x_test),
            "measurement_loss": float(result.measurement_loss[i]),
            "lam": lam,
        }
        for i in range(len(x_test))
    ]
    logger.info(
        "%s %s=%s: mean MSE %.5f in %.1f s", method, task.param, param, float(mse.mean()), seconds
    )
    return rows, x_hat, result.history


def _build_solver(
    config: RecoveryConfig,
    task: Task,
    generator: Generator | None,
    operator: Operator,
    x_val: torch.Tensor,
    param: float,
    method: str,
) -> tuple[object, float]:
    """The solver of ``method`` and its regularisation weight (tuned on validation images
    for the l1-regularised baselines)."""
    if method == "vae":
        return CSGMSolver(
            generator,
            lam=config.lam,
            lr=config.lr,
            steps=config.steps,
            restarts=config.restarts,
            tol=config.tol,
            record_history=config.history,
        ), config.lam
    if method == "pinv":
        return PseudoInverseSolver(), 0.0
    for prefix, (solver_class, tune) in TUNED_BASELINES.items():
        if method.startswith(prefix):
            transform = method.removeprefix(prefix)
            y_val = _measure(task, operator, x_val, param, config, seed=config.seed + 3)
            lam, _ = tune(
                operator, x_val, y_val, transform, config.lasso_lambdas, iters=config.lasso_iters
            )
            return solver_class(transform, lam, iters=config.lasso_iters), float(lam)
    raise OptionError(f"unknown method {method!r}")


class _RunState:
    """Rows and reconstructions of finished points, saved after every point."""

    def __init__(self, out_dir: Path, fingerprint: dict, param_name: str) -> None:
        self.out_dir, self.fingerprint, self.param_name = out_dir, fingerprint, param_name
        self.rows: list[dict] = []
        self.done: list[list] = []
        self.recovered: dict[str, np.ndarray] = {}
        self.histories: dict[str, np.ndarray] = {}

    @classmethod
    def open(
        cls, out_dir: Path, config: RecoveryConfig, task: Task, *, overwrite: bool = False
    ) -> "_RunState":
        """Start a run in ``out_dir``, or resume the identical run saved there.

        Raises:
            ValueError: ``out_dir`` is not a usable folder, or it holds a run with other
                settings and ``overwrite`` is False.
        """
        _make_folder(out_dir)
        fingerprint = json.loads(json.dumps(dataclasses.asdict(config)))
        state = cls(out_dir, fingerprint, task.param)
        saved = _read_progress(out_dir)
        if saved is None:
            return state
        changed = sorted(key for key in fingerprint if saved.get(key) != fingerprint[key])
        if "unknown" in saved:
            changed = [saved["unknown"]]
        if changed:
            if not overwrite:
                raise ValueError(
                    f"--out {out_dir} holds another run (differing in {', '.join(changed)}); "
                    "choose another --out, or pass --overwrite to replace it"
                )
            for name in OUTPUT_FILES:
                (out_dir / name).unlink(missing_ok=True)
            return state
        state._load(task, [tuple(point) for point in saved.get("done", [])])
        return state

    def _load(self, task: Task, done: list[tuple]) -> None:
        """Reload the finished points; rows of an unfinished point are dropped."""
        try:
            rows = [_typed_row(row, task) for row in read_csv(self.out_dir / "results.csv")]
            self.recovered = _read_npz(self.out_dir / "reconstructions.npz")
            self.histories = _read_npz(self.out_dir / "history.npz", missing_ok=True)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            logger.warning("cannot resume from %s (%s); starting afresh", self.out_dir, error)
            return
        self.done = [[task.cast(param), method] for param, method in done]
        self.rows = [row for row in rows if [row[task.param], row["method"]] in self.done]
        logger.info("resuming %s: %d points already done", self.out_dir, len(self.done))

    def is_done(self, param: float, method: str) -> bool:
        return [param, method] in self.done

    def add(
        self,
        param: float,
        method: str,
        rows: list[dict],
        recovered: torch.Tensor,
        history: torch.Tensor | None = None,
    ) -> None:
        key = f"{method}@{param}"
        self.rows.extend(rows)
        self.done.append([param, method])
        self.recovered[key] = recovered.squeeze(1).numpy()
        write_csv_atomic(self.out_dir / "results.csv", self.rows, self.columns())
        write_npz_atomic(self.out_dir / "reconstructions.npz", self.recovered)
        if history is not None:
            self.histories[key] = history.numpy()
            write_npz_atomic(self.out_dir / "history.npz", self.histories)
        write_json_atomic(
            self.out_dir / "progress.json", {"config": self.fingerprint, "done": self.done}
        )

    def columns(self) -> list[str]:
        return [self.param_name if c == "PARAM" else c for c in RESULT_COLUMNS]


OUTPUT_FILES = (
    "progress.json",
    "results.csv",
    "summary.csv",
    "summary.json",
    "error.png",
    "grid.png",
    "reconstructions.npz",
    "history.npz",
)


def _make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise ValueError(f"--out {out_dir} must be a folder; a file is in the way") from error


def _read_progress(out_dir: Path) -> dict | None:
    """The saved settings (with their "done" points) of a run in ``out_dir``, if any."""
    path = out_dir / "progress.json"
    if not path.is_file():
        if (out_dir / "results.csv").is_file():
            return {"done": [], "unknown": "results.csv without progress.json"}
        return None
    try:
        saved = json.loads(path.read_text())
        return saved["config"] | {"done": saved["done"]}
    except (json.JSONDecodeError, KeyError, TypeError):
        return {"done": [], "unknown": "an unreadable progress.json"}


def _read_npz(path: Path, *, missing_ok: bool = False) -> dict[str, np.ndarray]:
    if missing_ok and not path.is_file():
        return {}
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def _typed_row(row: dict, task: Task) -> dict:
    typed: dict = {"method": row["method"], "task": row["task"], "image": int(row["image"])}
    for key in ("mse", "psnr", "seconds", "measurement_loss", "lam"):
        typed[key] = float(row[key])
    typed[task.param] = task.cast(float(row[task.param]))
    return typed


def _write_outputs(
    out_dir: Path,
    config: RecoveryConfig,
    task: Task,
    dataset: ImageDataset,
    generator: Generator | None,
    x_test: torch.Tensor,
    state: "_RunState",
) -> dict:
    rows = [row for row in state.rows if [row[task.param], row["method"]] in state.done]
    summary = report.summarise(rows, ("method", task.param), ("mse", "psnr", "seconds"))
    lams = {(row["method"], row[task.param]): row["lam"] for row in rows}
    for entry in summary:
        entry["lam"] = lams[(entry["method"], entry[task.param])]
    document = {
        "task": task.name,
        "param": task.param,
        "config": dataclasses.asdict(config),
        "dataset": {
            "name": dataset.name,
            "fingerprint": dataset.fingerprint,
            "source": dataset.source,
        },
        "prior": None
        if generator is None
        else {
            "checkpoint": config.checkpoint,
            "command": generator.meta.get("command"),
            "data": generator.meta.get("data"),
        },
        "noise": "per-measurement std noise_std/sqrt(m) with A ~ N(0, 1/m)"
        if task.normalise_noise
        else "per-pixel std",
        "summary": summary,
    }
    write_csv_atomic(out_dir / "summary.csv", summary)
    write_json_atomic(out_dir / "summary.json", document)
    report.plot_error_curves(
        summary,
        task.param,
        out_dir / "error.png",
        log_x=task.param == "m",
        title=f"{task.name} on {dataset.name}, {len(x_test)} test images",
    )
    _plot_grid(out_dir, config, task, x_test, state.recovered)
    return document


def _plot_grid(
    out_dir: Path,
    config: RecoveryConfig,
    task: Task,
    x_test: torch.Tensor,
    recovered: dict[str, np.ndarray],
) -> None:
    shown = config.params if len(config.params) <= 4 else config.params[1::2][:4]
    rows = [("original", x_test[:GRID_IMAGES].squeeze(1).numpy())]
    for param in shown:
        for method in config.methods:
            key = f"{method}@{param}"
            if key in recovered:
                rows.append((f"{method}\n{task.param}={param:g}", recovered[key]))
    report.plot_image_grid(rows, out_dir / "grid.png", title=f"{task.name}: reconstructions")
