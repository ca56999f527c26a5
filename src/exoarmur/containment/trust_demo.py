"""The trust_influence demo: a detector whose last action was compensated is trusted less.

Telemetry goes through the observation desk: the ``stuffing`` detector (a
configured threshold rule) forms a belief on a failed login, which opens a
shadow on identity alice. A Door Net plan resting on that belief, corroborated
by an EDR observation, runs; its third step fails and is compensated. The next
action resting on the belief alone asks only for ``observed`` evidence, but low
trust in the detector (and the open shadow) raise it to ``corroborated``, so
the action waits (``pending_evidence``): trust raised the requirement and
allowed nothing.
"""

from __future__ import annotations

from typing import Any

from ..approvals.book import Vote
from ..governor.facade import Governor
from ..model.decision import OutcomeStatus
from ..observations import parse_observation
from ..observations.intake import desk_of
from .demos import DEMO_TENANT, DOOR_NET_TARGETS, operators, replay_verified
from .plans import door_net
from .room import plan_intent

DETECTOR = "stuffing"
#: the Door Net step the demo home makes fail (its compensation is what lowers trust)
FAILING_STEP = 3
_SENSOR = {"id": "idp-sensor", "kind": "service"}


_STUFFING = {
    "name": DETECTOR,
    "type": "threshold",
    "match": "login.failed",
    "threshold": 1,
    "window_seconds": 600,
    "belief": "credential.stuffing",
}


def _observation(observation_id: str, source: str, kind: str) -> dict[str, Any]:
    return {
        "observation_id": observation_id,
        "source": source,
        "subject": {"kind": "identity", "id": "alice"},
        "kind": kind,
        "attributes": {"count": 40},
        "event_time": "2026-11-30T08:00:00Z",
    }


def trust_influence(governor: Governor) -> dict[str, str]:
    subject = {"kind": "identity", "id": "alice"}
    desk = desk_of(governor)
    (login,) = desk.record(
        DEMO_TENANT,
        [parse_observation(_observation("obs-1", "idp", "login.failed"))],
        _SENSOR,
        detectors={"rules": [_STUFFING]},
    )
    desk.record(
        DEMO_TENANT, [parse_observation(_observation("obs-2", "edr", "session.anomaly"))], _SENSOR
    )
    (belief,) = login.beliefs
    refs = {"evidence_refs": {"beliefs": [belief]}}
    # the plan is corroborated by the EDR observation: the open shadow asks that much
    corroborated = {"evidence_refs": {"beliefs": [belief], "observations": ["obs-2"]}}
    plan = plan_intent(door_net(DEMO_TENANT, DOOR_NET_TARGETS), DEMO_TENANT, "soc-agent")
    plan["params"] = plan["params"] | corroborated
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
