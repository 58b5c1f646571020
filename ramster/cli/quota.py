"""``ramster quota set|unset|list``: the quotas of client identities on one node (over the
client, as ``ramster param``), or cluster-wide in etcd (``--cluster``), which every node follows.

An identity is ``role:name`` (`ramster.trust.identity.owner_identity`), a size what
``ramster.units`` reads; both are checked here before any node or etcd is asked.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TextIO

from nodemanager.etcd_settings import EtcdCredentials
from ramster.cli import extras, flags
from ramster.cli.flags import Parser
from ramster.errors import InvalidArgument
from ramster.params import parse_quota
from ramster.tmem.quota import Quotas
from ramster.trust.identity import owner_identity
from ramster.units import format_size
from ramster.wire.tls import TLS


def add_quota_parser(commands: argparse._SubParsersAction[Parser]) -> None:
    quota = commands.add_parser(
        "quota",
        help="set, unset or list the quotas of client identities on a node, or cluster-wide",
    )
    quota.add_argument("action", choices=("set", "unset", "list"))
    quota.add_argument(
        "identity",
        nargs="?",
        metavar="IDENTITY",
        help="role:name, role client, admin or local (with set and unset)",
    )
    quota.add_argument(
        "size",
        nargs="?",
        metavar="SIZE",
        help="bytes its pages may take on each node, such as 64MiB or 768Mi; 0: no quota (with "
        "set)",
    )
    flags.node_or_cluster_flags(quota, "set or unset the quota")


def run_quota(args: argparse.Namespace, out: TextIO) -> int:
    """Check the command line of ``ramster quota`` and run it."""
    given = (args.identity is not None, args.size is not None)
    takes = {"set": (True, True), "unset": (True, False), "list": (False, False)}
    if given != takes[args.action]:
        raise InvalidArgument(
            "quota set takes IDENTITY SIZE; quota unset takes IDENTITY; quota list takes neither"
        )
    if args.cluster is not None:
        if args.action == "list" or not args.etcd:
            raise InvalidArgument(
                "--cluster works with `quota set` and `quota unset` and needs --etcd URL"
            )
        extras.require(extras.NODE)  # etcd's client
        return set_cluster_quota(
            args.etcd,
            args.cluster,
            args.identity,
            args.size,
            out,
            flags.etcd_credentials_of(args),
        )
    return quota(
        args.node,
        args.action,
        args.identity,
        args.size,
        out,
        flags.tls_of(args),
        flags.token_of(args),
    )


def quota_text(nbytes: int) -> str:
    """A quota as the commands print it: bytes with a binary unit, or none."""
    return f"{nbytes} bytes ({format_size(nbytes)})" if nbytes else "none"


def format_quotas(quotas: Quotas) -> str:
    """The default quota, then each identity's own, by identity."""
    lines = [f"client_quota {quota_text(quotas.default)} (every identity without its own)"]
    own = quotas.by_identity
    lines += [f"{name} {quota_text(own[name])}" for name in sorted(own)]
    return "\n".join(lines) + "\n"


def quota(
    node: str,
    action: str,
    identity: str | None,
    size: str | None,
    out: TextIO,
    tls: TLS | None = None,
    token: str | None = None,
) -> int:
    """``quota set IDENTITY SIZE``, ``quota unset IDENTITY`` or ``quota list`` on one node."""
    name = str(owner_identity(identity, "IDENTITY")) if identity is not None else None
    nbytes = parse_quota(size, "SIZE") if size is not None else None
    from ramster.client import SyncClient  # it loads grpc: not for every --help

    with SyncClient(node, client_name="ramster-cli", tls=tls, token=token) as client:
        if action == "list":
            out.write(format_quotas(client.quotas()))
            return 0
        assert name is not None
        if action == "set":
            assert nbytes is not None
            client.set_quota(name, nbytes)
            out.write(f"{name} {quota_text(nbytes)}\n")
            return 0
        was_set, quotas = client.unset_quota(name)
    if was_set:
        out.write(f"{name} unset: client_quota holds it ({quota_text(quotas.default)})\n")
    else:
        out.write(f"{name} had no quota of its own: nothing to do\n")
    return 0


def set_cluster_quota(
    etcd: str,
    cluster: str,
    identity: str,
    size: str | None,
    out: TextIO,
    credentials: EtcdCredentials | None = None,
) -> int:
    """Write a cluster-wide quota to etcd (`size` None: delete it), once it is known to be
    valid."""
    name = str(owner_identity(identity, "IDENTITY"))
    nbytes = parse_quota(size, "SIZE") if size is not None else None
    from nodemanager.cli import write_quota  # the [node] extra

    asyncio.run(write_quota(etcd, cluster, name, nbytes, credentials=credentials))
    done = "unset" if nbytes is None else quota_text(nbytes)
    out.write(f"{name} {done} (cluster {cluster}: every node applies it)\n")
    return 0
