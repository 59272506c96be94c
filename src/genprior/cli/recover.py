"""``genprior cs`` (the CSGM MNIST protocol) and ``genprior recover --task TASK``."""

import argparse

from genprior.cli.common import Formatter, close_progress_bars, progress_bar
from genprior.experiments.tasks import TASKS

CS_DESCRIPTION = """\
Compressed sensing of MNIST digits with the shipped VAE prior (CSGM protocol).

For each number of Gaussian measurements m, recover N test images from y = A x + noise
(A ~ N(0, 1/m), noise std 0.1/sqrt(m): CSGM's std 0.1 with unnormalised entries) by
minimising ||A G(z) - y||^2 + lam ||z||^2 over z with Adam and 10 random restarts, and
compare with Lasso in a DCT and a wavelet basis (lambda tuned per m on training images).
Writes results.csv, summary.csv, summary.json, error.png and grid.png into --out; an
interrupted run resumes from its last finished point when rerun with the same settings.

The full protocol (300 images, 9 values of m, 1000 steps) takes about half an hour on two
CPU cores; --quick (30 images, m in 25 50 100 200, 500 steps, 5 restarts) under a minute.
"""

RECOVER_DESCRIPTION = """\
Recover test images under any forward operator with the VAE prior and every baseline that
applies, sweeping the task's parameter:

  cs        Gaussian measurements, parameter m (noise std/sqrt(m) per measurement)
  inpaint   random pixels observed, parameter fraction (per-pixel noise)
  superres  average pooling, parameter factor (per-pixel noise)
  denoise   identity, parameter noise_std (the sweep is the noise level)
  phase     magnitudes |A x| of Gaussian measurements, parameter m

Writes the same files as `genprior cs`.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``cs`` and ``recover``."""
    cs = subparsers.add_parser(
        "cs",
        help="main job: compressed sensing of MNIST (CSGM)",
        description=CS_DESCRIPTION,
        formatter_class=Formatter,
    )
    _add_common(cs)
    cs.set_defaults(handler=run_recover, task="cs")
    recover = subparsers.add_parser(
        "recover",
        help="recovery under any operator",
        description=RECOVER_DESCRIPTION,
        formatter_class=Formatter,
    )
    recover.add_argument("--task", required=True, choices=list(TASKS), help="the problem")
    _add_common(recover)
    recover.set_defaults(handler=run_recover)


def _add_common(parser: argparse.ArgumentParser) -> None:
    from genprior.data import DATASETS

    parser.add_argument(
        "--out", default=None, help="output folder (default runs/<task>, or runs/<task>-quick)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run with other settings found in --out"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast look: few parameter values and images, fewer steps",
    )
    parser.add_argument(
        "--dataset", default="mnist", choices=list(DATASETS), help="test images to recover"
    )
    parser.add_argument(
        "--checkpoint",
        default="mnist-vae",
        help="the prior: a shipped name or a checkpoint folder",
    )
    parser.add_argument(
        "--params",
        type=float,
        nargs="+",
        default=None,
        help="values of the task's parameter (default: the protocol's)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods among vae, lasso-dct, lasso-wavelet, pinv (linear tasks) and "
        "amplitude-flow-dct, amplitude-flow-wavelet (phase) (default: the task's)",
    )
    parser.add_argument(
        "--n-images", type=int, default=None, help="test images (default 300, quick 30)"
    )
    parser.add_argument(
        "--noise-std", type=float, default=None, help="noise level (default: the task's)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="Adam steps (default 1000, quick 500)"
    )
    parser.add_argument(
        "--restarts", type=int, default=None, help="random restarts (default 10, quick 5)"
    )
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    parser.add_argument("--lam", type=float, default=0.1, help="weight of lam ||z||^2")
    parser.add_argument(
        "--tol", type=float, default=0.0, help="early-stopping tolerance (0: run every step)"
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="save every image's objective at every Adam step to history.npz",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def _config(args: argparse.Namespace) -> "object":
    from genprior.experiments.recovery import RecoveryConfig

    given = {
        "task": args.task,
        "dataset": args.dataset,
        "checkpoint": args.checkpoint,
        "lr": args.lr,
        "lam": args.lam,
        "tol": args.tol,
        "history": args.history,
        "seed": args.seed,
        "noise_std": args.noise_std,
    }
    optional = {
        "params": args.params and tuple(args.params),
        "methods": args.methods and tuple(args.methods),
        "n_images": args.n_images,
        "steps": args.steps,
        "restarts": args.restarts,
    }
    given |= {key: value for key, value in optional.items() if value is not None}
    return RecoveryConfig.quick(**given) if args.quick else RecoveryConfig(**given)


def run_recover(args: argparse.Namespace) -> int:
    """Run the sweep, print the summary table and the files written."""
    import sys

    from genprior.experiments import report
    from genprior.experiments.recovery import run_recovery

    config = _config(args).resolved()
    out = args.out or f"runs/{config.task}{'-quick' if args.quick else ''}"
    bar = None

    def on_event(event: dict) -> None:
        nonlocal bar
        if event["event"] == "start":
            if event["done"]:
                print(
                    f"resuming {out}: {event['done']} of {event['total']} points already done",
                    file=sys.stderr,
                )
            bar = progress_bar(event["total"], f"{config.task} sweep", "point", event["done"])
            return
        bar.set_postfix(
            {"last": f"{event['method']}@{event['param']:g}", "mse": f"{event['mse']:.4f}"},
            refresh=False,
        )
        bar.update()

    document = run_recovery(config, out, progress=on_event, overwrite=args.overwrite)
    close_progress_bars()
    print(
        f"\nper-pixel MSE (mean +- s.e. over {config.n_images} images), "
        f"task {config.task} on {document['dataset']['name']}:"
    )
    print(report.format_table(document["summary"], document["param"]))
    extra = ", history.npz" if config.history else ""
    print(f"\nwrote {out}/results.csv, summary.csv, summary.json, error.png, grid.png{extra}")
    return 0
