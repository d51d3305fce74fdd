"""``keepwell token``, ``traffic``, ``score`` and ``serve``, run for real in a project folder.

``serve`` runs as a real process on a free 127.0.0.1 port and is called over real HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import skops.io as sio
from tests.cli_support import run, run_json

from keepwell.config import ENVIRONMENT_VARIABLES, load_settings
from keepwell.workspace import Workspace

MODEL = "employment"
RECORD = {"age": 41.0, "income": 25_000.0, "region": "north"}






def words(text: str) -> str:
    """``text`` with its whitespace (and the line breaks of a folded table) made single."""
    return " ".join(text.split())


def logged(model: str = MODEL) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = run_json(
        "log", "query", "select request_id::varchar as request_id, arm, version "
        f"from predictions where model = '{model}'")
    return rows


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            classification_data: tuple[pd.DataFrame, pd.Series],
            fitted_pipeline: object) -> Path:
    """An initialised project folder (the current directory) with a skops model and data."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEEPWELL_ACTOR", "tester")
    monkeypatch.chdir(tmp_path)
    run("init")
    X, y = classification_data
    sio.dump(fitted_pipeline, tmp_path / "model.skops")
    X.assign(label=y).to_parquet(tmp_path / "train.parquet")
    return tmp_path


@pytest.fixture
def champion(project: Path) -> Path:
    """``employment@1`` registered as the champion."""
    run("register", MODEL, "--model", "model.skops", "--data", "train.parquet",
        "--target", "label", "--alias", "champion")
    return project


# -- tokens -----------------------------------------------------------------------------------


def test_token_create_shows_the_secret_once_and_revoke_ends_it(project: Path) -> None:
    created = run_json("token", "create", "ci", "--role", "predictor", "--reason", "for CI")
    assert set(created) == {"name", "role", "token"}
    assert (created["name"], created["role"]) == ("ci", "predictor")
    secret = created["token"]

    human = run("token", "create", "dashboard", "--role", "viewer")
    other = human.stdout.strip()  # stdout holds the secret alone: $(keepwell token create ...)
    assert other.startswith("kw_")
    assert other != secret
    assert "cannot be shown again" in human.stderr
    assert other not in human.stderr

    with Workspace(load_settings()) as ws:
        principal = ws.tokens.authenticate(secret)
        assert principal is not None
        assert (principal.name, principal.role) == ("ci", "predictor")
        viewer = ws.tokens.authenticate(other)
        assert viewer is not None
        assert viewer.role == "viewer"

    listed = run_json("token", "list")
    assert [(t["name"], t["role"], t["revoked_at"]) for t in listed] == [
        ("ci", "predictor", None), ("dashboard", "viewer", None)]
    table = run("token", "list").stdout
    assert "dashboard" in table
    assert secret not in table
    assert secret not in json.dumps(listed)

    revoked = run_json("token", "revoke", "ci", "--reason", "rotated")
    assert revoked["revoked_at"] is not None
    with Workspace(load_settings()) as ws:
        assert ws.tokens.authenticate(secret) is None
        assert ws.tokens.authenticate(other) is not None
    assert [t["revoked_at"] is not None for t in run_json("token", "list")] == [True, False]
    actions = [e["action"] for e in run_json("audit", "list", "--action", "token.revoke")]
    assert actions == ["token.revoke"]

    error = run_json("token", "create", "ci", "--role", "admin", code=2)["error"]
    assert "exists" in error["message"]
    assert "no token named 'nobody'" in run("token", "revoke", "nobody", code=2).stderr
    assert "Invalid value" in run("token", "create", "x", "--role", "root", code=2).output


# -- traffic ----------------------------------------------------------------------------------


