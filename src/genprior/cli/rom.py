"""``genprior rom burgers``: hyper-reduced autoencoder reduced-order models of 2D Burgers."""

import argparse
import logging
import warnings
from collections.abc import Callable

from genprior.cli.common import Formatter, Parser, tqdm_progress

logger = logging.getLogger(__name__)

EPOCHS_HELP = (
    "Adam epochs of the {} (>= 0) between placing the hidden units and the least-squares "
    "output layer. 0 skips Adam: the encoder stays the linear POD projection, the hidden "
    "units stay where --hidden put them, and only the output layer is fitted by least squares"
)

DESCRIPTION = """\
Reduced-order models of full-order simulations.

  burgers  2D viscous Burgers (Kim et al. 2022 set-up): FOM, POD-LSPG, hyper-reduced
           POD-LSPG, autoencoder LSPG with and without hyper-reduction, and HRAE (the
           network trained only on the stencil-mesh rows of the snapshots)

Writes results.csv, summary.csv, summary.json and PNG plots into --out.
"""

BURGERS_DESCRIPTION = """\
2D Burgers on [0,1]^2, Re = 10000, initial condition a sin(2 pi x) sin(2 pi y) on
[0,0.5]^2, backward Euler (dt = 1/750, T = 2), upwind convection, central diffusion,
Newton with a sparse LU. Snapshots at a in 0.9 0.95 1.05 1.1; every reduced model predicts
a = 1.0 and is compared with the FOM solved in the same run (relative l2 error per step,
speed-up of the time marching). Snapshots and trained networks are cached under --out, so a
rerun resumes.

summary.csv: method,latent_dim,mean_rel_error,max_rel_error,online_seconds,speedup,
train_seconds,train_peak_mb (peak memory: growth of the training process's peak RSS).
Also results.csv (error per method and step), summary.json (stage wall times, mesh sizes),
errors.png, fields.png, speedup.png.

Full run (60 x 60 grid, 1500 steps): about 5 minutes for the training snapshots the first
time, 2.5 for the autoencoder and HRAE, 1 for the test FOM and 1 for the reduced models on
one core (10 minutes in all). --quick (30 x 30 grid, dt = 1/375 to T = 1): about 35 seconds. Set
OMP_NUM_THREADS=1 for steady timings.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rom`` and its experiments."""
    rom = subparsers.add_parser(
        "rom",
        help="reduced-order models (hyper-reduced autoencoders, 2D Burgers)",
        description=DESCRIPTION,
        formatter_class=Formatter,
    )
    experiments = rom.add_subparsers(
        dest="experiment", required=True, metavar="EXPERIMENT", parser_class=Parser
    )
    burgers = experiments.add_parser(
        "burgers",
        help="FOM, POD-LSPG(-HR), AE-LSPG(-HR) and HRAE on 2D Burgers",
        description=BURGERS_DESCRIPTION,
        formatter_class=Formatter,
    )
    burgers.add_argument("--out", default="runs/rom-burgers", help="output folder")
    burgers.add_argument("--quick", action="store_true", help="a small, fast configuration")
    burgers.add_argument(
        "--seed", type=int, default=0, help="random seed of the networks (default 0)"
    )
    burgers.add_argument(
        "--nx",
        type=int,
        help="grid points per direction, boundary included (default 60, 30 with --quick)",
    )
    burgers.add_argument(
        "--latent-dim", type=int, help="latent size K of every reduced model (default 8)"
    )
    burgers.add_argument(
        "--samples",
        type=int,
        help="sample-mesh rows, in [1, min(dofs, training steps x parameters)] "
        "(default 60, 30 with --quick)",
    )
    burgers.add_argument(
        "--hidden",
        choices=("sampled", "random"),
        help="how the decoder's hidden units are placed: 'sampled' puts each unit's sigmoid "
        "between two snapshots where its rows change (default); 'random' draws them at random",
    )
    burgers.add_argument(
        "--units",
        type=int,
        help="hidden units per 2 x 2 cells and component (default 32, 16 with --quick)",
    )
    burgers.add_argument(
        "--hrae-units",
        type=int,
        help="hidden units per 2 x 2 cells and component of the HRAE (default 64, 16 with "
        "--quick; it trains on the stencil-mesh rows only, so a wider decoder stays cheap)",
    )
    burgers.add_argument(
        "--epochs", type=int, help=EPOCHS_HELP.format("autoencoder") + " (default 0)"
    )
    burgers.add_argument(
        "--hrae-epochs", type=int, help=EPOCHS_HELP.format("HRAE") + " (default: --epochs)"
    )
    burgers.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="reduced models to run, from pod-lspg pod-lspg-hr ae-lspg ae-lspg-hr hrae "
        "(default: all five)",
    )
    burgers.add_argument(
        "--hyper-residual",
        choices=("gappy", "collocation"),
        help="how POD-LSPG-HR and AE-LSPG-HR weigh the sampled residual: 'gappy' (default) "
        "minimises its gappy-POD coefficients in a residual basis, 'collocation' the sampled "
        "residual itself",
    )
    burgers.add_argument(
        "--hrae-residual",
        choices=("gappy", "collocation"),
        help="the same for HRAE (default collocation)",
    )
    burgers.set_defaults(handler=run_burgers_command)


def run_burgers_command(args: argparse.Namespace) -> int:
    """Run the Burgers experiment and print its summary."""
    from dataclasses import replace

    from genprior.rom.experiment import BurgersROMConfig, run_burgers
    from genprior.rom.output import format_summary

    options = {
        "nx": args.nx,
        "latent_dim": args.latent_dim,
        "n_samples": args.samples,
        "hrae_epochs": args.hrae_epochs,
        "methods": None if args.methods is None else tuple(args.methods),
        "hyper_residual": args.hyper_residual,
        "hrae_residual": args.hrae_residual,
        "hrae_units": args.hrae_units,
    }
    given = {key: value for key, value in options.items() if value is not None}
    given["seed"] = args.seed
    config = BurgersROMConfig.quick(**given) if args.quick else BurgersROMConfig(**given)
    network = {"epochs": args.epochs, "hidden": args.hidden, "units": args.units}
    network = {key: value for key, value in network.items() if value is not None}
    config = replace(config, autoencoder=replace(config.autoencoder, **network))
    with warnings.catch_warnings():
        warnings.showwarning = _log_warning
        document = run_burgers(config, args.out, progress=tqdm_progress_factory)
    print(format_summary(document))
    stages = ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in document["stage_seconds"].items()
    )
    print(f"\nwall time per stage: {stages}")
    print(f"wrote {args.out}/results.csv, summary.csv, summary.json, errors.png, fields.png,")
    print("speedup.png")
    return 0


def _log_warning(
    message: Warning | str, category: type[Warning], *args: object, **kw: object
) -> None:
    """Show a warning as one log line (no source path or code line)."""
    logger.warning("%s: %s", category.__name__, message)


def tqdm_progress_factory(desc: str, total: int) -> "Callable[..., None]":
    """A progress bar for one stage of the experiment (none when ``total`` is 0)."""
    if total <= 0:  # nothing to show (zero training epochs)
        return lambda *args, **kwargs: None
    return tqdm_progress(total, desc, unit="epoch" if desc.startswith("train") else "step")
