"""The node's exports: named block devices of a fixed size, each a persistent pool of the
identity that created it.

`NodeExports` creates, lists and deletes exports (for the Admin calls) and hands them to the NBD
server by name (`ramster.nbd.server.Exports`). Export names are the node's: one name is one
export whoever owns it. Only the owner lists and deletes its exports (`ramster export`). Over
NBD, a client that proved an identity (a certificate, after STARTTLS on a node with TLS) sees
and uses the exports of that identity, or every one for an admin (`seen_by`); a client that
proved nothing (a unix socket, TCP on loopback without TLS) sees every export: who may connect
decides (the socket's mode).

An export's pool belongs to the client ``nbd-export:ROLE:NAME/EXPORT``
(`ramster.tmem.keys.owner_name` under the scope ``nbd-export:`` + the owner's identity): no
gRPC caller can name it (a caller's scope is ``ROLE:NAME``, and no role is ``nbd-export``), and
client sessions, which destroy the pools of applications gone idle, must skip it
(`ramster.tmem.keys.EXPORT_PREFIX` marks it). The registry lives in the node's memory:
after a restart the pool's pages come back from the peers, waiting for their client, and
creating the export again with the same name, owner and size claims them
(`ramster.tmem.host.Tmem.new_pool`).

Not here: the bytes of an export (`ramster.nbd.volume`), the spill (`ramster.nbd.spill`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nodemanager.keys import check_name
from ramster.backend import Backend
from ramster.errors import InvalidArgument, NotFound, ResourceExhausted, shown
from ramster.nbd.handshake import ExportInfo
from ramster.nbd.spill import PAGE, Spill
from ramster.nbd.volume import Volume
from ramster.page import LZ4_CODEC, Codec
from ramster.state import ExportStatus
from ramster.tiered import TieredTmem
from ramster.tmem.keys import EXPORT_PREFIX, U32_MAX, owner_name
from ramster.trust.identity import Identity, Role

log = logging.getLogger("ramster.nbd")

MAX_EXPORT_SIZE = (U32_MAX + 1) * PAGE
"""16 TiB: 2**32 blocks (`ramster.nbd.volume.key_of`)."""
MAX_EXPORTS = 64
"""Exports per node: each is a client of the node's tmem host and a pool."""


def export_client(owner: str, name: str) -> str:
    """The node's client name of export `name` of `owner` (``ROLE:NAME``)."""
    return owner_name(f"{EXPORT_PREFIX}{owner}", name)


class _Export:
    def __init__(self, name: str, owner: str, volume: Volume) -> None:
        self.name = name
        self.owner = owner
        self.volume = volume


