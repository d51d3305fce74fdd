"""RFC 9457 problem details: the one shape every error response has.

Routes raise; they never build error bodies. :func:`install` registers the handlers that turn a
:class:`~keepwell.errors.KeepwellError` (and the framework's own errors) into
``application/problem+json``. Messages come from keepwell's error tree, which keeps paths,
tracebacks and secrets out of them; anything unexpected becomes a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from keepwell.errors import FieldError, KeepwellError

__all__ = ["install", "keepwell_response", "problem"]

MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://keepwell.dev/problems/"
log = logging.getLogger("keepwell.serve")


def problem(status: int, code: str, title: str, detail: str, instance: str,
            errors: Sequence[FieldError] = (), headers: dict[str, str] | None = None,
            extra: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status,
                            "detail": detail, "instance": instance, **(extra or {})}
    if errors:
        body["errors"] = list(errors)
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE,
                    headers=headers)


def _title(code: str) -> str:
    return code.replace("-", " ").capitalize()


def keepwell_response(exc: KeepwellError, path: str) -> Response:
    status = exc.status
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="keepwell"'}
    return problem(status, exc.code, _title(exc.code), str(exc), path,
                   getattr(exc, "errors", ()), headers)


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""

    @app.exception_handler(KeepwellError)
    async def _keepwell(request: Request, exc: KeepwellError) -> Response:
        return keepwell_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [FieldError("/" + "/".join(str(p) for p in e["loc"][1:]), str(e["msg"]))
                  for e in exc.errors()]
        return problem(422, "validation-failed", "Validation failed",
                       errors[0]["detail"] if errors else "invalid request",
                       request.url.path, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, code, _title(code), str(exc.detail), request.url.path,
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return problem(500, "internal-error", "Internal error",
                       "the server failed to answer; the error was logged.", request.url.path)
