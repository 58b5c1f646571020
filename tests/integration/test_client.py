"""`Client` against a real node: every method with exact values, errors as the node words them,
deadlines, and coalescing and batch splitting observed through the client's RPC count."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable

import grpc
import pytest

from ramster.api.v1 import admin_pb2
from ramster.client import (
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NodeState,
    NotFound,
    Quotas,
    ResourceExhausted,
    Unavailable,
    Usage,
)
from ramster.params import ModuleParams
from tests.support.nodes import NodeProcess
from tests.support.processes import free_port

FS_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def page(n: int, size: int = 4096) -> bytes:
    """A distinct, compressible page."""
    return (f"page {n:6d} ".encode() * (size // 12 + 1))[:size]


async def counted(client: Client, call: Awaitable[object]) -> tuple[object, int]:
    """`call`'s result and how many RPCs it took."""
    before = client.rpc_count
    result = await call
    return result, client.rpc_count - before


def test_every_method_round_trips_exact_values(node: NodeProcess) -> None:
    async def scenario() -> None:
        async with Client(node.address, "app") as client:
            assert repr(client) == f"<Client {node.address} client='app' idle rpcs=0>"
            eph = await client.new_pool()
            pers = await client.new_pool(persistent=True)
            shared = await client.new_pool(shared_uuid=FS_UUID, page_size=512)
            assert (eph, pers, shared) == (0, 1, 2)

            assert await client.put(pers, 7, 0, page(1)) is True
            assert await client.get(pers, 7, 0) == page(1)  # persistent: kept by default
            assert await client.get(pers, 7, 0, free=False) == page(1)
            assert await client.get(pers, 7, 0, free=True) == page(1)
            assert await client.get(pers, 7, 0) is None
            assert await client.put(eph, (1, 2, 3), 4, page(2)) is True
            assert await client.get(eph, (1, 2, 3), 4) == page(2)  # private ephemeral: freed
            assert await client.get(eph, (1, 2, 3), 4) is None
            assert await client.put(shared, 1, 1, page(3, 512)) is True
            assert await client.get(shared, 1, 1) == page(3, 512)  # shared: kept
            assert await client.get(shared, 1, 1) == page(3, 512)

            assert await client.put(pers, (7, 1, 2), 3, page(4)) is True
            assert await client.flush_page(pers, (7, 1, 2), 3) is True
            assert await client.flush_page(pers, (7, 1, 2), 3) is False
            assert await client.put_many(pers, [(9, i, page(i)) for i in range(5)]) == [True] * 5
            keys = [(9, i) for i in range(5)] + [(9, 99)]
            assert await client.get_many(pers, keys) == [page(i) for i in range(5)] + [None]
            assert await client.flush_object(pers, 9) is True
            assert await client.flush_object(pers, 9) is False
            assert await client.get_many(pers, keys, free=True) == [None] * 6
            await client.destroy_pool(shared)
            with pytest.raises(NotFound) as caught:
                await client.get(shared, 1, 1)
            assert caught.value.message == "pool_id 2 does not exist for client 'local:local/app'"

            counters = await client.stats()
            expected = {
                "pool_count": 2,
                "client_count": 1,
                "pers_zpages": 0,
                "eph_zpages": 0,
                "frontswap_succ_stores": 7,
                "frontswap_loads": 8,
                "frontswap_failed_loads": 8,
                "frontswap_invalidates": 1,
                "cleancache_puts": 2,
                "cleancache_succ_gets": 3,
                "cleancache_failed_gets": 1,
                "flobj_found": 1,
                "flobj_total": 2,
            }
            assert {name: counters[name] for name in expected} == expected
            assert await client.state() == NodeState(
                node_name="node1",
                epoch=node.epoch,
                backend_generation=1,
                zcache=True,
                ramster=True,
                shutting_down=False,
            )
            assert await client.params() == ModuleParams().as_text()
            assert await client.set_param("ramster", "off") == ModuleParams().as_text() | {
                "ramster": "off"
            }
            async for state in client.watch_state():
                assert (state.epoch, state.ramster) == (node.epoch, False)
                break
            assert await client.set_quota("local:local", 4096) == Quotas(0, {"local:local": 4096})
            assert await client.put_many(eph, [(5, 0, page(5)), (5, 1, page(6))]) == [True, False]
            assert await client.quotas() == Quotas(0, {"local:local": 4096})
            assert await client.clients() == [Usage("local:local", 1, 4096, 4096, 1)]
            assert await client.unset_quota("local:local") == (True, Quotas())
            assert repr(client) == f"<Client {node.address} client='app' open rpcs=34>"
        assert repr(client) == f"<Client {node.address} client='app' closed rpcs=34>"

    asyncio.run(scenario())


