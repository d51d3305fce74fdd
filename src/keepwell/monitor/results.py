"""What a check says about one window: its status, headline value, threshold and details."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["CheckResult", "Outcome", "Status", "WindowBounds"]

Status = Literal["ok", "alert", "skipped", "error"]


@dataclass(frozen=True)
class Outcome:
    """A check's answer for one sample of rows, before it is placed in a window.

    ``value`` is the headline number (a drifted share, a metric, a ratio); ``threshold`` the
    bound it was judged by; ``message`` one line for people; ``details`` everything else,
    JSON-safe.
    """

    status: Status
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def skipped(cls, message: str) -> Outcome:
        return cls("skipped", message=message)


@dataclass(frozen=True)
class WindowBounds:
    """``[start, end)``; ``by`` says whether the window was cut by time or by count."""

    start: datetime
    end: datetime
    by: Literal["time", "count"]


@dataclass(frozen=True)
class CheckResult:
    """One check on one model version over one window."""

    model: str
    version: int
    check: str
    kind: str
    window: WindowBounds
    n: int
    outcome: Outcome

    @property
    def status(self) -> Status:
        return self.outcome.status

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite numbers become ``None``)."""
        o = self.outcome
        return {"model": self.model, "version": self.version, "check": self.check,
                "kind": self.kind, "window_start": self.window.start.isoformat(),
                "window_end": self.window.end.isoformat(), "window_by": self.window.by,
                "n": self.n, "status": o.status, "value": finite(o.value),
                "threshold": finite(o.threshold), "message": o.message, "details": o.details}


def finite(value: float | None) -> float | None:
    """``value`` as a float, or ``None`` when it is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
