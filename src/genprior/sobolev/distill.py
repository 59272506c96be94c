"""``genprior sobolev distill``: a teacher network distilled into a smaller student, with and
without matching the teacher's directional derivatives.

The teacher is a fixed random tanh network D -> P with enlarged weights (so it is clearly
nonlinear); inputs are standard Gaussian. For each number of transfer points n and seed, two
copies of the same student are trained for the same number of full-batch Adam steps: on the
teacher's outputs alone (``values``) or also on its derivatives along K random unit
directions per point (``sobolev``, the stochastic variant). Test errors on held-out points
are relative mean squared errors, averaged over the P outputs: of the values
(``test_error``) and of the derivatives along fresh random directions
(``derivative_error``).
"""

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genprior.sobolev import output
from genprior.sobolev.derivatives import directional_derivatives
from genprior.sobolev.loss import make_sobolev_data, random_directions
from genprior.sobolev.training import METHODS, FitConfig, fit, mlp

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "n_train",
    "method",
    "test_error_mean",
    "test_error_sem",
    "derivative_error_mean",
    "derivative_error_sem",
]


@dataclass(frozen=True)
class DistillConfig:
    """Settings of the distillation comparison.

    Attributes:
        dim: input dimension D.
        outputs: teacher and student outputs P.
        teacher_hidden: teacher's hidden widths.
        teacher_gain: factor on the teacher's default initial weights (larger: less linear).
        student_hidden: student's hidden widths.
        n_train: numbers of transfer points.
        directions: random unit directions per transfer point K for derivative matching.
        seeds: independent teachers, data and student initialisations.
        steps: full-batch Adam steps (the same for both methods).
        lr: initial learning rate (cosine decay to lr/100).
        derivative_weight: weight of the derivative term.
        n_test: held-out points.
        seed: base seed.
    """

    dim: int = 8
    outputs: int = 4
    teacher_hidden: tuple[int, ...] = (128, 128)
    teacher_gain: float = 2.5
    student_hidden: tuple[int, ...] = (48, 48)
    n_train: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    directions: int = 2
    seeds: int = 5
    steps: int = 1500
    lr: float = 1e-2
    derivative_weight: float = 1.0
    n_test: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "outputs", "directions", "seeds", "steps", "n_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}")
        if not self.n_train or min(self.n_train) < 1:
            raise ValueError(f"n_train must be positive; received {self.n_train}")

    @staticmethod
    def quick(**overrides: object) -> "DistillConfig":
        """About a minute on two cores: three data sizes, 5 seeds, 300 steps."""
        settings = {"n_train": (16, 64, 256), "steps": 300, "n_test": 1000}
        return DistillConfig(**(settings | overrides))


def make_teacher(config: DistillConfig, seed: int) -> torch.nn.Module:
    """A random tanh network with weights scaled by ``teacher_gain``, frozen."""
    teacher = mlp(config.dim, config.teacher_hidden, config.outputs, seed=seed)
    with torch.no_grad():
        for layer in teacher:
            if isinstance(layer, torch.nn.Linear):
                layer.weight *= config.teacher_gain
    return teacher.requires_grad_(False)


