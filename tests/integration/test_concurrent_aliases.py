"""20 processes move the champion alias at once (RELIABILITY C1, C2).

Must hold, on SQLite and on PostgreSQL: the alias history is one serial order (each move starts
where the previous one ended, in audit-sequence order), exactly one champion remains, it is where
the last move put it, and every successful move has exactly one audit event.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import random
from typing import Any

import pytest

import keepwell as kw
from keepwell.config import Settings

N_PROCESSES = 20
MOVES_PER_PROCESS = 5
N_VERSIONS = 4


def _mover(settings_json: str, worker: int, barrier: Any, results: Any) -> None:
    """Move the champion several times: half blindly, half with an If-Match expectation."""
    settings = Settings.model_validate_json(settings_json)
    rng = random.Random(worker)
    outcomes = []
    with kw.Workspace(settings, actor=f"worker-{worker}") as ws:
        barrier.wait()
        for i in range(MOVES_PER_PROCESS):
            target = rng.randint(1, N_VERSIONS)
            try:
                if i % 2:
                    current = ws.registry.get_version("churn@champion").version
                    move = ws.registry.set_alias("churn", "champion", target,
                                                 expected_version=current)
                elif worker % 7 == 0 and i == 2:
                    move = ws.registry.rollback("churn", reason=f"w{worker}")
                else:
                    move = ws.registry.set_alias("churn", "champion", target)
                outcomes.append(("ok", move.from_version, move.to_version, move.audit_seq))
            except kw.AliasConflictError:
                outcomes.append(("conflict", None, None, None))
            except kw.InvalidStateError:
                outcomes.append(("refused", None, None, None))
    results.put((worker, outcomes))


@pytest.mark.slow
def test_twenty_processes_move_the_champion(settings: Settings, fitted_pipeline: Any,
                                            classification_data: Any) -> None:
    with kw.Workspace(settings) as ws:
        for _ in range(N_VERSIONS):
            ws.registry.register("churn", fitted_pipeline, *classification_data)
        ws.registry.set_alias("churn", "champion", 1)

    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(N_PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_mover, args=(settings.model_dump_json(), w, barrier, results))
             for w in range(N_PROCESSES)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    successes = [o for w in outcomes.values() for o in w if o[0] == "ok" and o[3] is not None]
    assert len(outcomes) == N_PROCESSES
    assert len(successes) > N_PROCESSES  # the race really happened

    with kw.Workspace(settings) as ws:
        history = ws.registry.alias_history("churn", "champion")
        events = ws.audit.events(target="churn@champion")
        aliases = ws.registry.get_model("churn").aliases
        verified = ws.audit.verify()

    # One serial order: in audit order, every move starts where the previous one ended.
    assert [m.audit_seq for m in history] == sorted(m.audit_seq for m in history)
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version
    # Exactly one champion, where the last move left it.
    assert aliases == {"champion": history[-1].to_version}
    # Exactly one audit event per successful move, and none for refused ones.
    assert len(events) == len(history) == len(successes) + 1  # + the initial set
    assert sorted(s[3] for s in successes) == [m.audit_seq for m in history[1:]]
    by_seq = {e.seq: e for e in events}
    for move in history:
        event = by_seq[move.audit_seq]
        assert event.before == {"version": move.from_version}
        assert event.after == {"version": move.to_version}
    assert verified.ok
    assert verified.checked == N_VERSIONS + len(history)
