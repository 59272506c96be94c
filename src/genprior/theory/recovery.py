"""Recovery experiments with random ReLU networks: the phase transition, noise, expansivity,
phase retrieval and denoising.

Settings follow Cocola (NeurIPS 2022, arXiv 2204.13599) and its released code: widths
[k, n_1, ..., n_d] with W_i ~ N(0, 1/n_i), A ~ N(0, 1/m) (one network and one A per trial),
target x* = e_2 scaled so that ||G(x*)|| = 1, x_0 ~ N(0, I), step 0.7, at most 20000 steps,
stop at ||grad|| <= 1e-10 (float64; 1e-6 in float32), success when
||G(x^) - G(x*)|| / ||G(x*)|| < 1e-3. Each point (architecture and k, or noise level, ...)
runs its R trials as one batch (:class:`~genprior.solvers.negation.NegationDescent`).

By default the points of one curve share their random draws (common random numbers): trial
r uses one network, one A, one noise direction and one start for every point, a point with
latent size k using the first k latent coordinates (W_1[:, :k]) and a point with m
measurements the first m rows of A. Each point's R trials are still independent draws from
the papers' distribution, so every point estimates the same probability or error; the
points are only correlated with each other, which makes differences between points less
noisy. All points then run as one stacked batch that reads each trial's weights once per
step for all of them. ``shared_draws=False`` draws every point afresh and runs the points
one after another.
"""

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genprior.errors import OptionError, check_choice
from genprior.experiments import report
from genprior.operators import GaussianCS
from genprior.operators.linear import gaussian_matrix
from genprior.priors.random_relu import RandomReLUNetwork, check_widths, trial_generator
from genprior.solvers.baselines import LassoSolver
from genprior.solvers.negation import NEGATION, NegationDescent, relative_error
from genprior.solvers.transforms import OrthogonalTransform
from genprior.theory.runner import Experiment, point_seed

logger = logging.getLogger(__name__)

__all__ = [
    "DENOISE",
    "EXPANSIVITY",
    "NOISE",
    "PHASE_RETRIEVAL",
    "PHASE_TRANSITION",
    "PUBLISHED_SUCCESS",
    "DenoiseConfig",
    "ExpansivityConfig",
    "NoiseConfig",
    "PhaseRetrievalConfig",
    "PhaseTransitionConfig",
    "widths_label",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
NOISE_STREAM = 301

# Published success probabilities (Cocola 2022, results/exprm_{1,2}, m = 300, 30 runs).
PUBLISHED_SUCCESS = {
    "k-700-600": {k: 1.0 for k in (*range(5, 85, 5), 100)}
    | {90: 0.967, 120: 0.9, 135: 0.5, 150: 0.167},
    "k-150-700-600": {k: 1.0 for k in (5, 10, 15, 20)}
    | {25: 0.967, 30: 1.0, 35: 0.933, 40: 0.933, 45: 0.767, 50: 0.767, 55: 0.667}
    | {60: 0.267, 70: 0.1, 80: 0.0},
}
K_TWO_LAYER = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 135, 150)
K_THREE_LAYER = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 70, 80)


def widths_label(hidden: tuple[int, ...]) -> str:
    """ "k-700-600" for hidden widths (700, 600)."""
    return "-".join(["k", *map(str, hidden)])


