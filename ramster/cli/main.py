"""The ``ramster`` command: one sub-command per job, each a thin layer over the library.

Flags and their ``RAMSTER_*`` environment variables map onto the frozen config objects here and
nowhere else. A `RamsterError` is printed as one line, so a person sees what to fix instead of a
traceback: a bad flag or environment value (`InvalidArgument`) exits 2, the code of usage
errors, and a failure at run time exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence

from ramster import __version__
from ramster.config import NodeConfig, parse_socket_mode
from ramster.errors import InvalidArgument, RamsterError
from ramster.params import parse_switch
from ramster.units import parse_size
from ramster.zcache import ZcacheConfig

DEFAULT_LISTEN = "127.0.0.1:7470"
USAGE = 2
"""Exit status of a bad flag or environment value (argparse's own)."""
FAILED = 1
"""Exit status of a failure at run time."""


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except RamsterError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _switch(text: str) -> bool:
    try:
        return parse_switch("flag", text)
    except RamsterError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"RAMSTER_{name}", default)


def _add_node_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = commands.add_parser("node", help="run a node: serve Tmem, Admin and Peer until SIGTERM")
    node.add_argument(
        "--listen",
        action="append",
        help="HOST:PORT (port 0: any free port) or unix:///path; repeat to listen on several, the "
        "first is primary [RAMSTER_LISTEN, comma-separated, 127.0.0.1:7470]",
    )
    node.add_argument(
        "--socket-mode",
        default=_env("SOCKET_MODE", "0660"),
        help="permissions of unix socket files, octal [RAMSTER_SOCKET_MODE, 0660]",
    )
    node.add_argument(
        "--memory",
        type=_size,
        default=_env("MEMORY", "256MiB"),
        help="zcache budget, e.g. 1GiB [RAMSTER_MEMORY, 256MiB]",
    )
    node.add_argument(
        "--name",
        default=_env("NAME", socket.gethostname()),
        help="node name in the cluster [RAMSTER_NAME, the host name]",
    )
    node.add_argument(
        "--cluster", default=_env("CLUSTER", "ramster"), help="cluster name [RAMSTER_CLUSTER]"
    )
    node.add_argument(
        "--metrics",
        default=_env("METRICS", None),
        help="HOST:PORT to serve Prometheus /metrics on [RAMSTER_METRICS, off]",
    )
    node.add_argument(
        "--zcache",
        type=_switch,
        default=_env("ZCACHE", "on"),
        help="load the zcache backend at start: on|off [RAMSTER_ZCACHE, on]",
    )
    node.add_argument(
        "--ramster",
        type=_switch,
        default=_env("RAMSTER", "on"),
        help="the remote layer at start: on|off [RAMSTER_RAMSTER, on]",
    )
    node.add_argument(
        "--grace",
        type=float,
        default=float(_env("GRACE", "10") or 10),
        help="seconds in-flight calls get on SIGTERM [RAMSTER_GRACE, 10]",
    )
    node.add_argument(
        "--drain-timeout",
        type=float,
        default=float(_env("DRAIN_TIMEOUT", "20") or 20),
        help="seconds SIGTERM waits for peers to move their copies off [RAMSTER_DRAIN_TIMEOUT, 20]",
    )
    node.add_argument(
        "--ready-file", default=None, help="write address, pid and epoch here once serving"
    )
    node.add_argument(
        "--etcd", default=_env("ETCD", None), help="etcd endpoints for membership [RAMSTER_ETCD]"
    )
    node.add_argument(
        "--peer",
        action="append",
        default=[],
        help="without etcd: HOST:PORT of another node (repeat for each)",
    )
    node.add_argument(
        "--node-number", type=int, default=1, help="without etcd: this node's number (>= 1)"
    )
    node.add_argument(
        "--advertise",
        default=_env("ADVERTISE", None),
        help="HOST:PORT peers reach this node at [RAMSTER_ADVERTISE, the listen address]",
    )
    node.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"), help="[RAMSTER_LOG_LEVEL]")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ramster", description="Distributed, compressed far memory with tmem semantics."
    )
    parser.add_argument("--version", action="version", version=f"ramster {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_node_parser(commands)
    up = commands.add_parser(
        "up", help="run etcd and N nodes on loopback until Ctrl-C, then stop them all"
    )
    up.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    up.add_argument("--memory", type=_size, default="256MiB", help="budget per node (256MiB)")
    up.add_argument("--cluster", default="local", help="cluster name (default local)")
    stats = commands.add_parser("stats", help="print a node's state and counters")
    stats.add_argument("--node", default=_env("NODE", "127.0.0.1:7470"), help="[RAMSTER_NODE]")
    stats.add_argument("--json", action="store_true", help="one JSON object per print")
    stats.add_argument(
        "--watch", type=float, nargs="?", const=2.0, default=None, help="repeat every N s (2)"
    )
    param = commands.add_parser(
        "param", help="get or set a module param of a node, or of the whole cluster"
    )
    param.add_argument("action", choices=("get", "set"))
    param.add_argument(
        "name",
        help="zcache, ramster, eph_remotify, pers_remotify, remote_target, persistent_copies",
    )
    param.add_argument("value", nargs="?", help="on/off, or auto/a node number (with set)")
    param.add_argument("--node", default=_env("NODE", "127.0.0.1:7470"), help="[RAMSTER_NODE]")
    param.add_argument(
        "--cluster",
        metavar="NAME",
        default=None,
        help="set the param cluster-wide in etcd instead (with --etcd)",
    )
    param.add_argument("--etcd", default=_env("ETCD", None), help="etcd endpoints [RAMSTER_ETCD]")
    drain = commands.add_parser(
        "drain", help="have peers move their pages off a node before it is stopped"
    )
    drain.add_argument("--node", default=_env("NODE", "127.0.0.1:7470"), help="[RAMSTER_NODE]")
    drain.add_argument(
        "--timeout", type=float, default=0.0, help="seconds to wait (default: the node's own)"
    )
    undrain = commands.add_parser(
        "undrain", help="take a drain back: the node holds pages of other nodes again"
    )
    undrain.add_argument("--node", default=_env("NODE", "127.0.0.1:7470"), help="[RAMSTER_NODE]")
    members = commands.add_parser("members", help="list the nodes of a cluster from etcd")
    members.add_argument("--etcd", default=_env("ETCD", None), help="etcd endpoints [RAMSTER_ETCD]")
    members.add_argument("--cluster", default=_env("CLUSTER", "ramster"), help="[RAMSTER_CLUSTER]")
    demo = commands.add_parser(
        "demo", help="a 3-node cluster overcommitted through frontswap and cleancache"
    )
    demo.add_argument("--pages", type=int, default=8192, help="corpus pages (default 8192)")
    demo.add_argument(
        "--memory", type=_size, default="8MiB", help="budget of node 1 (8MiB; others 8x)"
    )
    demo.add_argument("--keep", action="store_true", help="leave the cluster up until Ctrl-C")
    demo.add_argument(
        "--node",
        default=None,
        help="run only the workload, against this running node (Compose, Kubernetes)",
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "node":
        from ramster.node import run_node

        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        # An appended flag replaces the environment's list; argparse would append to a default.
        listen = args.listen or [
            a.strip() for a in (_env("LISTEN", None) or DEFAULT_LISTEN).split(",")
        ]
        config = NodeConfig(
            listen=listen[0],
            extra_listen=tuple(listen[1:]),
            socket_mode=parse_socket_mode(args.socket_mode),
            store=ZcacheConfig(memory=args.memory),
            name=args.name,
            cluster=args.cluster,
            metrics=args.metrics,
            zcache=args.zcache,
            ramster=args.ramster,
            grace=args.grace,
            drain_timeout=args.drain_timeout,
            ready_file=args.ready_file,
            etcd=args.etcd,
            peers=tuple(args.peer),
            node_number=args.node_number,
            advertise=args.advertise,
        )
        return asyncio.run(run_node(config))
    if args.command == "up":
        from ramster.cli.up import run_up

        return run_up(args.nodes, args.memory, args.cluster, sys.stdout)
    if args.command == "stats":
        from ramster.cli.admin import print_stats

        return print_stats(args.node, args.json, args.watch, sys.stdout)
    if args.command == "param":
        from ramster.cli.admin import param

        if (args.action == "set") != (args.value is not None):
            raise InvalidArgument("param set takes NAME VALUE; param get takes NAME only")
        if args.cluster is not None:
            from ramster.cli.admin import set_cluster_param

            if args.action != "set" or not args.etcd:
                raise InvalidArgument("--cluster works with `param set` and needs --etcd URL")
            return set_cluster_param(args.etcd, args.cluster, args.name, args.value, sys.stdout)
        return param(args.node, args.action, args.name, args.value, sys.stdout)
    if args.command == "drain":
        from ramster.cli.admin import drain as drain_node

        return drain_node(args.node, args.timeout, sys.stdout)
    if args.command == "undrain":
        from ramster.cli.admin import undrain as undrain_node

        return undrain_node(args.node, sys.stdout)
    if args.command == "members":
        from ramster.cli.admin import print_members

        if not args.etcd:
            raise InvalidArgument("members needs --etcd URL (or RAMSTER_ETCD)")
        return print_members(args.etcd, args.cluster, sys.stdout)
    if args.command == "demo":
        from ramster.workload.demo import run_demo

        if args.node is not None:
            from ramster.workload.demo import run_demo_on

            return run_demo_on(args.node, args.pages)
        return run_demo(pages=args.pages, memory=args.memory, keep=args.keep)
    raise AssertionError(f"unhandled command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except RamsterError as error:
        print(f"ramster {args.command}: {error.message}", file=sys.stderr)
        return USAGE if isinstance(error, InvalidArgument) else FAILED


if __name__ == "__main__":
    sys.exit(main())
