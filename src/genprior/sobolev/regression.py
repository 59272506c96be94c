"""``genprior sobolev regression``: value-only against Sobolev training on test functions.

For each test function, dimension D, number of training points n and seed: n points uniform
in the function's box, their values and derivatives (the full gradient by default, or K
random unit directions per point); two copies of the same initial network are trained for
the same number of full-batch Adam steps, one on the values alone (``values``), one on values
and derivatives (``sobolev``). Test error is the relative mean squared error of the values,
mean((f_hat - f)^2) / var(f), on held-out uniform points. Inputs are scaled to [-1, 1]^D and
values standardised with the training set's mean and standard deviation (derivatives scaled
to match).
"""

import dataclasses
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genprior.errors import check_choice
from genprior.sobolev import output
from genprior.sobolev.functions import FUNCTIONS, BenchmarkFunction, get_function
from genprior.sobolev.loss import SobolevData, make_sobolev_data
from genprior.sobolev.training import METHODS, FitConfig, fit, mlp

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["function", "dim", "n_train", "method", "test_error_mean", "test_error_sem"]


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
        derivative_weight: weight of the derivative term of the Sobolev loss.
        n_test: held-out test points.
        seed: base seed.
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
    derivative_weight: float = 1.0
    n_test: int = 2000
    seed: int = 0

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
        if self.directions is not None and self.directions < 1:
            raise ValueError(f"directions must be None or >= 1; received {self.directions}")

    @staticmethod
    def quick(**overrides: object) -> "RegressionConfig":
        """About a minute on two cores: three functions in D=2 and 5, 5 seeds, 300 steps."""
        settings = {
            "functions": ("styblinski-tang", "rosenbrock", "ackley"),
            "dims": (2, 5),
            "n_train": (20, 80),
            "hidden": (32, 32),
            "steps": 300,
            "n_test": 1000,
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
    """Train both methods on one draw; one result row per method."""
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
    fit_config = FitConfig(
        steps=config.steps, lr=config.lr, derivative_weight=config.derivative_weight
    )
    rows = []
    for method in METHODS:
        model = mlp(
            dim, config.hidden, 1, activation=config.activation, seed=_seed_of("init", seed)
        )
        scalar = _Scalar(model)
        started = time.perf_counter()
        losses = fit(scalar, train, method, fit_config)
        seconds = time.perf_counter() - started
        with torch.no_grad():
            prediction = scalar((x_test / function.half_width).float()).double() * std + mean
        error = float((prediction - y_test).pow(2).mean() / y_test.var())
        rows.append(
            {
                "function": name,
                "dim": dim,
                "n_train": n,
                "method": method,
                "seed": seed,
                "test_error": error,
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
    summary = output.mean_sem_table(
        results, ("function", "dim", "n_train", "method"), ("test_error",)
    )
    document = {
        "experiment": "sobolev regression",
        "test_error": "relative MSE of values on held-out points: mean((f_hat - f)^2) / var(f)",
        "config": dataclasses.asdict(config),
        "summary": summary,
        "sobolev_wins": _wins(summary),
    }
    output.write_tables(out_dir, results, summary, SUMMARY_COLUMNS, document)
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


def _plot(out_dir: Path, config: RegressionConfig, summary: list[dict]) -> None:
    from genprior.experiments.report import save_figure

    plt = output.pyplot()
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
    return "\n".join(lines)
