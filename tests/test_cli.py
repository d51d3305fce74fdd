"""The ``keepwell`` command line, run for real in a temporary project folder."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from tests.cli_support import run, run_json

from keepwell.config import ENVIRONMENT_VARIABLES


class Canary:
    """Unpickling this creates the file at ``path``: the code a pickle may run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))






@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the current directory, with no KEEPWELL_* settings but the actor."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEEPWELL_ACTOR", "tester")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def initialised(project: Path) -> Path:
    run("init")
    return project


@pytest.fixture
def files(initialised: Path, classification_data: tuple[pd.DataFrame, pd.Series],
          fitted_pipeline: object) -> Path:
    """A skops model, its training data as Parquet and CSV, and a holdout set."""
    X, y = classification_data
    frame = X.assign(label=y)
    sio.dump(fitted_pipeline, initialised / "model.skops")
    frame.iloc[:300].to_parquet(initialised / "train.parquet")
    frame.iloc[:300].to_csv(initialised / "train.csv", index=False)
    frame.iloc[300:].to_parquet(initialised / "holdout.parquet")
    return initialised


def register(*extra: str, data: str = "train.parquet") -> Any:
    return run_json("register", "employment", "--model", "model.skops", "--data", data,
                    "--target", "label", *extra)


@pytest.fixture
def two_versions(files: Path) -> Path:
    register("--holdout", "holdout.parquet", "--reason", "first")
    register("--reason", "second", data="train.csv")
    return files


def champion() -> int | None:
    aliases: dict[str, int] = run_json("models", "show", "employment")["aliases"]
    return aliases.get("champion")


# -- init -------------------------------------------------------------------------------------


def test_init_writes_a_private_commented_config_and_workspace(project: Path) -> None:
    out = run_json("init")
    config = project / "keepwell.yaml"
    assert out["config_file"] == str(config)
    assert out["database"] == "sqlite"
    assert config.read_text().startswith("# keepwell configuration")
    assert "workspace: .keepwell" in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE((project / ".keepwell").stat().st_mode) == 0o700
    assert stat.S_IMODE((project / ".keepwell" / "keepwell.db").stat().st_mode) == 0o600
    [event] = run_json("audit", "list")
    assert (event["action"], event["actor"], event["reason"]) == (
        "workspace.init", "tester", "keepwell init")
    assert event["after"] == {"config_file": "keepwell.yaml", "database": "sqlite"}


def test_init_refuses_to_overwrite_without_force(initialised: Path) -> None:
    config = initialised / "keepwell.yaml"
    config.write_text("actor: someone\n")
    result = run("init", code=1)
    assert "already exists" in result.stderr
    assert "--force" in result.stderr
    assert config.read_text() == "actor: someone\n"
    assert run_json("init", code=1)["error"]["code"] == "already-exists"
    run("init", "--force")
    assert config.read_text().startswith("# keepwell configuration")


def test_db_upgrade_reports_the_head_revision(initialised: Path) -> None:
    out = run_json("db", "upgrade")
    assert out["current"] == out["head"] == out["previous"]
    assert "head" in run("db", "upgrade").stdout


def test_an_explicit_config_file_is_used(project: Path) -> None:
    run("--config", "other.yaml", "init")
    assert (project / "other.yaml").is_file()
    assert run_json("--config", "other.yaml", "models", "list") == []
    result = run("--config", "missing.yaml", "models", "list", code=2)
    assert result.stderr.startswith("error: configuration file 'missing.yaml' does not exist")


# -- registering and reading ------------------------------------------------------------------


