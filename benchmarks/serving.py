"""Serving benchmarks: ``keepwell serve`` against ``mlflow models serve``, and batch scoring.

Run from the repository root::

    .venv/bin/python benchmarks/serving.py                 # the full run, ~10-25 minutes
    .venv/bin/python benchmarks/serving.py --quick         # a smoke run, a few minutes
    .venv/bin/python benchmarks/serving.py --duration 20 --only serve

``serve``
    The same scikit-learn model (a LogisticRegression on 10 float features, trained on
    synthetic data) behind ``keepwell serve`` (registered as the champion of a fresh temporary
    workspace; durable ``sync`` logging, the default) and behind ``mlflow models serve``
    (``mlflow.sklearn.save_model``, pyfunc, ``--env-manager local``), each with one worker and
    then two. Each server is started as a subprocess on 127.0.0.1 and a free port, checked with
    one request, warmed up, then driven by ``wrk --latency`` (2 threads, 16 connections, 20 s)
    with single-record POSTs. Reported: requests/s, p50, p99, non-2xx responses, the server's
    CPU time per request (steadier than requests/s on a shared machine), start-up time and
    resident memory. After keepwell stops, its logbook must hold exactly as many
    ``champion`` prediction records as the server counted 200 responses (its Prometheus
    counter), and at least as many as ``wrk`` saw (wrk does not count the requests in flight
    when it stops, up to one per connection).
``batch``
    A 1,000,000-row Parquet file of the same features, scored with two models: the serving
    LogisticRegression (so cheap, 10-20 ms for a million rows, that reading and writing the
    file dominate any file-to-file scoring), and a RandomForestClassifier (50 trees, depth 10)
    whose own work dominates, as most production models' does. Each: ``keepwell score``
    through :func:`keepwell.serve.scoring.score_file` in-process (logged, durable); a plain
    pandas script (``read_parquet``, ``predict_proba`` + ``predict``, ``to_parquet`` of input
    + prediction + score, zstd like keepwell); a bare ``model.predict`` on the frame in memory
    (the issue's yardstick); and a bare ``predict_proba`` (the one call keepwell makes for
    these models). Median of 3 runs after a warm-up, the approaches interleaved run by run.

The servers are started as ``python -c "from keepwell.cli import main; main()" serve``:
the same server as the ``keepwell`` console script, whose spawned uvicorn workers re-import
all of ``keepwell.cli`` before they answer uvicorn's 5 s start-up health check, which a loaded
machine makes them miss (they are then killed and respawned without end).

MLflow runs from its own virtualenv, ``benchmarks/.cache/mlflow-venv`` (created on the first
run; ``benchmarks/.cache`` ignores itself with its own ``.gitignore``). If MLflow cannot be
installed, keepwell is measured alone and the results say why. ``wrk`` is the Debian package;
the script installs it with apt-get when it is missing and the script runs as root.

Other sessions may be loading this 2-core machine: before each measurement the script waits
(up to ``--max-wait`` seconds, checking every 10 s) for the 1-minute load average to fall to
1.5, and records the load average at the start and end of every measurement, and whether it
ever fell. Results go to ``benchmarks/results/serving.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sklearn
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keepwell.serve.scoring as scoring_module
from benchmarks.harness import Measurement, Peer, Target, median, render, rounded, write_json
from keepwell.config import DEFAULT_TRUSTED_TYPES, RegistrySettings, Settings
from keepwell.logbook.logbook import Logbook
from keepwell.logbook.staging import StagedJob
from keepwell.serve.scoring import score_file
from keepwell.workspace import Workspace

MODEL = "bench"
FOREST = "bench-forest"
FOREST_LABEL = "RandomForestClassifier (50 trees, depth 10)"
FEATURES = [f"f{i}" for i in range(10)]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
MLFLOW_VENV = CACHE / "mlflow-venv"
MLFLOW_SPECS = ("mlflow==3.18.0", "mlflow")  # the pinned one, else the newest pip can install
RESULTS = HERE / "results"
LOAD_LIMIT = 1.5
LOAD_POLL_SECONDS = 10.0
console = Console(width=None if sys.stdout.isatty() else 180)


@dataclass(frozen=True)
class Sizes:
    duration: int       # seconds of each measured wrk run
    warmup: int         # seconds of the wrk warm-up before it
    threads: int
    connections: int
    batch_rows: int
    batch_runs: int
    max_wait: float     # seconds to wait for a quiet machine before a measurement


FULL = Sizes(duration=20, warmup=5, threads=2, connections=16, batch_rows=1_000_000,
             batch_runs=3, max_wait=120.0)
QUICK = Sizes(duration=5, warmup=2, threads=2, connections=16, batch_rows=100_000,
              batch_runs=3, max_wait=10.0)


# -- the machine's load ---------------------------------------------------------------------------

def load_average() -> list[float]:
    """What ``uptime`` shows: the 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(max_wait: float, what: str) -> dict[str, Any]:
    """Wait until the 1-minute load average is at most 1.5, for ``max_wait`` seconds at most."""
    first = load_average()
    waited = 0.0
    now = first
    while now[0] > LOAD_LIMIT and waited < max_wait:
        if waited == 0:
            console.print(f"[yellow]{what}: load average {now[0]:.2f} > {LOAD_LIMIT}; waiting "
                          f"up to {max_wait:.0f} s for it to fall[/]")
        time.sleep(LOAD_POLL_SECONDS)
        waited += LOAD_POLL_SECONDS
        now = load_average()
    quiet = now[0] <= LOAD_LIMIT
    if not quiet:
        console.print(f"[red]{what}: the load average stayed above {LOAD_LIMIT} "
                      f"({now[0]:.2f} after {waited:.0f} s); measuring anyway[/]")
    return {"load_when_asked": first, "waited_s": waited, "quiet": quiet}


