"""`RemoteLayer` itself (`ramster.remote.layer`): the switches it owns across its parts —
evacuating while the node drains, and stopping when it is undrained. Over a real `Backend` with
fake peers (tests/support/remote.py); each part's own tests are beside this file.
"""

from __future__ import annotations

from ramster.tmem import PoolSpec
from tests.support.remote import (
    APP,
    MIB,
    big,
    loaded,
    put,
    run,
    start,
)


def test_an_undrained_node_stops_evacuating_its_persistent_pages() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        layer, peers = await start(backend, {2: MIB})
        pool = tmem.new_pool(APP, PoolSpec(persistent=True))
        for index in range(10):
            put(tmem, pool, 7, index, big(index))
        layer.evacuate()
        layer.stop_evacuating()
        assert await layer.tick() == 0  # below the watermark: nothing to ship
        assert peers.log == []
        layer.evacuate()
        assert await layer.tick() == 10  # draining: every page leaves, whatever the watermark

    run(scenario)
