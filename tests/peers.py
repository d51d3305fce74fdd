"""Run a reference implementation (Evidently, NannyML, Fairlearn, ...) in ``.venv-peers``.

The peer tools need pandas < 3 while keepwell is tested on the newest pandas, so they live in a
virtualenv of their own (``make peers``, from ``peers/requirements.txt``). A test writes its
data to Parquet, runs a short script there on the same files, and compares the JSON the script
prints with keepwell's answer::

    result = run_peer('''
        import pandas as pd, json
        frame = pd.read_parquet(INPUT / "data.parquet")
        print(json.dumps({"n": len(frame)}))
    ''', tmp_path, data=frame)

The script sees ``INPUT`` (a ``pathlib.Path`` to the folder holding the files) and must print
one JSON document as its last line of output. A missing ``.venv-peers`` is an error, not a skip:
``make test`` builds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = Path(os.environ.get("KEEPWELL_PEERS_PYTHON", ROOT / ".venv-peers/bin/python"))

_PRELUDE = """\
import warnings, pathlib, sys
warnings.filterwarnings("ignore")
INPUT = pathlib.Path(sys.argv[1])
"""


def run_peer(script: str, folder: Path, *, timeout: float = 600, **frames: pd.DataFrame) -> Any:
    """Write ``frames`` as ``folder/<name>.parquet``, run ``script`` in the peers' Python, and
    return the JSON it printed last."""
    if not PEERS_PYTHON.exists():
        raise RuntimeError(f"{PEERS_PYTHON} is missing: run `make peers` (make test does).")
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet")
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1",
           "EVIDENTLY_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(PEERS_PYTHON), "-c", _PRELUDE + textwrap.dedent(script),
                           str(folder)], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the peer script failed ({done.returncode}):\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])
