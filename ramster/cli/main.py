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
import socket
import sys
from collections.abc import Sequence

from ramster import __version__
from ramster.cgroup import memory_limit
from ramster.cli import flags
from ramster.cli.certs import add_certs_parser, run_certs
from ramster.cli.exports import add_export_parser, run_export
from ramster.cli.flags import FromEnvironment, Parser
from ramster.cli.quota import add_quota_parser, run_quota
from ramster.cli.swap import add_swap_parser
from ramster.config import NbdConfig, NodeConfig
from ramster.errors import InvalidArgument, RamsterError
from ramster.params import READ_TIMEOUT_MS, REPAIR_RATE
from ramster.remote.policy import RemotifyConfig
from ramster.tmem import TmemLimits
from ramster.units import Share
from ramster.zcache import ZcacheConfig

DEFAULT_LISTEN = "127.0.0.1:7470"
FAILED = 1
"""Exit status of a failure at run time."""

MIN_DEMO_PAGES = 2
"""The demo's smallest corpus: a quarter are file pages, and at least one swap page is left."""
MAX_DEMO_PAGES = 32768
"""The demo's largest corpus (128 MiB): the pages are read from this machine's Python install,
which has about this many of the binary kind."""


def _add_node_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    node = commands.add_parser("node", help="run a node: serve Tmem, Admin and Peer until SIGTERM")
    node.add_argument(
        "--listen",
        action=FromEnvironment,
        fallback=DEFAULT_LISTEN,
        many=True,
        type=flags.listen,
        help="HOST:PORT (port 0: any free port) or unix:///path; repeat to listen on several, the "
        "first is primary [RAMSTER_LISTEN, comma-separated, 127.0.0.1:7470]",
    )
    flags.tls_flags(node)
    node.add_argument(
        "--page-key",
        action=FromEnvironment,
        metavar="FILE",
        help="this node's page key (NAME.pagekey from `ramster certs issue DIR node NAME`): pages "
        "shipped to peers are sealed under it [RAMSTER_PAGE_KEY, NAME.pagekey beside --tls-key if "
        "there, else pages leave unsealed]",
    )
    node.add_argument(
        "--peer-listen",
        action=FromEnvironment,
        type=flags.listen,
        help="HOST:PORT or unix:///path where peers reach the Peer service, served there only; "
        "the address published to peers [RAMSTER_PEER_LISTEN, none: Peer on --listen]",
    )
    node.add_argument(
        "--admin-listen",
        action=FromEnvironment,
        type=flags.listen,
        help="unix:///path of the admin socket (mode 0600): Admin calls that change settings "
        "from anyone who can connect [RAMSTER_ADMIN_LISTEN, none]",
    )
    node.add_argument(
        "--nbd",
        action=FromEnvironment,
        many=True,
        type=flags.listen,
        help="unix:///PATH or HOST:PORT to serve the node's exports over NBD (TCP: with TLS, "
        "clients STARTTLS; without, loopback only); repeat for several [RAMSTER_NBD, "
        "comma-separated, none]",
    )
    node.add_argument(
        "--nbd-spill",
        action=FromEnvironment,
        metavar="FILE",
        help="a file for the pages of NBD writes the store refuses [RAMSTER_NBD_SPILL, none: "
        "such a write fails]",
    )
    node.add_argument(
        "--nbd-spill-size",
        action=FromEnvironment,
        type=flags.size,
        help="bytes the spill file may hold, e.g. 1GiB [RAMSTER_NBD_SPILL_SIZE]",
    )
    node.add_argument(
        "--insecure",
        action=FromEnvironment,
        nargs="?",
        const="on",
        fallback="off",
        type=flags.switch,
        help="without TLS, serve plaintext on TCP addresses other than loopback too "
        "[RAMSTER_INSECURE, off]",
    )
    node.add_argument(
        "--socket-mode",
        action=FromEnvironment,
        fallback="0660",
        type=flags.socket_mode,
        help="permissions of unix socket files, octal [RAMSTER_SOCKET_MODE, 0660]",
    )
    node.add_argument(
        "--memory",
        action=FromEnvironment,
        fallback="256MiB",
        type=flags.budget,
        help="zcache budget, e.g. 1GiB or 768Mi, or a percentage of the memory limit of the "
        "node's cgroup (a container's limit), e.g. 75%% [RAMSTER_MEMORY, 256MiB]",
    )
    node.add_argument(
        "--name",
        action=FromEnvironment,
        fallback=socket.gethostname(),
        type=flags.node_name,
        help="node name in the cluster [RAMSTER_NAME, the host name]",
    )
    flags.cluster_flag(node)
    node.add_argument(
        "--metrics",
        action=FromEnvironment,
        type=flags.host_port("metrics"),
        help="HOST:PORT to serve Prometheus /metrics on [RAMSTER_METRICS, off]",
    )
    node.add_argument(
        "--zcache",
        action=FromEnvironment,
        fallback="on",
        type=flags.switch,
        help="load the zcache backend at start: on|off [RAMSTER_ZCACHE, on]",
    )
    node.add_argument(
        "--ramster",
        action=FromEnvironment,
        fallback="on",
        type=flags.switch,
        help="the remote layer at start: on|off [RAMSTER_RAMSTER, on]",
    )
    node.add_argument(
        "--max-clients",
        action=FromEnvironment,
        fallback="4096",
        type=flags.int_in(1, 2**31 - 1),
        help="application clients holding pools at once; a client whose pools all expired "
        "(client_lease, client_grace) no longer counts [RAMSTER_MAX_CLIENTS, 4096]",
    )
    node.add_argument(
        "--grace",
        action=FromEnvironment,
        fallback="10",
        type=flags.seconds,
        help="seconds in-flight calls get on SIGTERM [RAMSTER_GRACE, 10]",
    )
    node.add_argument(
        "--drain-timeout",
        action=FromEnvironment,
        fallback="20",
        type=flags.seconds,
        help="seconds SIGTERM waits for peers to move their copies off [RAMSTER_DRAIN_TIMEOUT, 20]",
    )
    node.add_argument(
        "--ready-file", default=None, help="write address, pid and epoch here once serving"
    )
    flags.etcd_flag(node, help="etcd endpoints for membership [RAMSTER_ETCD]")
    node.add_argument(
        "--peer",
        action="append",
        default=[],
        type=flags.host_port("peer"),
        help="without etcd: HOST:PORT of another node (repeat for each)",
    )
    node.add_argument(
        "--node-number",
        type=flags.int_in(1, 2**31 - 1),
        default=1,
        help="without etcd: this node's number (>= 1)",
    )
    node.add_argument(
        "--advertise",
        action=FromEnvironment,
        type=flags.advertise,
        help="HOST:PORT peers reach this node at, or a host alone (an IP address, IPv6 with or "
        "without brackets, or a name) at the port it listens on [RAMSTER_ADVERTISE, the listen "
        "address]",
    )
    node.add_argument(
        "--lease-ttl",
        action=FromEnvironment,
        fallback="3",
        type=flags.lease_ttl,
        help="seconds the node's etcd entry outlives its last renewal (renewed every third of "
        "it): how soon peers take a node that died for gone, and how long etcd may be out of "
        "reach before a live one is [RAMSTER_LEASE_TTL, 3]",
    )
    node.add_argument(
        "--repair-rate",
        action=FromEnvironment,
        fallback=str(REPAIR_RATE),
        type=flags.param_value("repair_rate"),
        help="pages per second at most that rebuilding lost second copies moves; the module "
        f"param repair_rate changes it at run time [RAMSTER_REPAIR_RATE, {REPAIR_RATE}]",
    )
    node.add_argument(
        "--read-timeout-ms",
        action=FromEnvironment,
        fallback=str(READ_TIMEOUT_MS),
        type=flags.param_value("read_timeout_ms"),
        help="milliseconds a remote get waits for a holder before it reads another copy; the "
        "module param read_timeout_ms changes it at run time [RAMSTER_READ_TIMEOUT_MS, "
        f"{READ_TIMEOUT_MS}]",
    )
    node.add_argument(
        "--recover-timeout",
        action=FromEnvironment,
        fallback="60",
        type=flags.interval,
        help="seconds a restarted node waits for its peers to list the pages they hold for it "
        "[RAMSTER_RECOVER_TIMEOUT, 60]",
    )
    node.add_argument(
        "--log-level",
        action=FromEnvironment,
        fallback="INFO",
        type=flags.log_level,
        help=f"{', '.join(flags.LOG_LEVELS)} [RAMSTER_LOG_LEVEL, INFO]",
    )


