"""Segment files: round trip, a valid prefix after any cut or corruption, the writer's lock,
and the temporary name a half-created segment has."""

from __future__ import annotations

import errno
import os
import random
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from keepwell.logbook import segments
from keepwell.logbook.segments import MAGIC, SegmentFile, read_segment, try_lock

SCHEMA = pa.schema([("x", pa.int64()), ("name", pa.string()), ("score", pa.float64())])


def _batch(i: int, rows: int = 5) -> pa.RecordBatch:
    return pa.record_batch({
        "x": [i * 100 + r for r in range(rows)],
        "name": [f"row-{i}-{r}" for r in range(rows)],
        "score": [r / 7 for r in range(rows)],
    }, schema=SCHEMA)


def _write(path: Path, batches: list[pa.RecordBatch]) -> list[int]:
    """Write a closed segment; returns the offset where each frame ends (schema frame first)."""
    segment = SegmentFile(path, SCHEMA)
    offsets = [segment.written]
    for batch in batches:
        offsets.append(segment.append(batch))
    segment.close()
    return offsets


def _same(found: list[pa.RecordBatch], expected: list[pa.RecordBatch]) -> bool:
    return len(found) == len(expected) and all(a.equals(b) for a, b in zip(found, expected,
                                                                           strict=True))


def test_round_trip(tmp_path: Path) -> None:
    batches = [_batch(i, rows=i + 1) for i in range(4)]
    path = tmp_path / "a.seg"
    segment = SegmentFile(path, SCHEMA)
    for batch in batches:
        segment.append(batch)
    assert segment.rows == 10
    segment.close()
    contents = read_segment(path)
    assert contents.schema is not None and contents.schema.equals(SCHEMA)
    assert _same(contents.batches, batches)
    assert contents.valid_bytes == contents.total_bytes == path.stat().st_size
    assert not contents.torn_tail
    assert path.read_bytes().startswith(MAGIC)


def test_a_segment_is_private_and_close_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "a.seg"
    segment = SegmentFile(path, SCHEMA)
    segment.append(_batch(0))
    segment.close()
    segment.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_cut_anywhere_in_the_last_frame_yields_exactly_the_earlier_batches(
        tmp_path: Path) -> None:
    batches = [_batch(i) for i in range(3)]
    path = tmp_path / "a.seg"
    offsets = _write(path, batches)
    previous_end, last_end = offsets[-2], offsets[-1]
    assert last_end == path.stat().st_size
    for cut in range(last_end - 1, previous_end - 1, -1):  # every byte offset of the last frame
        os.truncate(path, cut)
        contents = read_segment(path)
        assert _same(contents.batches, batches[:-1]), cut
        assert contents.valid_bytes == previous_end, cut
        assert contents.torn_tail == (cut > previous_end), cut


def test_a_cut_inside_the_header_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.seg"
    offsets = _write(path, [_batch(0)])
    for cut in range(offsets[0] - 1, -1, -1):  # inside the magic or the schema frame
        os.truncate(path, cut)
        contents = read_segment(path)
        assert contents.schema is None and contents.batches == [], cut
        assert contents.valid_bytes == 0


def test_a_flipped_byte_in_a_frame_stops_reading_there(tmp_path: Path) -> None:
    batches = [_batch(i) for i in range(3)]
    path = tmp_path / "a.seg"
    offsets = _write(path, batches)
    original = path.read_bytes()
    for position in range(offsets[1], offsets[2]):  # every byte of the second batch's frame
        damaged = bytearray(original)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        contents = read_segment(path)
        assert _same(contents.batches, batches[:1]), position
        assert contents.valid_bytes == offsets[1] and contents.torn_tail, position


def test_a_damaged_magic_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.seg"
    _write(path, [_batch(0)])
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    contents = read_segment(path)
    assert contents.schema is None and contents.batches == []
    assert contents.torn_tail


