"""Authentication and authorization of every route (RELIABILITY S5, S6; issue 4, Build 7).

S5 enumerates the application's routes *and* its OpenAPI paths, so a router added later
without auth is called here without anyone writing a test for it. S6 is a table: each role
against each action, where exactly the cells of ``keepwell.access.PERMISSIONS`` succeed.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
import serve_support
from fastapi.routing import APIRoute
from serve_support import (
    MODEL,
    RECORD,
    ROLES,
    MakeServed,
    Served,
    assert_problem,
    logged_ids,
    open_client,
)
from starlette.routing import Route

from keepwell.access import PERMISSIONS

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client
pytestmark = pytest.mark.anyio

PUBLIC = {"/healthz", "/readyz"}
# FastAPI's documentation routes: issue 4 says every route but the two probes needs a token.
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
PATH_VALUES = {"name": MODEL, "alias": "champion"}


def _endpoints(served: Served) -> set[tuple[str, str]]:
    """(method, path) of every route of the app and every operation of its OpenAPI."""
    found: set[tuple[str, str]] = set()
    for route in served.app.routes:
        if isinstance(route, APIRoute | Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, route.path))
    for path, operations in served.app.openapi()["paths"].items():
        found.update((method.upper(), path) for method in operations)
    return found


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def test_the_enumeration_sees_every_route(served: Served) -> None:
    """The list S5 walks is the app's, not one written here (the known routes are a floor)."""
    endpoints = _endpoints(served)
    assert {
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
        ("POST", "/v1/models/{name}/predict"), ("POST", "/v1/models/{name}/feedback"),
        ("GET", "/v1/models"), ("GET", "/v1/models/{name}"),
        ("GET", "/v1/models/{name}/versions"), ("PUT", "/v1/models/{name}/aliases/{alias}"),
        ("POST", "/v1/models/{name}/rollback"), ("GET", "/v1/models/{name}/traffic"),
        ("PUT", "/v1/models/{name}/traffic"),
    } <= endpoints
    openapi_paths = set(served.app.openapi()["paths"])
    route_paths = {r.path for r in served.app.routes if isinstance(r, APIRoute | Route)}
    assert openapi_paths <= route_paths


async def test_every_route_needs_a_token(served: Served) -> None:
    """S5: no credentials → 401 problem+json with a challenge, except /healthz and /readyz;
    a wrong scheme, an empty or a made-up token are no better than none."""
    endpoints = sorted(_endpoints(served))
    bad_headers: list[dict[str, str]] = [
        {}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "},
        {"Authorization": "Bearer kw_" + "A" * 43}, {"Authorization": "Bearer not-a-token"},
        {"Authorization": served.tokens["admin"]},  # the token without its scheme
    ]
    outcomes: dict[tuple[str, str], set[int]] = {}
    async with open_client(served.app) as client:
        for method, path in endpoints:
            if path in DOCS:
                continue  # checked on their own below (a known bug)
            for headers in bad_headers:
                response = await client.request(method, _url(path), headers=headers)
                outcomes.setdefault((method, path), set()).add(response.status_code)
                if path in PUBLIC:
                    assert response.status_code == 200, (method, path, response.text)
                    continue
                assert_problem(response, 401, "unauthenticated")
                assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert {p for (_, p), codes in outcomes.items() if codes == {200}} == PUBLIC


async def test_the_openapi_document_needs_a_token(served: Served) -> None:
    async with open_client(served.app) as client:
        assert_problem(await client.get("/openapi.json"), 401, "unauthenticated")
        document = await client.get("/openapi.json", headers=served.auth())
    assert document.status_code == 200


@pytest.mark.parametrize("path", sorted(DOCS - {"/openapi.json"}))
async def test_documentation_pages_do_not_exist(served: Served, path: str) -> None:
    # Swagger UI and ReDoc would load scripts from a CDN: the server does not offer them.
    async with open_client(served.app) as client:
        response = await client.get(path, headers=served.auth())
    assert_problem(response, 404, "not-found")


async def test_a_revoked_token_is_refused(served: Served) -> None:
    served.ws.tokens.revoke("predictor-token", reason="test")
    async with open_client(served.app) as client:
        for method, path, body in [("POST", f"/v1/models/{MODEL}/predict", {"inputs": [RECORD]}),
                                   ("GET", "/v1/models", None), ("GET", "/metrics", None)]:
            response = await client.request(method, path, json=body,
                                            headers=served.auth("predictor"))
            assert_problem(response, 401, "unauthenticated")
    assert logged_ids(served.ws) == []


@pytest.mark.slow
async def test_a_token_revoked_while_in_use_stops_within_the_cache_time(served: Served) -> None:
    """The authenticator caches answers for 5 s (documented): after that, 401."""
    async with open_client(served.app) as client:
        assert (await client.get("/v1/models", headers=served.auth("viewer"))).status_code == 200
        served.ws.tokens.revoke("viewer-token")
        await asyncio.sleep(5.2)
        response = await client.get("/v1/models", headers=served.auth("viewer"))
        assert_problem(response, 401, "unauthenticated")


