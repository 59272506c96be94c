"""``genprior train vae``: train the VAE prior."""

import argparse
import shlex
import sys

from genprior.cli.common import Formatter, tqdm_progress

DESCRIPTION = """\
Train the fully connected VAE prior (CSGM's 20-500-500-784 by default) on a dataset.

Writes into --out a checkpoint (model.safetensors + config.json with the data fingerprint,
the settings, the per-epoch history and this command line) after every epoch, and the
training state, so that rerunning the same command after an interrupt resumes where it
stopped. Reports the test ELBO (nats per image) every epoch.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train vae``."""
    from genprior.data import DATASETS

    train = subparsers.add_parser(
        "train", help="train a generative prior", description="Train a generative prior."
    )
    models = train.add_subparsers(
        dest="model", required=True, metavar="MODEL", parser_class=type(train)
    )
    vae = models.add_parser(
        "vae",
        help="the fully connected VAE of the CSGM experiments",
        description=DESCRIPTION,
        formatter_class=Formatter,
    )
    vae.add_argument("--dataset", default="mnist", choices=list(DATASETS), help="training data")
    vae.add_argument("--out", required=True, help="run folder (checkpoint and state)")
    vae.add_argument("--epochs", type=int, default=100, help="passes over the training set")
    vae.add_argument("--batch-size", type=int, default=100, help="images per step")
    vae.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    vae.add_argument("--latent-dim", type=int, default=20, help="latent size K")
    vae.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=[500, 500],
        help="hidden widths of the decoder (the encoder mirrors them)",
    )
    vae.add_argument("--seed", type=int, default=0, help="random seed")
    vae.add_argument("--quick", action="store_true", help="2 epochs, for a fast look")
    vae.set_defaults(handler=run_train_vae)


def run_train_vae(args: argparse.Namespace) -> int:
    """Run ``train vae``; print the final test ELBO."""
    from genprior.data import load_dataset
    from genprior.priors.training import TrainConfig, train_vae

    epochs = 2 if args.quick else args.epochs
    config = TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        command=shlex.join(["genprior", *sys.argv[1:]]),
    )
    dataset = load_dataset(args.dataset)
    progress = tqdm_progress(epochs, "epochs", unit="epoch")

    def on_epoch(epoch: int, total: int, record: dict) -> None:
        progress(postfix={"test_elbo": f"{record['test_elbo']:.2f}"})

    meta = train_vae(config, dataset, args.out, progress=on_epoch)
    last = meta["history"][-1] if meta["history"] else None
    if last:
        print(f"epoch {last['epoch']}: test ELBO {last['test_elbo']:.2f} nats per image")
    print(f"checkpoint: {args.out}")
    return 0
