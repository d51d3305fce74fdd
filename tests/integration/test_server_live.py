"""The prediction server behind a real uvicorn on 127.0.0.1 (issue 4's must-shows; RELIABILITY
C6, I1, I4, S8, S14).

Each test starts ``uvicorn.Server`` in a thread of the test process, on a port the kernel picks,
so the server and the test share one clock: that is what lets the hot-swap test compare a
response's send and receive times with the alias history's timestamps.

- Hot swap under load: four clients send predictions for a few seconds while the champion moves
  through three versions over REST. No answer is a 5xx, and each answer's version was the
  champion at some moment between its send and its receive.
- Micro-batching: 64 concurrent single-record requests are answered, in fewer model calls.
- Bodies over the limit sent chunked (no Content-Length) get 413 before they are read whole.
- Schemathesis against the server's own OpenAPI: no 5xx, answers conform to the schema.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import keepwell as kw
from keepwell.access import PERMISSIONS
from keepwell.config import Settings
from keepwell.registry.outputs import _MODEL_CALLS
from keepwell.serve import create_app

MODEL = "churn"
RECORD = {"age": 31.5, "income": 25_000.0, "region": "north"}


# -- a live server ----------------------------------------------------------------------------

@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yield its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", http="h11",
                            ws="none", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()


def _populate(ws: kw.Workspace, model: Any, data: tuple[Any, Any], versions: int,
              **aliases: int) -> dict[str, str]:
    X, y = data
    for _ in range(versions):
        ws.registry.register(MODEL, model, X, y)
    for alias, version in aliases.items():
        ws.registry.set_alias(MODEL, alias, version)
    return {role: ws.tokens.create(f"{role}-token", role)[1] for role in PERMISSIONS}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings.for_workspace(tmp_path / "ws", actor="tester")


# -- C6: hot swap under load ------------------------------------------------------------------

LOAD_SECONDS = 7.0
CLIENTS = 4
MOVES = [(1.5, 2), (3.5, 3), (5.5, 1)]  # (seconds into the load, new champion)


@pytest.mark.slow
def test_champion_hot_swap_under_load(settings: Settings, fitted_pipeline: Any,
                                      classification_data: Any) -> None:
    ws = kw.Workspace(settings)
    try:
        tokens = _populate(ws, fitted_pipeline, classification_data, 3, champion=1)
        with live_server(create_app(settings, workspace=ws)) as url:
            answers, moves = asyncio.run(_load_while_moving(url, tokens))
        history = ws.registry.alias_history(MODEL, "champion")
        logged = ws.logbook.predictions(MODEL, columns=["request_id", "version", "arm"])
    finally:
        ws.close()

    # every move was made, in order, and each is in the history with its timestamp
    assert [m.to_version for m in history] == [1] + [v for _, v in MOVES]
    assert [status for status, *_ in moves] == [200] * len(MOVES)
    # A version reigned from its move's timestamp (taken before that commit) until the next
    # move's PUT had returned (that commit was done by then): a superset of the true reign.
    starts = [m.at.timestamp() for m in history]
    ends = [returned for _, _, returned in moves] + [float("inf")]
    starts[0] = float("-inf")
    reigns = list(zip([m.to_version for m in history], starts, ends, strict=True))

    statuses = [a["status"] for a in answers]
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
    assert len(answers) > 100, len(answers)  # it really was under load
    versions_seen = {a["version"] for a in answers}
    assert versions_seen == {1, 2, 3}
    for a in answers:
        assert any(v == a["version"] and start <= a["received"] and end >= a["sent"]
                   for v, start, end in reigns), (a, reigns)
    # the log agrees: each answer's record carries the version the client was told
    by_id = {str(r["request_id"]): (r["version"], r["arm"]) for r in logged.to_pylist()}
    for a in answers:
        assert by_id[a["request_id"]] == (a["version"], "champion")


async def _load_while_moving(url: str, tokens: dict[str, str]
                             ) -> tuple[list[dict[str, Any]], list[tuple[int, float, float]]]:
    answers: list[dict[str, Any]] = []
    moves: list[tuple[int, float, float]] = []
    limits = httpx.Limits(max_connections=CLIENTS + 1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.monotonic()

        async def load(i: int) -> None:
            n = 0
            while time.monotonic() - start < LOAD_SECONDS:
                n += 1
                body = {"inputs": [{**RECORD, "age": float(20 + (i * 7 + n) % 60)}]}
                sent = time.time()
                response = await client.post(f"/v1/models/{MODEL}/predict", json=body,
                                             headers=_bearer(tokens["predictor"]))
                received = time.time()
                answer = {"status": response.status_code, "sent": sent, "received": received}
                if response.status_code == 200:
                    out = response.json()
                    answer.update(version=out["version"], request_id=out["request_ids"][0])
                answers.append(answer)

        async def mover() -> None:
            for at, version in MOVES:
                await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                sent = time.time()
                response = await client.put(f"/v1/models/{MODEL}/aliases/champion",
                                            json={"version": version, "reason": "hot swap"},
                                            headers=_bearer(tokens["operator"]))
                moves.append((response.status_code, sent, time.time()))

        await asyncio.gather(mover(), *(load(i) for i in range(CLIENTS)))
    return answers, moves


# -- micro-batching ---------------------------------------------------------------------------

def _metric(text: str, name: str) -> float:
    """The sum of a Prometheus sample over all its label sets."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{[^}}]*\}})? (\S+)", line)
        if match:
            total += float(match.group(1))
    return total


