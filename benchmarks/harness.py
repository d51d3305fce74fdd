"""What every benchmark shares: repeated timing, where-the-time-goes timers, results, output.

A benchmark produces :class:`Measurement` objects; :func:`render` prints them as a Rich table
and :func:`write_json` stores them, with the machine they ran on, as a small JSON file that can
be committed next to the code.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

__all__ = ["Measurement", "Peer", "Target", "Timers", "environment", "median_run", "render",
           "repeat", "write_json"]


@dataclass(frozen=True)
class Target:
    """What the issue asks for: ``value >= bound`` (``at_least``) or ``value < bound``."""

    kind: Literal["at_least", "below"]
    bound: float

    def met(self, value: float) -> bool:
        return value >= self.bound if self.kind == "at_least" else value < self.bound

    def __str__(self) -> str:
        return f"{'≥' if self.kind == 'at_least' else '<'} {_number(self.bound)}"


@dataclass(frozen=True)
class Peer:
    """The same work done by a peer tool in the same run; ``ratio`` is keepwell / peer."""

    name: str
    value: float
    ratio: float


@dataclass
class Measurement:
    """One reported number: the median of ``runs``, with its unit and what it is judged by."""

    key: str
    label: str
    value: float
    unit: str
    runs: list[float]
    target: Target | None = None
    peer: Peer | None = None
    breakdown: dict[str, float] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    breakdown_unit: str = "s"

    def met(self, judged: bool) -> bool | None:
        """Whether the target is met, or None when there is none or the run is not judged."""
        if self.target is None or not judged:
            return None
        return self.target.met(self.value)


def repeat(run: Callable[[], dict[str, Any]], *, runs: int, warmup: int = 1
           ) -> list[dict[str, Any]]:
    """Call ``run`` ``warmup`` times (discarded), then ``runs`` times; each call returns a dict
    with at least ``seconds``."""
    for _ in range(warmup):
        run()
    return [run() for _ in range(runs)]


def median_run(results: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    """The run whose ``key`` is the median (the lower middle one for an even count), so that
    its breakdown belongs to the number reported."""
    ordered = sorted(results, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


class Timers:
    """Exclusive wall time per name, for functions wrapped with :meth:`wrap`.

    A wrapped call nested in another is subtracted from the outer one, so the totals add up to
    at most the wall time, like a profiler's ``tottime`` for a handful of chosen functions.
    One thread at a time.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[float] = []
        self._thread: int | None = None

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self._thread:
                return fn(*args, **kwargs)
            self._stack.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                nested = self._stack.pop()
                self.totals[name] += elapsed - nested
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1] += elapsed
        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed

    @contextmanager
    def patched(self, *targets: tuple[object, str, str]) -> Iterator[Timers]:
        """Wrap ``getattr(owner, attribute)`` as ``name`` for each ``(owner, attribute, name)``
        while the block runs (in the calling thread only), then restore them."""
        saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]
        self.reset()
        self._thread = threading.get_ident()
        try:
            for (owner, attr, name), (_, _, original) in zip(targets, saved, strict=True):
                setattr(owner, attr, self.wrap(name, original))
            yield self
        finally:
            self._thread = None
            for owner, attr, original in saved:
                setattr(owner, attr, original)

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()


def environment() -> dict[str, Any]:
    """The machine and library versions a result belongs to."""
    import duckdb
    import numpy
    import pandas
    import pyarrow

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "src"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gib = None
    return {
        "commit": commit + ("+dirty-src" if dirty else ""),
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {"pyarrow": pyarrow.__version__, "duckdb": duckdb.__version__,
                     "pandas": pandas.__version__, "numpy": numpy.__version__},
        "speed": machine_speed(),
    }


def machine_speed() -> dict[str, float]:
    """Two fixed pieces of work, best of three, timed when the results are written: this
    (shared, virtual) machine runs at different speeds on different days, and these say how
    fast it was for this run, so results of two runs can be compared."""
    import numpy

    def best(work: Callable[[], object]) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return round(min(times) * 1000, 1)

    values = numpy.random.default_rng(0).random(2_000_000)
    return {"python_sum_range_1e7_ms": best(lambda: sum(range(10**7))),
            "numpy_sort_2e6_ms": best(lambda: numpy.sort(values))}


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2g}"


def _with_unit(value: float, unit: str) -> str:
    if unit == "s" and value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.2f} ms"
    return f"{_number(value)} {unit}"


def _part(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"
    return f"{value:.3g}"


def render(title: str, measurements: list[Measurement], *, judged: bool,
           console: Console | None = None) -> None:
    """Print the numbers, then where the time went for those that have a breakdown."""
    console = console or Console()
    table = Table(title=title, title_justify="left")
    for column in ("benchmark", "keepwell", "target", "met", "peer", "keepwell/peer", "runs",
                   "notes"):
        table.add_column(column, justify="left" if column in ("benchmark", "peer", "notes")
                         else "right")
    for m in measurements:
        met = m.met(judged)
        table.add_row(
            m.label,
            _with_unit(m.value, m.unit),
            str(m.target) if m.target else "",
            "" if met is None else ("[green]yes[/]" if met else "[red]no[/]"),
            f"{m.peer.name}: {_with_unit(m.peer.value, m.unit)}" if m.peer else "",
            f"{m.peer.ratio:.2f}×" if m.peer else "",
            " / ".join(_number(r) for r in m.runs),
            m.note,
        )
    console.print(table)
    broken = [m for m in measurements if m.breakdown]
    if broken:
        parts = Table(title="where the time goes (median run; exclusive time of each piece)",
                      title_justify="left")
        parts.add_column("benchmark")
        parts.add_column("unit")
        parts.add_column("parts (under 0.5% left out)")
        for m in broken:
            total = sum(m.breakdown.values())
            parts.add_row(m.label, m.breakdown_unit, "  ".join(
                f"{name} {_part(value, m.breakdown_unit)} ({value / total:.0%})"
                for name, value in m.breakdown.items() if value / total >= 0.005))
        console.print(parts)
    if not judged:
        console.print("[yellow]--quick: sizes are scaled down; targets are not judged.[/]")


def write_json(path: Path, benchmark: str, mode: str, measurements: list[Measurement],
               extra: dict[str, Any]) -> None:
    """Store the results (small, stable keys) with the environment they came from."""
    judged = mode == "full"
    payload = {
        "benchmark": benchmark,
        "mode": mode,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        **extra,
        "results": {
            m.key: {
                **{k: v for k, v in asdict(m).items() if k not in ("key", "target", "peer")},
                "target": None if m.target is None else asdict(m.target),
                "met": m.met(judged),
                "peer": None if m.peer is None else asdict(m.peer),
            }
            for m in measurements
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def rounded(value: float, digits: int = 4) -> float:
    """Fewer digits in the stored JSON: a benchmark is noisy past three significant figures."""
    if value == 0 or value != value:  # zero, or NaN
        return float(value)
    return float(f"{value:.{digits}g}")


def median(values: list[float]) -> float:
    return statistics.median(values)
