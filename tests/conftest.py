"""Shared fixtures: a workspace on SQLite and on the PostgreSQL server at 127.0.0.1:5432.

Each PostgreSQL test gets a schema of its own (through ``search_path``), dropped afterwards, so
tests never see each other's rows. Set ``TEST_POSTGRES_URL`` to use another server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

import keepwell as kw
from keepwell.config import Settings

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_schema_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose tables live in a fresh PostgreSQL schema."""
    schema = f"kw_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield postgres_schema_url(schema)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keepwell.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings.for_workspace(tmp_path / "ws", database_url=database_url, actor="tester")


@pytest.fixture
def workspace(settings: Settings) -> Iterator[kw.Workspace]:
    ws = kw.Workspace(settings)
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture(scope="session")
def acs() -> pd.DataFrame:
    """The ACS employment reference year (2015), as shipped in data/."""
    root = Path(__file__).resolve().parents[1] / "data" / "acs-employment-ma"
    return pd.read_parquet(root / "employment_MA_reference.pq")


def make_classification_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A small mixed-type binary problem: two numeric features and one categorical."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "age": rng.normal(40, 12, n).round(1),
        "income": rng.lognormal(10, 0.5, n),
        "region": pd.Categorical(rng.choice(["north", "south", "east"], n)),
    })
    logit = 0.05 * (X["age"] - 40) + 0.8 * (X["region"] == "north") - 0.3
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), name="label")
    return X, y


@pytest.fixture
def classification_data() -> tuple[pd.DataFrame, pd.Series]:
    return make_classification_frame()


@pytest.fixture
def fitted_pipeline(classification_data: tuple[pd.DataFrame, pd.Series]) -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = classification_data
    pre = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])])
    return make_pipeline(pre, LogisticRegression()).fit(X, y)
