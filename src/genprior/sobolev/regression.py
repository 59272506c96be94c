"""``genprior sobolev regression``: value-only against Sobolev training on test functions.

For each test function, dimension D, number of training points n and seed: n points uniform
in the function's box, their values and derivatives (the full gradient by default, or K
random unit directions per point); two copies of the same initial network are trained for
the same number of full-batch Adam steps, one on the values alone (``values``), one on values
and derivatives (``sobolev``). Test error is the relative mean squared error of the values,
mean((f_hat - f)^2) / var(f), on held-out uniform points. Inputs are scaled to [-1, 1]^D and
values standardised with the training set's mean and standard deviation (derivatives scaled
to match).

The method ``sobolev`` uses one declared derivative weight. The result depends strongly on
that weight (with few points in high dimension a weight near 1 makes the network match steep
gradients and extrapolate wildly), so every run also trains Sobolev copies at each weight of
``sweep_weights`` and writes their errors to ``sensitivity.csv``. The default weight, 1e-3,
was chosen on a pilot sweep with seeds 0-2; the default runs use seeds from 10, disjoint from
the pilot.
"""

import dataclasses
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genprior.errors import check_choice
from genprior.io import write_csv_atomic
from genprior.sobolev import output
from genprior.sobolev.functions import FUNCTIONS, BenchmarkFunction, get_function
from genprior.sobolev.loss import SobolevData, make_sobolev_data
from genprior.sobolev.training import METHODS, FitConfig, fit, mlp

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["function", "dim", "n_train", "method", "test_error_mean", "test_error_sem"]
SENSITIVITY_COLUMNS = [
    "function",
    "dim",
    "n_train",
    "derivative_weight",
    "test_error_mean",
    "test_error_sem",
]


@dataclass(frozen=True)
class RegressionConfig:
    """Settings of the regression comparison.

    Attributes:
        functions: test functions, names from :data:`genprior.sobolev.functions.FUNCTIONS`.
        dims: input dimensions D.
        n_train: numbers of training points (the same for both methods).
        seeds: independent draws of data and initialisation (>= 5 for the README table).
        directions: derivative directions per point: None for the full gradient, else K
            random unit directions.
        hidden: hidden widths of the network.
        activation: tanh, silu or softplus.
        steps: full-batch Adam steps (the same for both methods).
        lr: initial learning rate (cosine decay to lr/100).
        derivative_weight: weight of the derivative term for the method ``sobolev``.
        sweep_weights: further derivative weights trained on the same data for
            ``sensitivity.csv`` (may be empty).
        n_test: held-out test points.
        seed: base seed (seeds run from ``seed`` to ``seed + seeds - 1``).
    """

    functions: tuple[str, ...] = ("styblinski-tang", "rosenbrock", "ackley", "rastrigin")
    dims: tuple[int, ...] = (2, 5, 10)
    n_train: tuple[int, ...] = (10, 30, 100, 300)
    seeds: int = 5
    directions: int | None = None
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    steps: int = 1500
    lr: float = 1e-2
    derivative_weight: float = 1e-3
    sweep_weights: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
    n_test: int = 2000
    seed: int = 10

    def __post_init__(self) -> None:
        for name in self.functions:
            check_choice("function", name, list(FUNCTIONS))
            if min(self.dims) < get_function(name).min_dim:
                raise ValueError(
                    f"function {name} needs dim >= {get_function(name).min_dim}; "
                    f"received dims {self.dims}"
                )
        for name in ("seeds", "steps", "n_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}")
        if not self.dims or min(self.dims) < 1 or not self.n_train or min(self.n_train) < 1:
            raise ValueError(
                f"dims and n_train must be positive; received {self.dims}, {self.n_train}"
            )
        weights = (self.derivative_weight, *self.sweep_weights)
        if not all(math.isfinite(w) and w > 0 for w in weights):
            raise ValueError(
                f"derivative_weight and sweep_weights must be positive and finite; received "
                f"{self.derivative_weight} and {self.sweep_weights}"
            )
        if self.directions is not None and self.directions < 1:
            raise ValueError(f"directions must be None or >= 1; received {self.directions}")

    @staticmethod
    def quick(**overrides: object) -> "RegressionConfig":
        """One to two minutes on two cores: three functions in D=2 and 5, 5 seeds, 300 steps,
        a sweep over two derivative weights."""
        settings = {
            "functions": ("styblinski-tang", "rosenbrock", "ackley"),
            "dims": (2, 5),
            "n_train": (20, 80),
            "hidden": (32, 32),
            "steps": 300,
            "n_test": 1000,
            "sweep_weights": (1e-3, 1.0),
        }
        return RegressionConfig(**(settings | overrides))


