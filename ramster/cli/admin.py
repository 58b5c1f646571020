"""``ramster stats``, ``param``, ``drain`` and ``undrain``: an operator's view of one node, over
the client (with TLS, `tls`, if the node serves it, and a bearer `token` if given); ``members``
and ``param set --cluster``, through etcd (the [node] extra)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import TextIO

from rich.console import Console

from nodemanager.etcd_settings import EtcdCredentials
from nodemanager.model import MemberInfo
from ramster.cli.stats_groups import grouped
from ramster.cli.view import console, table
from ramster.client import SyncClient
from ramster.errors import InvalidArgument, shown
from ramster.metric_help import HELP
from ramster.page import CODEC_NAMES
from ramster.params import ModuleParams, switch_text
from ramster.state import NodeState
from ramster.tmem.quota import Usage
from ramster.units import MiB
from ramster.wire.tls import TLS


def print_stats(
    node: str,
    as_json: bool,
    watch: float | None,
    out: TextIO,
    tls: TLS | None = None,
    token: str | None = None,
    clients: bool = False,
    raw: bool = False,
) -> int:
    """Print the node's state and counters, in groups (`raw`: by kernel name, as /proc would;
    `clients`: what each client identity's pages take instead) once, or every `watch` seconds
    until interrupted."""
    view = console(out)
    with SyncClient(node, client_name="ramster-cli", tls=tls, token=token) as client:
        while True:
            if clients:
                usage = client.clients()
                if as_json:
                    out.write(json.dumps({"clients": [dataclasses.asdict(u) for u in usage]}))
                    out.write("\n")
                else:
                    show_clients(view, node, usage)
            else:
                state, counters = client.state(), client.stats()
                if as_json:
                    out.write(json.dumps(stats_json(state, counters, raw)) + "\n")
                else:
                    show_stats(view, node, state, counters, raw)
            out.flush()
            if watch is None:
                return 0
            try:
                time.sleep(watch)
            except KeyboardInterrupt:
                return 0


def stats_json(state: NodeState, counters: dict[str, int], raw: bool) -> dict[str, object]:
    """``--json``: the state, and the counters by group (`grouped`) or, `raw`, by name alone."""
    if raw:
        return {"state": dataclasses.asdict(state), "counters": counters}
    return {"state": dataclasses.asdict(state), "groups": grouped(counters)}


def show_stats(
    view: Console, node: str, state: NodeState, counters: dict[str, int], raw: bool
) -> None:
    """The node's state in a line, then its counters: a table per group saying what each counts
    (`HELP`), or, `raw`, one line per kernel name."""
    view.print(
        f"node {state.node_name} at {node}: epoch {state.epoch}, "
        f"zcache {switch_text(state.zcache)} (generation {state.backend_generation}), "
        f"ramster {switch_text(state.ramster)}" + (", shutting down" if state.shutting_down else "")
    )
    if target := counters.get("remote_target_down"):
        view.print(
            f"  warning: remote_target node {target} is not up: pages go to peers by free bytes"
        )
    if raw:
        width = max(map(len, counters), default=0)
        for name in sorted(counters):
            view.print(f"  {name:<{width}}  {counters[name]:>16,}")
        return
    for line in codec_lines(counters):
        view.print(line)
    drawn = table(("counter", "value"), [])
    for group, members in grouped(counters).items():
        if members:
            drawn.add_row(f"{group}:", "")
            for name, value in members.items():
                drawn.add_row(f"  {HELP.get(name, name).rstrip('.')}", f"{value:,}")
    view.print(drawn)


def codec_lines(counters: dict[str, int]) -> list[str]:
    """A line per codec holding pages of this node: pages, bytes per page and the ratio."""
    lines = []
    for codec in CODEC_NAMES:
        pages, zbytes = counters.get(f"{codec}_zpages", 0), counters.get(f"{codec}_zbytes", 0)
        if pages and zbytes:
            ratio = counters.get(f"{codec}_bytes", 0) / zbytes
            lines.append(
                f"  {codec}: {pages:,} pages, {zbytes / pages:,.0f} bytes per page, "
                f"ratio {ratio:.2f}"
            )
    return lines


CLIENT_COLUMNS = ("identity", "pages", "bytes", "quota", "put_quota")


def show_clients(view: Console, node: str, usage: list[Usage]) -> None:
    """A row per client identity with pools on the node: its pages, their bytes as handed
    over, its quota in bytes (none: no quota) and the puts its quota refused."""
    rows = [
        (u.identity, f"{u.pages:,}", f"{u.nbytes:,}", f"{u.quota:,}" if u.quota else "none",
         f"{u.refused:,}")
        for u in usage
    ]  # fmt: skip
    view.print(f"node {node}: {len(rows)} client identities hold pools")
    view.print(table(CLIENT_COLUMNS, rows))


def param(
    node: str,
    action: str,
    name: str,
    value: str | None,
    out: TextIO,
    tls: TLS | None = None,
    token: str | None = None,
) -> int:
    with SyncClient(node, client_name="ramster-cli", tls=tls, token=token) as client:
        if action == "set":
            assert value is not None
            params = client.set_param(name, value)
        else:
            params = client.params()
    if name not in params:  # the node's own words when it refuses to set one
        raise InvalidArgument(
            f"param {shown(name)} is unknown: expected one of {', '.join(sorted(params))}"
        )
    out.write(f"{name} {params[name]}\n")
    return 0


def drain(
    node: str, timeout: float, out: TextIO, tls: TLS | None = None, token: str | None = None
) -> int:
    """Drain a node before stopping it; exit status 1 if pages of other nodes are left on it."""
    with SyncClient(node, client_name="ramster-cli", tls=tls, token=token) as client:
        drained, left = client.drain(timeout)
    if drained:
        out.write(f"node {node} drained: no page of another node and no persistent page is left\n")
        return 0
    out.write(f"node {node} not drained: {left} pages are still on it\n")
    return 1


def forget_node(
    node: str, name: str, out: TextIO, tls: TLS | None = None, token: str | None = None
) -> int:
    """Decommission node `name` through the live node at `node` (refused while `name` is up)."""
    with SyncClient(node, client_name="ramster-cli", tls=tls, token=token) as client:
        number = client.forget_node(name)
    out.write(
        f"node {name} (number {number}) forgotten: every node drops the pages it held for it; "
        "its number is retired\n"
    )
    return 0


def undrain(node: str, out: TextIO, tls: TLS | None = None, token: str | None = None) -> int:
    """Take a drain back: the node holds pages of other nodes again."""
    with SyncClient(node, client_name="ramster-cli", tls=tls, token=token) as client:
        was_draining = client.undrain()
    if was_draining:
        out.write(f"node {node} undrained: it takes pages of other nodes again\n")
    else:
        out.write(f"node {node} was not draining: nothing to do\n")
    return 0


MEMBER_COLUMNS = ("number", "name", "address", "free/capacity MiB", "zcache", "ramster", "state")


def print_members(
    etcd: str, cluster: str, out: TextIO, credentials: EtcdCredentials | None = None
) -> int:
    from nodemanager.cli import list_members  # the [node] extra

    show_members(console(out), asyncio.run(list_members(etcd, cluster, credentials=credentials)))
    return 0


def show_members(view: Console, members: list[MemberInfo]) -> None:
    """A row per member: free and capacity in MiB, its switches, and ``draining`` while it
    leaves (it takes no new pages), else ``up``."""
    rows = [
        (str(m.number), m.name, m.address,
         f"{m.free_bytes / MiB:.1f}/{m.capacity_bytes / MiB:.1f}", switch_text(m.zcache),
         switch_text(m.ramster), "draining" if m.draining else "up")
        for m in members
    ]  # fmt: skip
    view.print(table(MEMBER_COLUMNS, rows, words=(1, 2, 4, 5, 6)))


def set_cluster_param(
    etcd: str,
    cluster: str,
    name: str,
    value: str,
    out: TextIO,
    credentials: EtcdCredentials | None = None,
) -> int:
    """Write a cluster-wide param to etcd, once it is known to be valid, as nodes show it (a
    node compares etcd's text with its own: "1MiB" would be applied again on every change)."""
    text = ModuleParams().with_text(name, value).as_text()[name]
    from nodemanager.cli import write_param  # the [node] extra

    asyncio.run(write_param(etcd, cluster, name, text, credentials=credentials))
    out.write(f"{name} {text} (cluster {cluster}: every node applies it)\n")
    return 0
