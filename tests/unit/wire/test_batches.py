"""The lean batch form: keys packed into arrays, the parts of a blob cut by their lengths."""

from __future__ import annotations

from ramster.api.v1 import tmem_pb2
from ramster.wire.batches import key_batch, spans

U64_MAX = 2**64 - 1


def test_one_word_oids_send_only_their_first_word() -> None:
    batch = key_batch([((7, 0, 0), 1), ((U64_MAX, 0, 0), 2**32 - 1)])
    assert batch == tmem_pb2.KeyBatch(oid_word0=[7, U64_MAX], indexes=[1, 2**32 - 1])
    assert (list(batch.oid_word1), list(batch.oid_word2)) == ([], [])


def test_a_second_or_third_word_sends_that_word_for_every_key() -> None:
    batch = key_batch([((1, 0, 0), 0), ((2, 0, 9), 3)])
    assert batch == tmem_pb2.KeyBatch(oid_word0=[1, 2], oid_word2=[0, 9], indexes=[0, 3])
    batch = key_batch([((1, 5, 0), 0)])
    assert batch == tmem_pb2.KeyBatch(oid_word0=[1], oid_word1=[5], indexes=[0])


def test_spans_lay_parts_one_after_another_and_a_zero_length_is_empty() -> None:
    assert spans([3, 0, 1, 4]) == [(0, 3), (3, 3), (3, 4), (4, 8)]
    assert spans([]) == []
