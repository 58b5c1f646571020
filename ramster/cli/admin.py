"""``ramster stats``, ``param``, ``drain`` and ``undrain``: an operator's view of one node, over
the client (with TLS, `tls`, if the node serves it, and a bearer `token` if given); ``members``
and ``param set --cluster``, through etcd (the [node] extra)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import TextIO

from nodemanager.etcd_settings import EtcdCredentials
from ramster.client import SyncClient
from ramster.errors import InvalidArgument, shown
from ramster.params import ModuleParams
from ramster.state import NodeState
from ramster.tmem.quota import Usage
from ramster.wire.tls import TLS


def print_stats(
    node: str,
    as_json: bool,
    watch: float | None,
    out: TextIO,
    tls: TLS | None = None,
    token: str | None = None,
    clients: bool = False,
) -> int:
    """Print the node's state and counters (`clients`: what each client identity's pages take
    instead) once, or every `watch` seconds until interrupted."""
    with SyncClient(node, client_name="ramster-cli", tls=tls, token=token) as client:
        while True:
            if clients:
                usage = client.clients()
                if as_json:
                    out.write(json.dumps({"clients": [dataclasses.asdict(u) for u in usage]}))
                    out.write("\n")
                else:
                    out.write(format_clients(node, usage))
            elif as_json:
                state, counters = client.state(), client.stats()
                out.write(json.dumps({"state": dataclasses.asdict(state), "counters": counters}))
                out.write("\n")
            else:
                out.write(format_stats(node, client.state(), client.stats()))
            out.flush()
            if watch is None:
                return 0
            try:
                time.sleep(watch)
            except KeyboardInterrupt:
                return 0


def format_stats(node: str, state: NodeState, counters: dict[str, int]) -> str:
    def switch(on: bool) -> str:
        return "on" if on else "off"

    lines = [
        f"node {state.node_name} at {node}: epoch {state.epoch}, "
        f"zcache {switch(state.zcache)} (generation {state.backend_generation}), "
        f"ramster {switch(state.ramster)}" + (", shutting down" if state.shutting_down else ""),
    ]
    if target := counters.get("remote_target_down"):
        lines.append(
            f"  warning: remote_target node {target} is not up: pages go to peers by free bytes"
        )
    width = max(map(len, counters), default=0)
    lines += [f"  {name:<{width}}  {counters[name]:>16,}" for name in sorted(counters)]
    return "\n".join(lines) + "\n"


CLIENT_COLUMNS = ("identity", "pages", "bytes", "quota", "put_quota")


def format_clients(node: str, usage: list[Usage]) -> str:
    """One line per client identity with pools on the node: its pages, their bytes as handed
    over, its quota in bytes (none: no quota) and the puts its quota refused."""
    rows = [
        (u.identity, f"{u.pages:,}", f"{u.nbytes:,}", f"{u.quota:,}" if u.quota else "none",
         f"{u.refused:,}")
        for u in usage
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in (CLIENT_COLUMNS, *rows)) for i in range(5)]
    lines = [f"node {node}: {len(rows)} client identities hold pools"]
    for row in (CLIENT_COLUMNS, *rows):
        numbers = zip(row[1:], widths[1:], strict=True)
        lines.append("  " + "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in numbers)]))
    return "\n".join(lines) + "\n"


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


def print_members(
    etcd: str, cluster: str, out: TextIO, credentials: EtcdCredentials | None = None
) -> int:
    from nodemanager.cli import format_members, list_members  # the [node] extra

    members = asyncio.run(list_members(etcd, cluster, credentials=credentials))
    out.write(format_members(members))
    return 0


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
    from nodemanager.etcd import write_param  # the [node] extra

    asyncio.run(write_param(etcd, cluster, name, text, credentials=credentials))
    out.write(f"{name} {text} (cluster {cluster}: every node applies it)\n")
    return 0
