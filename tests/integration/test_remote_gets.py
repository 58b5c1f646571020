"""Gets of pages a peer holds, at the wire (docs/design.md §3, §5; docs/architecture.md, "A get of a
page on a peer"): a get that frees takes a page only once its answer is on its way, so a caller that
gave up, or an answer too large for one message, frees nothing; two exclusive gets of one remote
page never both receive it; an ephemeral page whose holder does not answer stays a miss; the
pool's rule decides whether a get frees (private ephemeral yes, shared ephemeral no); and a put
no peer could copy reaches the client as NO_REPLICA.

Two real nodes with static membership, as in tests/fault/test_slow_peer.py: A (a small budget)
reaches B only through a `DelayProxy`, so a test can slow B down or cut it off; B reaches A
directly. Which pages A shipped is read off A's remote-get counters, never assumed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from ramster.api.v1 import tmem_pb2
from ramster.client import SyncClient
from ramster.errors import DeadlineExceeded
from ramster.wire.limits import MAX_MESSAGE
from tests.support.cluster import done_shipping, key, pages_of, store_all, text_page
from tests.support.delay_proxy import DelayProxy
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.processes import free_port, wait_for
from tests.support.wire import Answer, RawNode

CLIENT_TIMEOUT = 30.0
"""Longer than any wait below: a hang shows up as a failed assertion, not a client deadline."""
SHARED = uuid.UUID("5a1e0000-0000-4000-8000-00000000a11e")


@dataclass
class Pair:
    """Node A, node B behind `proxy` (as A sees it), and a client of A as `test-A`."""

    a: NodeProcess
    b: NodeProcess
    proxy: DelayProxy
    client: SyncClient


@pytest.fixture
def pair(node_factory: NodeFactory) -> Iterator[Pair]:
    b_port = free_port()
    with DelayProxy(f"127.0.0.1:{b_port}") as proxy:
        a_listen = f"127.0.0.1:{free_port()}"
        b = node_factory.start(
            "B",
            listen=f"127.0.0.1:{b_port}",
            memory="32MiB",
            extra_flags=("--node-number", "2", "--peer", a_listen, "--advertise", proxy.address),
        )
        a = node_factory.start(
            "A",
            listen=a_listen,
            memory="4MiB",
            extra_flags=("--node-number", "1", "--peer", proxy.address),
        )
        with SyncClient(a.address, "test-A", timeout=CLIENT_TIMEOUT) as client:
            wait_for(lambda: proxy.connections > 0, what="A reaching B through the proxy")
            yield Pair(a, b, proxy, client)


def ship(client: SyncClient, pool: int, numbers: list[int], counter: str) -> None:
    """Store `numbers` (half again A's budget) and wait until A has shipped some to B."""
    client.set_param("persistent_copies", "1")  # with two nodes, B must be free to take pages
    store_all(client, pool, numbers)
    assert done_shipping(client.stats)[counter] > 0, client.stats()


def stat(client: SyncClient, name: str) -> int:
    return client.stats()[name]


def remote_page(client: SyncClient, pool: int, numbers: list[int], counter: str) -> int:
    """The first of `numbers` a keep-get reads from B (counted in `counter`), read back exact."""
    for n in numbers:
        before = stat(client, counter)
        found = client.get(pool, *key(n), free=False)
        if stat(client, counter) == before + 1:
            assert found == text_page(n)
            return n
    raise AssertionError(f"no page of {len(numbers)} is on B: {client.stats()}")


def get_request(pool: int, n: int, mode: int, packed: bool = True) -> tmem_pb2.GetPagesRequest:
    oid, index = key(n)
    return tmem_pb2.GetPagesRequest(
        client="test-A",
        pool_id=pool,
        keys=[tmem_pb2.PageKey(oid=tmem_pb2.Oid(word0=oid), index=index)],
        mode=mode,
        packed=packed,
    )


def test_a_get_and_free_whose_caller_gave_up_on_a_stalled_holder_frees_nothing(
    pair: Pair,
) -> None:
    a = pair.client
    pool = a.new_pool(persistent=True)
    ship(a, pool, pages_of(range(48)), "remote_pers_pages")
    oldest = pages_of(range(48))[0]  # shipped first; the deadline below shows it is remote

    pair.proxy.black_hole()
    impatient = SyncClient(pair.a.address, "test-A", timeout=1.0)
    with impatient, pytest.raises(DeadlineExceeded):
        impatient.get(pool, *key(oldest), free=True)
    pair.proxy.restore()  # the holder answers once the caller has given up
    wait_for(
        lambda: stat(a, "remote_pers_pages_succ_get") == 1,
        what="B answering the request A sent on the gone caller's behalf",
    )

    # The caller never received the page, so it was never freed: it reads back exact.
    assert a.get(pool, *key(oldest), free=False) == text_page(oldest)


def test_two_concurrent_get_and_frees_of_one_remote_page_give_it_to_one_caller(
    pair: Pair,
) -> None:
    a = pair.client
    pool = a.new_pool(persistent=True)
    ship(a, pool, pages_of(range(48)), "remote_pers_pages")
    oldest = pages_of(range(48))[0]
    before = stat(a, "remote_pers_pages_succ_get")

    # Both gets reach A while its request to B is on the way. Under the static membership's
    # probe timeout (1 s): a Hello that waits longer makes A take B for gone.
    pair.proxy.set_delay(up=0.6)
    answers: list[tuple[bool, bytes]] = []

    def get_and_free() -> None:
        with RawNode(pair.a.address, timeout=CLIENT_TIMEOUT) as raw:
            response = get(raw, get_request(pool, oldest, FREE))
            answers.append((response.found[0], response.data[0]))

    getters = [threading.Thread(target=get_and_free) for _ in range(2)]
    for getter in getters:
        getter.start()
    for getter in getters:
        getter.join(CLIENT_TIMEOUT)
    pair.proxy.set_delay(up=0.0)

    assert sorted(found for found, _ in answers) == [False, True], answers
    [data] = [data for found, data in answers if found]
    assert a.get(pool, *key(oldest), free=False) is None  # taken once, by one caller
    assert stat(a, "remote_pers_pages_succ_get") == before + 1  # it was on B
    assert data  # the packed page; its bytes are checked by every other test here


def test_an_ephemeral_page_whose_holder_does_not_answer_stays_a_miss(pair: Pair) -> None:
    a = pair.client
    pool = a.new_pool(shared_uuid=SHARED)  # a shared pool keeps pages on a get
    numbers = pages_of(range(48))
    ship(a, pool, numbers, "remote_pages")
    n = remote_page(a, pool, numbers, "remote_eph_pages_succ_get")
    with SyncClient(pair.b.address, "test-B") as b:
        held = stat(b, "foreign_eph_pages")

        pair.proxy.black_hole()
        assert a.get(pool, *key(n), free=False) is None  # after the peer deadline
        pair.proxy.restore()

        # A miss stays a miss until a new put: the record went, and B is told to drop its copy.
        wait_for(
            lambda: stat(b, "foreign_eph_pages") == held - 1, what="B dropping the page's copy"
        )
        assert a.get(pool, *key(n), free=False) is None  # B answers again, and still a miss


def test_a_get_of_a_remote_page_frees_it_in_a_private_ephemeral_pool_only(pair: Pair) -> None:
    a = pair.client
    numbers = pages_of(range(24))
    private, shared = a.new_pool(), a.new_pool(shared_uuid=SHARED)
    a.set_param("persistent_copies", "1")
    store_all(a, private, numbers)
    store_all(a, shared, [n + 100_000 for n in numbers])
    assert done_shipping(a.stats)["remote_pages"] > 0

    # The pool's rule (GET_MODE_UNSPECIFIED): a shared pool's page stays after a hit ...
    n = remote_page(a, shared, [n + 100_000 for n in numbers], "remote_eph_pages_succ_get")
    raw = RawNode(pair.a.address, timeout=CLIENT_TIMEOUT)
    with raw:
        for _ in range(2):
            assert list(get(raw, get_request(shared, n, DEFAULT)).found) == [True]
        # ... and a private pool's page goes with the hit that returns it.
        for m in numbers:
            before = stat(a, "remote_eph_pages_succ_get")
            response = get(raw, get_request(private, m, DEFAULT))
            if stat(a, "remote_eph_pages_succ_get") == before + 1:
                assert list(response.found) == [True]
                assert list(get(raw, get_request(private, m, DEFAULT)).found) == [False]
                return
    raise AssertionError(f"no page of the private pool is on B: {a.stats()}")


def test_a_put_no_peer_could_copy_reaches_the_client_as_no_replica(pair: Pair) -> None:
    a = pair.client  # persistent_copies 2 (the default): B must take every put's second copy
    pool = a.new_pool(persistent=True)
    pair.proxy.black_hole()
    request = tmem_pb2.PutPagesRequest(
        client="test-A",
        pool_id=pool,
        pages=[tmem_pb2.Page(oid=tmem_pb2.Oid(word0=1), index=0, data=text_page(1))],
    )
    answers: dict[str, object] = {}

    def put_raw() -> None:
        with RawNode(pair.a.address, timeout=CLIENT_TIMEOUT) as raw:
            answers["raw"] = raw.call("/ramster.api.v1.Tmem/PutPages", request)

    # Both at once, while B is still in A's view: each waits for B's copy, which never comes.
    raw_put = threading.Thread(target=put_raw)
    raw_put.start()
    assert a.put(pool, 1, 1, text_page(2)) is False  # the client's refusal
    raw_put.join(CLIENT_TIMEOUT)
    answer = answers["raw"]
    assert isinstance(answer, Answer)
    assert list(answer.parsed(tmem_pb2.PutPagesResponse).results) == [
        tmem_pb2.PUT_STATUS_NO_REPLICA
    ]
    assert a.get_many(pool, [(1, 0), (1, 1)], free=False) == [None, None]


def test_a_get_and_free_too_large_for_one_message_frees_nothing(node: NodeProcess) -> None:
    page_size = 8192  # 1024 raw pages of 8 KiB: twice what one message holds
    pages = [(1, i, (f"page {i:6d} ".encode() * 700)[:page_size]) for i in range(1024)]
    keys = [tmem_pb2.PageKey(oid=tmem_pb2.Oid(word0=1), index=i) for i in range(1024)]
    size = tmem_pb2.GetPagesResponse(found=[True] * 1024, data=[p for _, _, p in pages]).ByteSize()
    with SyncClient(node.address, "big", timeout=CLIENT_TIMEOUT) as client:
        pool = client.new_pool(persistent=True, page_size=page_size)
        assert client.put_many(pool, pages) == [True] * 1024
        request = tmem_pb2.GetPagesRequest(client="big", pool_id=pool, keys=keys, mode=FREE)
        with RawNode(node.address, timeout=CLIENT_TIMEOUT) as raw:
            answer = raw.call(GET_PAGES, request)
        assert answer.refusal == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the answer to 1024 keys is {size} bytes, more than one message holds "
            f"({MAX_MESSAGE}): ask for fewer keys (no page was freed)",
        )
        assert client.get_many(pool, [(1, i) for i in range(1024)], free=False) == [
            data for _, _, data in pages
        ]


FREE, DEFAULT = tmem_pb2.GET_MODE_FREE, tmem_pb2.GET_MODE_UNSPECIFIED
GET_PAGES = "/ramster.api.v1.Tmem/GetPages"


def get(raw: RawNode, request: tmem_pb2.GetPagesRequest) -> tmem_pb2.GetPagesResponse:
    response: tmem_pb2.GetPagesResponse = raw.call(GET_PAGES, request).parsed(
        tmem_pb2.GetPagesResponse
    )
    return response