def test_register_from_skops_and_parquet(files: Path) -> None:
    version = register("--holdout", "holdout.parquet", "--alias", "champion",
                       "--description", "who is employed", "--sensitive", "region",
                       "--reason", "first model")
    assert (version["model"], version["version"], version["flavor"]) == ("employment", 1, "skops")
    assert version["aliases"] == ["champion"]
    assert version["reason"] == "first model"
    assert set(version["metrics"]) >= {"accuracy"}

    [model] = run_json("models", "list")
    assert (model["name"], model["latest_version"], model["aliases"]) == (
        "employment", 1, {"champion": 1})
    shown = run_json("models", "show", "employment")
    assert shown["description"] == "who is employed"
    assert shown["sensitive_features"] == ["region"]
    assert [v["version"] for v in run_json("versions", "list", "employment")] == [1]

    assert "employment" in run("models", "list").stdout
    assert "who is employed" in run("models", "show", "employment").stdout
    assert "ready" in run("versions", "list", "employment").stdout


def test_register_from_csv_prints_the_new_version(files: Path) -> None:
    result = run("register", "employment", "--model", "model.skops", "--data", "train.csv",
                 "--target", "label")
    assert "Registered employment@1" in result.stdout
    assert run_json("versions", "list", "employment")[0]["signature"]


def test_register_refuses_unreadable_inputs(files: Path) -> None:
    (files / "train.txt").write_text("age,income\n")
    result = run("register", "m", "--model", "model.skops", "--data", "train.txt",
                 "--target", "label", code=2)
    assert "Parquet" in result.stderr
    error = run_json("register", "m", "--model", "model.skops", "--data", "train.csv",
                     "--target", "nope", code=2)["error"]
    assert error["code"] == "validation-failed"
    assert "nope" in error["message"]
    run("register", "m", "--model", "missing.skops", "--data", "train.csv", "--target", "label",
        code=2)
    assert run_json("models", "list") == []


def test_errors_are_one_line_on_stderr_or_json_on_stdout(initialised: Path) -> None:
    result = run("models", "show", "nobody", code=2)
    assert result.stdout == ""
    assert result.stderr.startswith("error: no model named 'nobody'")
    error = run_json("versions", "list", "nobody", code=2)["error"]
    assert error["code"] == "model-not-found"
    assert run_json("card", "bad name!", code=2)["error"]["code"] == "invalid-name"


# -- aliases and lifecycle --------------------------------------------------------------------


def test_alias_set_with_a_stale_expectation_is_refused(two_versions: Path) -> None:
    move = run_json("alias", "set", "employment", "champion", "1", "--expect", "none")
    assert (move["from_version"], move["to_version"]) == (None, 1)

    error = run_json("alias", "set", "employment", "champion", "2", "--expect", "none",
                     code=2)["error"]
    assert error["code"] == "alias-precondition-failed"
    assert champion() == 1
    result = run("alias", "set", "employment", "champion", "2", "--expect", "2", code=2)
    assert "someone moved it" in result.stderr
    assert champion() == 1
    run("alias", "set", "employment", "champion", "2", "--expect", "maybe", code=2)

    run("alias", "set", "employment", "champion", "2", "--expect", "1", "--reason", "better")
    assert champion() == 2
    history = run_json("alias", "history", "employment", "--alias", "champion")
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in history] == [
        (None, 1, ""), (1, 2, "better")]
    assert "better" in run("alias", "history", "employment").stdout


def test_rollback_moves_the_champion_back(two_versions: Path) -> None:
    run("alias", "set", "employment", "champion", "1")
    run("alias", "set", "employment", "champion", "2")
    move = run_json("rollback", "employment", "--reason", "v2 misbehaves")
    assert (move["action"], move["from_version"], move["to_version"]) == ("rollback", 2, 1)
    assert champion() == 1
    assert "nothing to roll back" in run("rollback", "employment", "--alias", "shadow",
                                         code=2).stderr


