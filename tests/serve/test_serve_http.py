"""HTTP hygiene: hosts, origins, and what error responses may contain (RELIABILITY S8, S10).

S10 triggers every kind of error the server has (400 to 503, including a 500 from a tampered
artifact) and checks each body: a valid RFC 9457 problem, with no traceback, no filesystem path
of the workspace, no database URL and no token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import serve_support
from serve_support import MODEL, RECORD, MakeServed, Served, assert_problem, open_client

import keepwell as kw
from keepwell.config import Settings
from keepwell.logbook import Logbook
from keepwell.serve.schemas import Problem

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client
pytestmark = pytest.mark.anyio

PREDICT = f"/v1/models/{MODEL}/predict"


# -- S8: Host and origin --------------------------------------------------------------------

@pytest.mark.parametrize("host", ["attacker.example", "127.0.0.1.attacker.example",
                                  "localhost.", "evil", "127.0.0.2"])
async def test_a_host_outside_the_allowlist_is_400(served: Served, host: str) -> None:
    async with open_client(served.app) as client:
        for method, path, body in (("GET", "/v1/models", None),
                                   ("POST", PREDICT, {"inputs": [RECORD]}),
                                   ("PUT", f"/v1/models/{MODEL}/aliases/champion",
                                    {"version": 2})):
            response = await client.request(method, path, json=body,
                                            headers={**served.auth(), "host": host})
            assert response.status_code in (400, 421), (host, path, response.text)
    assert served.ws.registry.get_model(MODEL).aliases == {"champion": 1}
    assert served.ws.logbook.predictions(MODEL).num_rows == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost", "testserver"])
async def test_allowed_hosts_are_served(served: Served, host: str) -> None:
    async with open_client(served.app) as client:
        response = await client.get("/v1/models", headers={**served.auth(), "host": host})
    assert response.status_code == 200




async def test_a_refused_host_is_a_problem(served: Served) -> None:
    async with open_client(served.app, host="attacker.example") as client:
        response = await client.get("/v1/models", headers=served.auth())
    assert_problem(response, response.status_code)


async def test_cors_is_closed_by_default(served: Served, client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://attacker.example"}
    simple = await client.get("/v1/models", headers={**served.auth(), **origin})
    assert simple.status_code == 200
    preflight = await client.options(
        f"/v1/models/{MODEL}/aliases/champion",
        headers={**origin, "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code in (401, 405)
    assert_problem(preflight, preflight.status_code)
    state_changing = await client.put(f"/v1/models/{MODEL}/aliases/champion",
                                      json={"version": 2}, headers={**served.auth(), **origin})
    for response in (simple, preflight, state_changing):
        assert not any(h.lower().startswith("access-control-") for h in response.headers)
        assert "set-cookie" not in response.headers  # no cookies: no CSRF surface


# -- S10: no leakage ------------------------------------------------------------------------

def _tamper(ws: kw.Workspace, settings: Settings, ref: str) -> None:
    """Flip one byte of a version's stored model file."""
    digest = ws.registry.get_version(ref).artifact_sha256
    (path,) = [p for p in Path(settings.artifact_root).rglob(f"*{digest}*") if p.is_file()]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(data))


