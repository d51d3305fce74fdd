"""Performance estimation benchmarks: keepwell's CBPE against NannyML 0.13.1's, same data.

Run from the repository root::

    .venv/bin/python benchmarks/estimation.py            # full: a few minutes on 2 cores
    .venv/bin/python benchmarks/estimation.py --quick    # 10k rows: a smoke run
    .venv/bin/python benchmarks/estimation.py --only binary-50k --json /tmp/estimation.json

Each case fits CBPE on a labelled reference and estimates an unlabelled analysis set in 10
chunks, all five metrics (ROC AUC, F1, accuracy, precision, recall):

``binary-50k``
    PEERS.md's case: 50,000 reference rows + 50,000 analysis rows (chunks of 5,000).
``binary-500k``
    500,000 + 500,000 (chunks of 50,000).
``multiclass-50k``
    Three classes, 50,000 + 50,000.

The data are synthetic and miscalibrated on purpose, so both tools take the isotonic path:
binary, ``x ~ N(shift, 1)``, label ``~ Bernoulli(σ(2x))``, score ``σ(1.2x + 0.3)``;
multiclass, three normal features, labels from a softmax of linear logits, scores the softmax
of 0.6 times those logits (under-confident). The analysis drifts: ``shift`` (on the first
feature for multiclass) grows from 0 to 1 over its rows. The prediction is score > 0.5 (the
most probable class).

keepwell runs in-process on numpy arrays; NannyML in ``.venv-peers`` as a subprocess that
reads the same Parquet files and times itself (``perf_counter`` and ``process_time`` around
``fit`` and ``estimate`` only: its import and the reading are not counted). The analysis
files hold no labels. Each time is the median of 3 runs after one warm-up. Before a time is
reported, both tools' estimates must agree: the largest absolute difference over every chunk
and metric must be below 0.01 (the issue's bound; it is about 1e-9), and the calibration
decisions must be the same, or the benchmark stops. The target is keepwell at least 5×
faster than NannyML for fit + estimate. CPU seconds are kept in ``detail``: on a busy machine
they are steadier than wall time. Results go to ``benchmarks/results/estimation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Measurement, Peer, Target, median, render, rounded, write_json
from keepwell.stats.estimation import CBPE, METRICS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PEERS_PYTHON = Path(os.environ.get("KEEPWELL_PEERS_PYTHON", ROOT / ".venv-peers/bin/python"))
console = Console(width=None if sys.stdout.isatty() else 140)
CHUNKS = 10
RUNS = 3  # measured runs, after one warm-up
AGREEMENT = 0.01  # the bound on |keepwell - NannyML| for every estimate
SPEEDUP = 5.0  # the target: keepwell at least this many times faster
CLASSES = ("a", "b", "c")


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "binary" or "multiclass"
    n: int  # rows in the reference, and in the analysis

    @property
    def chunk(self) -> int:
        return self.n // CHUNKS


FULL = [Case("binary-50k", "binary", 50_000), Case("binary-500k", "binary", 500_000),
        Case("multiclass-50k", "multiclass", 50_000)]
QUICK = [Case("binary-10k", "binary", 10_000), Case("multiclass-10k", "multiclass", 10_000)]


def load_average() -> list[float]:
    """What ``uptime`` shows: the 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def sigmoid(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def softmax(z: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def make_data(case: Case, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference with labels, analysis without): ``y``, ``p`` and the score column(s)."""
    rng = np.random.default_rng(seed)
    weights = np.array([[1.5, -0.5, 0.2], [-0.8, 1.2, 0.4], [0.3, 0.6, -1.4]])

    def sample(shift: np.ndarray[Any, Any]) -> pd.DataFrame:
        n = shift.size
        if case.kind == "binary":
            x = rng.normal(shift, 1.0)
            y = (rng.random(n) < sigmoid(2 * x)).astype(np.int64)
            s = sigmoid(1.2 * x + 0.3)
            return pd.DataFrame({"y": y, "p": (s > 0.5).astype(np.int64), "s": s})
        x = rng.normal(size=(n, 3))
        x[:, 0] += shift
        logits = x @ weights
        truth = (rng.random(n)[:, None] > np.cumsum(softmax(logits), axis=1)).sum(axis=1)
        scores = softmax(0.6 * logits)
        return pd.DataFrame({"y": np.asarray(CLASSES)[truth],
                             "p": np.asarray(CLASSES)[np.argmax(scores, axis=1)],
                             **{f"p{c}": scores[:, i] for i, c in enumerate(CLASSES)}})

    reference = sample(np.zeros(case.n))
    analysis = sample(np.linspace(0.0, 1.0, case.n)).drop(columns="y")
    return reference, analysis


def score_columns(case: Case) -> list[str]:
    return ["s"] if case.kind == "binary" else [f"p{c}" for c in CLASSES]


def run_keepwell(case: Case, reference: pd.DataFrame, analysis: pd.DataFrame
                 ) -> dict[str, Any]:
    """One timed fit + estimate over the chunks; the estimates as {metric: {value, se}}."""
    columns = score_columns(case)
    y, p_ref = reference["y"].to_numpy(), reference["p"].to_numpy()
    s_ref = reference[columns].to_numpy()
    s_new, p_new = analysis[columns].to_numpy(), analysis["p"].to_numpy()
    if case.kind == "binary":
        s_ref, s_new = s_ref[:, 0], s_new[:, 0]
    wall, cpu = time.perf_counter(), time.process_time()
    cbpe = CBPE(chunk_size=case.chunk).fit(y, s_ref, y_pred=p_ref)
    fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    results = [cbpe.estimate(s_new[a:a + case.chunk], p_new[a:a + case.chunk])
               for a in range(0, case.n, case.chunk)]
    total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"seconds": total_wall, "cpu": total_cpu, "fit": fit_wall, "fit_cpu": fit_cpu,
            "estimate": total_wall - fit_wall, "calibrated": list(cbpe.calibrated_),
            "estimates": {m: {"value": [r[m].value for r in results],
                              "sampling_error": [r[m].sampling_error for r in results]}
                          for m in METRICS}}


NANNYML_SCRIPT = """
import json, sys, time, warnings
from pathlib import Path
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml

folder, kind, chunk, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
METRICS = {metrics!r}
reference = pd.read_parquet(folder / "reference.parquet")
analysis = pd.read_parquet(folder / "analysis.parquet")
proba = "s" if kind == "binary" else {{c: "p" + c for c in {classes!r}}}

def run():
    estimator = nml.CBPE(metrics=METRICS, y_pred_proba=proba, y_pred="p", y_true="y",
                         chunk_size=chunk, problem_type="classification_" + kind)
    wall, cpu = time.perf_counter(), time.process_time()
    estimator.fit(reference)
    fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    frame = estimator.estimate(analysis).filter(period="analysis").to_df()
    total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    calibrated = ([bool(estimator.needs_calibration)] if kind == "binary" else
                  [type(estimator._calibrators[c]).__name__ != "NoopCalibrator"
                   for c in sorted(proba)])
    return {{"seconds": total_wall, "cpu": total_cpu, "fit": fit_wall, "fit_cpu": fit_cpu,
             "estimate": total_wall - fit_wall, "calibrated": calibrated,
             "estimates": {{m: {{"value": frame[(m, "value")].tolist(),
                                 "sampling_error": frame[(m, "sampling_error")].tolist()}}
                           for m in METRICS}}}}

run()  # warm-up
print(json.dumps([run() for _ in range(runs)]))
"""


def run_nannyml(case: Case, folder: Path) -> list[dict[str, Any]]:
    if not PEERS_PYTHON.exists():
        raise SystemExit(f"{PEERS_PYTHON} is missing: run `make peers` first")
    script = folder / "nannyml_cbpe.py"
    script.write_text(textwrap.dedent(NANNYML_SCRIPT.format(metrics=list(METRICS),
                                                            classes=CLASSES)))
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(PEERS_PYTHON), str(script), str(folder), case.kind,
                           str(case.chunk), str(RUNS)], capture_output=True, text=True,
                          env=env, check=False, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"NannyML failed on {case.name}:\n{done.stderr[-3000:]}")
    runs: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return runs


def differences(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    """The largest |keepwell - NannyML| of the estimates, and relative of the sampling errors."""
    value = max(float(np.max(np.abs(np.subtract(ours["estimates"][m]["value"],
                                                theirs["estimates"][m]["value"]))))
                for m in METRICS)
    error = max(float(np.max(np.abs(np.divide(ours["estimates"][m]["sampling_error"],
                                              theirs["estimates"][m]["sampling_error"]) - 1)))
                for m in METRICS)
    return {"max_abs_estimate_difference": value, "max_rel_sampling_error_difference": error}


def bench(case: Case, work: Path) -> tuple[Measurement, dict[str, Any]]:
    reference, analysis = make_data(case)
    folder = work / case.name
    folder.mkdir()
    reference.to_parquet(folder / "reference.parquet")
    analysis.to_parquet(folder / "analysis.parquet")
    load_start = load_average()
    console.print(f"{case.name}: keepwell ...")
    run_keepwell(case, reference, analysis)  # warm-up
    ours = [run_keepwell(case, reference, analysis) for _ in range(RUNS)]
    console.print(f"{case.name}: NannyML ...")
    theirs = run_nannyml(case, folder)
    diff = differences(ours[-1], theirs[-1])
    if diff["max_abs_estimate_difference"] >= AGREEMENT:
        raise SystemExit(f"{case.name}: keepwell's and NannyML's estimates differ by "
                         f"{diff['max_abs_estimate_difference']:.3g} (bound {AGREEMENT})")
    if ours[-1]["calibrated"] != theirs[-1]["calibrated"]:
        raise SystemExit(f"{case.name}: the calibration decisions differ: "
                         f"{ours[-1]['calibrated']} and {theirs[-1]['calibrated']}")

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return median([r[key] for r in runs])

    keepwell_s, nannyml_s = med(ours, "seconds"), med(theirs, "seconds")
    speedup = nannyml_s / keepwell_s
    detail = {
        "speedup": rounded(speedup),
        "cpu_seconds": rounded(med(ours, "cpu")),
        "nannyml_cpu_seconds": rounded(med(theirs, "cpu")),
        "cpu_speedup": rounded(med(theirs, "cpu") / med(ours, "cpu")),
        "nannyml_fit_seconds": rounded(med(theirs, "fit")),
        "nannyml_estimate_seconds": rounded(med(theirs, "estimate")),
        "nannyml_runs": [rounded(r["seconds"]) for r in theirs],
        **{k: float(f"{v:.3g}") for k, v in diff.items()},
        "calibrated": ours[-1]["calibrated"],
        "load_average": {"start": load_start, "end": load_average()},
    }
    measurement = Measurement(
        f"{case.name}.fit_estimate", f"{case.name}: fit + estimate 10 chunks", keepwell_s, "s",
        [r["seconds"] for r in ours], target=Target("below", rounded(nannyml_s / SPEEDUP)),
        peer=Peer("NannyML CBPE", rounded(nannyml_s), rounded(keepwell_s / nannyml_s)),
        breakdown={"fit": med(ours, "fit"), "estimate": med(ours, "estimate")},
        detail=detail,
        note=f"{speedup:.1f}× faster; estimates differ ≤ "
             f"{diff['max_abs_estimate_difference']:.1g}")
    return measurement, {"n_reference": case.n, "n_analysis": case.n, "chunk": case.chunk,
                         "kind": case.kind, **detail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k rows: a smoke run")
    parser.add_argument("--json", type=Path, help="where to write the results (default: "
                        "benchmarks/results/estimation.json, or estimation-quick.json)")
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    cases = QUICK if args.quick else FULL
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = wanted - {c.name for c in cases}
        if unknown:
            parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(c.name for c in cases)}")
        cases = [c for c in cases if c.name in wanted]
    output = args.json or RESULTS / f"estimation{'-quick' if args.quick else ''}.json"
    nannyml_version = subprocess.run(
        [str(PEERS_PYTHON), "-c", "import importlib.metadata as m; print(m.version('nannyml'))"],
        capture_output=True, text=True, check=False).stdout.strip() or "unknown"
    load_before = load_average()
    if load_before[0] > 0.5:
        console.print(f"[yellow]the machine is busy (load average {load_before[0]:.1f}): "
                      "times will be higher and noisier than on an idle machine (the CPU "
                      "seconds in the results are steadier).[/]")
    measurements, cases_out = [], {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keepwell-estimation-") as tmp:
        for case in cases:
            measurement, cases_out[case.name] = bench(case, Path(tmp))
            measurements.append(measurement)
            console.print(f"  keepwell {measurement.value:.3f} s, NannyML "
                          f"{measurement.peer.value if measurement.peer else 0:.3f} s: "
                          f"{cases_out[case.name]['speedup']:.1f}× faster")
    total = time.perf_counter() - started
    render(f"keepwell CBPE vs NannyML {nannyml_version} ({mode}, {os.cpu_count()} cores, "
           f"{total:.0f} s)", measurements, judged=mode == "full", console=console)
    write_json(output, "estimation", mode, measurements,
               {"nannyml": nannyml_version, "metrics": list(METRICS), "chunks": CHUNKS,
                "agreement_bound": AGREEMENT, "speedup_target": SPEEDUP,
                "seconds": rounded(total), "cases": cases_out,
                "load_average": {"start": load_before, "end": load_average()}})
    console.print(f"results written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
