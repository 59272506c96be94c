"""``genprior sobolev convergence|regression|distill``: Sobolev training experiments."""

import argparse

from genprior.cli.common import Formatter, Parser, tqdm_progress

DESCRIPTION = """\
Sobolev training: fit a network's values and its directional derivatives.

  convergence  two-layer ReLU network, gradient descent on the Sobolev loss, against
               width and input separation; Gram eigenvalue against separation
  regression   value-only against Sobolev training on classic test functions
  distill      a teacher network distilled into a student with and without derivatives

Each writes results.csv, summary.csv, summary.json and PNG plots into --out.
"""

CONVERGENCE_DESCRIPTION = """\
Two-layer ReLU network f(x) = m^-1/2 sum_r a_r relu(w_r.x) (fixed signs a_r, only W
trained) fitted by full-batch gradient descent to random values and random tangent
directional derivatives at n points on the unit sphere whose closest pair is exactly
`separation` apart (our own sweep of width and separation). Also the smallest eigenvalue of
the value-and-derivative Gram matrix at initialisation against separation.

summary.csv: width,separation,final_value_loss,final_derivative_loss (mean squared
residuals, worst seed). Also threshold.csv (the width from which both fall below --tol),
gram.csv, curves.csv, loss_curves.png, transition.png, gram.png.

Full run (n=16, D=5, widths 16..16384, 3 separations, 3 seeds, <= 20000 steps): about
8 minutes on one busy CPU core; --quick (n=10, D=4, widths 4..4096, 3 separations, 1 seed):
about 15 seconds.
"""

REGRESSION_DESCRIPTION = """\
Value-only (`values`) against Sobolev (`sobolev`) training of the same initial tanh MLP, for
the same number of points and Adam steps, on Styblinski-Tang, Rosenbrock, Ackley and
Rastrigin in several dimensions; test error is the relative MSE of values on held-out points.
`sobolev` uses --derivative-weight (default 1e-3, chosen on a pilot with seeds 0-2; runs
start at seed 10). Every run also trains Sobolev copies at each of --sweep-weights.

summary.csv: function,dim,n_train,method,test_error_mean,test_error_sem (over seeds).
sensitivity.csv: the same per derivative weight (0 = value-only training).

Full run (4 functions, D in 2 5 10, n in 10 30 100 300, 5 seeds, 1500 steps, 4 swept
weights): about 45 minutes on one busy CPU core; --quick (3 functions, D in 2 5, n in 20 80,
5 seeds, 300 steps, weights 1e-3 and 1): about a minute.
"""

DISTILL_DESCRIPTION = """\
A fixed random tanh teacher (D=8 -> P=4) distilled into a smaller student from Gaussian
transfer points, on values only (`values`) or also on directional derivatives along K random
unit directions per point (`sobolev`); errors of values and derivatives on held-out points.

summary.csv: n_train,method,test_error_mean,test_error_sem,derivative_error_mean,
derivative_error_sem.

Full run (n in 16..512, 5 seeds, 1500 steps): about 4 minutes on one busy CPU core;
--quick (n in 16 64 256, 300 steps): about a minute.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sobolev`` and its three experiments."""
    sobolev = subparsers.add_parser(
        "sobolev",
        help="Sobolev training experiments (values and derivatives)",
        description=DESCRIPTION,
        formatter_class=Formatter,
    )
    experiments = sobolev.add_subparsers(
        dest="experiment", required=True, metavar="EXPERIMENT", parser_class=Parser
    )
    convergence = experiments.add_parser(
        "convergence",
        help="two-layer ReLU: loss against width and separation",
        description=CONVERGENCE_DESCRIPTION,
        formatter_class=Formatter,
    )
    _add_common(convergence, "runs/sobolev-convergence")
    convergence.add_argument("--widths", type=int, nargs="+", help="hidden widths m")
    convergence.add_argument(
        "--separations", type=float, nargs="+", help="minimum distances between inputs"
    )
    convergence.add_argument("--n", type=int, help="training points")
    convergence.add_argument("--dim", type=int, help="input dimension D")
    convergence.add_argument("--steps", type=int, help="maximum gradient-descent steps")
    convergence.add_argument("--tol", type=float, help="target mean squared residual")
    convergence.set_defaults(handler=run_convergence_command, resumes=False)

    regression = experiments.add_parser(
        "regression",
        help="value-only against Sobolev training on test functions",
        description=REGRESSION_DESCRIPTION,
        formatter_class=Formatter,
    )
    _add_common(regression, "runs/sobolev-regression")
    regression.add_argument("--functions", nargs="+", help="test functions")
    regression.add_argument("--dims", type=int, nargs="+", help="input dimensions")
    regression.add_argument("--n-train", type=int, nargs="+", help="training-set sizes")
    regression.add_argument("--steps", type=int, help="Adam steps per training run")
    regression.add_argument(
        "--directions",
        type=int,
        help="random unit directions per point (default: the full gradient)",
    )
    regression.add_argument(
        "--derivative-weight",
        type=float,
        help="derivative weight of the method `sobolev` (default 1e-3)",
    )
    regression.add_argument(
        "--sweep-weights",
        type=float,
        nargs="*",
        help="further derivative weights for sensitivity.csv (none: no sweep)",
    )
    regression.set_defaults(handler=run_regression_command, resumes=False)

    distill = experiments.add_parser(
        "distill",
        help="teacher into student with and without derivative matching",
        description=DISTILL_DESCRIPTION,
        formatter_class=Formatter,
    )
    _add_common(distill, "runs/sobolev-distill")
    distill.add_argument("--n-train", type=int, nargs="+", help="transfer-set sizes")
    distill.add_argument("--steps", type=int, help="Adam steps per training run")
    distill.add_argument("--directions", type=int, help="random directions per point")
    distill.set_defaults(handler=run_distill_command, resumes=False)


