"""The REST API: ``create_app(settings)`` builds the FastAPI application.

Every route needs a bearer token (see :mod:`keepwell.access`) except ``/healthz`` and
``/readyz``. Errors are RFC 9457 problem+json from one set of handlers
(:mod:`keepwell.serve.problems`). Bodies over ``max_body_bytes`` are refused with 413 before
they are read whole; requests for a host outside ``allowed_hosts`` get 400; CORS stays closed.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures at run
# time, and their Depends(...) refer to objects local to create_app.
import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError
from sqlalchemy import text
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keepwell.access import Principal
from keepwell.config import Settings, load_settings
from keepwell.errors import AliasConflictError, BodyTooLargeError, FieldError, PayloadError
from keepwell.logbook.ids import new_id
from keepwell.registry.names import check_alias, parse_ref
from keepwell.registry.registry import Registry
from keepwell.registry.traffic import TrafficPolicy
from keepwell.serve import problems, schemas
from keepwell.serve.auth import Authenticator
from keepwell.serve.metrics import CONTENT_TYPE_LATEST, Metrics
from keepwell.serve.predict import PredictEndpoint, json_body
from keepwell.serve.runtime import Runtime
from keepwell.workspace import Workspace

__all__ = ["app_from_environment", "create_app"]

_PROBLEM: dict[str, Any] = {"description": "RFC 9457 problem details", "content": {
    problems.MEDIA_TYPE: {"schema": schemas.Problem.model_json_schema()}}}
_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys(
    (400, 401, 403, 404, 409, 412, 413, 415, 422, 503), _PROBLEM)


class HostCheck:
    """Answer 400 problem+json to a ``Host`` outside the allowlist (DNS rebinding, poisoned
    links)."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if "*" not in self.allowed and name.lower() not in self.allowed:
                response = problems.problem(400, "invalid-host", "Invalid host",
                                            "this server does not answer for that host name.",
                                            scope.get("path", "/"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
    return json_body(request.headers.get("content-type"), await request.body())


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
        # Move everything alive now (libraries, models) out of the collector's reach: full
        # collections of that heap took 150-200 ms under load, the whole p99, freeing nothing.
        gc.collect()
        gc.freeze()
        yield
        await runtime.close()
        if workspace is None:
            ws.close()

    # No public docs pages (they would load scripts from a CDN); the OpenAPI document itself is
    # served below, behind a token like everything else.
    app = FastAPI(title="keepwell", version="0.1.0", lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None,
                  description="Serve, log and maintain machine-learning models.")
    app.add_middleware(BodyLimit, limit=serve.max_body_bytes)
    app.add_middleware(HostCheck, allowed=serve.allowed_hosts)
    problems.install(app)
    read = Depends(auth.require("read"))

    @app.get("/healthz", include_in_schema=True, tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=schemas.ReadyOut,
             responses={503: _PROBLEM})
    async def readyz(request: Request) -> Response:
        """Ready: database reachable, logbook writable. Unready is a 503 problem whose
        ``checks`` member says what failed."""
        checks = {"database": True, "logbook": ws.logbook.ready}
        try:
            with ws.db.read() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001
            checks["database"] = False
        if all(checks.values()):
            return Response(orjson.dumps({"status": "ready", "checks": checks}),
                            media_type="application/json")
        failed = ", ".join(k for k, ok in checks.items() if not ok)
        return problems.problem(503, "unready", "Unready", f"not ready: {failed}",
                                request.url.path, headers={"Retry-After": "1"},
                                extra={"checks": checks})

    @app.get("/metrics", tags=["health"], dependencies=[read], response_class=PlainTextResponse,
             responses=_ERRORS)
    async def prometheus() -> Response:
        """Prometheus metrics."""
        runtime.report_queue_depths()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[read])
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    predict_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schemas.PredictBody.model_json_schema()}}}}

    # Declared here for the OpenAPI document only: requests are answered by PredictEndpoint
    # (keepwell.serve.predict), which does the same checks without FastAPI's per-request
    # machinery. The signature and docstring are what the document shows.
    @app.post("/v1/models/{name}/predict", tags=["predict"], response_model=schemas.PredictOut,
              responses=_ERRORS, openapi_extra=predict_doc)
    async def predict(name: str, request: Request,
                      _: Annotated[Principal, Depends(auth.require("predict"))]) -> Response:
        """Score one record or a batch with the champion (or ``name@alias``, ``name@3``)."""
        raise NotImplementedError("answered by PredictEndpoint")

    (route,) = [r for r in app.router.routes
                if isinstance(r, APIRoute) and r.endpoint is predict]
    route.app = PredictEndpoint(runtime, auth, metrics)

    feedback_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schemas.FeedbackBody.model_json_schema()}}}}

    @app.post("/v1/models/{name}/feedback", tags=["predict"], response_model=schemas.FeedbackOut,
              responses=_ERRORS, openapi_extra=feedback_doc)
    async def feedback(name: str, request: Request,
                       _: Annotated[Principal, Depends(auth.require("feedback"))]
                       ) -> schemas.FeedbackOut:
        """Labels for earlier predictions, by request id or by subject and time."""
        ref = parse_ref(name)
        await runtime.known(ref)
        raw = await _json_body(request)
        body = _validated(schemas.FeedbackBody, raw)
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

    def registry_for(principal: Principal) -> Registry:
        """The registry acting as the token's holder, so the audit log names them."""
        return Registry(ws.db, ws.artifacts, settings.registry, f"token:{principal.name}")

    alias_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schemas.AliasBody.model_json_schema()}}}}

    @app.put("/v1/models/{name}/aliases/{alias}", tags=["models"],
             response_model=schemas.AliasOut, responses=_ERRORS, openapi_extra=alias_doc)
    async def set_alias(name: str, alias: str, request: Request,
                        principal: Annotated[Principal, Depends(auth.require("alias"))],
                        if_match: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Point an alias at a version. ``If-Match: "<version>"`` (or ``"none"``) makes the
        move conditional: 412 if the alias moved meanwhile."""
        check_alias(alias)
        body = _validated(schemas.AliasBody, await _json_body(request))
        expected = _if_match(if_match)
        registry = registry_for(principal)
        kwargs = {} if expected is _UNSET else {"expected_version": expected}
        move = await asyncio.get_running_loop().run_in_executor(
            runtime.pool, lambda: registry.set_alias(
                name, alias, body.version, reason=body.reason,
                request_id=_request_id(request), **kwargs))
        return {**move.to_dict(), "changed": move.changed}

    @app.post("/v1/models/{name}/rollback", tags=["models"], response_model=schemas.AliasOut,
              responses=_ERRORS)
    async def rollback(name: str, request: Request,
                       principal: Annotated[Principal, Depends(auth.require("alias"))]
                       ) -> dict[str, Any]:
        """Move the champion back to the previous champion."""
        registry = registry_for(principal)
        move = await asyncio.get_running_loop().run_in_executor(
            runtime.pool, lambda: registry.rollback(
                name, reason="",
                request_id=_request_id(request)))
        return {**move.to_dict(), "changed": move.changed}

    @app.get("/v1/models/{name}/traffic", tags=["models"], dependencies=[read],
             responses=_ERRORS)
    async def get_traffic(name: str) -> dict[str, Any]:
        return ws.registry.get_traffic(name).to_dict()

    traffic_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schemas.TrafficBody.model_json_schema()}}}}

    @app.put("/v1/models/{name}/traffic", tags=["models"], responses=_ERRORS,
             openapi_extra=traffic_doc)
    async def set_traffic(name: str, request: Request,
                          principal: Annotated[Principal, Depends(auth.require("traffic"))]
                          ) -> dict[str, Any]:
        """Set the model's traffic policy (champion, ab, canary or shadow)."""
        body = _validated(schemas.TrafficBody, await _json_body(request))
        policy = TrafficPolicy(body.kind, body.share, body.challenger_alias)
        registry = registry_for(principal)
        done = await asyncio.get_running_loop().run_in_executor(
            runtime.pool, lambda: registry.set_traffic(
                name, policy, reason=body.reason,
                request_id=_request_id(request)))
        return done.to_dict()

    app.state.runtime = runtime
    app.state.workspace = ws
    return app


def app_from_environment() -> FastAPI:
    """The app of the settings in the environment (``KEEPWELL_CONFIG``, ``KEEPWELL_*``): what
    each uvicorn worker process builds."""
    return create_app(load_settings())


_UNSET = object()


def _request_id(request: Request) -> str:
    """The caller's ``X-Request-ID`` (kept short), else a new UUIDv7: every audited change
    carries one."""
    given = request.headers.get("x-request-id", "")[:64]
    return given if given.isprintable() and given else new_id()


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], raw: Any) -> M:
    """A request body checked against its schema; errors as pointers into the body."""
    try:
        return model.model_validate(raw)
    except PydanticError as exc:
        raise PayloadError([FieldError("/" + "/".join(map(str, e["loc"])), e["msg"])
                            for e in exc.errors()]) from None


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