def _seed_of(*parts: object) -> int:
    """A stable seed from the run's coordinates (not Python's salted hash)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def _standardised(
    function: BenchmarkFunction, data: SobolevData, mean: float, std: float
) -> SobolevData:
    """Data in scaled coordinates u = x / h, (y - mean) / std, derivatives times h / std."""
    h = function.half_width
    return SobolevData(
        (data.x / h).float(),
        ((data.y - mean) / std).float(),
        data.v.float(),
        (data.dy * h / std).float(),
    )


def run_one(config: RegressionConfig, name: str, dim: int, n: int, seed: int) -> list[dict]:
    """Train every method on one draw from the same initial network.

    Returns:
        One row for ``values``, one for ``sobolev`` at ``derivative_weight`` and one per
        further weight of ``sweep_weights`` (method ``sobolev-sweep``).
    """
    function = get_function(name)
    generator = torch.Generator().manual_seed(_seed_of(name, dim, n, seed))
    x = function.sample(n, dim, generator)
    raw = make_sobolev_data(
        function.function, x, directions=config.directions, generator=generator
    )
    mean, std = float(raw.y.mean()), float(raw.y.std()) if n > 1 else 1.0
    std = std if std > 0 else 1.0
    train = _standardised(function, raw, mean, std)
    x_test = function.sample(config.n_test, dim, generator)
    with torch.no_grad():
        y_test = function.function(x_test)

    runs = [("values", 0.0), ("sobolev", config.derivative_weight)]
    sweep = sorted(set(config.sweep_weights) - {config.derivative_weight})
    runs += [("sobolev-sweep", weight) for weight in sweep]
    rows = []
    for method, weight in runs:
        model = _Scalar(
            mlp(dim, config.hidden, 1, activation=config.activation, seed=_seed_of("init", seed))
        )
        fit_config = FitConfig(steps=config.steps, lr=config.lr, derivative_weight=weight)
        started = time.perf_counter()
        losses = fit(model, train, "values" if method == "values" else "sobolev", fit_config)
        seconds = time.perf_counter() - started
        with torch.no_grad():
            prediction = model((x_test / function.half_width).float()).double() * std + mean
        rows.append(
            {
                "function": name,
                "dim": dim,
                "n_train": n,
                "method": method,
                "derivative_weight": weight,
                "seed": seed,
                "test_error": float((prediction - y_test).pow(2).mean() / y_test.var()),
                "final_train_loss": losses[-1],
                "seconds": seconds,
            }
        )
    return rows


class _Scalar(torch.nn.Module):
    """A one-output network seen as a scalar function, (B, D) -> (B,)."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).squeeze(-1)


