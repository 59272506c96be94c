"""Spiked Wishart and Wigner recovery against the control parameter theta.

Cocola, Hand & Voroninski (NeurIPS 2020, arXiv 2006.07953), Figure 1: spikes y* = G(x*) of
random two-layer networks [k, 250, 1700], ||y*|| = 1, and

- Wishart: N samples with sigma = 1 and theta = sqrt(k L / N), so N = round(k L / theta^2);
- Wigner: noise level nu = theta / sqrt(k L / n),

with L = log(n_1^2 n_2 ... n_d) (log(250^2 1700) for the paper's widths). If the sample
complexity k L is optimal, errors for different k collapse onto one curve in theta. The
generative estimate (gradient descent from x_0 and -x_0) runs beside the spectral estimate
and sparse PCA (truncated power method, s = ``sparsity`` entries kept).

By default all (k, theta) points of a model share each trial's draws, as the recovery
experiments do (see :mod:`genprior.theory.recovery`): one network [max k, ...] whose first k
latent coordinates serve latent size k, one spike G(e_2), one GOE matrix H (Wigner: the
points differ in nu only) or one sample sequence (Wishart: point N uses the first N samples).
The generative estimates of all points then run as one stacked batch.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genprior.errors import check_choice
from genprior.experiments import report
from genprior.priors.random_relu import RandomReLUNetwork
from genprior.solvers.negation import NEGATION
from genprior.solvers.spiked import (
    SpikedDescent,
    sign_free_error,
    spectral_estimate,
    spiked_wigner_points,
    spiked_wishart_points,
    truncated_power_method,
)
from genprior.theory.recovery import DTYPES, check_architecture
from genprior.theory.runner import Experiment, point_seed

logger = logging.getLogger(__name__)

__all__ = ["PUBLISHED_SPIKED", "SPIKED", "SpikedConfig", "log_factor"]

MODELS = ("wishart", "wigner")
METHODS = ("generative", "spectral", "sparse-pca")
# Published mean ||G(x^) - y*|| for k = 10 at the 8 thetas (Cocola et al. 2020, RESULTS/).
PUBLISHED_SPIKED = {
    "wigner": (0.0023, 0.0613, 0.1337, 0.2038, 0.277, 0.391, 0.459, 0.600),
    "wishart": (0.671, 0.893, 1.102, 1.277, 1.418, 1.638, 1.718, 1.911),
}
# The authors' steps with weights of std 2/sqrt(n_i), converted to N(0, 1/n_i) weights by
# homogeneity (see SpikedDescent): lr * 2^(2d), x_0 * 2^d, d = 2.
PAPER_LR = {"wishart": 0.005 * 16, "wigner": 0.01 * 16}
PAPER_STEPS = {"wishart": 2500, "wigner": 2000}


def log_factor(hidden: tuple[int, ...]) -> float:
    """L = log(n_1^2 n_2 ... n_d)."""
    return 2 * math.log(hidden[0]) + sum(math.log(n) for n in hidden[1:])


@dataclass(frozen=True)
class SpikedConfig:
    """Settings of the spiked experiment.

    Attributes:
        models: "wishart" and/or "wigner".
        ks: latent sizes.
        hidden: hidden widths (n_1, ..., n_d); the spike has length n_d.
        thetas_wishart: theta values of the Wishart model (the paper: linspace(1.5, 7.2, 8)).
        thetas_wigner: theta values of the Wigner model (linspace(0.01, 1.95, 8)).
        sigma: Wishart noise level.
        trials: R per point.
        methods: among "generative", "spectral", "sparse-pca".
        lr_wishart, lr_wigner: step sizes for W_i ~ N(0, 1/n_i) (the paper's, converted).
        steps_wishart, steps_wigner: gradient steps per start.
        grad_tol: stop a start once ||grad|| <= grad_tol (0: every step, as the paper).
        negation: "two-start" (the paper), "every-step" or "none".
        x0_std: random starts N(0, x0_std^2 I) (the paper's 1e-4, converted).
        sparsity: entries kept by sparse PCA, as a fraction of n (the spikes of these
            networks have about half their entries non-zero).
        dtype: "float32" or "float64".
        seed: the seed.
        shared_draws: the points of a model share each trial's draws and run stacked (see
            the module docstring); False draws every point afresh.
    """

    models: tuple[str, ...] = MODELS
    ks: tuple[int, ...] = (10, 30, 70)
    hidden: tuple[int, ...] = (250, 1700)
    thetas_wishart: tuple[float, ...] = tuple(float(t) for t in np.linspace(1.5, 7.2, 8))
    thetas_wigner: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.01, 1.95, 8))
    sigma: float = 1.0
    trials: int = 75
    methods: tuple[str, ...] = METHODS
    lr_wishart: float = PAPER_LR["wishart"]
    lr_wigner: float = PAPER_LR["wigner"]
    steps_wishart: int = PAPER_STEPS["wishart"]
    steps_wigner: int = PAPER_STEPS["wigner"]
    grad_tol: float = 0.0
    negation: str = "two-start"
    x0_std: float = 4e-4
    sparsity: float = 0.5
    dtype: str = "float32"
    seed: int = 0
    shared_draws: bool = True

    def validated(self) -> "SpikedConfig":
        """Check every field; return self."""
        for model in self.models:
            check_choice("model", model, MODELS)
        for method in self.methods:
            check_choice("method", method, METHODS)
        check_choice("negation", self.negation, NEGATION)
        check_choice("dtype", self.dtype, tuple(DTYPES))
        for k in self.ks:
            check_architecture(k, tuple(self.hidden))
        if not (isinstance(self.trials, int) and self.trials >= 1):
            raise ValueError(f"trials must be an integer >= 1; received {self.trials!r}")
        if not 0 < self.sparsity <= 1:
            raise ValueError(f"sparsity must be a fraction in (0, 1]; received {self.sparsity}")
        for name in ("thetas_wishart", "thetas_wigner"):
            values = getattr(self, name)
            if any(not (math.isfinite(t) and t > 0) for t in values):
                raise ValueError(f"{name} must be finite numbers > 0; received {values}")
        self.solver("wishart")
        self.solver("wigner")
        return self

    def solver(self, model: str) -> SpikedDescent:
        """The gradient solver of ``model``."""
        return SpikedDescent(
            lr=self.lr_wishart if model == "wishart" else self.lr_wigner,
            max_iters=self.steps_wishart if model == "wishart" else self.steps_wigner,
            grad_tol=self.grad_tol,
            negation=self.negation,
            x0_std=self.x0_std,
        )

    @staticmethod
    def quick(**overrides: object) -> "SpikedConfig":
        """Three thetas per model (first, middle, last), 4 trials, 800 Wigner steps, early
        stopping at ||grad|| <= 1e-5."""
        wishart = SpikedConfig.thetas_wishart
        wigner = SpikedConfig.thetas_wigner
        settings = {
            "thetas_wishart": (wishart[0], wishart[4], wishart[7]),
            "thetas_wigner": (wigner[0], wigner[4], wigner[7]),
            "trials": 4,
            "steps_wigner": 800,
            "grad_tol": 1e-5,
        }
        return SpikedConfig(**(settings | overrides))


def _points(config: SpikedConfig) -> list[dict]:
    points = []
    for model in config.models:
        thetas = config.thetas_wishart if model == "wishart" else config.thetas_wigner
        thetas = [round(theta, 6) for theta in thetas]
        if config.shared_draws:
            points.append({"key": model, "model": model, "ks": list(config.ks), "thetas": thetas})
            continue
        for k in config.ks:
            for i, theta in enumerate(thetas):
                key = f"{model}@k={k}@theta={i}"
                points.append({"key": key, "model": model, "ks": [k], "thetas": [theta]})
    return points


def _run_point(config: SpikedConfig, point: dict) -> list[dict]:
    """Every (k, theta) of the point stacked on one network, spike and noise per trial."""
    model, ks, seed = point["model"], point["ks"], point_seed(config.seed, point["key"])
    network = RandomReLUNetwork(
        [max(ks), *config.hidden], trials=config.trials, seed=seed, dtype=DTYPES[config.dtype]
    )
    spike = network(network.unit_target(support=min(ks)))  # (R, n), unit norm
    n, log_l = spike.shape[1], log_factor(tuple(config.hidden))
    labels = [{"model": model, "k": k, "theta": theta} for k in ks for theta in point["thetas"]]
    if model == "wishart":  # N, the number of samples
        levels = [max(1, round(e["k"] * log_l / e["theta"] ** 2)) for e in labels]
        data = spiked_wishart_points(spike, levels, config.sigma, seed=seed)
    else:  # nu
        levels = [e["theta"] / math.sqrt(e["k"] * log_l / n) for e in labels]
        data = spiked_wigner_points(spike, levels, seed=seed)
    labels = [label | {"level": level} for label, level in zip(labels, levels)]
    latent_sizes = [label["k"] for label in labels]
    rows = []
    if "generative" in config.methods:
        result = config.solver(model).solve(network, data, seed=seed, latent_sizes=latent_sizes)
        for p, label in enumerate(labels):
            one = result.point(p)
            error = (one.signal - spike).norm(dim=-1)
            extra = {"iterations": one.iterations, "seconds": one.seconds / len(labels)}
            rows += _rows(label, "generative", error, extra)
    if {"spectral", "sparse-pca"} & set(config.methods):
        rows += _baseline_rows(config, labels, data, spike)
    return rows


def _baseline_rows(config: SpikedConfig, labels: list, data: object, spike: torch.Tensor) -> list:
    """The spectral and sparse-PCA rows of every point, all points computed together."""
    estimates = {"spectral": spectral_estimate(data)}  # (R, P, n)
    if "sparse-pca" in config.methods:
        s = max(1, round(config.sparsity * data.size))
        estimates["sparse-pca"] = truncated_power_method(data, s, init=estimates["spectral"])
    rows = []
    for p, label in enumerate(labels):
        for method in ("spectral", "sparse-pca"):
            if method in config.methods:
                rows += _rows(label, method, sign_free_error(estimates[method][:, p], spike), {})
    return rows


def _rows(fixed: dict, method: str, error: torch.Tensor, extra: dict) -> list[dict]:
    rows = []
    for r in range(len(error)):
        row = fixed | {"method": method, "trial": r, "error": float(error[r])}
        if extra:
            row |= {
                "iterations": int(extra["iterations"][r]),
                "seconds": extra["seconds"] / len(error),
            }
        rows.append(row)
    return rows


def _summarise(config: SpikedConfig, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    summary = report.summarise(rows, ("model", "method", "k", "theta"), ("error",))
    for entry in summary:
        paper = [round(t, 6) for t in getattr(SpikedConfig, f"thetas_{entry['model']}")]
        match = entry["method"] == "generative" and entry["k"] == 10
        match = match and entry["theta"] in paper
        index = paper.index(entry["theta"]) if match else None
        entry["published_error_k10"] = (
            None if index is None else PUBLISHED_SPIKED[entry["model"]][index]
        )
    csv_rows = [
        {
            "model": e["model"],
            "method": e["method"],
            "k": e["k"],
            "theta": e["theta"],
            "error_mean": e["error_mean"],
        }
        for e in summary
    ]
    return csv_rows, summary


def _plot(config: SpikedConfig, summary: list[dict], out_dir: Path) -> list[Path]:
    plt = report.pyplot()

    figure, axes = plt.subplots(1, len(config.models), figsize=(6 * len(config.models), 4))
    axes = np.atleast_1d(axes)
    styles = {"generative": "o-", "spectral": "s--", "sparse-pca": "^:"}
    for axis, model in zip(axes, config.models):
        for method in config.methods:
            for k in config.ks:
                rows = sorted(
                    (
                        e
                        for e in summary
                        if (e["model"], e["method"], e["k"]) == (model, method, k)
                    ),
                    key=lambda e: e["theta"],
                )
                axis.errorbar(
                    [e["theta"] for e in rows],
                    [e["error_mean"] for e in rows],
                    yerr=[e["error_se"] for e in rows],
                    fmt=styles[method],
                    capsize=2,
                    label=f"{method} k={k}",
                )
        axis.set(xlabel="theta", ylabel="||y^ - y*|| (mean +- s.e.)", title=model)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=6)
    return [report.save_figure(figure, out_dir / "spiked.png")]


SPIKED = Experiment(
    name="spiked",
    points=_points,
    run_point=_run_point,
    summarise=_summarise,
    plot=_plot,
    description="spiked Wishart and Wigner: error against theta for several k",
)
