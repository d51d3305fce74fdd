"""The serving runtime: route a batch, score it with the right version, log it, answer.

Which version answers is decided **per batch**, from the metadata database, just before the
model runs: the aliases and the traffic policy are read in one transaction. Every request in a
batch is in flight at that moment, so the version it gets was the champion (or challenger) at
some moment during the request, and alias or policy changes need no restart. A batch is split
by arm, and each part runs one version: no model call mixes versions. The state is read again
only when the database has changed since it was last read (:mod:`keepwell.serve.changes`, a
check of microseconds on SQLite), which gives the same answer as reading it every time.

Predictions are logged before anyone is answered; if the log cannot take them, every request
of the batch gets a 503 and no prediction leaves the server unlogged.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from keepwell.errors import (
    AliasNotFoundError,
    FieldError,
    InvalidStateError,
    ModelInputError,
    NonFinitePredictionError,
    PayloadError,
)
from keepwell.registry.names import CHAMPION, ModelRef
from keepwell.registry.outputs import ModelOutputs, model_outputs
from keepwell.registry.signature import Signature
from keepwell.registry.traffic import TrafficPolicy
from keepwell.serve.batching import MicroBatcher, Pending
from keepwell.serve.changes import ChangeToken
from keepwell.serve.metrics import Metrics
from keepwell.serve.payload import model_inputs, validate_inputs
from keepwell.workspace import Workspace

__all__ = ["PredictRequest", "Runtime", "Scored"]


@dataclass(frozen=True)
class PredictRequest:
    """One validated request: its columns, row count, routing key and subjects."""

    ref: ModelRef
    inputs: Any
    columns: dict[str, list[Any]]
    rows: int
    signature: Signature
    key: str | None
    subjects: list[str | None] | None


@dataclass(frozen=True)
class Scored:
    """What one request gets back."""

    model: str
    version: int
    arm: str
    request_ids: list[str]
    predictions: list[Any]
    scores: list[float] | None = None
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None


class ModelCache:
    """Loaded models by (name, version); each loaded once, even when asked for concurrently."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._models: dict[tuple[str, int], tuple[Any, Signature]] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, name: str, version: int) -> tuple[Any, Signature]:
        key = (name, version)
        if key in self._models:
            return self._models[key]
        return self._load(key)

    def loaded_signature(self, name: str, version: int) -> Signature | None:
        """The signature of a version already loaded, else None (no I/O: for the event
        loop)."""
        entry = self._models.get((name, version))
        return entry[1] if entry is not None else None

    def _load(self, key: tuple[str, int]) -> tuple[Any, Signature]:
        name, version = key
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._models:
                model = self.ws.registry.load_model(f"{name}@{version}")
                signature = self.ws.registry.get_version(f"{name}@{version}").signature
                self._models[key] = (model, signature)
        return self._models[key]

    def signature(self, name: str, version: int) -> Signature:
        return self.get(name, version)[1]


