"""The lean batch form both ends write and read: keys as packed arrays (`tmem_pb2.KeyBatch`),
pages as one bytes field cut by an array of lengths.

A batch of 64 pages is then a handful of fields instead of 64 sub-messages, each built by the
sender and read by the receiver in Python (docs/performance.md). Not here: the node's checks of
what it receives (`ramster.rpc.convert`), the pages' codec (`ramster.page`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import accumulate

from ramster.api.v1 import tmem_pb2
from ramster.tmem.keys import Oid


def key_batch(keys: Sequence[tuple[Oid, int]]) -> tmem_pb2.KeyBatch:
    """`keys` packed; the oids' second and third words are sent only if one is not 0."""
    words0 = [oid[0] for oid, _ in keys]
    words1 = [oid[1] for oid, _ in keys]
    words2 = [oid[2] for oid, _ in keys]
    return tmem_pb2.KeyBatch(
        oid_word0=words0,
        oid_word1=words1 if any(words1) else (),
        oid_word2=words2 if any(words2) else (),
        indexes=[index for _, index in keys],
    )


def spans(lengths: Iterable[int]) -> list[tuple[int, int]]:
    """The (start, end) of each of the parts of lengths `lengths` laid one after another."""
    ends = list(accumulate(lengths))
    return list(zip([0, *ends][: len(ends)], ends, strict=True))
