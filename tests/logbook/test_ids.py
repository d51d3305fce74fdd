"""UUIDv7 request ids: layout bits, timestamps, order within and across threads, uniqueness."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import numpy as np
import pyarrow as pa

from keepwell.logbook.ids import (
    id_array,
    id_block,
    id_strings,
    id_text,
    new_id,
    timestamp_ms,
)
from keepwell.logbook.records import uuid_array


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_new_id_is_a_version_7_rfc_9562_uuid_in_canonical_text() -> None:
    text = new_id()
    parsed = uuid.UUID(text)
    assert str(parsed) == text and len(text) == 36
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_every_id_of_a_block_has_the_version_and_variant_bits() -> None:
    block = id_block(5000)
    assert block.shape == (5000, 16) and block.dtype == np.uint8
    assert np.all(block[:, 6] >> 4 == 0x7)        # version nibble
    assert np.all(block[:, 8] >> 6 == 0b10)        # RFC 9562 variant


def test_the_timestamp_is_the_current_millisecond() -> None:
    before = _now_ms()
    ids = [new_id() for _ in range(200)] + [id_text(r.tobytes()) for r in id_block(200)]
    after = _now_ms()
    stamps = [timestamp_ms(i) for i in ids]
    assert all(before <= s <= after for s in stamps), (before, min(stamps), max(stamps), after)


def test_timestamp_ms_reads_the_top_48_bits() -> None:
    ms = 1_700_000_000_123
    made = uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | 12345)
    assert timestamp_ms(str(made)) == ms


def test_ids_strictly_increase_across_calls_and_blocks() -> None:
    raw: list[bytes] = []
    for i in range(2000):
        if i % 3:
            raw.append(uuid.UUID(new_id()).bytes)
        else:
            raw.extend(r.tobytes() for r in id_block(i % 17 + 1))
    assert all(a < b for a, b in itertools.pairwise(raw))
    texts = [id_text(r) for r in raw]
    assert texts == sorted(texts)  # the text form sorts the same way
    assert len(set(raw)) == len(raw)


def test_id_array_is_an_arrow_uuid_array_of_increasing_ids() -> None:
    array = id_array(1000)
    assert isinstance(array.type, pa.UuidType) and len(array) == 1000
    assert array.null_count == 0
    raw = array.storage.to_pylist()
    assert all(a < b for a, b in itertools.pairwise(raw))
    assert all(uuid.UUID(bytes=r).version == 7 for r in raw)


def test_empty_block() -> None:
    assert id_block(0).shape == (0, 16)
    assert len(id_array(0)) == 0


def test_ids_from_16_threads_are_unique_and_increasing_per_thread() -> None:
    per_thread: list[list[bytes]] = [[] for _ in range(16)]
    barrier = threading.Barrier(16)

    def make(slot: list[bytes], k: int) -> None:
        barrier.wait()
        for i in range(1500):
            if (i + k) % 4:
                slot.append(uuid.UUID(new_id()).bytes)
            else:
                slot.extend(r.tobytes() for r in id_block(7))

    threads = [threading.Thread(target=make, args=(per_thread[k], k)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [r for slot in per_thread for r in slot]
    assert len(everything) == len(set(everything))
    for slot in per_thread:
        assert all(a < b for a, b in itertools.pairwise(slot))


def test_ids_made_in_a_causal_chain_across_threads_increase() -> None:
    """A token passed thread to thread: each id is made after the previous one, in another
    thread, and must sort after it (monotonic across threads, not only within one)."""
    n_threads, rounds = 8, 200
    chain: list[bytes] = []
    turns = [threading.Semaphore(0) for _ in range(n_threads)]

    def relay(k: int) -> None:
        for _ in range(rounds):
            turns[k].acquire()
            chain.append(uuid.UUID(new_id()).bytes)
            turns[(k + 1) % n_threads].release()

    threads = [threading.Thread(target=relay, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    turns[0].release()
    for t in threads:
        t.join()
    assert len(chain) == n_threads * rounds
    assert all(a < b for a, b in itertools.pairwise(chain))


def test_id_strings_gives_the_canonical_text_of_every_id() -> None:
    ids = id_array(1000)
    expected = [id_text(r) for r in ids.storage.to_pylist()]
    text = id_strings(ids)
    assert text.type == pa.string() and text.null_count == 0
    assert text.to_pylist() == expected
    assert id_strings(ids.storage).to_pylist() == expected  # the plain 16-byte storage too
    assert id_strings(ids.slice(10, 5)).to_pylist() == expected[10:15]
    assert id_strings(id_array(0)).to_pylist() == []
    assert all(uuid.UUID(t).version == 7 for t in text.to_pylist())


def test_id_strings_keeps_a_null_id_null() -> None:
    ids = uuid_array([new_id(), None], 2, "request_ids", nullable=True)
    assert id_strings(ids).to_pylist()[1] is None
