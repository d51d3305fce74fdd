"""The audit log's hash chain: appends, verification, and the tampering it must catch."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, text, update

import keepwell as kw
from keepwell.audit import GENESIS_HASH, record_event
from keepwell.store.tables import audit_events


def write_events(ws: kw.Workspace, n: int) -> None:
    for i in range(n):
        with ws.db.write() as conn:
            record_event(conn, actor="alice", action="test.event", target=f"t{i}",
                         before={"i": i}, after={"i": i + 1, "note": "é ü"}, reason=f"r{i}",
                         request_id=f"req-{i}")


def test_events_are_chained_in_sequence(workspace: kw.Workspace) -> None:
    write_events(workspace, 5)
    events = workspace.audit.events()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert workspace.audit.verify() == kw.VerifyResult(ok=True, checked=5)


def test_an_event_rolled_back_with_its_change_leaves_no_trace(workspace: kw.Workspace) -> None:
    write_events(workspace, 1)
    with pytest.raises(RuntimeError), workspace.db.write() as conn:
        record_event(conn, actor="a", action="x", target="t", before=None, after=None)
        raise RuntimeError
    assert [e.seq for e in workspace.audit.events()] == [1]
    assert workspace.audit.verify().ok


@pytest.mark.parametrize(("column", "value"), [
    ("reason", "nothing to see"),
    ("actor", "mallory"),
    ("after", '{"i":100}'),
    ("target", "other"),
])
def test_editing_a_row_is_named(workspace: kw.Workspace, column: str, value: str) -> None:
    write_events(workspace, 6)
    with workspace.db.engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_events SET {column} = :v WHERE seq = 3"), {"v": value})
    result = workspace.audit.verify()
    assert not result.ok
    assert result.first_broken_seq == 3
    assert "altered" in (result.problem or "")


def test_editing_a_row_and_rehashing_it_breaks_the_next_link(workspace: kw.Workspace) -> None:
    write_events(workspace, 4)
    with workspace.db.engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 2)
                     .values(hash="f" * 64))
    result = workspace.audit.verify()
    assert result.first_broken_seq == 2  # its own hash no longer matches its content


def test_deleting_a_row_in_the_middle_is_named(workspace: kw.Workspace) -> None:
    write_events(workspace, 5)
    with workspace.db.engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 3))
    result = workspace.audit.verify()
    assert (result.ok, result.first_broken_seq) == (False, 3)
    assert "missing" in (result.problem or "")


def test_deleting_the_newest_rows_is_noticed(workspace: kw.Workspace) -> None:
    write_events(workspace, 5)
    with workspace.db.engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq >= 4))
    result = workspace.audit.verify()
    assert (result.ok, result.first_broken_seq) == (False, 4)


def test_order_is_by_sequence_not_wall_clock(workspace: kw.Workspace) -> None:
    """AU3: a clock stepping backwards does not reorder events, nor break the chain."""
    now = datetime.now(UTC)
    for i, at in enumerate([now, now - timedelta(hours=1), now - timedelta(days=2)]):
        with workspace.db.write() as conn:
            record_event(conn, actor="a", action="tick", target=f"t{i}", before=None,
                         after=None, at=at)
    events = workspace.audit.events()
    assert [e.target for e in events] == ["t0", "t1", "t2"]
    assert events[0].at > events[1].at > events[2].at
    assert [e.seq for e in workspace.audit.events(newest_first=True)] == [3, 2, 1]
    assert workspace.audit.verify().ok


def test_filters(workspace: kw.Workspace) -> None:
    write_events(workspace, 4)
    assert [e.target for e in workspace.audit.events(target="t2")] == ["t2"]
    assert len(workspace.audit.events(action="test.event", limit=2)) == 2
    assert [e.seq for e in workspace.audit.events(after_seq=2)] == [3, 4]
