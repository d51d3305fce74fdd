"""Traffic policies: how a model's requests are split between its champion and a challenger.

=========  ==============================================================================
champion   every request goes to the champion (the default)
ab         a ``share`` of requests goes to the challenger, sticky by the request's key:
           the same key always lands on the same arm while the policy holds
canary     like ``ab``, meant as a ramp: a small ``share`` raised step by step
shadow     the champion answers every request; the challenger scores it too, in the
           background, and its predictions are logged with the arm ``shadow``
=========  ==============================================================================

A request goes to the challenger when ``bucket(key) < share``, where ``bucket`` maps the key's
sha256 to [0, 1) (a request without a key gets a random bucket). Every policy change is audited.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import delete, insert, select

from keepwell.audit import record_event
from keepwell.errors import ValidationError
from keepwell.registry.base import RegistryBase, utc_now
from keepwell.registry.names import check_alias
from keepwell.store.tables import traffic_policies

__all__ = ["POLICY_KINDS", "PolicyKind", "TrafficOperations", "TrafficPolicy", "bucket"]

PolicyKind = Literal["champion", "ab", "canary", "shadow"]
POLICY_KINDS: tuple[PolicyKind, ...] = get_args(PolicyKind)


def bucket(key: str | None) -> float:
    """A request's position in [0, 1): stable for a key, random without one."""
    if key is None:
        return random.random()  # noqa: S311  (traffic splitting, not security)
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


@dataclass(frozen=True)
class TrafficPolicy:
    """One model's split. ``share`` is the challenger's part (0 for champion/shadow)."""

    kind: PolicyKind = "champion"
    share: float = 0.0
    challenger_alias: str = "challenger"

    def arm_for(self, key: str | None) -> Literal["champion", "challenger"]:
        if self.kind in ("ab", "canary") and bucket(key) < self.share:
            return "challenger"
        return "champion"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "share": self.share, "challenger_alias": self.challenger_alias}

    def validate(self) -> TrafficPolicy:
        if self.kind not in POLICY_KINDS:
            raise ValidationError(f"traffic kind must be one of {', '.join(POLICY_KINDS)}, "
                                  f"not {self.kind!r}.")
        if not 0.0 <= self.share <= 1.0:
            raise ValidationError("share must be between 0 and 1.")
        if self.kind in ("ab", "canary") and self.share == 0.0:
            raise ValidationError(f"a {self.kind} policy needs a share above 0.")
        if self.kind in ("champion", "shadow") and self.share != 0.0:
            raise ValidationError(f"a {self.kind} policy takes no share.")
        check_alias(self.challenger_alias)
        return self


class TrafficOperations(RegistryBase):
    """Read and set traffic policies."""

    def get_traffic(self, name: str) -> TrafficPolicy:
        with self.db.read() as conn:
            model_row = self._model_row(conn, name)
            row = conn.execute(select(traffic_policies)
                               .where(traffic_policies.c.model_id == model_row.id)).first()
        if row is None:
            return TrafficPolicy()
        return TrafficPolicy(row.kind, row.share, row.challenger_alias)

    def set_traffic(self, name: str, policy: TrafficPolicy, *, reason: str = "",
                    request_id: str | None = None) -> TrafficPolicy:
        """Replace the model's policy. A split needs the challenger alias to be set."""
        policy.validate()
        with self.db.write() as conn:
            model_row = self._model_row(conn, name)
            if policy.kind != "champion" and \
                    policy.challenger_alias not in self._aliases_of(conn, model_row.id):
                raise ValidationError(
                    f"{name}@{policy.challenger_alias} is not set; point the alias at a version "
                    "before sending it traffic.")
            row = conn.execute(select(traffic_policies)
                               .where(traffic_policies.c.model_id == model_row.id)).first()
            before = TrafficPolicy(row.kind, row.share, row.challenger_alias) \
                if row is not None else TrafficPolicy()
            if before == policy:
                return policy
            conn.execute(delete(traffic_policies)
                         .where(traffic_policies.c.model_id == model_row.id))
            conn.execute(insert(traffic_policies).values(
                model_id=model_row.id, kind=policy.kind, share=policy.share,
                challenger_alias=policy.challenger_alias, updated_at=utc_now(),
                updated_by=self.actor))
            record_event(conn, actor=self.actor, action="traffic.set", target=name,
                         before=before.to_dict(), after=policy.to_dict(), reason=reason,
                         request_id=request_id)
        return policy

    def serving_state(self, name: str) -> tuple[dict[str, int], TrafficPolicy]:
        """A model's aliases and policy, read together: what the server routes a batch by."""
        with self.db.read() as conn:
            model_row = self._model_row(conn, name)
            row = conn.execute(select(traffic_policies)
                               .where(traffic_policies.c.model_id == model_row.id)).first()
            aliases = self._aliases_of(conn, model_row.id)
        policy = TrafficPolicy(row.kind, row.share, row.challenger_alias) if row is not None \
            else TrafficPolicy()
        return aliases, policy
