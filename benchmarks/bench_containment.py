"""Containment: a Door Net plan beside the four single actions it is made of.

On a fresh home (durable SQLite ledger, production clock and ids, the
simulated effectors bound as ``exoarmur init`` binds them, no rate limits:
this measures governance, not the limits) two operators are created. The
policy permits A1 containment actions outright and holds A2 ones for two
approvers (``@approval("2")``), as the walk-through in docs/containment.md
has it. Then, in the same run:

- N times, an operator submits a Door Net plan (revoke sessions → isolate
  endpoint → rate limit → disable workload, 4 steps, A2 as a whole) for a
  fresh identity, endpoint and workload; ``alice`` and ``bob`` approve it
  with ``Governor.vote`` and bob's vote runs the four steps;
- N times each, a single ``containment.<effector>`` intent for each of
  those four effectors, on a fresh scope: the A1 ones (revoke_sessions,
  rate_limit) run on submit, the A2 ones (isolate_endpoint,
  disable_workload) after the same two votes.

Timed: the whole flow (submit and the votes it needs, up to the executed
outcome). Every outcome is checked; a wrong one aborts the run.

This module never decides anything from a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench_pipeline import percentile
from exoarmur.approvals import Vote
from exoarmur.containment.plans import door_net
from exoarmur.containment.room import plan_intent
from exoarmur.home import DEFAULT_CONFIG, Home, open_governor
from exoarmur.model.decision import OutcomeStatus
from exoarmur.pipeline import Governor
from exoarmur.principals import Principal
from history import OPERATORS, TENANT

WARMUP = 3
#: the single actions a Door Net plan is made of, in its order, with their scope kind
SINGLES = (
    ("revoke_sessions", "identity"),
    ("isolate_endpoint", "endpoint"),
    ("rate_limit", "identity"),
    ("disable_workload", "workload"),
)
POLICY = """\
@id("contain-a1")
permit (principal, action, resource)
when { context.action like "containment.*" && context.safety_class == "A1" };

@id("contain-a2-two-person")
@approval("2")
permit (principal, action, resource)
when { context.action like "containment.*" && context.safety_class == "A2" };
"""
#: the configuration ``exoarmur init`` writes, without its rate limits
CONFIG = DEFAULT_CONFIG.split("# The safety gate")[0]


def make_containment_home(path: Path) -> Home:
    home = Home(path)
    path.mkdir(mode=0o700, parents=True)
    home.policy_dir.mkdir(mode=0o700)
    (home.policy_dir / "containment.cedar").write_text(POLICY, encoding="utf-8")
    home.config_path.write_text(CONFIG, encoding="utf-8")
    home.init()
    return home


def _plan(i: int) -> dict[str, Any]:
    targets = [f"identity:user-{i}", f"endpoint:pc-{i}", f"workload:job-{i}"]
    return plan_intent(door_net(TENANT, targets), TENANT, "soc-lead", f"door-net-{i:08d}")


def _single(effector: str, kind: str, i: int) -> dict[str, Any]:
    klass = "A1" if effector in ("revoke_sessions", "rate_limit") else "A2"
    scope = {"kind": kind, "id": f"{effector}-{i}"}
    return {
        "tenant": TENANT,
        "actor": {"id": "soc-lead", "kind": "operator"},
        "action": f"containment.{effector}",
        "target": f"{kind}:{scope['id']}",
        "safety_class": klass,
        "params": {"containment": {"scope": scope, "ttl_seconds": 3600}},
        "idempotency_key": f"{effector}-{i:08d}",
    }


def _flow(governor: Governor, intent: dict[str, Any], approvers: list[Principal], what: str) -> int:
    """Govern one intent to its executed outcome; the votes it took."""
    outcome = governor.submit(intent)
    votes = 0
    while outcome.status == OutcomeStatus.PENDING_APPROVAL and votes < len(approvers):
        voted = governor.vote(TENANT, outcome.intent_id, approvers[votes], Vote.APPROVE, "ok")
        if not voted.accepted:
            raise SystemExit(f"containment: vote on {what}: {voted.message}")
        outcome = voted.outcome
        votes += 1
    if outcome.status != OutcomeStatus.EXECUTED:
        raise SystemExit(f"containment: {what} is {outcome.status.value}, not executed")
    return votes


def _row(
    governor: Governor,
    make: Callable[[int], dict[str, Any]],
    approvers: list[Principal],
    n: int,
    what: str,
    progress: Callable[[int], None],
) -> dict[str, Any]:
    flows: list[float] = []
    votes = 0
    before = governor.ledger.size(TENANT)
    for i in range(-WARMUP, n):
        t0 = time.perf_counter()
        votes = _flow(governor, make(i), approvers, f"{what} {i}")
        if i < 0:  # warm-up: first-call costs outside the timing
            before = governor.ledger.size(TENANT)
            continue
        flows.append(time.perf_counter() - t0)
        progress(1)
    seconds = sum(flows)
    flows.sort()
    return {
        "n": n,
        "seconds": seconds,
        "per_s": n / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(flows, 0.50) * 1e3,
        "p99_ms": percentile(flows, 0.99) * 1e3,
        "p999_ms": percentile(flows, 0.999) * 1e3,
        "votes": votes,
        "events_per_flow": (governor.ledger.size(TENANT) - before) / n,
        "latencies_s": flows,
    }


def containment_run(home: Path, n: int, progress: Callable[[int], None]) -> dict[str, Any]:
    with open_governor(home) as governor:
        approvers = [governor.add_principal(name, "operator", [TENANT])[0] for name in OPERATORS]
        plan = _row(governor, _plan, approvers, n, "Door Net plan", progress)
        plan["steps"] = len(SINGLES)
        singles = {
            effector: _row(
                governor,
                partial(_single, effector, kind),
                approvers,
                n,
                effector,
                progress,
            )
            for effector, kind in SINGLES
        }
    return {"door_net": plan, "singles": singles}
