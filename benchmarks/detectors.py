"""Streaming drift detector benchmarks: keepwell's five detectors against River's, same stream.

Run from the repository root::

    .venv/bin/python benchmarks/detectors.py            # full: 1M values, ~10 minutes on 2 cores
    .venv/bin/python benchmarks/detectors.py --quick    # 100k values, about a minute
    .venv/bin/python benchmarks/detectors.py --only adwin,ddm --json /tmp/detectors.json

The stream is PEERS.md's: 1,000,000 errors (1 wrong, 0 right) whose error rate steps from 0.1
to 0.3 at value 500,000 (``error_stream``, seed 0). Every detector runs at River's defaults
(KSWIN with ``seed=42``, so that River's run can be compared value for value).

``update``
    A Python loop feeding one value at a time and reading ``drift_detected``; the same loop for
    River 0.26.1.
``update_many``
    keepwell's batch call over the whole stream. River has no batch API: its peer is its loop.
metrics
    The detector evaluation harness (``keepwell.stats.detectors.evaluation.score``) on both
    detection lists: the delay after the change, false alarms, missed drifts.

Each loop and batch is the median of 3 runs after one warm-up, except KSWIN's loops, run once
(River's takes about 7 minutes for the full stream). Before any number is reported, keepwell's
loop, keepwell's batch and River's loop must find the same detections, or the run stops.
Updates/s are wall-clock; the CPU-time rate is kept in ``detail``, as it is steadier on a busy
machine. Results go to ``benchmarks/results/detectors.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Measurement, Peer, median, render, rounded, write_json
from keepwell.stats.detectors import DETECTORS
from keepwell.stats.detectors.evaluation import DriftStream, StreamScore, error_stream, score

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=None if sys.stdout.isatty() else 140)
PARAMS: dict[str, dict[str, Any]] = {"kswin": {"seed": 42}}
SLOW_LOOPS = {"kswin"}  # loops run once, without warm-up


def river_detector(name: str) -> Any:
    from river import drift

    classes = {"adwin": drift.ADWIN, "ddm": drift.binary.DDM, "eddm": drift.binary.EDDM,
               "kswin": drift.KSWIN, "page_hinkley": drift.PageHinkley}
    return classes[name](**PARAMS.get(name, {}))


def timed_loop(detector: Any, values: list[float]) -> tuple[float, float, list[int]]:
    """(wall seconds, CPU seconds, detections) of one value at a time through ``update``."""
    found = []
    wall, cpu = time.perf_counter(), time.process_time()
    for i, x in enumerate(values):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return time.perf_counter() - wall, time.process_time() - cpu, found


def timed_batch(name: str, values: np.ndarray) -> tuple[float, float, list[int]]:
    detector = DETECTORS.create(name, **PARAMS.get(name, {}))
    wall, cpu = time.perf_counter(), time.process_time()
    found = detector.update_many(values)
    return time.perf_counter() - wall, time.process_time() - cpu, found.tolist()


def runs_of(run: Callable[[], tuple[float, float, list[int]]], slow: bool
            ) -> tuple[list[float], list[float], list[int]]:
    """Wall and CPU seconds of each counted run, and the detections (the same every run)."""
    if not slow:
        run()  # warm-up
    results = [run() for _ in range(1 if slow else 3)]
    if any(r[2] != results[0][2] for r in results):
        raise SystemExit("a detector found different detections on the same stream")
    return [r[0] for r in results], [r[1] for r in results], results[0][2]


def bench(name: str, stream: DriftStream) -> tuple[list[Measurement], dict[str, Any]]:
    values = np.array(stream.values)
    as_list = values.tolist()
    n = values.size
    slow = name in SLOW_LOOPS
    label = type(DETECTORS.create(name, **PARAMS.get(name, {}))).__name__
    console.print(f"{label}: keepwell update() ...")
    loop_wall, loop_cpu, loop_found = runs_of(
        lambda: timed_loop(DETECTORS.create(name, **PARAMS.get(name, {})), as_list), slow)
    console.print(f"{label}: keepwell update_many() ...")
    batch_wall, batch_cpu, batch_found = runs_of(lambda: timed_batch(name, values), False)
    console.print(f"{label}: River update() ...")
    river_wall, river_cpu, river_found = runs_of(
        lambda: timed_loop(river_detector(name), as_list), slow)
    if not loop_found == batch_found == river_found:
        raise SystemExit(f"{label}: keepwell's loop, keepwell's batch and River's loop found "
                         f"different detections: {loop_found[:5]}, {batch_found[:5]}, "
                         f"{river_found[:5]}")

    def rate(seconds: list[float]) -> float:
        return n / median(seconds)

    river_rate = rate(river_wall)
    peer_note = "River has no batch API: its peer is its loop"
    measurements = [
        Measurement(f"{name}.update", f"{label} update()", rate(loop_wall), "updates/s",
                    [n / s for s in loop_wall],
                    peer=Peer("River update()", river_rate, rate(loop_wall) / river_rate),
                    detail={"cpu_updates_per_s": rounded(rate(loop_cpu)),
                            "river_cpu_updates_per_s": rounded(rate(river_cpu))}),
        Measurement(f"{name}.update_many", f"{label} update_many()", rate(batch_wall),
                    "updates/s", [n / s for s in batch_wall],
                    peer=Peer("River update()", river_rate, rate(batch_wall) / river_rate),
                    detail={"cpu_updates_per_s": rounded(rate(batch_cpu)),
                            "river_cpu_updates_per_s": rounded(rate(river_cpu))},
                    note=peer_note),
    ]
    metrics = {"keepwell": score_dict(score(batch_found, stream)),
               "river": score_dict(score(river_found, stream)),
               "same_detections": True}
    return measurements, metrics


def score_dict(result: StreamScore) -> dict[str, Any]:
    return {"delay": result.delays[0] if result.delays else None,
            "false_alarms": result.false_alarms,
            "false_alarms_per_100k": rounded(100_000 * result.false_alarms / result.n_updates),
            "missed": result.missed, "detections": len(result.detections)}


def metrics_table(metrics: dict[str, dict[str, Any]], n: int) -> Table:
    table = Table(title=f"detector evaluation on the same stream ({n:,} values, change at "
                        f"{n // 2:,}): keepwell | River", title_justify="left")
    for column in ("detector", "delay", "false alarms", "per 100k", "missed", "identical"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, m in metrics.items():
        ours, theirs = m["keepwell"], m["river"]
        table.add_row(name, *(f"{ours[k]} | {theirs[k]}" for k in
                              ("delay", "false_alarms", "false_alarms_per_100k", "missed")),
                      "yes" if m["same_detections"] else "[red]no[/]")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k values: a smoke run")
    parser.add_argument("--json", type=Path, help="where to write the results (default: "
                        "benchmarks/results/detectors.json, or detectors-quick.json)")
    parser.add_argument("--only", default=",".join(DETECTORS.names),
                        help=f"comma-separated detectors out of {', '.join(DETECTORS.names)}")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(names) - set(DETECTORS.names)
    if unknown:
        parser.error(f"unknown detector(s): {', '.join(sorted(unknown))}")
    mode = "quick" if args.quick else "full"
    n = 100_000 if args.quick else 1_000_000
    output = args.json or RESULTS / f"detectors{'-quick' if args.quick else ''}.json"
    river_version = importlib.metadata.version("river")

    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        console.print(f"[yellow]the machine is busy (load average {load_before[0]:.1f}): "
                      "numbers will be lower and noisier than on an idle machine.[/]")
    stream = error_stream(n, (0.1, 0.3), (n // 2,), seed=0, name="peers")
    measurements: list[Measurement] = []
    metrics: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for name in names:
        found, metrics[name] = bench(name, stream)
        measurements += found
    total = time.perf_counter() - started
    render(f"keepwell streaming drift detectors vs River {river_version} ({mode}, "
           f"{n:,} values, {os.cpu_count()} cores, {total:.0f} s)", measurements,
           judged=mode == "full", console=console)
    console.print(metrics_table(metrics, n))
    write_json(output, "detectors", mode, measurements,
               {"detectors": names, "seconds": rounded(total), "river": river_version,
                "stream": {"n": n, "rates": [0.1, 0.3], "change_point": n // 2, "seed": 0},
                "params": PARAMS,
                "load_average": {"start": [round(x, 2) for x in load_before],
                                 "end": [round(x, 2) for x in os.getloadavg()]},
                "metrics": metrics})
    console.print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
