"""The change token (keepwell.serve.changes) on SQLite and PostgreSQL: equal while nothing
changes, different after any change made elsewhere (another engine stands for another
process), and the server routes by an alias moved elsewhere on its very next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import serve_support
from serve_support import MODEL, RECORD, MakeServed, open_client

import keepwell as kw
from keepwell.serve.changes import ChangeToken
from keepwell.store.db import Database

anyio_backend, make_served = serve_support.anyio_backend, serve_support.make_served


@pytest.fixture
def workspace_db(workspace: kw.Workspace) -> Iterator[tuple[kw.Workspace, ChangeToken]]:
    changes = ChangeToken(workspace.db)
    try:
        yield workspace, changes
    finally:
        changes.close()


def test_the_token_holds_while_nothing_changes(workspace_db: tuple[kw.Workspace, ChangeToken],
                                               fitted_pipeline: Any,
                                               classification_data: Any) -> None:
    ws, changes = workspace_db
    ws.registry.register(MODEL, fitted_pipeline, *classification_data)
    first = changes.current()
    ws.registry.list_models()  # reads change nothing
    ws.registry.serving_state(MODEL)
    assert changes.current() == first


def test_a_change_made_elsewhere_moves_the_token(workspace_db: tuple[kw.Workspace, ChangeToken],
                                                 fitted_pipeline: Any,
                                                 classification_data: Any) -> None:
    ws, changes = workspace_db
    for _ in range(2):
        ws.registry.register(MODEL, fitted_pipeline, *classification_data)
    before = changes.current()
    other = kw.Workspace(ws.settings)  # its own engine and connections: another process
    try:
        other.registry.set_alias(MODEL, "champion", 2)
        after = changes.current()
        assert after != before
        other.registry.archive_version(MODEL, 1)
        assert changes.current() not in (before, after)
    finally:
        other.close()


def test_a_broken_watch_asks_for_a_fresh_read(tmp_path: Any) -> None:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    db.ensure_schema()
    changes = ChangeToken(db)
    first = changes.current()
    changes.close()  # the watching connection is gone: the next token starts a new count
    second = changes.current()
    assert second != first
    assert changes.current() == second
    changes.close()
    db.dispose()


@pytest.mark.anyio
async def test_an_alias_moved_by_another_process_is_served_next(make_served: MakeServed
                                                                ) -> None:
    served = make_served()
    async with open_client(served.app) as client:
        ask = {"json": {"inputs": [RECORD]}, "headers": served.auth()}
        assert (await client.post(f"/v1/models/{MODEL}/predict", **ask)).json()["version"] == 1
        other = kw.Workspace(served.settings)
        try:
            other.registry.set_alias(MODEL, "champion", 2)
        finally:
            other.close()
        assert (await client.post(f"/v1/models/{MODEL}/predict", **ask)).json()["version"] == 2
