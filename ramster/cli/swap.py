"""``ramster swap on|off|status``: the kernel swaps to RAMster through a device of its own.

``swap on`` makes an export on the node and sets the device up (`ramster.swap.system`); ``swap
off`` undoes every step in reverse, also of a device whose ``swap on`` failed midway; ``swap
status`` shows each device, its use and its pages per second. Each device's record is a folder
under ``--state-dir`` (default ``/run/ramster/swap``), named after the device.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TextIO

from ramster.cli import flags, values
from ramster.cli.flags import FromEnvironment, Parser
from ramster.cli.view import console, table
from ramster.client import TLS, SyncClient
from ramster.errors import InvalidArgument, RamsterError
from ramster.state import ExportStatus
from ramster.swap import system
from ramster.swap.record import SwapRecord, records
from ramster.units import format_size

log = logging.getLogger("ramster.swap")

STATE_DIR = Path("/run/ramster/swap")
NBD_SOCKET = Path("/run/ramster/nbd.sock")
MAX_PRIORITY = 32767


def add_swap_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    swap = commands.add_parser("swap", help="let the kernel swap to RAMster (root)")
    actions = swap.add_subparsers(dest="swap_command", required=True, metavar="ACTION")
    on = actions.add_parser("on", help="make an export on the node and swap to it")
    on.add_argument(
        "--size",
        action=FromEnvironment,
        variable="RAMSTER_SWAP_SIZE",
        required=True,
        type=values.size,
        help="the device's size [RAMSTER_SWAP_SIZE, none: required]",
    )
    on.add_argument(
        "--name",
        action=FromEnvironment,
        variable="RAMSTER_SWAP_NAME",
        fallback="swap0",
        type=values.name_of("name"),
        help="the device's name [RAMSTER_SWAP_NAME, swap0]",
    )
    on.add_argument(
        "--priority",
        action=FromEnvironment,
        variable="RAMSTER_SWAP_PRIORITY",
        type=values.int_in(0, MAX_PRIORITY),
        help="swap priority 0..32767 [RAMSTER_SWAP_PRIORITY, the kernel's: below every other "
        "device]",
    )
    on.add_argument(
        "--codec",
        action=FromEnvironment,
        variable="RAMSTER_SWAP_CODEC",
        type=values.codec,
        help="how the node packs the device's pages: lz4, zstd or zstd:LEVEL (1..19) "
        "[RAMSTER_SWAP_CODEC, the node's param codec]",
    )
    flags.node_flag(on, "the node whose export the device is (its admin socket, say)")
    on.add_argument(
        "--nbd-socket",
        action=FromEnvironment,
        fallback=str(NBD_SOCKET),
        type=Path,
        help=f"the node's NBD socket, its --nbd unix:///PATH [RAMSTER_NBD_SOCKET, {NBD_SOCKET}]",
    )
    off = actions.add_parser("off", help="take swap devices down, every step in reverse")
    off.add_argument("names", nargs="*", help="the devices to take down (default: every one)")
    flags.caller_flags(off)  # to delete each export on the node the device recorded
    status = actions.add_parser("status", help="show each swap device")
    flags.caller_flags(status)  # to ask each device's node for its export
    for action in (on, off, status):
        action.add_argument(
            "--state-dir",
            action=FromEnvironment,
            variable="RAMSTER_SWAP_STATE_DIR",
            fallback=str(STATE_DIR),
            type=Path,
            help=f"device records [RAMSTER_SWAP_STATE_DIR, {STATE_DIR}]",
        )


class NodeExports:
    """The exports of the node at `node`, reached as the caller `tls` and `token` prove; an
    export's NBD URI names the node's NBD socket `nbd_socket`."""

    def __init__(
        self,
        node: str,
        tls: TLS | None,
        token: str | None,
        nbd_socket: Path = NBD_SOCKET,
        codec: str | None = None,
    ) -> None:
        self.node = node
        self._codec = codec
        self._tls = tls
        self._token = token
        self._nbd_socket = nbd_socket

    def __repr__(self) -> str:
        return f"<NodeExports {self.node} nbd {self._nbd_socket}>"

    def create(self, name: str, size: int) -> str:
        with self._client() as client:
            client.create_export(name, size, self._codec)
            if client.stats().get("nbd_spill_pages_max", 0) == 0:
                log.warning(
                    "node %s has no spill (--nbd-spill): each page its store refuses (poor "
                    "compression, a full node, no peer for a second copy) fails the kernel's swap "
                    "write, and the processes swapping may stall",
                    self.node,
                )
        return f"nbd+unix:///{name}?socket={self._nbd_socket}"

    def status(self, name: str) -> ExportStatus | None:
        """Export `name` as the node has it; None if the node does not answer or has none."""
        try:
            with self._client() as client:
                return next((e for e in client.list_exports() if e.name == name), None)
        except RamsterError as error:
            log.warning("node %s: %s", self.node, error.message)
            return None

    def delete(self, name: str) -> None:
        with self._client() as client:
            client.delete_export(name)

    def _client(self) -> SyncClient:
        return SyncClient(self.node, client_name="ramster-swap", tls=self._tls, token=self._token)


def run_swap(args: argparse.Namespace, out: TextIO) -> int:
    tls, token = flags.tls_of(args), flags.token_of(args)
    if args.swap_command == "status":
        return _status(args.state_dir, tls, token, out)
    system.check_machine()
    if args.swap_command == "on":
        exports = NodeExports(args.node, tls, token, args.nbd_socket, args.codec)
        record = SwapRecord(
            args.name,
            args.state_dir / args.name,
            node=args.node,
            size=args.size,
            priority=args.priority,
        )
        record = system.swap_on(record, exports)
        out.write(f"{record.name}: {record.loop} swaps to {record.uri} on {record.node}\n")
        return 0
    wanted = set(args.names)
    for record in records(args.state_dir):
        if wanted and record.name not in wanted:
            continue
        wanted.discard(record.name)
        system.swap_off(record, NodeExports(record.node, tls, token))
        out.write(f"{record.name}: off\n")
    if wanted:
        raise InvalidArgument(f"no swap device {', '.join(sorted(wanted))} in {args.state_dir}")
    return 0


STATUS_COLUMNS = (
    "device", "loop", "size", "used", "prio", "in/s", "out/s", "pages", "spilled", "done"
)  # fmt: skip


def _status(root: Path, tls: TLS | None, token: str | None, out: TextIO) -> int:
    """Each device: its loop device, size and use in swap, priority, pages per second in and
    out (over a second), the pages its export holds in RAMster and in the spill (as its node
    says: ``?`` if the node does not answer), and the last of its steps done: steps are done in
    ``ramster.swap.record.STEPS`` order and undone in reverse, so ``loop`` says fuse and loop
    are done (and the export, unless a URI was given), ``swapon`` that all are."""
    rows = []
    for record in records(root):
        usage = system.swap_usage(record.loop) if record.loop else None
        size, used, priority = usage if usage is not None else (0, 0, 0)
        rates = system.io_rates(record.loop) if usage is not None else (0.0, 0.0)
        pages = spilled = "-"
        if record.has("export"):
            export = NodeExports(record.node, tls, token).status(record.name)
            pages, spilled = (
                ("?", "?") if export is None else (f"{export.pages:,}", f"{export.spilled:,}")
            )
        rows.append((
            record.name, record.loop or "-", format_size(size), format_size(used), str(priority),
            f"{rates[0]:,.0f}", f"{rates[1]:,.0f}", pages, spilled,
            record.done[-1] if record.done else "-",
        ))  # fmt: skip
    console(out).print(table(STATUS_COLUMNS, rows, words=(0, 1, 9)))
    return 0