@pytest.mark.parametrize("seed", range(20))
def test_a_garbage_tail_is_ignored(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    batches = [_batch(i) for i in range(2)]
    path = tmp_path / "a.seg"
    offsets = _write(path, batches)
    with path.open("ab") as f:
        f.write(rng.randbytes(rng.randint(1, 300)))
    contents = read_segment(path)
    assert _same(contents.batches, batches)
    assert contents.valid_bytes == offsets[-1] and contents.torn_tail


@pytest.mark.parametrize("length", range(1, 8))
def test_a_zero_tail_shorter_than_a_frame_header_is_ignored(tmp_path: Path, length: int) -> None:
    batches = [_batch(0)]
    path = tmp_path / "a.seg"
    _write(path, batches)
    with path.open("ab") as f:
        f.write(bytes(length))
    contents = read_segment(path)
    assert _same(contents.batches, batches) and contents.torn_tail


@pytest.mark.parametrize("batches_before", [0, 2])
@pytest.mark.parametrize("length", [8, 4096])
def test_a_zero_filled_tail_is_ignored(tmp_path: Path, batches_before: int, length: int) -> None:
    batches = [_batch(i) for i in range(batches_before)]
    path = tmp_path / "a.seg"
    offsets = _write(path, batches)
    with path.open("ab") as f:
        f.write(bytes(length))
    contents = read_segment(path)
    assert _same(contents.batches, batches)
    assert contents.valid_bytes == offsets[-1] and contents.torn_tail


def test_a_missing_segment_reads_as_empty(tmp_path: Path) -> None:
    contents = read_segment(tmp_path / "gone.seg")
    assert contents.schema is None and contents.batches == [] and contents.total_bytes == 0


def test_try_lock_fails_while_the_segment_is_open_and_succeeds_after_close(
        tmp_path: Path) -> None:
    path = tmp_path / "a.seg"
    segment = SegmentFile(path, SCHEMA)
    segment.append(_batch(0))
    assert try_lock(path) is None
    segment.sync()
    assert try_lock(path) is None
    segment.close()
    fd = try_lock(path)
    assert fd is not None
    try:
        assert try_lock(path) is None  # the sealer's lock excludes a second sealer too
    finally:
        os.close(fd)
    fd = try_lock(path)
    assert fd is not None
    os.close(fd)


def test_try_lock_on_a_missing_file_is_none(tmp_path: Path) -> None:
    assert try_lock(tmp_path / "nothing.seg") is None


def test_abandon_releases_the_lock_without_syncing(tmp_path: Path) -> None:
    path = tmp_path / "a.seg"
    segment = SegmentFile(path, SCHEMA)
    segment.append(_batch(0))
    synced = segment.synced
    segment.abandon()
    assert segment.closed and segment.synced == synced < segment.written
    fd = try_lock(path)
    assert fd is not None
    os.close(fd)


def test_the_temporary_name_is_never_globbed_as_a_segment(tmp_path: Path) -> None:
    """Look at the folder from inside the first fsync, while the segment is being created."""
    seen: list[tuple[list[str], list[str]]] = []

    def look(fd: int) -> None:
        if not seen:
            seen.append(([p.name for p in tmp_path.glob("*.seg")],
                         [p.name for p in tmp_path.iterdir()]))
        os.fsync(fd)

    path = tmp_path / "w-000001.seg"
    segment = SegmentFile(path, SCHEMA, fsync=look)
    segment.close()
    globbed, present = seen[0]
    assert globbed == []
    assert present == [".w-000001.seg.new"]
    assert [p.name for p in tmp_path.glob("*.seg")] == ["w-000001.seg"]
    assert [p.name for p in tmp_path.iterdir()] == ["w-000001.seg"]


def test_a_failed_creation_leaves_no_file(tmp_path: Path) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        SegmentFile(tmp_path / "w-000001.seg", SCHEMA, fsync=broken)
    assert list(tmp_path.iterdir()) == []


def test_sync_calls_fsync_only_when_something_is_unsynced(tmp_path: Path) -> None:
    calls: list[int] = []

    def counting(fd: int) -> None:
        calls.append(fd)
        os.fsync(fd)

    segment = SegmentFile(tmp_path / "a.seg", SCHEMA, fsync=counting)
    created = len(calls)  # the file, then its folder
    assert created == 2
    segment.sync()
    assert len(calls) == created
    segment.append(_batch(0))
    segment.sync()
    segment.sync()
    assert len(calls) == created + 1
    assert segment.synced == segment.written
    segment.close()
    assert len(calls) == created + 1


def test_a_large_batch_is_written_in_frames_that_read_back_as_the_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "FRAME_BYTES", 1_000)
    calls: list[int] = []

    def counting(fd: int) -> None:
        calls.append(fd)
        os.fsync(fd)

    big = _batch(1, rows=400)
    segment = SegmentFile(tmp_path / "a.seg", SCHEMA, fsync=counting)
    created = len(calls)
    segment.append(_batch(0))
    segment.append(big)
    segment.sync()
    segment.close()
    found = read_segment(tmp_path / "a.seg").batches
    assert len(found) > 10  # the big batch became many frames
    assert _same(found[:1], [_batch(0)])
    assert pa.Table.from_batches(found[1:]).equals(pa.Table.from_batches([big]))
    # Writebacks after frames but the last (one at a time: a frame written while one runs
    # waits for the next), each on a descriptor of its own; then the sync on the segment's.
    writebacks = calls[created:-1]
    assert 1 <= len(writebacks) <= len(found) - 1
    assert segment.fd not in writebacks and calls[-1] == segment.fd


def test_a_failed_writeback_fails_the_next_sync_even_if_a_new_fsync_would_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a failed fsync the kernel may have dropped the pages (and reports the error to
    one caller only): a later fsync that passes must not acknowledge them."""
    monkeypatch.setattr(segments, "FRAME_BYTES", 1_000)
    calls: list[int] = []

    def failing_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:  # the file, its folder, then the first writeback
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)

    segment = SegmentFile(tmp_path / "a.seg", SCHEMA, fsync=failing_once)
    segment.append(_batch(1, rows=400))
    with pytest.raises(OSError, match="Input/output"):
        segment.sync()
    # The error is the writeback's: the sync itself passed every later fsync, or made none.
    assert calls[2] != segment.fd
    assert segment.synced < segment.written
    segment.abandon()


def test_a_failed_write_part_way_through_a_large_batch_cuts_the_whole_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "FRAME_BYTES", 1_000)
    segment = SegmentFile(tmp_path / "a.seg", SCHEMA)
    segment.append(_batch(0))
    before = segment.written
    frames = 0
    original = SegmentFile._write_frame

    def full_disk_on_third(self: SegmentFile, payload: pa.Buffer) -> None:
        nonlocal frames
        frames += 1
        if frames == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, payload)

    monkeypatch.setattr(SegmentFile, "_write_frame", full_disk_on_third)
    with pytest.raises(OSError, match="No space"):
        segment.append(_batch(1, rows=400))
    assert segment.written == before == (tmp_path / "a.seg").stat().st_size
    monkeypatch.setattr(SegmentFile, "_write_frame", original)
    segment.append(_batch(2))
    segment.close()
    assert _same(read_segment(tmp_path / "a.seg").batches, [_batch(0), _batch(2)])
