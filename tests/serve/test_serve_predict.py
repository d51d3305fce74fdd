"""Predictions over REST: shapes, routing by alias and version, logged before answered.

Issue 4, Build 1, 2 and 5: records or columns, one or many; the answer carries the request ids,
the version and the arm; every id of a 200 is in the logbook by the time the client has it;
``name@alias`` and ``name@version`` pick what answers; an unknown model, alias or version is a
404 problem.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import serve_support
from serve_support import MODEL, RECORD, MakeServed, Served, assert_problem, logged_ids, open_client

from keepwell.serve.schemas import FeedbackOut, PredictOut

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client
pytestmark = pytest.mark.anyio

RECORDS = [
    {"age": 23.0, "income": 18_000.0, "region": "north"},
    {"age": 41.5, "income": 52_000.5, "region": "south"},
    {"age": 67.0, "income": 9_100.0, "region": "east"},
    {"age": 35, "income": 31_000, "region": "north"},  # integers for float features
]


def _expected(model: Any, records: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    """What the fitted pipeline itself says for ``records``."""
    frame = pd.DataFrame(records).astype({"age": float, "income": float})
    frame["region"] = pd.Categorical(frame["region"], categories=["east", "north", "south"])
    return model.predict(frame).tolist(), model.predict_proba(frame)[:, 1].tolist()


async def _predict(client: httpx.AsyncClient, served: Served, body: Any, ref: str = MODEL,
                   role: str = "predictor") -> httpx.Response:
    return await client.post(f"/v1/models/{ref}/predict", json=body, headers=served.auth(role))


async def test_one_record(served: Served, client: httpx.AsyncClient,
                          fitted_pipeline: Any) -> None:
    response = await _predict(client, served, {"inputs": [RECORD]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    out = PredictOut.model_validate(response.json())
    assert (out.model, out.version, out.arm) == (MODEL, 1, "champion")
    assert len(out.request_ids) == 1
    predictions, scores = _expected(fitted_pipeline, [RECORD])
    assert out.predictions == predictions
    assert out.scores == pytest.approx(scores, rel=1e-12)
    row = served.ws.logbook.predictions(MODEL).to_pylist()
    assert len(row) == 1
    assert str(row[0]["request_id"]) == out.request_ids[0]
    assert (row[0]["version"], row[0]["arm"], row[0]["prediction"]) == (1, "champion",
                                                                        predictions[0])
    assert (row[0]["age"], row[0]["income"], row[0]["region"]) == (31.5, 25_000.0, "north")


async def test_records_and_columns_give_the_same_answers(served: Served,
                                                         client: httpx.AsyncClient,
                                                         fitted_pipeline: Any) -> None:
    as_records = await _predict(client, served, {"inputs": RECORDS})
    columns = {name: [r[name] for r in RECORDS] for name in RECORD}
    as_columns = await _predict(client, served, {"inputs": columns})
    assert as_records.status_code == as_columns.status_code == 200
    a, b = (PredictOut.model_validate(r.json()) for r in (as_records, as_columns))
    predictions, scores = _expected(fitted_pipeline, RECORDS)
    for out in (a, b):
        assert out.predictions == predictions
        assert out.scores == pytest.approx(scores, rel=1e-12)
        assert len(out.request_ids) == len(set(out.request_ids)) == len(RECORDS)
    assert not set(a.request_ids) & set(b.request_ids)
    assert set(logged_ids(served.ws)) == set(a.request_ids) | set(b.request_ids)


async def test_every_200_is_in_the_log_when_the_client_has_it(served: Served,
                                                             client: httpx.AsyncClient) -> None:
    """Logged before answered: the log is read the moment each answer arrives, while other
    requests are still in flight."""
    rng = np.random.default_rng(3)

    async def one(i: int) -> tuple[list[str], list[str]]:
        body = {"inputs": [{"age": float(rng.integers(18, 90)), "income": 1000.0 * i,
                            "region": "east"} for _ in range(1 + i % 3)]}
        response = await _predict(client, served, body)
        assert response.status_code == 200, response.text
        ids = response.json()["request_ids"]
        return ids, logged_ids(served.ws)  # read right away, before anything else runs

    results = await asyncio.gather(*(one(i) for i in range(24)))
    for ids, logged_then in results:
        assert set(ids) <= set(logged_then)
    everything = [i for ids, _ in results for i in ids]
    assert sorted(logged_ids(served.ws)) == sorted(everything)  # each once, nothing else


async def test_subjects_are_logged_with_their_records(served: Served,
                                                      client: httpx.AsyncClient) -> None:
    response = await _predict(client, served, {"inputs": RECORDS[:2], "subjects": ["s-1", None]})
    assert response.status_code == 200, response.text
    rows = served.ws.logbook.predictions(MODEL).to_pylist()
    by_id = {str(r["request_id"]): r["subject"] for r in rows}
    ids = response.json()["request_ids"]
    assert by_id[ids[0]] == "s-1"
    assert by_id[ids[1]] is None


async def test_alias_and_version_routing(make_served: MakeServed) -> None:
    served = make_served(versions=3, champion=1, challenger=2)
    async with open_client(served.app) as client:
        cases = {MODEL: (1, "champion"), f"{MODEL}@champion": (1, "champion"),
                 f"{MODEL}@challenger": (2, "challenger"), f"{MODEL}@3": (3, None),
                 f"{MODEL}@1": (1, None)}
        for ref, (version, arm) in cases.items():
            response = await _predict(client, served, {"inputs": [RECORD]}, ref)
            assert response.status_code == 200, (ref, response.text)
            out = response.json()
            assert out["version"] == version, ref
            if arm is not None:
                assert out["arm"] == arm, ref
            logged = served.ws.logbook.predictions(MODEL, columns=["request_id", "version"])
            assert dict(zip(map(str, logged.column("request_id").to_pylist()),
                            logged.column("version").to_pylist(),
                            strict=True))[out["request_ids"][0]] == version


async def test_an_alias_move_is_picked_up_without_a_restart(served: Served,
                                                            client: httpx.AsyncClient) -> None:
    assert (await _predict(client, served, {"inputs": [RECORD]})).json()["version"] == 1
    served.ws.registry.set_alias(MODEL, "champion", 2)
    assert (await _predict(client, served, {"inputs": [RECORD]})).json()["version"] == 2
    served.ws.registry.set_alias(MODEL, "staging", 1)  # an alias created after start
    response = await _predict(client, served, {"inputs": [RECORD]}, f"{MODEL}@staging")
    assert response.json()["version"] == 1


@pytest.mark.parametrize(("ref", "code"), [
    ("nosuch", "model-not-found"),
    (f"{MODEL}@nosuch", "alias-not-found"),
    (f"{MODEL}@challenger", "alias-not-found"),  # a valid alias name that is not set
    (f"{MODEL}@9", "version-not-found"),
    ("nosuch@2", "model-not-found"),
])
async def test_unknown_model_alias_or_version_is_404(served: Served, client: httpx.AsyncClient,
                                                     ref: str, code: str) -> None:
    body = assert_problem(await _predict(client, served, {"inputs": [RECORD]}, ref), 404, code)
    assert body["instance"] == f"/v1/models/{ref}/predict"
    assert logged_ids(served.ws) == []


async def test_a_model_without_champion_is_404(make_served: MakeServed) -> None:
    served = make_served(versions=1, champion=None)
    async with open_client(served.app) as client:
        assert_problem(await _predict(client, served, {"inputs": [RECORD]}), 404,
                       "alias-not-found")


async def test_an_invalid_model_name_is_422(served: Served, client: httpx.AsyncClient) -> None:
    for ref in ("bad%20name", "x" * 200, "churn@-1", "churn@bad.alias", "churn@"):
        response = await _predict(client, served, {"inputs": [RECORD]}, ref)
        assert_problem(response, 422, "invalid-name")


async def test_an_archived_version_is_not_served(served: Served,
                                                 client: httpx.AsyncClient) -> None:
    served.ws.registry.archive_version(MODEL, 2)
    response = await _predict(client, served, {"inputs": [RECORD]}, f"{MODEL}@2")
    assert_problem(response, 409, "invalid-state")
    assert logged_ids(served.ws) == []




async def test_a_version_archived_while_loaded_is_not_served(served: Served,
                                                             client: httpx.AsyncClient) -> None:
    assert (await _predict(client, served, {"inputs": [RECORD]}, f"{MODEL}@2")).status_code == 200
    served.ws.registry.archive_version(MODEL, 2)
    response = await _predict(client, served, {"inputs": [RECORD]}, f"{MODEL}@2")
    assert response.status_code in (404, 409), response.text


# -- feedback ----------------------------------------------------------------------------------

async def test_feedback_by_request_id(served: Served, client: httpx.AsyncClient) -> None:
    ids = (await _predict(client, served, {"inputs": RECORDS[:2]})).json()["request_ids"]
    response = await client.post(f"/v1/models/{MODEL}/feedback",
                                 json={"labels": [1, 0], "request_ids": ids},
                                 headers=served.auth("predictor"))
    assert response.status_code == 200, response.text
    assert FeedbackOut.model_validate(response.json()) == FeedbackOut(accepted=2, unmatched=0)
    rows = served.ws.logbook.predictions(MODEL, with_labels=True).to_pylist()
    assert {str(r["request_id"]): r["label"] for r in rows} == {ids[0]: 1, ids[1]: 0}


async def test_feedback_for_an_unknown_id_is_kept_as_unmatched(served: Served,
                                                               client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/v1/models/{MODEL}/feedback",
        json={"labels": [1], "request_ids": ["01a21926-243a-77e5-9f06-20163a40becf"]},
        headers=served.auth("predictor"))
    assert response.json() == {"accepted": 1, "unmatched": 1}


@pytest.mark.parametrize(("body", "pointer"), [
    ({"labels": []}, "/labels"),
    ({"labels": [1], "extra": True}, "/extra"),
    ({"request_ids": ["x"]}, "/labels"),
    ({"labels": [1], "request_ids": "not-a-list"}, "/request_ids"),
])
async def test_bad_feedback_is_422_with_pointers(served: Served, client: httpx.AsyncClient,
                                                 body: dict[str, Any], pointer: str) -> None:
    response = await client.post(f"/v1/models/{MODEL}/feedback", json=body,
                                 headers=served.auth("predictor"))
    problem = assert_problem(response, 422)
    assert pointer in {e["pointer"] for e in problem["errors"]}




async def test_feedback_with_mixed_label_types_is_not_a_500(served: Served,
                                                            client: httpx.AsyncClient) -> None:
    ids = (await _predict(client, served, {"inputs": RECORDS[:2]})).json()["request_ids"]
    response = await client.post(f"/v1/models/{MODEL}/feedback",
                                 json={"labels": ["yes", 1.5], "request_ids": ids},
                                 headers=served.auth("predictor"))
    assert 200 <= response.status_code < 500, response.text




async def test_a_huge_version_number_is_not_a_500(make_served: MakeServed,
                                                  settings: Any) -> None:
    served = make_served(settings, versions=1)
    huge = 2**63
    async with open_client(served.app) as client:
        predict = await _predict(client, served, {"inputs": [RECORD]}, f"{MODEL}@{huge}")
        alias = await client.put(f"/v1/models/{MODEL}/aliases/champion", json={"version": huge},
                                 headers=served.auth())
    assert predict.status_code in (404, 422), predict.text
    assert alias.status_code in (404, 422), alias.text




async def test_feedback_for_an_unknown_model_is_404(served: Served,
                                                    client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/models/nosuch/feedback",
                                 json={"labels": [1],
                                       "request_ids": ["01a21926-243a-77e5-9f06-20163a40becf"]},
                                 headers=served.auth("predictor"))
    assert_problem(response, 404, "model-not-found")
    assert served.ws.logbook.feedback().num_rows == 0




async def test_unparseable_event_times_are_422(served: Served, client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/models/{MODEL}/feedback",
                                 json={"labels": [1, 0, 1], "subjects": ["a", "b", "c"],
                                       "event_ts": ["", "Y<x", "zz"]},
                                 headers=served.auth("predictor"))
    assert_problem(response, 422)
