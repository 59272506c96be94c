"""``genprior cs`` and ``genprior recover`` (placeholder until the experiment lands)."""

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register nothing yet."""
