"""Random lifecycles checked against an in-memory model of the registry (RELIABILITY C5).

Hypothesis drives random sequences of register, set_alias (with and without an ``If-Match``
expectation), rollback, delete_alias, archive, delete and configure_model against a fresh
workspace, and keeps a plain-Python model of what the registry must hold:

* versions numbered 1..n with their status (ready, archived, deleted);
* where each alias points (only ever at a ready version);
* each alias's rollback stack: a set pushes, a rollback pops the current version, then every
  version that is no longer ready or equals the current one, and moves to the new top;
* every audit event that must exist, in order: refused operations and no-op alias moves record
  nothing.

After every step the registry must agree with the model: at most one champion and it is the
model's, the same aliases and statuses, archived or deleted versions never load, the audit log
lists exactly the model's events and its hash chain verifies, and the alias history has one row
per alias event.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, create_engine, text
from tests.conftest import POSTGRES_URL, make_classification_frame, postgres_schema_url

import keepwell as kw
from keepwell.config import Settings
from keepwell.registry import ANY

NAME = "churn"
ALIASES = ("champion", "challenger")

Data = tuple[pd.DataFrame, pd.Series]


@functools.cache
def _fitted() -> tuple[Data, tuple[Any, ...]]:
    """Training data and two small pipelines that predict differently (fitted once)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = make_classification_frame(n=200, seed=5)

    def pipeline(estimator: Any) -> Any:
        pre = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])])
        return make_pipeline(pre, estimator).fit(X, y)

    models = (pipeline(LogisticRegression()),
              pipeline(LogisticRegression(C=0.01, class_weight="balanced")))
    return (X, y), models