class Runtime:
    """Batches, routes, scores and logs predictions for every model of a workspace."""

    def __init__(self, ws: Workspace, metrics: Metrics, *, max_batch: int = 64,
                 max_wait_ms: float = 2.0, max_rows: int = 10_000) -> None:
        self.ws = ws
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.max_rows = max_rows
        self.cache = ModelCache(ws)
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keepwell-score")
        self.changes = ChangeToken(ws.db)
        self._batchers: dict[str, MicroBatcher[PredictRequest]] = {}
        # Per model: the change token its aliases and policy were read under, and them.
        self._state: dict[str, tuple[object, dict[str, int], TrafficPolicy]] = {}
        # Versions named by number, and the change token under which each was seen ready.
        self._ready: dict[tuple[str, int], object] = {}

    # -- entry points (event loop) ----------------------------------------------------------

    def batcher(self, ref: ModelRef) -> MicroBatcher[PredictRequest]:
        key = str(ref)
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = MicroBatcher(self._run_batch, max_batch=self.max_batch,
                                   max_wait_ms=self.max_wait_ms)
            self._batchers[key] = batcher
        return batcher

    async def known(self, ref: ModelRef) -> None:
        """Raise ModelNotFoundError (404) for a model that is not registered."""
        if ref.name not in self._state:
            await asyncio.get_running_loop().run_in_executor(
                self.pool, self.ws.registry.get_model, ref.name)

    async def prepare(self, ref: ModelRef, body: Any) -> PredictRequest:
        """Validate a request against the signature of the version it will most likely get."""
        version = await self._expected_version(ref)
        signature = self.cache.loaded_signature(ref.name, version)
        if signature is None:
            signature = await asyncio.get_running_loop().run_in_executor(
                self.pool, self.cache.signature, ref.name, version)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        columns = validate_inputs(inputs, signature, max_rows=self.max_rows)
        rows = len(next(iter(columns.values()))) if columns else 0
        key = body.get("key")
        subjects = body.get("subjects")
        if key is not None and not isinstance(key, str):
            raise PayloadError([FieldError("/key", "key must be a string")])
        if subjects is not None and (not isinstance(subjects, list) or len(subjects) != rows
                                     or not all(s is None or isinstance(s, str)
                                                for s in subjects)):
            raise PayloadError([FieldError("/subjects", "subjects must be a list of strings (or "
                                                    "null), one per record")])
        return PredictRequest(ref, inputs, columns, rows, signature, key, subjects)

    async def predict(self, request: PredictRequest) -> Scored:
        result: Scored = await self.batcher(request.ref).submit(request)
        return result

    async def _expected_version(self, ref: ModelRef) -> int:
        if ref.version is not None:
            return ref.version
        loop = asyncio.get_running_loop()
        state = self._state.get(ref.name)
        if state is None:
            state = await loop.run_in_executor(self.pool, self._read_state, ref.name)
        alias = ref.alias or CHAMPION
        if alias not in state[1]:
            # The cached state may be stale: read it again before saying no.
            state = await loop.run_in_executor(self.pool, self._read_state, ref.name)
        if alias not in state[1]:
            raise AliasNotFoundError(f"model {ref.name!r} has no {alias} to serve.")
        return state[1][alias]

    async def _run_batch(self, batch: list[Pending[PredictRequest]]) -> None:
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(self.pool, self._score_batch, batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)

    # -- scoring (worker thread) --------------------------------------------------------------

    def _read_state(self, name: str, token: object | None = None
                    ) -> tuple[object, dict[str, int], TrafficPolicy]:
        """The model's aliases and policy, read now (under ``token``, taken before)."""
        token = self.changes.current() if token is None else token
        aliases, policy = self.ws.registry.serving_state(name)
        state = self._state[name] = (token, aliases, policy)
        return state

    def _current_state(self, name: str, token: object
                       ) -> tuple[dict[str, int], TrafficPolicy]:
        """The model's aliases and policy as they are now: the cached ones if the database
        has not changed since they were read (``token`` was taken just now), else read."""
        state = self._state.get(name)
        if state is None or state[0] != token:
            state = self._read_state(name, token)
        return state[1], state[2]

    def _score_batch(self, batch: list[Pending[PredictRequest]]) -> list[Scored | BaseException]:
        ref = batch[0].payload.ref
        token = self.changes.current()
        aliases, policy = self._current_state(ref.name, token)
        groups: dict[tuple[str, int], list[int]] = {}
        outcomes: list[Scored | BaseException | None] = [None] * len(batch)
        for i, item in enumerate(batch):
            try:
                arm, version = self._route(ref, item.payload.key, aliases, policy)
            except AliasNotFoundError as exc:
                outcomes[i] = exc
                continue
            groups.setdefault((arm, version), []).append(i)
        for (arm, version), members in groups.items():
            results = self._score_group(ref.name, arm, version, [batch[i] for i in members],
                                        token)
            for i, result in zip(members, results, strict=True):
                outcomes[i] = result
            if arm == "champion" and policy.kind == "shadow" \
                    and policy.challenger_alias in aliases:
                self.pool.submit(self._shadow, ref.name, aliases[policy.challenger_alias],
                                 [batch[i] for i in members], results)
        return [o if o is not None else RuntimeError("not scored") for o in outcomes]

    @staticmethod
    def _route(ref: ModelRef, key: str | None, aliases: dict[str, int],
               policy: TrafficPolicy) -> tuple[str, int]:
        if ref.version is not None:
            return "champion", ref.version
        if ref.alias is not None and (ref.pinned or ref.alias != CHAMPION):
            if ref.alias not in aliases:
                raise AliasNotFoundError(f"model {ref.name!r} has no alias {ref.alias!r}.")
            return ("challenger" if ref.alias == policy.challenger_alias else "champion",
                    aliases[ref.alias])
        if CHAMPION not in aliases:
            raise AliasNotFoundError(f"model {ref.name!r} has no champion to serve.")
        if policy.arm_for(key) == "challenger" and policy.challenger_alias in aliases:
            return "challenger", aliases[policy.challenger_alias]
        return "champion", aliases[CHAMPION]

    def _inputs_for(self, items: Sequence[Pending[PredictRequest]], signature: Signature
                    ) -> list[dict[str, list[Any]] | PayloadError]:
        """Each request's columns for ``signature``, re-validated if it was checked against
        another version's signature (the champion moved meanwhile)."""
        out: list[dict[str, list[Any]] | PayloadError] = []
        for item in items:
            request = item.payload
            if request.signature.inputs == signature.inputs:
                out.append(request.columns)
                continue
            try:
                out.append(validate_inputs(request.inputs, signature, max_rows=self.max_rows))
            except PayloadError as exc:
                out.append(exc)
        return out

    def _joined_inputs(self, items: Sequence[Pending[PredictRequest]], signature: Signature
                       ) -> tuple[list[dict[str, list[Any]] | PayloadError], list[int],
                                  tuple[pd.DataFrame, pa.Table] | None]:
        """Each request's inputs for ``signature``, the positions of the valid ones, and
        those joined: the model's frame and the logbook's table (None if none is valid)."""
        prepared = self._inputs_for(items, signature)
        valid = [(i, p) for i, p in enumerate(prepared) if not isinstance(p, PayloadError)]
        if not valid:
            return prepared, [], None
        columns = {n: [v for _, p in valid for v in p[n]] for n in signature.feature_names}
        return prepared, [i for i, _ in valid], model_inputs(columns, signature)

    def _check_servable(self, name: str, version: int, token: object) -> None:
        """A version named by number may have been archived or deleted since it was last
        seen ready (aliases only ever point at ready ones): check again if anything
        changed."""
        if self._ready.get((name, version)) == token:
            return
        status = self.ws.registry.get_version(f"{name}@{version}").status
        if status != "ready":
            raise InvalidStateError(f"{name}@{version} is {status} and is not served.")
        self._ready[(name, version)] = token

    def _score_group(self, name: str, arm: str, version: int,
                     items: Sequence[Pending[PredictRequest]], token: object
                     ) -> list[Scored | BaseException]:
        try:
            if items[0].payload.ref.version is not None:
                self._check_servable(name, version, token)
            model, signature = self.cache.get(name, version)
        except Exception as exc:  # noqa: BLE001  (every request of the group gets it)
            return [exc] * len(items)
        prepared, good, joined = self._joined_inputs(items, signature)
        results: list[Scored | BaseException] = [
            p if isinstance(p, PayloadError) else RuntimeError("not scored") for p in prepared]
        if joined is None:
            return results
        frame, features = joined
        try:
            outputs = model_outputs(model, frame, signature.task)
            outputs.check_finite()
        except Exception as exc:  # noqa: BLE001  (find which requests the model cannot take)
            if len(good) == 1:
                results[good[0]] = _model_error(exc)
                return results
            # Score each request alone: only those the model fails on get the error.
            for i in good:
                results[i] = self._score_group(name, arm, version, [items[i]], token)[0]
            return results
        now = time.perf_counter()
        latency = [1000 * (now - items[i].received) for i in good
                   for _ in range(items[i].payload.rows)]
        subjects = [s for i in good for s in (items[i].payload.subjects
                                             or [None] * items[i].payload.rows)]
        try:
            ids = self.ws.logbook.append_frame(name, version, features, outputs.to_arrow(),
                                               arm=arm, latency_ms=latency, subjects=subjects)
        except Exception as exc:  # noqa: BLE001  (nothing is answered unlogged)
            for i in good:
                results[i] = exc
            return results
        self.metrics.observe_batch(name, version, arm, len(good), len(outputs))
        offset = 0
        for i in good:
            n = items[i].payload.rows
            results[i] = _scored(name, version, arm, ids[offset:offset + n], outputs,
                                 slice(offset, offset + n), signature)
            offset += n
        return results

    def _shadow(self, name: str, version: int, items: list[Pending[PredictRequest]],
                champion_results: list[Scored | BaseException]) -> None:
        """Score the champion's requests with the challenger too, logged as ``shadow`` under
        the same request ids (so labels join both), never answered."""
        scored: list[tuple[Pending[PredictRequest], Scored]] = [
            (item, r) for item, r in zip(items, champion_results, strict=True)
            if isinstance(r, Scored)]
        if not scored:
            return
        try:
            model, signature = self.cache.get(name, version)
            _, good, joined = self._joined_inputs([item for item, _ in scored], signature)
            if joined is None:
                return
            frame, features = joined
            outputs = model_outputs(model, frame, signature.task)
            ids = [rid for i in good for rid in scored[i][1].request_ids]
            self.ws.logbook.append_frame(name, version, features, outputs.to_arrow(),
                                         arm="shadow", request_ids=ids)
            self.metrics.observe_batch(name, version, "shadow", len(good), len(outputs))
        except Exception:  # noqa: BLE001  (a shadow failure must never touch the champion)
            self.metrics.shadow_failures.labels(name).inc()

    def report_queue_depths(self) -> None:
        for key, batcher in self._batchers.items():
            self.metrics.queue_depth.labels(key).set(batcher.depth)

    async def close(self) -> None:
        for batcher in list(self._batchers.values()):
            await batcher.close()
        self.pool.shutdown(wait=True)
        self.changes.close()


def _model_error(exc: Exception) -> Exception:
    """What a request the model failed on gets: non-finite output stays a 500; the model
    refusing the inputs (a null it cannot impute, a category it cannot encode) is a 422."""
    if isinstance(exc, NonFinitePredictionError):
        return exc
    return ModelInputError(f"the model could not score these inputs ({type(exc).__name__}); "
                           "check for missing values or categories the model cannot handle.")


def _scored(name: str, version: int, arm: str, ids: list[str], outputs: ModelOutputs,
            rows: slice, signature: Signature) -> Scored:
    predictions = outputs.prediction[rows].tolist()
    score = outputs.score
    if signature.task == "binary" and score is not None:
        return Scored(name, version, arm, ids, predictions, scores=score[rows].tolist())
    if signature.task != "binary" and outputs.probabilities is not None:
        return Scored(name, version, arm, ids, predictions,
                      probabilities=outputs.probabilities[rows].tolist(),
                      classes=list(signature.classes or ()))
    return Scored(name, version, arm, ids, predictions)
