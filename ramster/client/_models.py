"""`NodeState`: what a node reports about itself, as the client library hands it out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node's state (`Admin/GetStats`, `Admin/WatchState`).

    node_name: the node's name in the cluster.
    epoch: new on every start of the node process: pages of an older epoch are gone.
    backend_generation: +1 each time the zcache backend loads; its pools start empty.
    zcache: the backend is loaded, so Tmem calls are served.
    ramster: the remote layer is on.
    shutting_down: the node is stopping and takes no new calls.
    """

    node_name: str
    epoch: str
    backend_generation: int
    zcache: bool
    ramster: bool
    shutting_down: bool
