"""The server's own OpenAPI document: what it promises must be what the server does.

Schemathesis (tests/integration/test_server_live.py) tests the document against the running
server; these are the fast, direct checks of the document itself.
"""

from __future__ import annotations

from typing import Any

import serve_support
from serve_support import Served

from keepwell.serve.schemas import PredictBody

# The fixtures these tests use (see serve_support for why they are not in a conftest.py).
anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served
served, client = serve_support.served, serve_support.client

PUBLIC = {"/healthz", "/readyz"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


def test_every_authenticated_operation_documents_401_and_403(served: Served) -> None:
    document = served.app.openapi()
    for method, path, op in _operations(document):
        if path in PUBLIC:
            continue
        assert {"401", "403"} <= op["responses"].keys(), (method, path)


def test_the_predict_body_is_documented(served: Served) -> None:
    op = served.app.openapi()["paths"]["/v1/models/{name}/predict"]["post"]
    body = op["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema["properties"].keys() == PredictBody.model_fields.keys()
    assert schema["required"] == ["inputs"]
    assert schema["additionalProperties"] is False
    assert {"200", "400", "404", "413", "415", "422", "503"} <= op["responses"].keys()




def test_problem_responses_have_their_schema_under_problem_json(served: Served) -> None:
    for method, path, op in _operations(served.app.openapi()):
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                content = response["content"]
                assert "schema" in content["application/problem+json"], (method, path, status)
                assert "application/json" not in content, (method, path, status)




def test_bearer_auth_is_declared(served: Served) -> None:
    document = served.app.openapi()
    schemes = document.get("components", {}).get("securitySchemes", {})
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    for method, path, op in _operations(document):
        if path not in PUBLIC:
            assert op.get("security") or document.get("security"), (method, path)




def test_metrics_is_documented_as_text(served: Served) -> None:
    content = served.app.openapi()["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