def test_traffic_set_and_show_with_validation(champion: Path) -> None:
    assert run_json("traffic", "show", MODEL) == {
        "model": MODEL, "kind": "champion", "share": 0.0, "challenger_alias": "challenger"}
    assert "every request goes to employment@champion" in run("traffic", "show", MODEL).stdout

    message = run("traffic", "set", MODEL, "--kind", "ab", "--share", "0.2", code=2).stderr
    assert "employment@challenger is not set" in message
    error = run_json("traffic", "set", MODEL, "--kind", "shadow", "--challenger-alias", "rival",
                     code=2)["error"]
    assert "employment@rival is not set" in error["message"]

    run("alias", "set", MODEL, "challenger", "1")
    assert "between 0 and 1" in run("traffic", "set", MODEL, "--kind", "canary", "--share",
                                    "1.5", code=2).stderr
    assert "between 0 and 1" in run("traffic", "set", MODEL, "--kind", "ab", "--share", "-0.1",
                                    code=2).stderr
    assert "needs a share above 0" in run("traffic", "set", MODEL, "--kind", "ab", "--share",
                                          "0", code=2).stderr
    assert "needs --share" in run("traffic", "set", MODEL, "--kind", "ab", code=2).stderr
    assert "takes no share" in run("traffic", "set", MODEL, "--kind", "shadow", "--share",
                                   "0.5", code=2).stderr
    assert "Invalid value" in run("traffic", "set", MODEL, "--kind", "split", code=2).output
    assert "no model" in run("traffic", "show", "nobody", code=2).stderr.lower()
    assert run_json("traffic", "show", MODEL)["kind"] == "champion"  # nothing changed

    done = run_json("traffic", "set", MODEL, "--kind", "ab", "--share", "0.25",
                    "--reason", "try v1 as challenger")
    assert done == {"model": MODEL, "kind": "ab", "share": 0.25,
                    "challenger_alias": "challenger"}
    assert run_json("traffic", "show", MODEL) == done
    assert "25.0% of requests go to employment@challenger" in words(
        run("traffic", "show", MODEL).stdout)
    human = words(run("traffic", "set", MODEL, "--kind", "shadow").stdout)
    assert "employment@challenger also scores every request" in human
    assert run_json("traffic", "show", MODEL)["kind"] == "shadow"

    events = run_json("audit", "list", "--action", "traffic.set")
    assert [(e["reason"], e["after"]["kind"]) for e in events] == [
        ("try v1 as challenger", "ab"), ("", "shadow")]


# -- score ------------------------------------------------------------------------------------


def test_score_a_parquet_and_a_csv_file(champion: Path,
                                        classification_data: tuple[pd.DataFrame, pd.Series]
                                        ) -> None:
    X, _ = classification_data
    X.assign(row=range(len(X))).to_parquet(champion / "in.parquet")
    X.to_csv(champion / "in.csv", index=False)

    report = run_json("score", MODEL, "in.parquet", "out.parquet", "--chunk-rows", "150")
    # 400 rows by 150: 18, 150, 150, 64, 18 (small first and last chunks)
    assert (report["model"], report["version"], report["rows"], report["chunks"]) == (
        MODEL, 1, len(X), 5)
    out = pd.read_parquet(champion / "out.parquet")
    assert len(out) == len(X)
    assert {"request_id", "prediction", "score"} <= set(out.columns)
    assert out["row"].tolist() == list(range(len(X)))  # input columns carried, in order
    assert out["score"].between(0, 1).all()

    result = run("score", f"{MODEL}@1", "in.csv", "out.csv")
    assert f"Scored {len(X)} rows of in.csv with employment@1" in result.stdout
    assert f"{len(X)}/{len(X)}" in result.stderr  # the progress bar, finished
    csv_out = pd.read_csv(champion / "out.csv")
    assert len(csv_out) == len(X)
    assert {"request_id", "prediction", "score"} <= set(csv_out.columns)

    rows = logged()
    assert len(rows) == 2 * len(X)
    assert {r["arm"] for r in rows} == {"batch"}
    assert {r["request_id"] for r in rows} == set(out["request_id"]) | set(
        csv_out["request_id"])


