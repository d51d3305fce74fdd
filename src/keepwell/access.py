"""API tokens and roles: who may do what over REST.

A token is ``kw_`` followed by 43 URL-safe characters (256 random bits), shown once when
created and stored only as its sha256. Roles are fixed; each allows a set of actions:

=========  ====================================================================
viewer     read: models, versions, aliases, traffic, the logbook, metrics
predictor  viewer's rights, and predict and feedback
operator   viewer's rights, and move aliases, roll back, set traffic policies
admin      everything: the above, register, archive, delete, manage tokens
=========  ====================================================================

Creating and revoking tokens are audited state changes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import insert, select, update

from keepwell.audit import record_event
from keepwell.errors import AlreadyExistsError, NotFoundError, ValidationError
from keepwell.registry.base import utc_now
from keepwell.registry.names import check_model_name
from keepwell.store.db import Database
from keepwell.store.tables import api_tokens

__all__ = ["ACTIONS", "PERMISSIONS", "Action", "Principal", "Role", "TokenInfo", "Tokens"]

Role = Literal["viewer", "predictor", "operator", "admin"]
Action = Literal["read", "predict", "feedback", "alias", "traffic", "register", "delete",
                 "tokens"]
ACTIONS: tuple[Action, ...] = get_args(Action)
PERMISSIONS: dict[Role, frozenset[Action]] = {
    "viewer": frozenset({"read"}),
    "predictor": frozenset({"read", "predict", "feedback"}),
    "operator": frozenset({"read", "alias", "traffic"}),
    "admin": frozenset(ACTIONS),
}
_PREFIX = "kw_"
_TOKEN_LENGTH = len(_PREFIX) + 43


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    name: str
    role: Role

    def can(self, action: Action) -> bool:
        return action in PERMISSIONS[self.role]


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: Role
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens:
    """Create, list, revoke and check API tokens."""

    def __init__(self, db: Database, actor: str) -> None:
        self.db = db
        self.actor = actor

    def create(self, name: str, role: Role, *, reason: str = "") -> tuple[TokenInfo, str]:
        """A new token; returns its record and its secret text (shown this once)."""
        check_model_name(name)  # the same safe-name rule
        if role not in PERMISSIONS:
            raise ValidationError(f"role must be one of {', '.join(PERMISSIONS)}, not {role!r}.")
        secret = _PREFIX + secrets.token_urlsafe(32)
        now = utc_now()
        with self.db.write() as conn:
            if conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first():
                raise AlreadyExistsError(f"a token named {name!r} exists; revoke it or pick "
                                         "another name.")
            conn.execute(insert(api_tokens).values(name=name, role=role,
                                                   token_hash=_hash(secret), created_at=now,
                                                   created_by=self.actor))
            record_event(conn, actor=self.actor, action="token.create", target=f"token:{name}",
                         before=None, after={"role": role}, reason=reason)
        return TokenInfo(name, role, now, self.actor, None), secret

    def revoke(self, name: str, *, reason: str = "") -> TokenInfo:
        now = utc_now()
        with self.db.write() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"no token named {name!r}.")
            if row.revoked_at is None:
                conn.execute(update(api_tokens).where(api_tokens.c.id == row.id)
                             .values(revoked_at=now))
                record_event(conn, actor=self.actor, action="token.revoke",
                             target=f"token:{name}", before={"revoked": False},
                             after={"revoked": True}, reason=reason)
        return TokenInfo(row.name, row.role, row.created_at, row.created_by,
                         row.revoked_at or now)

    def list(self) -> list[TokenInfo]:
        with self.db.read() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.name)).all()
        return [TokenInfo(r.name, r.role, r.created_at, r.created_by, r.revoked_at)
                for r in rows]

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of a valid, unrevoked token; None for anything else."""
        if not token or len(token) != _TOKEN_LENGTH or not token.startswith(_PREFIX):
            return None
        with self.db.read() as conn:
            row = conn.execute(select(api_tokens.c.name, api_tokens.c.role,
                                      api_tokens.c.revoked_at)
                               .where(api_tokens.c.token_hash == _hash(token))).first()
        if row is None or row.revoked_at is not None:
            return None
        return Principal(row.name, row.role)