def _parser() -> Parser:
    parser = Parser(
        prog="ramster", description="Distributed, compressed far memory with tmem semantics."
    )
    parser.add_argument("--version", action="version", version=f"ramster {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_node_parser(commands)
    up = commands.add_parser(
        "up", help="run etcd and N nodes on loopback until Ctrl-C, then stop them all"
    )
    up.add_argument("--nodes", type=flags.int_in(1, 64), default=3, help="how many nodes (3)")
    up.add_argument("--memory", type=flags.size, default="256MiB", help="budget per node (256MiB)")
    up.add_argument(
        "--cluster", type=flags.name_of("cluster"), default="local", help="cluster name (local)"
    )
    stats = commands.add_parser("stats", help="print a node's state and counters")
    flags.node_flag(stats)
    stats.add_argument("--json", action="store_true", help="one JSON object per print")
    stats.add_argument(
        "--clients",
        action="store_true",
        help="what each client identity's pages take and its quota, instead of the counters "
        "(an admin's call)",
    )
    stats.add_argument(
        "--watch",
        type=flags.interval,
        nargs="?",
        const=2.0,
        default=None,
        help="repeat every N s (2)",
    )
    param = commands.add_parser(
        "param", help="get or set a module param of a node, or of the whole cluster"
    )
    param.add_argument("action", choices=("get", "set"))
    param.add_argument(
        "name",
        help="zcache, ramster, eph_remotify, pers_remotify, remote_target, persistent_copies, "
        "origin_grace, client_lease, client_grace, client_quota, repair_rate, read_timeout_ms",
    )
    param.add_argument("value", nargs="?", help="on/off, or auto/a node number (with set)")
    flags.node_or_cluster_flags(param, "set the param")
    add_quota_parser(commands)
    drain = commands.add_parser(
        "drain", help="have peers move their pages off a node before it is stopped"
    )
    flags.node_flag(drain)
    drain.add_argument(
        "--timeout",
        type=flags.seconds,
        default=0.0,
        help="seconds to wait (default: the node's own)",
    )
    undrain = commands.add_parser(
        "undrain", help="take a drain back: the node holds pages of other nodes again"
    )
    flags.node_flag(undrain)
    forget = commands.add_parser(
        "forget-node",
        help="decommission a node that left for good: every node drops its pages now",
    )
    forget.add_argument("name", type=flags.node_name, help="the node's name in the cluster")
    flags.node_flag(forget, "any live node of the cluster (it tells the others through etcd)")
    members = commands.add_parser("members", help="list the nodes of a cluster from etcd")
    flags.etcd_flag(members)
    flags.cluster_flag(members)
    demo = commands.add_parser(
        "demo", help="a 3-node cluster overcommitted through frontswap and cleancache"
    )
    demo.add_argument(
        "--pages",
        type=flags.int_in(MIN_DEMO_PAGES, MAX_DEMO_PAGES),
        default=8192,
        help="corpus pages (default 8192)",
    )
    demo.add_argument(
        "--memory", type=flags.size, default="8MiB", help="budget of node 1 (8MiB; others 8x)"
    )
    demo.add_argument("--keep", action="store_true", help="leave the cluster up until Ctrl-C")
    demo.add_argument(
        "--node",
        type=flags.node_address,
        default=None,
        help="run only the workload, against this running node (Compose, Kubernetes)",
    )
    flags.tls_flags(demo)
    add_certs_parser(commands)
    add_export_parser(commands)
    add_swap_parser(commands)
    return parser


def _budget(memory: int | Share) -> int:
    """The bytes of ``--memory``: a percentage takes its share of this process's memory limit."""
    if isinstance(memory, Share):
        return memory.of(memory_limit())
    return memory


def _run(args: argparse.Namespace) -> int:
    if args.command == "node":
        from ramster.node import run_node

        logging.basicConfig(
            level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        config = NodeConfig(
            listen=args.listen[0],
            extra_listen=tuple(args.listen[1:]),
            socket_mode=args.socket_mode,
            store=ZcacheConfig(memory=_budget(args.memory)),
            name=args.name,
            cluster=args.cluster,
            metrics=args.metrics,
            zcache=args.zcache,
            ramster=args.ramster,
            grace=args.grace,
            drain_timeout=args.drain_timeout,
            ready_file=args.ready_file,
            etcd=args.etcd,
            etcd_credentials=flags.etcd_credentials_of(args),
            peers=tuple(args.peer),
            node_number=args.node_number,
            advertise=args.advertise,
            tls=flags.tls_of(args),
            insecure=args.insecure,
            page_key=args.page_key,
            peer_listen=args.peer_listen,
            admin_listen=args.admin_listen,
            limits=TmemLimits(max_clients=args.max_clients),
            nbd=NbdConfig(tuple(args.nbd or ()), args.nbd_spill, args.nbd_spill_size or 0),
            lease_ttl=args.lease_ttl,
            remotify=RemotifyConfig(recover_timeout=args.recover_timeout),
            repair_rate=args.repair_rate,
            read_timeout_ms=args.read_timeout_ms,
        )
        return asyncio.run(run_node(config))
    if args.command == "up":
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
        )
    if args.command == "param":
        from ramster.cli.admin import param

        if (args.action == "set") != (args.value is not None):
            raise InvalidArgument("param set takes NAME VALUE; param get takes NAME only")
        if args.cluster is not None:
            from ramster.cli.admin import set_cluster_param

            if args.action != "set" or not args.etcd:
                raise InvalidArgument("--cluster works with `param set` and needs --etcd URL")
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
        return print_members(args.etcd, args.cluster, sys.stdout, flags.etcd_credentials_of(args))
    if args.command == "demo":
        from ramster.workload.demo import run_demo

        tls = flags.tls_of(args)
        if args.node is not None:
            from ramster.workload.demo import run_demo_on

            return run_demo_on(args.node, args.pages, tls=tls)
        if tls is not None:
            raise InvalidArgument(
                "the TLS flags go with --node: the demo's own cluster makes its own CA"
            )
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
        return flags.USAGE if isinstance(error, InvalidArgument) else FAILED


if __name__ == "__main__":
    sys.exit(main())
