"""``POST /v1/models/{name}/predict`` as a plain ASGI callable: the server's hot path.

The route is declared to FastAPI like every other (so the OpenAPI document describes its
bearer scheme, body, answers and problems), and :func:`keepwell.serve.app.create_app` then
hands its requests to :class:`PredictEndpoint`. That does what FastAPI would have done around
the handler, and nothing else: the role check, the path parameter, the JSON body (through
the same body-limit middleware), the answer. FastAPI's per-request dependency solving and
``Request`` machinery cost more than the whole model call of a single-record request.

Errors are raised, never written here: they leave through the app's exception middleware,
which turns every :class:`~keepwell.errors.KeepwellError` into problem+json, as for any route.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from keepwell.errors import FieldError, KeepwellError, PayloadError, UnsupportedMediaTypeError
from keepwell.registry.names import parse_ref
from keepwell.serve.auth import Authenticator
from keepwell.serve.metrics import Metrics
from keepwell.serve.payload import parse_json
from keepwell.serve.runtime import Runtime

__all__ = ["PredictEndpoint", "json_body"]

_JSON_HEADERS = [(b"content-type", b"application/json")]


def _check_keys(body: Any, allowed: set[str]) -> None:
    """Refuse top-level keys of a JSON object outside ``allowed`` (422, one pointer each)."""
    if isinstance(body, dict):
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise PayloadError([FieldError(f"/{k}", f"unknown field {k!r}") for k in unknown])


def json_body(content_type: str | None, body: bytes) -> Any:
    """A request body sent as ``application/json``, parsed strictly (415 for another type)."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaTypeError("send the body as application/json.")
    return parse_json(body)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class PredictEndpoint:
    """Answers predict requests: check the token, parse and validate the body, queue it for
    its model's micro-batcher, answer with the logged predictions."""

    def __init__(self, runtime: Runtime, auth: Authenticator, metrics: Metrics) -> None:
        self.runtime = runtime
        self.auth = auth
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        authorization = content_type = None
        for key, value in scope["headers"]:
            if key == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif key == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        self.auth.allowed(authorization, "predict")
        ref = parse_ref(scope["path_params"]["name"])
        runtime, metrics = self.runtime, self.metrics
        try:
            await runtime.known(ref)  # before any per-model state exists
        except KeepwellError as exc:
            metrics.errors.labels("-", exc.code).inc()
            raise
        batcher = runtime.batcher(ref)
        try:
            with batcher.admitting():
                body = json_body(content_type, await _read_body(receive))
                prepared = await runtime.prepare(ref, body)
                _check_keys(body, {"inputs", "key", "subjects"})
            scored = await runtime.predict(prepared)
        except KeepwellError as exc:
            metrics.errors.labels(ref.name, exc.code).inc()
            raise
        labels = (scored.model, str(scored.version), scored.arm)
        metrics.requests.labels(*labels, "200").inc()
        metrics.latency.labels(*labels).observe(time.perf_counter() - started)
        answer = orjson.dumps({k: v for k, v in vars(scored).items() if v is not None},
                              option=orjson.OPT_SERIALIZE_NUMPY)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode()),
                                *_JSON_HEADERS]})
        await send({"type": "http.response.body", "body": answer})
