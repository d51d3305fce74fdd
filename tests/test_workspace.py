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
