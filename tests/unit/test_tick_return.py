"""A tick that runs out of peers mid-round still counts the pages of the batches it had on the
wire: they are shipped when those batches are answered, after the loop ended."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from test_remote_layer import (
    BATCH,
    CONFIG,
    MIB,
    Shipment,
    fill_to_the_brim,
    loaded,
    run,
    settle,
    start,
    store_of,
)

from ramster.errors import Unavailable


def test_tick_counts_the_batches_still_in_flight_when_no_target_is_left() -> None:
    async def scenario() -> None:
        backend, tmem = loaded(memory=MIB)
        layer, peers = await start(backend, {2: MIB}, dataclasses.replace(CONFIG, in_flight=2))
        holder = peers.links[2]
        fill_to_the_brim(tmem, store_of(backend))
        holder.put_error = Unavailable("node 2 is unreachable")
        calls: list[int] = []

        def second_put_succeeds(shipments: Sequence[Shipment]) -> None:
            calls.append(len(shipments))
            if len(calls) == 2:
                holder.put_error = None

        holder.on_put = second_put_succeeds
        holder.put_gate.clear()  # the second batch is answered late

        ticking = asyncio.create_task(layer.tick())
        await settle()  # the first batch failed: node 2 is skipped, no target is left
        holder.put_gate.set()
        shipped = await ticking

        assert tmem.counters()["eph_pages_remoted"] == BATCH  # the second batch was shipped
        assert shipped == BATCH  # fails: tick returns 0

    run(scenario)
