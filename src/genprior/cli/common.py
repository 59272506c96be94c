"""Shared pieces of the command line: the parser class, logging, progress bars, errors."""

import argparse
import logging
import sys
from collections.abc import Callable

from genprior.errors import GenpriorError


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows meaningful defaults (not None or False) and keeps the description's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """Accept -v/--verbose after the subcommand too (it adds to the top-level count)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="more log output (-v info, -vv debug and tracebacks)",
    )


def setup_logging(verbose: int) -> None:
    """Log genprior's messages to stderr: warnings by default, info with -v, debug with -vv."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("genprior").setLevel(logging.WARNING - 10 * min(verbose, 2))


# Least seconds between two redraws of a progress bar: on a terminal, and in a log file (where
# every redraw is kept).
REDRAW_SECONDS_TTY = 1.0
REDRAW_SECONDS_LOG = 30.0


def progress_bar(total: int, desc: str, unit: str = "it", initial: int = 0) -> "object":
    """A tqdm progress bar on stderr, redrawn at most once a second on a terminal and once
    every 30 seconds when stderr is a file."""
    from tqdm import tqdm

    interval = REDRAW_SECONDS_TTY if sys.stderr.isatty() else REDRAW_SECONDS_LOG
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=interval,
        maxinterval=max(10.0, interval),
    )


def tqdm_progress(total: int, desc: str, unit: str = "it") -> "Callable[..., None]":
    """A callback for the library's ``progress`` arguments, drawing a progress bar on stderr.

    Call it as ``update(advance=1, postfix={...})``; the bar closes when it is full.
    """
    bar = progress_bar(total, desc, unit)

    def update(*args: object, advance: int = 1, postfix: dict | None = None) -> None:
        if postfix:
            bar.set_postfix(postfix, refresh=False)
        bar.update(advance)
        if bar.n >= bar.total:
            bar.close()

    return update


def close_progress_bars() -> None:
    """Close every open progress bar, so that what follows starts on a clean line."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def run_safely(function: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; turn our errors into one line on stderr and exit status 2."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():
            return function(args)
    except (GenpriorError, ValueError, TypeError, FileNotFoundError) as error:
        if getattr(args, "verbose", 0) >= 2:
            raise
        close_progress_bars()
        print(f"genprior: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        close_progress_bars()
        if getattr(args, "resumes", True):
            message = "finished work is saved and a rerun resumes"
        else:
            message = "this command does not resume; rerun it from the start"
        print(f"genprior: interrupted; {message}", file=sys.stderr)
        return 130
