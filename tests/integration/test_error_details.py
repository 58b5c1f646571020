"""A refusal carries structured details beside its message (gRPC's rich error model): a
google.rpc.Status with an ErrorInfo (the reason, in the domain ramster.io) and, where one field is
at fault, a BadRequest naming it; the client library raises the class and field they name.
grpcurl shows them too (test_grpcurl.py).

Raw calls (`tests.support.wire.RawNode`) show the details as the node sent them.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.rpc.error_details_pb2 import BadRequest, ErrorInfo

from ramster.api.v1 import tmem_pb2
from ramster.client import InvalidArgument, PoolNotFound, SyncClient
from tests.support.nodes import NodeProcess
from tests.support.wire import RawNode

ENCODING_REFUSAL = (
    "pages[1].encoding 3 is invalid: expected PAGE_ENCODING_UNSPECIFIED, PAGE_ENCODING_LZ4, "
    "PAGE_ENCODING_SAME_FILLED or PAGE_ENCODING_ZSTD"
)


def info(reason: str) -> ErrorInfo:
    return ErrorInfo(reason=reason, domain="ramster.io")


def bad(field: str, description: str) -> BadRequest:
    violation = BadRequest.FieldViolation(field=field, description=description)
    return BadRequest(field_violations=[violation])


@pytest.fixture
def wire(node: NodeProcess) -> Iterator[RawNode]:
    with RawNode(node.address) as raw:
        yield raw


def new_pool(wire: RawNode) -> int:
    pool_id: int = wire.tmem("NewPool", client="app").parsed(tmem_pb2.NewPoolResponse).pool_id
    return pool_id


def test_a_refused_put_names_the_field_at_fault_in_a_bad_request(wire: RawNode) -> None:
    pool = new_pool(wire)
    pages = [
        tmem_pb2.Page(oid=tmem_pb2.Oid(word0=1), data=b"\x01" * 4096),
        tmem_pb2.Page(oid=tmem_pb2.Oid(word0=2), data=b"\x02", encoding=3),
    ]
    answer = wire.tmem("PutPages", client="app", pool_id=pool, pages=pages)
    assert answer.refusal == (grpc.StatusCode.INVALID_ARGUMENT, ENCODING_REFUSAL)
    assert answer.error_details == (
        info("INVALID_ARGUMENT"),
        bad("pages[1].encoding", ENCODING_REFUSAL),
    )
    # The lean form names the page as the per-page form does.
    batch = wire.tmem(
        "PutPageBatch",
        client="app",
        pool_id=pool,
        keys=tmem_pb2.KeyBatch(oid_word0=[1, 2], indexes=[0, 0]),
        data=b"\x01" * 4096 + b"\x02",
        lengths=[4096, 1],
        encodings=[0, 3],
    )
    assert (batch.details, batch.error_details) == (answer.details, answer.error_details)


def test_a_refusal_of_no_one_field_says_only_its_reason(wire: RawNode) -> None:
    answer = wire.tmem("GetPages", client="app", pool_id=7, keys=[])
    assert answer.refusal == (
        grpc.StatusCode.NOT_FOUND,
        "pool_id 7 does not exist for client 'local:local/app'",
    )
    assert answer.error_details == (info("POOL_NOT_FOUND"),)
    undecodable = wire.call("/ramster.api.v1.Tmem/NewPool", b"\xff")
    assert undecodable.refusal == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "request (1 bytes) is not a valid ramster.api.v1.NewPoolRequest message",
    )
    assert undecodable.error_details == (info("INVALID_ARGUMENT"),)


def test_the_client_library_raises_the_class_and_field_the_details_name(
    node: NodeProcess,
) -> None:
    with SyncClient(node.address, "app") as client:
        with pytest.raises(PoolNotFound) as missing:
            client.destroy_pool(7)
        with pytest.raises(InvalidArgument) as named:
            client.create_export("-", 4096)
    assert missing.value.message == "pool_id 7 does not exist for client 'local:local/app'"
    assert (named.value.field_name, named.value.message) == (
        "name",
        "name '-' is invalid: expected 1-63 letters, digits, '.', '_' or '-', starting alnum",
    )