def test_errors_arrive_as_ramster_errors_with_the_nodes_words(node: NodeProcess) -> None:
    async def scenario() -> None:
        async with Client(node.address, "app") as client:
            pool = await client.new_pool()
            with pytest.raises(InvalidArgument) as invalid:
                await client.put(pool, 1, 0, page(1)[:4095])
            assert invalid.value.message == "data length 4095 != pool page_size 4096"
            assert invalid.value.retriable is False
            with pytest.raises(InvalidArgument) as invalid:
                await client.put_many(pool, [(1, 0, page(1)), (1, 1, b"short")])
            assert invalid.value.message == "items[1].data length 5 != pool page_size 4096"
            with pytest.raises(NotFound) as missing:
                await client.get_many(9, [(1, 0)])
            assert missing.value.message == "pool_id 9 does not exist for client 'local:local/app'"
            with pytest.raises(InvalidArgument) as invalid:
                await client.set_param("bogus", "on")
            assert (
                invalid.value.message == "param 'bogus' is unknown: expected one of "
                "client_grace, client_lease, client_quota, codec, dict_drift, dict_samples, "
                "dict_size, eph_remotify, lease_ttl, origin_grace, pers_remotify, "
                "persistent_copies, ramster, read_timeout_ms, recover_timeout, remote_target, "
                "repair_rate, zcache"
            )
            for _ in range(15):
                await client.new_pool()
            with pytest.raises(ResourceExhausted) as full:
                await client.new_pool()
            assert (
                full.value.message
                == "client 'local:local/app' holds 16 pools: max_pools_per_client is 16"
            )
            await client.set_param("zcache", "off")
            with pytest.raises(FailedPrecondition) as off:
                await client.get(pool, 1, 0)
            assert off.value.message == (
                "the zcache backend is off on this node: turn it on with "
                "`ramster param set zcache on`"
            )

    asyncio.run(scenario())


WRONG_LENGTHS = (2, 4095, 4097, 8192, 65536, 1_000_000)
"""Lengths of uniform pages (every byte equal) that are no 4 KiB page."""


def test_a_uniform_page_of_the_wrong_length_is_refused_before_it_is_packed(
    node: NodeProcess,
) -> None:
    """Packed, a uniform page is one fill byte: its length must be checked before packing, or
    the node would read it back as a page of its own size."""

    async def scenario() -> None:
        async with Client(node.address, "app") as client:
            pool = await client.new_pool(persistent=True)
            small = await client.new_pool(page_size=512)
            before = client.rpc_count
            refusals = []
            for length in WRONG_LENGTHS:
                uniform = b"\x07" * length
                calls = [
                    client.put(pool, 1, 0, uniform),
                    client.put_many(pool, [(1, 1, page(1)), (1, 2, uniform)]),
                    client.put(small, 1, 0, uniform),
                ]
                for call in calls:
                    with pytest.raises(InvalidArgument) as refused:
                        await call
                    refusals.append(refused.value.message)
            assert refusals == [
                message
                for length in WRONG_LENGTHS
                for message in (
                    f"data length {length} != pool page_size 4096",
                    f"items[1].data length {length} != pool page_size 4096",
                    f"data length {length} != pool page_size 512",
                )
            ]
            assert client.rpc_count == before  # refused before anything was sent
            assert await client.get_many(pool, [(1, 0), (1, 1), (1, 2)]) == [None] * 3
        # A client that did not create the pool cannot know its page size: the node refuses
        # the page by the length it states.
        async with Client(node.address, "app") as other:
            with pytest.raises(InvalidArgument) as refused:
                await other.put(pool, 1, 0, b"\x07" * 2)
            assert refused.value.message == "pages[0].length 2 != pool page_size 4096"
            assert await other.put(pool, 1, 0, b"\x07" * 4096) is True
            assert await other.get(pool, 1, 0) == b"\x07" * 4096

    asyncio.run(scenario())


