"""The REST API: ``create_app(settings)`` builds the FastAPI application.

Every route needs a bearer token (see :mod:`keepwell.access`) except ``/healthz`` and
``/readyz``. Errors are RFC 9457 problem+json from one set of handlers
(:mod:`keepwell.serve.problems`). Bodies over ``max_body_bytes`` are refused with 413 before
they are read whole; requests for a host outside ``allowed_hosts`` get 400; CORS stays closed.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at run
# time, and their Depends(...) refer to objects local to create_app.
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Request
from pydantic import ValidationError as PydanticError
from sqlalchemy import text
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keepwell.access import Principal
from keepwell.config import Settings, load_settings
from keepwell.errors import (
    AliasConflictError,
    BodyTooLargeError,
    FieldError,
    KeepwellError,
    PayloadError,
    UnsupportedMediaTypeError,
)
from keepwell.registry.names import ModelRef, check_alias, parse_ref
from keepwell.registry.traffic import TrafficPolicy
from keepwell.serve import problems, schemas
from keepwell.serve.auth import Authenticator
from keepwell.serve.metrics import CONTENT_TYPE_LATEST, Metrics
from keepwell.serve.payload import parse_json
from keepwell.serve.runtime import Runtime
from keepwell.workspace import Workspace

__all__ = ["app_from_environment", "create_app"]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
_PROBLEM = {"model": schemas.Problem, "content": {problems.MEDIA_TYPE: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys(
    (400, 401, 403, 404, 409, 412, 413, 415, 422, 503), _PROBLEM)


class BodyLimit:
    """Refuse bodies over ``limit`` bytes: by ``Content-Length`` before reading, and by
    counting while reading when the body is chunked (or the length lies)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._refuse(scope, send)
                return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLargeError(f"the request body is over {self.limit} bytes.")
            return message

        await self.app(scope, counting, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        response = problems.problem(413, "body-too-large", "Body too large",
                                    f"the request body is over {self.limit} bytes.",
                                    scope.get("path", "/"))
        await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaTypeError("send the body as application/json.")
    return parse_json(await request.body())


def _model_ref(name: str) -> ModelRef:
    return parse_ref(name)


def create_app(settings: Settings, *, workspace: Workspace | None = None) -> FastAPI:
    """The keepwell server for ``settings`` (or for an already open ``workspace``)."""
    serve = settings.serve
    ws = workspace or Workspace(settings)
    metrics = Metrics()
    auth = Authenticator(ws.tokens)
    runtime = Runtime(ws, metrics, max_batch=serve.max_batch, max_wait_ms=serve.max_wait_ms,
                      max_rows=serve.max_rows)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        for model in ws.registry.list_models():  # load champions before taking traffic
            if "champion" in model.aliases:
                await loop.run_in_executor(runtime.pool, runtime.cache.get, model.name,
                                           model.aliases["champion"])
        yield
        for batcher in list(runtime._batchers.values()):
            await batcher.close()
        runtime.close()
        if workspace is None:
            ws.close()

    app = FastAPI(title="keepwell", version="0.1.0", lifespan=lifespan,
                  description="Serve, log and maintain machine-learning models.")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(serve.allowed_hosts))
    app.add_middleware(BodyLimit, limit=serve.max_body_bytes)
    problems.install(app)
    read = Depends(auth.require("read"))

    @app.get("/healthz", include_in_schema=True, tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: _PROBLEM})
    async def readyz() -> Response:
        """Ready: database reachable, logbook writable, champions loaded."""
        checks = {"database": True, "logbook": ws.logbook.ready}
        try:
            with ws.db.read() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001
            checks["database"] = False
        ok = all(checks.values())
        return Response(orjson.dumps({"status": "ready" if ok else "unready",
                                      "checks": checks}),
                        status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics", tags=["health"], dependencies=[read], responses=_ERRORS)
    async def prometheus() -> Response:
        """Prometheus metrics."""
        for key, batcher in runtime._batchers.items():
            metrics.queue_depth.labels(key).set(batcher.depth)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    predict_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schemas.PredictBody.model_json_schema()}}}}

    @app.post("/v1/models/{name}/predict", tags=["predict"], response_model=schemas.PredictOut,
              responses=_ERRORS, openapi_extra=predict_doc)
    async def predict(name: str, request: Request,
                      _: Annotated[Principal, Depends(auth.require("predict"))]) -> Response:
        """Score one record or a batch with the champion (or ``name@alias``, ``name@3``)."""
        started = time.perf_counter()
        ref = _model_ref(name)
        batcher = runtime.batcher(ref)
        try:
            with batcher.admitting():
                body = await _json_body(request)
                prepared = await runtime.prepare(ref, body)
            scored = await runtime.predict(prepared)
        except KeepwellError as exc:
            metrics.errors.labels(ref.name, exc.code).inc()
            raise
        labels = (scored.model, str(scored.version), scored.arm)
        metrics.requests.labels(*labels, "200").inc()
        metrics.latency.labels(*labels).observe(time.perf_counter() - started)
        body_out = {k: v for k, v in asdict(scored).items() if v is not None}
        return Response(orjson.dumps(body_out, option=orjson.OPT_SERIALIZE_NUMPY),
                        media_type="application/json")

    feedback_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schemas.FeedbackBody.model_json_schema()}}}}

    @app.post("/v1/models/{name}/feedback", tags=["predict"], response_model=schemas.FeedbackOut,
              responses=_ERRORS, openapi_extra=feedback_doc)
    async def feedback(name: str, request: Request,
                       _: Annotated[Principal, Depends(auth.require("feedback"))]
                       ) -> schemas.FeedbackOut:
        """Labels for earlier predictions, by request id or by subject and time."""
        ref = _model_ref(name)
        raw = await _json_body(request)
        try:
            body = schemas.FeedbackBody.model_validate(raw)
        except PydanticError as exc:
            raise PayloadError([FieldError("/" + "/".join(map(str, e["loc"])), e["msg"])
                                for e in exc.errors()]) from None
        result = await asyncio.get_running_loop().run_in_executor(
            runtime.pool, lambda: ws.logbook.add_feedback(
                ref.name, body.labels, request_ids=body.request_ids, subjects=body.subjects,
                event_ts=body.event_ts))
        return schemas.FeedbackOut(accepted=result.accepted, unmatched=result.unmatched)

    @app.get("/v1/models", tags=["models"], response_model=list[schemas.ModelOut],
             dependencies=[read], responses=_ERRORS)
    async def list_models() -> list[dict[str, Any]]:
        """Every registered model and where its aliases point."""
        return [_model_out(m.to_dict()) for m in ws.registry.list_models()]

    @app.get("/v1/models/{name}", tags=["models"], response_model=schemas.ModelOut,
             dependencies=[read], responses=_ERRORS)
    async def get_model(name: str) -> dict[str, Any]:
        return _model_out(ws.registry.get_model(name).to_dict())

    @app.get("/v1/models/{name}/versions", tags=["models"],
             response_model=list[schemas.VersionOut], dependencies=[read], responses=_ERRORS)
    async def list_versions(name: str) -> list[dict[str, Any]]:
        return [_version_out(v.to_dict()) for v in ws.registry.list_versions(name)]

    @app.put("/v1/models/{name}/aliases/{alias}", tags=["models"],
             response_model=schemas.AliasOut, responses=_ERRORS)
    async def set_alias(name: str, alias: str, body: schemas.AliasBody,
                        principal: Annotated[Principal, Depends(auth.require("alias"))],
                        if_match: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Point an alias at a version. ``If-Match: "<version>"`` (or ``"none"``) makes the
        move conditional: 412 if the alias moved meanwhile."""
        check_alias(alias)
        expected = _if_match(if_match)
        registry = ws.registry
        kwargs = {} if expected is _UNSET else {"expected_version": expected}
        move = await asyncio.get_running_loop().run_in_executor(
            runtime.pool, lambda: registry.set_alias(
                name, alias, body.version, reason=body.reason or f"via API by {principal.name}",
                **kwargs))
        return {**move.to_dict(), "changed": move.changed}

    @app.post("/v1/models/{name}/rollback", tags=["models"], response_model=schemas.AliasOut,
              responses=_ERRORS)
    async def rollback(name: str,
                       principal: Annotated[Principal, Depends(auth.require("alias"))]
                       ) -> dict[str, Any]:
        """Move the champion back to the previous champion."""
        move = await asyncio.get_running_loop().run_in_executor(
            runtime.pool, lambda: ws.registry.rollback(
                name, reason=f"via API by {principal.name}"))
        return {**move.to_dict(), "changed": move.changed}

    @app.get("/v1/models/{name}/traffic", tags=["models"], dependencies=[read],
             responses=_ERRORS)
    async def get_traffic(name: str) -> dict[str, Any]:
        return ws.registry.get_traffic(name).to_dict()

    @app.put("/v1/models/{name}/traffic", tags=["models"], responses=_ERRORS)
    async def set_traffic(name: str, body: schemas.TrafficBody,
                          principal: Annotated[Principal, Depends(auth.require("traffic"))]
                          ) -> dict[str, Any]:
        """Set the model's traffic policy (champion, ab, canary or shadow)."""
        policy = TrafficPolicy(body.kind, body.share, body.challenger_alias)
        done = await asyncio.get_running_loop().run_in_executor(
            runtime.pool, lambda: ws.registry.set_traffic(
                name, policy, reason=body.reason or f"via API by {principal.name}"))
        return done.to_dict()

    app.state.runtime = runtime
    app.state.workspace = ws
    return app


def app_from_environment() -> FastAPI:
    """The app of the settings in the environment (``KEEPWELL_CONFIG``, ``KEEPWELL_*``): what
    each uvicorn worker process builds."""
    return create_app(load_settings())


_UNSET = object()


def _if_match(header: str | None) -> Any:
    if header is None:
        return _UNSET
    value = header.strip().strip('"')
    if value.lower() == "none":
        return None
    if not value.isdigit():
        raise AliasConflictError('If-Match must be a version number in quotes, or "none".')
    return int(value)


def _model_out(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in schemas.ModelOut.model_fields}


def _version_out(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in schemas.VersionOut.model_fields}