def _relative_mse(estimate: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over outputs of mean squared error / variance; the last axis indexes outputs."""
    flat_estimate = estimate.reshape(-1, estimate.shape[-1])
    flat_target = target.reshape(-1, target.shape[-1])
    errors = (flat_estimate - flat_target).pow(2).mean(0) / flat_target.var(0)
    return float(errors.mean())


def run_one(config: DistillConfig, n: int, seed: int) -> list[dict]:
    """Distil one teacher into two copies of one student; one row per method."""
    teacher = make_teacher(config, seed=1000 + seed)
    generator = torch.Generator().manual_seed(10_000 * seed + n)
    x = torch.randn(n, config.dim, generator=generator)
    train = make_sobolev_data(teacher, x, directions=config.directions, generator=generator)
    x_test = torch.randn(config.n_test, config.dim, generator=generator)
    v_test = random_directions(config.n_test, 1, config.dim, generator=generator)
    y_test, dy_test = directional_derivatives(teacher, x_test, v_test, create_graph=False)
    fit_config = FitConfig(
        steps=config.steps, lr=config.lr, derivative_weight=config.derivative_weight
    )
    rows = []
    for method in METHODS:
        student = mlp(config.dim, config.student_hidden, config.outputs, seed=seed)
        started = time.perf_counter()
        losses = fit(student, train, method, fit_config)
        seconds = time.perf_counter() - started
        y_hat, dy_hat = directional_derivatives(student, x_test, v_test, create_graph=False)
        rows.append(
            {
                "n_train": n,
                "method": method,
                "seed": seed,
                "test_error": _relative_mse(y_hat, y_test),
                "derivative_error": _relative_mse(dy_hat, dy_test),
                "final_train_loss": losses[-1],
                "seconds": seconds,
            }
        )
    return rows


def run_distill(
    config: DistillConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Run every (n, seed) and write results.csv, summary.csv, summary.json and distill.png.

    Returns:
        The content of summary.json.
    """
    grid = [
        (n, seed)
        for n in config.n_train
        for seed in range(config.seed, config.seed + config.seeds)
    ]
    if progress is not None:
        progress({"event": "start", "total": len(grid)})
    results = []
    for n, seed in grid:
        rows = run_one(config, n, seed)
        results += rows
        logger.info("n=%d seed=%d: %s", n, seed, rows)
        if progress is not None:
            progress({"event": "run", "n_train": n})
    summary = output.mean_sem_table(
        results, ("n_train", "method"), ("test_error", "derivative_error")
    )
    document = {
        "experiment": "sobolev distill",
        "errors": "relative MSE averaged over outputs, of values and of derivatives along "
        "random unit directions, on held-out Gaussian points",
        "config": dataclasses.asdict(config),
        "summary": summary,
    }
    output.write_tables(out_dir, results, summary, SUMMARY_COLUMNS, document)
    _plot(Path(out_dir), summary)
    return document


def _plot(out_dir: Path, summary: list[dict]) -> None:
    from genprior.experiments.report import pyplot, save_figure

    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, metric, label in (
        (axes[0], "test_error", "values"),
        (axes[1], "derivative_error", "directional derivatives"),
    ):
        for method in METHODS:
            points = [r for r in summary if r["method"] == method]
            axis.errorbar(
                [r["n_train"] for r in points],
                [r[f"{metric}_mean"] for r in points],
                yerr=[r[f"{metric}_sem"] for r in points],
                marker="o",
                capsize=3,
                label=method,
            )
        sizes = sorted({r["n_train"] for r in summary})
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(sizes, [str(n) for n in sizes])
        axis.xaxis.set_minor_locator(plt.NullLocator())
        axis.set_xlabel("transfer points")
        axis.set_ylabel(f"relative test MSE of {label}")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    save_figure(figure, out_dir / "distill.png")


def format_summary(document: dict) -> str:
    """A text table: one line per n, both methods' value and derivative errors."""
    cell = {(r["n_train"], r["method"]): r for r in document["summary"]}
    sizes = list(dict.fromkeys(r["n_train"] for r in document["summary"]))
    lines = [
        f"{'n':>6}{'values: value err':>24}{'sobolev: value err':>24}"
        f"{'values: deriv err':>24}{'sobolev: deriv err':>24}"
    ]
    for n in sizes:
        cells = [
            f"{cell[(n, m)][f'{k}_mean']:.4f} +- {cell[(n, m)][f'{k}_sem']:.4f}"
            for k in ("test_error", "derivative_error")
            for m in METHODS
        ]
        lines.append(f"{n:>6}" + "".join(f"{c:>24}" for c in cells))
    return "\n".join(lines)
