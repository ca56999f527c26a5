"""Determinism under load: the same scenario, C concurrent submitters, N fresh homes, one root.

Each run makes a fresh benchmark home and, before any submitter starts,
opens one deterministic governor per submitter on it
(``open_governor(home, seed=SEED + k)``) and creates the two operators
(sequentially: the system log is written in the same order every run). Then
C threads start together; submitter k governs its scenario in its own tenant
``t<k>`` through its own governor: executed, decided and denied intents, and
an intent that two operators approve (so it runs). Every outcome is checked.

Why one governor per submitter, and a tenant each: positions in a log are
decided by the order of appends, and a deterministic governor's clock and id
generator hand out times and ids in the order they are asked. Were the C
submitters to share one governor (or one tenant), the thread interleaving
would decide which submitter got which time, id and position, and the bytes
would change from run to run. With a governor and a tenant each, every
tenant log is written by exactly one thread from exactly one seeded clock
and id generator, in program order, while the C submitters still contend for
the same SQLite file, writer lock and fsyncs concurrently.

A run's root is SHA-256 over the sorted ``tenant size root`` lines of the C
tenant logs. The system log is left out on purpose: ``exoarmur init`` records
its configuration and policy with the wall clock and random ids (a home is
not made deterministically), and nothing in a tenant log refers to those ids.
PASS means every run gave the same root.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exoarmur.approvals import Vote
from exoarmur.model.decision import OutcomeStatus
from exoarmur.pipeline import Governor
from history import OPERATORS, block, make_home

SEED = 20260101
EXPECTED = ("executed", "decided", "denied")


def _scenario(governor: Governor, tenant: str, intents: int, approvers: list[Any]) -> int:
    """Govern ``intents`` intents in ``tenant``; every fourth one goes through two approvals."""
    done = 0
    number = 0
    while done < intents:
        for expected, intent in zip(EXPECTED, block(number), strict=True):
            if done >= intents:
                break
            if done % 4 == 3:
                outcome = governor.submit(
                    intent
                    | {
                        "tenant": tenant,
                        "action": "bench.deploy",
                        "safety_class": "A2",
                        "target": "services/api",
                    }
                )
                for approver in approvers:
                    result = governor.vote(tenant, outcome.intent_id, approver, Vote.APPROVE, "ok")
                if result.outcome.status != OutcomeStatus.EXECUTED:
                    raise RuntimeError(f"{tenant}: approved intent ended {result.outcome.status}")
            else:
                outcome = governor.submit(intent | {"tenant": tenant})
                if outcome.status.value != expected:
                    raise RuntimeError(f"{tenant}: {expected} intent ended {outcome.status.value}")
            done += 1
        number += 1
    return done


def one_run(workdir: Path, run: int, concurrency: int, intents: int) -> dict[str, Any]:
    from exoarmur.home import open_governor

    home = make_home(workdir / f"determinism-{run}")
    tenants = [f"t{k}" for k in range(concurrency)]
    governors = [open_governor(home.path, seed=SEED + k) for k in range(concurrency)]
    try:
        approvers = [governors[0].add_principal(name, "operator", tenants)[0] for name in OPERATORS]
        errors: list[str] = []
        start = threading.Barrier(concurrency)

        def submitter(k: int) -> None:
            start.wait()
            try:
                _scenario(governors[k], tenants[k], intents, approvers)
            except Exception as exc:  # reported below: a broken run has no root
                errors.append(f"submitter {k}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=submitter, args=(k,)) for k in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise SystemExit(f"determinism run {run}: {errors[0]}")
        ledger = governors[0].ledger
        lines = [f"{t} {ledger.size(t)} {ledger.root(t).hex()}" for t in sorted(tenants)]
    finally:
        for governor in governors:
            governor.close()
    return {
        "run": run,
        "root": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        "logs": lines,
    }


def determinism_load(
    workdir: Path,
    runs: int,
    concurrency: int,
    intents: int,
    progress: Callable[[int], None],
) -> dict[str, Any]:
    results = []
    for run in range(runs):
        results.append(one_run(workdir, run, concurrency, intents))
        progress(run + 1)
    roots = sorted({r["root"] for r in results})
    return {
        "runs": runs,
        "concurrency": concurrency,
        "intents_per_submitter": intents,
        "seed": SEED,
        "distinct_roots": len(roots),
        "roots": [r["root"] for r in results],
        "status": "PASS" if len(roots) == 1 else "FAIL",
    }
