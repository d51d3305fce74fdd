"""Every state-changing API call leaves exactly one audit event (RELIABILITY AU1, C1).

Run on SQLite and on PostgreSQL. Each call is made over REST; afterwards the audit log is read
from the sequence number it had before the call: one event for a change, none for a call that
changed nothing or failed, with actor, action, target, before, after and reason filled in.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import serve_support
from serve_support import MODEL, MakeServed, Served, assert_problem, open_client

from keepwell.config import Settings
from keepwell.serve.schemas import AliasOut

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client
pytestmark = pytest.mark.anyio


def _head(served: Served) -> int:
    events = served.ws.audit.events(newest_first=True, limit=1)
    return events[0].seq if events else 0


# (method, path, body, headers, expected status, expected (action, target, before, after))
CALLS: list[tuple[str, str, Any, dict[str, str], int, tuple[str, str, Any, Any] | None]] = [
    ("PUT", "aliases/champion", {"version": 2, "reason": "better AUC"}, {}, 200,
     ("alias.set", f"{MODEL}@champion", {"version": 1}, {"version": 2})),
    ("PUT", "aliases/challenger", {"version": 3}, {}, 200,
     ("alias.set", f"{MODEL}@challenger", {"version": None}, {"version": 3})),
    ("PUT", "aliases/champion", {"version": 2}, {}, 200, None),  # already there: no change
    ("PUT", "traffic", {"kind": "ab", "share": 0.2, "reason": "try it"}, {}, 200,
     ("traffic.set", MODEL, {"kind": "champion", "share": 0.0, "challenger_alias": "challenger"},
      {"kind": "ab", "share": 0.2, "challenger_alias": "challenger"})),
    ("PUT", "traffic", {"kind": "ab", "share": 0.2}, {}, 200, None),  # same policy
    ("PUT", "aliases/champion", {"version": 3}, {"If-Match": '"1"'}, 412, None),
    ("PUT", "aliases/champion", {"version": 99}, {}, 404, None),
    ("PUT", "aliases/champion", {"version": 3}, {"If-Match": '"2"'}, 200,
     ("alias.set", f"{MODEL}@champion", {"version": 2}, {"version": 3})),
    ("POST", "rollback", None, {}, 200,
     ("alias.rollback", f"{MODEL}@champion", {"version": 3}, {"version": 2})),
    ("PUT", "aliases/staging", {"version": 1}, {"If-Match": '"none"'}, 200,
     ("alias.set", f"{MODEL}@staging", {"version": None}, {"version": 1})),
    ("PUT", "traffic", {"kind": "champion", "reason": "done"}, {}, 200,
     ("traffic.set", MODEL, {"kind": "ab", "share": 0.2, "challenger_alias": "challenger"},
      {"kind": "champion", "share": 0.0, "challenger_alias": "challenger"})),
]


async def test_each_state_change_is_one_audit_event(make_served: MakeServed,
                                                    settings: Settings) -> None:
    served = make_served(settings, versions=3, champion=1)
    changes = 0
    async with open_client(served.app) as client:
        for method, path, body, headers, status, expected in CALLS:
            seq = _head(served)
            response = await client.request(method, f"/v1/models/{MODEL}/{path}", json=body,
                                            headers={**served.auth("operator"), **headers})
            assert response.status_code == status, (path, body, response.text)
            events = served.ws.audit.events(after_seq=seq)
            if expected is None:
                assert events == [], (path, body)
                if status == 200 and path.startswith("aliases"):
                    assert response.json()["changed"] is False
                continue
            changes += 1
            assert len(events) == 1, (path, body, events)
            event = events[0]
            assert (event.action, event.target, event.before, event.after) == expected
            assert event.actor
            reason = (body or {}).get("reason")
            assert event.reason == (reason or "")
            assert event.actor == "token:operator-token"  # the token's holder, not the server
            if path.startswith(("aliases", "rollback")):
                out = AliasOut.model_validate(response.json())
                assert out.changed
                assert (out.from_version, out.to_version) == (event.before["version"],
                                                              event.after["version"])
    api_events = [e for e in served.ws.audit.events()
                  if e.action in ("alias.set", "alias.rollback", "traffic.set")
                  and e.actor.startswith("token:")]  # populate() acted as the server's actor
    assert len(api_events) == changes
    assert served.ws.audit.verify().ok




async def test_the_audit_actor_is_the_calling_principal(served: Served,
                                                        client: httpx.AsyncClient) -> None:
    seq = _head(served)
    response = await client.put(f"/v1/models/{MODEL}/aliases/champion",
                                json={"version": 2, "reason": "release 7"},
                                headers=served.auth("operator"))
    assert response.status_code == 200
    (event,) = served.ws.audit.events(after_seq=seq)
    assert "operator-token" in event.actor




async def test_the_audit_event_has_a_request_id(served: Served,
                                                client: httpx.AsyncClient) -> None:
    seq = _head(served)
    for method, path, body in (("PUT", "aliases/champion", {"version": 2}),
                               ("POST", "rollback", None),
                               ("PUT", "traffic", {"kind": "shadow",
                                                   "challenger_alias": "champion"})):
        response = await client.request(method, f"/v1/models/{MODEL}/{path}", json=body,
                                        headers=served.auth())
        assert response.status_code == 200, response.text
    events = served.ws.audit.events(after_seq=seq)
    assert len(events) == 3
    assert all(e.request_id for e in events)


async def test_refused_calls_leave_no_event(served: Served, client: httpx.AsyncClient) -> None:
    seq = _head(served)
    calls = [
        ("PUT", "aliases/champion", {"version": 2}, "viewer", 403),
        ("PUT", "aliases/champion", {"version": 2}, "predictor", 403),
        ("PUT", "aliases/champion", {"version": 0}, "operator", 422),
        ("PUT", "aliases/bad alias", {"version": 1}, "operator", 422),
        ("PUT", "aliases/champion", {"version": 2, "extra": 1}, "operator", 422),
        ("PUT", "traffic", {"kind": "ab", "share": 0.3}, "operator", 422),  # no challenger
        ("POST", "rollback", None, "operator", 409),  # nothing to roll back to
    ]
    for method, path, body, role, status in calls:
        response = await client.request(method, f"/v1/models/{MODEL}/{path}", json=body,
                                        headers=served.auth(role))
        assert_problem(response, status)
    assert served.ws.audit.events(after_seq=seq) == []
    assert served.ws.registry.get_model(MODEL).aliases == {"champion": 1}


async def test_malformed_if_match_is_refused(served: Served, client: httpx.AsyncClient) -> None:
    for value in ("abc", '"1.5"', "W/\"1\""):
        response = await client.put(f"/v1/models/{MODEL}/aliases/champion", json={"version": 2},
                                    headers={**served.auth(), "If-Match": value})
        assert 400 <= response.status_code < 500
        assert_problem(response, response.status_code)
    assert served.ws.registry.get_model(MODEL).aliases == {"champion": 1}


async def test_concurrent_conditional_promotions_have_one_winner(make_served: MakeServed,
                                                                 settings: Settings) -> None:
    """C1 over REST: 20 promotions carrying the same If-Match; one 200, the rest 412."""
    served = make_served(settings, versions=3, champion=1)
    seq = _head(served)
    async with open_client(served.app) as client:
        responses = await asyncio.gather(*(
            client.put(f"/v1/models/{MODEL}/aliases/champion", json={"version": 2 + i % 2},
                       headers={**served.auth("operator"), "If-Match": '"1"'})
            for i in range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [412] * 19, codes
    for r in responses:
        if r.status_code == 412:
            assert_problem(r, 412, "alias-precondition-failed")
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert served.ws.registry.get_model(MODEL).aliases["champion"] == winner["to_version"]
    assert len(served.ws.audit.events(after_seq=seq)) == 1
