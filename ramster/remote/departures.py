"""What a peer leaving or restarting does to this node's pages kept on it (docs/design.md §6).

A peer that leaves the view may come back with its memory (its copies count again) or restarted
(its memory is gone). `write_off` stops counting on its copies either way: a page whose other
copy lives elsewhere is read from there, and its replicas are forgotten for the repair loop to
make again (`ramster.remote.copies`); a page whose only copy it holds stays remote while the peer
may come back, and is lost (persistent) or a miss (ephemeral) once it restarted. Pure steps over
a page table and its `RemoteIndex`; the remote layer (`ramster.remote.peers`) calls them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ramster.remote.handles import OriginTable, RemoteFlush
from ramster.remote.shipping import drop_handle
from ramster.tmem.elsewhere import REMOTE
from ramster.tmem.pool import Pool, TmemObject


@dataclass(frozen=True, slots=True)
class WriteOff:
    """What forgetting a node's copies did."""

    promoted: int  # pages whose replica became the primary
    lost: int  # persistent pages whose only copy it held
    ephemeral: int  # ephemeral pages it held (misses from now on)
    replicas: int  # replicas it held of pages kept elsewhere


def write_off(table: OriginTable, node: int, restarted: bool) -> tuple[WriteOff, list[RemoteFlush]]:
    """Stop counting on the copies `node` holds: it left the view, or came back `restarted`
    (its memory is gone). A page it held whose other copy lives elsewhere is read from that copy
    from now on; its replicas are forgotten (the repair loop makes new ones). A page whose only
    copy it holds stays remote while it may come back, and is lost (persistent) or a miss
    (ephemeral) once it restarted. Returns what was done and the flushes its now unreferenced
    copies need should it come back with them (none once restarted)."""
    remote = table.elsewhere
    promoted = lost = ephemeral = replicas = 0
    orphans: list[RemoteFlush] = []
    for pool, obj in list(_own_objects(table)):
        for index, slot in list(obj.items()):
            version = table.slot_version(slot)
            flush = RemoteFlush(node, pool.uid, obj.oid, index, version)
            if remote.replicas.get(version) == node:
                del remote.replicas[version]
                replicas += 1
                orphans.append(flush)
            if not slot & REMOTE or remote.handles.node(slot) != node:
                continue
            replica = remote.replicas.pop(version, None)
            if replica is not None:
                remote.handles.move(slot, replica)
                promoted += 1
                orphans.append(flush)
                continue
            if not restarted:
                continue
            if pool.spec.persistent:
                lost += 1
            else:
                ephemeral += 1
            drop_handle(table, obj, index, slot)
    remote.counts["remote_pers_pages_lost"] += lost
    orphans += [f for f in remote.flushes if f.node == node]
    remote.flushes = [f for f in remote.flushes if f.node != node]
    return WriteOff(promoted, lost, ephemeral, replicas), [] if restarted else orphans


def remote_holders(table: OriginTable) -> set[int]:
    """The nodes holding the copy a remote handle of this node names (replicas aside: a node that
    leaves the view has them written off at once)."""
    return table.elsewhere.handles.holders()


def _own_objects(table: OriginTable) -> Iterator[tuple[Pool, TmemObject]]:
    """This node's own objects (not those held for peers), with their pools."""
    for obj in table.objects.values():
        if not obj.pool.foreign:
            yield obj.pool, obj