class LifecycleMachine(RuleBasedStateMachine):
    """One model's lifecycle in a fresh workspace, mirrored by an in-memory model."""

    backend: ClassVar[str] = "sqlite"
    versions = Bundle("versions")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="kw-c5-")
        self.admin: Engine | None = None
        self.schema: str | None = None
        self.ws: kw.Workspace | None = None
        try:
            if self.backend == "postgresql":
                self.schema = f"kw_{uuid.uuid4().hex[:12]}"
                self.admin = create_engine(POSTGRES_URL)
                with self.admin.begin() as conn:
                    conn.execute(text(f"CREATE SCHEMA {self.schema}"))
                url = postgres_schema_url(self.schema)
            else:
                url = f"sqlite:///{Path(self.tmp) / 'keepwell.db'}"
            self.ws = kw.Workspace(Settings.for_workspace(self.tmp, database_url=url,
                                                          actor="prop"))
        except BaseException:
            self.teardown()
            raise
        (self.X, self.y), self.models = _fitted()
        # The model of what the registry must hold.
        self.status: dict[int, str] = {}
        self.source: dict[int, int] = {}  # version -> index of the pipeline registered
        self.alias: dict[str, int] = {}
        self.stack: dict[str, list[int]] = {a: [] for a in ALIASES}
        self.events: list[tuple[str, str]] = []
        self.config: dict[str, Any] = {"description": "", "sensitive_features": (),
                                       "allow_unsafe_formats": False}

    def teardown(self) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.admin is not None:
            with self.admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
            self.admin.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def registry(self) -> kw.Registry:
        assert self.ws is not None
        return self.ws.registry

    # -- the model's transitions ----------------------------------------------------------

    def _move(self, alias: str, version: int | None, action: str) -> None:
        """Record, in the model, an alias move that really changes something."""
        if version is None:
            del self.alias[alias]
            self.stack[alias].clear()
        else:
            self.alias[alias] = version
            if action == "set":
                self.stack[alias].append(version)
        self.events.append((f"alias.{action}", f"{NAME}@{alias}"))
        assert (self.stack[alias][-1] if self.stack[alias] else None) == self.alias.get(alias)

    def _rollback_target(self, alias: str) -> tuple[int | None, list[int]]:
        """Where a rollback must move ``alias`` (None: it must be refused) and the new stack."""
        stack = list(self.stack[alias])
        if not stack:
            return None, stack
        current = stack.pop()
        while stack and (stack[-1] == current or self.status[stack[-1]] != "ready"):
            stack.pop()
        return (stack[-1] if stack else None), stack

    def _refusal(self, version: int) -> type[Exception] | None:
        """Why an alias may not be set to ``version`` (None: it may)."""
        if version not in self.status:
            return kw.VersionNotFoundError
        if self.status[version] != "ready":
            return kw.InvalidStateError
        return None

    # -- rules ----------------------------------------------------------------------------

    def _register(self, model: int, alias: str | None) -> int:
        expected = len(self.status) + 1
        v = self.registry.register(NAME, self.models[model], self.X, self.y, alias=alias,
                                   reason=f"model {model}")
        assert (v.version, v.status) == (expected, "ready")
        self.status[expected] = "ready"
        self.source[expected] = model
        self.events.append(("version.register", f"{NAME}@{expected}"))
        if alias is not None:
            self._move(alias, expected, "set")
        return expected

    @initialize(target=versions, models=st.lists(st.sampled_from([0, 1]), min_size=1,
                                                 max_size=4),
                alias=st.sampled_from([None, "champion"]))
    def first_versions(self, models: list[int], alias: str | None) -> MultipleResults[int]:
        """A few versions, each made champion on arrival when ``alias`` says so."""
        return multiple(*(self._register(model, alias) for model in models))

    @rule(target=versions, model=st.sampled_from([0, 1]),
          alias=st.sampled_from([None, "champion", "challenger"]))
    def register(self, model: int, alias: str | None) -> int:
        return self._register(model, alias)

    @rule(alias=st.sampled_from(["champion", "champion", "challenger"]),
          back=st.integers(0, 4),
          expect=st.sampled_from(["any", "any", "current", "none", "other"]))
    def set_alias(self, alias: str, back: int, expect: str) -> None:
        """Point ``alias`` at the newest version but ``back``."""
        version = max(1, len(self.status) - back)
        current = self.alias.get(alias)
        expected: Any = {"any": ANY, "current": current, "none": None,
                         "other": (current or 0) + 1}[expect]
        if expected is not ANY and expected != current:
            with pytest.raises(kw.AliasConflictError):
                self.registry.set_alias(NAME, alias, version, expected_version=expected)
            return
        refusal = self._refusal(version)
        if refusal is not None:
            with pytest.raises(refusal):
                self.registry.set_alias(NAME, alias, version, expected_version=expected)
            return
        move = self.registry.set_alias(NAME, alias, version, expected_version=expected)
        assert (move.from_version, move.to_version) == (current, version)
        if current == version:
            assert move.audit_seq is None  # a no-op records nothing
        else:
            assert move.audit_seq == len(self.events) + 1
            self._move(alias, version, "set")

    def _rollback(self, alias: str) -> None:
        target, stack = self._rollback_target(alias)
        if target is None:
            with pytest.raises(kw.InvalidStateError):
                self.registry.rollback(NAME, alias=alias)
            return
        current = self.alias[alias]
        move = self.registry.rollback(NAME, alias=alias, reason="prop rollback")
        assert (move.from_version, move.to_version, move.action) == (current, target,
                                                                    "rollback")
        assert move.audit_seq == len(self.events) + 1
        self.stack[alias] = stack
        self._move(alias, target, "rollback")

    @rule(alias=st.sampled_from(["champion", "champion", "challenger"]),
          times=st.integers(1, 3))
    def rollback(self, alias: str, times: int) -> None:
        """Roll back ``times`` in a row: each goes back one more version, never back and forth."""
        for _ in range(times):
            self._rollback(alias)

    @rule(alias=st.sampled_from(ALIASES))
    def delete_alias(self, alias: str) -> None:
        if alias not in self.alias:
            with pytest.raises(kw.AliasNotFoundError):
                self.registry.delete_alias(NAME, alias)
            return
        move = self.registry.delete_alias(NAME, alias)
        assert (move.from_version, move.to_version) == (self.alias[alias], None)
        self._move(alias, None, "delete")

    def _change_status(self, version: int, status: str) -> None:
        allowed = {"archived": ("ready",), "deleted": ("ready", "archived")}[status]
        call = self.registry.archive_version if status == "archived" else \
            self.registry.delete_version
        held = version in self.alias.values()
        if self.status[version] not in allowed or held:
            with pytest.raises(kw.InvalidStateError):
                call(NAME, version)
            return
        result = call(NAME, version)
        assert result.status == status
        self.status[version] = status
        action = "version.archive" if status == "archived" else "version.delete"
        self.events.append((action, f"{NAME}@{version}"))

    def _pick(self, version: int, former: int | None) -> int:
        """``version``, or with ``former`` a version a champion rollback could go back to."""
        held = set(self.alias.values())
        candidates = sorted({v for v in self.stack["champion"]
                             if v not in held and self.status[v] == "ready"})
        return candidates[former % len(candidates)] if former is not None and candidates \
            else version

    @rule(version=versions, former=st.none() | st.integers(0, 3))
    def archive(self, version: int, former: int | None) -> None:
        self._change_status(self._pick(version, former), "archived")

    @rule(version=versions, former=st.none() | st.integers(0, 3))
    def delete(self, version: int, former: int | None) -> None:
        self._change_status(self._pick(version, former), "deleted")

    @rule(description=st.none() | st.sampled_from(["", "churn risk"]),
          sensitive=st.none() | st.sampled_from([(), ("region",), ("age", "region")]),
          unsafe=st.none() | st.booleans())
    def configure(self, description: str | None, sensitive: tuple[str, ...] | None,
                  unsafe: bool | None) -> None:
        wanted = {"description": description, "sensitive_features": sensitive,
                  "allow_unsafe_formats": unsafe}
        changed = {k: v for k, v in wanted.items() if v is not None and self.config[k] != v}
        info = self.registry.configure_model(NAME, description=description,
                                             sensitive_features=sensitive,
                                             allow_unsafe_formats=unsafe)
        self.config.update(changed)
        if changed:
            self.events.append(("model.configure", NAME))
        assert (info.description, info.sensitive_features, info.allow_unsafe_formats) == (
            self.config["description"], self.config["sensitive_features"],
            self.config["allow_unsafe_formats"])

    @rule(version=versions, allow_archived=st.booleans(), by_alias=st.booleans())
    def load(self, version: int, allow_archived: bool, by_alias: bool) -> None:
        if by_alias and "champion" in self.alias:
            version, ref = self.alias["champion"], f"{NAME}@champion"
        else:
            ref = f"{NAME}@{version}"
        status = self.status[version]
        if status == "deleted" or (status == "archived" and not allow_archived):
            with pytest.raises(kw.InvalidStateError):
                self.registry.load_model(ref, allow_archived=allow_archived)
            return
        loaded = self.registry.load_model(ref, allow_archived=allow_archived)
        original = self.models[self.source[version]]
        head = self.X.head(25)
        np.testing.assert_allclose(loaded.predict_proba(head), original.predict_proba(head))
        assert self.registry.load_profile(ref).n_rows == len(self.X)

    @rule()
    def missing_version(self) -> None:
        """Operations on a version that does not exist are refused and record nothing."""
        missing = len(self.status) + 1
        for call in (lambda: self.registry.set_alias(NAME, "challenger", missing),
                     lambda: self.registry.archive_version(NAME, missing),
                     lambda: self.registry.delete_version(NAME, missing),
                     lambda: self.registry.load_model(f"{NAME}@{missing}")):
            with pytest.raises(kw.VersionNotFoundError):
                call()

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def versions_and_aliases_match(self) -> None:
        if not self.status:
            return  # before the initial registration
        registry = self.registry
        rows = registry.list_versions(NAME, include_deleted=True)
        assert [v.version for v in rows] == list(range(1, len(self.status) + 1))
        assert {v.version: v.status for v in rows} == self.status
        assert [v.version for v in registry.list_versions(NAME)] == [
            v for v, s in sorted(self.status.items()) if s != "deleted"]
        for v in rows:
            assert registry.get_version(f"{NAME}@{v.version}").status == self.status[v.version]
            assert set(v.aliases) == {a for a, n in self.alias.items() if n == v.version}
        champions = [v.version for v in rows if "champion" in v.aliases]
        assert len(champions) <= 1
        assert champions == ([self.alias["champion"]] if "champion" in self.alias else [])
        info = registry.get_model(NAME)
        assert dict(info.aliases) == self.alias
        assert info.latest_version == len(self.status)
        assert (info.description, info.sensitive_features, info.allow_unsafe_formats) == (
            self.config["description"], self.config["sensitive_features"],
            self.config["allow_unsafe_formats"])
        if "champion" in self.alias:
            assert registry.get_version(NAME).version == self.alias["champion"]
        else:
            with pytest.raises(kw.AliasNotFoundError):
                registry.get_version(NAME)

    @invariant()
    def unservable_versions_never_load(self) -> None:
        for version, status in self.status.items():
            if status != "ready":
                with pytest.raises(kw.InvalidStateError):
                    self.registry.load_model(f"{NAME}@{version}")
            if status == "deleted":
                with pytest.raises(kw.InvalidStateError):
                    self.registry.load_model(f"{NAME}@{version}", allow_archived=True)

    @invariant()
    def artifacts_follow_the_versions(self) -> None:
        if not self.status:
            return
        assert self.ws is not None
        rows = self.registry.list_versions(NAME, include_deleted=True)
        live = {v.artifact_sha256 for v in rows if v.status != "deleted"}
        for v in rows:
            # A model file stays while any non-deleted version uses it; profiles always stay.
            assert self.ws.artifacts.exists(v.artifact_sha256) == (v.artifact_sha256 in live)
            assert self.ws.artifacts.exists(v.profile_sha256)

    @invariant()
    def audit_log_is_exactly_the_state_changes(self) -> None:
        assert self.ws is not None
        events = self.ws.audit.events()
        assert [(e.action, e.target) for e in events] == self.events
        assert {e.actor for e in events} <= {"prop"}
        verified = self.ws.audit.verify()
        assert verified.ok, verified
        assert verified.checked == len(self.events)
        if self.status:
            history = self.registry.alias_history(NAME)
            assert [(m.audit_seq, f"alias.{m.action}", f"{NAME}@{m.alias}") for m in history] \
                == [(e.seq, e.action, e.target) for e in events if e.action.startswith("alias.")]

    def check_all(self) -> None:
        """Every invariant, for driving the machine by hand."""
        self.versions_and_aliases_match()
        self.unservable_versions_never_load()
        self.artifacts_follow_the_versions()
        self.audit_log_is_exactly_the_state_changes()