def test_score_refuses_what_it_cannot_score(champion: Path,
                                            classification_data: tuple[pd.DataFrame, pd.Series]
                                            ) -> None:
    X, _ = classification_data
    X.drop(columns=["income"]).to_parquet(champion / "partial.parquet")
    X.to_parquet(champion / "in.parquet")
    (champion / "in.txt").write_text("age,income,region\n1,2,north\n")
    (champion / "broken.parquet").write_bytes(b"not parquet")

    assert "income" in run("score", MODEL, "partial.parquet", "o.parquet", code=2).stderr
    assert ".parquet or .csv" in run("score", MODEL, "in.txt", "o.parquet", code=2).stderr
    assert "output must be .parquet or .csv" in run("score", MODEL, "in.parquet", "o.json",
                                                    code=2).stderr
    error = run_json("score", MODEL, "broken.parquet", "o.parquet", code=2)["error"]
    assert "cannot score broken.parquet" in error["message"]
    assert run_json("score", f"{MODEL}@rival", "in.parquet", "o.parquet",
                    code=2)["error"]["code"]
    assert not (champion / "o.parquet").exists()
    assert logged() == []


# -- serve ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_tmp(tmp_path: Path) -> Path:
    """TMPDIR of the server process: where its metrics folder goes."""
    folder = tmp_path / "server-tmp"
    folder.mkdir()
    return folder


def start_server(folder: Path, tmp: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    with (folder / "serve.out").open("wb") as out, (folder / "serve.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "keepwell.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), *args],
            cwd=folder, stdout=out, stderr=err, env={**os.environ, "TMPDIR": str(tmp)})


def wait_until_healthy(process: subprocess.Popen[bytes], base: str, folder: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("keepwell serve exited early:\n"
                        + (folder / "serve.err").read_text(errors="replace"))
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("keepwell serve did not answer /healthz in time")


@pytest.fixture
def stop_on_failure() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_predictions_and_metrics_and_stops_on_sigterm(
        champion: Path, server_tmp: Path, workers: int,
        stop_on_failure: list[subprocess.Popen[bytes]]) -> None:
    token = run_json("token", "create", "client", "--role", "predictor")["token"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(champion, server_tmp, port, "--workers", str(workers), "--json")
    stop_on_failure.append(process)
    wait_until_healthy(process, base, champion)

    metrics_dirs = list(server_tmp.glob("keepwell-metrics-*"))
    if workers > 1:  # one private folder for the workers' metrics files
        assert len(metrics_dirs) == 1
        assert stat.S_IMODE(metrics_dirs[0].stat().st_mode) == 0o700
    else:
        assert metrics_dirs == []

    auth = {"Authorization": f"Bearer {token}"}
    url = f"{base}/v1/models/{MODEL}/predict"
    ids = []
    for _ in range(6):  # a new connection each: with two workers, either may answer
        response = httpx.post(url, json={"inputs": [RECORD]}, headers=auth, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["version"], body["arm"]) == (MODEL, 1, "champion")
        assert len(body["predictions"]) == 1
        ids.extend(body["request_ids"])
    assert httpx.post(url, json={"inputs": [RECORD]}, timeout=30).status_code == 401

    assert httpx.get(f"{base}/metrics", timeout=30).status_code == 401
    metrics = httpx.get(f"{base}/metrics", headers=auth, timeout=30)
    assert metrics.status_code == 200
    samples = [line for line in metrics.text.splitlines()
               if line.startswith("keepwell_requests_total{")]
    assert samples, metrics.text
    assert sum(float(line.rsplit(" ", 1)[1]) for line in samples) == 6  # every worker's

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=15)
    assert time.monotonic() - started < 10
    assert code in (0, -signal.SIGTERM)  # one worker: uvicorn re-raises SIGTERM once stopped

    stdout = (champion / "serve.out").read_text()
    assert json.loads(stdout) == {"url": base, "host": "127.0.0.1", "port": port,
                                  "workers": workers,
                                  "config_file": str(champion / "keepwell.yaml")}
    assert "Application startup complete" in (champion / "serve.err").read_text()  # stderr
    assert list(server_tmp.glob("keepwell-metrics-*")) == []  # removed on exit
    assert {r["request_id"] for r in logged()} == set(ids)  # logged before answered
