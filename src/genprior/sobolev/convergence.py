"""``genprior sobolev convergence``: gradient descent on the Sobolev loss of a two-layer ReLU
network, against width and input separation (our own sweep; the paper's width bound and
separation constant are not reproduced).

For each separation delta and seed: n points on the unit sphere whose closest pair is exactly
delta apart, one random tangent direction per point, and random targets y, dy ~ N(0, 1)
("any values and any derivatives"). For each width m, a fresh network is trained by
full-batch gradient descent (step 1/lambda_max of the initial Gram matrix) until both mean
squared residuals fall below ``tol`` or ``steps`` run out. Separately, the smallest eigenvalue
of the value-and-derivative Gram matrix at initialisation is computed against delta, for a
finite width and for the infinite-width limit.
"""

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genprior.io import write_csv_atomic
from genprior.sobolev import output
from genprior.sobolev.two_layer import (
    TwoLayerReLU,
    gradient_flow,
    gram_matrix,
    limit_gram_matrix,
    min_separation,
    sample_separated_sphere,
    smallest_eigenvalue,
    tangent_directions,
)

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["width", "separation", "final_value_loss", "final_derivative_loss"]


@dataclass(frozen=True)
class ConvergenceConfig:
    """Settings of the convergence sweep.

    Attributes:
        n: number of training points.
        dim: input dimension D (points on S^{D-1}).
        directions: tangent directions per point K.
        widths: hidden widths m to train.
        separations: minimum pairwise distances delta of the training points.
        steps: maximum gradient-descent iterations per run.
        tol: a run has converged when both mean squared residuals are below this.
        seeds: independent draws of data and initialisation per (width, separation).
        gram_separations: separations at which the Gram matrix's smallest eigenvalue is
            computed (at initialisation).
        gram_width: the finite width of that Gram matrix (the infinite-width limit too).
        seed: base seed; run s uses seed + s.
    """

    n: int = 16
    dim: int = 5
    directions: int = 1
    widths: tuple[int, ...] = (16, 64, 256, 1024, 4096, 16384)
    separations: tuple[float, ...] = (0.2, 0.5, 1.0)
    steps: int = 20000
    tol: float = 1e-6
    seeds: int = 3
    gram_separations: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    gram_width: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n", "dim", "directions", "steps", "seeds", "gram_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be positive integers; received {self.widths}")
        if not self.separations or min(self.separations) <= 0:
            raise ValueError(f"separations must be positive; received {self.separations}")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0; received {self.tol}")

    @staticmethod
    def quick(**overrides: object) -> "ConvergenceConfig":
        """About a minute on two cores: 10 points in D=4, widths up to 4096, one seed."""
        settings = {
            "n": 10,
            "dim": 4,
            "widths": (4, 16, 64, 256, 1024, 4096),
            "separations": (0.3, 0.5, 1.0),
            "steps": 6000,
            "seeds": 1,
            "gram_separations": (0.02, 0.05, 0.1, 0.2, 0.5),
            "gram_width": 1024,
        }
        return ConvergenceConfig(**(settings | overrides))


def _problem(config: ConvergenceConfig, separation: float, seed: int) -> tuple[torch.Tensor, ...]:
    """Points (n, D), tangent directions (n, K, D) and random targets y (n,), dy (n, K)."""
    x = sample_separated_sphere(config.n, config.dim, separation, seed=seed, tight=True)
    generator = torch.Generator().manual_seed(seed + 7919)
    v = tangent_directions(x, config.directions, generator=generator)
    y = torch.randn(config.n, generator=generator, dtype=x.dtype)
    dy = torch.randn(config.n, config.directions, generator=generator, dtype=x.dtype)
    return x, v, y, dy


