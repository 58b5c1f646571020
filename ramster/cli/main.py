"""The ``ramster`` command: one sub-command per job, each a thin layer over the library.

Flags and their ``RAMSTER_*`` environment variables map onto the frozen config objects here (and
in `ramster.cli.node`) and nowhere else. A `RamsterError` is printed as one line, so a person sees
what to fix instead of a traceback: a bad flag or environment value (`InvalidArgument`) and a
command whose extra is not installed (`extras.MissingExtra`, e.g. `ramster node` without
``[node]``) exit 2, the code of usage errors, and a failure at run time exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ramster import __version__
from ramster.cli import extras, flags, values
from ramster.cli.certs import add_certs_parser, run_certs
from ramster.cli.exports import add_export_parser, run_export
from ramster.cli.flags import FromEnvironment, Parser, Switch
from ramster.cli.node import add_node_parser, run_node_command
from ramster.cli.quota import add_quota_parser, run_quota
from ramster.cli.swap import add_swap_parser
from ramster.errors import InvalidArgument, RamsterError

FAILED = 1
"""Exit status of a failure at run time."""

MIN_DEMO_PAGES = 2
"""The demo's smallest corpus: a quarter are file pages, and at least one swap page is left."""
MAX_DEMO_PAGES = 32768
"""The demo's largest corpus (128 MiB): the pages are read from this machine's Python install,
which has about this many of the binary kind."""


