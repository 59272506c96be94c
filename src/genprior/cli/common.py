"""Shared pieces of the command line: the parser class, logging, progress bars, errors."""

import argparse
import logging
import sys
from collections.abc import Callable

from genprior.errors import GenpriorError


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the description's line breaks."""


def setup_logging(verbose: int) -> None:
    """Log to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def tqdm_progress(total: int, desc: str, unit: str = "it") -> "Callable[..., None]":
    """A callback for the library's ``progress`` arguments, drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not sys.stderr.isatty() and total < 2,
    )

    def update(*args: object, advance: int = 1, postfix: dict | None = None) -> None:
        if postfix:
            bar.set_postfix(postfix, refresh=False)
        bar.update(advance)
        if bar.n >= bar.total:
            bar.close()

    return update


def run_safely(function: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; turn our errors into one line on stderr and exit status 2."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():
            return function(args)
    except (GenpriorError, ValueError, TypeError, FileNotFoundError) as error:
        if getattr(args, "verbose", 0) >= 2:
            raise
        print(f"genprior: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genprior: interrupted; finished work is saved and a rerun resumes", file=sys.stderr)
        return 130
