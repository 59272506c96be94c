"""``genprior theory EXPERIMENT``: random generative networks, recovery theory made runnable."""

import argparse
import textwrap

from genprior.cli.common import Formatter, Parser, tqdm_progress

DESCRIPTION = """\
Experiments with random ReLU networks G(x) = relu(W_d ... relu(W_1 x)), W_i ~ N(0, 1/n_i),
that check the recovery theory of Hand & Voroninski (2017), Cocola, Hand & Voroninski (2020)
and Cocola (2022). No data and no trained model are needed. Each recovery experiment writes
results.csv, summary.csv, summary.json and PNG plots into --out, resumes an interrupted run
(a run with other settings needs --overwrite), and has a --quick variant (under a minute
on two idle CPU cores; the full runs take 1 to 8 minutes, the spiked one 11).
`conditions` prints its estimates and writes conditions.json.
"""

HELP = {
    "phase-transition": (
        "success probability against k, widths [k,700,600] and [k,150,700,600], m = 300",
        "Compressed sensing y = A G(x*) (A ~ N(0, 1/m)) by subgradient descent with the "
        "negation step (lr 0.7, at most 20000 steps); success when the relative error of "
        "G(x^) is below 1e-3. Lasso in the identity basis runs beside it. summary.csv has "
        "columns widths,k,trials,success_rate for the negation method.",
    ),
    "noise": (
        "relative error against noise norm tau and k (two layers)",
        "y = A G(x*) + eta with ||eta|| = tau and ||G(x*)|| = 1, in float64.",
    ),
    "spiked": (
        "spiked Wishart and Wigner errors against theta for k = 10, 30, 70",
        "Widths [k, 250, 1700]; gradient descent on 1/4 ||G(x) G(x)^T - M||_F^2 from x_0 and "
        "-x_0 beside the spectral estimate and sparse PCA (truncated power method). "
        "summary.csv has columns model,method,k,theta,error_mean.",
    ),
    "expansivity": (
        "map of success probability over the two layer widths relative to k",
        "Widths [k, r1 k, r2 k], y = G(x*) observed directly; ratios below 1 are contractive.",
    ),
    "phase-retrieval": (
        "phase retrieval y = |A G(x*)|: success against m",
        "Amplitude loss 1/2 || |A G(x)| - y ||^2, with and without the negation step.",
    ),
    "denoise": (
        "denoising y = G(x*) + eta: error against the noise norm and k",
        "The error should be near tau sqrt(k / n), the noise's share in the range.",
    ),
}

# Experiments whose points share their random draws unless --independent-points is given.
STACKED = ("phase-transition", "noise", "spiked", "phase-retrieval", "denoise")

