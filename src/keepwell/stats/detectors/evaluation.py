"""Evaluate streaming drift detectors on streams whose change points are known.

A :class:`DriftStream` is a stream of values with the indices where a new concept starts;
:func:`error_stream` draws error streams (1 wrong, 0 right) whose error rate steps (an abrupt
change) or ramps linearly over ``transition`` values (a gradual one). :func:`score` matches a
detector's detections with the change points, and :func:`evaluate` runs a detector, by registry
id or as a configured instance, over streams (a fresh clone for each) into a frozen
:class:`DetectorEvaluation`.

**How detections are matched.** The detection of change point :math:`c_k` is the first
detection :math:`d` with :math:`c_k \\le d`, before the next change point (or the end of the
stream) and, when ``max_delay`` is given, :math:`d - c_k < ` ``max_delay``. Its *delay* is
:math:`d - c_k`: the values of the new concept fed before the one that completed the detection
(0 when the very first one did). For a gradual change :math:`c_k` is where the transition
starts. A change point without a detection is *missed*. Every other detection is a *false alarm*
(one before any change, a repeat after a change was detected, or one too late), except a
repeat while a gradual change is still ramping in. False alarms per 100,000 updates divide by
all values fed, over all streams.

>>> from keepwell.stats.detectors.evaluation import error_stream, evaluate
>>> stream = error_stream(20_000, rates=(0.1, 0.3), change_points=(10_000,), seed=1)
>>> result = evaluate("adwin", [stream])
>>> result.missed, result.false_alarms, result.mean_delay
(0, 0, 111.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from keepwell.errors import ValidationError
from keepwell.stats.detectors.base import DriftDetector
from keepwell.stats.detectors.registry import DETECTORS, DetectorRegistry

__all__ = [
    "DetectorEvaluation",
    "DriftStream",
    "StreamKind",
    "StreamScore",
    "error_stream",
    "evaluate",
    "score",
    "standard_streams",
]

StreamKind = Literal["stationary", "abrupt", "gradual"]


@dataclass(frozen=True, eq=False)
class DriftStream:
    """A stream of values and the indices where a new concept starts (read-only ``values``)."""

    name: str
    values: NDArray[np.float64]
    change_points: tuple[int, ...] = ()
    transition: int = 0
    """Values over which each change ramps in (0: abrupt)."""

    @property
    def kind(self) -> StreamKind:
        if not self.change_points:
            return "stationary"
        return "gradual" if self.transition > 0 else "abrupt"


def error_stream(
    n: int,
    rates: Sequence[float],
    change_points: Sequence[int] = (),
    *,
    transition: int = 0,
    seed: int = 0,
    name: str | None = None,
) -> DriftStream:
    """A stream of ``n`` errors (1.0) and successes (0.0) with known changes of the error rate.

    The rate is ``rates[0]`` until ``change_points[0]``, then moves to ``rates[1]`` (at once,
    or linearly over ``transition`` values), and so on. Errors are independent Bernoulli draws
    from ``numpy.random.default_rng(seed)``.

    Raises
    ------
    ValidationError
        ``rates`` are not in [0, 1], there is not one more rate than change points, or the
        change points are not increasing within ``(0, n)``.
    """
    points = tuple(int(c) for c in change_points)
    if n < 1 or len(rates) != len(points) + 1 or not all(0 <= r <= 1 for r in rates):
        raise ValidationError(
            f"error_stream needs n >= 1 and one rate in [0, 1] per concept ({len(points) + 1} "
            f"for {len(points)} change points); got n={n}, rates={list(rates)}."
        )
    if list(points) != sorted(set(points)) or any(not 0 < c < n for c in points):
        raise ValidationError(f"change points must increase within (0, {n}); got {list(points)}.")
    if transition < 0:
        raise ValidationError(f"transition must be >= 0; got {transition}.")
    index = np.arange(n)
    rate = np.full(n, float(rates[0]))
    for k, point in enumerate(points):
        if transition:
            share = np.clip((index - point + 1) / transition, 0.0, 1.0)
        else:
            share = (index >= point).astype(np.float64)
        rate += (rates[k + 1] - rates[k]) * share
    values = (np.random.default_rng(seed).random(n) < rate).astype(np.float64)
    values.flags.writeable = False
    label = name or "-".join(f"{r:g}" for r in rates) + ("" if not transition else f"~{transition}")
    return DriftStream(label, values, points, transition)


def standard_streams(n: int = 100_000, *, seed: int = 0) -> tuple[DriftStream, ...]:
    """Three error streams of ``n`` values: stationary at 0.1, and 0.1 to 0.3 at ``n // 2``,
    abruptly and over ``n // 10`` values."""
    half = n // 2
    return (
        error_stream(n, (0.1,), seed=seed, name="stationary"),
        error_stream(n, (0.1, 0.3), (half,), seed=seed + 1, name="abrupt"),
        error_stream(n, (0.1, 0.3), (half,), transition=n // 10, seed=seed + 2, name="gradual"),
    )


@dataclass(frozen=True)
class StreamScore:
    """How one detector's detections on one stream match its change points."""

    stream: str
    n_updates: int
    change_points: tuple[int, ...]
    detections: tuple[int, ...]
    delays: tuple[int | None, ...]
    """Per change point, the detection delay in values, or None when it was missed."""
    false_alarms: int

    @property
    def missed(self) -> int:
        return sum(delay is None for delay in self.delays)


def score(
    detections: ArrayLike, stream: DriftStream, *, max_delay: int | None = None
) -> StreamScore:
    """Match ``detections`` (indices into ``stream.values``) with the stream's change points."""
    found = np.sort(np.asarray(detections, dtype=np.int64).ravel())
    n = stream.values.size
    if found.size and (found[0] < 0 or found[-1] >= n):
        raise ValidationError(f"detections must be indices in [0, {n}).")
    if max_delay is not None and max_delay < 1:
        raise ValidationError(f"max_delay must be >= 1; got {max_delay}.")
    ends = (*stream.change_points[1:], n)[: len(stream.change_points)]
    delays: list[int | None] = []
    for point, end in zip(stream.change_points, ends, strict=True):
        if max_delay is not None:
            end = min(end, point + max_delay)
        first = int(np.searchsorted(found, point))
        hit = first < found.size and found[first] < end
        delays.append(int(found[first]) - point if hit else None)
    matched = sum(delay is not None for delay in delays)
    # Further detections while a gradual change is still ramping in are not false alarms.
    ramping = np.zeros(found.size, dtype=bool)
    for point in stream.change_points:
        ramping |= (found >= point) & (found < point + stream.transition)
    repeats = int(ramping.sum()) - sum(
        d is not None and d < stream.transition for d in delays
    )
    return StreamScore(
        stream=stream.name,
        n_updates=n,
        change_points=stream.change_points,
        detections=tuple(int(d) for d in found),
        delays=tuple(delays),
        false_alarms=int(found.size) - matched - repeats,
    )


@dataclass(frozen=True)
class DetectorEvaluation:
    """A detector's detection delay, false alarms and missed drifts over a set of streams."""

    detector: str
    params: Mapping[str, Any]
    scores: tuple[StreamScore, ...]
    max_delay: int | None = None
    _delays: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        delays = tuple(d for s in self.scores for d in s.delays if d is not None)
        object.__setattr__(self, "_delays", delays)

    @property
    def n_updates(self) -> int:
        return sum(s.n_updates for s in self.scores)

    @property
    def n_changes(self) -> int:
        return sum(len(s.change_points) for s in self.scores)

    @property
    def detected(self) -> int:
        return len(self._delays)

    @property
    def missed(self) -> int:
        return self.n_changes - self.detected

    @property
    def false_alarms(self) -> int:
        return sum(s.false_alarms for s in self.scores)

    @property
    def false_alarms_per_100k(self) -> float:
        return 100_000 * self.false_alarms / self.n_updates if self.n_updates else 0.0

    @property
    def mean_delay(self) -> float | None:
        """Mean delay of the detected changes, in values; None when none was detected."""
        return float(np.mean(self._delays)) if self._delays else None

    def to_dict(self) -> dict[str, Any]:
        """The metrics and per-stream scores as plain JSON types."""
        return {
            "detector": self.detector,
            "params": dict(self.params),
            "max_delay": self.max_delay,
            "n_updates": self.n_updates,
            "n_changes": self.n_changes,
            "detected": self.detected,
            "missed": self.missed,
            "false_alarms": self.false_alarms,
            "false_alarms_per_100k": self.false_alarms_per_100k,
            "mean_delay": self.mean_delay,
            "streams": [
                {
                    "stream": s.stream,
                    "n_updates": s.n_updates,
                    "change_points": list(s.change_points),
                    "delays": list(s.delays),
                    "missed": s.missed,
                    "false_alarms": s.false_alarms,
                    "detections": list(s.detections),
                }
                for s in self.scores
            ],
        }


def evaluate(
    detector: DriftDetector | str,
    streams: Iterable[DriftStream] | None = None,
    *,
    max_delay: int | None = None,
    registry: DetectorRegistry | None = None,
    **params: Any,
) -> DetectorEvaluation:
    """Run a detector over streams with known change points and score it.

    Parameters
    ----------
    detector
        A registered id (built with ``params`` from ``registry``, :data:`DETECTORS` unless
        given) or a configured detector, which is cloned, never fed itself.
    streams
        The streams; :func:`standard_streams` by default.
    max_delay
        Detections later than this after a change do not count as detecting it.
    """
    if isinstance(detector, str):
        template = (registry or DETECTORS).create(detector, **params)
    elif params:
        raise ValidationError("pass parameters with a detector id, not with a detector object.")
    else:
        template = detector
    scores = []
    for stream in standard_streams() if streams is None else streams:
        found = template.clone().update_many(stream.values)
        scores.append(score(found, stream, max_delay=max_delay))
    return DetectorEvaluation(template.name, template.get_params(), tuple(scores), max_delay)
