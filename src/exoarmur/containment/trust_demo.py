"""The trust_influence demo: a detector whose last action was compensated is trusted less.

A belief from the ``stuffing`` detector leads to a Door Net plan whose third
step fails and is compensated; the next action resting on the same belief
asks only for ``observed`` evidence, but low trust in the detector raises it
to ``corroborated``, so the action waits (``pending_evidence``): trust raised
the requirement and allowed nothing.
"""

from __future__ import annotations

from typing import Any

from ..approvals.book import Vote
from ..evidence_levels import BELIEF_FORMED, OBSERVATION_RECORDED
from ..governor.facade import Governor
from ..model.decision import OutcomeStatus
from .demos import DEMO_TENANT, DOOR_NET_TARGETS, operators, replay_verified
from .plans import door_net
from .room import plan_intent

DETECTOR = "stuffing"
#: the Door Net step the demo home makes fail (its compensation is what lowers trust)
FAILING_STEP = 3
_SENSOR = {"id": "idp-sensor", "kind": "service"}


def _record(governor: Governor, kind: str, payload: dict[str, Any]) -> None:
    # Until the observe room is merged, the demo records the contract's events itself.
    draft = governor.drafts.for_log(DEMO_TENANT, kind, payload, _SENSOR)
    governor.state.append_one(DEMO_TENANT, draft)


def trust_influence(governor: Governor) -> dict[str, str]:
    subject = {"kind": "identity", "id": "alice"}
    _record(
        governor,
        OBSERVATION_RECORDED,
        {
            "observation": {
                "observation_id": "obs-1",
                "source": "idp",
                "subject": subject,
                "kind": "login.failed",
                "attributes": {"count": 40},
                "event_time": "2026-11-30T08:00:00Z",
            }
        },
    )
    _record(
        governor,
        BELIEF_FORMED,
        {
            "belief": {
                "belief_id": "belief-1",
                "detector": DETECTOR,
                "detector_version": "1",
                "kind": "credential.stuffing",
                "subject": subject,
                "observation_ids": ["obs-1"],
                "sources": ["idp"],
            }
        },
    )
    refs = {"evidence_refs": {"beliefs": ["belief-1"]}}
    plan = plan_intent(door_net(DEMO_TENANT, DOOR_NET_TARGETS), DEMO_TENANT, "soc-agent")
    plan["params"] = plan["params"] | refs
    first = governor.submit(plan)
    approvers = operators(governor, 2)
    for operator in approvers:
        governor.vote(DEMO_TENANT, first.intent_id, operator, Vote.APPROVE, "demo")
    scores = governor.record_trust(DEMO_TENANT, approvers[0]).payload["scores"]
    detector = next(s for s in scores if s["kind"] == "detector" and s["name"] == DETECTOR)
    after = governor.submit(
        {
            "tenant": DEMO_TENANT,
            "actor": {"id": "soc-agent", "kind": "agent"},
            "action": "containment.revoke_sessions",
            "target": "identity:alice",
            "safety_class": "A1",
            "params": {
                "containment": {"scope": subject, "ttl_seconds": 600, "evidence": "observed"}
            }
            | refs,
            "idempotency_key": "demo-trust-revoke",
        }
    )
    evidence = (after.decision.gate or {}).get("evidence", {})
    score = detector["score_bp"]
    return {
        "TRUST_SCORE": f"{score // 10000}.{score % 10000:04d}",
        "REQUIRED_EVIDENCE_LEVEL": str(evidence.get("required", "none")),
        "STATUS": after.status.value,
        "EXECUTION_ALLOWED": "true" if after.status == OutcomeStatus.EXECUTED else "false",
        "AUDIT_STREAM_ID": after.correlation_id,
        "REPLAY_VERIFIED": "true" if replay_verified(governor) else "false",
    }
