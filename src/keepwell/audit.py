"""The audit log: one hash-chained event for every state change, in the change's transaction.

Each event's hash covers its own fields and the previous event's hash::

    hash_n = sha256(canonical_json([seq_n, at_n, actor_n, action_n, target_n,
                                    before_n, after_n, reason_n, request_id_n, hash_{n-1}]))

with ``hash_0 = "0" * 64``. Editing a row changes its hash; deleting one breaks the sequence
or the link of the next; deleting the newest rows disagrees with the ``audit_head`` row, which
every append updates in the same transaction. :meth:`AuditLog.verify` names the first event
where any of this fails. Events are ordered by their sequence number, never by wall clock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from keepwell.store.db import Database
from keepwell.store.tables import audit_events, audit_head, canonical_json

__all__ = ["GENESIS_HASH", "AuditEvent", "AuditLog", "VerifyResult", "record_event"]

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """One recorded state change."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    reason: str
    request_id: str | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["at"] = self.at.isoformat()
        return data


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`AuditLog.verify` found: ``ok``, or the first broken event and why."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _event_hash(seq: int, at: datetime, actor: str, action: str, target: str, before: Any,
                after: Any, reason: str, request_id: str | None, prev_hash: str) -> str:
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
    payload = canonical_json([seq, stamp, actor, action, target, before, after, reason,
                              request_id, prev_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record_event(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str = "",
    request_id: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event inside the caller's write transaction (see :meth:`Database.write`).

    ``at`` defaults to now. It is informative only: the order of events is their sequence
    number, so a wall clock stepping backwards cannot reorder them.
    """
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)
                        .where(audit_head.c.id == 1)).one()
    seq = head.seq + 1
    # Microsecond precision is what both databases keep, so the hash survives a round trip.
    at = at.astimezone(UTC) if at is not None else datetime.now(UTC)
    before_value = dict(before) if before is not None else None
    after_value = dict(after) if after is not None else None
    digest = _event_hash(seq, at, actor, action, target, before_value, after_value, reason,
                         request_id, head.hash)
    conn.execute(audit_events.insert().values(
        seq=seq, at=at, actor=actor, action=action, target=target, before=before_value,
        after=after_value, reason=reason, request_id=request_id, prev_hash=head.hash,
        hash=digest,
    ))
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest))
    return AuditEvent(seq, at, actor, action, target, before_value, after_value, reason,
                      request_id, head.hash, digest)


class AuditLog:
    """Read and verify the audit log of one metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def events(
        self,
        *,
        target: str | None = None,
        action: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        """Events in sequence order, optionally filtered."""
        query = select(audit_events).where(audit_events.c.seq > after_seq)
        if target is not None:
            query = query.where(audit_events.c.target == target)
        if action is not None:
            query = query.where(audit_events.c.action == action)
        order = audit_events.c.seq.desc() if newest_first else audit_events.c.seq
        query = query.order_by(order).limit(limit)
        with self.db.read() as conn:
            return [AuditEvent(**row._mapping) for row in conn.execute(query)]

    @staticmethod
    @contextlib.contextmanager
    def _all_events(conn: Connection) -> Iterator[Iterator[AuditEvent]]:
        """Every event in order, streamed in batches (the log may be long)."""
        result = conn.execution_options(yield_per=1000).execute(
            select(audit_events).order_by(audit_events.c.seq))
        try:
            yield (AuditEvent(**row._mapping) for row in result)
        finally:
            result.close()

    def verify(self) -> VerifyResult:
        """Walk the chain and name the first event that does not hold."""
        with self.db.read() as conn:
            head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)
                                .where(audit_head.c.id == 1)).one_or_none()
            with self._all_events(conn) as stream:
                return self._check_chain(stream, None if head is None else (head[0], head[1]))

    @staticmethod
    def _check_chain(events: Iterator[AuditEvent], head: tuple[int, str] | None) -> VerifyResult:
        checked = 0
        prev_hash = GENESIS_HASH
        for event in events:
            expected = checked + 1
            if event.seq != expected:
                return VerifyResult(False, checked, expected,
                                    f"event {expected} is missing (next found: {event.seq})")
            if event.prev_hash != prev_hash:
                return VerifyResult(False, checked, event.seq,
                                    f"event {event.seq} does not link to event {event.seq - 1}")
            actual = _event_hash(event.seq, event.at, event.actor, event.action, event.target,
                                 event.before, event.after, event.reason, event.request_id,
                                 event.prev_hash)
            if actual != event.hash:
                return VerifyResult(False, checked, event.seq,
                                    f"event {event.seq} was altered: its content does not "
                                    "match its hash")
            checked += 1
            prev_hash = event.hash
        if head is None:
            return VerifyResult(False, checked, checked + 1, "the audit head row is missing")
        head_seq, head_hash = head
        if head_seq > checked:
            return VerifyResult(False, checked, checked + 1,
                                f"events {checked + 1} to {head_seq} were deleted from the end")
        if head_seq != checked or head_hash != prev_hash:
            return VerifyResult(False, checked, checked,
                                "the audit head does not match the newest event")
        return VerifyResult(True, checked)
