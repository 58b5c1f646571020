"""The ``ramster`` command: one sub-command per job, each a thin layer over the library.

Flags map onto the frozen config objects here and nowhere else; a `RamsterError` is printed as
one line and exits 2, so a person sees what to fix instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ramster import __version__
from ramster.errors import RamsterError
from ramster.units import parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except RamsterError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ramster", description="Distributed, compressed far memory with tmem semantics."
    )
    parser.add_argument("--version", action="version", version=f"ramster {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="store a real corpus through frontswap and cleancache and print the counters"
    )
    demo.add_argument("--pages", type=int, default=8192, help="corpus pages (default 8192)")
    demo.add_argument(
        "--memory",
        type=_size,
        default="8MiB",
        help="zcache budget, e.g. 64MiB (default 8MiB)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ramster.workload.demo import run_demo

            return run_demo(pages=args.pages, memory=args.memory)
    except RamsterError as error:
        print(f"ramster {args.command}: {error.message}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
