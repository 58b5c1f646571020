"""`LocalClient`: one client's view of an in-process `Tmem`, with the client library's surface.

It lets the frontends and the demo run on the pure core without a network; the gRPC client
(`ramster.client`) offers the same methods against a node.
"""

from __future__ import annotations

import uuid

from ramster.page import LZ4_CODEC, parse_codec
from ramster.tmem.elsewhere import Elsewhere
from ramster.tmem.host import Tmem
from ramster.tmem.keys import OidLike, PoolSpec
from ramster.tmem.table import Stored


class LocalClient:
    """Client `name` of `tmem`: pool ids are this client's, as over the wire."""

    def __init__(self, tmem: Tmem[Elsewhere], name: str) -> None:
        self._tmem = tmem
        self.name = name

    def __repr__(self) -> str:
        return f"<LocalClient {self.name!r} of {self._tmem!r}>"

    def new_pool(
        self,
        persistent: bool = False,
        shared_uuid: uuid.UUID | None = None,
        page_size: int = 4096,
        codec: str | None = None,
    ) -> int:
        """A new pool; `codec` as people write it (`parse_codec`), None: lz4."""
        packing = parse_codec(codec) if codec is not None else LZ4_CODEC
        spec = PoolSpec(persistent, shared_uuid, page_size, packing)
        return self._tmem.new_pool(self.name, spec)

    def put(self, pool: int, oid: OidLike, index: int, data: bytes) -> bool:
        return isinstance(self._tmem.put(self.name, pool, oid, index, data), Stored)

    def get(self, pool: int, oid: OidLike, index: int, free: bool | None = None) -> bytes | None:
        return self._tmem.get(self.name, pool, oid, index, free)

    def flush_page(self, pool: int, oid: OidLike, index: int) -> bool:
        return self._tmem.flush_page(self.name, pool, oid, index)

    def flush_object(self, pool: int, oid: OidLike) -> bool:
        return self._tmem.flush_object(self.name, pool, oid)

    def destroy_pool(self, pool: int) -> None:
        self._tmem.destroy_pool(self.name, pool)
