"""The logbook commands of the CLI (``log``, ``feedback``, ``erase``), on real files."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from tests.cli_support import run, run_json

from keepwell.config import ENVIRONMENT_VARIABLES, load_settings
from keepwell.workspace import Workspace

MODEL = "employment"
SUBJECTS = [f"subject-{i:03d}" for i in range(5)]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)






def query(sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = run_json("log", "query", sql)
    return rows


def count(view: str, where: str = "true") -> int:
    return int(query(f"select count(*) as n from {view} where {where}")[0]["n"])


def log_predictions(folder: Path, model: str = MODEL, *, n: int = 10,
                    start: datetime = T0) -> list[str]:
    """Log ``n`` predictions through the Python API, one a minute from ``start``; subject
    ``SUBJECTS[i % 5]`` for row i."""
    features = pd.DataFrame({"age": [30.0 + i for i in range(n)],
                             "income": [1000.0 * (i + 1) for i in range(n)]})
    outputs = pd.DataFrame({"prediction": [i % 2 for i in range(n)],
                            "score": [i / n for i in range(n)]})
    with Workspace(load_settings(folder / "keepwell.yaml", environ={})) as ws:
        return ws.logbook.append_frame(
            model, 1, features, outputs, ts=[start + timedelta(minutes=i) for i in range(n)],
            latency_ms=[1.0 + i for i in range(n)],
            subjects=[SUBJECTS[i % len(SUBJECTS)] for i in range(n)])


def tail(n: int = 10) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = run_json("log", "tail", MODEL, "-n", str(n))
    return rows


@pytest.fixture
def logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """An initialised project as the current directory, with ten predictions logged."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEEPWELL_ACTOR", "tester")
    monkeypatch.chdir(tmp_path)
    run("init")
    return tmp_path, log_predictions(tmp_path)


# -- tail and feedback ------------------------------------------------------------------------


def test_tail_shows_the_last_predictions_with_labels_by_id_and_by_subject(
        logged: tuple[Path, list[str]]) -> None:
    folder, ids = logged
    rows = tail(3)
    assert [r["request_id"] for r in rows] == ids[7:]
    assert [r["label"] for r in rows] == [None, None, None]
    assert rows[0]["ts"] == (T0 + timedelta(minutes=7)).isoformat()
    assert (rows[0]["subject"], rows[0]["score"], rows[0]["age"]) == (SUBJECTS[2], 0.7, 37.0)

    pd.DataFrame({"request_id": ids[7:9], "label": [1, 0]}).to_csv(
        folder / "labels.csv", index=False)
    out = run_json("feedback", "labels.csv", "--model", MODEL)
    assert (out["accepted"], out["unmatched"], out["by"]) == (2, 0, "request id")

    # Row 9 is SUBJECTS[4]'s latest prediction at or before the label's time (row 4 is older).
    pd.DataFrame({"person": [SUBJECTS[4]], "y": [1],
                  "when": [T0 + timedelta(minutes=9, seconds=30)]}).to_parquet(
        folder / "late.parquet")
    out = run_json("feedback", "late.parquet", "--model", MODEL, "--label-column", "y",
                   "--subject-column", "person", "--time-column", "when")
    assert (out["accepted"], out["unmatched"], out["by"]) == (1, 0, "subject and time")

    assert [r["label"] for r in tail(3)] == [1, 0, 1]
    assert [r["label"] for r in tail(10)][:7] == [None] * 7
    assert [r["request_id"] for r in run_json("log", "tail", MODEL, "--version", "2")] == []
    assert len(run_json("log", "tail", MODEL, "--arm", "champion")) == 10

    human = run("log", "tail", MODEL, "-n", "2").stdout  # a Rich table, folded to 80 columns
    assert "label" in human
    assert "score" in human
    assert "No predictions of nobody logged." in run("log", "tail", "nobody").stdout


def test_feedback_by_subject_is_chosen_from_the_default_columns(
        logged: tuple[Path, list[str]]) -> None:
    folder, _ = logged
    pd.DataFrame({"subject": [SUBJECTS[0]], "event_ts": [T0.isoformat()], "label": [1]}).to_csv(
        folder / "labels.csv", index=False)
    result = run("feedback", "labels.csv", "--model", MODEL)
    assert "by subject and time; all matched" in result.stdout
    assert tail(10)[0]["label"] == 1