@contextlib.contextmanager
def measured_load(record: dict[str, Any]) -> Iterator[None]:
    record["load_start"] = load_average()
    try:
        yield
    finally:
        record["load_end"] = load_average()


# -- tools: wrk and MLflow ------------------------------------------------------------------------

def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: install the Debian package (apt-get install wrk).")
    console.print("installing wrk with apt-get")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True).returncode:
        subprocess.run(["apt-get", "update"], capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed.")
    return found


def _venv_mlflow_version(python: Path) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import mlflow, sklearn; "
                           "print(mlflow.__version__, sklearn.__version__)"],
                          capture_output=True, text=True)
    if done.returncode:
        return None
    mlflow_version, sklearn_version = done.stdout.split()
    return mlflow_version if sklearn_version == sklearn.__version__ else None


def ensure_mlflow() -> tuple[Path | None, str | None, str]:
    """MLflow's virtualenv (created and filled on the first run): its bin folder, the MLflow
    version, and a note on how it was installed or why it could not be."""
    python = MLFLOW_VENV / "bin" / "python"
    version = _venv_mlflow_version(python)
    if version:
        return MLFLOW_VENV / "bin", version, "already installed"
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n", encoding="utf-8")  # nothing here is committed
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    notes = []
    for spec in MLFLOW_SPECS:
        console.print(f"installing {spec} into {MLFLOW_VENV} (a minute or two)")
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", spec,
                               f"scikit-learn=={sklearn.__version__}"],
                              capture_output=True, text=True)
        if done.returncode == 0:
            version = _venv_mlflow_version(python)
            if version:
                notes.append(f"installed with `pip install {spec}`: MLflow {version}")
                return MLFLOW_VENV / "bin", version, "; ".join(notes)
        errors = [line for line in done.stderr.splitlines()
                  if line.startswith("ERROR") and "is ignored" not in line]
        notes.append(f"`pip install {spec}` failed: {' '.join(errors)[:300] or done.returncode}")
    return None, None, "; ".join(notes)


# -- data and model -------------------------------------------------------------------------------

def make_data(n: int, rng: np.random.Generator, weights: np.ndarray) -> tuple[pd.DataFrame,
                                                                                 np.ndarray]:
    X = pd.DataFrame(rng.standard_normal((n, len(FEATURES))), columns=FEATURES)
    logits = X.to_numpy() @ weights + 0.3 + rng.logistic(size=n)
    return X, (logits > 0).astype(np.int64)


def train(rng: np.random.Generator) -> tuple[LogisticRegression, pd.DataFrame, np.ndarray,
                                                  np.ndarray]:
    weights = rng.normal(0, 1, len(FEATURES))
    X, y = make_data(20_000, rng, weights)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    return model, X, y, weights


def train_forest(X: pd.DataFrame, y: np.ndarray) -> RandomForestClassifier:
    """A model whose own work dominates scoring, as most production models' does: 50 trees
    of depth 10 (single-threaded, like the default ``n_jobs``)."""
    return RandomForestClassifier(n_estimators=50, max_depth=10, random_state=0).fit(X, y)


def prepare_keepwell(root: Path, model: LogisticRegression, X: pd.DataFrame, y: np.ndarray
                     ) -> tuple[Settings, str]:
    """A fresh workspace holding the model as the champion, and a predictor token."""
    # Forests hold sklearn.tree._tree.Tree, which loading must be told to trust.
    settings = Settings.for_workspace(root, registry=RegistrySettings(
        trusted_types=(*DEFAULT_TRUSTED_TYPES, "sklearn.tree._tree.Tree")))
    with Workspace(settings, actor="benchmark") as ws:
        ws.register(MODEL, model, X, y, alias="champion", reason="serving benchmark")
        _, secret = ws.tokens.create("bench", "predictor", reason="serving benchmark")
    return settings, secret


_SAVE_MLFLOW = """
import json, pickle, sys
import pandas as pd
import mlflow.sklearn
from mlflow.models import infer_signature
with open(sys.argv[1], "rb") as f:
    model = pickle.load(f)
example = pd.DataFrame(json.loads(sys.argv[3]))
mlflow.sklearn.save_model(model, sys.argv[2],
                          signature=infer_signature(example, model.predict(example)))
"""