def run_convergence(
    config: ConvergenceConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Run the sweep and write results.csv, curves.csv, gram.csv, summary.csv, summary.json,
    loss_curves.png, transition.png and gram.png into ``out_dir``.

    Args:
        config: the sweep's settings.
        out_dir: output folder.
        progress: called with {"event": "start", "total"} and then {"event": "run", ...}
            after each training run.

    Returns:
        The content of summary.json.
    """
    out_dir = Path(out_dir)
    runs = [
        (separation, width, seed)
        for separation in config.separations
        for seed in range(config.seed, config.seed + config.seeds)
        for width in config.widths
    ]
    if progress is not None:
        progress({"event": "start", "total": len(runs)})
    results, curves = [], []
    problems: dict[tuple[float, int], tuple[torch.Tensor, ...]] = {}
    record_every = max(1, config.steps // 300)
    for separation, width, seed in runs:
        if (separation, seed) not in problems:
            problems[(separation, seed)] = _problem(config, separation, seed)
        x, v, y, dy = problems[(separation, seed)]
        model = TwoLayerReLU(config.dim, width, seed=seed + 104729 * width)
        gram_init = smallest_eigenvalue(gram_matrix(model, x, v))
        started = time.perf_counter()
        flow = gradient_flow(
            model, x, y, v, dy, steps=config.steps, tol=config.tol, record_every=record_every
        )
        row = {
            "separation": separation,
            "width": width,
            "seed": seed,
            "min_distance": min_separation(x),
            "steps_run": flow.steps[-1],
            "final_value_loss": flow.value_loss[-1],
            "final_derivative_loss": flow.derivative_loss[-1],
            "reached_tol": flow.converged,
            "step_size": flow.step_size,
            "gram_min_eig_init": gram_init,
            "seconds": time.perf_counter() - started,
        }
        results.append(row)
        curves += [
            {"separation": separation, "width": width, "seed": seed, "step": step}
            | {"value_loss": value, "derivative_loss": derivative}
            for step, value, derivative in zip(flow.steps, flow.value_loss, flow.derivative_loss)
        ]
        logger.info("delta=%g m=%d seed=%d: %s", separation, width, seed, row)
        if progress is not None:
            progress({"event": "run"} | row)
    gram = _gram_sweep(config)
    return _write(out_dir, config, results, curves, gram)


def _gram_sweep(config: ConvergenceConfig) -> list[dict]:
    """Smallest Gram eigenvalue at initialisation against separation, per seed."""
    rows = []
    for separation in config.gram_separations:
        for seed in range(config.seed, config.seed + config.seeds):
            x, v, _, _ = _problem(config, separation, seed)
            model = TwoLayerReLU(config.dim, config.gram_width, seed=seed)
            rows.append(
                {
                    "separation": separation,
                    "seed": seed,
                    "min_distance": min_separation(x),
                    "limit_min_eig": smallest_eigenvalue(limit_gram_matrix(x, v)),
                    "finite_min_eig": smallest_eigenvalue(gram_matrix(model, x, v)),
                    "gram_width": config.gram_width,
                }
            )
    return rows


def _summary(results: list[dict], config: ConvergenceConfig) -> tuple[list[dict], list[dict]]:
    """Worst seed's final losses per (width, separation), and the width reaching tol."""
    summary = []
    for separation in config.separations:
        for width in config.widths:
            group = [r for r in results if r["width"] == width and r["separation"] == separation]
            summary.append(
                {
                    "width": width,
                    "separation": separation,
                    "final_value_loss": max(r["final_value_loss"] for r in group),
                    "final_derivative_loss": max(r["final_derivative_loss"] for r in group),
                    "seeds_reached_tol": sum(r["reached_tol"] for r in group),
                    "all_seeds_reached_tol": all(r["reached_tol"] for r in group),
                    "median_steps": sorted(r["steps_run"] for r in group)[len(group) // 2],
                }
            )
    thresholds = []
    for separation in config.separations:
        rows = sorted(
            (r for r in summary if r["separation"] == separation), key=lambda r: r["width"]
        )
        width = None
        for i, row in enumerate(rows):  # the smallest width from which every wider one reaches
            if all(later["all_seeds_reached_tol"] for later in rows[i:]):
                width = row["width"]
                break
        thresholds.append({"separation": separation, "width_reaching_tol": width})
    return summary, thresholds


def _write(
    out_dir: Path,
    config: ConvergenceConfig,
    results: list[dict],
    curves: list[dict],
    gram: list[dict],
) -> dict:
    summary, thresholds = _summary(results, config)
    document = {
        "experiment": "sobolev convergence",
        "formulation": "ours: f(x) = m^-1/2 sum_r a_r relu(w_r.x), only W trained, "
        "L = 1/2 sum (value residual)^2 + 1/2 sum (derivative residual)^2; "
        "losses reported as mean squared residuals; final losses are the worst seed's",
        "config": dataclasses.asdict(config),
        "summary": summary,
        "width_reaching_tol": thresholds,
        "gram": output.mean_sem_table(
            gram, ("separation",), ("min_distance", "limit_min_eig", "finite_min_eig")
        ),
    }
    output.write_tables(out_dir, results, summary, SUMMARY_COLUMNS, document)
    write_csv_atomic(out_dir / "curves.csv", curves)
    write_csv_atomic(out_dir / "gram.csv", gram)
    write_csv_atomic(out_dir / "threshold.csv", thresholds)
    _plot_curves(out_dir, config, curves)
    _plot_transition(out_dir, config, summary)
    _plot_gram(out_dir, document["gram"], config)
    return document


def _plot_curves(out_dir: Path, config: ConvergenceConfig, curves: list[dict]) -> None:
    from genprior.experiments.report import pyplot, save_figure

    plt = pyplot()
    figure, axes = plt.subplots(
        1, len(config.separations), figsize=(4.2 * len(config.separations), 3.6), squeeze=False
    )
    colours = plt.cm.viridis(
        [i / max(len(config.widths) - 1, 1) for i in range(len(config.widths))]
    )
    for axis, separation in zip(axes[0], config.separations):
        for colour, width in zip(colours, config.widths):
            points = [
                c
                for c in curves
                if c["separation"] == separation
                and c["width"] == width
                and c["seed"] == config.seed
            ]
            axis.plot(
                [p["step"] for p in points],
                [p["value_loss"] + p["derivative_loss"] for p in points],
                color=colour,
                label=f"m={width}",
            )
        axis.axhline(config.tol, color="grey", linestyle="--", linewidth=1)
        axis.set_yscale("log")
        axis.set_xlabel("gradient-descent iteration")
        axis.set_title(f"separation {separation:g}, n={config.n}, D={config.dim}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("value + derivative MSE")
    axes[0][-1].legend(fontsize=7)
    save_figure(figure, out_dir / "loss_curves.png")


def _plot_transition(out_dir: Path, config: ConvergenceConfig, summary: list[dict]) -> None:
    from genprior.experiments.report import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for separation in config.separations:
        rows = [r for r in summary if r["separation"] == separation]
        for key, style in (("final_value_loss", "-o"), ("final_derivative_loss", "--s")):
            axis.plot(
                [r["width"] for r in rows],
                [max(r[key], 1e-16) for r in rows],
                style,
                label=f"delta={separation:g} {key.split('_')[1]}",
            )
    axis.axhline(config.tol, color="grey", linestyle=":", linewidth=1)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("width m")
    axis.set_ylabel(f"final MSE after <= {config.steps} steps (worst seed)")
    axis.set_title("two-layer ReLU, Sobolev loss: width transition")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    save_figure(figure, out_dir / "transition.png")


def _plot_gram(out_dir: Path, gram: list[dict], config: ConvergenceConfig) -> None:
    from genprior.experiments.report import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    separations = [r["separation"] for r in gram]
    for key, label in (
        ("limit_min_eig", "infinite width"),
        ("finite_min_eig", f"width {config.gram_width}"),
    ):
        axis.errorbar(
            separations,
            [r[f"{key}_mean"] for r in gram],
            yerr=[r[f"{key}_sem"] for r in gram],
            marker="o",
            capsize=3,
            label=label,
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("minimum distance between inputs (separation)")
    axis.set_ylabel("smallest eigenvalue of the Gram matrix at init")
    axis.set_title(f"value-and-derivative Gram, n={config.n}, D={config.dim}")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    save_figure(figure, out_dir / "gram.png")


def format_summary(document: dict) -> str:
    """A text table of the worst seed's final losses, and the width reaching tol."""
    seeds = document["config"]["seeds"]
    lines = [
        f"{'separation':>10} {'width':>7} {'value MSE':>11} {'deriv MSE':>11} "
        f"{'reached':>8} {'median steps':>13}"
    ]
    for row in document["summary"]:
        lines.append(
            f"{row['separation']:>10g} {row['width']:>7d} {row['final_value_loss']:>11.2e} "
            f"{row['final_derivative_loss']:>11.2e} {row['seeds_reached_tol']:>6d}/{seeds:<1d} "
            f"{row['median_steps']:>13d}"
        )
    lines.append("(MSEs: the worst seed's; reached: seeds with both MSEs below tol)")
    tol = document["config"]["tol"]
    for entry in document["width_reaching_tol"]:
        width = entry["width_reaching_tol"]
        lines.append(
            f"separation {entry['separation']:g}: both MSEs < {tol:g} from width "
            f"{width if width is not None else '(none tried)'}"
        )
    lines.append("smallest Gram eigenvalue at init (mean over seeds):")
    for row in document["gram"]:
        lines.append(
            f"  separation {row['separation']:g}: limit {row['limit_min_eig_mean']:.3e}, "
            f"finite {row['finite_min_eig_mean']:.3e}"
        )
    return "\n".join(lines)