def test_the_latest_label_wins_and_unknown_ids_are_kept(logged: tuple[Path, list[str]]) -> None:
    folder, ids = logged
    pd.DataFrame({"request_id": [ids[0]], "label": [0]}).to_csv(folder / "a.csv", index=False)
    pd.DataFrame({"request_id": [ids[0]], "label": [1]}).to_csv(folder / "b.csv", index=False)
    run("feedback", "a.csv", "--model", MODEL)
    run("feedback", "b.csv", "--model", MODEL)
    assert tail(10)[0]["label"] == 1
    assert query(f"select label_count from labels where request_id = '{ids[0]}'") == [
        {"label_count": 2}]

    unknown = [str(uuid.uuid4()), str(uuid.uuid4())]
    pd.DataFrame({"request_id": [*unknown, ids[1]], "label": [1, 0, 1]}).to_csv(
        folder / "c.csv", index=False)
    out = run_json("feedback", "c.csv", "--model", MODEL)
    assert (out["accepted"], out["unmatched"]) == (3, 2)
    assert count("feedback") == 5
    assert {r["request_id"] for r in query(
        "select request_id::varchar as request_id from feedback f where not exists "
        "(select 1 from predictions p where p.request_id = f.request_id)")} == set(unknown)
    assert tail(10)[1]["label"] == 1

    human = run("feedback", "c.csv", "--model", MODEL).stdout
    assert "2 match no logged prediction yet" in human
    assert "kept" in human


def test_a_bad_feedback_file_is_refused_naming_what_is_missing(
        logged: tuple[Path, list[str]]) -> None:
    folder, ids = logged
    pd.DataFrame({"request_id": ids[:2], "y": [1, 0]}).to_csv(folder / "nolabel.csv",
                                                               index=False)
    result = run("feedback", "nolabel.csv", "--model", MODEL, code=2)
    assert "no column 'label'" in result.stderr
    assert "--label-column" in result.stderr
    error = run_json("feedback", "nolabel.csv", "--model", MODEL, code=2)["error"]
    assert error["code"] == "validation-failed"
    assert "'label'" in error["message"]

    pd.DataFrame({"id": ids[:1], "label": [1]}).to_csv(folder / "noid.csv", index=False)
    message = run("feedback", "noid.csv", "--model", MODEL, code=2).stderr
    assert "no column 'request_id'" in message
    assert "--id-column" in message
    out = run_json("feedback", "noid.csv", "--model", MODEL, "--id-column", "id")
    assert out["accepted"] == 1

    pd.DataFrame({"person": [SUBJECTS[0]], "label": [1]}).to_csv(folder / "notime.csv",
                                                                index=False)
    message = run("feedback", "notime.csv", "--model", MODEL, "--subject-column", "person",
                  code=2).stderr
    assert "no column 'event_ts'" in message
    assert "--time-column" in message
    message = run("feedback", "noid.csv", "--model", MODEL, "--id-column", "id",
                  "--subject-column", "person", code=2).stderr
    assert "not both" in message

    pd.DataFrame({"request_id": ["not-an-id", None], "label": [1, 0]}).to_csv(
        folder / "badid.csv", index=False)
    assert "rows have no 'request_id'" in run("feedback", "badid.csv", "--model", MODEL,
                                              code=2).stderr
    pd.DataFrame({"request_id": ["not-an-id"], "label": [1]}).to_csv(folder / "badid.csv",
                                                                    index=False)
    assert "not a UUID" in run("feedback", "badid.csv", "--model", MODEL, code=2).stderr
    (folder / "labels.txt").write_text("request_id,label\n")
    assert "Parquet" in run("feedback", "labels.txt", "--model", MODEL, code=2).stderr
    run("feedback", "missing.csv", "--model", MODEL, code=2)
    assert count("feedback") == 1


# -- query, stats, seal, retain ---------------------------------------------------------------