# Per experiment: (flag, config field, type, nargs, help).
OPTIONS = {
    "phase-transition": [
        ("--widths", "architectures", str, "+", "hidden widths per family: 700-600 150-700-600"),
        ("--ks", "ks", int, "+", "latent sizes k (for every family)"),
        ("--m", "m", int, None, "measurements"),
        ("--methods", "methods", str, "+", "negation and/or lasso"),
        ("--negation", "negation", str, None, "every-step, two-start or none"),
    ],
    "noise": [
        ("--hidden", "hidden", int, "+", "hidden widths n1 ... nd"),
        ("--ks", "ks", int, "+", "latent sizes k"),
        ("--taus", "taus", float, "+", "noise norms"),
        ("--m", "m", int, None, "measurements"),
    ],
    "spiked": [
        ("--hidden", "hidden", int, "+", "hidden widths n1 ... nd"),
        ("--models", "models", str, "+", "wishart and/or wigner"),
        ("--ks", "ks", int, "+", "latent sizes k"),
        ("--methods", "methods", str, "+", "generative, spectral, sparse-pca"),
        ("--negation", "negation", str, None, "two-start, every-step or none"),
        ("--grad-tol", "grad_tol", float, None, "early stop at ||grad|| <= this (0: never)"),
    ],
    "expansivity": [
        ("--k", "k", int, None, "latent size"),
        ("--ratios", "ratios", float, "+", "layer widths relative to k"),
    ],
    "phase-retrieval": [
        ("--hidden", "hidden", int, "+", "hidden widths n1 ... nd"),
        ("--k", "k", int, None, "latent size"),
        ("--ms", "ms", int, "+", "numbers of measurements"),
    ],
    "denoise": [
        ("--hidden", "hidden", int, "+", "hidden widths n1 ... nd"),
        ("--ks", "ks", int, "+", "latent sizes k"),
        ("--taus", "taus", float, "+", "noise norms"),
    ],
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``theory`` and its experiments."""
    theory = subparsers.add_parser(
        "theory",
        help="random generative networks: phase transitions, spiked models, conditions",
        description=DESCRIPTION,
        formatter_class=Formatter,
    )
    experiments = theory.add_subparsers(
        dest="experiment", required=True, metavar="EXPERIMENT", parser_class=Parser
    )
    for name, (short, long) in HELP.items():
        text = textwrap.fill(long, width=88)
        parser = experiments.add_parser(
            name, help=short, description=f"{short}.\n\n{text}", formatter_class=Formatter
        )
        _add_common(parser, name)
        if name in STACKED:
            parser.add_argument(
                "--independent-points",
                action="store_true",
                help="draw fresh networks, matrices and starts for each k (or m, or spiked k and "
                "theta) and run them one after another (default: the points of a curve share "
                "each trial's draws and run as one stacked batch, several times faster)",
            )
        for flag, field, kind, nargs, text in OPTIONS[name]:
            parser.add_argument(flag, dest=field, type=kind, nargs=nargs, default=None, help=text)
        parser.set_defaults(handler=run_theory)
    _add_conditions(experiments)


def _add_common(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--out", default=None, help=f"output folder (default runs/theory-{name})")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run with other settings found in --out"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast look: fewer points and trials"
    )
    parser.add_argument("--trials", type=int, default=None, help="Monte-Carlo trials per point")
    parser.add_argument("--max-iters", dest="max_iters", type=int, default=None, help="step cap")
    parser.add_argument("--dtype", default=None, choices=["float32", "float64"], help="precision")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def _config(args: argparse.Namespace) -> object:
    from genprior.theory import EXPERIMENTS
    from genprior.theory.recovery import replace

    _, config_type = EXPERIMENTS[args.experiment]
    config = config_type.quick() if args.quick else config_type()
    changes = {"trials": args.trials, "dtype": args.dtype, "seed": args.seed}
    if getattr(args, "independent_points", False):
        changes["shared_draws"] = False
    if args.max_iters is not None:
        key = "max_iters"
        if args.experiment == "spiked":
            changes |= {"steps_wishart": args.max_iters, "steps_wigner": args.max_iters}
        else:
            changes[key] = args.max_iters
    for _, field, _, nargs, _ in OPTIONS[args.experiment]:
        value = getattr(args, field)
        changes[field] = tuple(value) if nargs and value is not None else value
    if args.experiment == "phase-transition":
        changes |= _architectures(args, config)
    return replace(config, **changes).validated()


def _architectures(args: argparse.Namespace, config: object) -> dict:
    """--widths 700-600 150-700-600 and --ks 5 10 into the config's per-family tuples."""
    families = config.architectures
    if args.architectures is not None:
        families = []
        for text in args.architectures:
            try:
                families.append(tuple(int(part) for part in text.removeprefix("k-").split("-")))
            except ValueError:
                raise ValueError(
                    f"--widths must be hidden widths joined by '-', e.g. 700-600; received "
                    f"{text!r}"
                ) from None
        families = tuple(families)
    ks = config.ks if args.ks is None else tuple(tuple(args.ks) for _ in families)
    if len(ks) != len(families):
        ks = tuple(ks[0] for _ in families)
    return {"architectures": families, "ks": ks}


def run_theory(args: argparse.Namespace) -> int:
    """Run one experiment, print its summary table and the files written."""
    from genprior.theory import EXPERIMENTS, run_experiment

    config = _config(args)
    experiment, _ = EXPERIMENTS[args.experiment]
    out = args.out or f"runs/theory-{args.experiment}"
    bar = None

    def on_event(event: dict) -> None:
        nonlocal bar
        if event["event"] == "start":
            if event["done"]:
                print(f"resuming {out}: {event['done']} of {event['total']} points already done")
            bar = tqdm_progress(event["total"], args.experiment, unit="point")
            if event["done"]:
                bar(advance=event["done"])
            return
        bar(postfix={"last": event["key"], "s": f"{event['seconds']:.1f}"})

    document = run_experiment(experiment, config, out, progress=on_event, overwrite=args.overwrite)
    _print_summary(out)
    rows = len(document["summary"])
    print(f"\n{document['seconds_total']:.1f} s of compute (all runs into {out}) over {rows} rows")
    print(
        f"wrote {out}/results.csv, summary.csv, summary.json, "
        + ", ".join(p.split("/")[-1] for p in document["plots"])
    )
    return 0


def _print_summary(out: str) -> None:
    from genprior.io import read_csv

    rows = read_csv(f"{out}/summary.csv")
    if not rows:
        return
    columns = list(rows[0])
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for line in cells:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))


def _cell(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    return text if value.is_integer() and "e" not in text else f"{value:.4g}"


def _add_conditions(experiments: argparse._SubParsersAction) -> None:
    parser = experiments.add_parser(
        "conditions",
        help="estimate how far weights are from the WDC and R2WDC, layer by layer",
        description=(
            "Sample pairs of directions and estimate, for every layer, the deviation of the "
            "weight matrix from the weight distribution condition (WDC) and its "
            "range-restricted form (R2WDC). Random networks of --widths, or the weights in a "
            "safetensors/.pt file (--weights) holding W1, W2, ... as (n_out, n_in) matrices."
        ),
        formatter_class=Formatter,
    )
    parser.add_argument("--widths", default="10-250-1700", help="k-n1-...-nd of random networks")
    parser.add_argument("--weights", default=None, help="a .pt or .safetensors weight file")
    parser.add_argument("--networks", type=int, default=3, help="random networks to check")
    parser.add_argument("--pairs", type=int, default=200, help="sampled direction pairs")
    parser.add_argument("--out", default=None, help="also write conditions.json here")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.set_defaults(handler=run_conditions)


def run_conditions(args: argparse.Namespace) -> int:
    """Print the per-layer WDC and R2WDC deviations."""
    from genprior.io import write_json_atomic
    from genprior.theory.conditions import check_conditions, load_weights, random_weights

    if args.weights:
        weights = [load_weights(args.weights)]
    else:
        weights = random_weights(args.widths, args.networks, seed=args.seed)
    rows = []
    for index, layers in enumerate(weights):
        for row in check_conditions(layers, pairs=args.pairs, seed=args.seed + index):
            rows.append({"network": index} | row)
    print(f"{'net':>3} {'layer':>5} {'n_out x n_in':>13} {'WDC eps':>9} {'R2WDC eps':>9}")
    for row in rows:
        shape = f"{row['n_out']}x{row['n_in']}"
        print(
            f"{row['network']:>3} {row['layer']:>5} {shape:>13} "
            f"{row['wdc']:>9.4f} {row['r2wdc']:>9.4f}"
        )
    if args.out:
        write_json_atomic(f"{args.out}/conditions.json", {"rows": rows})
        print(f"wrote {args.out}/conditions.json")
    return 0
