"""Random sequences of tmem operations against a plain dict model (docs/design.md §3 and §11).

A hypothesis state machine drives one `Tmem` over a small budget, so that ephemeral pages are
evicted and persistent puts are refused for want of room, while a model of dicts says what each
key may hold. The model cannot know which ephemeral page the store evicts, so an ephemeral
entry is "this page or nothing"; everything else is exact:

- a get never returns a page other than the last one stored at its key, and every key holds
  the version of its last stored put, or (ephemeral keys only) nothing: an ephemeral page found
  gone was evicted, and from then on gets of its key must miss;
- a get frees exactly when the pool's rule or its `free` argument says so;
- a persistent page whose put returned `Stored` is returned until it is flushed, freed by a
  get, or its pool destroyed;
- a refused put leaves its key absent, even if a page was there before;
- once a get misses, later gets miss until a new put (get-get coherency);
- pool ids, limits, shared pools by UUID and their spec checks behave as test_tmem.py shows
  one by one, and the store never holds more than its budget.

It runs against both stores; each run must see evictions, NO_SPACE refusals and persistent
hits, or it has not tested what it claims.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from ramster.errors import FailedPrecondition, PoolNotFound, ResourceExhausted
from ramster.tmem import (
    PageStore,
    PageTable,
    PoolSpec,
    Rejected,
    RejectReason,
    Stored,
    Tmem,
    TmemLimits,
)
from ramster.tmem.keys import Oid
from ramster.zcache import PlainStore, ZCache, ZcacheConfig
from ramster.zcache.plain import PLAIN_PAGE_BYTES

PAGE_SIZE = 4096
CLIENTS = ("app", "peer")
UUIDS = (uuid.UUID(int=0xA), uuid.UUID(int=0xB))
OIDS: tuple[int | Oid, ...] = (0, (5, 0, 7))
INDICES = (0, 3)
MAX_POOLS = 3


def _head_random(nbytes: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(nbytes) + bytes(PAGE_SIZE - nbytes)


INCOMPRESSIBLE = random.Random(99).randbytes(PAGE_SIZE)
PAGES = (
    bytes(PAGE_SIZE),  # the zero page: one byte in zcache
    b"\xab" * PAGE_SIZE,  # same-filled
    _head_random(1000, 1),  # compresses well
    _head_random(1000, 2),
    _head_random(3000, 3),  # poorly: refused by zcache's mean rule once the mean is bad
    INCOMPRESSIBLE,  # refused by zcache in every pool; plain stores it
)

ZCACHE_ROOM = 4 * 1024
"""Bytes the zcache under test may still use: its 64 KiB minimum is charged down to this, as
if foreign pages held the rest."""
PLAIN_MEMORY = 3 * (PAGE_SIZE + PLAIN_PAGE_BYTES)


def small_zcache() -> PageStore:
    store = ZCache(ZcacheConfig(memory=64 * 1024))
    store.charge(64 * 1024 - ZCACHE_ROOM)
    return store


def small_plain_store() -> PageStore:
    return PlainStore(memory=PLAIN_MEMORY)


@dataclass(frozen=True)
class Entry:
    """What a key holds in the model: `data` at `version` for sure, or (`maybe`) that or nothing."""

    data: bytes
    version: int
    maybe: bool


@dataclass(eq=False)
class ModelPool:
    persistent: bool
    shared_uuid: uuid.UUID | None
    refs: int = 0
    pages: dict[tuple[int | Oid, int], Entry] = field(default_factory=dict)

    @property
    def frees_on_get(self) -> bool:
        return not self.persistent and self.shared_uuid is None


Handle = tuple[str, int]


class TmemMachine(RuleBasedStateMachine):
    """One `Tmem` over a small store, and the model it must agree with."""

    handles = Bundle("handles")
    keys = Bundle("keys")  # (handle, oid, index) of every stored page, flushed or not since

    def __init__(self, make_store: Callable[[], PageStore], tally: Counter[str]) -> None:
        super().__init__()
        self.store = make_store()
        self.is_zcache = isinstance(self.store, ZCache)
        self.tmem = Tmem(PageTable(self.store), TmemLimits(max_pools_per_client=MAX_POOLS))
        self.pools: dict[Handle, ModelPool] = {}
        self.shared: dict[uuid.UUID, ModelPool] = {}
        self.last_version = 0
        self.tally = tally

    # -- pools ---------------------------------------------------------------------------------

    @initialize(target=handles)
    def start_with_an_ephemeral_and_a_persistent_pool(self) -> object:
        return multiple(self.new_pool("app", False, None), self.new_pool("app", True, None))

    @rule(
        target=handles,
        client=st.sampled_from(CLIENTS),
        persistent=st.booleans(),
        share=st.sampled_from((None, 0, 1)),
    )
    def new_pool(self, client: str, persistent: bool, share: int | None) -> object:
        shared_uuid = None if share is None else UUIDS[share]
        spec = PoolSpec(persistent=persistent, shared_uuid=shared_uuid)
        held = {pool_id for held_by, pool_id in self.pools if held_by == client}
        if len(held) == MAX_POOLS:
            with pytest.raises(ResourceExhausted):
                self.tmem.new_pool(client, spec)
            return multiple()
        model = self.shared.get(shared_uuid) if shared_uuid is not None else None
        if model is not None and model.persistent != persistent:
            with pytest.raises(FailedPrecondition):
                self.tmem.new_pool(client, spec)
            return multiple()

        pool_id = self.tmem.new_pool(client, spec)

        assert pool_id == min(set(range(MAX_POOLS)) - held)
        if model is None:
            model = ModelPool(persistent, shared_uuid)
            if shared_uuid is not None:
                self.shared[shared_uuid] = model
        model.refs += 1
        self.pools[client, pool_id] = model
        return (client, pool_id)

    @rule(handle=consumes(handles))
    def destroy_pool(self, handle: Handle) -> None:
        model = self.pools.pop(handle)
        flushed = self.tmem.destroy_pool(*handle)
        model.refs -= 1
        if model.refs:
            assert flushed == 0
            return
        if model.shared_uuid is not None:
            del self.shared[model.shared_uuid]
        sure = sum(not entry.maybe for entry in model.pages.values())
        assert sure <= flushed <= len(model.pages)

    @rule(client=st.sampled_from(CLIENTS), pool_id=st.integers(0, MAX_POOLS))
    def use_a_pool_that_is_not_there(self, client: str, pool_id: int) -> None:
        if (client, pool_id) in self.pools:
            return
        with pytest.raises(PoolNotFound):
            self.tmem.put(client, pool_id, 1, 0, PAGES[0])
        with pytest.raises(PoolNotFound):
            self.tmem.get(client, pool_id, 1, 0)

    # -- pages ---------------------------------------------------------------------------------

    @rule(
        target=keys,
        handle=handles,
        oid=st.sampled_from(OIDS),
        index=st.sampled_from(INDICES),
        data=st.sampled_from(PAGES),
    )
    def put(self, handle: Handle, oid: int | Oid, index: int, data: bytes) -> object:
        model = self.pools[handle]

        outcome = self.tmem.put(*handle, oid, index, data)

        version = self.tmem.page_version(*handle, oid, index)
        if isinstance(outcome, Stored):
            assert outcome.version > self.last_version
            assert version == outcome.version
            self.last_version = outcome.version
            model.pages[oid, index] = Entry(data, outcome.version, maybe=not model.persistent)
            return (handle, oid, index)
        assert isinstance(outcome, Rejected)
        assert version is None
        assert outcome.evicted == ()
        model.pages.pop((oid, index), None)
        self.tally[outcome.reason.value] += 1
        if self.is_zcache and data is INCOMPRESSIBLE:
            assert outcome.reason is RejectReason.COMPRESS_POOR
        elif not self.is_zcache or outcome.reason is not RejectReason.MEAN_COMPRESS_POOR:
            assert outcome.reason is RejectReason.NO_SPACE
        return multiple()

    @rule(
        handle=handles,
        oid=st.sampled_from(OIDS),
        index=st.sampled_from(INDICES),
        free=st.sampled_from((None, True, False)),
    )
    def get(self, handle: Handle, oid: int | Oid, index: int, free: bool | None) -> None:
        self._get(handle, oid, index, free)

    @rule(key=keys, free=st.sampled_from((None, True, False)))
    def get_a_key_once_stored(self, key: tuple[Handle, int | Oid, int], free: bool | None) -> None:
        handle, oid, index = key
        if handle in self.pools:
            self._get(handle, oid, index, free)
            return
        with pytest.raises(PoolNotFound):  # its pool was destroyed since
            self.tmem.get(*handle, oid, index, free)

    def _get(self, handle: Handle, oid: int | Oid, index: int, free: bool | None) -> None:
        model = self.pools[handle]
        entry = model.pages.get((oid, index))

        got = self.tmem.get(*handle, oid, index, free)

        if entry is None:
            assert got is None
        elif entry.maybe:
            assert got is None or got == entry.data
        else:
            assert got == entry.data
            self.tally["persistent_hits"] += 1
        frees = model.frees_on_get if free is None else free
        if got is not None:  # nothing can evict between the get and this look
            assert entry is not None
            after = self.tmem.page_version(*handle, oid, index)
            assert after == (None if frees else entry.version)
        if got is None or frees:
            model.pages.pop((oid, index), None)

    @rule(handle=handles, oid=st.sampled_from(OIDS), index=st.sampled_from(INDICES))
    def flush_page(self, handle: Handle, oid: int | Oid, index: int) -> None:
        entry = self.pools[handle].pages.pop((oid, index), None)

        found = self.tmem.flush_page(*handle, oid, index)

        if entry is None:
            assert not found
        elif not entry.maybe:
            assert found

    @rule(handle=handles, oid=st.sampled_from(OIDS))
    def flush_object(self, handle: Handle, oid: int | Oid) -> None:
        pages = self.pools[handle].pages
        keys = [key for key in pages if key[0] == oid]
        entries = [pages.pop(key) for key in keys]

        found = self.tmem.flush_object(*handle, oid)

        if not entries:
            assert not found
        elif any(not entry.maybe for entry in entries):
            assert found

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def every_key_holds_the_version_the_model_says(self) -> None:
        for handle, model in self.pools.items():
            for (oid, index), entry in list(model.pages.items()):
                version = self.tmem.page_version(*handle, oid, index)
                if version is None and entry.maybe:
                    del model.pages[oid, index]  # evicted: from now on, gets must miss
                    self.tally["seen_evicted"] += 1
                else:
                    assert version == entry.version

    @invariant()
    def counters_agree_with_the_model(self) -> None:
        models = {id(model): model for model in self.pools.values()}.values()
        tmem, store = self.tmem.counters(), self.store.counters()
        assert tmem["pool_count"] == len(self.pools)
        assert tmem["client_count"] == len({client for client, _ in self.pools})
        assert store["pers_zpages"] == sum(len(m.pages) for m in models if m.persistent)
        assert store["eph_zpages"] <= sum(len(m.pages) for m in models if not m.persistent)
        assert store["used_bytes"] <= store["memory_bytes"]
        sure = {(id(m), k[0]) for m in models for k, e in m.pages.items() if not e.maybe}
        maybe = {(id(m), k[0]) for m in models for k in m.pages}
        assert len(sure) <= tmem["obj_count"] <= len(maybe)

    def teardown(self) -> None:
        self.tally["evicted"] += self.store.counters()["evicted_eph_zpages"]


@pytest.mark.parametrize("make_store", [small_zcache, small_plain_store], ids=["zcache", "plain"])
def test_tmem_agrees_with_a_dict_model(make_store: Callable[[], PageStore]) -> None:
    tally: Counter[str] = Counter()

    class Machine(TmemMachine):
        def __init__(self) -> None:
            super().__init__(make_store, tally)

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=300, stateful_step_count=40, deadline=None, print_blob=True),
    )

    assert tally["evicted"] > 0
    assert tally["no_space"] > 0
    assert tally["persistent_hits"] > 0