def prepare_mlflow(bin_dir: Path, root: Path, model: LogisticRegression, X: pd.DataFrame
                   ) -> Path:
    """``mlflow.sklearn.save_model`` of the same fitted model (pickled across), with a
    signature, so that MLflow checks the inputs as keepwell does."""
    pickled = root / "model.pkl"
    pickled.write_bytes(pickle.dumps(model))
    path = root / "mlflow-model"
    subprocess.run([str(bin_dir / "python"), "-c", _SAVE_MLFLOW, str(pickled), str(path),
                    X.head(5).to_json(orient="columns")],
                   env=mlflow_environment(bin_dir), check=True, capture_output=True)
    return path


def mlflow_environment(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPWELL_", "VIRTUAL_ENV"))}
    env.update({"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",  # it execs `uvicorn`
                "MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "1", "VIRTUAL_ENV": str(bin_dir.parent)})
    return env


# -- servers --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Server:
    """A server started as its own process group, so that stopping it stops its workers."""

    name: str
    workers: int
    command: list[str]
    env: dict[str, str]
    cwd: Path
    ready_path: str
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        command = [*self.command, "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(self.workers)]
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            with contextlib.suppress(OSError):
                status, _ = http("GET", self.base + self.ready_path, timeout=2)
                if status == 200:
                    self.startup_s = time.perf_counter() - started
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {timeout:.0f} s:\n"
                           + self.log.read_text(errors="replace")[-3000:])

    def resident_mib(self) -> float:
        """Resident memory of the whole process group (parent and workers)."""
        if self.process is None:
            return 0.0
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                pgid = int(stat.rsplit(")", 1)[1].split()[2])
                if pgid != self.process.pid:
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                continue
        return round(total / 1024, 1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the live processes of the group."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def pids(self) -> list[int]:
        if self.process is None:
            return []
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[2]) == self.process.pid:
                        out.append(int(entry.name))
        return sorted(out)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # workers of the group may outlive the parent by a moment
        for _ in range(50):
            if not self.pids():
                break
            time.sleep(0.1)


# -- wrk ------------------------------------------------------------------------------------------

_LUA = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"non2xx\\": %d, \\"connect\\": %d, "
    .. "\\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"mean_us\\": %.1f, \\"max_us\\": %d}}\\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def lua_script(path: Path, body: bytes, token: str | None) -> Path:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    path.write_text(_LUA.format(body=json.dumps(body.decode()), auth=auth), encoding="utf-8")
    return path


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> dict[str, Any]:
    """wrk's ``--latency`` report: requests/s, percentiles in ms, non-2xx and socket errors."""
    out: dict[str, Any] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["requests_per_s"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text):
        out["requests"] = int(m.group(1))
        out["seconds"] = float(m.group(2)) * _UNIT[m.group(3)] / 1000
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text,
                                       re.MULTILINE):
        out[f"p{pct}_ms"] = float(value) * _UNIT[unit]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(map(int, m.groups())) if m else 0
    if m := re.search(r"^WRKJSON (\{.*\})$", text, re.MULTILINE):
        exact = json.loads(m.group(1))
        out["exact"] = exact
        if exact["non2xx"] != out["non2xx"]:
            raise RuntimeError("wrk's report and its done() summary disagree on non-2xx")
    missing = {"requests_per_s", "requests", "p50_ms", "p99_ms"} - out.keys()
    if missing:
        raise RuntimeError(f"could not read {sorted(missing)} from wrk's output:\n{text}")
    return out


def run_wrk(wrk: str, url: str, script: Path, sizes: Sizes, seconds: int) -> dict[str, Any]:
    done = subprocess.run([wrk, "-t", str(sizes.threads), "-c", str(sizes.connections),
                           "-d", f"{seconds}s", "--latency", "-s", str(script), url],
                          capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}")
    result = parse_wrk(done.stdout)
    result["output"] = done.stdout
    return result


# -- serving --------------------------------------------------------------------------------------

def metric_values(text: str, name: str) -> dict[str, float]:
    """Prometheus samples of ``name`` (label string -> value)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            out[labels] = out.get(labels, 0.0) + float(value)
    return out


def logged_predictions(settings: Settings) -> int:
    """Champion prediction records in the workspace's logbook (read with the server stopped)."""
    book = Logbook(settings.log_root)
    try:
        table = book.query("SELECT count(*) AS n FROM predictions WHERE model = ? "
                           "AND arm = 'champion'", [MODEL], model=MODEL)
        return int(table.column("n")[0].as_py())
    finally:
        book.close()


@dataclass
class ServeRun:
    server: str
    workers: int
    wrk: dict[str, Any]
    warmup: dict[str, Any]
    gate: dict[str, Any]
    load: dict[str, Any]
    startup_s: float
    resident_mib: float
    check: dict[str, Any] = field(default_factory=dict)


def serve_one(server: Server, wrk: str, url: str, script: Path, sizes: Sizes,
              smoke: Callable[[], dict[str, Any]], profile: bool,
              work: Path) -> ServeRun:
    gate = wait_for_quiet(sizes.max_wait, f"{server.name}, {server.workers} worker(s)")
    server.start()
    try:
        check = smoke()
        warm = run_wrk(wrk, url, script, sizes, sizes.warmup)
        load: dict[str, Any] = {}
        profiler = None
        if profile:
            profiler = start_py_spy(server, work, sizes.duration)
        cpu_before = server.cpu_seconds()
        with measured_load(load):
            result = run_wrk(wrk, url, script, sizes, sizes.duration)
        # CPU per request is steadier than requests/s on a shared machine: it does not drop
        # when other processes take the cores (though it rises a little with contention).
        result["server_cpu_s"] = round(server.cpu_seconds() - cpu_before, 2)
        result["server_cpu_ms_per_request"] = round(
            1000 * result["server_cpu_s"] / max(result["requests"], 1), 3)
        if profiler is not None:
            check["profile"] = finish_py_spy(profiler)
        resident = server.resident_mib()
        if server.name == "keepwell":
            status, text = http("GET", server.base + "/metrics", headers=check.pop("headers"))
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
            metrics = text.decode()
            check["server_200"] = int(sum(
                v for k, v in metric_values(metrics, "keepwell_requests_total").items()
                if 'status="200"' in k))
            count = sum(metric_values(metrics, "keepwell_batch_requests_count").values())
            total = sum(metric_values(metrics, "keepwell_batch_requests_sum").values())
            check["model_calls"] = int(count)
            check["mean_requests_per_model_call"] = round(total / count, 2) if count else None
    finally:
        server.stop()
    return ServeRun(server.name, server.workers, result, warm, gate, load, server.startup_s,
                    resident, check)


def start_py_spy(server: Server, work: Path, seconds: int) -> dict[str, Any] | None:
    """py-spy (if installed in MLflow's virtualenv) recording the server's processes."""
    spy = MLFLOW_VENV / "bin" / "py-spy"
    if not spy.exists():
        return None
    procs = []
    for pid in server.pids():
        out = work / f"profile-{server.name}-w{server.workers}-{pid}.txt"
        procs.append((subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
             "--format", "raw", "--nonblocking", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
    return {"procs": procs}


def finish_py_spy(profiler: dict[str, Any]) -> list[str]:
    files = []
    for proc, out in profiler["procs"]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        if out.exists():
            files.append(str(out))
    return files


def run_serving(sizes: Sizes, work: Path, settings: Settings, token: str,
                mlflow_bin: Path | None, mlflow_model: Path | None, record: dict[str, Any],
                wrk: str, model: LogisticRegression, profile: bool) -> list[ServeRun]:
    one = {f: float(v) for f, v in zip(FEATURES, np.random.default_rng(11).standard_normal(
        len(FEATURES)), strict=True)}
    expected = int(model.predict(pd.DataFrame([one]))[0])
    keepwell_body = json.dumps({"inputs": [one]}).encode()
    mlflow_body = json.dumps({"dataframe_split": {"columns": FEATURES,
                                                  "data": [[one[f] for f in FEATURES]]}}
                             ).encode()
    keepwell_script = lua_script(work / "keepwell.lua", keepwell_body, token)
    mlflow_script = lua_script(work / "mlflow.lua", mlflow_body, None)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    kw_env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPWELL_")}
    kw_env["KEEPWELL_WORKSPACE"] = str(settings.workspace)
    kw_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{kw_env.get('PATH', '')}"
    # `keepwell serve` through `python -c`, not the console script: uvicorn's worker processes
    # are spawned, and a spawned child first re-imports the parent's main module. For the
    # console script that is all of keepwell.cli (seconds of CPU), and on a loaded machine the
    # child misses uvicorn's 5 s start-up health check and is killed and respawned forever.
    # With `-c` there is no main module to re-import; the server is the same.
    keepwell_cli = [sys.executable, "-c", "from keepwell.cli import main; main()", "serve"]

    runs: list[ServeRun] = []
    for workers in (1, 2):
        # keepwell
        before = logged_predictions(settings)
        server = Server("keepwell", workers, keepwell_cli, kw_env, settings.workspace,
                        "/readyz", work / f"keepwell-w{workers}.log")
        url = f"http://127.0.0.1:{server.port}/v1/models/{MODEL}/predict"

        def smoke_keepwell(url: str = url) -> dict[str, Any]:
            status, body = http("POST", url, keepwell_body, headers)
            answer = json.loads(body)
            if status != 200 or answer["predictions"] != [expected]:
                raise RuntimeError(f"keepwell answered {status}: {body[:500]!r}")
            return {"smoke_200": 1, "headers": headers}

        console.print(f"keepwell serve --workers {workers}: {sizes.warmup} s warm-up, "
                      f"{sizes.duration} s measured")
        run = serve_one(server, wrk, url, keepwell_script, sizes, smoke_keepwell, profile, work)
        logged = logged_predictions(settings) - before
        client_200 = (1 + run.warmup["requests"] - run.warmup["non2xx"]
                      + run.wrk["requests"] - run.wrk["non2xx"])
        run.check.update({
            "logged_records": logged,
            "wrk_and_smoke_200": client_200,
            # Every 200 must be logged. A record may be logged and its answer never counted:
            # the server's counter is read while the last requests finish, and wrk closes its
            # connections with one request in flight each.
            "logged_covers_server_200": logged >= run.check["server_200"],
            "logged_minus_wrk_200": logged - client_200,
            "in_flight_bound": 2 * sizes.connections,  # two wrk runs, one per connection each
        })
        run.check["durable_logging_ok"] = (
            run.check["logged_covers_server_200"]
            and 0 <= logged - client_200 <= 2 * sizes.connections)
        runs.append(run)
        _print_run(run)
        if not run.check["durable_logging_ok"]:
            console.print(f"[red]logbook check failed: {run.check}[/]")

        # MLflow
        if mlflow_bin is None or mlflow_model is None:
            continue
        server = Server("mlflow", workers,
                        [str(mlflow_bin / "mlflow"), "models", "serve", "-m", str(mlflow_model),
                         "--env-manager", "local"],
                        mlflow_environment(mlflow_bin), work, "/ping",
                        work / f"mlflow-w{workers}.log")
        url = f"http://127.0.0.1:{server.port}/invocations"

        def smoke_mlflow(url: str = url) -> dict[str, Any]:
            status, body = http("POST", url, mlflow_body, {"Content-Type": "application/json"})
            answer = json.loads(body)
            if status != 200 or [int(p) for p in answer["predictions"]] != [expected]:
                raise RuntimeError(f"MLflow answered {status}: {body[:500]!r}")
            return {"smoke_200": 1}

        console.print(f"mlflow models serve --workers {workers}: {sizes.warmup} s warm-up, "
                      f"{sizes.duration} s measured")
        run = serve_one(server, wrk, url, mlflow_script, sizes, smoke_mlflow, profile, work)
        runs.append(run)
        _print_run(run)
    record["bodies"] = {"keepwell": keepwell_body.decode(), "mlflow": mlflow_body.decode()}
    return runs


def _print_run(run: ServeRun) -> None:
    w = run.wrk
    console.print(f"  {run.server} w{run.workers}: {w['requests_per_s']:,.0f} req/s, "
                  f"p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, non-2xx {w['non2xx']}, "
                  f"server CPU {w['server_cpu_ms_per_request']:.2f} ms/request, "
                  f"load {run.load['load_start'][0]:.2f} → {run.load['load_end'][0]:.2f}")


# -- batch scoring --------------------------------------------------------------------------------

class ThreadTimers:
    """Inclusive wall time per wrapped function, from any thread (for the breakdown only)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.totals[name] += time.perf_counter() - start
        return timed


@dataclass(frozen=True)
class BatchModel:
    """A registered model the batch section scores a file with."""

    key: str          # the measurement keys' prefix
    ref: str          # what score_file is given
    label: str
    model: Any


def run_batch(sizes: Sizes, work: Path, settings: Settings, models: list[BatchModel],
              weights: np.ndarray, record: dict[str, Any]) -> list[Measurement]:
    rng = np.random.default_rng(23)
    source = work / "score-input.parquet"
    X, _ = make_data(sizes.batch_rows, rng, weights)
    pq.write_table(pa.Table.from_pandas(X, preserve_index=False), source)
    frame = pd.read_parquet(source)  # the bare model calls get the same data, in memory
    record["batch"] = {"rows": sizes.batch_rows, "loads": [], "models": {}}
    out: list[Measurement] = []
    for entry in models:
        out += _batch_one(sizes, work, settings, entry, source, frame, record)
    return out


def _batch_one(sizes: Sizes, work: Path, settings: Settings, entry: BatchModel, source: Path,
               frame: pd.DataFrame, record: dict[str, Any]) -> list[Measurement]:
    model = entry.model
    out_kw = work / "score-keepwell.parquet"
    out_pd = work / "score-pandas.parquet"

    def keepwell_run() -> float:
        with Workspace(settings, actor="benchmark") as ws:
            started = time.perf_counter()
            report = score_file(ws, entry.ref, source, out_kw)
            seconds = time.perf_counter() - started
        if report.rows != sizes.batch_rows:
            raise RuntimeError(f"keepwell scored {report.rows} rows")
        out_kw.unlink()
        return seconds

    def pandas_run() -> float:
        started = time.perf_counter()
        df = pd.read_parquet(source)
        features = df[FEATURES]
        score = model.predict_proba(features)[:, 1]
        df["prediction"] = model.predict(features)
        df["score"] = score
        df.to_parquet(out_pd, index=False, compression="zstd")
        seconds = time.perf_counter() - started
        out_pd.unlink()
        return seconds

    def bare_predict() -> float:
        started = time.perf_counter()
        model.predict(frame)
        return time.perf_counter() - started

    def bare_proba() -> float:
        started = time.perf_counter()
        model.predict_proba(frame)
        return time.perf_counter() - started

    approaches: dict[str, Callable[[], float]] = {
        "keepwell": keepwell_run, "pandas": pandas_run, "predict": bare_predict,
        "predict_proba": bare_proba}
    runs: dict[str, list[float]] = {name: [] for name in approaches}
    loads = record["batch"]["loads"]
    console.print(f"batch scoring of {sizes.batch_rows:,} rows with {entry.label}: one "
                  f"warm-up, then {sizes.batch_runs} runs of each approach, interleaved")
    for fn in approaches.values():
        fn()  # warm-up
    for i in range(sizes.batch_runs):
        gate = wait_for_quiet(sizes.max_wait, f"batch scoring ({entry.key}), round {i + 1}")
        for name, fn in approaches.items():
            load: dict[str, Any] = {"model": entry.key, "approach": name, "round": i + 1,
                                    **gate}
            with measured_load(load):
                runs[name].append(fn())
            loads.append(load)

    # One more keepwell run, instrumented, for where its time goes.
    timers = ThreadTimers()
    patched = [(scoring_module, "_features", "_features: Arrow → pandas (read thread)"),
               (scoring_module, "model_outputs", "model_outputs"),
               (StagedJob, "append", "logbook staged append (log thread)"),
               (scoring_module._Output, "write", "output write (output thread, inclusive)"),
               (pq.ParquetWriter, "write_table", "parquet write_table (output thread)")]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patched]
    try:
        for owner, attr, name in patched:
            setattr(owner, attr, timers.wrap(name, getattr(owner, attr)))
        instrumented = keepwell_run()
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
    parts = dict(timers.totals)
    model_s = parts.get("model_outputs", 0.0)
    breakdown = {
        "model_outputs (one predict_proba, or predict + predict_proba)": model_s,
        "rest of the main thread: the first chunk's read, waits for the io threads, the last "
        "chunk's log and write": max(instrumented - model_s, 0.0),
    }
    io_parts = {k: v for k, v in parts.items() if "thread" in k}

    med = {name: median(values) for name, values in runs.items()}
    bound = 1.2 * med["predict"]
    rows = sizes.batch_rows
    record["batch"]["models"][entry.key] = {
        "model": entry.label, "runs": runs, "instrumented_keepwell_s": rounded(instrumented),
        "io_thread_s": {k: rounded(v) for k, v in io_parts.items()},
        "overhead_vs_predict": rounded(med["keepwell"] / med["predict"] - 1),
        "overhead_vs_predict_proba": rounded(med["keepwell"] / med["predict_proba"] - 1),
        "overhead_vs_pandas": rounded(med["keepwell"] / med["pandas"] - 1)}
    key = "batch" if entry.key == "logistic" else f"batch.{entry.key}"
    return [
        Measurement(f"{key}.keepwell_score",
                    f"keepwell score, {rows:,} rows, {entry.label} (vs bare predict)",
                    rounded(med["keepwell"]), "s", [rounded(r) for r in runs["keepwell"]],
                    target=Target("below", rounded(bound)),
                    peer=Peer("model.predict", rounded(med["predict"]),
                              rounded(med["keepwell"] / med["predict"])),
                    breakdown={k: rounded(v) for k, v in breakdown.items()},
                    detail={"rows_per_s": rounded(rows / med["keepwell"]),
                            "io_thread_s": {k: rounded(v) for k, v in io_parts.items()}},
                    note="target: ≤ 1.2× bare model.predict (issue 4)"),
        Measurement(f"{key}.keepwell_vs_pandas",
                    f"keepwell score vs a plain pandas script, {entry.label}",
                    rounded(med["keepwell"]), "s", [rounded(r) for r in runs["keepwell"]],
                    peer=Peer("pandas script", rounded(med["pandas"]),
                              rounded(med["keepwell"] / med["pandas"])),
                    note="read_parquet, predict_proba + predict, to_parquet (zstd)"),
        Measurement(f"{key}.keepwell_vs_predict_proba",
                    f"keepwell score vs bare predict_proba, {entry.label}",
                    rounded(med["keepwell"]), "s", [rounded(r) for r in runs["keepwell"]],
                    peer=Peer("predict_proba", rounded(med["predict_proba"]),
                              rounded(med["keepwell"] / med["predict_proba"])),
                    note="the one model call keepwell makes for this model, on the frame "
                         "in memory"),
    ]


# -- results --------------------------------------------------------------------------------------

def serving_measurements(runs: list[ServeRun], judged_peer: bool) -> list[Measurement]:
    by = {(r.server, r.workers): r for r in runs}
    out: list[Measurement] = []
    for workers in (1, 2):
        kw = by.get(("keepwell", workers))
        ml = by.get(("mlflow", workers))
        if kw is None:
            continue
        detail = {
            "keepwell": _run_detail(kw),
            "mlflow": _run_detail(ml) if ml else None,
        }
        k_rps, k_p99, k_p50 = (kw.wrk["requests_per_s"], kw.wrk["p99_ms"], kw.wrk["p50_ms"])
        note = f"load {kw.load['load_start'][0]:.1f}→{kw.load['load_end'][0]:.1f}"
        if ml is not None:
            note += f" (MLflow {ml.load['load_start'][0]:.1f}→{ml.load['load_end'][0]:.1f})"
        if kw.wrk["non2xx"] or (ml and ml.wrk["non2xx"]):
            note += f"; non-2xx {kw.wrk['non2xx']} / {ml.wrk['non2xx'] if ml else '-'}"
        if ml is not None and judged_peer:
            m_rps, m_p99, m_p50 = (ml.wrk["requests_per_s"], ml.wrk["p99_ms"],
                                   ml.wrk["p50_ms"])
            out.append(Measurement(
                f"serve.w{workers}.requests_per_s", f"requests/s, {workers} worker(s)",
                k_rps, "req/s", [k_rps], target=Target("at_least", rounded(5 * m_rps)),
                peer=Peer("MLflow", m_rps, rounded(k_rps / m_rps)), detail=detail,
                note=note + "; target 5× MLflow"))
            out.append(Measurement(
                f"serve.w{workers}.p99_ms", f"p99 latency, {workers} worker(s)", k_p99, "ms",
                [k_p99], target=Target("below", m_p99),
                peer=Peer("MLflow", m_p99, rounded(k_p99 / m_p99)),
                note="target: below MLflow's"))
            out.append(Measurement(
                f"serve.w{workers}.p50_ms", f"p50 latency, {workers} worker(s)", k_p50, "ms",
                [k_p50], peer=Peer("MLflow", m_p50, rounded(k_p50 / m_p50))))
        else:
            out.append(Measurement(f"serve.w{workers}.requests_per_s",
                                   f"requests/s, {workers} worker(s)", k_rps, "req/s", [k_rps],
                                   detail=detail, note=note + "; no MLflow to compare"))
            out.append(Measurement(f"serve.w{workers}.p99_ms",
                                   f"p99 latency, {workers} worker(s)", k_p99, "ms", [k_p99]))
            out.append(Measurement(f"serve.w{workers}.p50_ms",
                                   f"p50 latency, {workers} worker(s)", k_p50, "ms", [k_p50]))
    return out


def _run_detail(run: ServeRun) -> dict[str, Any]:
    w = run.wrk
    return {
        "requests_per_s": w["requests_per_s"], "requests": w["requests"],
        "p50_ms": w.get("p50_ms"), "p75_ms": w.get("p75_ms"), "p90_ms": w.get("p90_ms"),
        "p99_ms": w["p99_ms"], "non2xx": w["non2xx"], "socket_errors": w["socket_errors"],
        "server_cpu_s": w.get("server_cpu_s"),
        "server_cpu_ms_per_request": w.get("server_cpu_ms_per_request"),
        "exact": w.get("exact"), "warmup_requests_per_s": run.warmup["requests_per_s"],
        "startup_s": round(run.startup_s, 2), "resident_mib": run.resident_mib,
        "load": {**run.gate, **run.load},
        "check": {k: v for k, v in run.check.items() if k != "headers"},
        "wrk_output": w["output"],
    }


def print_serving_table(runs: list[ServeRun]) -> None:
    table = Table(title="keepwell serve vs mlflow models serve (wrk: single-record POSTs)",
                  title_justify="left")
    for column in ("workers", "server", "req/s", "p50", "p99", "non-2xx", "CPU/req", "start",
                   "RSS", "load start→end", "200s all logged"):
        table.add_column(column, justify="left" if column in ("server", "load start→end")
                         else "right")
    by = {(r.server, r.workers): r for r in runs}
    for workers in (1, 2):
        for name in ("keepwell", "mlflow"):
            run = by.get((name, workers))
            if run is None:
                continue
            w = run.wrk
            logged = ""
            if name == "keepwell":
                c = run.check
                ok = "[green]yes[/]" if c["durable_logging_ok"] else "[red]no[/]"
                logged = f"{ok} ({c['logged_records']:,})"
            quiet = "" if run.gate["quiet"] else " (busy)"
            table.add_row(str(workers), name, f"{w['requests_per_s']:,.0f}",
                          f"{w['p50_ms']:.2f} ms", f"{w['p99_ms']:.2f} ms", str(w["non2xx"]),
                          f"{w['server_cpu_ms_per_request']:.2f} ms", f"{run.startup_s:.1f} s",
                          f"{run.resident_mib:,.0f} MiB",
                          f"{run.load['load_start'][0]:.2f}→{run.load['load_end'][0]:.2f}"
                          f"{quiet}", logged)
        kw, ml = by.get(("keepwell", workers)), by.get(("mlflow", workers))
        if kw and ml:
            cpu = kw.wrk["server_cpu_ms_per_request"] / ml.wrk["server_cpu_ms_per_request"]
            table.add_row(str(workers), "[bold]keepwell/MLflow[/]",
                          f"[bold]{kw.wrk['requests_per_s'] / ml.wrk['requests_per_s']:.2f}×[/]",
                          f"{kw.wrk['p50_ms'] / ml.wrk['p50_ms']:.2f}×",
                          f"{kw.wrk['p99_ms'] / ml.wrk['p99_ms']:.2f}×", "",
                          f"{cpu:.2f}×",
                          "", "", "", "")
    console.print(table)


# -- main -----------------------------------------------------------------------------------------

SECTIONS = ("serve", "batch")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 5 s wrk runs, 100k rows; targets not judged")
    parser.add_argument("--duration", type=int, help="seconds of each measured wrk run "
                        "(default 20, or 5 with --quick)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections out of {', '.join(SECTIONS)}")
    parser.add_argument("--no-mlflow", action="store_true", help="measure keepwell alone")
    parser.add_argument("--max-wait", type=float,
                        help="seconds to wait for the load average to fall below 1.5 before "
                             "each measurement (default 120, or 10 with --quick)")
    parser.add_argument("--profile", action="store_true",
                        help="record each server with py-spy during its measured run (slows "
                             "it down; the files stay in the kept work folder)")
    parser.add_argument("--json", type=Path, help="where to write the results (default: "
                        "benchmarks/results/serving.json, or serving-quick.json with --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(sections) - set(SECTIONS):
        parser.error(f"unknown section(s): {', '.join(sorted(set(sections) - set(SECTIONS)))}")
    sizes, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    if args.duration is not None:
        sizes = Sizes(**{**sizes.__dict__, "duration": args.duration})
    if args.max_wait is not None:
        sizes = Sizes(**{**sizes.__dict__, "max_wait": args.max_wait})
    if args.profile:
        args.keep = True
    output = args.json or RESULTS / ("serving-quick.json" if args.quick else "serving.json")

    load_before = load_average()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="keepwell-bench-serving-"))
    record: dict[str, Any] = {"notes": []}
    measurements: list[Measurement] = []
    runs: list[ServeRun] = []
    mlflow_version = None
    try:
        rng = np.random.default_rng(5)
        model, X, y, weights = train(rng)
        settings, token = prepare_keepwell(work / "workspace", model, X, y)
        if "serve" in sections:
            wrk = ensure_wrk()
            mlflow_bin = mlflow_model = None
            if args.no_mlflow:
                record["notes"].append("MLflow skipped (--no-mlflow)")
            else:
                mlflow_bin, mlflow_version, how = ensure_mlflow()
                record["mlflow_install"] = how
                if mlflow_bin is None:
                    record["notes"].append(f"MLflow could not be installed: {how}; keepwell "
                                           "measured alone")
                    console.print(f"[red]MLflow could not be installed ({how}); measuring "
                                  "keepwell alone[/]")
                else:
                    mlflow_model = prepare_mlflow(mlflow_bin, work, model, X)
            runs = run_serving(sizes, work, settings, token, mlflow_bin, mlflow_model, record,
                               wrk, model, args.profile)
            measurements += serving_measurements(runs, judged_peer=mlflow_bin is not None)
        if "batch" in sections:
            forest = train_forest(X, y)
            with Workspace(settings, actor="benchmark") as ws:  # no alias: not served
                ws.register(FOREST, forest, X, y, reason="batch benchmark")
            measurements += run_batch(sizes, work, settings, [
                BatchModel("logistic", MODEL, "LogisticRegression", model),
                BatchModel("forest", f"{FOREST}@1", FOREST_LABEL, forest)], weights, record)
    finally:
        if args.keep:
            console.print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - started

    if runs:
        print_serving_table(runs)
    render(f"keepwell serving benchmarks ({mode}, {os.cpu_count()} cores, {total:.0f} s)",
           measurements, judged=mode == "full", console=console)
    busy = [f"{r.server} w{r.workers}" for r in runs if not r.gate["quiet"]]
    busy += [f"batch {b['model']} round {b['round']}"
             for b in record.get("batch", {}).get("loads", [])
             if b["approach"] == "keepwell" and not b["quiet"]]
    if busy:
        note = (f"the 1-minute load average never fell to {LOAD_LIMIT} within "
                f"{sizes.max_wait:.0f} s before: {', '.join(busy)}; those numbers were taken on "
                "a busy machine")
        record["notes"].append(note)
        console.print(f"[yellow]{note}[/]")
    failed = [f"keepwell w{r.workers}" for r in runs
              if r.server == "keepwell" and not r.check["durable_logging_ok"]]
    if failed:
        record["notes"].append(f"durable-logging check failed: {', '.join(failed)}")
    write_json(output, "serving", mode, measurements, {
        "sections": sections, "seconds": rounded(total),
        "load_average": {"start": load_before, "end": load_average()},
        "sizes": sizes.__dict__,
        "versions": {"scikit-learn": sklearn.__version__, "mlflow": mlflow_version},
        "wrk": {"threads": sizes.threads, "connections": sizes.connections,
                "duration_s": sizes.duration, "warmup_s": sizes.warmup},
        **record,
    })
    console.print(f"results written to {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
