"""Univariate drift of 60 columns: keepwell against Evidently and NannyML, same data (issue 5).

Run from the repository root::

    .venv/bin/python benchmarks/drift.py                      # 100k and 1M rows: 15-25 minutes
    .venv/bin/python benchmarks/drift.py --sizes 100000       # about 3 minutes
    .venv/bin/python benchmarks/drift.py --quick              # 10k rows: a smoke run
    .venv/bin/python benchmarks/drift.py --skip-peers         # keepwell alone

Only the full run (both sizes, with the peers) writes ``results/drift.json``; a run with
``--skip-peers`` or other sizes writes ``results/drift-partial-quick.json`` (git ignores it)
unless ``--json`` says otherwise, so a partial run never replaces the full results.

The data (PEERS.md's layout), seeded: 60 columns, reference and current of equal size.

- 50 numeric, 10 from each of five families (normal, lognormal, exponential, uniform, gamma,
  parameters drawn once per column). In 10 of them, two per family, the current values are
  shifted by half the reference's standard deviation.
- 10 categorical of 18 to 22 levels, frequencies a Dirichlet(1, ..., 1) draw. In 3 of them the
  current frequencies are remixed half-and-half with a second Dirichlet draw.

The 13 changed columns are the truth each tool's flags are judged against. The data is drawn
once per size and seed and written to Parquet under ``benchmarks/.cache/drift-data/`` (git
ignores the folder); every tool reads the same files, and no tool's reading is timed.

What is timed
-------------
keepwell
    The monitor's path: ``ReferenceProfile.from_frame(reference)`` once (reported on its own,
    as it runs at registration), then ``compare_frame(profile.features, current)``: the default
    tests (KS for numeric columns, chi-square for categorical ones), the significance-plus-
    effect verdict with Holm's correction. ``compare_frame`` compares columns on one thread per
    core (its default ``n_jobs``); the same call with ``n_jobs=1`` is timed too and shown as
    ``one_thread_s`` (the peers run on one thread: NannyML and Evidently have no such option,
    and ``OMP_NUM_THREADS=1`` keeps their numpy on one core).
Evidently 0.7.23
    ``Report([DataDriftPreset()]).run(current, reference)`` on ``Dataset.from_pandas`` of both
    frames, numeric and categorical columns declared. At these sizes it picks the normalised
    Wasserstein distance (numeric) and the Jensen-Shannon distance (categorical), threshold 0.1.
    A column is flagged when its ``ValueDrift`` score passes the threshold (checked against
    the report's own ``DriftedColumnsCount``).
NannyML 0.13.1
    ``UnivariateDriftCalculator`` with KS and Jensen-Shannon on continuous columns and chi² on
    categorical ones, one chunk (``chunk_number=1``) for reference and analysis, fixed
    thresholds (KS D > 0.1 and JS distance > 0.1; chi² alerts at p < 0.05, its only rule):
    ``fit(reference)`` then ``calculate(current)``. A column is flagged when any of its methods
    alerts.

The peers run in ``.venv-peers`` (``tests/peers.py``), one subprocess per tool and size, which
times only its own computation (imports and reading the Parquet excluded) and prints JSON.
keepwell and NannyML: the median of 3 runs after one warm-up run. Evidently: the median of 3
runs below 1M rows, one run from 1M rows on (about 5 minutes each). The headline ratio is
wall-clock: both tools, the same machine, the same run. CPU seconds are kept alongside
(``cpu_s``, and the speed-up's ``cpu`` ratio); keepwell's are summed over its threads, so its
CPU ratio is the one-core comparison. The load average (as ``uptime`` shows it) is stored for
every measurement: on a busy machine wall-clock times stretch with it, for every tool alike.

The speed target (issue 5): keepwell's compare at least 20 times faster (wall-clock) than the
faster peer. The accuracy target: keepwell flags exactly the 13 changed columns.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.peers import PEERS_PYTHON, run_peer

from benchmarks.harness import Measurement, Peer, Target, median, render, rounded, write_json
from keepwell.registry.profile import ReferenceProfile
from keepwell.stats.drift import compare_frame

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
DATA_VERSION = 1  # bump when make_data changes, so cached Parquet files are not reused
console = Console(width=None if sys.stdout.isatty() else 160)

FAMILIES = ("normal", "lognormal", "exponential", "uniform", "gamma")
PER_FAMILY, SHIFTED_PER_FAMILY, SHIFT = 10, 2, 0.5
CATEGORICAL, REMIXED, LEVELS = 10, 3, (18, 22)
RUNS, EVIDENTLY_ONCE_FROM = 3, 1_000_000
SPEEDUP_TARGET = 20.0
PEER_TIMEOUT = 3 * 3600.0


# --- the data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column's recipe: its family and parameters, whether its current values change."""

    name: str
    family: str
    params: tuple[float, ...]
    changed: bool
    levels: int = 0


