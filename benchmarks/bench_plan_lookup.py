"""`plan show` and `plan list` on a tenant log of 10,000 events: before and after the index.

One durable SQLite ledger holds one executed Door Net plan, then filler
events of no intent (each its own correlation) up to ``--events``. Timed,
side by side in one run, the median of ``--runs`` lookups:

- before: what ``plan show`` did until the index, its story by the intent
  index and then a scan of the whole log for events naming the plan, and what
  ``plan list`` did, a scan of the whole log for plan intents;
- after: ``Containment.plan_summary`` (the intent index, then the plan's
  correlation index) and ``Containment.plan_ids`` (the fold of controls in
  force, caught up with the log: the first call in a process reads the log
  once, later calls only what was appended since).

    python benchmarks/bench_plan_lookup.py [--events 10000] [--runs 20]

This module never decides anything from a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exoarmur.approvals import Vote
from exoarmur.clock import StepClock
from exoarmur.containment import effectors
from exoarmur.containment.effectors import PlanRunner
from exoarmur.containment.model import EFFECTORS, PLAN_ACTION
from exoarmur.containment.plans import door_net
from exoarmur.containment.room import plan_intent
from exoarmur.executors import ExecutorRegistry
from exoarmur.governor.drafts import operator
from exoarmur.governor.outcomes import read_story
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.event import INTENT_RECORDED
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine

TENANT = "acme"
POLICY = """\
@id("contain")
permit (principal, action, resource) when { context.action like "containment.*" };
"""
FILLER_BATCH = 500


def _governor(path: Path) -> Governor:
    executors = ExecutorRegistry()
    for name, effector in EFFECTORS.items():
        executors.bind(effector.action, getattr(effectors, name)({}))
    executors.bind(PLAN_ACTION, PlanRunner())
    return Governor(
        ledger=Ledger(SqliteStore(path), SigningKey.from_seed("bench/log", bytes(32))),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=StepClock(),
        ids=SeededIds(11),
    )


def build(path: Path, events: int) -> str:
    """A ledger of ``events`` events in TENANT holding one executed Door Net plan; its id."""
    g = _governor(path)
    plan = door_net(TENANT, ["identity:alice", "endpoint:laptop-7", "workload:api"])
    outcome = g.submit(plan_intent(plan, TENANT, "soc"))
    for name in ("alice", "bob"):
        if g.outcome(TENANT, outcome.intent_id).status != OutcomeStatus.PENDING_APPROVAL:
            break
        principal, _ = g.add_principal(name, "operator", [TENANT])
        g.vote(TENANT, outcome.intent_id, principal, Vote.APPROVE, "contain")
    if g.outcome(TENANT, outcome.intent_id).status != OutcomeStatus.EXECUTED:
        raise SystemExit("the plan did not execute; the benchmark measures nothing")
    while (size := g.ledger.size(TENANT)) < events:
        count = min(FILLER_BATCH, events - size)
        drafts = [
            g.drafts.for_log(TENANT, "bench.filler", {"n": size + n}, operator("bench"))
            for n in range(count)
        ]
        g.state.append(TENANT, drafts)
    g.close()
    return outcome.intent_id


def show_before(g: Governor, plan_id: str) -> int:
    story = read_story(g.ledger, TENANT, plan_id)
    store = g.ledger.store
    scanned = [
        e
        for e in store.events(TENANT, 0, store.size(TENANT))
        if e.intent_id is None and e.payload.get("plan_id") == plan_id
    ]
    return len(story) + len(scanned)


def list_before(g: Governor) -> int:
    store = g.ledger.store
    return len(
        [
            e.intent_id
            for e in store.events(TENANT, 0, store.size(TENANT))
            if e.type == INTENT_RECORDED and e.payload["intent"]["action"] == PLAN_ACTION
        ]
    )


def show(g: Governor, plan_id: str) -> Callable[[], Any]:
    return lambda: show_before(g, plan_id)


def summary(g: Governor, plan_id: str) -> Callable[[], Any]:
    return lambda: g.containment.plan_summary(TENANT, plan_id)


def ids(g: Governor) -> Callable[[], Any]:
    return lambda: g.containment.plan_ids(TENANT)


def median_ms(call: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "ledger.db"
        plan_id = build(path, args.events)
        g = _governor(path)
        room = g.containment
        size = g.ledger.size(TENANT)
        began = time.perf_counter()
        first = room.plan_ids(TENANT)
        first_ms = (time.perf_counter() - began) * 1000
        if first != [plan_id] or room.plan_summary(TENANT, plan_id) is None:
            raise SystemExit("the lookups do not find the plan")
        runs = args.runs
        rows = [
            ("plan show, before (story + scan of the log)", median_ms(show(g, plan_id), runs)),
            ("plan show, after (intent + correlation index)", median_ms(summary(g, plan_id), runs)),
            ("plan list, before (scan of the log)", median_ms(lambda: list_before(g), runs)),
            ("plan list, after: first call in a process (fold catch-up)", first_ms),
            ("plan list, after: later calls (fold caught up)", median_ms(ids(g), runs)),
        ]
        g.close()
    print(f"tenant log: {size} events, one Door Net plan; median of {args.runs} runs")
    for label, ms in rows:
        print(f"  {label:<60} {ms:9.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
