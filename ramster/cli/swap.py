"""``ramster swap on|off|status``: the kernel swaps to RAMster through a device of its own.

``swap on`` makes an export on the node and sets the device up (`ramster.swap.system`); ``swap
off`` undoes every step in reverse, also of a device whose ``swap on`` failed midway; ``swap
status`` shows each device, its use and its pages per second. Each device's record is a folder
under ``--state-dir`` (default ``/run/ramster/swap``), named after the device.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from ramster.cli import flags
from ramster.cli.flags import Parser
from ramster.errors import InvalidArgument
from ramster.swap import system
from ramster.swap.record import SwapRecord, records
from ramster.units import format_size

STATE_DIR = Path("/run/ramster/swap")
MAX_PRIORITY = 32767


def add_swap_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    swap = commands.add_parser("swap", help="let the kernel swap to RAMster (root)")
    actions = swap.add_subparsers(dest="swap_command", required=True, metavar="ACTION")
    on = actions.add_parser("on", help="make an export and swap to it")
    on.add_argument("--size", type=flags.size, required=True, help="the device's size")
    on.add_argument(
        "--name", type=flags.name_of("name"), default="swap0", help="the device's name (swap0)"
    )
    on.add_argument(
        "--priority",
        type=flags.int_in(0, MAX_PRIORITY),
        default=None,
        help="swap priority 0..32767 (default: the kernel's, below every other device)",
    )
    on.add_argument(
        "--uri",
        default="",
        help="swap to this NBD export instead of making one (nbd+unix:///NAME?socket=PATH)",
    )
    for action in (on, *(actions.add_parser(a, help=h) for a, h in _OTHERS)):
        action.add_argument(
            "--state-dir", type=Path, default=STATE_DIR, help=f"device records ({STATE_DIR})"
        )
    actions.choices["off"].add_argument(
        "names", nargs="*", help="the devices to take down (default: every one)"
    )


_OTHERS = (
    ("off", "take swap devices down, every step in reverse"),
    ("status", "show each swap device"),
)


def run_swap(args: argparse.Namespace, out: TextIO) -> int:
    if args.swap_command == "status":
        return _status(args.state_dir, out)
    system.check_machine()
    if args.swap_command == "on":
        if not args.uri:
            raise InvalidArgument("swap on: --uri is required (making the export is not wired yet)")
        record = SwapRecord(
            args.name,
            args.state_dir / args.name,
            uri=args.uri,
            size=args.size,
            priority=args.priority,
        )
        record = system.swap_on(record, None)
        out.write(f"{record.name}: {record.loop} swaps to {record.uri}\n")
        return 0
    wanted = set(args.names)
    for record in records(args.state_dir):
        if wanted and record.name not in wanted:
            continue
        wanted.discard(record.name)
        system.swap_off(record, None)
        out.write(f"{record.name}: off\n")
    if wanted:
        raise InvalidArgument(f"no swap device {', '.join(sorted(wanted))} in {args.state_dir}")
    return 0


def _status(root: Path, out: TextIO) -> int:
    out.write(
        f"{'device':<10} {'loop':<12} {'size':>9} {'used':>9} {'prio':>5} "
        f"{'in/s':>8} {'out/s':>8}  steps\n"
    )
    for record in records(root):
        usage = system.swap_usage(record.loop) if record.loop else None
        size, used, priority = usage if usage is not None else (0, 0, 0)
        rates = system.io_rates(record.loop) if usage is not None else (0.0, 0.0)
        out.write(
            f"{record.name:<10} {record.loop or '-':<12} {format_size(size):>9} "
            f"{format_size(used):>9} {priority:>5} {rates[0]:>8,.0f} {rates[1]:>8,.0f}  "
            f"{','.join(record.done) or '-'}\n"
        )
    return 0