def test_archive_and_delete(two_versions: Path) -> None:
    assert run_json("archive", "employment", "1", "--reason", "old")["status"] == "archived"
    assert "Aborted" in run("delete", "employment", "2", input="n\n", code=1).stderr
    assert run_json("delete", "employment", "2", "--yes")["status"] == "deleted"
    statuses = {v["version"]: v["status"] for v in run_json("versions", "list", "employment")}
    assert statuses == {1: "archived"}
    everything = run_json("versions", "list", "employment", "--all")
    assert {v["version"]: v["status"] for v in everything} == {1: "archived", 2: "deleted"}
    assert run_json("archive", "employment", "2", code=2)["error"]["code"] == "invalid-state"


def test_model_card_as_markdown_html_and_file(two_versions: Path) -> None:
    markdown = run("card", "employment@1").stdout
    assert "employment" in markdown
    html = run_json("card", "employment@2", "--html")
    assert html["format"] == "html"
    assert "<" in html["content"]
    run("card", "employment@1", "--html", "--output", "card.html")
    assert "employment" in (two_versions / "card.html").read_text()
    assert run_json("card", "employment", code=2)["error"]["code"] == "alias-not-found"


# -- audit ------------------------------------------------------------------------------------


def test_audit_list_filters_and_verify_catches_tampering(two_versions: Path) -> None:
    events = run_json("audit", "list")
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["seq"] for e in run_json("audit", "list", "--limit", "2")] == [2, 3]
    assert [e["action"] for e in run_json("audit", "list", "--action", "workspace.init")] == [
        "workspace.init"]
    assert run_json("audit", "list", "--target", "employment@2")[0]["seq"] == 3
    assert run_json("audit", "verify") == {
        "ok": True, "checked": 3, "first_broken_seq": None, "problem": None}
    assert "intact" in run("audit", "verify").stdout

    with sqlite3.connect(two_versions / ".keepwell" / "keepwell.db") as db:
        db.execute("UPDATE audit_events SET reason='x' WHERE seq=2")
    db.close()

    result = run("audit", "verify", code=1)
    assert "event 2" in result.stderr
    verdict = run_json("audit", "verify", code=1)
    assert (verdict["ok"], verdict["first_broken_seq"]) == (False, 2)
    assert "event 2" in verdict["problem"]


# -- unsafe model files -----------------------------------------------------------------------


def test_a_pickle_is_refused_unopened_without_its_sha256(files: Path) -> None:
    canary = files / "canary"
    payload = pickle.dumps(Canary(str(canary)))
    (files / "model.pkl").write_bytes(payload)
    args = ["register", "evil", "--model", "model.pkl", "--data", "train.parquet",
            "--target", "label"]

    result = run(*args, code=2)
    assert "pickle" in result.stderr
    assert "trust" in result.stderr
    assert run_json(*args, code=2)["error"]["code"] == "unsafe-artifact"
    assert run_json(*args, "--trust-pickle", "0" * 64, code=2)["error"]["code"] == (
        "unsafe-artifact")
    assert not canary.exists()
    assert run_json("models", "list") == []


def test_a_pickle_is_registered_with_its_sha256(files: Path, fitted_pipeline: object) -> None:
    payload = pickle.dumps(fitted_pipeline)
    (files / "model.pkl").write_bytes(payload)
    version = run_json("register", "trusted", "--model", "model.pkl", "--data", "train.parquet",
                       "--target", "label", "--trust-pickle", hashlib.sha256(payload).hexdigest())
    assert (version["flavor"], version["version"]) == ("pickle", 1)
    assert run_json("models", "show", "trusted")["allow_unsafe_formats"] is True


# -- a real process ---------------------------------------------------------------------------


def test_the_cli_runs_as_a_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPWELL_")}

    def keepwell(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "keepwell.cli", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)

    assert keepwell("init").returncode == 0
    listed = keepwell("models", "list", "--json")
    assert (listed.returncode, json.loads(listed.stdout), listed.stderr) == (0, [], "")
    missing = keepwell("models", "show", "nobody")
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert missing.stderr.startswith("error: no model named 'nobody'")
    assert "Traceback" not in missing.stderr
    assert keepwell("audit", "verify").returncode == 0
