"""Helpers and fixtures of the server tests (tests/serve).

Test modules import the fixtures they use from here (``anyio_backend``, ``make_served``,
``served``, ``client``): a ``conftest.py`` in this folder would shadow the top-level one for
the modules that do ``from conftest import ...``.

Requests go through ``httpx.AsyncClient`` over ``httpx.ASGITransport`` (the application's own
ASGI callable, with its lifespan entered, so champions are preloaded as in production). The
transport is told not to re-raise application errors, so a test sees what a client would see.
Tests are async and run with anyio's pytest plugin, on asyncio.

Registering models for every test would dominate the run, so each worker registers them once
per layout in a template workspace (SQLite and local files, relocatable) and every test gets
a fresh copy of it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import keepwell as kw
from keepwell.access import PERMISSIONS
from keepwell.config import ServeSettings, Settings
from keepwell.serve import create_app

ROLES = tuple(PERMISSIONS)
MODEL = "churn"
RECORD = {"age": 31.5, "income": 25_000.0, "region": "north"}
PROBLEM_TYPE = "https://keepwell.dev/problems/"


@dataclass
class Served:
    """A workspace with ``churn`` registered, a token per role, and its app (not started)."""

    settings: Settings
    ws: kw.Workspace
    app: FastAPI
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


MakeServed = Callable[..., Served]


def make_settings(root: Path, database_url: str | None = None, **serve: Any) -> Settings:
    overrides: dict[str, Any] = {"actor": "tester", "serve": ServeSettings(**serve)}
    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings.for_workspace(root, **overrides)


def populate(ws: kw.Workspace, model: Any, data: tuple[Any, Any], versions: int = 2,
             champion: int | None = 1, challenger: int | None = None) -> dict[str, str]:
    """Register ``versions`` versions of ``churn``, set aliases, create one token per role."""
    X, y = data
    for _ in range(versions):
        ws.registry.register(MODEL, model, X, y)
    if champion is not None:
        ws.registry.set_alias(MODEL, "champion", champion)
    if challenger is not None:
        ws.registry.set_alias(MODEL, "challenger", challenger)
    return {role: ws.tokens.create(f"{role}-token", role)[1] for role in ROLES}


@asynccontextmanager
async def open_client(app: FastAPI, host: str = "testserver"
                      ) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and a client speaking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            yield client


def assert_problem(response: httpx.Response, status: int, code: str | None = None
                   ) -> dict[str, Any]:
    """An RFC 9457 body with ``status`` (and problem type ``code``); returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    if code is not None:
        assert body["type"] == PROBLEM_TYPE + code, body
    return body


def pointers(body: dict[str, Any]) -> set[str]:
    """The JSON pointers named by a problem's ``errors``."""
    return {e["pointer"] for e in body.get("errors", [])}


def logged_ids(ws: kw.Workspace, arm: str | None = None) -> list[str]:
    """Request ids in the logbook for ``churn`` (optionally of one arm), as text."""
    table = ws.logbook.predictions(MODEL, arm=arm, columns=["request_id"])
    return [str(v) for v in table.column("request_id").to_pylist()]


# -- fixtures -------------------------------------------------------------------------------

Layout = tuple[int, int | None, int | None]
_TEMPLATES: dict[Layout, tuple[Path, dict[str, str]]] = {}  # per worker process


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_served(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                fitted_pipeline: Any, classification_data: Any) -> Iterator[MakeServed]:
    """Build a :class:`Served`: a copy of a template workspace, or, given ``settings`` (say
    on PostgreSQL), a workspace populated from scratch. Closes what it opened."""
    opened: list[kw.Workspace] = []

    def build(settings: Settings | None = None, *, versions: int = 2, champion: int | None = 1,
              challenger: int | None = None,
              workspace: Callable[[Settings], kw.Workspace] | None = None,
              **serve: Any) -> Served:
        open_ws = workspace or kw.Workspace
        if settings is None:
            layout = (versions, champion, challenger)
            if layout not in _TEMPLATES or not _TEMPLATES[layout][0].exists():
                root = tmp_path_factory.mktemp("template") / "ws"
                with kw.Workspace(make_settings(root)) as ws:
                    tokens = populate(ws, fitted_pipeline, classification_data, *layout)
                _TEMPLATES[layout] = (root, tokens)
            template, tokens = _TEMPLATES[layout]
            target = tmp_path / f"ws{len(opened)}"
            shutil.copytree(template, target)
            settings = make_settings(target, **serve)
            ws = open_ws(settings)
            opened.append(ws)
        else:
            ws = open_ws(settings)
            opened.append(ws)
            tokens = populate(ws, fitted_pipeline, classification_data, versions, champion,
                              challenger)
        return Served(settings, ws, create_app(settings, workspace=ws), tokens)

    yield build
    for ws in opened:
        ws.close()


@pytest.fixture
def served(make_served: MakeServed) -> Served:
    """SQLite workspace, two versions of ``churn``, champion at 1."""
    return make_served()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(served.app) as c:
        yield c
