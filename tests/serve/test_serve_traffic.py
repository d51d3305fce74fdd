"""Traffic policies through the API (issue 4, Build 3): A/B, canary and shadow.

Policies are set over REST by an operator and picked up without a restart. A/B is sticky by
key (the same key always lands on the same arm and version) and splits a seeded set of 2,000
keys within a binomial tolerance; a canary's challenger keys are a subset of a larger share's;
under shadow, the champion answers every request and the logbook gains a ``shadow`` row per
request id, scored by the challenger. Each answer's version is the one its arm's alias named,
in the response and in the log, so no model call mixed versions.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

import httpx
import pandas as pd
import pytest
import serve_support
from serve_support import MODEL, RECORD, Served, assert_problem, logged_ids, open_client, pointers
from sklearn.linear_model import LogisticRegression

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client
pytestmark = pytest.mark.anyio

PREDICT = f"/v1/models/{MODEL}/predict"
N_KEYS = 2000


def _keys(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"user-{rng.getrandbits(64):016x}" for _ in range(n)]


async def _set_traffic(client: httpx.AsyncClient, served: Served, **policy: Any) -> None:
    response = await client.put(f"/v1/models/{MODEL}/traffic", json=policy,
                                headers=served.auth("operator"))
    assert response.status_code == 200, response.text


async def _route_all(client: httpx.AsyncClient, served: Served, keys: list[str | None],
                     concurrency: int = 50) -> list[dict[str, Any]]:
    """Send one single-record request per key, ``concurrency`` at a time; return the bodies."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(keys), concurrency):
        chunk = keys[start:start + concurrency]
        responses = await asyncio.gather(*(
            client.post(PREDICT, json={"inputs": [RECORD], **({"key": k} if k else {})},
                        headers=served.auth("predictor")) for k in chunk))
        for response in responses:
            assert response.status_code == 200, response.text
            out.append(response.json())
    return out