class PostgresLifecycleMachine(LifecycleMachine):
    backend = "postgresql"


def _budget(examples: int, steps: int) -> settings:
    # No shrinking: every replay rebuilds a workspace, so shrinking a 30-step failure can take
    # minutes. The failing steps are printed as generated; add Phase.shrink to minimise them.
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    database=None, phases=[Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])


def test_random_lifecycles_on_sqlite() -> None:
    run_state_machine_as_test(LifecycleMachine, settings=_budget(30, 30))


@pytest.mark.postgresql
def test_random_lifecycles_on_postgresql() -> None:
    run_state_machine_as_test(PostgresLifecycleMachine, settings=_budget(6, 25))


@pytest.mark.parametrize("machine", [LifecycleMachine, pytest.param(
    PostgresLifecycleMachine, marks=pytest.mark.postgresql)])
def test_second_rollback_after_one_that_skipped_an_archived_version(
        machine: type[LifecycleMachine]) -> None:
    """champion 1 -> 2 -> 3 -> 4, archive 3, rollback (to 2, skipping 3), rollback (to 1).

    The same machine and invariants as above, driven through one fixed sequence.
    """
    state = machine()
    try:
        state.first_versions(models=[0, 1, 1, 1], alias=None)
        for version in (1, 2, 3, 4):
            state.set_alias(alias="champion", back=4 - version, expect="any")
        state.archive(version=3, former=None)
        state.rollback(alias="champion", times=1)
        state.check_all()
        state.rollback(alias="champion", times=1)
        state.check_all()
        assert state.alias == {"champion": 1}
    finally:
        state.teardown()
