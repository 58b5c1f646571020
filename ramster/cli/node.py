"""``ramster node``: its flags and the `NodeConfig` they make. The node itself (`ramster.node`)
needs the [node] extra: it is imported only to run one, after `extras.require` said it is there.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket

from ramster.cgroup import memory_limit
from ramster.cli import extras, flags, values
from ramster.cli.flags import FromEnvironment, Parser
from ramster.config import NbdConfig, NodeConfig
from ramster.params import LEASE_TTL, READ_TIMEOUT_MS, RECOVER_TIMEOUT, REPAIR_RATE
from ramster.tmem import TmemLimits
from ramster.units import Share
from ramster.zcache import ZcacheConfig

DEFAULT_LISTEN = "127.0.0.1:7470"


def add_node_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    node = commands.add_parser("node", help="run a node: serve Tmem, Admin and Peer until SIGTERM")
    node.add_argument(
        "--listen",
        action=FromEnvironment,
        fallback=DEFAULT_LISTEN,
        many=True,
        type=values.listen,
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
        type=values.listen,
        help="HOST:PORT or unix:///path where peers reach the Peer service, served there only; "
        "the address published to peers [RAMSTER_PEER_LISTEN, none: Peer on --listen]",
    )
    node.add_argument(
        "--admin-listen",
        action=FromEnvironment,
        type=values.listen,
        help="unix:///path of the admin socket (mode 0600): Admin calls that change settings "
        "from anyone who can connect [RAMSTER_ADMIN_LISTEN, none]",
    )
    node.add_argument(
        "--nbd",
        action=FromEnvironment,
        many=True,
        type=values.listen,
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
        type=values.size,
        help="bytes the spill file may hold, e.g. 1GiB [RAMSTER_NBD_SPILL_SIZE]",
    )
    node.add_argument(
        "--insecure",
        action=FromEnvironment,
        nargs="?",
        const="on",
        fallback="off",
        type=values.switch,
        help="without TLS, serve plaintext on TCP addresses other than loopback too "
        "[RAMSTER_INSECURE, off]",
    )
    node.add_argument(
        "--socket-mode",
        action=FromEnvironment,
        fallback="0660",
        type=values.socket_mode,
        help="permissions of unix socket files, octal [RAMSTER_SOCKET_MODE, 0660]",
    )
    node.add_argument(
        "--memory",
        action=FromEnvironment,
        fallback="256MiB",
        type=values.budget,
        help="zcache budget, e.g. 1GiB or 768Mi, or a percentage of the memory limit of the "
        "node's cgroup (a container's limit), e.g. 75%% [RAMSTER_MEMORY, 256MiB]",
    )
    node.add_argument(
        "--name",
        action=FromEnvironment,
        fallback=socket.gethostname(),
        type=values.node_name,
        help="node name in the cluster [RAMSTER_NAME, the host name]",
    )
    flags.cluster_flag(node)
    node.add_argument(
        "--metrics",
        action=FromEnvironment,
        type=values.host_port("metrics"),
        help="HOST:PORT to serve Prometheus /metrics on [RAMSTER_METRICS, off]",
    )
    node.add_argument(
        "--zcache",
        action=FromEnvironment,
        fallback="on",
        type=values.switch,
        help="load the zcache backend at start: on|off [RAMSTER_ZCACHE, on]",
    )
    node.add_argument(
        "--ramster",
        action=FromEnvironment,
        fallback="on",
        type=values.switch,
        help="the remote layer at start: on|off [RAMSTER_RAMSTER, on]",
    )
    node.add_argument(
        "--max-clients",
        action=FromEnvironment,
        fallback="4096",
        type=values.int_in(1, 2**31 - 1),
        help="application clients holding pools at once; a client whose pools all expired "
        "(client_lease, client_grace) no longer counts [RAMSTER_MAX_CLIENTS, 4096]",
    )
    node.add_argument(
        "--grace",
        action=FromEnvironment,
        fallback="10",
        type=values.seconds,
        help="seconds in-flight calls get on SIGTERM [RAMSTER_GRACE, 10]",
    )
    node.add_argument(
        "--drain-timeout",
        action=FromEnvironment,
        fallback="20",
        type=values.seconds,
        help="seconds SIGTERM waits for peers to move their copies off [RAMSTER_DRAIN_TIMEOUT, 20]",
    )
    node.add_argument(
        "--ready-file",
        action=FromEnvironment,
        help="write address, pid and epoch here once serving [RAMSTER_READY_FILE, none]",
    )
    flags.etcd_flag(node, help="etcd endpoints for membership [RAMSTER_ETCD, none]")
    node.add_argument(
        "--peer",
        action=FromEnvironment,
        many=True,
        type=values.host_port("peer"),
        help="without etcd: HOST:PORT of another node; repeat for each [RAMSTER_PEER, "
        "comma-separated, none]",
    )
    node.add_argument(
        "--node-number",
        action=FromEnvironment,
        fallback="1",
        type=values.int_in(1, 2**31 - 1),
        help="without etcd: this node's number (>= 1) [RAMSTER_NODE_NUMBER, 1]",
    )
    node.add_argument(
        "--advertise",
        action=FromEnvironment,
        type=values.advertise,
        help="HOST:PORT peers reach this node at, or a host alone (an IP address, IPv6 with or "
        "without brackets, or a name) at the port it listens on [RAMSTER_ADVERTISE, the listen "
        "address]",
    )
    node.add_argument(
        "--lease-ttl",
        action=FromEnvironment,
        fallback=str(LEASE_TTL),
        type=values.param_value("lease_ttl"),
        help="seconds the node's etcd entry outlives its last renewal (renewed every third of "
        "it): how soon peers take a node that died for gone, and how long etcd may be out of "
        "reach before a live one is (without etcd: how long a peer that stops answering stays "
        "in the view); the module param lease_ttl changes it at run time "
        f"[RAMSTER_LEASE_TTL, {LEASE_TTL}]",
    )
    node.add_argument(
        "--repair-rate",
        action=FromEnvironment,
        fallback=str(REPAIR_RATE),
        type=values.param_value("repair_rate"),
        help="pages per second at most that rebuilding lost second copies moves; the module "
        f"param repair_rate changes it at run time [RAMSTER_REPAIR_RATE, {REPAIR_RATE}]",
    )
    node.add_argument(
        "--codec",
        action=FromEnvironment,
        fallback="lz4",
        type=values.param_value("codec"),
        help="how new pools pack their pages unless they ask: lz4, zstd or zstd:LEVEL (1..19); "
        "the module param codec changes it at run time [RAMSTER_CODEC, lz4]",
    )
    node.add_argument(
        "--read-timeout-ms",
        action=FromEnvironment,
        fallback=str(READ_TIMEOUT_MS),
        type=values.param_value("read_timeout_ms"),
        help="milliseconds a remote get waits for a holder before it reads another copy; the "
        "module param read_timeout_ms changes it at run time [RAMSTER_READ_TIMEOUT_MS, "
        f"{READ_TIMEOUT_MS}]",
    )
    node.add_argument(
        "--recover-timeout",
        action=FromEnvironment,
        fallback=str(RECOVER_TIMEOUT),
        type=values.param_value("recover_timeout"),
        help="seconds a restarted node waits for its peers to list the pages they hold for it; "
        "the module param recover_timeout (cluster-wide: for the nodes that start later) changes "
        f"it [RAMSTER_RECOVER_TIMEOUT, {RECOVER_TIMEOUT}]",
    )
    node.add_argument(
        "--log-level",
        action=FromEnvironment,
        fallback="INFO",
        type=values.log_level,
        help=f"{', '.join(values.LOG_LEVELS)} [RAMSTER_LOG_LEVEL, INFO]",
    )


def run_node_command(args: argparse.Namespace) -> int:
    """Run a node with the configuration of `args` until SIGTERM; its exit status."""
    extras.require(extras.NODE)
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
        peers=tuple(args.peer or ()),
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
        recover_timeout=args.recover_timeout,
        repair_rate=args.repair_rate,
        read_timeout_ms=args.read_timeout_ms,
        codec=args.codec,
    )
    return asyncio.run(run_node(config))


def _budget(memory: int | Share) -> int:
    """The bytes of ``--memory``: a percentage takes its share of this process's memory limit."""
    if isinstance(memory, Share):
        return memory.of(memory_limit())
    return memory