def test_one_bad_page_among_coalesced_puts_fails_only_its_caller(node: NodeProcess) -> None:
    async def scenario() -> None:
        async with Client(node.address, "app") as creator:
            pool = await creator.new_pool(persistent=True)
        # Another client of the same name does not know the pool's page size: only the node
        # can refuse the short page, and it refuses its whole batch.
        async with Client(node.address, "app") as client:
            data = [page(0), page(1), page(2)[:100], page(3)]
            puts = (client.put(pool, 1, i, d) for i, d in enumerate(data))
            results, rpcs = await counted(client, asyncio.gather(*puts, return_exceptions=True))
            assert isinstance(results, list)
            assert results[:2] == [True, True] and results[3] is True
            assert isinstance(results[2], InvalidArgument)
            assert results[2].message == "pages[0].length 100 != pool page_size 4096"
            assert rpcs == 1 + 4  # the batch, refused whole, then each page alone
            assert await client.get_many(pool, [(1, i) for i in range(4)]) == [
                page(0),
                page(1),
                None,
                page(3),
            ]

    asyncio.run(scenario())


def test_concurrent_single_page_calls_are_coalesced(node: NodeProcess) -> None:
    async def scenario() -> None:
        async with Client(node.address, "app") as client:
            pool = await client.new_pool(persistent=True)
            puts = (client.put(pool, 3, i, page(i)) for i in range(100))
            assert await counted(client, asyncio.gather(*puts)) == ([True] * 100, 2)  # 64 + 36
            gets = (client.get(pool, 3, i) for i in range(64))
            assert await counted(client, asyncio.gather(*gets)) == (
                [page(i) for i in range(64)],
                1,
            )
            # Each get mode is its own batch: one RPC keeps, one frees, one follows the pool.
            mixed = (client.get(pool, 3, i, free=(None, True, False)[i % 3]) for i in range(30))
            results, rpcs = await counted(client, asyncio.gather(*mixed))
            assert (results, rpcs) == ([page(i) for i in range(30)], 3)
            flushes = (client.flush_page(pool, 3, i) for i in range(30))
            assert await counted(client, asyncio.gather(*flushes)) == (
                [i % 3 != 1 for i in range(30)],
                1,
            )

    asyncio.run(scenario())


def test_large_batches_are_split_into_messages_that_fit(node: NodeProcess) -> None:
    async def scenario() -> None:
        async with Client(node.address, "app") as client:
            pool = await client.new_pool()
            items = [(5, i, page(i)) for i in range(2500)]
            assert await counted(client, client.put_many(pool, items)) == ([True] * 2500, 3)
            keys = [(5, i) for i in range(2500)]
            pages, rpcs = await counted(client, client.get_many(pool, keys, free=False))
            assert (pages == [page(i) for i in range(2500)], rpcs) == (True, 3)
            assert await counted(client, client.put_many(pool, [])) == ([], 0)
            # 64 KiB pages: 64 to a message.
            big = await client.new_pool(page_size=65536)
            items = [(6, i, page(i, 65536)) for i in range(100)]
            assert await counted(client, client.put_many(big, items)) == ([True] * 100, 2)
            pages, rpcs = await counted(client, client.get_many(big, [(6, i) for i in range(100)]))
            assert (pages == [page(i, 65536) for i in range(100)], rpcs) == (True, 2)

    asyncio.run(scenario())


async def peak_in_flight(client: Client, call: Awaitable[object]) -> tuple[object, int]:
    """`call`'s result and the most RPCs it had in flight at once, sampled every loop turn."""
    task = asyncio.ensure_future(call)
    peak = 0
    while not task.done():
        peak = max(peak, client.rpcs_in_flight)
        await asyncio.sleep(0)
    return task.result(), peak


def test_a_bulk_call_keeps_a_window_of_messages_in_flight(node: NodeProcess) -> None:
    async def scenario() -> None:
        async with Client(node.address, "app") as client:
            pool = await client.new_pool(persistent=True)
            items = [(i >> 8, i & 0xFF, page(i)) for i in range(10 * 1024 + 5)]
            stored, peak = await peak_in_flight(client, client.put_many(pool, items))
            assert (stored, peak, client.rpcs_in_flight) == ([True] * len(items), 4, 0)
            keys = [(oid, index) for oid, index, _ in items]
            pages, peak = await peak_in_flight(client, client.get_many(pool, keys))
            assert (pages == [data for _, _, data in items], peak) == (True, 4)
            assert client.rpc_count == 1 + 11 + 11

    asyncio.run(scenario())