async def _every_error(served: Served, client: httpx.AsyncClient) -> list[httpx.Response]:
    auth, json_type = served.auth(), {"content-type": "application/json"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", PREDICT, {"content": b"{", "headers": {**auth, **json_type}}),           # 400
        ("PUT", f"/v1/models/{MODEL}/traffic",
         {"content": b"[" * 5000, "headers": {**auth, **json_type}}),                   # 400
        ("GET", "/v1/models", {}),                                                       # 401
        ("GET", "/v1/models", {"headers": {"Authorization": "Bearer " + "kw_" + "x" * 43}}),
        ("POST", PREDICT, {"json": {"inputs": [RECORD]}, "headers": served.auth("viewer")}),
        ("GET", "/v1/models/nosuch", {"headers": auth}),                                 # 404
        ("POST", f"/v1/models/{MODEL}@nosuch/predict", {"json": {"inputs": [RECORD]},
                                                         "headers": auth}),
        ("POST", f"/v1/models/{MODEL}@99/predict", {"json": {"inputs": [RECORD]},
                                                    "headers": auth}),
        ("GET", "/v1/nothing/here", {"headers": auth}),
        ("DELETE", "/v1/models", {"headers": auth}),                                     # 405
        ("POST", f"/v1/models/{MODEL}/rollback", {"headers": auth}),                     # 409
        ("PUT", f"/v1/models/{MODEL}/aliases/champion",
         {"json": {"version": 2}, "headers": {**auth, "If-Match": '"7"'}}),              # 412
        ("POST", PREDICT, {"content": b"x" * (2 << 20), "headers": {**auth, **json_type}}),
        ("POST", PREDICT, {"content": b"{}", "headers": {**auth,
                                                         "content-type": "text/plain"}}),
        ("POST", PREDICT, {"content": b'{"inputs": [{"age": NaN}]}',
                           "headers": {**auth, **json_type}}),                           # 422
        ("POST", PREDICT, {"json": {"inputs": [{"age": "/etc/passwd"}]}, "headers": auth}),
        ("POST", "/v1/models/bad%20name/predict", {"json": {"inputs": [RECORD]},
                                                   "headers": auth}),
        ("PUT", f"/v1/models/{MODEL}/aliases/champion", {"json": {"version": "x"},
                                                          "headers": auth}),
        ("PUT", f"/v1/models/{MODEL}/traffic", {"json": {"kind": "ab", "share": 0.5},
                                                "headers": auth}),
        ("POST", PREDICT, {"json": {"inputs": [{**RECORD, "age": None}]},
                           "headers": auth}),                                            # 500
        ("POST", f"/v1/models/{MODEL}@2/predict", {"json": {"inputs": [RECORD]},
                                                   "headers": auth}),                    # 500
    ]
    _tamper(served.ws, served.settings, f"{MODEL}@2")
    responses = []
    for method, path, kwargs in calls:
        responses.append(await client.request(method, path, **kwargs))
    return responses


def _secrets(served: Served) -> list[str]:
    settings = served.settings
    return [*served.tokens.values(), str(settings.workspace), str(settings.log_root),
            str(settings.artifact_root), settings.database_url, str(Path.home()), "/tmp/",
            str(Path(kw.__file__).parent), "site-packages"]


async def test_error_bodies_leak_nothing(served: Served) -> None:
    async with open_client(served.app) as client:
        responses = await _every_error(served, client)
        # the champion, loaded before the tampering, keeps serving (S4)
        ok = await client.post(PREDICT, json={"inputs": [RECORD]}, headers=served.auth())
        assert ok.status_code == 200
    statuses = {r.status_code for r in responses}
    assert statuses >= {400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 500}
    for response in responses:
        assert response.status_code >= 400
        text = response.text
        assert "Traceback" not in text and 'File "' not in text, text
        for secret in _secrets(served):
            assert secret not in text, (secret, text)
        assert "kw_" not in text
        if response.headers.get("content-type") == "application/problem+json":
            Problem.model_validate(json.loads(text))
    integrity = responses[-1]
    assert_problem(integrity, 500, "artifact-integrity")


async def test_a_503_leaks_nothing(make_served: MakeServed) -> None:
    def failing_log(settings: Settings) -> kw.Workspace:
        ws = kw.Workspace(settings)
        ws.logbook = Logbook(settings.log_root, fsync=_eio)
        return ws

    served = make_served(workspace=failing_log)
    async with open_client(served.app) as client:
        response = await client.post(PREDICT, json={"inputs": [RECORD]}, headers=served.auth())
    assert_problem(response, 503)
    for secret in _secrets(served):
        assert secret not in response.text


def _eio(fd: int) -> None:
    raise OSError(5, "Input/output error")


async def test_errors_are_problems_with_the_request_path(served: Served,
                                                         client: httpx.AsyncClient) -> None:
    not_found = await client.get("/v1/nothing/here", headers=served.auth())
    assert assert_problem(not_found, 404, "not-found")["instance"] == "/v1/nothing/here"
    wrong_method = await client.delete(f"/v1/models/{MODEL}", headers=served.auth())
    assert_problem(wrong_method, 405, "method-not-allowed")
    assert "allow" in wrong_method.headers