def test_query_prints_a_capped_table_json_or_csv(logged: tuple[Path, list[str]]) -> None:
    _, ids = logged
    rows = query("select request_id, ts, subject from predictions order by ts")
    assert [r["request_id"] for r in rows] == ids
    assert rows[0]["ts"] == T0.isoformat()
    assert query("select model, count(*) as n from predictions group by model") == [
        {"model": MODEL, "n": 10}]
    assert run_json("log", "query", "select count(*) as n from predictions", "--model",
                    "other") == [{"n": 0}]

    csv = run("log", "query", "select request_id, subject from predictions order by ts",
              "--csv").stdout
    frame = pd.read_csv(io.StringIO(csv))
    assert list(frame.columns) == ["request_id", "subject"]
    assert list(frame["request_id"]) == ids

    human = run("log", "query", "select range as i from range(60)").stdout
    assert "… and 10 more rows" in human
    assert "No rows." in run("log", "query", "select 1 as x where false").stdout

    error = run_json("log", "query", "selec nothing", code=2)["error"]
    assert error["code"] == "validation-failed"
    assert "syntax error" in error["message"]
    assert "one of --json and --csv" in run_json("log", "query", "select 1", "--csv",
                                                 code=2)["error"]["message"]


def test_stats_and_seal_keep_every_row(logged: tuple[Path, list[str]]) -> None:
    folder, ids = logged
    pd.DataFrame({"request_id": ids[:3], "label": [1, 0, 1]}).to_csv(folder / "l.csv",
                                                                    index=False)
    run("feedback", "l.csv", "--model", MODEL)
    stats = {(r["kind"], r["model"]): r for r in run_json("log", "stats")}
    assert {k: r["rows"] for k, r in stats.items()} == {
        ("predictions", MODEL): 10, ("feedback", MODEL): 3}
    assert stats["predictions", MODEL]["first"] == T0.isoformat()
    assert stats["predictions", MODEL]["last"] == (T0 + timedelta(minutes=9)).isoformat()
    assert "predictions" in run("log", "stats").stdout

    before = query("select * from predictions order by ts")
    sealed = run_json("log", "seal")
    assert (sealed["segments"], sealed["rows"], sealed["torn_tails"]) == (2, 13, 0)
    assert sealed["files"] >= 2
    assert list((folder / ".keepwell" / "logbook").rglob("*.parquet"))
    assert {(r["kind"], r["model"]): r for r in run_json("log", "stats")} == stats
    assert query("select * from predictions order by ts") == before
    assert [r["label"] for r in tail(10)][:3] == [1, 0, 1]
    assert run_json("log", "seal")["segments"] == 0
    assert "Sealed 0 segments" in run("log", "seal").stdout


def test_retain_needs_a_period_and_removes_old_days(logged: tuple[Path, list[str]]) -> None:
    folder, _ = logged
    result = run("log", "retain", code=2)
    assert "--days" in result.stderr
    assert "retention_days" in result.stderr
    assert run_json("log", "retain", code=2)["error"]["code"] == "validation-failed"

    log_predictions(folder, "old", n=3, start=datetime.now(UTC) - timedelta(days=10))
    out = run_json("log", "retain", "--days", "3")
    assert out["days"] == 3
    assert out["files_removed"] >= 1
    assert count("predictions", "model = 'old'") == 0
    assert count("predictions", f"model = '{MODEL}'") == 10

    config = folder / "keepwell.yaml"
    config.write_text(config.read_text().replace("# retention_days: 90", "retention_days: 5"))
    assert run_json("log", "retain")["days"] == 5
    assert count("predictions") == 10


# -- erasure ----------------------------------------------------------------------------------


@pytest.fixture
def registered(logged: tuple[Path, list[str]], classification_data: tuple[pd.DataFrame,
               pd.Series], fitted_pipeline: object) -> tuple[Path, list[str]]:
    """``employment@1`` registered with a subject column covering SUBJECTS[0..2] only."""
    folder, ids = logged
    X, y = classification_data
    people = [SUBJECTS[i % 3] for i in range(len(X))]
    sio.dump(fitted_pipeline, folder / "model.skops")
    X.assign(label=y, person=people).to_parquet(folder / "train.parquet")
    version = run_json("register", MODEL, "--model", "model.skops", "--data", "train.parquet",
                       "--target", "label", "--subjects", "person",
                       "--holdout", "train.parquet")
    assert "person" not in [c["name"] for c in version["signature"]["inputs"]]
    error = run_json("register", MODEL, "--model", "model.skops", "--data", "train.parquet",
                     "--target", "label", "--subjects", "who", code=2)["error"]
    assert "'who'" in error["message"]
    assert "--subjects" in error["message"]
    return folder, ids


