"""``exoarmur demo identity_shadow``: telemetry to belief to shadow to a ready plan.

Five failed logins and a login from a new location, reported by two sources
under two correlated identifiers of one person, form two beliefs; the first
opens a shadow on the person, the second joins it. The shadow makes Door Net
ready and the demo submits it citing its evidence: it waits for two
operators, because a shadow never approves anything. ``SHADOW_KEY`` and
``PLAN_SELECTED`` depend on content only, so they are the same in any home.
"""

from __future__ import annotations

from typing import Any

from ..containment.demos import DEMO_TENANT, replay_verified
from ..containment.plans import door_net
from ..containment.room import plan_intent
from ..governor.facade import Governor
from .intake import desk_of
from .model import Observation, parse_observation

SUBJECT = "identity:alice"
ALIAS = "identity:alice@acme.example"


def telemetry() -> list[Observation]:
    failed = [
        {
            "source": "okta",
            "subject": {"kind": "identity", "id": "alice@acme.example"},
            "kind": "login.failed",
            "attributes": {"correlated_ids": [SUBJECT], "attempt": n},
            "event_time": f"2026-11-30T08:00:0{n}Z",
        }
        for n in range(1, 6)
    ]
    logins = [
        {
            "source": "vpn",
            "subject": {"kind": "identity", "id": "alice"},
            "kind": "login.succeeded",
            "attributes": {"location": where, "correlated_ids": [ALIAS]},
            "event_time": at,
        }
        for where, at in (("Lyon", "2026-11-29T09:00:00Z"), ("Lagos", "2026-11-30T08:01:00Z"))
    ]
    return [parse_observation(o) for o in [logins[0], *failed, logins[1]]]


def identity_shadow(governor: Governor) -> dict[str, str]:
    desk = desk_of(governor)
    observations = telemetry()
    desk.record(DEMO_TENANT, observations, {"id": "telemetry", "kind": "agent"})
    status = desk.status(DEMO_TENANT, SUBJECT)
    log = desk.log(DEMO_TENANT)
    ids = {o.observation_id for o in observations}
    beliefs = sorted(b for b, v in log.beliefs.items() if set(v["observation_ids"]) <= ids)
    markers: dict[str, Any] = {
        "SHADOW_CREATED": "true" if status.shadowed else "false",
        "SHADOW_KEY": status.shadow_key or "",
        "PLAN_SELECTED": status.plan or "none",
        "BELIEFS_FORMED": str(len(beliefs)),
    }
    if status.plan is not None:
        intent = plan_intent(door_net(DEMO_TENANT, [SUBJECT]), DEMO_TENANT, "soc-agent")
        intent["params"]["evidence_refs"] = {
            "beliefs": beliefs,
            "observations": sorted(ids),
        }
        outcome = governor.submit(intent)
        markers["PLAN_STATUS"] = outcome.status.value
        markers["AUDIT_STREAM_ID"] = outcome.correlation_id
    markers["REPLAY_VERIFIED"] = "true" if replay_verified(governor) else "false"
    return {k: str(v) for k, v in markers.items()}