@pytest.mark.slow
def test_concurrent_requests_are_batched(sqlite_settings: Settings, fitted_pipeline: Any,
                                         classification_data: Any) -> None:
    """Requests that queue while the model is busy are answered by fewer model calls.

    The test holds the model-call lock while the burst arrives, so the two batch workers each
    block on their first batch and the rest of the burst must wait in the queue (released
    once every request is queued or in a blocked batch): on a loaded machine the client may
    send too slowly for the 2 ms batching window to join anything, and this test is about
    what happens to requests that do meet in the queue.
    """
    settings = sqlite_settings  # default batching: max_batch 64, max_wait_ms 2
    ws = kw.Workspace(settings)
    try:
        tokens = _populate(ws, fitted_pipeline, classification_data, 1, champion=1)
        app = create_app(settings, workspace=ws)
        runtime, scoring = app.state.runtime, []  # the size of each batch taken to score
        score_batch = runtime._score_batch

        def counted(batch: list[Any]) -> Any:
            scoring.append(len(batch))
            return score_batch(batch)

        runtime._score_batch = counted
        with live_server(app) as url:
            bodies, metrics = asyncio.run(_burst(url, tokens, 64, scoring))
        logged = ws.logbook.predictions(MODEL, columns=["request_id"])
    finally:
        ws.close()
    assert len(bodies) == 64
    ids = [b["request_ids"][0] for b in bodies]
    assert sorted(map(str, logged.column("request_id").to_pylist())) == sorted(ids)
    calls = _metric(metrics, "keepwell_batch_requests_count")
    requests = _metric(metrics, "keepwell_batch_requests_sum")
    assert requests == 64
    # Two batches blocked on the lock, then everything queued behind them: fewer than 64
    # requests, taken by the first worker free in one batch (max_batch is 64).
    assert calls <= 3, metrics


