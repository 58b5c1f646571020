"""Values both ends send, as messages and back: oids, page keys, page encodings, `NodeState`,
quotas and the usage of client identities, `ExportStatus`.

Each conversion is written once, for the client library, the node's services and its peer
links alike. Not here: the checks of what a node receives (`ramster.rpc.convert`), the pages'
codec (`ramster.page`), the Peer service's page messages and pool records
(`ramster.wire.peer_messages`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ramster.api.v1 import admin_pb2, tmem_pb2
from ramster.page import ZSTD, PackedPage, zstd_dictionary_id
from ramster.state import ExportStatus, NodeState
from ramster.tmem.keys import Oid
from ramster.tmem.quota import Quotas, Usage


def oid_message(oid: Oid) -> tmem_pb2.Oid:
    return tmem_pb2.Oid(word0=oid[0], word1=oid[1], word2=oid[2])


def oid_of(oid: tmem_pb2.Oid) -> Oid:
    return (oid.word0, oid.word1, oid.word2)


def key_messages(keys: Sequence[tuple[Oid, int]]) -> list[tmem_pb2.PageKey]:
    return [tmem_pb2.PageKey(oid=oid_message(oid), index=index) for oid, index in keys]


def packed_encoding(page: PackedPage) -> tmem_pb2.PageEncoding:
    """How a packed page travels: its one repeated byte, an lz4 block or a zstd frame."""
    if page.same_filled:
        return tmem_pb2.PAGE_ENCODING_SAME_FILLED
    return tmem_pb2.PAGE_ENCODING_ZSTD if page.codec == ZSTD else tmem_pb2.PAGE_ENCODING_LZ4


def packed_of(data: bytes, encoding: int, page_size: int) -> PackedPage:
    """The packed page `data` in `encoding` (LZ4, ZSTD or SAME_FILLED) holds, not checked: a
    zstd frame names its dictionary in its header."""
    if encoding == tmem_pb2.PAGE_ENCODING_ZSTD:
        return PackedPage(data, False, page_size, ZSTD, zstd_dictionary_id(data))
    return PackedPage(data, encoding == tmem_pb2.PAGE_ENCODING_SAME_FILLED, page_size)


def node_state_message(state: NodeState) -> admin_pb2.NodeState:
    return admin_pb2.NodeState(
        node_name=state.node_name,
        epoch=state.epoch,
        backend_generation=state.backend_generation,
        zcache=state.zcache,
        ramster=state.ramster,
        shutting_down=state.shutting_down,
    )


def node_state_of(message: admin_pb2.NodeState) -> NodeState:
    return NodeState(
        node_name=message.node_name,
        epoch=message.epoch,
        backend_generation=message.backend_generation,
        zcache=message.zcache,
        ramster=message.ramster,
        shutting_down=message.shutting_down,
    )


def quotas_message(quotas: Quotas) -> admin_pb2.Quotas:
    return admin_pb2.Quotas(
        client_quota_bytes=quotas.default, identity_bytes=dict(quotas.by_identity)
    )


def quotas_of(message: admin_pb2.Quotas) -> Quotas:
    return Quotas(message.client_quota_bytes, dict(message.identity_bytes))


def usage_message(usage: Usage) -> admin_pb2.ClientUsage:
    return admin_pb2.ClientUsage(
        identity=usage.identity,
        pages=usage.pages,
        bytes=usage.nbytes,
        quota_bytes=usage.quota,
        puts_refused=usage.refused,
    )


def usage_of(message: admin_pb2.ClientUsage) -> Usage:
    return Usage(
        message.identity, message.pages, message.bytes, message.quota_bytes, message.puts_refused
    )


def export_message(status: ExportStatus) -> admin_pb2.Export:
    return admin_pb2.Export(
        name=status.name,
        owner=status.owner,
        size=status.size,
        pages=status.pages,
        spilled_pages=status.spilled,
    )


def export_of(message: admin_pb2.Export) -> ExportStatus:
    return ExportStatus(
        message.name, message.owner, message.size, message.pages, message.spilled_pages
    )
