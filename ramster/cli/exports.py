"""``ramster export create|list|delete``: the NBD exports of the caller's identity on one node,
over the client library's Admin calls (`ramster.nbd.exports` is what the node does with them)."""

from __future__ import annotations

import argparse
from typing import TextIO

from ramster.cli import flags, values
from ramster.cli.flags import FromEnvironment, Parser
from ramster.cli.view import console, table
from ramster.client import SyncClient
from ramster.state import ExportStatus
from ramster.units import format_size


def add_export_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    export = commands.add_parser(
        "export", help="create, list or delete the NBD exports (block devices) of a node"
    )
    actions = export.add_subparsers(dest="export_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="a new export: NBD clients reach it as nbd+unix:///NAME?socket=PATH"
    )
    create.add_argument("name", type=values.name_of("name"), help="the export's name")
    create.add_argument(
        "--size",
        action=FromEnvironment,
        variable="RAMSTER_EXPORT_SIZE",
        required=True,
        type=values.size,
        help="bytes, a multiple of 4 KiB: 1GiB, 512MiB [RAMSTER_EXPORT_SIZE, none: required]",
    )
    create.add_argument(
        "--codec",
        action=FromEnvironment,
        variable="RAMSTER_EXPORT_CODEC",
        type=values.codec,
        help="how the node packs the export's pages: lz4, zstd or zstd:LEVEL (1..19) "
        "[RAMSTER_EXPORT_CODEC, the node's param codec]",
    )
    flags.node_flag(create)
    listing = actions.add_parser("list", help="the exports of the caller's identity")
    flags.node_flag(listing)
    delete = actions.add_parser("delete", help="delete an export and every page of it")
    delete.add_argument("name", help="the export's name")
    flags.node_flag(delete)


def run_export(args: argparse.Namespace, out: TextIO) -> int:
    tls, token = flags.tls_of(args), flags.token_of(args)
    with SyncClient(args.node, client_name="ramster-cli", tls=tls, token=token) as client:
        if args.export_command == "create":
            status = client.create_export(args.name, args.size, args.codec)
            out.write(f"export {status.name} created: {format_size(status.size)}\n")
        elif args.export_command == "list":
            show_exports(out, client.list_exports())
        else:
            flushed = client.delete_export(args.name)
            out.write(f"export {args.name} deleted: {flushed} pages flushed\n")
    return 0


def show_exports(out: TextIO, exports: list[ExportStatus]) -> None:
    """A row per export: its name, size, pages held, pages spilled and owner."""
    if not exports:
        out.write("no exports\n")
        return
    rows = [
        (e.name, format_size(e.size), f"{e.pages:,}", f"{e.spilled:,}", e.owner) for e in exports
    ]
    console(out).print(table(("name", "size", "pages", "spilled", "owner"), rows, words=(0, 4)))