async def _burst(url: str, tokens: dict[str, str], n: int, scoring: list[int]
                 ) -> tuple[list[dict[str, Any]], str]:
    limits = httpx.Limits(max_connections=n + 1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        viewer = _bearer(tokens["viewer"])
        # open the connections first, so that the burst itself is only requests
        await asyncio.gather(*(client.get("/healthz") for _ in range(n + 1)))
        _MODEL_CALLS.acquire()
        try:
            burst = asyncio.gather(*(
                client.post(f"/v1/models/{MODEL}/predict",
                            json={"inputs": [{**RECORD, "age": float(18 + i)}]},
                            headers=_bearer(tokens["predictor"])) for i in range(n)))
            deadline = time.monotonic() + 60
            while True:  # until every request is queued or in a batch blocked on the lock
                text = (await client.get("/metrics", headers=viewer)).text
                if _metric(text, "keepwell_queue_depth") + sum(scoring) >= n:
                    break
                assert time.monotonic() < deadline, (scoring, text)
                await asyncio.sleep(0.02)
        finally:
            _MODEL_CALLS.release()
        responses = await burst
        assert [r.status_code for r in responses] == [200] * n
        metrics = await client.get("/metrics", headers=viewer)
    return [r.json() for r in responses], metrics.text


# -- I4: chunked bodies over the limit --------------------------------------------------------

def _chunks(total: int, sent: list[int]) -> Iterator[bytes]:
    yield b'{"inputs": ['
    piece = (json.dumps(RECORD) + ",").encode() * 1000
    while sent[0] < total:
        sent[0] += len(piece)
        yield piece
    yield b"{}]}"


@pytest.mark.parametrize("path", [f"/v1/models/{MODEL}/predict", f"/v1/models/{MODEL}/feedback"])
def test_a_chunked_body_over_the_limit_is_413(sqlite_settings: Settings, fitted_pipeline: Any,
                                              classification_data: Any, path: str) -> None:
    ws = kw.Workspace(sqlite_settings)
    try:
        tokens = _populate(ws, fitted_pipeline, classification_data, 1, champion=1)
        with live_server(create_app(sqlite_settings, workspace=ws)) as url:
            sent = [0]
            response = httpx.post(url + path, content=_chunks(8 << 20, sent), timeout=60,
                                  headers={**_bearer(tokens["admin"]),
                                           "content-type": "application/json"})
            assert "content-length" not in response.request.headers
            assert response.request.headers["transfer-encoding"] == "chunked"
            assert response.status_code == 413, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/body-too-large")
            # the server still answers on a new connection
            ok = httpx.post(url + f"/v1/models/{MODEL}/predict", json={"inputs": [RECORD]},
                            headers=_bearer(tokens["admin"]))
            assert ok.status_code == 200
        assert ws.logbook.predictions(MODEL).num_rows == 1
    finally:
        ws.close()


def test_the_413_comes_before_the_body_is_read_whole(sqlite_settings: Settings,
                                                     fitted_pipeline: Any,
                                                     classification_data: Any) -> None:
    """A raw client streams a 64 MiB chunked body and watches for an answer while it sends:
    the 413 arrives long before the end (the server did not buffer it all first)."""
    ws = kw.Workspace(sqlite_settings)
    try:
        tokens = _populate(ws, fitted_pipeline, classification_data, 1, champion=1)
        with live_server(create_app(sqlite_settings, workspace=ws)) as url:
            port = int(url.rsplit(":", 1)[1])
            sent, answer = _stream_until_answered(port, tokens["admin"], 64 << 20)
    finally:
        ws.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 32 << 20, sent


def _stream_until_answered(port: int, token: str, total: int) -> tuple[int, bytes]:
    head = (f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"[1.0, 2.0, 3.0, 4.0]," * 3000
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b'4\r\n{"a"\r\n')
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return sent, answer




def test_a_chunked_body_over_the_limit_on_put_is_413(sqlite_settings: Settings,
                                                     fitted_pipeline: Any,
                                                     classification_data: Any) -> None:
    ws = kw.Workspace(sqlite_settings)
    try:
        tokens = _populate(ws, fitted_pipeline, classification_data, 1, champion=1)
        with live_server(create_app(sqlite_settings, workspace=ws)) as url:
            response = httpx.put(url + f"/v1/models/{MODEL}/aliases/champion",
                                 content=_chunks(4 << 20, [0]), timeout=60,
                                 headers={**_bearer(tokens["admin"]),
                                          "content-type": "application/json"})
    finally:
        ws.close()
    assert response.status_code == 413, response.text


# -- S8 over the wire -------------------------------------------------------------------------

def test_a_foreign_host_header_is_refused(sqlite_settings: Settings, fitted_pipeline: Any,
                                          classification_data: Any) -> None:
    ws = kw.Workspace(sqlite_settings)
    try:
        tokens = _populate(ws, fitted_pipeline, classification_data, 1, champion=1)
        with live_server(create_app(sqlite_settings, workspace=ws)) as url, \
                httpx.Client(base_url=url) as client:
            evil = client.get("/v1/models", headers={**_bearer(tokens["viewer"]),
                                                     "Host": "attacker.example"})
            fine = client.get("/v1/models", headers=_bearer(tokens["viewer"]))
            cross = client.get("/v1/models", headers={**_bearer(tokens["viewer"]),
                                                      "Origin": "https://evil.example"})
    finally:
        ws.close()
    assert evil.status_code == 400
    assert fine.status_code == 200
    assert cross.status_code == 200
    assert "access-control-allow-origin" not in cross.headers


# -- I1: Schemathesis -------------------------------------------------------------------------

OPERATIONS = [
    "GET /healthz", "GET /readyz", "GET /metrics",
    "POST /v1/models/{name}/predict", "POST /v1/models/{name}/feedback",
    "GET /v1/models", "GET /v1/models/{name}", "GET /v1/models/{name}/versions",
    "PUT /v1/models/{name}/aliases/{alias}", "POST /v1/models/{name}/rollback",
    "GET /v1/models/{name}/traffic", "PUT /v1/models/{name}/traffic",
]
EXAMPLES = 100


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One live server for the schemathesis tests: churn v1 champion, v2 challenger."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.normal(40, 12, 300), "income": rng.lognormal(10, 0.5, 300),
                      "region": pd.Categorical(rng.choice(["north", "south", "east"], 300))})
    y = pd.Series((rng.random(300) < 0.4).astype(int), name="label")
    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
        LogisticRegression()).fit(X, y)
    settings = Settings.for_workspace(tmp_path_factory.mktemp("schemathesis") / "ws",
                                      actor="tester")
    ws = kw.Workspace(settings)
    try:
        tokens = _populate(ws, model, (X, y), 2, champion=1, challenger=2)
        with live_server(create_app(settings, workspace=ws)) as url:
            yield url, tokens["admin"]
    finally:
        ws.close()