def _parser() -> Parser:
    parser = Parser(
        prog="ramster", description="Distributed, compressed far memory with tmem semantics."
    )
    parser.add_argument("--version", action="version", version=f"ramster {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_node_parser(commands)
    up = commands.add_parser(
        "up", help="run etcd and N nodes on loopback until Ctrl-C, then stop them all"
    )
    up.add_argument(
        "--nodes",
        action=FromEnvironment,
        variable="RAMSTER_UP_NODES",
        fallback="3",
        type=values.int_in(1, 64),
        help="how many nodes [RAMSTER_UP_NODES, 3]",
    )
    up.add_argument(
        "--memory",
        action=FromEnvironment,
        variable="RAMSTER_UP_MEMORY",
        fallback="256MiB",
        type=values.size,
        help="budget per node [RAMSTER_UP_MEMORY, 256MiB]",
    )
    up.add_argument(
        "--cluster",
        action=FromEnvironment,
        variable="RAMSTER_UP_CLUSTER",
        fallback="local",
        type=values.name_of("cluster"),
        help="cluster name [RAMSTER_UP_CLUSTER, local]",
    )
    stats = commands.add_parser("stats", help="print a node's state and counters")
    flags.node_flag(stats)
    stats.add_argument(
        "--json", action=Switch, help="one JSON object per print [RAMSTER_JSON, off]"
    )
    stats.add_argument(
        "--raw",
        action=Switch,
        help="the counters by kernel name, one a line, instead of in groups [RAMSTER_RAW, off]",
    )
    stats.add_argument(
        "--clients",
        action=Switch,
        help="what each client identity's pages take and its quota, instead of the counters "
        "(an admin's call) [RAMSTER_CLIENTS, off]",
    )
    stats.add_argument(
        "--watch",
        action=FromEnvironment,
        type=values.interval,
        nargs="?",
        const=2.0,
        metavar="N",
        help="repeat every N s (N: 2) [RAMSTER_WATCH, print once]",
    )
    param = commands.add_parser(
        "param", help="get or set a module param of a node, or of the whole cluster"
    )
    param.add_argument("action", choices=("get", "set"))
    param.add_argument(
        "name",
        help="zcache, ramster, eph_remotify, pers_remotify, remote_target, persistent_copies, "
        "origin_grace, client_lease, client_grace, client_quota, repair_rate, read_timeout_ms, "
        "codec, dict_samples, dict_size, dict_drift",
    )
    param.add_argument("value", nargs="?", help="on/off, auto/a node number, a codec... (with set)")
    flags.node_or_cluster_flags(param, "set the param")
    add_quota_parser(commands)
    drain = commands.add_parser(
        "drain", help="have peers move their pages off a node before it is stopped"
    )
    flags.node_flag(drain)
    drain.add_argument(
        "--timeout",
        action=FromEnvironment,
        # The node's own --drain-timeout: the same wait, asked for by the caller here.
        variable="RAMSTER_DRAIN_TIMEOUT",
        fallback="0",
        type=values.seconds,
        help="seconds to wait; 0: the node's own [RAMSTER_DRAIN_TIMEOUT, 0]",
    )
    undrain = commands.add_parser(
        "undrain", help="take a drain back: the node holds pages of other nodes again"
    )
    flags.node_flag(undrain)
    forget = commands.add_parser(
        "forget-node",
        help="decommission a node that left for good: every node drops its pages now",
    )
    forget.add_argument("name", type=values.node_name, help="the node's name in the cluster")
    flags.node_flag(forget, "any live node of the cluster (it tells the others through etcd)")
    members = commands.add_parser("members", help="list the nodes of a cluster from etcd")
    flags.etcd_flag(members)
    flags.cluster_flag(members)
    demo = commands.add_parser(
        "demo", help="a 3-node cluster overcommitted through frontswap and cleancache"
    )
    demo.add_argument(
        "--pages",
        action=FromEnvironment,
        variable="RAMSTER_DEMO_PAGES",
        fallback="8192",
        type=values.int_in(MIN_DEMO_PAGES, MAX_DEMO_PAGES),
        help="corpus pages [RAMSTER_DEMO_PAGES, 8192]",
    )
    demo.add_argument(
        "--memory",
        action=FromEnvironment,
        variable="RAMSTER_DEMO_MEMORY",
        fallback="8MiB",
        type=values.size,
        help="budget of node 1; the others get 8x [RAMSTER_DEMO_MEMORY, 8MiB]",
    )
    demo.add_argument(
        "--keep",
        action=Switch,
        variable="RAMSTER_DEMO_KEEP",
        help="leave the cluster up until Ctrl-C [RAMSTER_DEMO_KEEP, off]",
    )
    demo.add_argument(
        "--node",
        action=FromEnvironment,
        # Not RAMSTER_NODE: a node set for the other commands is not where a demo should write.
        variable="RAMSTER_DEMO_NODE",
        type=values.node_address,
        help="run only the workload, against this running node (Compose, Kubernetes) "
        "[RAMSTER_DEMO_NODE, none: a cluster of its own]",
    )
    flags.tls_flags(demo)
    add_certs_parser(commands)
    add_export_parser(commands)
    add_swap_parser(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "node":
        return run_node_command(args)
    if args.command == "up":
        extras.require(extras.NODE, extras.ETCD)
        from ramster.cli.up import run_up

        return run_up(args.nodes, args.memory, args.cluster, sys.stdout)
    if args.command == "stats":
        from ramster.cli.admin import print_stats

        return print_stats(
            args.node,
            args.json,
            args.watch,
            sys.stdout,
            flags.tls_of(args),
            flags.token_of(args),
            clients=args.clients,
            raw=args.raw,
        )
    if args.command == "param":
        from ramster.cli.admin import param

        if (args.action == "set") != (args.value is not None):
            raise InvalidArgument("param set takes NAME VALUE; param get takes NAME only")
        if args.cluster is not None:
            from ramster.cli.admin import set_cluster_param

            if args.action != "set" or not args.etcd:
                raise InvalidArgument("--cluster works with `param set` and needs --etcd URL")
            extras.require(extras.NODE)  # etcd's client
            return set_cluster_param(
                args.etcd,
                args.cluster,
                args.name,
                args.value,
                sys.stdout,
                flags.etcd_credentials_of(args),
            )
        return param(
            args.node,
            args.action,
            args.name,
            args.value,
            sys.stdout,
            flags.tls_of(args),
            flags.token_of(args),
        )
    if args.command == "quota":
        return run_quota(args, sys.stdout)
    if args.command == "drain":
        from ramster.cli.admin import drain as drain_node

        return drain_node(
            args.node, args.timeout, sys.stdout, flags.tls_of(args), flags.token_of(args)
        )
    if args.command == "forget-node":
        from ramster.cli.admin import forget_node

        return forget_node(
            args.node, args.name, sys.stdout, flags.tls_of(args), flags.token_of(args)
        )
    if args.command == "undrain":
        from ramster.cli.admin import undrain as undrain_node

        return undrain_node(args.node, sys.stdout, flags.tls_of(args), flags.token_of(args))
    if args.command == "members":
        from ramster.cli.admin import print_members

        if not args.etcd:
            raise InvalidArgument("members needs --etcd URL (or RAMSTER_ETCD)")
        extras.require(extras.NODE)  # etcd's client
        return print_members(args.etcd, args.cluster, sys.stdout, flags.etcd_credentials_of(args))
    if args.command == "demo":
        tls = flags.tls_of(args)
        if args.node is not None:
            from ramster.workload.demo import run_demo_on

            return run_demo_on(args.node, args.pages, tls=tls)
        if tls is not None:
            raise InvalidArgument(
                "the TLS flags go with --node: the demo's own cluster makes its own CA"
            )
        extras.require(extras.NODE, extras.ETCD)
        from ramster.workload.demo import run_demo

        return run_demo(pages=args.pages, memory=args.memory, keep=args.keep)
    if args.command == "certs":
        return run_certs(args, sys.stdout)
    if args.command == "swap":
        from ramster.cli.swap import run_swap

        return run_swap(args, sys.stdout)
    if args.command == "export":
        return run_export(args, sys.stdout)
    raise AssertionError(f"unhandled command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.command_parser.read_environment(args)
    try:
        return _run(args)
    except RamsterError as error:
        print(f"ramster {args.command}: {error.message}", file=sys.stderr)
        usage = isinstance(error, InvalidArgument | extras.MissingExtra)
        return flags.USAGE if usage else FAILED


if __name__ == "__main__":
    sys.exit(main())