def recipes(seed: int) -> list[Column]:
    """The 60 columns' parameters and which 13 change; the same at every size."""
    rng = np.random.default_rng(seed)
    columns = []
    for family in FAMILIES:
        shifted = set(rng.choice(PER_FAMILY, SHIFTED_PER_FAMILY, replace=False).tolist())
        for i in range(PER_FAMILY):
            params = parameters(family, rng)
            columns.append(Column(f"{family}_{i}", family, tuple(float(p) for p in params),
                                  i in shifted))
    remixed = set(rng.choice(CATEGORICAL, REMIXED, replace=False).tolist())
    for i in range(CATEGORICAL):
        levels = int(rng.integers(LEVELS[0], LEVELS[1] + 1))
        columns.append(Column(f"category_{i}", "categorical", (), i in remixed, levels))
    return columns


def parameters(family: str, rng: np.random.Generator) -> tuple[float, ...]:
    """A column's parameters: location and scale, in numpy's terms for the family."""
    match family:
        case "normal":  # mean, standard deviation
            return rng.uniform(-10, 10), rng.uniform(0.5, 5)
        case "lognormal":  # mean and standard deviation of the logarithm
            return rng.uniform(-1, 1), rng.uniform(0.3, 1.0)
        case "exponential":  # scale
            return (rng.uniform(0.5, 5),)
        case "uniform":  # low, width
            return rng.uniform(-5, 5), rng.uniform(1, 10)
        case _:  # gamma: shape, scale
            return rng.uniform(1, 5), rng.uniform(0.5, 3)


def draw(column: Column, rng: np.random.Generator, n: int) -> np.ndarray:
    p = column.params
    match column.family:
        case "normal":
            return rng.normal(p[0], p[1], n)
        case "lognormal":
            return rng.lognormal(p[0], p[1], n)
        case "exponential":
            return rng.exponential(p[0], n)
        case "uniform":
            return rng.uniform(p[0], p[0] + p[1], n)
        case _:
            return rng.gamma(p[0], p[1], n)


