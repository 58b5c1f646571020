"""`DictionaryBook`: the record of the zstd dictionaries this node trained on its persistent
pools, so that after a restart it decodes the pages its peers hand back (docs/design.md, codecs).

A persistent page outlives its origin through its copies on peers; a dictionary it was packed
with must too. The book keeps each one in etcd (the membership's `save_dictionary`:
``dictionaries/<number>/<id>``), written before any page is packed with it and erased with its
pool; a restarted node puts them back (`restore`) before it takes its pages back, and erases
those of pools that did not come back (`erase_unrecovered`). Holders never see a dictionary:
they keep the pages as they do any other, so a holder of an earlier release holds them too. A
dictionary is as secret as the pages it was trained on: with a page key it is sealed under it
(bound to this node, the pool and the id, `OriginSeal.seal_dictionary`); a node without one
(plaintext, as its pages travel) records it as is, with a SHA-256 of it, its pool and its id
against damage. A record that does not open, or holds another id, is skipped and counted
(`zstd_dicts_unreadable`): the pages packed with it are lost, never read wrong.

Not here: which dictionaries a pool has (`ramster.zcache.dictionaries`), etcd itself
(`nodemanager.etcd`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from nodemanager.model import Membership
from ramster.errors import InvalidArgument, RamsterError
from ramster.page_dictionary import PageDictionary
from ramster.remote.handles import OriginTmem
from ramster.trust.seal import OriginSeal
from ramster.zcache.dictionaries import DictionaryShelf

log = logging.getLogger("ramster.remote")


@dataclass(frozen=True, slots=True)
class Recorded:
    """A dictionary read back from the record: of pool `pool_uid`, its data."""

    pool_uid: int
    data: bytes


class DictionaryBook:
    """The dictionaries of this node's persistent pools, recorded through `membership`, sealed
    with `seal` (None: plaintext)."""

    def __init__(self, membership: Membership, seal: OriginSeal | None) -> None:
        self._membership = membership
        self._seal = seal
        self.counters = {"zstd_dicts_unreadable": 0}

    def __repr__(self) -> str:
        return f"<DictionaryBook sealed={self._seal is not None}>"

    async def load(self) -> tuple[int, list[Recorded]] | None:
        """The lowest dictionary id never used and every recorded dictionary that reads back
        whole; None where no record is kept (no etcd: persistent pools get no dictionary)."""
        loaded = await self._membership.load_dictionaries()
        if loaded is None:
            return None
        next_id, records = loaded
        next_id = max([next_id, *(dict_id + 1 for dict_id in records)])
        readable = []
        for dict_id, record in sorted(records.items()):
            try:
                readable.append(self._decode(dict_id, record))
            except (RamsterError, ValueError, KeyError, TypeError) as error:
                reason = error.message if isinstance(error, RamsterError) else repr(error)
                log.warning("dictionary %d of the record is unreadable: %s", dict_id, reason)
                self.counters["zstd_dicts_unreadable"] += 1
        return next_id, readable

    async def restore(self, shelf: DictionaryShelf, tmem: OriginTmem) -> None:
        """Put the recorded dictionaries back on `shelf` (once), before the pages come back;
        from then on persistent pools get dictionaries, each recorded before use. None where
        there is no record (no etcd)."""
        if shelf.keeps_persistent:
            return
        loaded = await self.load()
        if loaded is None:
            return
        next_id, recorded = loaded
        shelf.continue_ids(next_id)
        for dictionary in recorded:
            shelf.restore(dictionary.pool_uid, dictionary.data)
        if recorded:  # a later pool never takes the uid a recorded dictionary names
            tmem.table.continue_after(pool_uid=max(d.pool_uid for d in recorded))
        shelf.keeps_persistent = True

    async def erase_unrecovered(self, shelf: DictionaryShelf, tmem: OriginTmem) -> None:
        """Every peer handed its pages over: the dictionaries of pools that did not come back
        (no page of theirs is left anywhere) go, from `shelf` and from the record."""
        for pool_uid in shelf.recorded_pools() - {pool.uid for pool in tmem.table.own_pools()}:
            shelf.forget_pool(pool_uid)
        if shelf.retired:
            retired, shelf.retired = shelf.retired, []
            await self.drop(retired)

    async def save(self, pool_uid: int, dict_id: int, data: bytes) -> None:
        """Record dictionary `dict_id` of pool `pool_uid`: done before a page is packed with it."""
        if self._seal is not None:
            fields = {"sealed": self._seal.seal_dictionary(pool_uid, dict_id, data)}
        else:
            fields = {"data": data, "sha256": _digest(pool_uid, dict_id, data)}
        record = {"pool_uid": pool_uid} | {
            name: base64.b64encode(value).decode() for name, value in fields.items()
        }
        await self._membership.save_dictionary(dict_id, json.dumps(record, sort_keys=True))

    async def drop(self, dict_ids: Sequence[int]) -> None:
        """Erase dictionaries `dict_ids` (their pool is gone); a failure leaves them recorded,
        logged: a stale record costs etcd room, never a page."""
        try:
            await self._membership.drop_dictionaries(dict_ids)
        except RamsterError as error:
            log.warning("dictionaries %s stay recorded: %s", list(dict_ids), error.message)

    def _decode(self, dict_id: int, record: str) -> Recorded:
        fields = json.loads(record)
        pool_uid = fields["pool_uid"]
        if type(pool_uid) is not int or pool_uid <= 0:
            raise InvalidArgument.field("pool_uid", pool_uid, "a pool uid > 0")
        if self._seal is not None:
            sealed = base64.b64decode(fields["sealed"], validate=True)
            data = self._seal.open_dictionary(pool_uid, dict_id, sealed)
        else:
            data = base64.b64decode(fields["data"], validate=True)
            digest = base64.b64decode(fields["sha256"], validate=True)
            if _digest(pool_uid, dict_id, data) != digest:
                raise InvalidArgument(f"dictionary {dict_id} is damaged: its SHA-256 differs")
        named = PageDictionary(data).dict_id
        if named != dict_id:
            raise InvalidArgument(f"dictionary recorded as {dict_id} names itself {named}")
        return Recorded(pool_uid, data)


def _digest(pool_uid: int, dict_id: int, data: bytes) -> bytes:
    """What a plaintext record is checked by: the dictionary, bound to its pool and id."""
    return hashlib.sha256(f"{pool_uid}/{dict_id}/".encode() + data).digest()