def _within_binomial(hits: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(hits - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def _logged_versions(served: Served) -> dict[str, tuple[str, int]]:
    table = served.ws.logbook.predictions(MODEL, columns=["request_id", "arm", "version"])
    return {str(r["request_id"]): (r["arm"], r["version"]) for r in table.to_pylist()}


@pytest.mark.slow
async def test_ab_split_is_sticky_and_within_tolerance(make_served: Any) -> None:
    served = make_served(versions=2, champion=1, challenger=2)
    keys = _keys(N_KEYS, seed=20261126)
    async with open_client(served.app) as client:
        await _set_traffic(client, served, kind="ab", share=0.5)
        first = await _route_all(client, served, list(keys))
        again = await _route_all(client, served, keys[:300])  # sticky: same arm, same version
        policy = (await client.get(f"/v1/models/{MODEL}/traffic",
                                   headers=served.auth("viewer"))).json()
    assert policy == {"kind": "ab", "share": 0.5, "challenger_alias": "challenger"}
    arms = {k: (b["arm"], b["version"]) for k, b in zip(keys, first, strict=True)}
    assert set(arms.values()) == {("champion", 1), ("challenger", 2)}
    for key, body in zip(keys[:300], again, strict=True):
        assert (body["arm"], body["version"]) == arms[key]
    challengers = sum(arm == "challenger" for arm, _ in arms.values())
    assert _within_binomial(challengers, N_KEYS, 0.5), challengers
    # the log agrees with every answer, and each arm's rows carry its alias's version
    logged = _logged_versions(served)
    for body in first + again:
        assert logged[body["request_ids"][0]] == (body["arm"], body["version"])
    assert len(logged) == N_KEYS + 300


async def test_canary_share_and_its_keys_are_a_subset(make_served: Any) -> None:
    served = make_served(versions=2, champion=1, challenger=2)
    keys = _keys(800, seed=7)
    async with open_client(served.app) as client:
        await _set_traffic(client, served, kind="canary", share=0.1)
        small = await _route_all(client, served, list(keys))
        await _set_traffic(client, served, kind="canary", share=0.3)
        larger = await _route_all(client, served, list(keys))
        await _set_traffic(client, served, kind="champion")
        back = await _route_all(client, served, keys[:100])
    in_small = {k for k, b in zip(keys, small, strict=True) if b["arm"] == "challenger"}
    in_larger = {k for k, b in zip(keys, larger, strict=True) if b["arm"] == "challenger"}
    assert _within_binomial(len(in_small), len(keys), 0.1), len(in_small)
    assert _within_binomial(len(in_larger), len(keys), 0.3), len(in_larger)
    assert in_small < in_larger  # raising the share only adds keys to the challenger
    assert all(b["version"] == (2 if b["arm"] == "challenger" else 1) for b in small + larger)
    assert all((b["arm"], b["version"]) == ("champion", 1) for b in back)


async def test_requests_without_a_key_are_split_at_random(make_served: Any) -> None:
    served = make_served(versions=2, champion=1, challenger=2)
    async with open_client(served.app) as client:
        await _set_traffic(client, served, kind="ab", share=0.5)
        bodies = await _route_all(client, served, [None] * 400)
    challengers = sum(b["arm"] == "challenger" for b in bodies)
    assert _within_binomial(challengers, 400, 0.5), challengers


async def test_explicit_alias_or_version_bypasses_the_split(make_served: Any) -> None:
    served = make_served(versions=2, champion=1, challenger=2)
    async with open_client(served.app) as client:
        await _set_traffic(client, served, kind="ab", share=1.0)  # everything to challenger
        for ref, expected in ((MODEL, (2, "challenger")), (f"{MODEL}@challenger",
                                                           (2, "challenger")),
                              (f"{MODEL}@1", (1, "champion"))):
            response = await client.post(f"/v1/models/{ref}/predict",
                                         json={"inputs": [RECORD], "key": "k"},
                                         headers=served.auth())
            body = response.json()
            assert (body["version"], body["arm"]) == expected, (ref, body)




async def test_explicit_champion_is_the_champion_under_ab(make_served: Any) -> None:
    served = make_served(versions=2, champion=1, challenger=2)
    async with open_client(served.app) as client:
        await _set_traffic(client, served, kind="ab", share=1.0)
        response = await client.post(f"/v1/models/{MODEL}@champion/predict",
                                     json={"inputs": [RECORD], "key": "k"},
                                     headers=served.auth())
    assert response.json()["version"] == 1


async def test_shadow_answers_from_the_champion_and_logs_the_challenger(
        make_served: Any, classification_data: Any) -> None:
    served = make_served(versions=2, champion=1, challenger=None)
    X, y = classification_data
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    other = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
        LogisticRegression(C=0.001)).fit(X, y)
    served.ws.registry.register(MODEL, other, X, y, alias="challenger")  # version 3
    records = [{"age": float(a), "income": 1000.0 * a, "region": r}
               for a, r in zip(range(20, 80, 3), ["north", "south", "east"] * 7, strict=False)]
    async with open_client(served.app) as client:
        await _set_traffic(client, served, kind="shadow")
        responses = await asyncio.gather(*(
            client.post(PREDICT, json={"inputs": [r]}, headers=served.auth()) for r in records))
        batch = await client.post(PREDICT, json={"inputs": records[:5]}, headers=served.auth())
        bodies = [r.json() for r in [*responses, batch]]
        assert all((b["arm"], b["version"]) == ("champion", 1) for b in bodies)
        ids = [i for b in bodies for i in b["request_ids"]]
        shadow: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # shadow scoring runs after the answer; wait for it
            shadow = served.ws.logbook.predictions(MODEL, arm="shadow").to_pylist()
            if len(shadow) >= len(ids):
                break
            await asyncio.sleep(0.05)
    assert sorted(logged_ids(served.ws, arm="champion")) == sorted(ids)
    assert sorted(str(r["request_id"]) for r in shadow) == sorted(ids)
    assert {r["version"] for r in shadow} == {3}
    frame = pd.DataFrame([{k: r[k] for k in ("age", "income", "region")} for r in shadow])
    frame["region"] = pd.Categorical(frame["region"], categories=["east", "north", "south"])
    assert [r["score"] for r in shadow] == pytest.approx(
        other.predict_proba(frame)[:, 1].tolist(), rel=1e-12)
    champion_scores = {b["request_ids"][0]: b["scores"][0] for b in bodies[:-1]}
    shadow_scores = {str(r["request_id"]): r["score"] for r in shadow}
    assert any(abs(champion_scores[i] - shadow_scores[i]) > 1e-3 for i in champion_scores)


@pytest.mark.parametrize(("policy", "pointer"), [
    ({"kind": "ab", "share": 0.0}, None),
    ({"kind": "ab", "share": 1.5}, "/share"),
    ({"kind": "shadow", "share": 0.5}, None),
    ({"kind": "split"}, "/kind"),
    ({"kind": "ab", "share": 0.5, "challenger_alias": "nosuch"}, None),
    ({"kind": "ab", "share": 0.5, "challenger_alias": "bad alias"}, None),
    ({"kind": "champion", "extra": 1}, "/extra"),
    ({}, "/kind"),
])
async def test_invalid_policies_are_422_and_change_nothing(
        make_served: Any, policy: dict[str, Any], pointer: str | None) -> None:
    served = make_served(versions=2, champion=1, challenger=2)
    before = served.ws.audit.events()
    async with open_client(served.app) as client:
        response = await client.put(f"/v1/models/{MODEL}/traffic", json=policy,
                                    headers=served.auth("operator"))
        body = assert_problem(response, 422)
        if pointer is not None:
            assert pointer in pointers(body)
        current = await client.get(f"/v1/models/{MODEL}/traffic", headers=served.auth())
    assert current.json()["kind"] == "champion"
    assert served.ws.audit.events() == before


async def test_traffic_of_an_unknown_model_is_404(served: Served,
                                                  client: httpx.AsyncClient) -> None:
    for method, body in (("GET", None), ("PUT", {"kind": "champion"})):
        response = await client.request(method, "/v1/models/nosuch/traffic", json=body,
                                        headers=served.auth())
        assert_problem(response, 404, "model-not-found")
