"""`SyncClient` against a real node: the same answers as `Client`, from any thread, and enough of
the `TmemApi` surface for the frontends' shims to run over it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from ramster.client import (
    Client,
    FailedPrecondition,
    InvalidArgument,
    NodeState,
    RamsterError,
    SyncClient,
)
from ramster.frontends import Frontswap as PureFrontswap
from ramster.frontends import TmemApi, TmemFrontswapOps
from tests.support.nodes import NodeProcess

PAGE = b"abcd" * 1024
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("new_pool", (), {"persistent": True}),
    ("new_pool", (), {"page_size": 1024}),
    ("put", (0, 7, 1, PAGE), {}),
    ("put", (0, (7, 8, 9), 2, PAGE), {}),
    ("get", (0, 7, 1), {}),
    ("get", (0, 7, 1), {"free": True}),
    ("get", (0, 7, 1), {}),
    ("put", (1, 1, 1, PAGE), {}),
    ("put_many", (1, [(2, i, PAGE[:1024]) for i in range(3)]), {}),
    ("get_many", (1, [(2, 0), (2, 1), (2, 5)]), {}),
    ("flush_page", (0, (7, 8, 9), 2), {}),
    ("flush_object", (1, 2), {}),
    ("destroy_pool", (1,), {}),
    ("get", (1, 2, 0), {}),
    ("set_param", ("bogus", "on"), {}),
    ("params", (), {}),
]


def outcome(call: Any, name: str) -> Any:
    """A call's result, or the error it raised as (class, message without the client name)."""
    try:
        return call()
    except RamsterError as error:
        return type(error).__name__, error.message.replace(name, "NAME")


async def outcome_async(call: Any, name: str) -> Any:
    try:
        return await call()
    except RamsterError as error:
        return type(error).__name__, error.message.replace(name, "NAME")


def test_sync_and_async_clients_answer_alike(node: NodeProcess) -> None:
    async def run_async() -> tuple[list[Any], int]:
        async with Client(node.address, "async-app") as client:
            results = [
                await outcome_async(lambda n=n, a=a, k=k: getattr(client, n)(*a, **k), "async-app")
                for n, a, k in CALLS
            ]
            return results, client.rpc_count

    expected, rpcs = asyncio.run(run_async())
    with SyncClient(node.address, "sync-app") as client:
        results = [
            outcome(lambda n=n, a=a, k=k: getattr(client, n)(*a, **k), "sync-app")
            for n, a, k in CALLS
        ]
        assert (results, client.rpc_count) == (expected, rpcs)
    assert expected[:7] == [0, 1, True, True, PAGE, PAGE, None]
    assert expected[7] == ("InvalidArgument", "data length 4096 != pool page_size 1024")
    assert expected[13] == (
        "PoolNotFound",
        "pool_id 1 does not exist for client 'local:local/NAME'",
    )


def test_state_is_watched_through_a_blocking_iterator(node: NodeProcess) -> None:
    with SyncClient(node.address, "watcher") as client, SyncClient(node.address, "admin") as admin:
        states = client.watch_state()
        first = next(states)
        assert first == client.state()
        assert first == NodeState("node1", node.epoch, 1, True, True, False)
        admin.set_param("zcache", "off")
        assert next(states) == NodeState("node1", node.epoch, 1, False, True, False)
        admin.set_param("zcache", "on")
        assert next(states) == NodeState("node1", node.epoch, 2, True, True, False)
        states.close()


def test_threads_share_one_client(node: NodeProcess) -> None:
    with SyncClient(node.address, "threads") as client:
        pool = client.new_pool(persistent=True)
        errors: list[BaseException] = []

        def worker(oid: int) -> None:
            try:
                for index in range(50):
                    data = bytes([oid]) * 4000 + index.to_bytes(96, "big")
                    assert client.put(pool, oid, index, data)
                    assert client.get(pool, oid, index) == data
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(oid,)) for oid in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert client.rpc_count <= 1 + 8 * 50 * 2
        assert client.stats()["pers_zpages"] == 400


def test_the_shims_run_over_a_sync_client(node: NodeProcess) -> None:
    with SyncClient(node.address, "swapper") as client:
        api: TmemApi = client
        frontswap = PureFrontswap()
        frontswap.init(0, 1024)
        frontswap.register_ops(TmemFrontswapOps(api))
        assert frontswap.store(0, 300, PAGE) is True
        assert frontswap.load(0, 300) == PAGE
        assert frontswap.load(0, 300) is None  # exclusive gets: the node's copy was freed
        assert frontswap.counters()["loads"] == 1


def test_a_closed_sync_client_refuses_calls(node: NodeProcess) -> None:
    client = SyncClient(node.address, "closing")
    client.new_pool()
    client.close()
    assert repr(client) == f"<SyncClient {node.address} client='closing' closed rpcs=1>"
    try:
        client.new_pool()
    except FailedPrecondition as error:
        assert error.message == "ramster-client-closing: closed"
    else:
        raise AssertionError("a closed client answered")


def test_a_uniform_page_of_the_wrong_length_is_refused_before_it_is_sent(
    node: NodeProcess,
) -> None:
    with SyncClient(node.address, "app") as client:
        pool = client.new_pool(persistent=True)
        before = client.rpc_count
        refusals = []
        for length in (2, 4095, 4097, 8192, 65536, 1_000_000):
            uniform = b"\x07" * length
            with pytest.raises(InvalidArgument) as single:
                client.put(pool, 1, 0, uniform)
            with pytest.raises(InvalidArgument) as batch:
                client.put_many(pool, [(1, 0, uniform)])
            refusals += [single.value.message, batch.value.message]
        assert refusals == [
            message
            for length in (2, 4095, 4097, 8192, 65536, 1_000_000)
            for message in (
                f"data length {length} != pool page_size 4096",
                f"items[0].data length {length} != pool page_size 4096",
            )
        ]
        assert client.rpc_count == before
        assert client.get(pool, 1, 0) is None
