"""A peer that stops answering (docs/design.md §6): gets of its pages fail within the peer deadline.

Two real nodes with static membership; A reaches B only through a `DelayProxy` (B advertises the
proxy's address, so A's peer link goes through it too), while B reaches A directly. A has a small
budget and ships persistent pages to B. A read of a page on B brings it home (A is below its low
watermark once it has shipped). Then the proxy black-holes: a get on A of a page held by B must
fail UNAVAILABLE (the page is not gone: never a miss, never wrong data) within the peer deadline
plus a margin, while gets of pages still local on A stay fast. Once the proxy forwards again the
remote page reads back exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from ramster.client import SyncClient
from ramster.errors import Unavailable
from tests.support.cluster import done_shipping, key, pages_of, store_all, text_page
from tests.support.delay_proxy import DelayProxy
from tests.support.nodes import NodeFactory
from tests.support.processes import free_port, wait_for

PEER_TIMEOUT = 5.0
"""`RemotifyConfig.peer_timeout`'s default: `ramster node` has no flag for it yet."""
STALL_BOUND = PEER_TIMEOUT + 3.0
"""A get of a page on the black-holed peer returns within this (the deadline plus a margin)."""
LOCAL_BOUND = 0.5
"""A get of a local page takes less than this, stall or not."""
TEST_BOUND = 40.0
UNANSWERED = (
    "Tmem/GetPageBatch: node unavailable (keys[0] is a page held by node 2, which did not answer "
    "in time: it is kept, try again)"
)
CLIENT_TIMEOUT = 30.0
"""Longer than any bound above: a hang shows up as a slow answer, not as a client deadline."""


@pytest.fixture
def proxy_to_b() -> Iterator[tuple[DelayProxy, int]]:
    """A proxy in front of the port node B will listen on: (proxy, that port)."""
    port = free_port()
    with DelayProxy(f"127.0.0.1:{port}") as proxy:
        yield proxy, port


def read_back(client: SyncClient, pool: int, n: int) -> bool:
    """Page `n` reads back exact; False while its holder is still unavailable."""
    try:
        return client.get_many(pool, [key(n)], free=False) == [text_page(n)]
    except Unavailable:
        return False


def remote_pers_gets(client: SyncClient) -> int:
    return client.stats()["remote_pers_pages_succ_get"]


def test_a_black_holed_peer_makes_its_pages_unavailable_in_time_and_local_gets_stay_fast(
    node_factory: NodeFactory, proxy_to_b: tuple[DelayProxy, int]
) -> None:
    started = time.monotonic()
    proxy, b_port = proxy_to_b
    a_listen = f"127.0.0.1:{free_port()}"
    node_factory.start(
        "B",
        listen=f"127.0.0.1:{b_port}",
        memory="32MiB",
        extra_flags=("--node-number", "2", "--peer", a_listen, "--advertise", proxy.address),
    )
    node_a = node_factory.start(
        "A",
        listen=a_listen,
        memory="4MiB",
        extra_flags=("--node-number", "1", "--peer", proxy.address),
    )
    with SyncClient(node_a.address, "test-A", timeout=CLIENT_TIMEOUT) as a:
        # One copy: with two nodes, a second copy would leave A no peer to ship pages to.
        a.set_param("persistent_copies", "1")
        pool = a.new_pool(persistent=True)
        numbers = pages_of(range(48))  # about 6 MiB packed: half again A's budget
        wait_for(lambda: proxy.connections > 0, what="A reaching B through the proxy")
        store_all(a, pool, numbers)
        quiet = done_shipping(a.stats)["remote_pers_pages"]
        assert quiet > 0, a.stats()

        # The oldest pages went first; the newest stayed. Check them with the remote-get counter.
        remote, home, local = numbers[1], numbers[0], numbers[-1]
        before = a.stats()
        assert a.get_many(pool, [key(home)], free=False) == [text_page(home)]
        after = a.stats()
        assert after["remote_pers_pages_succ_get"] == before["remote_pers_pages_succ_get"] + 1
        assert after["pers_pages_repatriated"] == before["pers_pages_repatriated"] + 1
        # Read from B, it came home: the next reads are local.
        assert a.get_many(pool, [key(home)], free=False) == [text_page(home)]
        assert a.get_many(pool, [key(local)], free=False) == [text_page(local)]
        assert remote_pers_gets(a) == after["remote_pers_pages_succ_get"], "a read went to B"

        proxy.black_hole()
        stalled: dict[str, object] = {}

        def get_remote() -> None:
            begun = time.monotonic()
            try:
                stalled["got"] = a.get_many(pool, [key(remote)], free=False)
            except Exception as error:  # reported by the asserts below, not lost in the thread
                stalled["got"] = error
            stalled["elapsed"] = time.monotonic() - begun

        getter = threading.Thread(target=get_remote, name="stalled-get")
        getter.start()
        local_times = []
        while getter.is_alive() and len(local_times) < 40:
            begun = time.monotonic()
            assert a.get_many(pool, [key(local)], free=False) == [text_page(local)]
            local_times.append(time.monotonic() - begun)
            time.sleep(0.1)
        getter.join(STALL_BOUND + 2)
        assert not getter.is_alive(), f"get of a page on the black-holed peer hung: {proxy!r}"
        assert repr(stalled["got"]) == repr(Unavailable(UNANSWERED)), stalled
        assert stalled["elapsed"] < STALL_BOUND, stalled
        assert local_times and max(local_times) < LOCAL_BOUND, local_times

        # Still stalled: unavailable again (the page stays), and within the bound.
        begun = time.monotonic()
        with pytest.raises(Unavailable) as again:
            a.get_many(pool, [key(remote)], free=False)
        assert again.value.message == UNANSWERED
        assert time.monotonic() - begun < STALL_BOUND

        proxy.restore()
        wait_for(
            lambda: read_back(a, pool, remote),
            timeout=10,
            what="the page on B reading back exact once the proxy forwards again",
        )
    assert time.monotonic() - started < TEST_BOUND