def run_regression(
    config: RegressionConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Run every (function, dim, n, seed) and write results.csv, summary.csv, summary.json
    and regression.png into ``out_dir``.

    Returns:
        The content of summary.json.
    """
    grid = [
        (name, dim, n, seed)
        for name in config.functions
        for dim in config.dims
        for n in config.n_train
        for seed in range(config.seed, config.seed + config.seeds)
    ]
    if progress is not None:
        progress({"event": "start", "total": len(grid)})
    results = []
    for name, dim, n, seed in grid:
        rows = run_one(config, name, dim, n, seed)
        results += rows
        logger.info("%s D=%d n=%d seed=%d: %s", name, dim, n, seed, rows)
        if progress is not None:
            progress({"event": "run", "function": name, "dim": dim, "n_train": n})
    main_rows = [row for row in results if row["method"] in METHODS]
    summary = output.mean_sem_table(
        main_rows, ("function", "dim", "n_train", "method"), ("test_error",)
    )
    sensitivity = output.mean_sem_table(
        results, ("function", "dim", "n_train", "derivative_weight"), ("test_error",)
    )
    document = {
        "experiment": "sobolev regression",
        "test_error": "relative MSE of values on held-out points: mean((f_hat - f)^2) / var(f)",
        "config": dataclasses.asdict(config),
        "summary": summary,
        "sobolev_wins": _wins(summary),
        "sensitivity": sensitivity,
        "sensitivity_wins": _sensitivity_wins(sensitivity),
    }
    output.write_tables(out_dir, results, summary, SUMMARY_COLUMNS, document)
    write_csv_atomic(Path(out_dir) / "sensitivity.csv", sensitivity, SENSITIVITY_COLUMNS)
    _plot(Path(out_dir), config, summary)
    return document


def _wins(summary: list[dict]) -> dict:
    """How many (function, dim, n) cells have a lower mean test error with Sobolev training."""
    cell = {(r["function"], r["dim"], r["n_train"], r["method"]): r for r in summary}
    keys = {(r["function"], r["dim"], r["n_train"]) for r in summary}
    wins = sum(
        cell[(*key, "sobolev")]["test_error_mean"] < cell[(*key, "values")]["test_error_mean"]
        for key in keys
    )
    return {"sobolev_lower_mean": wins, "cells": len(keys)}


def _sensitivity_wins(sensitivity: list[dict]) -> dict:
    """Per derivative weight: in how many cells Sobolev beats value-only training (weight 0)."""
    cell = {
        (r["function"], r["dim"], r["n_train"], r["derivative_weight"]): r for r in sensitivity
    }
    keys = {(r["function"], r["dim"], r["n_train"]) for r in sensitivity}
    weights = sorted({r["derivative_weight"] for r in sensitivity} - {0.0})
    wins = {}
    for weight in weights:
        wins[str(weight)] = sum(
            cell[(*key, weight)]["test_error_mean"] < cell[(*key, 0.0)]["test_error_mean"]
            for key in keys
        )
    return {"sobolev_lower_mean_by_weight": wins, "cells": len(keys)}


def _plot(out_dir: Path, config: RegressionConfig, summary: list[dict]) -> None:
    from genprior.experiments.report import pyplot, save_figure

    plt = pyplot()
    rows, cols = len(config.functions), len(config.dims)
    figure, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False, layout="constrained"
    )
    for i, name in enumerate(config.functions):
        for j, dim in enumerate(config.dims):
            axis = axes[i][j]
            for method in METHODS:
                points = [
                    r
                    for r in summary
                    if r["function"] == name and r["dim"] == dim and r["method"] == method
                ]
                axis.errorbar(
                    [r["n_train"] for r in points],
                    [r["test_error_mean"] for r in points],
                    yerr=[r["test_error_sem"] for r in points],
                    marker="o",
                    capsize=3,
                    label=method,
                )
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xticks(list(config.n_train), [str(n) for n in config.n_train])
            axis.xaxis.set_minor_locator(plt.NullLocator())
            axis.set_title(f"{name}, D={dim}", fontsize=9)
            axis.grid(True, which="both", alpha=0.3)
    for axis in axes[-1]:
        axis.set_xlabel("training points")
    for axis in axes[:, 0]:
        axis.set_ylabel("relative test MSE")
    axes[0][0].legend(fontsize=8)
    save_figure(figure, out_dir / "regression.png")


def format_summary(document: dict) -> str:
    """A text table: one line per (function, dim, n), both methods as mean +- s.e."""
    cell = {(r["function"], r["dim"], r["n_train"], r["method"]): r for r in document["summary"]}
    keys = list(
        dict.fromkeys((r["function"], r["dim"], r["n_train"]) for r in document["summary"])
    )
    lines = [f"{'function':<16}{'D':>3}{'n':>6}{'values':>24}{'sobolev':>24}"]
    for key in keys:
        cells = []
        for method in METHODS:
            row = cell[(*key, method)]
            cells.append(f"{row['test_error_mean']:.4f} +- {row['test_error_sem']:.4f}")
        lines.append(f"{key[0]:<16}{key[1]:>3}{key[2]:>6}{cells[0]:>24}{cells[1]:>24}")
    wins = document["sobolev_wins"]
    lines.append(
        f"Sobolev has the lower mean test error in {wins['sobolev_lower_mean']} of "
        f"{wins['cells']} cells"
    )
    sweep = document["sensitivity_wins"]
    for weight, count in sweep["sobolev_lower_mean_by_weight"].items():
        lines.append(f"  at derivative weight {weight}: {count} of {sweep['cells']} cells")
    return "\n".join(lines)