def _add_common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help="output folder")
    parser.add_argument("--quick", action="store_true", help="a small, fast configuration")
    parser.add_argument("--seeds", type=int, help="independent repetitions")
    parser.add_argument("--seed", type=int, help="base random seed (default: the config's)")


def _build(config_class: type, args: argparse.Namespace, options: dict) -> object:
    """The quick or full config, with the options the user gave."""
    given = {key: value for key, value in options.items() if value is not None}
    if args.seed is not None:
        given["seed"] = args.seed
    if args.seeds is not None:
        given["seeds"] = args.seeds
    return config_class.quick(**given) if args.quick else config_class(**given)


def _tuple(values: list | None) -> tuple | None:
    return None if values is None else tuple(values)


def _progress(desc: str) -> "object":
    bar = None

    def on_event(event: dict) -> None:
        nonlocal bar
        if event["event"] == "start":
            bar = tqdm_progress(event["total"], desc, unit="run")
        else:
            bar()

    return on_event


def run_convergence_command(args: argparse.Namespace) -> int:
    """Run the convergence sweep and print its summary."""
    from genprior.sobolev.convergence import ConvergenceConfig, format_summary, run_convergence

    options = {
        "widths": _tuple(args.widths),
        "separations": _tuple(args.separations),
        "n": args.n,
        "dim": args.dim,
        "steps": args.steps,
        "tol": args.tol,
    }
    config = _build(ConvergenceConfig, args, options)
    document = run_convergence(config, args.out, progress=_progress("convergence"))
    print(format_summary(document))
    print(f"\nwrote {args.out}/results.csv, summary.csv, summary.json, threshold.csv, gram.csv,")
    print("curves.csv, loss_curves.png, transition.png, gram.png")
    return 0


def run_regression_command(args: argparse.Namespace) -> int:
    """Run the regression comparison and print its table."""
    from genprior.sobolev.regression import RegressionConfig, format_summary, run_regression

    options = {
        "functions": _tuple(args.functions),
        "dims": _tuple(args.dims),
        "n_train": _tuple(args.n_train),
        "steps": args.steps,
        "directions": args.directions,
        "derivative_weight": args.derivative_weight,
        "sweep_weights": _tuple(args.sweep_weights),
    }
    config = _build(RegressionConfig, args, options)
    document = run_regression(config, args.out, progress=_progress("regression"))
    print(f"relative test MSE (mean +- s.e. over {config.seeds} seeds):")
    print(format_summary(document))
    print(
        f"\nwrote {args.out}/results.csv, summary.csv, sensitivity.csv, summary.json, "
        "regression.png"
    )
    return 0


def run_distill_command(args: argparse.Namespace) -> int:
    """Run the distillation comparison and print its table."""
    from genprior.sobolev.distill import DistillConfig, format_summary, run_distill

    options = {
        "n_train": _tuple(args.n_train),
        "steps": args.steps,
        "directions": args.directions,
    }
    config = _build(DistillConfig, args, options)
    document = run_distill(config, args.out, progress=_progress("distill"))
    print(f"relative test MSE (mean +- s.e. over {config.seeds} seeds):")
    print(format_summary(document))
    print(f"\nwrote {args.out}/results.csv, summary.csv, summary.json, distill.png")
    return 0
