"""SIGKILL a process while it registers model versions (RELIABILITY D5).

A forked child registers versions of one model in a loop, each with new model bytes; the parent
kills it with SIGKILL after a seeded random delay, then opens the workspace and checks what must
hold after any crash, on SQLite and on PostgreSQL:

* versions are numbered 1..n without gaps, and each one is complete: its model file and its
  profile exist, hash to their pinned sha256 and load;
* the number of versions grew by at least the registrations the child saw finish and at most
  the ones it started;
* the audit chain verifies and has exactly one ``version.register`` event per version;
* no partial object is visible: every file under ``objects/`` hashes to its name;
* ``sweep_temp(older_than_seconds=0)`` removes exactly the ``.tmp`` files the crash left.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.conftest import make_classification_frame

import keepwell as kw
from keepwell.config import Settings
from keepwell.store.artifacts import sha256_file

NAME = "churn"
CYCLES = 20
SEED = 20261126
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _training() -> tuple[pd.DataFrame, pd.Series, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = make_classification_frame(n=300, seed=11)
    pre = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])])
    return X, y, make_pipeline(pre, LogisticRegression()).fit(X, y)


def _registrar(settings_json: str, X: pd.DataFrame, y: pd.Series, model: Any,
               started: Any, done: Any) -> None:
    """Register versions until killed; ``started`` and ``done`` count register() calls begun
    and returned, over every child, so ``started - done`` is 1 while a call is in flight."""
    settings = Settings.model_validate_json(settings_json)
    ws = kw.Workspace(settings, actor="registrar")
    while True:
        attempt = started.value + 1
        # A parameter the fitted model no longer uses: new artifact bytes, same predictions.
        model.set_params(logisticregression__C=1.0 + attempt / 1000)
        started.value = attempt
        ws.registry.register(NAME, model, X, y, reason=f"attempt {attempt}")
        done.value += 1


def _check_objects(root: Path) -> set[str]:
    """Digests of the stored objects, after checking each one hashes to its name."""
    objects = root / "objects"
    if not objects.exists():
        return set()
    digests = set()
    for folder in objects.iterdir():
        assert folder.is_dir() and re.fullmatch(r"[0-9a-f]{2}", folder.name), folder
        for path in folder.iterdir():
            assert _DIGEST.fullmatch(path.name) and path.name[:2] == folder.name, path
            assert sha256_file(path) == path.name, f"partial or altered object {path.name}"
            digests.add(path.name)
    return digests


def _check_workspace(settings: Settings, loaded: set[int]) -> tuple[int, int]:
    """Check every invariant of a crashed workspace; returns (versions, .tmp files swept)."""
    root = Path(settings.artifact_root)
    with kw.Workspace(settings, actor="checker") as ws:
        if ws.db.dialect == "sqlite":
            with ws.db.read() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        digests = _check_objects(root)
        exists = bool(ws.registry.list_models())
        versions = ws.registry.list_versions(NAME, include_deleted=True) if exists else []
        n = len(versions)
        assert [v.version for v in versions] == list(range(1, n + 1))
        assert {v.status for v in versions} <= {"ready"}
        for v in versions:
            assert v.artifact_sha256 in digests and v.profile_sha256 in digests, v.ref
            if v.version not in loaded:
                model = ws.registry.load_model(v.ref)  # verifies the sha256 again
                assert model.get_params()["logisticregression__C"] == v.params[
                    "logisticregression__C"]
                assert ws.registry.load_profile(v.ref).n_rows == 300
                loaded.add(v.version)
        events = ws.audit.events()
        assert [(e.action, e.target) for e in events] == [
            ("version.register", f"{NAME}@{i}") for i in range(1, n + 1)]
        verified = ws.audit.verify()
        assert verified.ok, verified
        assert verified.checked == n
        tmp = root / ".tmp"
        leftovers = list(tmp.iterdir()) if tmp.is_dir() else []
        assert ws.artifacts.sweep_temp(older_than_seconds=0) == len(leftovers)
        assert not tmp.is_dir() or not any(tmp.iterdir())
    return n, len(leftovers)


@pytest.mark.slow
def test_sigkill_during_registration_leaves_only_complete_versions(settings: Settings) -> None:
    X, y, model = _training()
    rng = random.Random(SEED)
    ctx = mp.get_context("fork")
    started = ctx.RawValue("q", 0)  # no lock: a killed child must not leave one held
    done = ctx.RawValue("q", 0)
    loaded: set[int] = set()
    seen: Counter[str] = Counter()
    n, _ = _check_workspace(settings, loaded)  # creates the schema before the first child

    for _cycle in range(CYCLES):
        started.value = done.value  # forget the call the last kill interrupted
        started_before, done_before, n_before = started.value, done.value, n
        child = ctx.Process(target=_registrar, daemon=True, args=(
            settings.model_dump_json(), X, y, model, started, done))
        child.start()
        assert child.pid is not None
        try:
            deadline = time.monotonic() + 60
            while started.value == started_before:  # wait until it is registering
                assert child.exitcode is None, "the registrar died on its own"
                assert time.monotonic() < deadline, "the registrar never started"
                time.sleep(0.002)
            time.sleep(rng.uniform(0.05, 0.6))
            os.kill(child.pid, signal.SIGKILL)
            child.join(timeout=30)
            assert child.exitcode == -signal.SIGKILL, "the registrar stopped before the kill"
        finally:
            if child.exitcode is None:
                os.kill(child.pid, signal.SIGKILL)
                child.join(timeout=30)

        n, swept = _check_workspace(settings, loaded)
        finished, begun = done.value - done_before, started.value - started_before
        assert finished <= n - n_before <= begun, (n_before, n, finished, begun)
        if started.value != done.value:
            seen["killed inside register()"] += 1
            seen["... before its commit" if n - n_before == finished else
                 "... after its commit"] += 1
        seen["cycles leaving .tmp files"] += bool(swept)
        seen[".tmp files swept"] += swept

    assert n >= 1
    assert seen["killed inside register()"] >= 1, seen
    with kw.Workspace(settings, actor="checker") as ws:  # a last full pass over every version
        for v in ws.registry.list_versions(NAME):
            ws.registry.load_model(v.ref)
            ws.registry.load_profile(v.ref)
    print(f"{n} versions after {CYCLES} kills: {dict(seen)}")
