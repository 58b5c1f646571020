"""Pages coming home in bulk (`ramster.remote.homecoming`, docs/design.md §6): `bring_home` when the
`ramster` param goes off (refusing, with every page in place, when they cannot all come), and
recovery at start, which asks a silent peer again and never makes an unread peer forget. Over a
real `Backend` with fake peers (tests/support/remote.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ramster.errors import FailedPrecondition, Unavailable
from ramster.remote.handles import REMOTE_PAGE_BYTES, RemoteFlush
from ramster.remote.layer import RemoteLayer
from ramster.remote.shipping import remote_refs
from ramster.tmem import PoolSpec
from ramster.tmem.pool import OBJECT_BYTES
from ramster.wire.limits import MAX_RECOVER_EPOCHS
from ramster.zcache.store import SLOT_BYTES
from tests.support.remote import (
    APP,
    CONFIG,
    ME,
    MIB,
    PAGE_SIZE,
    TWO,
    FakePeers,
    big,
    cost,
    loaded,
    member,
    put,
    run,
    ship,
    start,
    store_of,
)


def test_bring_home_repatriates_persistent_pages_and_drops_ephemeral_ones() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB, 3: MIB})
        pers = tmem.new_pool(APP, PoolSpec(persistent=True))
        eph = tmem.new_pool(APP, PoolSpec())
        versions = [put(tmem, pers, 7, index, big(index)) for index in range(3)]
        eph_versions = [put(tmem, eph, 8, index, big(10 + index)) for index in range(2)]
        to2 = ship(tmem, peers.links[2], True, max_pages=2)
        [to3] = ship(tmem, peers.links[3], True)
        eph_uid = ship(tmem, peers.links[2], False)[0].pool_uid
        assert store.stats.pers_zpages == store.stats.eph_zpages == 0

        assert await layer.bring_home() == 3

        uid = to3.pool_uid
        assert peers.log == [
            # Every persistent page is fetched first; the copies of those now home are then
            # flushed, one batch per holder, each flush naming the version brought home.
            (2, "get", [((7, 0, 0), 0), ((7, 0, 0), 1)]),
            (3, "get", [((7, 0, 0), 2)]),
            (
                2,
                "flush",
                [
                    RemoteFlush(2, uid, (7, 0, 0), 0, versions[0]),
                    RemoteFlush(2, uid, (7, 0, 0), 1, versions[1]),
                ],
            ),
            (3, "flush", [RemoteFlush(3, uid, (7, 0, 0), 2, versions[2])]),
            # The ephemeral pages are given up, and their copies flushed: one flush a page.
            (
                2,
                "flush",
                [
                    RemoteFlush(2, eph_uid, (8, 0, 0), 0, eph_versions[0]),
                    RemoteFlush(2, eph_uid, (8, 0, 0), 1, eph_versions[1]),
                ],
            ),
        ]
        assert [s.index for s in to2] == [0, 1]
        assert [tmem.page_version(APP, pers, 7, index) for index in range(3)] == versions
        assert [tmem.get(APP, pers, 7, index) for index in range(3)] == [
            big(index) for index in range(3)
        ]
        assert store.stats.pers_zpages == 3
        assert [tmem.page_version(APP, eph, 8, index) for index in range(2)] == [None, None]
        counters = tmem.counters()
        assert counters["pers_pages_repatriated"] == 3
        assert counters["remote_pages"] == counters["remote_pers_pages"] == 0
        assert counters["remote_eph_pages_unsucc_get"] == 0  # giving a page up is not a get
        assert peers.links[2].pages == peers.links[3].pages == {}

    run(scenario)


def test_bring_home_with_nothing_remote_does_nothing() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        assert await layer.bring_home() == 0
        assert peers.log == []

    run(scenario)


def test_bring_home_refuses_when_the_store_cannot_take_every_page() -> None:
    fit = 32
    page_cost = cost(big(0))

    async def scenario() -> None:
        backend, tmem = loaded(memory=OBJECT_BYTES + fit * (SLOT_BYTES + page_cost))
        store = store_of(backend)
        layer, peers = await start(backend, {2: MIB})
        pers = tmem.new_pool(APP, PoolSpec(persistent=True))
        versions = [put(tmem, pers, 7, index, big(index)) for index in range(fit)]
        assert store.used_bytes == store.config.memory
        shipped = ship(tmem, peers.links[2], True, max_pages=5)
        eph = tmem.new_pool(APP, PoolSpec())  # a remote ephemeral page, in an object of its own
        put(tmem, eph, 8, 0, bytes(PAGE_SIZE))
        ship(tmem, peers.links[2], False)
        for index in range(fit, fit + 2):
            put(tmem, pers, 7, index, big(index))
        room = store.config.memory - store.used_bytes
        # Shipped slots are reused; six handles stay: two pages fit, not three.
        assert room == 3 * page_cost - OBJECT_BYTES - 6 * REMOTE_PAGE_BYTES
        assert 2 * page_cost <= room < 3 * page_cost

        with pytest.raises(FailedPrecondition) as caught:
            await layer.bring_home()

        assert caught.value.message == (
            "3 persistent pages could not come home (store full or holder unreachable): "
            "ramster stays on"
        )
        uid = shipped[0].pool_uid
        assert peers.log == [
            (2, "get", [((7, 0, 0), i) for i in range(5)]),
            (
                2,
                "flush",
                [
                    RemoteFlush(2, uid, (7, 0, 0), 0, versions[0]),
                    RemoteFlush(2, uid, (7, 0, 0), 1, versions[1]),
                ],
            ),
        ]
        assert tmem.counters()["pers_pages_repatriated"] == 2
        assert sorted(ref.index for ref in remote_refs(tmem.table, persistent=True)) == [2, 3, 4]
        # Ramster stays on: the remote ephemeral page is kept too.
        assert [ref.oid for ref in remote_refs(tmem.table, persistent=False)] == [(8, 0, 0)]
        home = 2 * (page_cost - REMOTE_PAGE_BYTES)  # each page home gives its handle back
        assert store.used_bytes == store.config.memory - (room - home)

    run(scenario)


def test_bring_home_survives_a_holder_that_fails_the_flush_of_the_copies() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        put(tmem, pool, 7, 0, big(1))
        ship(tmem, peers.links[2], True)
        peers.links[2].flush_error = Unavailable("node 2 is unreachable")

        assert await layer.bring_home() == 1

        assert tmem.get(APP, pool, 7, 0) == big(1)
        assert remote_refs(tmem.table) == []

    run(scenario)


def test_bring_home_with_an_unreachable_holder_refuses() -> None:
    async def scenario() -> None:
        backend, tmem = loaded()
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        version = put(tmem, pool, 7, 0, big(1))
        eph = tmem.new_pool(APP, PoolSpec())
        put(tmem, eph, 8, 0, big(2))
        [shipment] = ship(tmem, peers.links[2], True)
        ship(tmem, peers.links[2], False)
        peers.links[2].get_error = Unavailable("node 2 is unreachable")

        with pytest.raises(FailedPrecondition) as caught:
            await layer.bring_home()
        assert caught.value.message == (
            "1 persistent pages could not come home (store full or holder unreachable): "
            "ramster stays on"
        )
        # Everything stays as it was: both pages remote, both copies on the holder.
        assert peers.log == [(2, "get", [((7, 0, 0), 0)])]
        assert tmem.page_version(APP, pool, 7, 0) == version
        assert sorted(ref.persistent for ref in remote_refs(tmem.table)) == [False, True]
        assert len(peers.links[2].pages) == 2
        assert tmem.counters()["pers_pages_repatriated"] == 0

        peers.links[2].get_error = None  # it is back: the page comes home
        assert await layer.bring_home() == 1
        assert tmem.get(APP, pool, 7, 0) == big(1)
        assert tmem.page_version(APP, pool, 7, 0) == shipment.version

    run(scenario)


def test_recovery_asks_a_peer_again_and_never_makes_an_unread_peer_forget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        backend, _ = loaded(params=TWO)
        peers = FakePeers()
        layer = RemoteLayer(
            backend,
            lambda: ME,
            "e1",
            CONFIG,
            link_factory=peers.factory,
        )
        await layer.set_members({ME: member(ME, 0), 2: member(2, MIB)})
        asked: list[Sequence[str]] = []

        async def unreachable(keep: Sequence[str], timeout: float) -> object:
            asked.append(keep)
            raise Unavailable("node 2 is unreachable")

        forgotten: list[int] = []

        async def forget() -> bool:
            forgotten.append(2)
            return False

        monkeypatch.setattr(peers.links[2], "recover", unreachable)
        monkeypatch.setattr(peers.links[2], "forget", forget)
        assert await layer.recover(None, 0.2) == 0
        assert len(asked) > 1  # asked again until the deadline
        assert forgotten == []  # it may hold this node's only copies: never told to forget
        assert layer.recovered

    run(scenario)


@pytest.mark.parametrize(
    ("record", "adopted"),
    [
        # etcd's record, oldest first: a made-up epoch a peer claims (it sorts last) is not asked
        (["00000000000a0001", "00000000000b0002"], ["00000000000a0001", "00000000000b0002"]),
        # no record (a cluster without etcd): the latest epoch a peer holds
        (None, ["fffffffffffff000"]),
        # a record with nothing before this epoch: nothing is adopted, whatever peers claim
        ([], None),
    ],
)
def test_recovery_adopts_the_recorded_epochs_not_those_a_peer_claims(
    monkeypatch: pytest.MonkeyPatch, record: list[str] | None, adopted: list[str] | None
) -> None:
    async def scenario() -> None:
        backend, _ = loaded(params=TWO)
        peers = FakePeers()
        layer = RemoteLayer(backend, lambda: ME, "e1", CONFIG, link_factory=peers.factory)
        await layer.set_members({ME: member(ME, 0), 2: member(2, MIB)})
        asked: list[list[str]] = []
        held = ["00000000000a0001", "00000000000b0002", "fffffffffffff000"]

        async def recover(keep: Sequence[str], timeout: float) -> object:
            asked.append(list(keep))
            return (held if not keep else []), [], []

        monkeypatch.setattr(peers.links[2], "recover", recover)
        assert await layer.recover(record, 60.0) == 0
        assert asked == [[]] + ([adopted] if adopted is not None else [])
        assert layer.recovered

    run(scenario)


def test_recovery_names_at_most_the_latest_epochs_one_recover_may_adopt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        backend, _ = loaded(params=TWO)
        peers = FakePeers()
        layer = RemoteLayer(backend, lambda: ME, "e1", CONFIG, link_factory=peers.factory)
        await layer.set_members({ME: member(ME, 0), 2: member(2, MIB)})
        asked: list[list[str]] = []
        record = [f"{n:016x}" for n in range(70)]

        async def recover(keep: Sequence[str], timeout: float) -> object:
            asked.append(list(keep))
            return (record[-1:] if not keep else []), [], []

        monkeypatch.setattr(peers.links[2], "recover", recover)
        assert await layer.recover(record, 60.0) == 0
        assert asked == [[], record[6:]]
        assert len(asked[1]) == MAX_RECOVER_EPOCHS == 64

    run(scenario)
