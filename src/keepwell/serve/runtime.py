"""The serving runtime: route a batch, score it with the right version, log it, answer.

Which version answers is decided **per batch**, from the metadata database, just before the
model runs: the aliases and the traffic policy are read in one transaction. Every request in a
batch is in flight at that moment, so the version it gets was the champion (or challenger) at
some moment during the request, and alias or policy changes need no restart. A batch is split
by arm, and each part runs one version: no model call mixes versions.

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

import numpy as np
import pandas as pd

from keepwell.errors import (
    AliasNotFoundError,
    FieldError,
    InvalidStateError,
    ModelInputError,
    NonFinitePredictionError,
    PayloadError,
)
from keepwell.registry.evaluation import model_outputs
from keepwell.registry.names import CHAMPION, ModelRef
from keepwell.registry.signature import Signature
from keepwell.registry.traffic import TrafficPolicy
from keepwell.serve.batching import MicroBatcher, Pending
from keepwell.serve.metrics import Metrics
from keepwell.serve.payload import frame_from_columns, validate_inputs
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

    def get_servable(self, name: str, version: int) -> tuple[Any, Signature]:
        """As :meth:`get`, after checking (in the database, now) that the version may still
        be served: archiving or deleting one takes effect on the next batch."""
        status = self.ws.registry.get_version(f"{name}@{version}").status
        if status != "ready":
            raise InvalidStateError(f"{name}@{version} is {status} and is not served.")
        return self.get(name, version)

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
        self._batchers: dict[str, MicroBatcher[PredictRequest]] = {}
        self._state: dict[str, tuple[dict[str, int], TrafficPolicy]] = {}

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
        state = self._state.get(ref.name)
        if state is None:
            state = await asyncio.get_running_loop().run_in_executor(
                self.pool, self.ws.registry.serving_state, ref.name)
            self._state[ref.name] = state
        alias = ref.alias or CHAMPION
        if alias not in state[0]:
            # The cached state may be stale: read it again before saying no.
            state = await asyncio.get_running_loop().run_in_executor(
                self.pool, self.ws.registry.serving_state, ref.name)
            self._state[ref.name] = state
        if alias not in state[0]:
            raise AliasNotFoundError(f"model {ref.name!r} has no {alias} to serve.")
        return state[0][alias]

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

    def _score_batch(self, batch: list[Pending[PredictRequest]]) -> list[Scored | BaseException]:
        ref = batch[0].payload.ref
        aliases, policy = self.ws.registry.serving_state(ref.name)
        self._state[ref.name] = (aliases, policy)
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
            results = self._score_group(ref.name, arm, version, [batch[i] for i in members])
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

    def _joined_frame(self, items: Sequence[Pending[PredictRequest]], signature: Signature
                      ) -> tuple[list[dict[str, list[Any]] | PayloadError], list[int],
                                 pd.DataFrame | None]:
        """Each request's inputs for ``signature``, the positions of the valid ones, and one
        frame joining those (None if there are none)."""
        prepared = self._inputs_for(items, signature)
        valid = [(i, p) for i, p in enumerate(prepared) if not isinstance(p, PayloadError)]
        if not valid:
            return prepared, [], None
        columns = {n: [v for _, p in valid for v in p[n]] for n in signature.feature_names}
        return prepared, [i for i, _ in valid], frame_from_columns(columns, signature)

    def _score_group(self, name: str, arm: str, version: int,
                     items: Sequence[Pending[PredictRequest]]) -> list[Scored | BaseException]:
        # A version named by number may have been archived; aliases only point at ready ones.
        pinned = items[0].payload.ref.version is not None
        try:
            model, signature = self.cache.get_servable(name, version) if pinned \
                else self.cache.get(name, version)
        except Exception as exc:  # noqa: BLE001  (every request of the group gets it)
            return [exc] * len(items)
        prepared, good, frame = self._joined_frame(items, signature)
        results: list[Scored | BaseException] = [
            p if isinstance(p, PayloadError) else RuntimeError("not scored") for p in prepared]
        if frame is None:
            return results
        try:
            outputs = model_outputs(model, frame, signature.task)
            _check_finite(outputs)
        except Exception as exc:  # noqa: BLE001  (find which requests the model cannot take)
            if len(good) == 1:
                results[good[0]] = _model_error(exc)
                return results
            # Score each request alone: only those the model fails on get the error.
            for i in good:
                results[i] = self._score_group(name, arm, version, [items[i]])[0]
            return results
        now = time.perf_counter()
        latency = [1000 * (now - items[i].received) for i in good
                   for _ in range(items[i].payload.rows)]
        subjects = [s for i in good for s in (items[i].payload.subjects
                                             or [None] * items[i].payload.rows)]
        try:
            ids = self.ws.logbook.append_frame(name, version, frame, outputs, arm=arm,
                                               latency_ms=latency, subjects=subjects)
        except Exception as exc:  # noqa: BLE001  (nothing is answered unlogged)
            for i in good:
                results[i] = exc
            return results
        self.metrics.observe_batch(name, version, arm, len(good), frame.shape[0])
        offset = 0
        for i in good:
            n = items[i].payload.rows
            results[i] = _scored(name, version, arm, ids[offset:offset + n],
                                 outputs.iloc[offset:offset + n], signature)
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
            _, good, frame = self._joined_frame([item for item, _ in scored], signature)
            if frame is None:
                return
            outputs = model_outputs(model, frame, signature.task)
            ids = [rid for i in good for rid in scored[i][1].request_ids]
            self.ws.logbook.append_frame(name, version, frame, outputs, arm="shadow",
                                         request_ids=ids)
            self.metrics.observe_batch(name, version, "shadow", len(good), frame.shape[0])
        except Exception:  # noqa: BLE001  (a shadow failure must never touch the champion)
            self.metrics.shadow_failures.labels(name).inc()

    def report_queue_depths(self) -> None:
        for key, batcher in self._batchers.items():
            self.metrics.queue_depth.labels(key).set(batcher.depth)

    async def close(self) -> None:
        for batcher in list(self._batchers.values()):
            await batcher.close()
        self.pool.shutdown(wait=True)


def _model_error(exc: Exception) -> Exception:
    """What a request the model failed on gets: non-finite output stays a 500; the model
    refusing the inputs (a null it cannot impute, a category it cannot encode) is a 422."""
    if isinstance(exc, NonFinitePredictionError):
        return exc
    return ModelInputError(f"the model could not score these inputs ({type(exc).__name__}); "
                           "check for missing values or categories the model cannot handle.")


def _check_finite(outputs: pd.DataFrame) -> None:
    numeric = outputs.select_dtypes(include="number")
    if numeric.size and not np.isfinite(numeric.to_numpy(dtype=float)).all():
        raise NonFinitePredictionError(
            "the model returned NaN or an infinite value, which cannot be sent as JSON; "
            "check the model and the inputs it was given.")


def _scored(name: str, version: int, arm: str, ids: list[str], outputs: pd.DataFrame,
            signature: Signature) -> Scored:
    predictions = outputs["prediction"].tolist()
    if signature.task == "binary" and "score" in outputs:
        return Scored(name, version, arm, ids, predictions, scores=outputs["score"].tolist())
    proba = [c for c in outputs.columns if c.startswith("proba_")]
    if proba:
        return Scored(name, version, arm, ids, predictions,
                      probabilities=outputs[proba].to_numpy().tolist(),
                      classes=list(signature.classes or ()))
    return Scored(name, version, arm, ids, predictions)
