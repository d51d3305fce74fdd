"""The REST API's request and response shapes, as published in its OpenAPI document.

Request bodies of the hot routes are parsed by keepwell itself (strict JSON, see
:mod:`keepwell.serve.payload`); these models document them and type the responses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AliasBody",
    "AliasOut",
    "FeedbackBody",
    "FeedbackOut",
    "ModelOut",
    "PredictBody",
    "PredictOut",
    "Problem",
    "ReadyOut",
    "TrafficBody",
    "VersionOut",
]

Scalar = str | float | int | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictBody(_Strict):
    """Records, or columns, of feature values; optional routing key and subjects."""

    inputs: list[dict[str, Scalar]] | dict[str, list[Scalar]] = Field(
        description="A list of records, or an object of equal-length columns.")
    key: str | None = Field(default=None, description="Sticky routing key for A/B and canary.")
    subjects: list[str | None] | None = Field(
        default=None, description="Who each record is about (for erasure), one per record.")


class PredictOut(BaseModel):
    model: str
    version: int
    arm: Literal["champion", "challenger"]
    request_ids: list[str]
    predictions: list[Scalar]
    scores: list[float] | None = None
    probabilities: list[list[float]] | None = None
    classes: list[Scalar] | None = None


class FeedbackBody(_Strict):
    """Labels for earlier predictions: by request id, or by subject and event time."""

    labels: list[Scalar] = Field(min_length=1)
    request_ids: list[str] | None = None
    subjects: list[str] | None = None
    event_ts: list[str] | None = Field(default=None, description="ISO 8601 times, with zone.")


class FeedbackOut(BaseModel):
    accepted: int
    unmatched: int


class ModelOut(BaseModel):
    name: str
    task: str
    description: str
    target: str | None
    sensitive_features: list[str]
    latest_version: int | None
    aliases: dict[str, int]


class VersionOut(BaseModel):
    model: str
    version: int
    status: str
    flavor: str
    aliases: list[str]
    metrics: dict[str, float]
    created_at: str
    created_by: str
    reason: str
    parent_version: int | None
    data_fingerprint: str
    signature: dict[str, Any]


class AliasBody(_Strict):
    version: int = Field(ge=1, le=2**31 - 1)
    reason: str = ""


class AliasOut(BaseModel):
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    changed: bool


class TrafficBody(_Strict):
    kind: Literal["champion", "ab", "canary", "shadow"]
    share: float = Field(default=0.0, ge=0.0, le=1.0)
    challenger_alias: str = "challenger"
    reason: str = ""


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, bool]


class Problem(BaseModel):
    """RFC 9457 problem details (extension members such as ``errors`` or ``checks`` may
    follow)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, str]] | None = None
