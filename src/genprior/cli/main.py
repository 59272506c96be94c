"""The ``genprior`` console script."""

import sys

from genprior.cli import data as data_cli
from genprior.cli import train as train_cli
from genprior.cli.common import Formatter, Parser, run_safely, setup_logging

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
    return parser


def _command_modules() -> list:
    from genprior.cli import recover as recover_cli

    return [recover_cli, train_cli, data_cli]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_safely(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