def make_data(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference and current frames of ``n`` rows each, and the names of the changed columns."""
    columns = recipes(seed)
    rng = np.random.default_rng([seed, n])
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    for column in columns:
        if column.family == "categorical":
            names = np.array([f"v{j:02d}" for j in range(column.levels)], dtype=object)
            shares = rng.dirichlet(np.ones(column.levels))
            now = 0.5 * shares + 0.5 * rng.dirichlet(np.ones(column.levels)) \
                if column.changed else shares
            reference[column.name] = names[rng.choice(column.levels, n, p=shares)]
            current[column.name] = names[rng.choice(column.levels, n, p=now / now.sum())]
        else:
            a = draw(column, rng, n)
            shift = SHIFT * a.std() if column.changed else 0.0
            reference[column.name], current[column.name] = a, draw(column, rng, n) + shift
    return (pd.DataFrame(reference), pd.DataFrame(current),
            [c.name for c in columns if c.changed])


def data_folder(n: int, seed: int) -> tuple[Path, list[str], list[str], list[str]]:
    """Write the data once (reused while the recipe is unchanged); return the folder, the
    numeric and categorical column names, and the truth."""
    folder = CACHE / "drift-data" / f"v{DATA_VERSION}-seed{seed}-n{n}"
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n", encoding="utf-8")  # nothing here is committed
    columns = recipes(seed)
    numeric = [c.name for c in columns if c.family != "categorical"]
    categorical = [c.name for c in columns if c.family == "categorical"]
    truth = [c.name for c in columns if c.changed]
    if not (folder / "current.parquet").exists():
        console.print(f"drawing {n:,} rows a side and writing them to {folder} ...")
        reference, current, _ = make_data(n, seed)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in (("reference", reference), ("current", current)):
            frame.to_parquet(folder / f"{name}.tmp", index=False)
            (folder / f"{name}.tmp").rename(folder / f"{name}.parquet")
    return folder, numeric, categorical, truth


# --- the tools ----------------------------------------------------------------------------


def uptime() -> list[float]:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    return [round(x, 2) for x in os.getloadavg()]


def timed(fn: Any) -> tuple[Any, float, float]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_keepwell(folder: Path) -> dict[str, Any]:
    reference = pd.read_parquet(folder / "reference.parquet")
    current = pd.read_parquet(folder / "current.parquet")
    load = {"start": uptime()}
    profiles, compares = [], []
    profile = None
    for _ in range(1 + RUNS):
        profile, wall, cpu = timed(lambda: ReferenceProfile.from_frame(reference))
        profiles.append((wall, cpu))
    assert profile is not None
    verdict = None
    one_thread = []
    for _ in range(1 + RUNS):
        verdict, wall, cpu = timed(lambda: compare_frame(profile.features, current))
        compares.append((wall, cpu))
        alone, wall, cpu = timed(lambda: compare_frame(profile.features, current, n_jobs=1))
        one_thread.append((wall, cpu))
        if alone != verdict:
            raise SystemExit("compare_frame on one thread differs from the threaded one")
    assert verdict is not None
    load["end"] = uptime()
    return {"profile": profiles[1:], "compare": compares[1:], "one_thread": one_thread[1:],
            "load": load,
            "flagged": list(verdict.drifted_columns),
            "columns": {r.feature: {"test": r.test, "effect": rounded(r.effect),
                                    "p_adjusted": r.p_value_adjusted, "drifted": r.drifted}
                        for r in verdict.columns}}


EVIDENTLY = """
import json, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

reference = pd.read_parquet(INPUT / "reference.parquet")
current = pd.read_parquet(INPUT / "current.parquet")
NUMERIC, CATEGORICAL, RUNS = {numeric!r}, {categorical!r}, {runs!r}
runs = []
for _ in range(RUNS):
    wall, cpu = time.perf_counter(), time.process_time()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition))
    runs.append((time.perf_counter() - wall, time.process_time() - cpu))
flagged, methods, count = [], {{}}, None
for metric in snapshot.dict()["metrics"]:
    config, value = metric["config"], metric["value"]
    if config["type"].endswith("DriftedColumnsCount"):
        count = int(value["count"])
        continue
    method, threshold = config["method"], config["threshold"]
    methods[method] = methods.get(method, 0) + 1
    # Evidently's stattests: a p-value drifts below its threshold, a distance at or above it.
    if (value < threshold) if "p_value" in method else (value >= threshold):
        flagged.append(config["column"])
print(json.dumps({{"runs": runs, "flagged": flagged, "count": count, "methods": methods}}))
"""

NANNYML = """
import json, time
import pandas as pd
import nannyml as nml
from nannyml.thresholds import ConstantThreshold

reference = pd.read_parquet(INPUT / "reference.parquet")
current = pd.read_parquet(INPUT / "current.parquet")
NUMERIC, CATEGORICAL, RUNS = {numeric!r}, {categorical!r}, {runs!r}

