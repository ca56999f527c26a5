"""The containment demos: scenarios run on a governor, with the markers they print.

Each demo works in a fresh home; with a seeded governor every marker is
stable, and ``PLAN_HASH``, ``ACTION_SEQUENCE`` and ``POLICY_HASH_IN_EFFECT``
are stable in any home because they depend on content only.
``REPLAY_VERIFIED`` comes from a real replay of the tenant's log.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..approvals.book import Vote
from ..governor.facade import Governor
from ..model.decision import OutcomeStatus
from ..model.event import SYSTEM_LOG
from ..principals import Principal
from ..replay import replay
from .fold import PLAN_COMPENSATED, PLAN_STEP_FINISHED
from .plans import door_net
from .room import plan_intent

if TYPE_CHECKING:
    from ..home import Home

DEMO_TENANT = "acme"
#: the policy a demo home gets next to its default one
DEMO_POLICY = """\
// Containment: every containment action and plan is allowed by policy, within
// four hours of TTL; a whole plan needs two operators (the gate adds the class floor).
@id("allow-containment")
@ttl_max("14400")
permit (principal, action, resource)
when { context.action like "containment.*" };

@id("plans-need-two-operators")
@approval("2")
permit (principal, action == Action::"containment.plan", resource);
"""
DOOR_NET_TARGETS = ("identity:alice", "endpoint:laptop-7", "workload:payments-api")
PRIMITIVES = (
    ("isolate_endpoint", "endpoint:laptop-7"),
    ("freeze_identity", "identity:alice"),
    ("disable_workload", "workload:payments-api"),
)


def prepare_home(home: Home, policy: str = DEMO_POLICY) -> Home:
    """A home for a containment demo: made if missing, with ``policy`` beside the default one."""
    if not home.exists():
        home.init()
    path = home.policy_dir / "containment.cedar"
    if not path.exists():
        path.write_text(policy, encoding="utf-8")
    return home


def operators(governor: Governor, count: int) -> list[Principal]:
    found = []
    for number in range(1, count + 1):
        name = f"operator-{number}"
        principal = governor.principals().get(name)
        if principal is None:
            principal, _ = governor.add_principal(name, "operator", [DEMO_TENANT])
        found.append(principal)
    return found


def replay_verified(governor: Governor) -> bool:
    # the system log too: a home the demo leaves behind verifies whole, never unanchored
    governor.ledger.checkpoint(SYSTEM_LOG)
    governor.ledger.checkpoint(DEMO_TENANT)
    report = replay(governor.ledger.store, DEMO_TENANT, verifier=governor.ledger.verifier)
    return report.verified


def _flag(value: bool) -> str:
    return "true" if value else "false"


def primitives(governor: Governor, approve: bool) -> dict[str, str]:
    """Three A2 containment actions; an operator approves (or rejects) each; all expire."""
    (operator,) = operators(governor, 1)
    executed = 0
    first = None
    for effector, scope in PRIMITIVES:
        kind, _, ident = scope.partition(":")
        outcome = governor.submit(
            {
                "tenant": DEMO_TENANT,
                "actor": {"id": "soc-agent", "kind": "agent"},
                "action": f"containment.{effector}",
                "target": scope,
                "safety_class": "A2",
                "params": {
                    "containment": {"scope": {"kind": kind, "id": ident}, "ttl_seconds": 900}
                },
                "idempotency_key": f"demo-primitive-{effector}",
                "correlation_id": "demo-primitives",
            }
        )
        first = first or outcome.correlation_id
        if outcome.status == OutcomeStatus.PENDING_APPROVAL:
            vote = Vote.APPROVE if approve else Vote.REJECT
            governor.vote(DEMO_TENANT, outcome.intent_id, operator, vote, "demo")
        final = governor.outcome(DEMO_TENANT, outcome.intent_id)
        executed += final.status == OutcomeStatus.EXECUTED
    governor.containment.tick(governor.clock.now() + timedelta(seconds=901))
    return {
        "DEMO_RESULT": "approved" if approve else "denied",
        "ACTIONS_PLANNED": str(len(PRIMITIVES)),
        "ACTIONS_EXECUTED": str(executed),
        "CONTROLS_IN_FORCE_AFTER_EXPIRY": str(len(governor.containment.status(DEMO_TENANT))),
        "AUDIT_STREAM_ID": first or "",
        "REPLAY_VERIFIED": _flag(replay_verified(governor)),
    }


def dominance_plan(governor: Governor, approve: bool) -> dict[str, str]:
    """Door Net on a suspicious identity, approved (or rejected) by two operators."""
    plan = door_net(DEMO_TENANT, DOOR_NET_TARGETS)
    outcome = governor.submit(plan_intent(plan, DEMO_TENANT, "soc-agent"))
    if outcome.status == OutcomeStatus.PENDING_APPROVAL:
        for operator in operators(governor, 2):
            vote = Vote.APPROVE if approve else Vote.REJECT
            result = governor.vote(DEMO_TENANT, outcome.intent_id, operator, vote, "demo")
            if not approve or not result.accepted:
                break
    events = governor.containment.plan_events(DEMO_TENANT, outcome.intent_id)
    executed = sum(
        1 for e in events if e.type == PLAN_STEP_FINISHED and e.payload["status"] == "succeeded"
    )
    compensated = any(e.type == PLAN_COMPENSATED for e in events)
    governor.containment.tick(governor.clock.now() + timedelta(hours=4))
    return {
        "PLAN_HASH": plan.plan_hash,
        "ACTION_SEQUENCE": "[" + ",".join(plan.sequence) + "]",
        "ACTIONS_EXECUTED": str(executed),
        "COMPENSATION_APPLIED": _flag(compensated),
        "AUDIT_STREAM_ID": outcome.correlation_id,
        "REPLAY_VERIFIED": _flag(replay_verified(governor)),
    }


def evidence_pack(governor: Governor, out: Path) -> dict[str, str]:
    """Door Net approved by two operators, then its audit stream as an evidence pack.

    The pack is written to ``out``, verified offline with the home's public
    key, and its ``evidence_hash`` derived again from the replayed log.
    """
    from ..evidence.pack import derive_evidence, evidence_hash, export_pack, pack_bytes
    from ..evidence.verify import verify_bundle_text

    ran = dominance_plan(governor, approve=True)
    stream_id = ran["AUDIT_STREAM_ID"]
    ledger = governor.ledger
    pack = export_pack(ledger, DEMO_TENANT, stream_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pack_bytes(pack))
    verdict = verify_bundle_text(out.read_bytes(), ledger.key.verifier_key())
    replayed = ran["REPLAY_VERIFIED"] == "true" and replay_verified(governor)
    stream = ledger.store.events_for_correlation(DEMO_TENANT, stream_id)
    end = max(e.seq for e in stream)
    again = evidence_hash(
        derive_evidence(DEMO_TENANT, stream_id, stream, ledger.store.events(DEMO_TENANT, 0, end))
    )
    return {
        "PLAN_HASH": ran["PLAN_HASH"],
        "POLICY_HASH_IN_EFFECT": str(pack["evidence"]["policy_hash"]),
        "AUDIT_STREAM_ID": stream_id,
        "CHAIN": ",".join(f"{k}:{len(v)}" for k, v in pack["evidence"]["chain"].items() if v),
        "EVIDENCE_HASH": pack["evidence_hash"],
        "ARTIFACT_PATH": str(out),
        "PACK_VERIFIED": _flag(verdict.passed),
        "REPLAY_VERIFIED": _flag(replayed and again == pack["evidence_hash"]),
    }


def posture_lockdown(governor: Governor, ttl: int = 900) -> dict[str, str]:
    """Lock a tenant down for ``ttl`` seconds: a reversible A1 action now needs approval."""
    (operator,) = operators(governor, 1)
    event = governor.set_posture(
        DEMO_TENANT, "lockdown", "demo: suspicious identity", operator, ttl
    )
    outcome = governor.submit(
        {
            "tenant": DEMO_TENANT,
            "actor": {"id": "soc-agent", "kind": "agent"},
            "action": "containment.revoke_sessions",
            "target": "identity:alice",
            "safety_class": "A1",
            "params": {
                "containment": {"scope": {"kind": "identity", "id": "alice"}, "ttl_seconds": 600}
            },
            "idempotency_key": "demo-lockdown-revoke",
            "correlation_id": event.correlation_id,
        }
    )
    return {
        "POSTURE": governor.posture(DEMO_TENANT)["posture"],
        "POSTURE_TTL": str(ttl),
        "LOCKDOWN_VERDICT": outcome.decision.verdict.value,
        "POLICY_HASH_IN_EFFECT": governor.policy_for(DEMO_TENANT).policy_hash,
        "AUDIT_STREAM_ID": event.correlation_id,
        "REPLAY_VERIFIED": _flag(replay_verified(governor)),
    }


def markers_text(markers: dict[str, Any]) -> str:
    return "".join(f"{k}={v}\n" for k, v in markers.items())