def check_architecture(k: int, hidden: tuple[int, ...], *, m: int | None = None) -> None:
    """Raise ValueError unless [k, *hidden] are widths, k <= n_1, and 1 <= m <= n_d.

    k > n_1 makes x unidentifiable from W_1 x; m > n_d makes A (m, n_d) have more rows than
    the signal has entries (this library's Gaussian operators need m <= n).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the latent size k must be an integer >= 1; received {k!r}")
    if not hidden or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden):
        raise ValueError(
            f"the hidden widths must be positive integers n1 ... nd; received {list(hidden)}"
        )
    widths = check_widths([k, *hidden])
    if k > widths[1]:
        raise ValueError(
            f"k must be at most the first layer width n1 = {widths[1]} for widths "
            f"{list(widths)}; received k = {k}"
        )
    if m is not None and not (isinstance(m, int) and 1 <= m <= widths[-1]):
        raise ValueError(
            f"m must be an integer in 1..{widths[-1]} (the output size of widths "
            f"{list(widths)}); received m = {m!r}"
        )


def _check_common(config: object) -> None:
    check_choice("dtype", config.dtype, tuple(DTYPES))
    check_choice("negation", config.negation, NEGATION)
    if not (isinstance(config.trials, int) and config.trials >= 1):
        raise ValueError(f"trials must be an integer >= 1; received {config.trials!r}")
    NegationDescent(lr=config.lr, max_iters=config.max_iters, grad_tol=config.grad_tol)


def _network(k: int, hidden: tuple[int, ...], config: object, seed: int) -> RandomReLUNetwork:
    return RandomReLUNetwork(
        [k, *hidden], trials=config.trials, seed=seed, dtype=DTYPES[config.dtype]
    )


def _solver(config: object, **overrides: object) -> NegationDescent:
    settings = {
        "lr": config.lr,
        "max_iters": config.max_iters,
        "grad_tol": config.grad_tol,
        "negation": config.negation,
    }
    return NegationDescent(**(settings | overrides))


def _matrix_seeds(seed: int, trials: int) -> list[int]:
    return [point_seed(seed, "A", r) for r in range(trials)]


def _gaussian_matrices(n: int, m: int, seeds: list[int], dtype: torch.dtype) -> torch.Tensor:
    """A (R, M, N), trial r's matrix is GaussianCS((N,), M, seed=seeds[r]).A."""
    return torch.stack([gaussian_matrix((n,), m, seed=s) for s in seeds]).to(dtype)