def run():
    calculator = nml.UnivariateDriftCalculator(
        column_names=NUMERIC + CATEGORICAL, treat_as_categorical=CATEGORICAL,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon"], categorical_methods=["chi2"],
        chunk_number=1,
        thresholds={{"kolmogorov_smirnov": ConstantThreshold(upper=0.1),
                     "jensen_shannon": ConstantThreshold(upper=0.1)}})
    wall, cpu = time.perf_counter(), time.process_time()
    calculator.fit(reference)
    fit = (time.perf_counter() - wall, time.process_time() - cpu)
    result = calculator.calculate(current)
    return result, fit, (time.perf_counter() - wall, time.process_time() - cpu)

run()  # warm-up
runs = [run() for _ in range(RUNS)]
frame = runs[-1][0].filter(period="analysis").to_df()
flagged, alerts = [], {{}}
for column in NUMERIC + CATEGORICAL:
    methods = [m for m in frame[column].columns.get_level_values(0).unique()]
    fired = [m for m in methods if bool(frame[(column, m, "alert")].iloc[0])]
    if fired:
        alerts[column] = fired
        flagged.append(column)
print(json.dumps({{"runs": [r[2] for r in runs], "fit": [r[1] for r in runs],
                  "flagged": flagged, "alerts": alerts, "chunks": len(frame)}}))
