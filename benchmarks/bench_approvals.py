"""The approval path: submit, two operators approve, the action runs.

On a benchmark home (durable SQLite ledger, production clock and ids) two
operators are created with ``Governor.add_principal``; then, N times, an
agent submits an A2 ``bench.deploy`` intent that the policy's
``@approval("2")`` holds for two approvers, ``alice`` approves and ``bob``
approves with ``Governor.vote``; bob's vote completes the quorum, so the echo
executor runs inside that call. Every outcome is checked (pending, then
still pending, then executed); a wrong one aborts the run.

Timed: each of the three calls, and the whole flow. A flow writes
``intent.recorded``, ``decision.recorded``, ``approval.requested``, two
``approval.granted``, ``intent.approved``, ``execution.started`` and
``execution.finished``: 8 events in 5 durable appends.

This module never decides anything from a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_pipeline import percentile
from exoarmur.approvals import Vote
from exoarmur.home import open_governor
from exoarmur.model.decision import OutcomeStatus
from history import AGENT, OPERATORS, TENANT

WARMUP = 3


def _intent(i: int) -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "actor": dict(AGENT),
        "action": "bench.deploy",
        "target": f"services/api-{i % 16}",
        "safety_class": "A2",
        "params": {"version": f"1.{i}.0", "replicas": 3},
        "idempotency_key": f"deploy-{i:08d}",
    }


def approvals_run(home: Path, n: int, progress: Callable[[int], None]) -> dict[str, Any]:
    with open_governor(home) as governor:
        principals = [governor.add_principal(name, "operator", [TENANT])[0] for name in OPERATORS]
        steps: dict[str, list[float]] = {"submit": [], "first_vote": [], "quorum_vote": []}
        flows: list[float] = []
        started = time.perf_counter()
        for i in range(-WARMUP, n):
            t0 = time.perf_counter()
            outcome = governor.submit(_intent(i))
            t1 = time.perf_counter()
            if outcome.status != OutcomeStatus.PENDING_APPROVAL:
                raise SystemExit(f"approvals: intent {i} is {outcome.status.value}, not pending")
            first = governor.vote(TENANT, outcome.intent_id, principals[0], Vote.APPROVE, "ok")
            t2 = time.perf_counter()
            second = governor.vote(TENANT, outcome.intent_id, principals[1], Vote.APPROVE, "ok")
            t3 = time.perf_counter()
            if not first.accepted or first.outcome.status != OutcomeStatus.PENDING_APPROVAL:
                raise SystemExit(f"approvals: first vote on {i}: {first.message}")
            if not second.accepted or second.outcome.status != OutcomeStatus.EXECUTED:
                raise SystemExit(
                    f"approvals: second vote on {i}: {second.message} "
                    f"({second.outcome.status.value})"
                )
            if i < 0:  # warm-up: first-call costs outside the timing
                started = time.perf_counter()
                continue
            steps["submit"].append(t1 - t0)
            steps["first_vote"].append(t2 - t1)
            steps["quorum_vote"].append(t3 - t2)
            flows.append(t3 - t0)
            progress(i + 1)
        seconds = time.perf_counter() - started
        events = governor.ledger.size(TENANT)
    flows.sort()
    result: dict[str, Any] = {
        "n": n,
        "seconds": seconds,
        "flows_per_s": n / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(flows, 0.50) * 1e3,
        "p99_ms": percentile(flows, 0.99) * 1e3,
        "p999_ms": percentile(flows, 0.999) * 1e3,
        "events_in_log": events,
        "latencies_s": flows,
    }
    for name, values in steps.items():
        result[f"{name}_p50_ms"] = percentile(sorted(values), 0.50) * 1e3
    return result
