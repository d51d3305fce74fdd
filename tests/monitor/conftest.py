"""A registered binary model and a logbook of its production days, for the monitor's tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tests.conftest import make_classification_frame

import keepwell as kw
from keepwell.config import MonitorSettings, Settings
from keepwell.registry.evaluation import model_outputs

MODEL = "credit"
DAY0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; daily windows start at UTC midnight


def fit_model(X: pd.DataFrame, y: pd.Series) -> Any:
    pre = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])])
    return make_pipeline(pre, LogisticRegression()).fit(X, y)


def monitor_settings(**values: Any) -> MonitorSettings:
    return MonitorSettings.model_validate(values)


@pytest.fixture
def make_workspace(tmp_path: Path, database_url: str
                   ) -> Iterator[Callable[..., kw.Workspace]]:
    """Open workspaces on one database and folder with the given monitor settings."""
    opened: list[kw.Workspace] = []

    def make(**monitor: Any) -> kw.Workspace:
        settings = Settings.for_workspace(tmp_path / "ws", database_url=database_url,
                                          actor="tester", monitor=monitor_settings(**monitor))
        opened.append(kw.Workspace(settings))
        return opened[-1]

    yield make
    for ws in opened:
        ws.close()


class Production:
    """Registers the model, then logs days of traffic (optionally shifted) with labels."""

    def __init__(self, ws: kw.Workspace) -> None:
        self.ws = ws
        X, y = make_classification_frame(3000, seed=1)
        X_hold, y_hold = make_classification_frame(1000, seed=2)
        self.model = fit_model(X, y)
        self.version = ws.register(MODEL, self.model, X, y, holdout=(X_hold, y_hold),
                                   sensitive_features=["region"], alias="champion")

    def log_day(self, day: int, *, n: int = 400, age_shift: float = 0.0, labels: bool = True,
                version: int | None = None, latency_ms: float | None = None,
                seed: int | None = None,
                tamper: Callable[[pd.DataFrame, pd.DataFrame], None] | None = None
                ) -> list[str]:
        X, y = make_classification_frame(n, seed=100 + day if seed is None else seed)
        X["age"] = X["age"] + age_shift
        number = version or self.version.version
        model = self.ws.registry.load_model(f"{MODEL}@{number}")
        outputs = model_outputs(model, X, "binary")
        if tamper is not None:  # a model that behaves differently in production
            tamper(X, outputs)
        start = DAY0 + timedelta(days=day)
        ts = pd.Series([start + timedelta(seconds=int(s)) for s in
                        np.linspace(0, 86_399, n)])
        latency = None if latency_ms is None else np.full(n, latency_ms)
        ids = self.ws.logbook.append_frame(MODEL, number, X, outputs, ts=ts,
                                           latency_ms=latency)
        if labels:
            self.ws.logbook.add_feedback(MODEL, y.tolist(), request_ids=ids)
        return ids


@pytest.fixture
def production(make_workspace: Callable[..., kw.Workspace]) -> Production:
    return Production(make_workspace(window={"every": "1d"}))


class Receiver:
    """A webhook endpoint: records what it was sent, answers ``status`` (or redirects)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 204
        self.redirect_to: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
                if receiver.redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