class NodeExports:
    """The exports of a node, over its `tiered` put and get paths and an optional `spill`."""

    def __init__(self, backend: Backend, tiered: TieredTmem, spill: Spill | None = None) -> None:
        self._backend = backend
        self._tiered = tiered
        self._spill = spill
        self._exports: dict[str, _Export] = {}
        self._next_uid = 1
        self._counters = {"nbd_store_refused": 0, "nbd_copies_refused": 0}

    def __repr__(self) -> str:
        return f"<NodeExports {sorted(self._exports)} spill={self._spill!r}>"

    def create(self, name: str, size: int, owner: str, codec: Codec = LZ4_CODEC) -> ExportStatus:
        """A new export `name` of `size` bytes owned by `owner`, its pages packed with
        `codec`."""
        check_name("name", name)
        if not 0 < size <= MAX_EXPORT_SIZE or size % PAGE:
            raise InvalidArgument.field(
                "size", size, f"a multiple of {PAGE} bytes in {PAGE}..{MAX_EXPORT_SIZE}"
            )
        if name in self._exports:
            raise InvalidArgument(f"export {shown(name)} exists on this node: choose another name")
        if len(self._exports) >= MAX_EXPORTS:
            raise ResourceExhausted(f"this node serves {MAX_EXPORTS} exports, its maximum")
        client = export_client(owner, name)
        volume = Volume(
            size,
            client,
            self._next_uid,
            self._backend,
            self._tiered,
            self._spill,
            self._counters,
            codec,
        )
        self._next_uid += 1
        export = self._exports[name] = _Export(name, owner, volume)
        log.info("export %s of %d bytes created for %s", name, size, owner)
        return self._status(export)

    def delete(self, name: str, owner: str) -> int:
        """Delete `owner`'s export `name` and every page of it; the pages flushed."""
        export = self._owned(name, owner)
        place = export.volume.place
        flushed = self._tiered.destroy_pool(place.client, place.pool_id)
        if self._spill is not None:
            flushed += self._spill.drop_export(place.uid)
        export.volume.close()
        del self._exports[name]
        log.info("export %s of %s deleted (%d pages flushed)", name, owner, flushed)
        return flushed

    def statuses(self, owner: str) -> list[ExportStatus]:
        """`owner`'s exports, by name."""
        return [
            self._status(export)
            for name, export in sorted(self._exports.items())
            if export.owner == owner
        ]

    def counters(self) -> dict[str, int]:
        spill = self._spill
        return {
            "nbd_exports": len(self._exports),
            **self._counters,
            "nbd_spilled_pages": spill.pages if spill is not None else 0,
            "nbd_spill_pages_max": spill.capacity if spill is not None else 0,
            **(spill.counters if spill is not None else {}),
        }

    async def close(self) -> None:
        """The node stops: the copies of acknowledged writes still on their way are made first
        (as a disk writes its cache back before it stops), then the spill is closed."""
        for export in self._exports.values():
            await export.volume.copies_made()
        if self._spill is not None:
            self._spill.close()

    # -- what the NBD server asks (`ramster.nbd.server.Exports`) ----------------------------

    def find(self, name: str, owner: str | None = None) -> ExportInfo | None:
        export = self._seen(name, owner)
        return self._info(export) if export is not None else None

    def listing(self, owner: str | None = None) -> Sequence[ExportInfo]:
        exports = sorted(self._exports.items())
        return [self._info(e) for _, e in exports if owner is None or e.owner == owner]

    def export(self, name: str, owner: str | None = None) -> Volume | None:
        export = self._seen(name, owner)
        return export.volume if export is not None else None

    def seen_by(self, identity: Identity | None) -> NodeExports | OwnedExports:
        """Every export for a client that proved nothing or an admin; else the identity's."""
        if identity is None or identity.role is Role.ADMIN:
            return self
        return OwnedExports(self, f"{identity.role.value}:{identity.name}")

    # -- internals ---------------------------------------------------------------------------

    def _seen(self, name: str, owner: str | None) -> _Export | None:
        export = self._exports.get(name)
        if export is None or (owner is not None and export.owner != owner):
            return None
        return export

    def _owned(self, name: str, owner: str) -> _Export:
        export = self._exports.get(name)
        if export is None or export.owner != owner:
            raise NotFound(f"no export {shown(name)} of {owner} on this node")
        return export

    def _info(self, export: _Export) -> ExportInfo:
        return ExportInfo(export.name, export.volume.size, f"RAMster export of {export.owner}")

    def _status(self, export: _Export) -> ExportStatus:
        place = export.volume.place
        pages = self._backend.require().table.pool(place.client, place.pool_id).pages
        spilled = self._spill.pages_of(place.uid) if self._spill is not None else 0
        return ExportStatus(export.name, export.owner, export.volume.size, pages, spilled)


class OwnedExports:
    """The exports of `owner` (``ROLE:NAME``), as an NBD client proven to be it sees them."""

    def __init__(self, exports: NodeExports, owner: str) -> None:
        self._exports = exports
        self._owner = owner

    def find(self, name: str) -> ExportInfo | None:
        return self._exports.find(name, self._owner)

    def listing(self) -> Sequence[ExportInfo]:
        return self._exports.listing(self._owner)

    def export(self, name: str) -> Volume | None:
        return self._exports.export(name, self._owner)

    def seen_by(self, identity: Identity | None) -> NodeExports | OwnedExports:
        return self._exports.seen_by(identity)
