"""The workspace façade: kw.connect() and kw.register() with no configuration at all."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import keepwell as kw


def test_with_no_configuration_a_workspace_folder_holds_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fitted_pipeline: Any,
        classification_data: tuple[pd.DataFrame, pd.Series]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("KEEPWELL_CONFIG", "KEEPWELL_WORKSPACE", "KEEPWELL_DATABASE_URL",
                 "KEEPWELL_ARTIFACT_ROOT", "KEEPWELL_LOG_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEEPWELL_ACTOR", "notebook-user")
    v = kw.register("churn", fitted_pipeline, *classification_data, alias="champion")
    assert v.ref == "churn@1" and v.created_by == "notebook-user"
    workspace = tmp_path / ".keepwell"
    assert (workspace / "keepwell.db").is_file()
    assert any((workspace / "artifacts" / "objects").iterdir())
    assert stat.S_IMODE(workspace.stat().st_mode) == 0o700
    with kw.connect() as ws:
        assert ws.settings.database_url == f"sqlite:///{workspace / 'keepwell.db'}"
        assert ws.registry.get_version("churn").version == 1
        assert [e.actor for e in ws.audit.events()] == ["notebook-user"] * 2


def test_connect_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         postgres_url: str, fitted_pipeline: Any,
                                         classification_data: tuple[pd.DataFrame, pd.Series],
                                         ) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEPWELL_DATABASE_URL", postgres_url)
    monkeypatch.setenv("KEEPWELL_ARTIFACT_ROOT", str(tmp_path / "store"))
    kw.register("churn", fitted_pipeline, *classification_data)
    with kw.connect(actor="ops") as ws:
        assert ws.db.dialect == "postgresql"
        assert ws.actor == "ops"
        assert [m.name for m in ws.registry.list_models()] == ["churn"]
    assert (tmp_path / "store" / "objects").is_dir()
    assert not (tmp_path / ".keepwell" / "keepwell.db").exists()


def test_erasure_clears_the_logbook_audits_and_names_trained_versions(
        workspace: kw.Workspace, fitted_pipeline: Any,
        classification_data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = classification_data
    people = [f"person-{i % 40}" for i in range(len(X))]
    workspace.register("churn", fitted_pipeline, X, y, subjects=people)
    workspace.register("churn", fitted_pipeline, X.iloc[:20], y.iloc[:20],
                       subjects=people[:20])               # persons 0-19 only
    scores = fitted_pipeline.predict_proba(X)[:, 1]
    outputs = pd.DataFrame({"prediction": fitted_pipeline.predict(X), "score": scores})
    ids = workspace.logbook.append_frame("churn", 1, X, outputs, subjects=people)
    workspace.logbook.add_feedback("churn", y.tolist(), request_ids=ids)
    workspace.logbook.seal()
    later = workspace.logbook.append_frame("churn", 1, X.iloc[:40], outputs.iloc[:40],
                                           subjects=people[:40])  # unsealed rows too
    assert len(later) == 40
    per_person = sum(p == "person-25" for p in people)

    erased = workspace.erase("person-25", reason="GDPR request 17")

    assert erased.logbook.predictions == per_person + 1
    assert erased.logbook.feedback == per_person
    assert erased.trained_versions == ("churn@1",)
    total = workspace.logbook.query("SELECT count(*) AS n FROM predictions").column("n")
    assert total.to_pylist() == [len(X) + 40 - per_person - 1]
    left = workspace.logbook.query(
        "SELECT count(*) AS n FROM predictions WHERE subject = 'person-25'")
    assert left.column("n").to_pylist() == [0]
    event = workspace.audit.events(action="subject.erase")[0]
    assert event.reason == "GDPR request 17"
    assert "person-25" not in repr(event.to_dict())  # the audit log keeps only a hash
    assert event.after is not None and event.after["trained_versions"] == ["churn@1"]
    assert workspace.audit.verify().ok