"""


def run_peer_tool(name: str, script: str, folder: Path, numeric: list[str],
                  categorical: list[str], runs: int) -> dict[str, Any]:
    load = {"start": uptime()}
    started = time.perf_counter()
    out: dict[str, Any] = run_peer(
        script.format(numeric=numeric, categorical=categorical, runs=runs), folder,
        timeout=PEER_TIMEOUT)
    out["subprocess_seconds"] = time.perf_counter() - started
    load["end"] = uptime()
    out["load"] = load
    console.print(f"  {name}: {out['subprocess_seconds']:.0f} s in all")
    return out


# --- the report ---------------------------------------------------------------------------


def judged(flagged: list[str], truth: list[str]) -> dict[str, Any]:
    extra = sorted(set(flagged) - set(truth))
    missed = sorted(set(truth) - set(flagged))
    return {"flagged": len(flagged), "extra": extra, "missed": missed,
            "exact": not extra and not missed}


def bench_size(n: int, seed: int, skip_peers: bool) -> tuple[list[Measurement], dict[str, Any]]:
    folder, numeric, categorical, truth = data_folder(n, seed)
    console.print(f"{n:,} rows: keepwell ...")
    ours = run_keepwell(folder)
    peers: dict[str, dict[str, Any]] = {}
    if not skip_peers:
        console.print(f"{n:,} rows: NannyML ...")
        peers["NannyML"] = run_peer_tool("NannyML", NANNYML, folder, numeric, categorical, RUNS)
        console.print(f"{n:,} rows: Evidently ...")
        peers["Evidently"] = run_peer_tool("Evidently", EVIDENTLY, folder, numeric, categorical,
                                           1 if n >= EVIDENTLY_ONCE_FROM else RUNS)
        if peers["Evidently"]["count"] != len(peers["Evidently"]["flagged"]):
            raise SystemExit("reading Evidently's flags went wrong: its DriftedColumnsCount is "
                             f"{peers['Evidently']['count']}, the scores give "
                             f"{len(peers['Evidently']['flagged'])}")

    def wall(runs: list[list[float]]) -> list[float]:
        return [r[0] for r in runs]

    def cpu(runs: list[list[float]]) -> list[float]:
        return [r[1] for r in runs]

    compare_s, profile_s = median(wall(ours["compare"])), median(wall(ours["profile"]))
    compare_cpu = median(cpu(ours["compare"]))
    one_thread_s = median(wall(ours["one_thread"]))
    peer_s = {name: median(wall(p["runs"])) for name, p in peers.items()}
    peer_cpu = {name: median(cpu(p["runs"])) for name, p in peers.items()}
    fastest = min(peer_s, key=peer_s.__getitem__) if peer_s else None
    size = f"rows_{n}"
    load = {"keepwell": ours["load"], **{k: p["load"] for k, p in peers.items()}}
    measurements = [
        Measurement(f"{size}.profile", f"{n:,} rows: build the reference profile", profile_s,
                    "s", wall(ours["profile"]),
                    detail={"cpu_s": rounded(median(cpu(ours["profile"])))},
                    note="once per model version, at registration"),
        Measurement(f"{size}.compare", f"{n:,} rows: compare 60 columns", compare_s, "s",
                    wall(ours["compare"]),
                    peer=None if fastest is None else Peer(
                        fastest, rounded(peer_s[fastest]), rounded(compare_s / peer_s[fastest])),
                    detail={"cpu_s": rounded(compare_cpu),
                            "one_thread_s": rounded(one_thread_s),
                            "one_thread_cpu_s": rounded(median(cpu(ours["one_thread"]))),
                            **{f"{k.lower()}_s": rounded(v) for k, v in peer_s.items()},
                            **{f"{k.lower()}_cpu_s": rounded(v) for k, v in peer_cpu.items()},
                            "load": load}),
    ]
    for name, p in peers.items():
        detail: dict[str, Any] = {"cpu_s": rounded(peer_cpu[name]),
                                  "runs_cpu": [rounded(x) for x in cpu(p["runs"])]}
        if name == "NannyML":
            fit_s, fit_cpu = median(wall(p["fit"])), median(cpu(p["fit"]))
            detail |= {"fit_s": rounded(fit_s), "fit_cpu_s": rounded(fit_cpu),
                       "calculate_s": rounded(peer_s[name] - fit_s),
                       "calculate_cpu_s": rounded(peer_cpu[name] - fit_cpu)}
        else:
            detail["methods"] = p["methods"]
        measurements.append(Measurement(
            f"{size}.{name.lower()}", f"{n:,} rows: {name}", peer_s[name], "s",
            wall(p["runs"]), detail=detail,
            note="one run" if len(p["runs"]) == 1 else ""))
    if fastest is not None:
        speedup = peer_s[fastest] / compare_s
        measurements.append(Measurement(
            f"{size}.speedup", f"{n:,} rows: speed-up over {fastest}", speedup, "×",
            [peer_s[fastest] / s for s in wall(ours["compare"])],
            target=Target("at_least", SPEEDUP_TARGET),
            detail={"cpu": rounded(peer_cpu[fastest] / compare_cpu),
                    "one_thread": rounded(peer_s[fastest] / one_thread_s),
                    "with_profile_build": rounded(peer_s[fastest] / (compare_s + profile_s)),
                    **{f"over_{k.lower()}": rounded(v / compare_s) for k, v in peer_s.items()},
                    **({"over_nannyml_calculate_alone": rounded(
                        (peer_s["NannyML"] - median(wall(peers["NannyML"]["fit"]))) / compare_s)}
                       if "NannyML" in peers else {})},
            note=f"wall-clock, same run; by CPU seconds {peer_cpu[fastest] / compare_cpu:.1f}×; "
                 f"keepwell on one thread {peer_s[fastest] / one_thread_s:.1f}×"))
    flags = {"keepwell": judged(ours["flagged"], truth),
             **{name: judged(p["flagged"], truth) for name, p in peers.items()}}
    wrong = len(flags["keepwell"]["extra"]) + len(flags["keepwell"]["missed"])
    measurements.append(Measurement(
        f"{size}.wrong_columns", f"{n:,} rows: columns flagged wrongly (truth: 13)", wrong,
        "columns", [wrong], target=Target("below", 1),
        detail={"flags": flags,
                "wrong_columns": {c: ours["columns"][c] for c in
                                  flags["keepwell"]["extra"] + flags["keepwell"]["missed"]}},
        note="; ".join(f"{k}: {v['flagged']} flagged, {len(v['extra'])} extra, "
                       f"{len(v['missed'])} missed" for k, v in flags.items())))
    extra = {"truth": truth, "flags": flags,
             "peer_details": {name: {k: v for k, v in p.items() if k not in ("runs", "fit")}
                              for name, p in peers.items()},
             "keepwell_columns": ours["columns"]}
    return measurements, extra


def flags_table(per_size: dict[int, dict[str, Any]]) -> Table:
    table = Table(title="columns flagged, against the 13 changed ones", title_justify="left")
    for column in ("rows", "tool", "flagged", "extra", "missed"):
        table.add_column(column, justify="right" if column in ("rows", "flagged") else "left")
    for n, extra in per_size.items():
        for tool, f in extra["flags"].items():
            table.add_row(f"{n:,}", tool, str(f["flagged"]),
                          ", ".join(f["extra"]) or "-", ", ".join(f["missed"]) or "-")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated row counts (each side); default 100000,1000000")
    parser.add_argument("--quick", action="store_true", help="10,000 rows: a smoke run")
    parser.add_argument("--skip-peers", action="store_true", help="keepwell alone")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path, help="where to write the results (default: "
                        "benchmarks/results/drift.json, or drift-quick.json)")
    args = parser.parse_args(argv)
    try:
        sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, not {args.sizes!r}")
    if not sizes or min(sizes) < 1_000:
        parser.error("--sizes must name at least one size of 1,000 rows or more")
    if not args.skip_peers and not PEERS_PYTHON.exists():
        parser.error(f"{PEERS_PYTHON} is missing: run `make peers`, or pass --skip-peers")
    mode = "quick" if args.quick else "full"
    partial = not args.quick and (args.skip_peers or sizes != [100_000, 1_000_000])
    output = args.json or RESULTS / ("drift-quick.json" if args.quick else
                                     "drift-partial-quick.json" if partial else "drift.json")

    load_before = uptime()
    if load_before[0] > 0.5:
        console.print(f"[yellow]the machine is busy (load average {load_before[0]:.1f}): "
                      "wall-clock numbers will be slower and noisier, for every tool (CPU "
                      "seconds are stored too).[/]")
    started = time.perf_counter()
    measurements: list[Measurement] = []
    per_size: dict[int, dict[str, Any]] = {}
    for n in sizes:
        found, per_size[n] = bench_size(n, args.seed, args.skip_peers)
        measurements += found
    total = time.perf_counter() - started
    versions = {"keepwell": importlib.metadata.version("keepwell")}
    if not args.skip_peers:
        versions |= {"evidently": peer_version("evidently"), "nannyml": peer_version("nannyml")}
    render(f"keepwell univariate drift vs Evidently and NannyML ({mode}, 60 columns, "
           f"{os.cpu_count()} cores, {total:.0f} s)", measurements, judged=mode == "full",
           console=console)
    console.print(flags_table(per_size))
    write_json(output, "drift", mode, measurements,
               {"sizes": sizes, "seed": args.seed, "seconds": rounded(total),
                "versions": versions,
                "data": {"numeric": f"{len(FAMILIES)} families x {PER_FAMILY}, "
                                    f"{SHIFTED_PER_FAMILY} per family shifted by {SHIFT} "
                                    "reference std",
                         "categorical": f"{CATEGORICAL} of {LEVELS[0]}-{LEVELS[1]} levels, "
                                        f"{REMIXED} remixed half-and-half"},
                "load_average": {"start": load_before, "end": uptime()},
                "per_size": {str(n): extra for n, extra in per_size.items()}})
    console.print(f"results written to {output}")
    return 0


def peer_version(package: str) -> str:
    version: str = run_peer("import importlib.metadata, json\n"
                            f"print(json.dumps(importlib.metadata.version({package!r})))", CACHE)
    return version


if __name__ == "__main__":
    raise SystemExit(main())