def _noise(shape: tuple[int, int], tau: float, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Noise vectors (R, D) of norm exactly tau, uniformly distributed directions."""
    eta = torch.stack(
        [
            torch.randn(shape[1], generator=trial_generator(seed, r, NOISE_STREAM))
            for r in range(shape[0])
        ]
    ).to(dtype)
    return tau * eta / eta.norm(dim=-1, keepdim=True)


def _descent_rows(
    point: dict, method: str, result: object, error: torch.Tensor, points: int = 1
) -> list[dict]:
    """One row per trial; ``points`` solved together share the solve's wall time."""
    fixed = {key: value for key, value in point.items() if key not in ("key", "ks")}
    seconds = result.seconds / (len(error) * points)
    return [
        fixed
        | {
            "method": method,
            "trial": r,
            "rel_error": float(error[r]),
            "iterations": int(result.iterations[r]),
            "converged": bool(result.converged[r]),
            "flips": int(result.flips[r]),
            "seconds": seconds,
        }
        for r in range(len(error))
    ]


def _success_summary(rows: list[dict], group: tuple[str, ...], tol: float) -> list[dict]:
    for row in rows:
        row["success"] = float(row["rel_error"] < tol)
    summary = report.summarise(rows, group, ("success", "rel_error", "iterations"))
    for entry in summary:
        errors = [r["rel_error"] for r in rows if all(r[g] == entry[g] for g in group)]
        entry["rel_error_median"] = float(np.median(errors))
    return summary


@dataclass(frozen=True, kw_only=True)
class DescentSettings:
    """The descent settings every recovery experiment shares (keyword-only fields).

    Attributes:
        trials: R, independent (network, A) pairs per point.
        lr: step size.
        max_iters: the most steps per trial.
        grad_tol: stopping tolerance on ||grad f|| (None: the dtype's default).
        dtype: "float32" or "float64".
        seed: seeds networks, matrices and starts of every point.
    """

    trials: int = 30
    lr: float = 0.7
    max_iters: int = 20000
    grad_tol: float | None = None
    dtype: str = "float32"
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class StackedSettings(DescentSettings):
    """:class:`DescentSettings` of experiments whose points can share their draws.

    Attributes:
        shared_draws: the points of a curve share each trial's network, matrix, noise
            direction and start, and run as one stacked batch (see the module docstring);
            False draws every point independently and runs them one after another.
    """

    shared_draws: bool = True


def _stacked(result: object, points: int) -> list[object]:
    """The per-point results of a solve over ``points`` stacked points."""
    return [result.point(p) for p in range(points)]


# -- phase transition -----------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseTransitionConfig(StackedSettings):
    """Success probability against k at fixed m (Cocola 2022, experiments 1 and 2).

    Attributes:
        architectures: hidden widths (n_1, ..., n_d) of each network family.
        ks: the latent sizes k to sweep, one tuple per architecture.
        m: measurements.
        methods: "negation" (the paper's algorithm, with ``negation``) and optionally "lasso"
            (FISTA in the identity basis, lam ``lasso_lam``).
        negation: the negation variant of the "negation" method (see NEGATION).
        success_tol: success when the relative error of G(x^) is below this.
        lasso_lam: Lasso's l1 weight (signals have norm 1, y is noiseless).
        lasso_iters: FISTA iterations.
        trials, lr, max_iters, grad_tol, dtype, seed, shared_draws: see
            :class:`StackedSettings`.
    """

    architectures: tuple[tuple[int, ...], ...] = ((700, 600), (150, 700, 600))
    ks: tuple[tuple[int, ...], ...] = (K_TWO_LAYER, K_THREE_LAYER)
    m: int = 300
    methods: tuple[str, ...] = ("negation", "lasso")
    negation: str = "every-step"
    success_tol: float = 1e-3
    lasso_lam: float = 1e-4
    lasso_iters: int = 1000

    def validated(self) -> "PhaseTransitionConfig":
        """Check every field; return self."""
        _check_common(self)
        for method in self.methods:
            check_choice("method", method, ("negation", "lasso"))
        if len(self.ks) != len(self.architectures):
            raise ValueError(
                f"ks must hold one tuple of k per architecture ({len(self.architectures)}); "
                f"received {len(self.ks)}"
            )
        for hidden, ks in zip(self.architectures, self.ks):
            for k in ks:
                check_architecture(k, tuple(hidden), m=self.m)
        return self

    @staticmethod
    def quick(**overrides: object) -> "PhaseTransitionConfig":
        """A look in about a minute: 3 + 2 values of k, 10 trials, at most 4000 steps."""
        settings = {"ks": ((20, 80, 150), (10, 80)), "trials": 10, "max_iters": 4000}
        return PhaseTransitionConfig(**(settings | overrides))


def _pt_points(config: PhaseTransitionConfig) -> list[dict]:
    if config.shared_draws:
        return [
            {"key": widths_label(hidden), "widths": widths_label(hidden), "ks": list(ks)}
            for hidden, ks in zip(config.architectures, config.ks)
        ]
    return [
        {"key": f"{widths_label(hidden)}@{k}", "widths": widths_label(hidden), "ks": [k]}
        for hidden, ks in zip(config.architectures, config.ks)
        for k in ks
    ]


def _pt_run(config: PhaseTransitionConfig, point: dict) -> list[dict]:
    """One architecture's ks stacked on shared draws, or one k (``point["ks"]`` of one)."""
    hidden = tuple(int(w) for w in point["widths"].split("-")[1:])
    ks, seed = point["ks"], point_seed(config.seed, point["key"])
    network = _network(max(ks), hidden, config, seed)
    signal = network(network.unit_target(support=min(ks)))  # (R, N), unit norm
    seeds = _matrix_seeds(seed, config.trials)
    A = _gaussian_matrices(hidden[-1], config.m, seeds, network.dtype)
    y = torch.bmm(signal.unsqueeze(1), A.transpose(1, 2))[:, 0]  # (R, M)
    labels = [{"widths": point["widths"], "k": k} for k in ks]
    rows = []
    if "negation" in config.methods:
        result = _solver(config).solve(network, y, A, seed=seed, latent_sizes=ks)
        for label, one in zip(labels, _stacked(result, len(ks))):
            error = relative_error(one.signal, signal)
            rows += _descent_rows(label, "negation", one, error, len(ks))
    if "lasso" in config.methods:
        # Lasso does not use the network: with shared draws every k sees the same signals,
        # so one solve per trial serves every k (its time shared between them).
        lasso = _lasso_rows(config, signal, y, seeds)
        rows += [
            label | row | {"seconds": row["seconds"] / len(labels)}
            for label in labels
            for row in lasso
        ]
    return rows


def _lasso_rows(
    config: PhaseTransitionConfig,
    signal: torch.Tensor,
    y: torch.Tensor,
    seeds: list[int],
) -> list[dict]:
    """Lasso in the identity basis, trial by trial (each trial has its own A)."""
    n = signal.shape[1]
    identity = OrthogonalTransform(torch.eye(n, dtype=torch.float64), (1, 1, n), "identity")
    solver = LassoSolver(identity, config.lasso_lam, iters=config.lasso_iters, tol=1e-7)
    rows = []
    for r, seed in enumerate(seeds):
        started = time.perf_counter()
        operator = GaussianCS((1, 1, n), config.m, seed=seed).to(signal.dtype)
        estimate = solver.solve(operator, y[r : r + 1]).x.reshape(1, n)
        rows.append(
            {
                "method": "lasso",
                "trial": r,
                "rel_error": float(relative_error(estimate, signal[r : r + 1])[0]),
                "iterations": config.lasso_iters,
                "converged": True,
                "flips": 0,
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def _pt_summarise(
    config: PhaseTransitionConfig, rows: list[dict]
) -> tuple[list[dict], list[dict]]:
    summary = _success_summary(rows, ("widths", "k", "method"), config.success_tol)
    for entry in summary:
        published = PUBLISHED_SUCCESS.get(entry["widths"], {}).get(entry["k"])
        entry["published_success_rate"] = published if entry["method"] == "negation" else None
    csv_rows = [
        {
            "widths": e["widths"],
            "k": e["k"],
            "trials": e["n"],
            "success_rate": round(e["success_mean"], 4),
        }
        for e in summary
        if e["method"] == "negation"
    ]
    return csv_rows, summary


def _pt_plot(config: PhaseTransitionConfig, summary: list[dict], out_dir: Path) -> list[Path]:
    plt = report.pyplot()

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for label in dict.fromkeys(e["widths"] for e in summary):
        for method in config.methods:
            rows = sorted(
                (e for e in summary if e["widths"] == label and e["method"] == method),
                key=lambda e: e["k"],
            )
            axis.errorbar(
                [e["k"] for e in rows],
                [e["success_mean"] for e in rows],
                yerr=[e["success_se"] for e in rows],
                marker="o" if method == "negation" else "x",
                capsize=3,
                label=f"{label} {method}",
            )
        published = sorted(PUBLISHED_SUCCESS.get(label, {}).items())
        if published:
            axis.plot(*zip(*published), "k:", alpha=0.6, label=f"{label} published")
    axis.set_xlabel("latent size k")
    axis.set_ylabel("P(success) (mean +- s.e.)")
    axis.set_title(f"m = {config.m}, {config.trials} trials, success: rel. error < 1e-3")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    return [report.save_figure(figure, out_dir / "success.png")]


PHASE_TRANSITION = Experiment(
    name="phase-transition",
    points=_pt_points,
    run_point=_pt_run,
    summarise=_pt_summarise,
    plot=_pt_plot,
    description="success probability against k for random ReLU networks, m fixed",
)


# -- noise ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseConfig(StackedSettings):
    """Relative error against the noise level tau and k (two layers, ||eta|| = tau).

    Attributes:
        hidden: hidden widths (n_1, ..., n_d).
        ks: latent sizes.
        taus: noise norms ||eta|| (||G(x*)|| = 1).
        m: measurements.
        negation: as for :class:`PhaseTransitionConfig`.
        dtype: "float64" by default: errors go down to 1e-9.
        trials, lr, max_iters, grad_tol, seed, shared_draws: see :class:`StackedSettings`.
    """

    hidden: tuple[int, ...] = (700, 600)
    ks: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 35, 40, 45)
    taus: tuple[float, ...] = (1e-8, 1e-4, 1e-2)
    m: int = 300
    negation: str = "every-step"
    dtype: str = "float64"

    def validated(self) -> "NoiseConfig":
        """Check every field; return self."""
        _check_common(self)
        for k in self.ks:
            check_architecture(k, tuple(self.hidden), m=self.m)
        if not self.taus or min(self.taus) < 0 or not all(map(math.isfinite, self.taus)):
            raise ValueError(f"taus must be finite numbers >= 0; received {self.taus}")
        return self

    @staticmethod
    def quick(**overrides: object) -> "NoiseConfig":
        """k in 5, 25, 45 with 6 trials."""
        return NoiseConfig(**({"ks": (5, 25, 45), "trials": 6} | overrides))


def _noise_points(config: NoiseConfig) -> list[dict]:
    if config.shared_draws:
        return [{"key": "all", "ks": list(config.ks)}]
    return [{"key": f"k={k}", "ks": [k]} for k in config.ks]


def _noise_run(config: NoiseConfig, point: dict) -> list[dict]:
    return _noisy_run(config, point, measured=True)


def _noisy_run(config: object, point: dict, *, measured: bool) -> list[dict]:
    """Every (k, tau) of the point stacked: one network, matrix (when ``measured``; else
    A = I) and noise direction per trial, the noise scaled to each tau."""
    ks, seed = point["ks"], point_seed(config.seed, point["key"])
    network = _network(max(ks), tuple(config.hidden), config, seed)
    signal = network(network.unit_target(support=min(ks)))  # (R, N)
    A, clean = None, signal
    if measured:
        seeds = _matrix_seeds(seed, config.trials)
        A = _gaussian_matrices(config.hidden[-1], config.m, seeds, network.dtype)
        clean = torch.bmm(signal.unsqueeze(1), A.transpose(1, 2))[:, 0]  # (R, M)
    direction = _noise(tuple(clean.shape), 1.0, seed, network.dtype)
    labels = [{"k": k, "tau": tau} for k in ks for tau in config.taus]
    y = torch.stack([clean + label["tau"] * direction for label in labels], dim=1)
    latent_sizes = [label["k"] for label in labels]
    result = _solver(config).solve(network, y, A, seed=seed, latent_sizes=latent_sizes)
    rows = []
    for label, one in zip(labels, _stacked(result, len(labels))):
        error = relative_error(one.signal, signal)
        rows += _descent_rows(label, "negation", one, error, len(labels))
    return rows


def _noise_summarise(config: NoiseConfig, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    summary = report.summarise(rows, ("k", "tau"), ("rel_error", "iterations"))
    for entry in summary:
        entry["error_over_tau"] = entry["rel_error_mean"] / entry["tau"] if entry["tau"] else None
    csv_rows = [
        {
            "k": e["k"],
            "tau": e["tau"],
            "trials": e["n"],
            "rel_error_mean": e["rel_error_mean"],
            "rel_error_se": e["rel_error_se"],
            "error_over_tau": e["error_over_tau"],
        }
        for e in summary
    ]
    return csv_rows, summary


def _noise_plot(config: NoiseConfig, summary: list[dict], out_dir: Path) -> list[Path]:
    plt = report.pyplot()

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for k in config.ks:
        rows = sorted((e for e in summary if e["k"] == k), key=lambda e: e["tau"])
        left.loglog(
            [e["tau"] for e in rows], [e["rel_error_mean"] for e in rows], "o-", label=f"k={k}"
        )
    for tau in config.taus:
        rows = sorted((e for e in summary if e["tau"] == tau), key=lambda e: e["k"])
        right.plot(
            [e["k"] for e in rows], [e["error_over_tau"] for e in rows], "o-", label=f"tau={tau:g}"
        )
    left.set(xlabel="noise norm tau", ylabel="relative error of G(x^)", title="error vs tau")
    right.set(xlabel="k", ylabel="error / tau", title="growth in k")
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    return [report.save_figure(figure, out_dir / "noise.png")]


NOISE = Experiment(
    name="noise",
    points=_noise_points,
    run_point=_noise_run,
    summarise=_noise_summarise,
    plot=_noise_plot,
    description="relative error against noise norm tau and latent size k",
)


# -- expansivity ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpansivityConfig(DescentSettings):
    """A map of success probability over two layer widths relative to k (direct observation).

    Widths [k, round(r1 k), round(r2 k)] for every pair (r1, r2) of ``ratios``; y = G(x*)
    observed directly (A = I, no noise), so only the network's shape matters. Ratios below 1
    make a layer contractive (k > n1 makes x unidentifiable, but G(x*) may still be found).

    Attributes:
        k: latent size.
        ratios: n_i / k values for both layers.
        trials, negation, lr, max_iters, grad_tol, success_tol, dtype, seed: as for
            :class:`PhaseTransitionConfig` and :class:`DescentSettings`.
    """

    k: int = 10
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    negation: str = "every-step"
    success_tol: float = 1e-3

    def validated(self) -> "ExpansivityConfig":
        """Check every field; return self."""
        _check_common(self)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"the latent size k must be an integer >= 1; received {self.k!r}")
        finite = all(map(math.isfinite, self.ratios))
        if not self.ratios or not finite or min(self.ratios) <= 0:
            raise ValueError(f"ratios must be finite numbers > 0; received {self.ratios}")
        return self

    @staticmethod
    def quick(**overrides: object) -> "ExpansivityConfig":
        """Ratios 0.5, 2, 8, 32 with 8 trials and at most 3000 steps."""
        settings = {"ratios": (0.5, 2.0, 8.0, 32.0), "trials": 8, "max_iters": 3000}
        return ExpansivityConfig(**(settings | overrides))


def _expansivity_points(config: ExpansivityConfig) -> list[dict]:
    return [
        {"key": f"{r1}x{r2}", "ratio1": r1, "ratio2": r2}
        for r1 in config.ratios
        for r2 in config.ratios
    ]


def _expansivity_run(config: ExpansivityConfig, point: dict) -> list[dict]:
    hidden = tuple(max(1, round(r * config.k)) for r in (point["ratio1"], point["ratio2"]))
    seed = point_seed(config.seed, point["key"])
    network = RandomReLUNetwork(
        [config.k, *hidden], trials=config.trials, seed=seed, dtype=DTYPES[config.dtype]
    )
    signal = network(network.unit_target())
    result = _solver(config).solve(network, signal, None, seed=seed)
    fixed = point | {"n1": hidden[0], "n2": hidden[1]}
    return _descent_rows(fixed, "negation", result, relative_error(result.signal, signal))


def _expansivity_summarise(
    config: ExpansivityConfig, rows: list[dict]
) -> tuple[list[dict], list[dict]]:
    summary = _success_summary(rows, ("ratio1", "ratio2", "n1", "n2"), config.success_tol)
    csv_rows = [
        {
            "k": config.k,
            "ratio1": e["ratio1"],
            "ratio2": e["ratio2"],
            "n1": e["n1"],
            "n2": e["n2"],
            "trials": e["n"],
            "success_rate": round(e["success_mean"], 4),
        }
        for e in summary
    ]
    return csv_rows, summary


def _expansivity_plot(config: ExpansivityConfig, summary: list[dict], out_dir: Path) -> list[Path]:
    plt = report.pyplot()

    ratios = list(config.ratios)
    grid = np.full((len(ratios), len(ratios)), np.nan)
    for e in summary:
        grid[ratios.index(e["ratio2"]), ratios.index(e["ratio1"])] = e["success_mean"]
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    image = axis.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="viridis")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w")
    axis.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
    axis.set_yticks(range(len(ratios)), [f"{r:g}" for r in ratios])
    axis.set(xlabel="n1 / k", ylabel="n2 / k", title=f"P(success), k = {config.k}, A = I")
    figure.colorbar(image, ax=axis)
    return [report.save_figure(figure, out_dir / "expansivity.png")]


EXPANSIVITY = Experiment(
    name="expansivity",
    points=_expansivity_points,
    run_point=_expansivity_run,
    summarise=_expansivity_summarise,
    plot=_expansivity_plot,
    description="success probability over layer widths relative to k (direct observation)",
)


# -- phase retrieval ------------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseRetrievalConfig(StackedSettings):
    """Success against m for y = |A G(x*)| with the amplitude loss.

    Attributes:
        hidden: hidden widths.
        k: latent size.
        ms: numbers of measurements.
        negations: the negation variants to compare (the method column).
        trials, lr, max_iters, grad_tol, success_tol, dtype, seed, shared_draws: as for
            :class:`PhaseTransitionConfig` and :class:`StackedSettings`.
    """

    hidden: tuple[int, ...] = (700, 600)
    k: int = 10
    ms: tuple[int, ...] = (10, 20, 30, 50, 75, 100, 150, 200, 300)
    negations: tuple[str, ...] = ("every-step", "none")
    success_tol: float = 1e-3

    @property
    def negation(self) -> str:
        """The first variant (for shared checks)."""
        return self.negations[0] if self.negations else ""

    def validated(self) -> "PhaseRetrievalConfig":
        """Check every field; return self."""
        _check_common(self)
        for negation in self.negations:
            check_choice("negation", negation, NEGATION)
        for m in self.ms:
            check_architecture(self.k, tuple(self.hidden), m=m)
        return self

    @staticmethod
    def quick(**overrides: object) -> "PhaseRetrievalConfig":
        """m in 20, 75, 200 with 8 trials and at most 3000 steps."""
        settings = {"ms": (20, 75, 200), "trials": 8, "max_iters": 3000}
        return PhaseRetrievalConfig(**(settings | overrides))


def _pr_points(config: PhaseRetrievalConfig) -> list[dict]:
    if config.shared_draws:
        return [{"key": "all", "ms": list(config.ms)}]
    return [{"key": f"m={m}", "ms": [m]} for m in config.ms]


def _pr_run(config: PhaseRetrievalConfig, point: dict) -> list[dict]:
    """Every m of the point stacked: point m uses the first m rows of each trial's A."""
    ms, seed = point["ms"], point_seed(config.seed, point["key"])
    network = _network(config.k, tuple(config.hidden), config, seed)
    signal = network(network.unit_target())
    seeds = _matrix_seeds(seed, config.trials)
    A = _gaussian_matrices(config.hidden[-1], max(ms), seeds, network.dtype)  # N(0, 1/M)
    y = torch.bmm(signal.unsqueeze(1), A.transpose(1, 2))[:, 0].abs()
    # Weights M/m on the first m rows: point m sees sqrt(M/m) A[:m], an N(0, 1/m) matrix.
    first = torch.arange(max(ms)).unsqueeze(0) < torch.tensor(ms).unsqueeze(1)
    weights = first * (max(ms) / torch.tensor(ms, dtype=torch.float64)).unsqueeze(1)
    rows = []
    for negation in config.negations:
        solver = _solver(config, negation=negation, loss="amplitude")
        result = solver.solve(network, y, A, seed=seed, row_weights=weights)
        for m, one in zip(ms, _stacked(result, len(ms))):
            error = relative_error(one.signal, signal)
            rows += _descent_rows({"m": m}, negation, one, error, len(ms))
    return rows


def _method_success(config: object, rows: list[dict], param: str) -> tuple[list, list]:
    summary = _success_summary(rows, ("method", param), config.success_tol)
    csv_rows = [
        {
            "method": e["method"],
            param: e[param],
            "trials": e["n"],
            "success_rate": round(e["success_mean"], 4),
            "rel_error_median": e["rel_error_median"],
        }
        for e in summary
    ]
    return csv_rows, summary


def _pr_plot(config: PhaseRetrievalConfig, summary: list[dict], out_dir: Path) -> list[Path]:
    path = out_dir / "success.png"
    return [_success_plot(summary, "m", path, f"phase retrieval, k = {config.k}")]


def _success_plot(summary: list[dict], param: str, path: Path, title: str) -> Path:
    plt = report.pyplot()

    figure, axis = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(e["method"] for e in summary):
        rows = sorted((e for e in summary if e["method"] == method), key=lambda e: e[param])
        axis.errorbar(
            [e[param] for e in rows],
            [e["success_mean"] for e in rows],
            yerr=[e["success_se"] for e in rows],
            marker="o",
            capsize=3,
            label=method,
        )
    axis.set(xlabel=param, ylabel="P(success) (mean +- s.e.)", title=title)
    axis.grid(True, alpha=0.3)
    axis.legend()
    return report.save_figure(figure, path)


PHASE_RETRIEVAL = Experiment(
    name="phase-retrieval",
    points=_pr_points,
    run_point=_pr_run,
    summarise=lambda config, rows: _method_success(config, rows, "m"),
    plot=_pr_plot,
    description="phase retrieval y = |A G(x*)|: success against m, amplitude loss",
)


# -- denoising ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DenoiseConfig(StackedSettings):
    """Denoising y = G(x*) + eta, ||eta|| = tau: error of G(x^) against tau and k.

    A random network's range near G(x*) is about k-dimensional, so the error should be
    about tau sqrt(k / n_d) (the noise's projection), far below tau.

    Attributes:
        hidden: hidden widths.
        ks: latent sizes.
        taus: noise norms (||G(x*)|| = 1).
        dtype: "float32" by default: the errors (1e-3 and more) are far above its
            precision, and its stopping tolerance (||grad|| <= 1e-6) is reached where float64's
            1e-10 is not (the noisy minimiser sits on a kink of G, so most float64 trials
            run all max_iters steps).
        trials, negation, lr, max_iters, grad_tol, seed, shared_draws: as for
            :class:`PhaseTransitionConfig` and :class:`StackedSettings`.
    """

    hidden: tuple[int, ...] = (700, 600)
    ks: tuple[int, ...] = (5, 10, 20, 40)
    taus: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    negation: str = "every-step"

    def validated(self) -> "DenoiseConfig":
        """Check every field; return self."""
        _check_common(self)
        for k in self.ks:
            check_architecture(k, tuple(self.hidden))
        if not self.taus or min(self.taus) < 0 or not all(map(math.isfinite, self.taus)):
            raise ValueError(f"taus must be finite numbers >= 0; received {self.taus}")
        return self

    @staticmethod
    def quick(**overrides: object) -> "DenoiseConfig":
        """k in 5, 40 and tau in 0.01, 0.1, 1 with 8 trials and at most 3000 steps."""
        settings = {"ks": (5, 40), "taus": (0.01, 0.1, 1.0), "trials": 8, "max_iters": 3000}
        return DenoiseConfig(**(settings | overrides))


def _denoise_points(config: DenoiseConfig) -> list[dict]:
    if config.shared_draws:
        return [{"key": "all", "ks": list(config.ks)}]
    return [{"key": f"k={k}", "ks": [k]} for k in config.ks]


def _denoise_run(config: DenoiseConfig, point: dict) -> list[dict]:
    return _noisy_run(config, point, measured=False)


def _denoise_summarise(config: DenoiseConfig, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    summary = report.summarise(rows, ("k", "tau"), ("rel_error", "iterations"))
    n = config.hidden[-1]
    csv_rows = []
    for e in summary:
        e["error_over_tau"] = e["rel_error_mean"] / e["tau"] if e["tau"] else None
        e["sqrt_k_over_n"] = math.sqrt(e["k"] / n)
        csv_rows.append(
            {
                key: e[key]
                for key in ("k", "tau", "rel_error_mean", "rel_error_se", "error_over_tau")
            }
            | {"trials": e["n"], "sqrt_k_over_n": e["sqrt_k_over_n"]}
        )
    return csv_rows, summary


def _denoise_plot(config: DenoiseConfig, summary: list[dict], out_dir: Path) -> list[Path]:
    plt = report.pyplot()

    figure, axis = plt.subplots(figsize=(6, 4))
    for k in config.ks:
        rows = sorted((e for e in summary if e["k"] == k), key=lambda e: e["tau"])
        taus = [e["tau"] for e in rows]
        line = axis.loglog(taus, [e["rel_error_mean"] for e in rows], "o-", label=f"k={k}")
        bound = math.sqrt(k / config.hidden[-1])
        axis.loglog(taus, [t * bound for t in taus], ":", color=line[0].get_color())
    axis.set(
        xlabel="noise norm tau",
        ylabel="relative error of G(x^)",
        title="denoising (dotted: tau sqrt(k/n))",
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    return [report.save_figure(figure, out_dir / "denoise.png")]


DENOISE = Experiment(
    name="denoise",
    points=_denoise_points,
    run_point=_denoise_run,
    summarise=_denoise_summarise,
    plot=_denoise_plot,
    description="denoising: error of G(x^) against the noise norm and k",
)


def replace(config: object, **changes: object) -> object:
    """dataclasses.replace, dropping None values (unset command-line options)."""
    given = {key: value for key, value in changes.items() if value is not None}
    unknown = set(given) - {field.name for field in dataclasses.fields(config)}
    if unknown:
        raise OptionError(f"unknown settings {sorted(unknown)} for {type(config).__name__}")
    return dataclasses.replace(config, **given)
