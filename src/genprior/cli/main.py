"""The ``genprior`` console script."""

import argparse
import sys

from genprior.cli.common import Formatter, Parser, add_verbose, run_safely, setup_logging

DESCRIPTION = """\
genprior: generative models as priors for inverse problems.

Main job: `genprior cs --quick --out runs/demo` recovers MNIST digits from few Gaussian
measurements with the shipped VAE prior and compares with Lasso baselines.
"""


def build_parser() -> Parser:
    """The full argument parser with every command."""
    parser = Parser(prog="genprior", description=DESCRIPTION, formatter_class=Formatter)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output (-v info, -vv debug and tracebacks)",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for module in _command_modules():
        module.add_parser(commands)
    for leaf in _leaf_parsers(parser):
        add_verbose(leaf)
    return parser


def _leaf_parsers(parser: Parser) -> list[Parser]:
    """The parsers of the runnable commands (those without subcommands)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return [parser]
    return [leaf for sub in groups[0].choices.values() for leaf in _leaf_parsers(sub)]


def _command_modules() -> list:
    """The modules that register commands, in the order of ``genprior --help``."""
    from genprior.cli import data, finetune, recover, rom, sobolev, theory, train

    return [recover, train, data, theory, sobolev, finetune, rom]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("genprior: interrupted", file=sys.stderr)
        return 130
    setup_logging(args.verbose)
    return run_safely(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
