"""Liveness, readiness and metrics (issue 4, Build 2 and 8; RELIABILITY A1, D4).

When the logbook cannot sync, a prediction is a 503 problem with ``Retry-After`` and never an
unlogged 200; ``/readyz`` turns 503 while ``/healthz`` stays 200. The sync failure is injected
at the logbook writer's storage seam (its ``fsync`` parameter), not by mocking the server.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import serve_support
from serve_support import MODEL, RECORD, MakeServed, Served, assert_problem, logged_ids, open_client

import keepwell as kw
from keepwell.config import Settings
from keepwell.logbook import Logbook
from keepwell.store.db import Database

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client
pytestmark = pytest.mark.anyio

PREDICT = f"/v1/models/{MODEL}/predict"


def _fsync_failing_after(good_calls: int) -> Callable[[int], None]:
    """An fsync that works ``good_calls`` times, then fails with EIO for ever."""
    calls = 0

    def fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls > good_calls:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)

    return fsync


def _with_failing_log(good_calls: int) -> Callable[[Settings], kw.Workspace]:
    def open_workspace(settings: Settings) -> kw.Workspace:
        ws = kw.Workspace(settings)
        ws.logbook = Logbook(settings.log_root, fsync=_fsync_failing_after(good_calls))
        return ws
    return open_workspace


async def test_healthz_and_readyz(served: Served, client: httpx.AsyncClient) -> None:
    alive = await client.get("/healthz")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "logbook": True}}


async def test_a_failed_log_sync_means_503_and_unready(make_served: MakeServed) -> None:
    """The segment is created (two good syncs: file and directory), the first record's sync
    fails: that request and every later one get 503, nothing was acknowledged."""
    served = make_served(workspace=_with_failing_log(good_calls=2))
    async with open_client(served.app) as client:
        assert (await client.get("/readyz")).status_code == 200
        first = await client.post(PREDICT, json={"inputs": [RECORD]}, headers=served.auth())
        body = assert_problem(first, 503, "logbook-unavailable")
        assert first.headers["retry-after"].isdigit()
        assert "sync" in body["detail"]
        more = await asyncio.gather(*(client.post(PREDICT, json={"inputs": [RECORD] * n},
                                                  headers=served.auth()) for n in range(1, 9)))
        for response in more:
            assert_problem(response, 503)
            assert "retry-after" in response.headers
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": True, "logbook": False}
        assert (await client.get("/healthz")).status_code == 200
        # everything else that does not write the log still answers
        assert (await client.get("/v1/models", headers=served.auth())).status_code == 200


async def test_a_log_that_cannot_sync_at_all_answers_503(make_served: MakeServed) -> None:
    """The very first sync (of a new segment) fails: 503, unready, nothing logged."""
    served = make_served(workspace=_with_failing_log(good_calls=0))
    async with open_client(served.app) as client:
        for _ in range(3):
            response = await client.post(PREDICT, json={"inputs": [RECORD]},
                                         headers=served.auth())
            assert_problem(response, 503)
            assert "retry-after" in response.headers
        assert (await client.get("/readyz")).status_code == 503
    assert logged_ids(served.ws) == []


async def test_an_unreachable_database_makes_readyz_fail(served: Served,
                                                         client: httpx.AsyncClient) -> None:
    served.ws.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")  # refused at once
    try:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] is False
        assert (await client.get("/healthz")).status_code == 200
    finally:
        served.ws.db.dispose()




async def test_readyz_503_is_the_documented_problem(make_served: MakeServed) -> None:
    served = make_served(workspace=_with_failing_log(good_calls=2))
    async with open_client(served.app) as client:
        await client.post(PREDICT, json={"inputs": [RECORD]}, headers=served.auth())
        ready = await client.get("/readyz")
    assert_problem(ready, 503)


# -- metrics --------------------------------------------------------------------------------

def _samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Prometheus text exposition: the samples of ``name`` by their label set."""
    out = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            out[labels] = float(match.group(2))
    return out


def _value(samples: dict[frozenset[tuple[str, str]], float], **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for k, v in samples.items() if wanted <= k)


async def test_metrics_count_requests_errors_batches_and_latency(
        make_served: MakeServed) -> None:
    served = make_served(versions=2, champion=1, challenger=2)
    async with open_client(served.app) as client:
        for ref, n in ((MODEL, 3), (f"{MODEL}@challenger", 2)):
            for _ in range(n):
                response = await client.post(f"/v1/models/{ref}/predict",
                                             json={"inputs": [RECORD] * 2},
                                             headers=served.auth())
                assert response.status_code == 200
        await client.post(PREDICT, json={"inputs": [{"age": "x"}]}, headers=served.auth())
        await client.post("/v1/models/nosuch/predict", json={"inputs": [RECORD]},
                          headers=served.auth())
        metrics = await client.get("/metrics", headers=served.auth("viewer"))
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    requests = _samples(text, "keepwell_requests_total")
    assert _value(requests, model=MODEL, version="1", arm="champion", status="200") == 3
    assert _value(requests, model=MODEL, version="2", arm="challenger", status="200") == 2
    errors = _samples(text, "keepwell_errors_total")
    assert _value(errors, model=MODEL, code="invalid-payload") == 1
    latency = _samples(text, "keepwell_request_latency_seconds_count")
    assert _value(latency, model=MODEL, version="1", arm="champion") == 3
    batches = _samples(text, "keepwell_batch_requests_sum")
    assert _value(batches, model=MODEL) == 5
    rows = _samples(text, "keepwell_batch_rows_sum")
    assert _value(rows, model=MODEL, version="2", arm="challenger") == 4
    logged = _samples(text, "keepwell_predlog_records_total")
    assert _value(logged, model=MODEL) == 10
    assert "keepwell_queue_depth" in text




async def test_unknown_model_names_leave_no_trace(served: Served,
                                                  client: httpx.AsyncClient) -> None:
    for i in range(20):
        response = await client.post(f"/v1/models/ghost{i}/predict",
                                     json={"inputs": [RECORD]}, headers=served.auth())
        assert response.status_code == 404
    text = (await client.get("/metrics", headers=served.auth())).text
    assert "ghost" not in text


def test_metrics_helpers_parse_labels() -> None:
    samples: dict[Any, float] = _samples('x_total{a="1",b="2"} 3.0\nx_total 4.0\n', "x_total")
    assert _value(samples, a="1") == 3.0
    assert _value(samples) == 7.0