def test_a_bulk_call_whose_message_fails_midway_raises_its_error(node: NodeProcess) -> None:
    async def scenario() -> None:
        async with Client(node.address, "app") as creator:
            pool = await creator.new_pool(persistent=True)
        # Another client of the same name does not know the pool's page size: only the node
        # refuses the short page, and with it the whole fifth message.
        async with Client(node.address, "app") as client:
            items = [(1, i, page(i)) for i in range(10 * 1024)]
            items[4 * 1024 + 10] = (1, 4 * 1024 + 10, page(0)[:100])
            with pytest.raises(InvalidArgument) as refused:
                await client.put_many(pool, items)
            assert refused.value.message == "pages[10].length 100 != pool page_size 4096"
            assert client.rpcs_in_flight == 0
            first = [(1, i) for i in range(4 * 1024 + 11)]
            assert (
                await client.get_many(pool, first)
                == [page(i) for i in range(4 * 1024)] + [None] * 11
            )
            await client.destroy_pool(pool)
            with pytest.raises(NotFound) as missing:
                await client.get_many(pool, first)
            assert missing.value.message == (
                f"pool_id {pool} does not exist for client 'local:local/app'"
            )

    asyncio.run(scenario())


def test_no_node_is_unavailable_and_retriable() -> None:
    async def scenario() -> None:
        async with Client(f"127.0.0.1:{free_port()}", "app", timeout=2.0) as client:
            with pytest.raises(Unavailable) as caught:
                await client.new_pool()
            assert caught.value.message.startswith("Tmem/NewPool: node unavailable (")
            assert caught.value.retriable is True

    asyncio.run(scenario())


def test_a_client_belongs_to_the_loop_it_first_ran_in(node: NodeProcess) -> None:
    client = Client(node.address, "app")
    assert asyncio.run(client.new_pool()) == 0
    with pytest.raises(FailedPrecondition) as caught:
        asyncio.run(client.new_pool())
    assert caught.value.message == (
        "client 'app' is bound to the event loop it first ran in: create one client per loop"
    )


def test_a_call_the_node_does_not_answer_ends_at_its_deadline() -> None:
    async def hang(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await asyncio.sleep(30)
        return b""

    async def scenario() -> None:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(hang)
        methods = grpc.method_handlers_generic_handler("ramster.api.v1.Tmem", {"NewPool": handler})
        server.add_generic_rpc_handlers((methods,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with Client(f"127.0.0.1:{port}", "app", timeout=0.3) as client:
                started = time.monotonic()
                with pytest.raises(DeadlineExceeded) as caught:
                    await client.new_pool()
                assert time.monotonic() - started < 2.0
            assert caught.value.message == "Tmem/NewPool: deadline exceeded (Deadline Exceeded)"
            assert caught.value.retriable is True
        finally:
            await server.stop(None)

    asyncio.run(scenario())


def test_a_watch_in_flight_when_its_client_closes_ends_unavailable_like_any_call() -> None:
    state = admin_pb2.NodeState(node_name="n1", epoch="0123456789abcdef", zcache=True)

    async def watch(
        request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        yield state.SerializeToString()
        await asyncio.sleep(30)

    async def scenario() -> None:
        server = grpc.aio.server()
        handler = grpc.unary_stream_rpc_method_handler(watch)
        methods = grpc.method_handlers_generic_handler(
            "ramster.api.v1.Admin", {"WatchState": handler}
        )
        server.add_generic_rpc_handlers((methods,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            client = Client(f"127.0.0.1:{port}", "app")
            states = client.watch_state()
            first = await anext(states)
            assert (first.node_name, first.epoch, first.zcache) == ("n1", "0123456789abcdef", True)
            second = asyncio.ensure_future(anext(states))
            await client.close()
            with pytest.raises(Unavailable) as caught:
                await second
            assert (
                caught.value.message == "Admin/WatchState: the channel was closed during the call"
            )
        finally:
            await server.stop(None)

    asyncio.run(scenario())