def test_erase_removes_exactly_one_subject_and_names_the_trained_versions(
        registered: tuple[Path, list[str]]) -> None:
    folder, ids = registered
    gone = SUBJECTS[2]  # predictions 2 and 7
    pd.DataFrame({"request_id": [ids[2], ids[3], ids[7]], "label": [1, 1, 0]}).to_csv(
        folder / "l.csv", index=False)
    run("feedback", "l.csv", "--model", MODEL)
    run("log", "seal")  # the sealed Parquet files are rewritten ...
    pd.DataFrame({"subject": [gone, SUBJECTS[3]], "event_ts": [T0 + timedelta(hours=1)] * 2,
                  "label": [0, 1]}).to_parquet(folder / "l.parquet")
    run("feedback", "l.parquet", "--model", MODEL)  # ... and unsealed segments filtered

    per_subject = "select subject, count(*) as n from predictions group by 1 order by 1"
    before = {r["subject"]: r["n"] for r in query(per_subject)}
    assert before == dict.fromkeys(SUBJECTS, 2)
    assert count("feedback") == 5

    aborted = run("erase", "--subject", gone, input="n\n", code=1)
    assert "Aborted" in aborted.stderr
    assert count("predictions") == 10

    out = run_json("erase", "--subject", gone, "--reason", "erasure request 17", "--yes")
    assert (out["predictions"], out["feedback"]) == (2, 3)
    assert out["files_rewritten"] >= 2
    assert out["trained_versions"] == [f"{MODEL}@1"]
    assert out["subject_sha256"] == hashlib.sha256(gone.encode()).hexdigest()
    assert gone not in json.dumps(out)

    after = {r["subject"]: r["n"] for r in query(per_subject)}
    assert after == {s: n for s, n in before.items() if s != gone}
    assert count("feedback") == 2
    assert [r["request_id"] for r in tail(10)] == [i for k, i in enumerate(ids) if k % 5 != 2]
    run("log", "seal")
    assert count("predictions", f"subject = '{gone}'") == 0
    assert count("predictions") == 8

    assert run_json("audit", "verify")["ok"] is True
    [event] = run_json("audit", "list", "--action", "subject.erase")
    assert gone not in json.dumps(event)
    assert event["reason"] == "erasure request 17"
    assert event["after"]["subject_sha256"] == out["subject_sha256"]
    assert event["after"]["trained_versions"] == [f"{MODEL}@1"]

    human = run("erase", "--subject", SUBJECTS[4], "--yes").stdout
    assert "Removed 2 predictions" in human
    assert "hash" in human
    assert "No registered version was trained" in human
    human = run("erase", "--subject", SUBJECTS[0], "--yes").stdout
    assert f"{MODEL}@1" in human
    assert count("predictions") == 4


# -- a real process ---------------------------------------------------------------------------


def test_feedback_and_tail_run_as_processes(logged: tuple[Path, list[str]]) -> None:
    folder, ids = logged

    def keepwell(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "keepwell.cli", *args], cwd=folder,
                              capture_output=True, text=True, timeout=120)

    pd.DataFrame({"request_id": ids[-2:], "label": [0, 1]}).to_csv(folder / "l.csv",
                                                                  index=False)
    done = keepwell("feedback", "l.csv", "--model", MODEL, "--json")
    assert (done.returncode, json.loads(done.stdout)["accepted"]) == (0, 2), done.stderr
    tailed = keepwell("log", "tail", MODEL, "-n", "2", "--json")
    assert (tailed.returncode, tailed.stderr) == (0, "")
    assert [(r["request_id"], r["label"]) for r in json.loads(tailed.stdout)] == [
        (ids[-2], 0), (ids[-1], 1)]