async def test_unauthenticated_calls_change_nothing(served: Served) -> None:
    """A state-changing call without a token (even with a valid body) leaves no trace."""
    before = served.ws.audit.events()
    async with open_client(served.app) as client:
        calls = [("PUT", f"/v1/models/{MODEL}/aliases/champion", {"version": 2}),
                 ("POST", f"/v1/models/{MODEL}/rollback", None),
                 ("PUT", f"/v1/models/{MODEL}/traffic", {"kind": "champion"})]
        for method, path, body in calls:
            assert_problem(await client.request(method, path, json=body), 401)
    assert served.ws.audit.events() == before
    assert served.ws.registry.get_model(MODEL).aliases == {"champion": 1}


# -- S6: the authorization matrix ------------------------------------------------------------

# The documented table (keepwell/access.py, issue 4 Build 7), written out so that a change of
# PERMISSIONS that nobody meant shows up here too.
DOCUMENTED = {
    "viewer": {"read models", "metrics"},
    "predictor": {"read models", "metrics", "predict", "feedback"},
    "operator": {"read models", "metrics", "set alias", "rollback", "set traffic"},
    "admin": {"read models", "metrics", "predict", "feedback", "set alias", "rollback",
              "set traffic"},
}
ACTION_OF = {"predict": "predict", "feedback": "feedback", "read models": "read",
             "set alias": "alias", "rollback": "alias", "set traffic": "traffic",
             "metrics": "read"}


def test_the_documented_table_is_what_access_grants() -> None:
    for role in ROLES:
        granted = {a for a, needed in ACTION_OF.items() if needed in PERMISSIONS[role]}
        assert granted == DOCUMENTED[role], role


async def _attempt(client: httpx.AsyncClient, action: str, headers: dict[str, str],
                   state: dict[str, Any]) -> httpx.Response:
    """One call of ``action``; each succeeds when allowed, from the state ``served`` left."""
    if action == "predict":
        response = await client.post(f"/v1/models/{MODEL}/predict",
                                     json={"inputs": [RECORD]}, headers=headers)
        if response.status_code == 200:
            state["request_ids"] = response.json()["request_ids"]
        return response
    if action == "feedback":
        return await client.post(f"/v1/models/{MODEL}/feedback",
                                 json={"labels": [1], "request_ids": state["request_ids"]},
                                 headers=headers)
    if action == "read models":
        return await client.get("/v1/models", headers=headers)
    if action == "metrics":
        return await client.get("/metrics", headers=headers)
    if action == "set alias":
        return await client.put(f"/v1/models/{MODEL}/aliases/challenger",
                                json={"version": 1}, headers=headers)
    if action == "rollback":
        return await client.post(f"/v1/models/{MODEL}/rollback", headers=headers)
    if action == "set traffic":
        return await client.put(f"/v1/models/{MODEL}/traffic",
                                json={"kind": "ab", "share": 0.25}, headers=headers)
    raise AssertionError(action)


@pytest.mark.parametrize("role", ROLES)
async def test_authorization_matrix(make_served: MakeServed, role: str) -> None:
    """S6: for one role, every action; exactly the documented cells succeed, others 403."""
    served = make_served(versions=2, champion=1)
    # champion went 1 → 2 so that a rollback is possible; challenger set for the traffic split
    served.ws.registry.set_alias(MODEL, "champion", 2)
    served.ws.registry.set_alias(MODEL, "challenger", 2)
    admin_ids = served.ws.logbook.append_frame(
        MODEL, 2, {"age": [1.0], "income": [1.0], "region": ["north"]}, {"prediction": [1]})
    state: dict[str, Any] = {"request_ids": admin_ids}
    before = len(served.ws.audit.events())
    table: dict[str, int] = {}
    async with open_client(served.app) as client:
        for action in ACTION_OF:
            response = await _attempt(client, action, served.auth(role), state)
            table[action] = response.status_code
            if response.status_code == 403:
                assert_problem(response, 403, "forbidden")
    allowed = {a for a, code in table.items() if 200 <= code < 300}
    assert allowed == DOCUMENTED[role], table
    assert all(code == 403 for a, code in table.items() if a not in allowed), table
    # the refused state changes left no trace; the allowed ones one audit event each
    changes = {"set alias", "rollback", "set traffic"} & allowed
    assert len(served.ws.audit.events()) - before == len(changes)




@pytest.mark.parametrize("path", [f"/v1/models/{MODEL}/aliases/champion",
                                  f"/v1/models/{MODEL}/traffic"])
async def test_no_token_is_refused_before_the_body_is_read(served: Served, path: str) -> None:
    async with open_client(served.app) as client:
        response = await client.put(path, content=b"{not json",
                                    headers={"content-type": "application/json"})
    assert_problem(response, 401, "unauthenticated")
