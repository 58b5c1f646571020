"""`Peer`: what the remote layer needs of a link to one peer, and `LinkFactory`, which makes one.

The layer (`ramster.remote.layer` and its parts) talks to peers only through this Protocol, so
`ramster.remote` imports no gRPC: the node hands the gRPC link in as the factory
(`ramster.rpc.peer_link.PeerLink`), and unit tests hand in fakes that hold pages in a dict
(`tests.support.remote.FakePeer`). Not here: when to call what (`ramster.remote.peers` and the
other parts), the wire format (`ramster.rpc.peer_link`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ramster.holder.epochs import HeldKey
from ramster.page import PackedPage
from ramster.remote.handles import RemoteFlush, RemoteRef, Shipment
from ramster.tmem.pool import PoolRecord

FoundPage = tuple[PackedPage, int]
"""A page a holder answered, with the version it holds."""


class Peer(Protocol):
    """Calls to peer `number` at `address` on behalf of this node (its number and epoch). Every
    call raises the `RamsterError` of its failure."""

    number: int
    address: str
    holder_epoch: str
    """The peer's epoch as this node's view has it; a peer of another epoch refuses puts."""

    @property
    def corrupt_pages(self) -> int:
        """Copies the peer sent whose bytes did not match their checksum (never handed on)."""
        ...

    async def put(
        self, shipments: Sequence[Shipment], owners: Sequence[PoolRecord] = ()
    ) -> list[bool]:
        """Store pages on the peer, telling it who owns their pools; True for each it took."""
        ...

    async def get(
        self, refs: Sequence[RemoteRef], timeout: float | None = None
    ) -> list[FoundPage | None]:
        """Each page with the version the peer holds, or None (not there, or corrupt); the peer
        keeps its copies. `timeout` shortens the link's deadline."""
        ...

    async def flush(self, flushes: Sequence[RemoteFlush]) -> int:
        """Send page, object and pool flushes; return how many found a copy."""
        ...

    async def recover(
        self, keep: Sequence[str], timeout: float
    ) -> tuple[list[str], list[PoolRecord], list[HeldKey]]:
        """What the peer holds for this node's earlier epochs: with `keep` empty, only which
        epochs; else it adopts the persistent pages of the epochs `keep` (oldest first) under
        this epoch, drops the rest, and lists the pools and pages adopted."""
        ...

    async def forget(self) -> bool:
        """Have the peer drop every page it holds for this node's earlier epochs; True if it
        held any."""
        ...

    async def close(self) -> None: ...


LinkFactory = Callable[[int, str, int, str, float], Peer]
"""Builds the link to a peer: (number, address, this node's number, epoch, timeout)."""