def test_the_schemathesis_list_is_the_schema(schema_server: tuple[str, str]) -> None:
    url, token = schema_server
    document = httpx.get(url + "/openapi.json", headers=_bearer(token)).json()
    found = [f"{method.upper()} {path}" for path, ops in document["paths"].items()
             for method in ops]
    assert sorted(found) == sorted(OPERATIONS)


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS)
def test_schemathesis(schema_server: tuple[str, str], operation: str) -> None:
    """Positive and negative data for one operation, half of it aimed at the real model:
    no 5xx, documented statuses and media types, bodies valid against the schema, and
    schema-violating data refused with a 4xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    url, token = schema_server
    auth = _bearer(token)
    schema = schemathesis.openapi.from_url(url + "/openapi.json", headers=auth)
    (op,) = [r.ok() for r in schema.get_all_operations() if r.ok().label == operation]
    names = {p.name for p in op.path_parameters}
    real = {k: v for k, v in {"name": MODEL, "alias": "champion"}.items() if k in names}
    calls: list[Any] = []

    def run(mode: GenerationMode) -> None:
        strategies = [op.as_strategy(generation_mode=mode)]
        if real:
            strategies.append(op.as_strategy(generation_mode=mode, path_parameters=real))
        checks = [not_a_server_error, response_schema_conformance, content_type_conformance,
                  status_code_conformance]
        if mode == GenerationMode.NEGATIVE:
            checks.append(negative_data_rejection)

        @given(case=st.one_of(strategies))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  report_multiple_bugs=False,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            calls.append(case)
            case.call_and_validate(base_url=url, headers=auth, checks=checks)

        try:
            check()
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE  # nothing invalid to send (no inputs)

    run(GenerationMode.POSITIVE)
    run(GenerationMode.NEGATIVE)
    assert calls
