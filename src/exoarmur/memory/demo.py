"""The memory_snapshot demo: contain, let it expire, contain again, then remember.

Runs Door Net (approved by two operators, run, expired), then isolates the
same laptop again, so the tenant's memory holds a plan, expiries and a
control needed again soon after it lapsed. It records the advice drawn from
that memory and applies none of it. With a seeded governor every marker is
stable in any home; ``REPLAY_VERIFIED`` comes from a real replay.
"""

from __future__ import annotations

from ..approvals.book import Vote
from ..containment.demos import DEMO_TENANT, dominance_plan, operators, replay_verified
from ..model.decision import OutcomeStatus
from ..pipeline import Governor
from .room import record_recommendations, snapshot_at


def memory_snapshot(governor: Governor) -> dict[str, str]:
    """Markers: MEMORY_HASH, MEMORY_POSITION, RECOMMENDATIONS, RECORDED_AGAIN, REPLAY_VERIFIED."""
    contained = dominance_plan(governor, approve=True)
    (operator,) = operators(governor, 1)
    again = governor.submit(
        {
            "tenant": DEMO_TENANT,
            "actor": {"id": "soc-agent", "kind": "agent"},
            "action": "containment.isolate_endpoint",
            "target": "endpoint:laptop-7",
            "safety_class": "A2",
            "params": {
                "containment": {"scope": {"kind": "endpoint", "id": "laptop-7"}, "ttl_seconds": 900}
            },
            "idempotency_key": "demo-memory-isolate-again",
        }
    )
    if again.status == OutcomeStatus.PENDING_APPROVAL:
        governor.vote(DEMO_TENANT, again.intent_id, operator, Vote.APPROVE, "demo: seen again")
    snapshot, made, recorded = record_recommendations(governor, DEMO_TENANT, operator)
    # memory's own records are not remembered: the same snapshot, nothing recorded twice
    later, _, twice = record_recommendations(governor, DEMO_TENANT, operator)
    stable = (
        later.canonical()
        == snapshot.canonical()
        == snapshot_at(governor.ledger.store, DEMO_TENANT).canonical()
    )
    return {
        "PLAN_HASH": contained["PLAN_HASH"],
        "MEMORY_HASH": snapshot.memory_hash,
        "MEMORY_POSITION": str(snapshot.position),
        "RECOMMENDATIONS": ",".join(r.recommendation_id for r in made),
        "RECOMMENDATIONS_RECORDED": str(len(recorded)),
        "RECORDED_AGAIN": str(len(twice)),
        "MEMORY_STABLE": "true" if stable else "false",
        "REPLAY_VERIFIED": "true" if replay_verified(governor) else "false",
    }
