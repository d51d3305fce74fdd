"""Aliases: audited, serialised moves of ``champion``, ``challenger`` or any name, and rollback."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from keepwell.audit import record_event
from keepwell.errors import AliasConflictError, AliasNotFoundError, InvalidStateError
from keepwell.registry.base import RegistryBase, utc_now
from keepwell.registry.names import CHAMPION, check_alias
from keepwell.registry.records import AliasMove
from keepwell.store.tables import alias_history, aliases, model_versions

__all__ = ["ANY", "AliasOperations"]


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()
"""``expected_version`` default of :meth:`AliasOperations.set_alias`: move whatever it holds."""


class AliasOperations(RegistryBase):
    """Set, delete, list and roll back aliases."""

    # -- aliases --------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, *, expected_version: Any = ANY,
                  reason: str = "", request_id: str | None = None) -> AliasMove:
        """Point ``alias`` at ``version``.

        With ``expected_version`` (a version number, or ``None`` for "not set"), the move
        happens only if the alias still points there, like HTTP ``If-Match``; otherwise
        :class:`AliasConflictError`. Moving an alias to where it already points changes
        nothing and records nothing.
        """
        check_alias(alias)
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            return self._move_alias(conn, model_row.id, name, alias, version, expected_version,
                                    "set", reason, request_id)

    def _move_alias(self, conn: Connection, model_id: int, name: str, alias: str,
                    version: int | None, expected: Any, action: str, reason: str,
                    request_id: str | None) -> AliasMove:
        current = self._aliases_of(conn, model_id).get(alias)
        if expected is not ANY and current != expected:
            raise AliasConflictError(
                f"{name}@{alias} points to {current if current is not None else 'nothing'}, "
                f"not {expected}; someone moved it. Read it again and retry.")
        if version is not None:
            row = self._version_row(conn, model_id, name, version)
            if row.status != "ready":
                raise InvalidStateError(f"{name}@{version} is {row.status}; only ready versions "
                                        "can carry an alias.")
        now = utc_now()
        if current == version:
            return AliasMove(name, alias, current, version, action, self.actor, reason, now,
                             None)
        if version is None:
            conn.execute(aliases.delete().where(aliases.c.model_id == model_id,
                                                aliases.c.alias == alias))
        elif current is None:
            conn.execute(insert(aliases).values(model_id=model_id, alias=alias, version=version,
                                                updated_at=now))
        else:
            conn.execute(update(aliases).where(aliases.c.model_id == model_id,
                                               aliases.c.alias == alias)
                         .values(version=version, updated_at=now))
        event = record_event(conn, actor=self.actor, action=f"alias.{action}",
                             target=f"{name}@{alias}", before={"version": current},
                             after={"version": version}, reason=reason, request_id=request_id)
        conn.execute(insert(alias_history).values(
            model_id=model_id, alias=alias, from_version=current, to_version=version,
            action=action, actor=self.actor, reason=reason, at=now, audit_seq=event.seq))
        return AliasMove(name, alias, current, version, action, self.actor, reason, now,
                         event.seq)

    def delete_alias(self, name: str, alias: str, *, reason: str = "",
                     request_id: str | None = None) -> AliasMove:
        check_alias(alias)
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            if alias not in self._aliases_of(conn, model_row.id):
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}.")
            return self._move_alias(conn, model_row.id, name, alias, None, ANY, "delete",
                                    reason, request_id)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        with self.db.read() as conn:
            model_row = self._model_row(conn, name)
            return self._history(conn, model_row.id, name, alias)

    def _history(self, conn: Connection, model_id: int, name: str,
                 alias: str | None) -> list[AliasMove]:
        query = select(alias_history).where(alias_history.c.model_id == model_id)
        if alias is not None:
            query = query.where(alias_history.c.alias == alias)
        return [AliasMove(name, r.alias, r.from_version, r.to_version, r.action, r.actor,
                          r.reason, r.at, r.audit_seq)
                for r in conn.execute(query.order_by(alias_history.c.id))]

    def rollback(self, name: str, *, alias: str = CHAMPION, reason: str = "",
                 request_id: str | None = None) -> AliasMove:
        """Move ``alias`` back to the version it pointed to before its current one.

        The alias history is replayed as a stack (a set pushes; a rollback pops back to the
        version it moved to), so rolling back twice goes back two champions, not back and
        forth. Versions archived or deleted since are skipped.
        """
        check_alias(alias)
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            stack: list[int] = []
            for move in self._history(conn, model_row.id, name, alias):
                if move.action == "rollback" and move.to_version is not None:
                    # Pop back to where it went; versions it skipped leave the stack too.
                    while stack and stack[-1] != move.to_version:
                        stack.pop()
                    if not stack:
                        stack.append(move.to_version)
                elif move.to_version is None:
                    stack.clear()
                else:
                    stack.append(move.to_version)
            if not stack:
                raise InvalidStateError(f"{name}@{alias} is not set; nothing to roll back.")
            current = stack.pop()
            status = dict(conn.execute(
                select(model_versions.c.version, model_versions.c.status)
                .where(model_versions.c.model_id == model_row.id)).all())
            while stack and (stack[-1] == current or status.get(stack[-1]) != "ready"):
                stack.pop()
            if not stack:
                raise InvalidStateError(
                    f"{name}@{alias} has no earlier version that can still be served; set the "
                    f"alias explicitly with `keepwell alias set {name} {alias} VERSION`.")
            return self._move_alias(conn, model_row.id, name, alias, stack[-1], current,
                                    "rollback", reason, request_id)

